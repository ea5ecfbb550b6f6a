"""The offline sentiment set: shipped files = generator output, and the test split cannot be memorised."""

from __future__ import annotations

import re

import numpy as np
import pytest

from sftcourse import sentiment
from sftcourse.sentiment import CLASS_NAMES, SPLIT_SIZES, generate_split, generate_splits, sentiment_words
from sftcourse.text import load_offline_sentiment


def _words(rows):
    return {w for text, _ in rows for w in re.findall(r"[a-z]+", text.lower())}


@pytest.fixture(scope="module")
def splits():
    return generate_splits()


def test_shipped_files_equal_the_generator_output(splits):
    for split, rows in splits.items():
        path = sentiment.split_path(split)
        assert path.read_text(encoding="utf-8") == sentiment.to_csv(rows), \
            f"{path.name} is stale: run `python -m sftcourse.sentiment`"


def test_generation_is_deterministic_balanced_and_unique(splits):
    assert generate_splits() == splits
    for split, rows in splits.items():
        assert len(rows) == SPLIT_SIZES[split]
        labels = [label for _, label in rows]
        assert labels.count("positive") == labels.count("negative") == len(rows) // 2
        assert set(labels) == set(CLASS_NAMES)
    texts = [t for rows in splits.values() for t, _ in rows]
    assert len(texts) == len(set(texts))


def test_sentiment_vocabularies_are_disjoint_across_splits(splits):
    train_words = _words(splits["train"])
    val_words = _words(splits["val"])
    assert not sentiment_words("val") & train_words
    assert not sentiment_words("test") & (train_words | val_words)
    assert not sentiment_words("train") & sentiment_words("test")
    # and each split really uses its own sentiment words
    assert sentiment_words("test") <= _words(splits["test"]) | {"top", "notch"}


def test_everything_but_the_sentiment_words_of_test_was_seen_in_training(splits):
    neutral_test = _words(splits["test"]) - sentiment_words("test")
    assert neutral_test <= _words(splits["train"])


def test_a_bag_of_words_model_memorises_train_but_is_at_chance_on_test(splits):
    """The independent check that only the (unseen) sentiment words carry the label in test."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = CountVectorizer()
    X_train = vec.fit_transform([t for t, _ in splits["train"]])
    y_train = np.array([label == "positive" for _, label in splits["train"]])
    clf = LogisticRegression(max_iter=1000).fit(X_train, y_train)
    assert clf.score(X_train, y_train) > 0.98
    for split in ("val", "test"):
        X = vec.transform([t for t, _ in splits[split]])
        y = np.array([label == "positive" for _, label in splits[split]])
        assert 0.35 < clf.score(X, y) < 0.65, split


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="split must be one of"):
        generate_split("dev")
    with pytest.raises(ValueError, match="even number"):
        generate_split("train", n=3)
    with pytest.raises(ValueError, match="could not generate"):
        with pytest.MonkeyPatch.context() as mp:  # one frame: few distinct sentences exist
            mp.setattr(sentiment, "FRAMES", ("I thought {thing} was {adj}.",))
            generate_split("val", n=1000)
    with pytest.raises(ValueError, match="split must be one of"):
        sentiment_words("dev")


def test_write_splits_round_trips(tmp_path, splits):
    paths = sentiment.write_splits(tmp_path)
    assert [p.name for p in paths] == [f"sentiment_{s}.csv" for s in sentiment.SPLITS]

    data = load_offline_sentiment(tmp_path)
    assert data.class_names == list(CLASS_NAMES)
    assert list(zip(data.test.texts, [CLASS_NAMES[y] for y in data.test.labels])) == splits["test"]


def _a_file(tmp):
    (tmp / "afile").write_text("x")
    return tmp / "afile"


BAD_INPUTS = [
    ("sentiment_words unknown split", lambda tmp: sentiment_words("dev"), ValueError, "split must be one of"),
    ("sentiment_words None", lambda tmp: sentiment_words(None), ValueError, "split must be one of"),
    ("generate_split unknown split", lambda tmp: generate_split("dev"), ValueError, "split must be one of"),
    ("generate_split odd n", lambda tmp: generate_split("train", n=3), ValueError, "even number"),
    ("generate_split n 0", lambda tmp: generate_split("train", n=0), ValueError, "even number"),
    ("generate_split n float", lambda tmp: generate_split("train", n=4.0), ValueError, "n must be an even"),
    ("generate_split n str", lambda tmp: generate_split("train", n="4"), ValueError, "n must be an even"),
    ("generate_split seed str", lambda tmp: generate_split("train", n=4, seed="1"), ValueError, "seed must be an int"),
    ("to_csv not pairs", lambda tmp: sentiment.to_csv([("only text",)]), ValueError, r"\(text, label\) pairs"),
    ("to_csv a string", lambda tmp: sentiment.to_csv("text,label"), ValueError, r"\(text, label\) pairs"),
    ("split_path unknown split", lambda tmp: sentiment.split_path("dev"), ValueError, "split must be one of"),
    ("write_splits root is a file", lambda tmp: sentiment.write_splits(_a_file(tmp)), ValueError, "is a file"),
    ("main unknown option", lambda tmp: sentiment.main(["--nope"]), SystemExit, "2"),
]


@pytest.mark.parametrize("case, call, exc, match", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_a_clear_error(case, call, exc, match, tmp_path):
    with pytest.raises(exc, match=match):
        call(tmp_path)

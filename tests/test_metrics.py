"""sftcourse.metrics against scikit-learn (a test-only oracle) on random labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from sftcourse.metrics import (
    accuracy,
    classification_table,
    confusion_matrix,
    precision_recall_f1,
    scores_from_confusion,
)


def _random_labels(seed, n=60, c=5, absent_pred=(), absent_true=()):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, c, n)
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, c, n))
    for k in absent_pred:  # a class the model never predicts
        y_pred[y_pred == k] = (k + 1) % c
    for k in absent_true:  # a class that never occurs
        y_true[y_true == k] = (k + 1) % c
    return y_true, y_pred


CASES = [dict(), dict(absent_pred=(2,)), dict(absent_true=(4,)), dict(absent_pred=(1,), absent_true=(1,)),
         dict(absent_pred=(0, 3), absent_true=(3,))]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("case", CASES, ids=["all", "never_predicted", "never_true", "neither", "mixed"])
@pytest.mark.parametrize("zero_division", [0.0, 1.0, float("nan")])
def test_matches_scikit_learn(seed, case, zero_division):
    c = 5
    y_true, y_pred = _random_labels(seed, c=c, **case)
    labels = list(range(c))
    assert accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-15)
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, c),
                                  skm.confusion_matrix(y_true, y_pred, labels=labels))
    ours = precision_recall_f1(y_true, y_pred, c, zero_division=zero_division)
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None,
                                                     zero_division=zero_division)
    np.testing.assert_allclose(ours["precision"], p, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours["recall"], r, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours["f1"], f, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(ours["support"], s)
    mp, mr, mf, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro",
                                                        zero_division=zero_division)
    for key, expected in (("macro_precision", mp), ("macro_recall", mr), ("macro_f1", mf)):
        if math.isnan(expected):
            assert math.isnan(ours[key])
        else:
            assert ours[key] == pytest.approx(expected, rel=1e-12), key


def test_tensors_lists_and_arrays_agree():
    y_true, y_pred = _random_labels(7, c=4)
    as_np = precision_recall_f1(y_true, y_pred, 4)
    as_torch = precision_recall_f1(torch.from_numpy(y_true), torch.from_numpy(y_pred), 4)
    as_list = precision_recall_f1(y_true.tolist(), y_pred.tolist(), 4)
    for key in ("precision", "recall", "f1"):
        np.testing.assert_array_equal(as_np[key], as_torch[key])
        np.testing.assert_array_equal(as_np[key], as_list[key])
    assert accuracy(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 0])) == pytest.approx(2 / 3)
    assert accuracy(np.array([1.0, 0.0]), np.array([1, 1])) == 0.5  # whole floats are class indices


def test_num_classes_larger_than_seen_labels_gives_zero_rows():
    cm = confusion_matrix([0, 1, 1], [0, 1, 0], num_classes=4)
    assert cm.shape == (4, 4) and cm[2:].sum() == 0 and cm[:, 2:].sum() == 0
    assert cm.tolist()[:2] == [[1, 0, 0, 0], [1, 1, 0, 0]]


def test_f1_is_the_harmonic_mean_where_defined():
    y_true, y_pred = _random_labels(3, n=200, c=3)
    s = precision_recall_f1(y_true, y_pred, 3)
    harmonic = 2 * s["precision"] * s["recall"] / (s["precision"] + s["recall"])
    np.testing.assert_allclose(s["f1"], harmonic, rtol=1e-12)


def test_scores_from_confusion_validates():
    with pytest.raises(ValueError, match="square"):
        scores_from_confusion(np.ones((2, 3)))
    with pytest.raises(ValueError, match="negative"):
        scores_from_confusion(-np.eye(2))
    with pytest.raises(ValueError, match="zero_division"):
        scores_from_confusion(np.eye(2), zero_division=0.5)


@pytest.mark.parametrize("y_true, y_pred, num_classes, message", [
    ([0, 1], [0, 1, 1], 2, "2 labels but y_pred has 3"),
    ([], [], 2, "empty"),
    ([[0.1, 0.9]], [1], 2, r"argmax\(1\)"),
    ([0, 1], [0.5, 1.0], 2, "integer class indices"),
    ([0, 3], [0, 1], 3, r"y_true has labels in \[0, 3\] but num_classes=3"),
    ([0, 1], [-1, 1], 3, r"y_pred has labels in \[-1, 1\]"),
    ([0, 1], [0, 1], 0, "num_classes must be an int >= 1"),
])
def test_bad_inputs_are_explained(y_true, y_pred, num_classes, message):
    with pytest.raises(ValueError, match=message):
        precision_recall_f1(y_true, y_pred, num_classes)


def test_classification_table_lists_every_class_and_macro():
    y_true, y_pred = _random_labels(1, c=3)
    table = classification_table(y_true, y_pred, 3, ["cat", "dog", "eel"])
    lines = table.splitlines()
    assert len(lines) == 5 and lines[-1].strip().startswith("macro") and "eel" in lines[3]
    f1 = skm.f1_score(y_true, y_pred, average="macro")
    assert f"{f1:5.3f}" in lines[-1]
    with pytest.raises(ValueError, match="class_names"):
        classification_table(y_true, y_pred, 3, ["a"])



@pytest.mark.parametrize("call, exc, message", [
    # the silent cases
    (lambda: accuracy([-1, 0], [-1, 0]), ValueError, r"y_true has labels in \[-1, 0\]; class indices must be >= 0"),
    (lambda: accuracy(torch.tensor([0, 1]), torch.tensor([-100, 1])), ValueError, r"y_pred has labels in \[-100, 1\].*-100"),
    (lambda: scores_from_confusion(np.array([[1.0, np.nan], [0.0, 2.0]])), ValueError, r"whole, finite counts"),
    (lambda: scores_from_confusion(np.array([[0.5, 0.5], [0.0, 1.0]])), ValueError, r"whole, finite counts"),
    (lambda: classification_table([0, 1], [0, 1], 2, "ab"), TypeError, r"class_names must be a list of names, got the string 'ab'"),
    # wrong types and shapes
    (lambda: accuracy(None, [0]), TypeError, r"y_true must be class indices.*got None"),
    (lambda: accuracy([0], "0"), TypeError, r"y_pred must be class indices.*got '0'"),
    (lambda: accuracy(["cat", "dog"], [0, 1]), ValueError, r"y_true must hold integer class indices, got dtype <U3.*map them to ids"),
    (lambda: accuracy([0, 1], [np.nan, 1.0]), ValueError, r"y_pred must hold integer class indices, got dtype float64"),
    (lambda: accuracy(torch.zeros(2, 3), [0, 1]), ValueError, r"y_true must be 1-D.*argmax\(1\)"),
    (lambda: accuracy([0, 1], []), ValueError, r"y_pred is empty"),
    (lambda: accuracy(5, 5), ValueError, r"y_true must be 1-D class indices of shape \(n,\), got shape \(\)"),
    (lambda: confusion_matrix([0, 1], [0, 1], None), TypeError, r"num_classes must be an int >= 1, got None"),
    (lambda: confusion_matrix([0, 1], [0, 1], 2.0), TypeError, r"num_classes must be an int >= 1, got 2\.0"),
    (lambda: confusion_matrix([0, 1], [0, 1], True), TypeError, r"num_classes must be an int >= 1, got True"),
    (lambda: confusion_matrix([0, 2], [0, 1], 2), ValueError, r"y_true has labels in \[0, 2\] but num_classes=2"),
    (lambda: precision_recall_f1([0, 1], [0, 1], 2, zero_division="warn"), ValueError, r"zero_division must be 0\.0, 1\.0 or float\('nan'\)"),
    (lambda: scores_from_confusion(None), TypeError, r"cm must be a square \(C, C\) matrix of counts, got None"),
    (lambda: scores_from_confusion([["a", "b"], ["c", "d"]]), TypeError, r"got dtype <U1"),
    (lambda: scores_from_confusion(np.zeros((0, 0))), ValueError, r"got shape \(0, 0\)"),
    (lambda: scores_from_confusion(np.ones(3)), ValueError, r"square \(C, C\).*shape \(3,\)"),
    (lambda: classification_table([0, 1], [0, 1], 2, ["a", "b", "c"]), ValueError, r"class_names has 3 names but num_classes=2"),
    (lambda: classification_table([0, 1], [0, 1], 0), ValueError, r"num_classes must be an int >= 1, got 0"),
])
def test_bad_arguments_are_named(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_class_names_that_are_not_strings_are_printed():
    table = classification_table([0, 1], [0, 1], 2, [3, 7])
    assert table.splitlines()[1].split()[0] == "3" and table.splitlines()[2].split()[0] == "7"

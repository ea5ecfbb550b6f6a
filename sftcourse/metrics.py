"""Classification metrics from class indices: accuracy, confusion matrix, precision/recall/F1.

Every function takes NumPy arrays, torch tensors or lists of integer class indices
``y_true`` (n,) and ``y_pred`` (n,) and checks them first (pass ``logits.argmax(1)``,
not the logits). Results are NumPy arrays / Python floats.

Zero division (documented once, used everywhere): precision of a class that is never
predicted, recall of a class that never occurs, and F1 of a class that is neither
predicted nor present are 0/0. They take the value ``zero_division`` (default 0.0, as
scikit-learn); with ``zero_division=float("nan")`` they are NaN and left out of the
macro averages. F1 is 2 TP / (2 TP + FP + FN), which equals 2 P R / (P + R) whenever P and
R are both defined, and is 0 (not undefined) for a class that occurs but is never predicted.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sftcourse.checks import check_positive_int


def _as_labels(a: Any, name: str) -> np.ndarray:
    if a is None or isinstance(a, (str, bytes)):
        raise TypeError(f"{name} must be class indices (a list, array or tensor of ints), got {a!r}")
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    if arr.ndim != 1:
        tip = f"; for scores or one-hot rows pass {name}.argmax(1)" if arr.ndim == 2 else ""
        raise ValueError(f"{name} must be 1-D class indices of shape (n,), got shape {arr.shape}{tip}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; metrics need at least one sample")
    if not np.issubdtype(arr.dtype, np.integer):
        if arr.dtype == bool:
            arr = arr.astype(np.int64)
        elif np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        elif arr.dtype.kind in "USO":
            raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype} "
                             f"(for class names, map them to ids first, e.g. with {{name: i for i, name in "
                             f"enumerate(class_names)}})")
        else:
            raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype} "
                             f"(for probabilities or logits pass {name}.argmax(1))")
    arr = arr.astype(np.int64, copy=False)
    if arr.min() < 0:
        # accuracy([-1, 0], [-1, 0]) used to be 1.0: a negative index is never a class
        raise ValueError(f"{name} has labels in [{int(arr.min())}, {int(arr.max())}]; class indices must be >= 0 "
                         "(drop ignored positions such as -100 before computing metrics)")
    return arr


def _pair(y_true: Any, y_pred: Any, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    t = _as_labels(y_true, "y_true")
    p = _as_labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.shape[0]} labels but y_pred has {p.shape[0]}; "
                         "they must describe the same samples")
    if num_classes is not None:
        num_classes = check_positive_int(num_classes, "num_classes")
        for name, arr in (("y_true", t), ("y_pred", p)):
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi >= num_classes:
                raise ValueError(f"{name} has labels in [{lo}, {hi}] but num_classes={num_classes}; "
                                 f"labels must lie in [0, {num_classes - 1}]")
    return t, p


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of samples whose predicted class equals the true class; y_true, y_pred: (n,)."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(t == p))


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes): entry [i, j] = samples of true class i predicted as j."""
    if num_classes is None:
        raise TypeError("num_classes must be an int >= 1, got None; pass the number of classes the model has "
                        "(absent classes get zero rows)")
    t, p = _pair(y_true, y_pred, num_classes)
    return np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def _divide(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    out = np.full(num.shape, zero_division, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def scores_from_confusion(cm: Any, zero_division: float = 0.0) -> dict[str, Any]:
    """Per-class and macro precision, recall, F1 and support from a confusion matrix (C, C)."""
    if cm is None:
        raise TypeError("cm must be a square (C, C) matrix of counts, got None; build it with confusion_matrix")
    cm = np.asarray(cm.detach().cpu() if hasattr(cm, "detach") else cm)
    if not (np.issubdtype(cm.dtype, np.number) or cm.dtype == bool):
        raise TypeError(f"cm must be a square (C, C) matrix of counts, got dtype {cm.dtype}")
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.size == 0:
        raise ValueError(f"cm must be a square (C, C) matrix of counts, got shape {cm.shape}")
    if not np.all(np.isfinite(cm)) or not np.all(cm == np.round(cm)):
        # NaN used to flow into every score; 0.5 'counts' gave scores of no meaning
        raise ValueError("cm must hold whole, finite counts (rows = true class, columns = prediction); "
                         "to normalise a confusion matrix, compute the scores from the counts first")
    if np.any(cm < 0):
        raise ValueError("cm holds negative counts; rows are true classes, columns predictions")
    if not (zero_division in (0.0, 1.0) or (isinstance(zero_division, float) and math.isnan(zero_division))):
        raise ValueError(f"zero_division must be 0.0, 1.0 or float('nan'), got {zero_division!r}")
    cm = cm.astype(np.float64)
    tp = np.diag(cm)
    predicted = cm.sum(axis=0)  # TP + FP: column sums
    support = cm.sum(axis=1)  # TP + FN: row sums
    precision = _divide(tp, predicted, zero_division)
    recall = _divide(tp, support, zero_division)
    f1 = _divide(2 * tp, predicted + support, zero_division)

    def macro(v: np.ndarray) -> float:
        return float("nan") if np.all(np.isnan(v)) else float(np.nanmean(v))

    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64),
            "macro_precision": macro(precision), "macro_recall": macro(recall), "macro_f1": macro(f1)}


def precision_recall_f1(y_true: Any, y_pred: Any, num_classes: int, *,
                        zero_division: float = 0.0) -> dict[str, Any]:
    """Per-class arrays (num_classes,) "precision", "recall", "f1", "support" and floats "macro_*".

    Macro = unweighted mean over all ``num_classes`` classes, absent ones included (see the
    module docstring for ``zero_division``).
    """
    return scores_from_confusion(confusion_matrix(y_true, y_pred, num_classes), zero_division)


def classification_table(y_true: Any, y_pred: Any, num_classes: int, class_names: list[str] | None = None,
                         *, zero_division: float = 0.0) -> str:
    """A plain-text per-class table (precision, recall, F1, support) with a macro row."""
    s = precision_recall_f1(y_true, y_pred, num_classes, zero_division=zero_division)
    if isinstance(class_names, (str, bytes)):
        raise TypeError(f"class_names must be a list of names, got the string {class_names!r}; "
                        f"pass e.g. {list(class_names)[:3]!r}")
    names = [str(n) for n in class_names] if class_names is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} names but num_classes={num_classes}")
    width = max(8, *(len(n) for n in names))
    lines = [f"{'class':>{width}}  precision  recall     f1  support"]
    for i, name in enumerate(names):
        lines.append(f"{name:>{width}}  {s['precision'][i]:9.3f}  {s['recall'][i]:6.3f}  {s['f1'][i]:5.3f}"
                     f"  {s['support'][i]:7d}")
    lines.append(f"{'macro':>{width}}  {s['macro_precision']:9.3f}  {s['macro_recall']:6.3f}  "
                 f"{s['macro_f1']:5.3f}  {int(s['support'].sum()):7d}")
    return "\n".join(lines)

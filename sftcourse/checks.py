"""Argument checks shared by the library: clear ValueErrors that name the argument, what it got, and the fix."""

from __future__ import annotations

import numpy as np


def as_float_array(a: object, name: str, *, ndim: int | tuple[int, ...] | None = None,
                   allow_empty: bool = False) -> np.ndarray:
    """Convert ``a`` to a float64 array and check its rank, emptiness and finiteness."""
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric, could not convert it to an array: {exc}") from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must be {want}, got shape {arr.shape}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass at least one sample")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); clean or impute the data first")
    return arr


def check_X(X: object, name: str = "X") -> np.ndarray:
    """A design matrix: 2-D (n, d), finite, not empty."""
    arr = as_float_array(X, name, ndim=2)
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has no features (shape {arr.shape}); it must be (n, d) with d >= 1")
    return arr


def check_targets(y: object, n: int, name: str = "y") -> np.ndarray:
    """Real-valued regression targets of shape (n,)."""
    arr = as_float_array(y, name, ndim=1)
    if arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) to match X, got {arr.shape}")
    return arr


def check_labels(y: object, num_classes: int, name: str = "y", *, n: int | None = None) -> np.ndarray:
    """Integer class labels of shape (n,) in [0, num_classes)."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D class indices of shape (n,), got shape {arr.shape}"
                         + ("; if it is one-hot, pass y.argmax(axis=1)" if arr.ndim == 2 else ""))
    if arr.size == 0:
        raise ValueError(f"{name} is empty; pass at least one label")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) to match the inputs, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"{name} has labels in [{lo}, {hi}] but num_classes={num_classes}; "
                         f"labels must lie in [0, {num_classes - 1}]")
    return arr.astype(np.int64, copy=False)


def check_binary_labels(y: object, n: int, name: str = "y") -> np.ndarray:
    """Binary labels of shape (n,) with values in {0, 1}, returned as float64."""
    arr = as_float_array(y, name, ndim=1)
    if arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) to match X, got {arr.shape}")
    if not np.all((arr == 0) | (arr == 1)):
        vals = np.unique(arr)[:5]
        raise ValueError(f"{name} must contain only 0 and 1 for binary classification, found {vals}")
    return arr

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
    arr = as_float_array(X, name, ndim=2, allow_empty=True)
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has no features (shape {arr.shape}); it must be (n, d) with d >= 1")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass at least one sample")
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


# ---------------------------------------------------------------------------------------------
# Scalars and callables: hyperparameters are checked once, before any work is done


def _is_real_number(value: object) -> bool:
    """A Python/NumPy int or float (not a bool, not a string, not an array of several values)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, (int, float, np.integer, np.floating))


def check_int(value: object, name: str, *, minimum: int = 1, hint: str = "") -> int:
    """An int (or NumPy integer) >= ``minimum``; bools and floats such as 2.0 are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r} ({type(value).__name__})"
                        + (f"; {hint}" if hint else ""))
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}" + (f"; {hint}" if hint else ""))
    return int(value)


def check_positive_int(value: object, name: str, *, hint: str = "") -> int:
    """An int >= 1 (a count of steps, epochs, samples)."""
    return check_int(value, name, minimum=1, hint=hint)


def check_finite_float(value: object, name: str, *, low: float | None = None, high: float | None = None,
                       low_open: bool = False, high_open: bool = False, hint: str = "") -> float:
    """A finite real number, optionally within [low, high] (``low_open``/``high_open`` exclude the ends).

    Accepts Python and NumPy ints and floats and one-element arrays/tensors; refuses bools,
    strings, None, NaN and infinities with a message that names ``name`` and the valid range.
    """
    lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
    hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
    if low is not None and high is not None:
        want = f"a finite number in {lo}, {hi}"
    elif low is not None:
        want = f"a finite number {'>' if low_open else '>='} {low:g}"
    elif high is not None:
        want = f"a finite number {'<' if high_open else '<='} {high:g}"
    else:
        want = "a finite number"
    tail = f"; {hint}" if hint else ""
    v = value
    if hasattr(v, "detach") or isinstance(v, np.ndarray):  # a one-element tensor or array is a number
        arr = np.asarray(v.detach().cpu() if hasattr(v, "detach") else v)  # type: ignore[union-attr]
        if arr.size != 1 or arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
            raise TypeError(f"{name} must be {want}, got an array of shape {arr.shape} and dtype {arr.dtype}{tail}")
        v = arr.reshape(()).item()
    if not _is_real_number(v):
        raise TypeError(f"{name} must be {want}, got {value!r} ({type(value).__name__}){tail}")
    f = float(v)
    if not np.isfinite(f):
        raise ValueError(f"{name} must be {want}, got {f}{tail}")
    if low is not None and (f < low or (low_open and f == low)):
        raise ValueError(f"{name} must be {want}, got {f:g}{tail}")
    if high is not None and (f > high or (high_open and f == high)):
        raise ValueError(f"{name} must be {want}, got {f:g}{tail}")
    return f


def check_callable(value: object, name: str, *, hint: str = "") -> None:
    """Refuse a non-callable ``value`` (None, a number, an array) with the argument's name."""
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {value!r} ({type(value).__name__})"
                        + (f"; {hint}" if hint else ""))


def check_label_tensor(labels: object, num_classes: int, name: str = "labels", *, n: int | None = None,
                       ignore_index: int | None = None) -> None:
    """Integer class indices (a torch tensor) in [0, num_classes), ``ignore_index`` allowed.

    One ``min``/``max`` reduction (one host-device sync): call it once per dataset or per
    evaluation, not per training step.
    """
    import torch  # checks.py serves the NumPy chapters too: torch only where a tensor is checked

    num_classes = check_positive_int(num_classes, "num_classes")
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor of class indices, got {type(labels).__name__}; "
                        f"pass torch.as_tensor({name})")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class indices, got dtype {labels.dtype}; "
                         f"pass {name}.long() (or {name}.argmax(1) for scores)")
    if labels.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(labels.shape)}); pass at least one label")
    if n is not None and (labels.ndim != 1 or labels.shape[0] != n):
        raise ValueError(f"{name} must have shape ({n},) to match the inputs, got {tuple(labels.shape)}")
    valid = labels if ignore_index is None else labels[labels != ignore_index]
    if valid.numel():
        lo, hi = int(valid.min()), int(valid.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"{name} lie in [{lo}, {hi}] but there are {num_classes} classes: labels must be "
                             f"in [0, {num_classes - 1}] (remap them, or use a model with {hi + 1} outputs)")

"""Numerical gradient checks: central differences and CS231n's relative error."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sftcourse.checks import check_callable, check_finite_float


def _scalar_value(value: object, x_index: tuple[int, ...]) -> float:
    """``f``'s output as a float: one finite number, else a ValueError that says where it went wrong."""
    arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)  # type: ignore[union-attr]
    if arr.size != 1 or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"f must return one number (a scalar loss), got shape {arr.shape} dtype {arr.dtype} "
                         f"at x[{', '.join(map(str, x_index))}]; reduce it, e.g. return float(loss.sum())")
    out = float(arr.reshape(()))
    if not np.isfinite(out):
        raise ValueError(f"f returned {out} at x perturbed in entry {x_index}: a finite-difference check "
                         "needs a finite loss around x; check f for log(0), overflow or NaN inputs")
    return out


def numerical_grad(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central-difference gradient of a scalar ``f`` at ``x``: (f(x+h e_i) - f(x-h e_i)) / 2h.

    ``x`` (any shape, float64) is perturbed in place one entry at a time and restored,
    so ``f`` may close over it. Returns an array of ``x``'s shape. Error is O(h^2).
    Raises ValueError if ``f`` returns anything but one finite number.
    """
    check_callable(f, "f", hint="pass the loss as a function of x, e.g. lambda w: loss(X, y, w)")
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must be a float NumPy array (it is perturbed in place), got {type(x).__name__}"
                        + (f" of dtype {x.dtype}" if isinstance(x, np.ndarray) else "")
                        + "; pass np.asarray(x, dtype=np.float64)")
    if x.dtype != np.float64:
        raise TypeError(f"x has dtype {x.dtype}; finite differences need float64 "
                        "(float32 rounding swamps an h of 1e-5): pass x.astype(np.float64)")
    if x.size == 0:
        raise ValueError(f"x is empty (shape {x.shape}); there is no gradient to check")
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or infinite entries; check the gradient at a finite point")
    h = check_finite_float(h, "h", low=0.0, low_open=True, hint="1e-5 suits float64 losses of order 1")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        i = it.multi_index
        old = x[i]
        try:
            x[i] = old + h
            f_plus = _scalar_value(f(x), i)
            x[i] = old - h
            f_minus = _scalar_value(f(x), i)
        finally:
            x[i] = old  # restored even when f raises
        grad[i] = (f_plus - f_minus) / (2 * h)
        it.iternext()
    return grad


def rel_error(a: np.ndarray, b: np.ndarray, eps: float = 1e-8) -> float:
    """Max over entries of |a - b| / max(eps, |a| + |b|) (CS231n's measure; ~1e-7 or less is a match).

    NaN when either array holds a NaN or an infinity (no finite measure of agreement exists).
    """
    a_arr = _as_float(a, "a")
    b_arr = _as_float(b, "b")
    eps = check_finite_float(eps, "eps", low=0.0, low_open=True)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"shapes differ: a has shape {a_arr.shape}, b has {b_arr.shape}; "
                         "compare arrays of the same shape")
    if a_arr.size == 0:
        return 0.0
    if not (np.all(np.isfinite(a_arr)) and np.all(np.isfinite(b_arr))):
        return float("nan")
    return float(np.max(np.abs(a_arr - b_arr) / np.maximum(eps, np.abs(a_arr) + np.abs(b_arr))))


def _as_float(a: object, name: str) -> np.ndarray:
    if a is None:
        raise TypeError(f"{name} must be a numeric array, got None; did a function forget to return it?")
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()  # type: ignore[union-attr]
    try:
        return np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a numeric array, got {type(a).__name__}") from None


def check_grad(f: Callable[[np.ndarray], float], analytic: np.ndarray, x: np.ndarray, *,
               name: str = "gradient", tol: float = 1e-7, h: float = 1e-5) -> float:
    """Compare an analytic gradient with ``numerical_grad(f, x)``; raise if rel_error > tol, else return it.

    A NaN or infinite entry in ``analytic`` (or a non-finite ``f`` near ``x``) is a failure, never a pass.
    """
    tol = check_finite_float(tol, "tol", low=0.0, low_open=True, hint="1e-7 is the usual float64 threshold")
    analytic_arr = _as_float(analytic, name)
    numeric = numerical_grad(f, x, h=h)
    if analytic_arr.shape != numeric.shape:
        raise AssertionError(f"{name} has shape {analytic_arr.shape}, but the parameter has shape "
                             f"{numeric.shape}: a gradient has the shape of what it differentiates")
    if not np.all(np.isfinite(analytic_arr)):
        bad = int(analytic_arr.size - np.count_nonzero(np.isfinite(analytic_arr)))
        raise AssertionError(f"{name} has {bad} NaN or infinite entr{'y' if bad == 1 else 'ies'}; "
                             "a gradient of a finite loss is finite: look for 0/0 or log(0) in its formula")
    err = rel_error(analytic_arr, numeric)
    if not err <= tol:  # `not <=` so that a NaN error fails too
        raise AssertionError(f"{name} disagrees with finite differences: relative error {err:.2e} > {tol:.0e}")
    return err

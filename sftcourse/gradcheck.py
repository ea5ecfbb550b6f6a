"""Numerical gradient checks: central differences and CS231n's relative error."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numerical_grad(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central-difference gradient of a scalar ``f`` at ``x``: (f(x+h e_i) - f(x-h e_i)) / 2h.

    ``x`` (any shape, float64) is perturbed in place one entry at a time and restored,
    so ``f`` may close over it. Returns an array of ``x``'s shape. Error is O(h^2).
    """
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise ValueError("x must be a float NumPy array (it is perturbed in place); "
                         "pass x.astype(np.float64)")
    if x.dtype != np.float64:
        raise ValueError(f"x has dtype {x.dtype}; finite differences need float64 "
                         "(float32 rounding swamps an h of 1e-5)")
    if h <= 0:
        raise ValueError(f"h must be positive, got {h}")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        f_plus = float(f(x))
        x[i] = old - h
        f_minus = float(f(x))
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)
        it.iternext()
    return grad


def rel_error(a: np.ndarray, b: np.ndarray, eps: float = 1e-8) -> float:
    """Max over entries of |a - b| / max(eps, |a| + |b|) (CS231n's measure; ~1e-7 or less is a match)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(eps, np.abs(a) + np.abs(b))))


def check_grad(f: Callable[[np.ndarray], float], analytic: np.ndarray, x: np.ndarray, *,
               name: str = "gradient", tol: float = 1e-7, h: float = 1e-5) -> float:
    """Compare an analytic gradient with ``numerical_grad(f, x)``; raise if rel_error > tol, else return it."""
    numeric = numerical_grad(f, x, h=h)
    analytic = np.asarray(analytic, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise AssertionError(f"{name} has shape {analytic.shape}, but the parameter has shape "
                             f"{numeric.shape}: a gradient has the shape of what it differentiates")
    err = rel_error(analytic, numeric)
    if err > tol:
        raise AssertionError(f"{name} disagrees with finite differences: relative error {err:.2e} > {tol:.0e}")
    return err

"""Grading: the checks an exercise cell calls, each failing with a sentence the learner can act on."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping

import numpy as np

_FACTOR_HINTS: dict[float, str] = {
    -1.0: "it has the wrong sign — check the order of a subtraction (p - y vs y - p) or a dropped minus",
    2.0: "it is twice the expected value — is a factor of 2 counted twice?",
    0.5: "it is half the expected value — did you forget the 2 that comes down from a square?",
}


class CheckError(AssertionError):
    """A failed exercise check; its message says what is wrong and what to try."""


def _fail(msg: str) -> None:
    raise CheckError(msg)


def check_array(name: str, actual: object, expected: object, *, rtol: float = 1e-6, atol: float = 1e-9,
                hints: Mapping[float, str] | None = None) -> None:
    """Assert ``actual`` matches ``expected`` in shape and value, explaining a mismatch in a sentence.

    ``hints`` maps a scale factor k to advice shown when actual ≈ k * expected
    (e.g. ``{n: "did you forget to divide by the number of samples?"}``).
    """
    if actual is None:
        _fail(f"{name} is None — did your function forget to `return` it?")
    try:
        a = np.asarray(actual.detach().cpu() if hasattr(actual, "detach") else actual, dtype=np.float64)
    except (TypeError, ValueError):
        _fail(f"{name} should be numeric, got {type(actual).__name__}")
    e = np.asarray(expected.detach().cpu() if hasattr(expected, "detach") else expected, dtype=np.float64)
    if a.shape != e.shape:
        tip = ""
        if a.size == e.size:
            tip = (" — the values may be right but arranged differently; check for a transpose"
                   if a.ndim == e.ndim else f" — try .reshape({e.shape}) or check for keepdims / an extra axis")
        _fail(f"{name} has shape {a.shape}, expected {e.shape}{tip}")
    if not np.all(np.isfinite(a)):
        _fail(f"{name} contains NaN or inf — look for log(0), a division by zero, or exp overflow")
    if np.allclose(a, e, rtol=rtol, atol=atol):
        return
    denom = float(np.vdot(e, e))
    if denom > 0:
        k = float(np.vdot(a, e)) / denom
        if np.allclose(a, k * e, rtol=1e-6, atol=atol):
            for factor, advice in {**_FACTOR_HINTS, **(dict(hints) if hints else {})}.items():
                if np.isclose(k, factor, rtol=1e-6):
                    _fail(f"{name} is off by a factor of {k:g}: {advice}")
            _fail(f"{name} is off by a constant factor of {k:.4g}; the shape of the computation is right, "
                  "look for a missing or extra scale (1/n, 2, a learning rate)")
    worst = np.unravel_index(np.argmax(np.abs(a - e)), a.shape) if a.ndim else ()
    _fail(f"{name} is not right yet: at index {tuple(int(i) for i in worst)} you have "
          f"{a[worst]:.6g}, expected {e[worst]:.6g} (max abs difference {np.max(np.abs(a - e)):.3g})")


def check_scalar(name: str, actual: object, expected: float, *, rtol: float = 1e-6, atol: float = 1e-9,
                 hints: Mapping[float, str] | None = None) -> None:
    """Like :func:`check_array` for one number; accepts Python floats, 0-d arrays and 1-element tensors."""
    if actual is None:
        _fail(f"{name} is None — did your function forget to `return` it?")
    a = np.asarray(actual.detach().cpu() if hasattr(actual, "detach") else actual, dtype=np.float64)
    if a.size != 1:
        _fail(f"{name} should be a single number, got an array of shape {a.shape} — "
              "did you forget to average (or sum) over the samples?")
    check_array(name, a.reshape(()), np.asarray(expected, dtype=np.float64), rtol=rtol, atol=atol, hints=hints)


def check_true(condition: bool, message: str) -> None:
    """Assert ``condition``; on failure raise with ``message`` (a sentence the learner can act on)."""
    if not bool(condition):
        _fail(message)


def passed(name: str) -> None:
    """Print the line a check cell shows when everything holds."""
    print(f"✓ {name}: all checks passed")


@contextlib.contextmanager
def forbid(*targets: tuple[object, str], reason: str) -> Iterator[None]:
    """While active, calling any ``getattr(owner, name)`` raises a CheckError saying ``reason``.

    Check cells run a learner's function inside ``with forbid((module, "fn"), reason=...)``: an
    answer that delegates to the course's own implementation (or to the library it mirrors) fails
    instead of passing. Aliases of the same object in the notebook's namespace
    (``from sftcourse.distributed import shard_indices``) are blocked too. Everything is restored on exit.
    """
    originals = [(owner, name, getattr(owner, name)) for owner, name in targets]
    blocked_ids = {id(fn) for _, _, fn in originals}
    main = vars(sys.modules["__main__"])
    aliases = [(key, value) for key, value in list(main.items()) if id(value) in blocked_ids]

    def blocker(label: str) -> Callable[..., None]:
        def blocked(*args: object, **kwargs: object) -> None:
            raise CheckError(f"your answer calls {label}: {reason}")
        return blocked

    try:
        for owner, name, fn in originals:
            setattr(owner, name, blocker(f"{getattr(owner, '__name__', owner)}.{name}"))
        for key, value in aliases:
            main[key] = blocker(key)
        yield
    finally:
        for owner, name, fn in originals:
            setattr(owner, name, fn)
        for key, value in aliases:
            main[key] = value

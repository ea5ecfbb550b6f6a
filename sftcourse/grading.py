"""Grading: the checks an exercise cell calls, each failing with a sentence the learner can act on."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TypeVar

import numpy as np

T = TypeVar("T")

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
    if np.allclose(a, e, rtol=max(1e-4, rtol), atol=max(1e-7, atol)):
        _fail(f"{name} is close but not within the tolerance (max abs difference {np.max(np.abs(a - e)):.3g}, "
              f"allowed {rtol:g} relative): compute in float64 as the exercise says, and look for a step that "
              "loses precision (float32, an early rounding, a subtraction of nearly equal numbers)")
    denom = float(np.vdot(e, e))
    if denom > 0:
        k = float(np.vdot(a, e)) / denom
        if np.allclose(a, k * e, rtol=1e-6, atol=atol):
            for factor, advice in {**_FACTOR_HINTS, **(dict(hints) if hints else {})}.items():
                if np.isclose(k, factor, rtol=1e-6):
                    _fail(f"{name} is off by a factor of {k:g}: {advice}")
            # Any wrong number is "k times" the right one; a factor is only evidence when the same
            # ratio holds across several independent entries.
            if np.count_nonzero(np.abs(e) > atol) >= 2 and np.unique(np.round(e[np.abs(e) > atol], 12)).size >= 2:
                _fail(f"{name} is off by a constant factor of {k:.4g} across all its entries; the shape of the "
                      "computation is right, look for a missing or extra scale (1/n, 2, a learning rate)")
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


# ---------------------------------------------------------------------------
# Own work: a ✓ must mean the learner wrote it


class _Forbidden(Exception):
    """Raised inside the learner's function when it calls a switched-off implementation."""


def _resolve(target: object) -> tuple[object | None, str, object, str]:
    """Return (owner, attribute, original, display name) for a function object or a dotted path.

    Strings name an importable attribute, e.g. ``"torch.nn.functional.cross_entropy"`` or a method
    ``"torch.optim.Adam.step"``; objects are found through their ``__module__`` and ``__qualname__``.
    """
    import importlib

    path = target if isinstance(target, str) else (
        f"{getattr(target, '__module__', None)}.{getattr(target, '__qualname__', None)}")
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for part in parts[cut:-1]:
                owner = getattr(owner, part)
            original = getattr(owner, parts[-1])
        except AttributeError:
            break
        if not isinstance(target, str) and original is not target and \
                getattr(original, "__func__", original) is not target:
            break
        return owner, parts[-1], original, path
    if not isinstance(target, str) and callable(target):
        # e.g. a wrapped function whose qualname does not lead back to it: patch it wherever it is bound
        return None, "", target, f"{getattr(target, '__module__', '?')}.{getattr(target, '__name__', '?')}"
    raise ValueError(f"forbidden entry {target!r} could not be found as an importable attribute "
                     f"(looked for {path!r}); pass the function itself or a dotted path like "
                     "'torch.nn.functional.cross_entropy'")


@contextmanager
def own_work(what: str, forbidden: Sequence[object]) -> Iterator[None]:
    """Inside the block, every function in ``forbidden`` raises; a call to one fails the check.

    ``forbidden`` holds the course's own implementation of the exercise (and library equivalents
    such as ``"sklearn.metrics.f1_score"``), as function objects or dotted paths. Each is replaced
    where it is defined, in every loaded module that holds the same object (``from m import f``
    included, so the notebook's namespace too), and restored on exit. ``what`` names the learner's
    function in the message.
    """
    import sys

    calls: list[str] = []
    patches: list[tuple[object, str, object]] = []
    by_id: dict[int, object] = {}
    for target in forbidden:
        owner, attr, original, short = _resolve(target)

        def raiser(*args: object, _path: str = short, **kwargs: object) -> object:
            calls.append(_path)
            raise _Forbidden(f"{_path} is switched off while your code is checked")

        if isinstance(owner, type) and not isinstance(original, type):
            raw = owner.__dict__.get(attr, original)
            if isinstance(raw, staticmethod):
                raiser = staticmethod(raiser)  # type: ignore[assignment]
            elif isinstance(raw, classmethod):
                raiser = classmethod(raiser)  # type: ignore[assignment]
        if owner is not None:
            patches.append((owner, attr, original))
        by_id[id(original)] = raiser
    # other names bound to the same objects (``from sftcourse.text import pad_collate``)
    seen = {(id(o), a) for o, a, _ in patches}
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for key, value in list(namespace.items()):
            if id(value) in by_id and (id(module), key) not in seen:
                patches.append((module, key, value))
                seen.add((id(module), key))
    done: list[tuple[object, str, object]] = []
    try:
        for owner, attr, original in patches:
            try:
                setattr(owner, attr, by_id[id(original)])
            except (AttributeError, TypeError):  # a read-only C namespace: leave it
                continue
            done.append((owner, attr, original))
        try:
            yield
        except _Forbidden:
            pass
        except Exception:
            if not calls:
                raise
    finally:
        for owner, attr, original in reversed(done):
            setattr(owner, attr, original)
    if calls:
        used = ", ".join(dict.fromkeys(calls))
        _fail(f"{what} calls {used}, a ready-made implementation of what this exercise asks you to write: "
              f"a ✓ must mean you wrote it, so compute it yourself (the check ran {what} with {used} "
              "switched off)")


def check_own_work(fn: Callable[..., T], *args: object, forbidden: Sequence[object], **kwargs: object) -> T:
    """Call ``fn(*args, **kwargs)`` with every function in ``forbidden`` switched off (see :func:`own_work`).

    Returns what ``fn`` returns, so a check cell reads ``out = check_own_work(mse_grad, X, y, w, b,
    forbidden=[nm.linear_mse])`` and goes on checking ``out``.
    """
    name = getattr(fn, "__name__", "your function")
    result: list[T] = []
    with own_work(name, forbidden):
        result.append(fn(*args, **kwargs))
    return result[0]


# ---------------------------------------------------------------------------
# Showing a failed check: the sentence first, then a short trace


def _short_traceback(etype: type, value: BaseException, tb: object) -> list[str]:
    import traceback

    plumbing = ("interactiveshell.py", "contextlib.py")   # IPython's and the with-statement's frames
    frames = [f for f in traceback.extract_tb(tb)  # type: ignore[arg-type]
              if f.filename != __file__ and not f.filename.endswith(plumbing)]
    lines = [f"\x1b[1;31m✗ {value}\x1b[0m"]
    if frames:
        shown = frames[-3:]
        lines.append("  where: " + " → ".join(
            f"{f.name}{'' if f.name == '<module>' else '()'} line {f.lineno}" for f in shown))
        if shown[-1].line:
            lines.append(f"  line:  {shown[-1].line.strip()}")
    return lines


def show_failed_checks_briefly(shell: object | None = None) -> bool:
    """Make a failed check print its sentence first and a three-frame trace, not 30 lines.

    Call it once in a notebook's setup cell; it registers an IPython custom exception handler
    for :class:`CheckError` (other errors keep their full traceback). The cell still fails, so
    nbgrader and nbval see the error. Returns False outside IPython, where nothing changes.
    """
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - IPython is a course dependency
            return False
        shell = get_ipython()
    if shell is None:
        return False

    def handler(self: object, etype: type, value: BaseException, tb: object, tb_offset: object = None) -> list[str]:
        stb = _short_traceback(etype, value, tb)
        self._showtraceback(etype, value, stb)  # type: ignore[attr-defined]
        return stb

    shell.set_custom_exc((CheckError,), handler)  # type: ignore[attr-defined]
    return True

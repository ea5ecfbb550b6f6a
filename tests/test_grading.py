"""sftcourse.grading: own-work detection, honest factor hints, and the brief failure display."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from sftcourse import numpy_models as nm
from sftcourse.grading import CheckError, check_array, check_own_work, check_scalar, own_work, \
    show_failed_checks_briefly
from sftcourse.grading import _short_traceback


def _mine(X, y, w, b):
    r = X @ w + b - y
    return 2 * X.T @ r / len(y), 2 * float(np.mean(r))


def _delegating(X, y, w, b):
    _, dw, db = nm.linear_mse(X, y, w, b)
    return dw, db


def _sneaky(X, y, w, b):          # swallows the error and falls back: still caught
    try:
        return _delegating(X, y, w, b)
    except Exception:
        return _mine(X, y, w, b)


X, y, w, b = np.ones((3, 2)), np.arange(3.0), np.array([0.5, -1.0]), 0.2


def test_own_work_passes_own_code_and_returns_its_result():
    out = check_own_work(_mine, X, y, w, b, forbidden=[nm.linear_mse])
    np.testing.assert_allclose(out[0], nm.linear_mse(X, y, w, b)[1])


@pytest.mark.parametrize("fn", [_delegating, _sneaky])
def test_own_work_catches_delegation_and_restores(fn):
    original = nm.linear_mse
    with pytest.raises(CheckError, match=r"calls sftcourse\.numpy_models\.linear_mse.*you wrote it"):
        check_own_work(fn, X, y, w, b, forbidden=[nm.linear_mse])
    assert nm.linear_mse is original and nm.linear_mse(X, y, w, b)[0] >= 0


def test_own_work_patches_names_imported_elsewhere_and_dotted_paths():
    import sys
    import types
    mod = types.ModuleType("_learner_ns")      # like a notebook: `from torch.nn.functional import cross_entropy`
    exec("from torch.nn.functional import cross_entropy\ndef f(z, t):\n    return cross_entropy(z, t)\n", mod.__dict__)
    z, t = torch.zeros(2, 3), torch.tensor([0, 1])
    sys.modules["_learner_ns"] = mod
    try:
        with pytest.raises(CheckError, match="torch.nn.functional.cross_entropy"):
            check_own_work(mod.f, z, t, forbidden=["torch.nn.functional.cross_entropy"])
    finally:
        del sys.modules["_learner_ns"]
    assert F.cross_entropy(z, t) > 0
    # a method named by a dotted path
    p = torch.zeros(2, requires_grad=True)
    opt = torch.optim.Adam([p])
    p.grad = torch.ones(2)
    with pytest.raises(CheckError, match="Adam.step"):
        with own_work("my_step", ["torch.optim.Adam.step"]):
            opt.step()
    opt.step()  # restored


def test_own_work_switches_off_dunder_methods_and_notebook_aliases_then_restores_them():
    """What chapters 11 and 13 forbid: a class's __init__/__iter__, and a name the learner imported."""
    import __main__

    import sftcourse.distributed as dist_mod
    from torch.utils.data import DistributedSampler

    original, original_iter = dist_mod.shard_indices, DistributedSampler.__iter__
    __main__.my_alias = original  # as if the learner wrote `from sftcourse.distributed import shard_indices`
    try:
        with pytest.raises(CheckError, match=r"split calls sftcourse\.distributed\.shard_indices"):
            with own_work("split", [dist_mod.shard_indices]):
                __main__.my_alias(4, 2, 0)
        with pytest.raises(CheckError, match=r"DistributedSampler\.__iter__.*switched off"):
            check_own_work(lambda: list(DistributedSampler(range(4), num_replicas=2, rank=0, shuffle=False)),
                           forbidden=[DistributedSampler.__iter__])
        with pytest.raises(CheckError, match=r"calls sftcourse\.lora\.LoRALinear\.__init__"):
            check_own_work(lambda: __import__("sftcourse.lora").lora.LoRALinear(torch.nn.Linear(2, 2), 1, 1.0),
                           forbidden=["sftcourse.lora.LoRALinear.__init__"])
        assert dist_mod.shard_indices is original and __main__.my_alias is original
        assert DistributedSampler.__iter__ is original_iter
        assert dist_mod.shard_indices(4, 2, 0) == [0, 2]
        assert list(DistributedSampler(range(4), num_replicas=2, rank=0, shuffle=False)) == [0, 2]
    finally:
        del __main__.my_alias


def test_own_work_passes_other_errors_through():
    def broken(*_):
        raise KeyError("mine")
    with pytest.raises(KeyError):
        check_own_work(broken, forbidden=[nm.linear_mse])
    with pytest.raises(ValueError, match="could not be found"):
        check_own_work(_mine, X, y, w, b, forbidden=["sftcourse.numpy_models.no_such_function"])


def test_factor_hint_only_when_the_ratio_is_constant_across_entries():
    e = np.array([1.0, -2.0, 3.0])
    with pytest.raises(CheckError, match="constant factor of 3"):
        check_array("g", 3 * e, e)
    # a single wrong number is "some factor" of the right one: no factor claim, just the numbers
    with pytest.raises(CheckError) as info:
        check_scalar("loss", 1.37, 0.52)
    assert "factor" not in str(info.value) and "1.37" in str(info.value)
    # a known hint still fires for a scalar (e.g. a forgotten 1/n)
    with pytest.raises(CheckError, match="n times"):
        check_scalar("loss", 8.0, 2.0, hints={4.0: "n times too large"})


def test_short_traceback_puts_the_sentence_first():
    def learner():
        check_scalar("loss", 1.0, 3.7)
    try:
        learner()
    except CheckError as exc:
        lines = _short_traceback(CheckError, exc, exc.__traceback__)
    assert "loss is not right yet" in lines[0] and len(lines) <= 3
    assert "learner()" in lines[1]


def test_show_failed_checks_briefly_registers_a_handler():
    class Shell:
        def set_custom_exc(self, types, handler):
            self.types, self.handler = types, handler

        def _showtraceback(self, etype, value, stb):
            self.shown = stb
    shell = Shell()
    assert show_failed_checks_briefly(shell)
    assert shell.types == (CheckError,)
    try:
        check_true_fail()
    except CheckError as exc:
        stb = shell.handler(shell, CheckError, exc, exc.__traceback__)
    assert stb == shell.shown and "say why" in stb[0]
    assert show_failed_checks_briefly() is False   # outside IPython nothing is registered


def check_true_fail():
    from sftcourse.grading import check_true
    check_true(False, "say why")


def test_close_but_not_within_tolerance_says_so_instead_of_a_factor():
    e = np.array([1.0, -2.0, 3.0])
    with pytest.raises(CheckError, match="close but not within the tolerance") as info:
        check_array("w", e * (1 + 1e-7) + np.array([0, 1e-7, 0]), e, rtol=1e-10)
    assert "factor" not in str(info.value)

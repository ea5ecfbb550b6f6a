"""sftcourse.optim against torch.optim (step by step) and transformers' schedules (the oracles)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from sftcourse import optim
from sftcourse.train import fit

STEPS = 20
RTOL = 1e-12


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def _batches(seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (8,), generator=g))
            for _ in range(STEPS)]


def _max_rel(a: nn.Module, b: nn.Module) -> float:
    worst = 0.0
    for p, q in zip(a.parameters(), b.parameters()):
        worst = max(worst, float(((p - q).abs() / (q.abs() + 1e-300)).max().detach()))
    return worst


def _run_side_by_side(ours_cls, ours_kw, torch_cls, torch_kw, groups=False):
    ours_model, ref_model = _model(), _model()
    if groups:  # two param groups with different settings
        def split(m, kw):
            return [{"params": m[0].parameters()}, {"params": m[2].parameters(), "lr": kw["lr"] / 3}]
        ours_opt = ours_cls(split(ours_model, ours_kw), **ours_kw)
        ref_opt = torch_cls(split(ref_model, torch_kw), **torch_kw)
    else:
        ours_opt = ours_cls(ours_model.parameters(), **ours_kw)
        ref_opt = torch_cls(ref_model.parameters(), **torch_kw)
    start = [p.detach().clone() for p in ref_model.parameters()]
    worst = 0.0
    for X, y in _batches():
        for model, opt in ((ours_model, ours_opt), (ref_model, ref_opt)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(X), y).backward()
            opt.step()
        worst = max(worst, _max_rel(ours_model, ref_model))
        assert worst < RTOL, f"parameters differ by a relative {worst:.2e}"
    moved = max(float((p.detach() - s).abs().max()) for p, s in zip(ref_model.parameters(), start))
    assert moved > 1e-3, "the optimiser barely moved the weights, so the comparison says little"
    return worst


@pytest.mark.parametrize("kw", [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.1, momentum=0.5, weight_decay=0.01),
])
def test_sgd_matches_torch(kw):
    _run_side_by_side(optim.SGD, kw, torch.optim.SGD, kw)


@pytest.mark.parametrize("kw", [
    dict(lr=0.01),
    dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=0.01, weight_decay=0.1),
])
def test_adam_matches_torch(kw):
    _run_side_by_side(optim.Adam, kw, torch.optim.Adam, kw)


@pytest.mark.parametrize("kw", [dict(lr=0.01), dict(lr=0.01, weight_decay=0.3), dict(lr=0.003, weight_decay=0.0)])
def test_adamw_matches_torch(kw):
    _run_side_by_side(optim.AdamW, kw, torch.optim.AdamW, kw)


@pytest.mark.parametrize("ours, ref, kw", [
    (optim.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
    (optim.Adam, torch.optim.Adam, dict(lr=0.01)),
    (optim.AdamW, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.1)),
])
def test_param_groups_match_torch(ours, ref, kw):
    _run_side_by_side(ours, kw, ref, kw, groups=True)


def test_adam_and_adamw_really_differ_with_weight_decay():
    """The comparisons can fail: Adam's L2 and AdamW's decoupled decay give different weights."""
    with pytest.raises(AssertionError, match="differ"):
        _run_side_by_side(optim.Adam, dict(lr=0.01, weight_decay=0.3), torch.optim.AdamW,
                          dict(lr=0.01, weight_decay=0.3))


def test_adam_first_step_is_lr_times_sign_of_the_gradient():
    """Bias correction makes step 1 of Adam move every weight by ~lr, whatever the gradient's scale."""
    p = nn.Parameter(torch.tensor([1e-4, -3.0, 250.0], dtype=torch.float64))
    opt = optim.Adam([p], lr=0.1, eps=1e-12)
    p.grad = torch.tensor([2e-3, -5.0, 1e3], dtype=torch.float64)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([1e-4 - 0.1, -3.0 + 0.1, 250.0 - 0.1], dtype=torch.float64),
                               rtol=1e-9, atol=1e-9)


def test_parameters_without_gradients_are_left_alone_and_zero_grad_clears():
    a, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    opt = optim.AdamW([a, b], lr=0.1)
    a.grad = torch.ones(2)
    opt.step()
    assert torch.equal(b.detach(), torch.ones(2)) and not torch.equal(a.detach(), torch.ones(2))
    opt.zero_grad()
    assert a.grad is None


def test_state_dict_round_trip_continues_identically():
    m1, m2 = _model(), _model()
    o1 = optim.Adam(m1.parameters(), lr=0.01)
    batches = _batches()
    for X, y in batches[:5]:
        o1.zero_grad()
        nn.functional.cross_entropy(m1(X), y).backward()
        o1.step()
    m2.load_state_dict(m1.state_dict())
    o2 = optim.Adam(m2.parameters(), lr=0.01)
    # deepcopy, as if read from a file: torch's load_state_dict keeps the very same tensors otherwise
    o2.load_state_dict(copy.deepcopy(o1.state_dict()))
    for X, y in batches[5:10]:
        for m, o in ((m1, o1), (m2, o2)):
            o.zero_grad()
            nn.functional.cross_entropy(m(X), y).backward()
            o.step()
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters()))


def test_they_drive_fit_with_a_schedule():
    X = torch.randn(32, 4, dtype=torch.float64)
    y = (X[:, 0] > 0).long()
    model = _model()
    opt = optim.AdamW(model.parameters(), lr=0.05)
    sched = optim.warmup_schedule(opt, warmup_steps=2, total_steps=16, decay="cosine")
    loader = [(X[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)]
    h = fit(model, loader, loader, optimizer=opt, loss_fn=nn.CrossEntropyLoss(), device="cpu", num_epochs=4,
            scheduler=sched, progress=False)
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert h["lr"][-1] == pytest.approx(0.05 * optim.linear_warmup_cosine_decay(15, warmup_steps=2, total_steps=16))


def _p():
    return [nn.Parameter(torch.ones(1))]


@pytest.mark.parametrize("make, exc, message", [
    # the silent cases: NaN or negative hyperparameters used to be accepted
    (lambda: optim.SGD(_p(), lr=0.1, weight_decay=float("nan")), ValueError, r"weight_decay must be a finite number >= 0, got nan"),
    (lambda: optim.Adam(_p(), weight_decay=float("nan")), ValueError, r"weight_decay must be a finite number >= 0, got nan"),
    (lambda: optim.AdamW(_p(), weight_decay=float("nan")), ValueError, r"weight_decay must be a finite number >= 0, got nan"),
    (lambda: optim.Adam(_p(), eps=float("nan")), ValueError, r"eps must be a finite number > 0, got nan"),
    (lambda: optim.AdamW(_p(), eps=-1e-8), ValueError, r"eps must be a finite number > 0"),
    (lambda: optim.Adam(_p(), eps=float("inf")), ValueError, r"eps must be a finite number > 0, got inf"),
    (lambda: optim.AdamW(_p(), lr=float("nan")), ValueError, r"lr must be a finite number >= 0, got nan"),
    (lambda: optim.Adam(_p(), lr=-1e-3), ValueError, r"lr must be a finite number >= 0, got -0\.001"),
    (lambda: optim.SGD(_p(), lr=-1.0), ValueError, r"lr must be a finite number >= 0"),
    (lambda: optim.SGD(_p(), lr=float("inf")), ValueError, r"lr must be a finite number >= 0, got inf"),
    (lambda: optim.SGD(_p(), lr=0.1, weight_decay=-1), ValueError, r"weight_decay must be a finite number >= 0, got -1"),
    (lambda: optim.Adam(_p(), weight_decay=-0.1), ValueError, r"weight_decay must be a finite number >= 0"),
    # hyperparameters of a param group are checked as strictly as the defaults
    (lambda: optim.SGD([{"params": _p(), "lr": -0.1}], lr=0.1), ValueError, r"lr must be a finite number >= 0, got -0\.1"),
    (lambda: optim.AdamW([{"params": _p()}, {"params": _p(), "weight_decay": float("nan")}]), ValueError, r"weight_decay.*got nan"),
    (lambda: optim.Adam([{"params": _p(), "betas": (0.9, 1.0)}]), ValueError, r"betas\[1\] must be a finite number in \[0, 1\)"),
    (lambda: optim.SGD(_p(), lr=0.1).add_param_group({"params": _p(), "momentum": 2.0}), ValueError, r"momentum must be a finite number in \[0, 1\)"),
    # wrong types and values
    (lambda: optim.SGD(_p(), lr="0.1"), TypeError, r"lr must be a finite number >= 0, got '0\.1' \(str\)"),
    (lambda: optim.SGD(_p(), lr=None), TypeError, r"lr must be a finite number >= 0, got None"),
    (lambda: optim.SGD(_p(), lr=0.1, momentum=1.0), ValueError, r"momentum must be a finite number in \[0, 1\), got 1"),
    (lambda: optim.SGD(_p(), lr=0.1, momentum=float("nan")), ValueError, r"momentum.*got nan"),
    (lambda: optim.SGD(_p(), lr=0.1, nesterov=True), ValueError, r"nesterov=True needs momentum > 0"),
    (lambda: optim.SGD(_p(), lr=0.1, momentum=0.9, nesterov="yes"), TypeError, r"nesterov must be True or False"),
    (lambda: optim.Adam(_p(), betas=(1.0, 0.9)), ValueError, r"betas\[0\] must be a finite number in \[0, 1\), got 1"),
    (lambda: optim.Adam(_p(), betas=0.9), TypeError, r"betas must be a pair \(beta1, beta2\)"),
    (lambda: optim.Adam(_p(), betas=(0.9, 0.99, 0.999)), TypeError, r"betas must be a pair"),
    (lambda: optim.Adam(_p(), betas=(0.9, float("nan"))), ValueError, r"betas\[1\].*got nan"),
    (lambda: optim.Adam(_p(), eps=0.0), ValueError, r"eps must be a finite number > 0, got 0"),
    (lambda: optim.Adam(_p(), decoupled=1), TypeError, r"decoupled must be True or False"),
    (lambda: optim.SGD([], lr=0.1), ValueError, r"params is empty.*model\.parameters\(\)"),
    (lambda: optim.Adam(nn.Linear(2, 2).weight), TypeError, r"params must be an iterable.*got Parameter"),
    (lambda: optim.AdamW(None), TypeError, r"params must be an iterable.*got NoneType"),
    (lambda: optim.SGD(3, lr=0.1), TypeError, r"params must be an iterable.*got int"),
])
def test_optimisers_reject_bad_arguments_by_name(make, exc, message):
    with pytest.raises(exc, match=message):
        make()


def test_a_rejected_param_group_is_not_kept():
    opt = optim.SGD(_p(), lr=0.1)
    with pytest.raises(ValueError, match="lr must be"):
        opt.add_param_group({"params": _p(), "lr": float("nan")})
    assert len(opt.param_groups) == 1


# --- schedules --------------------------------------------------------------------------------


@pytest.mark.parametrize("warmup, total", [(0, 10), (3, 10), (10, 10), (1, 1), (7, 50)])
@pytest.mark.parametrize("decay", ["linear", "cosine"])
def test_schedules_match_transformers(warmup, total, decay):
    transformers = pytest.importorskip("transformers")
    oracle_fn = {"linear": transformers.get_linear_schedule_with_warmup,
                 "cosine": transformers.get_cosine_schedule_with_warmup}[decay]
    base = 0.5
    p1, p2 = nn.Parameter(torch.ones(1)), nn.Parameter(torch.ones(1))
    ours_opt, ref_opt = torch.optim.SGD([p1], lr=base), torch.optim.SGD([p2], lr=base)
    ours = optim.warmup_schedule(ours_opt, warmup_steps=warmup, total_steps=total, decay=decay)
    ref = oracle_fn(ref_opt, warmup, total)
    fn = optim.SCHEDULES[decay]
    for step in range(total + 5):  # past the end too: the factor stays at 0
        lr_ours, lr_ref = ours_opt.param_groups[0]["lr"], ref_opt.param_groups[0]["lr"]
        assert lr_ours == pytest.approx(lr_ref, rel=1e-12, abs=1e-15), step
        assert base * fn(step, warmup_steps=warmup, total_steps=total) == pytest.approx(lr_ref, rel=1e-12, abs=1e-15)
        ours_opt.step()
        ref_opt.step()
        ours.step()
        ref.step()


def test_schedule_shape_by_closed_form():
    f = optim.linear_warmup_cosine_decay
    assert f(0, warmup_steps=4, total_steps=12) == 0.0
    assert f(2, warmup_steps=4, total_steps=12) == 0.5
    assert f(4, warmup_steps=4, total_steps=12) == 1.0
    assert f(8, warmup_steps=4, total_steps=12) == pytest.approx(0.5)  # halfway down the cosine
    assert f(12, warmup_steps=4, total_steps=12) == pytest.approx(0.0, abs=1e-15)
    g = optim.linear_warmup_linear_decay
    assert g(8, warmup_steps=4, total_steps=12) == 0.5 and g(20, warmup_steps=4, total_steps=12) == 0.0
    assert math.isclose(f(6, warmup_steps=4, total_steps=12), 0.5 * (1 + math.cos(math.pi / 4)))


@pytest.mark.parametrize("call, exc, message", [
    (lambda f: f(0, warmup_steps=-1, total_steps=10), ValueError, r"warmup_steps must be an int >= 0, got -1"),
    (lambda f: f(0, warmup_steps=11, total_steps=10), ValueError, r"warmup_steps must be in \[0, total_steps=10\], got 11"),
    (lambda f: f(0, warmup_steps=0, total_steps=0), ValueError, r"total_steps must be an int >= 1, got 0"),
    (lambda f: f(0, warmup_steps=2.5, total_steps=10), TypeError, r"warmup_steps must be an int >= 0, got 2\.5"),
    (lambda f: f(0, warmup_steps=0, total_steps=None), TypeError, r"total_steps must be an int >= 1, got None"),
    (lambda f: f(-1, warmup_steps=2, total_steps=10), ValueError, r"step must be an int >= 0, got -1"),
    (lambda f: f(float("nan"), warmup_steps=2, total_steps=10), TypeError, r"step must be an int >= 0, got nan"),
])
@pytest.mark.parametrize("fn", [optim.linear_warmup_linear_decay, optim.linear_warmup_cosine_decay])
def test_schedules_reject_bad_lengths(fn, call, exc, message):
    with pytest.raises(exc, match=message):
        call(fn)


@pytest.mark.parametrize("call, exc, message", [
    (lambda: optim.warmup_schedule(torch.optim.SGD(_p(), lr=1), warmup_steps=0, total_steps=5, decay="step"),
     ValueError, r"decay must be one of \['cosine', 'linear'\], got 'step'"),
    (lambda: optim.warmup_schedule(None, warmup_steps=0, total_steps=5), TypeError,
     r"optimizer must be a torch\.optim\.Optimizer, got NoneType"),
    (lambda: optim.warmup_schedule(torch.optim.SGD(_p(), lr=1), warmup_steps=6, total_steps=5), ValueError,
     r"warmup_steps must be in \[0, total_steps=5\]"),
    (lambda: optim.linear_warmup_cosine_decay(1, warmup_steps=0, total_steps=5, num_cycles=float("nan")),
     ValueError, r"num_cycles must be a finite number > 0, got nan"),
])
def test_warmup_schedule_rejects_bad_arguments(call, exc, message):
    with pytest.raises(exc, match=message):
        call()

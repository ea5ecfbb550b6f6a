"""Optimisers and learning-rate schedules written out by hand, equal to torch.optim step by step.

Each optimiser subclasses ``torch.optim.Optimizer`` only for its bookkeeping (param
groups, ``zero_grad``, ``state_dict``, working with ``LambdaLR`` and
:func:`sftcourse.train.fit`); the update rule in ``step()`` is ours, one line per formula.
Conventions follow PyTorch's so a test can compare them with ``torch.optim`` exactly:

- SGD with momentum: ``buf = g`` on the first step, then ``buf = mu * buf + g``; ``p -= lr * buf``
  (Sutskever et al.'s form folds lr outside the buffer, unlike some textbooks).
- Adam (Kingma & Ba, 2015): bias-corrected moments ``m / (1 - b1^t)``, ``v / (1 - b2^t)``;
  ``weight_decay`` is an L2 term added to the gradient.
- AdamW (Loshchilov & Hutter, 2019): decoupled decay ``p -= lr * wd * p`` before the Adam step.

Schedules are factors that multiply the base lr (what ``LambdaLR`` expects): linear warmup
from 0 then linear or cosine decay to 0, as in ``transformers.get_*_schedule_with_warmup``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR

from sftcourse.checks import check_finite_float, check_int

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]


def _check_params(params: object) -> list[Any]:
    """A list of tensors or of param-group dicts; a lone tensor, None or an empty list refused."""
    if isinstance(params, torch.Tensor) or params is None or isinstance(params, (str, bytes, dict)):
        raise TypeError(f"params must be an iterable of tensors or of param-group dicts, got "
                        f"{type(params).__name__}; pass model.parameters()")
    try:
        items = list(params)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"params must be an iterable of tensors or of param-group dicts, got "
                        f"{type(params).__name__}; pass model.parameters()") from None
    if not items:
        raise ValueError("params is empty: the optimiser would update nothing; pass model.parameters() "
                         "(was the generator already used up, or are all parameters frozen?)")
    return items


def _check_bool(value: object, name: str) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def _check_group(group: dict[str, Any]) -> None:
    """Every hyperparameter of one param group, whether it came from the defaults or the group's dict."""
    check_finite_float(group["lr"], "lr", low=0.0, hint="e.g. 0.1 for SGD, 1e-3 for Adam")
    check_finite_float(group["weight_decay"], "weight_decay", low=0.0, hint="0 turns weight decay off")
    if "momentum" in group:
        check_finite_float(group["momentum"], "momentum", low=0.0, high=1.0, high_open=True,
                           hint="0.9 is usual, 0 turns momentum off")
        _check_bool(group["nesterov"], "nesterov")
        if group["nesterov"] and group["momentum"] == 0:
            raise ValueError("nesterov=True needs momentum > 0, got momentum=0; pass e.g. momentum=0.9")
    if "betas" in group:
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2) such as (0.9, 0.999), got {betas!r}")
        for i, b in enumerate(betas):
            check_finite_float(b, f"betas[{i}]", low=0.0, high=1.0, high_open=True, hint="(0.9, 0.999) is usual")
        check_finite_float(group["eps"], "eps", low=0.0, low_open=True,
                           hint="it keeps the division finite; 1e-8 is usual")
        _check_bool(group["decoupled"], "decoupled")


class _Checked(torch.optim.Optimizer):
    """Validates every param group (including ones added later) before it is used."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        try:
            _check_group(self.param_groups[-1])
        except (TypeError, ValueError):
            self.param_groups.pop()
            raise


class SGD(_Checked):
    """Stochastic gradient descent, optionally with (Nesterov) momentum and L2 weight decay."""

    def __init__(self, params: Params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
        _check_group(defaults)  # checked before the params, so a bad lr is named even with a bad params
        super().__init__(_check_params(params), defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> None:  # type: ignore[override]
        """One update of every parameter that has a gradient."""
        if closure is not None:
            raise ValueError("closures are not supported by these teaching optimisers")
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if wd:
                    g = g + wd * p  # L2: the gradient of (wd/2) * ||p||^2
                if mu:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = g.clone()  # first step: the buffer is the gradient
                    else:
                        state["momentum_buffer"].mul_(mu).add_(g)
                    buf = state["momentum_buffer"]
                    g = g + mu * buf if group["nesterov"] else buf
                p.add_(g, alpha=-lr)


class Adam(_Checked):
    """Adam with bias correction; ``decoupled=True`` (used by :class:`AdamW`) decays weights directly."""

    def __init__(self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, decoupled: bool = False) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled=decoupled)
        _check_group(defaults)
        defaults["betas"] = tuple(betas)
        super().__init__(_check_params(params), defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> None:  # type: ignore[override]
        """One update of every parameter that has a gradient."""
        if closure is not None:
            raise ValueError("closures are not supported by these teaching optimisers")
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)  # m: running mean of g
                    state["exp_avg_sq"] = torch.zeros_like(p)  # v: running mean of g^2
                state["step"] += 1
                t = state["step"]
                if wd and group["decoupled"]:
                    p.mul_(1 - lr * wd)  # AdamW: shrink the weights, outside the adaptive scaling
                elif wd:
                    g = g + wd * p  # Adam's L2: the decay is divided by sqrt(v) like any gradient
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                m_hat = m / (1 - b1 ** t)  # bias correction: m and v start at 0
                v_hat = v / (1 - b2 ** t)
                p.sub_(lr * m_hat / (v_hat.sqrt() + eps))


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01, as torch.optim.AdamW)."""

    def __init__(self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled=True)


# ---------------------------------------------------------------------------
# Learning-rate schedules: a factor of the base lr for optimizer step ``step`` (0, 1, 2, ...)


def _check_schedule(warmup_steps: int, total_steps: int, step: int | None = None) -> None:
    check_int(total_steps, "total_steps", minimum=1, hint="it is num_epochs * optimizer steps per epoch")
    check_int(warmup_steps, "warmup_steps", minimum=0, hint="a number of optimizer steps")
    if step is not None:
        check_int(step, "step", minimum=0, hint="the optimizer step count 0, 1, 2, ...")
    if not warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}")


def linear_warmup_linear_decay(step: int, *, warmup_steps: int, total_steps: int) -> float:
    """Factor rising 0 -> 1 over ``warmup_steps``, then falling linearly to 0 at ``total_steps``."""
    _check_schedule(warmup_steps, total_steps, step)
    if step < warmup_steps:
        return step / warmup_steps
    remaining = total_steps - step
    return max(0.0, remaining / max(1, total_steps - warmup_steps))


def linear_warmup_cosine_decay(step: int, *, warmup_steps: int, total_steps: int,
                               num_cycles: float = 0.5) -> float:
    """Factor rising 0 -> 1 over ``warmup_steps``, then half a cosine down to 0 at ``total_steps``."""
    _check_schedule(warmup_steps, total_steps, step)
    num_cycles = check_finite_float(num_cycles, "num_cycles", low=0.0, low_open=True, hint="0.5 is half a cosine")
    if step < warmup_steps:
        return step / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # 0 -> 1 after warmup
    return max(0.0, 0.5 * (1.0 + math.cos(2.0 * math.pi * num_cycles * progress)))


SCHEDULES: dict[str, Callable[..., float]] = {"linear": linear_warmup_linear_decay,
                                              "cosine": linear_warmup_cosine_decay}


def warmup_schedule(optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int,
                    decay: str = "linear") -> LambdaLR:
    """A ``LambdaLR`` applying linear warmup then ``decay`` ("linear" or "cosine") to every param group."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}; "
                        "build the optimizer first, then its schedule")
    if decay not in SCHEDULES:
        raise ValueError(f"decay must be one of {sorted(SCHEDULES)}, got {decay!r}")
    _check_schedule(warmup_steps, total_steps)
    return LambdaLR(optimizer, partial(SCHEDULES[decay], warmup_steps=warmup_steps, total_steps=total_steps))

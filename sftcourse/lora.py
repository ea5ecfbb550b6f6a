"""LoRA by hand (Hu et al. 2021, arXiv 2106.09685; ICLR 2022): a low-rank update on frozen linear layers.

A frozen linear layer y = x W^T + b (W: (out, in)) gets a trainable update of rank r:

    y = x W^T + b + (alpha / r) · x A^T B^T          A: (r, in), B: (out, r)

A starts random (Kaiming-uniform, as in the reference implementation and peft), B starts at
zero, so at step 0 the model computes exactly what the pretrained one did. Only A and B
(r · (in + out) numbers per layer) are trained; after training, W + (alpha / r) B A can be
merged into one ordinary nn.Linear with no extra cost at inference.

Chapter 11 builds this cell by cell and checks it against ``peft``; chapter 12 uses it on a
causal language model. :func:`add_lora` wraps any ``nn.Linear`` by (the end of) its name.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable rank-``r`` update scaled by ``alpha / r``.

    Input x: (..., in_features) -> output (..., out_features). ``lora_A``: (r, in_features),
    ``lora_B``: (out_features, r). ``dropout`` applies to the input of the update only.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        _check_rank_alpha(r, alpha, min(base.in_features, base.out_features))
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)  # the pretrained weights stay as they are
        self.r, self.alpha, self.scaling = int(r), float(alpha), float(alpha) / int(r)
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, device=w.device, dtype=w.dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, device=w.device, dtype=w.dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # the default of nn.Linear, Hu et al. and peft
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> Tensor:
        """The update (alpha / r) · B A, shaped like the base weight (out, in)."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: Tensor) -> Tensor:
        return self.base(x) + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling

    def merged(self) -> nn.Linear:
        """A plain nn.Linear with weight W + (alpha / r) B A and the same bias (frozen, like the base)."""
        out = nn.Linear(self.in_features, self.out_features, bias=self.base.bias is not None,
                        device=self.base.weight.device, dtype=self.base.weight.dtype)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.delta_weight())
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        out.requires_grad_(False)
        return out

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, r={self.r}, alpha={self.alpha:g}"


def _check_rank_alpha(r: object, alpha: object, max_rank: int) -> None:
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise ValueError(f"r (the rank) must be an int >= 1, got {r!r}; typical values are 4, 8 or 16")
    if r > max_rank:
        raise ValueError(f"r={r} exceeds min(in_features, out_features)={max_rank}: a rank-{r} update of this "
                         "layer is no longer low-rank; use a smaller r")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"alpha must be a positive number (the update is scaled by alpha / r), got {alpha!r}")


def _matches(name: str, targets: Sequence[str]) -> bool:
    # the same rule as peft's target_modules list: the full name, or its ending after a dot
    return any(name == t or name.endswith("." + t) for t in targets)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def add_lora(model: nn.Module, target_names: Sequence[str], r: int, alpha: float, dropout: float = 0.0,
             *, freeze_base: bool = True) -> list[str]:
    """Wrap every ``nn.Linear`` whose name is, or ends with ``.`` + one of, ``target_names`` in place.

    E.g. ``["query", "value"]`` on BERT, ``["q_proj", "v_proj"]`` on Llama-style models.
    With ``freeze_base`` (default) every other parameter of ``model`` is frozen too, as in
    peft; unfreeze a new head yourself. Returns the wrapped modules' names.
    """
    if isinstance(target_names, str):
        raise TypeError(f"target_names must be a list of names, got the string {target_names!r}; "
                        f"write [{target_names!r}]")
    targets = list(target_names)
    if not targets:
        raise ValueError("target_names is empty; pass the names of the linear layers to adapt, e.g. ['query', 'value']")
    found = [(n, m) for n, m in model.named_modules() if n and _matches(n, targets)]
    already = [n for n, m in found if isinstance(m, LoRALinear)]
    if already:
        raise ValueError(f"{already[:3]} already carry LoRA; call add_lora once per model")
    not_linear = [f"{n} ({type(m).__name__})" for n, m in found if not isinstance(m, nn.Linear)]
    if not_linear:
        raise TypeError(f"LoRA here wraps nn.Linear layers only, but {not_linear[:3]} matched target_names; "
                        "name the linear layers inside them instead")
    if not found:
        linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        ends = sorted({n.rsplit(".", 1)[-1] for n in linear})
        raise ValueError(f"no module of the model matches target_names={targets}; the model's linear layers end "
                         f"with {ends[:20]}")
    if freeze_base:
        model.requires_grad_(False)
    for name, module in found:
        _set_submodule(model, name, LoRALinear(module, r, alpha, dropout))
    return [n for n, _ in found]


def lora_layers(model: nn.Module) -> list[tuple[str, LoRALinear]]:
    """(name, layer) for every :class:`LoRALinear` in ``model``."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The LoRA factors (every A and B) of ``model``: what an optimizer for LoRA training needs."""
    params = [p for _, m in lora_layers(model) for p in (m.lora_A, m.lora_B)]
    if not params:
        raise ValueError("the model has no LoRA layers; call add_lora(model, target_names, r, alpha) first")
    return params


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear by its merged nn.Linear (W + (alpha/r) B A), in place; returns ``model``."""
    layers = lora_layers(model)
    if not layers:
        raise ValueError("the model has no LoRA layers to merge")
    for name, layer in layers:
        _set_submodule(model, name, layer.merged())
    return model


def count_parameters(model: nn.Module | Iterable[nn.Parameter]) -> tuple[int, int]:
    """(trainable, total) number of parameters of a model (shared tensors counted once)."""
    params = model.parameters() if isinstance(model, nn.Module) else model
    seen: dict[int, nn.Parameter] = {}
    for p in params:
        seen.setdefault(id(p), p)
    total = sum(p.numel() for p in seen.values())
    return sum(p.numel() for p in seen.values() if p.requires_grad), total


__all__ = ["LoRALinear", "add_lora", "lora_layers", "lora_parameters", "merge_lora", "count_parameters"]

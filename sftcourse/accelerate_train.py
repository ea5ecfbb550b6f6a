"""Chapter 13's training script on Hugging Face ``accelerate``: the same MLP, optimizer and data.

    accelerate launch --multi_gpu --num_processes 2 -m sftcourse.accelerate_train --split-batches --out runs/acc

``Accelerator.prepare`` wraps the model in DDP, the optimizer, and the DataLoader so that each
process gets its part of the data. How the loader is cut is the pitfall this script exists to show:

- ``split_batches=True``: each batch of ``--batch-size`` the loader yields is split across the
  processes, so the global batch stays ``--batch-size`` (what a one-process script meant);
- ``split_batches=False`` (accelerate's default): each process takes whole batches in turn, so one
  optimizer step sees ``num_processes x --batch-size`` samples: the global batch doubles on 2
  processes and the training run is a different one.

The switch is ``DataLoaderConfiguration(split_batches=True)``: accelerate 1.15 accepts
``Accelerator(split_batches=True)`` without a warning and ignores it. On CPU the script asks for
``Accelerator(cpu=True)`` (gloo), and ``accelerate launch`` still needs ``--multi_gpu`` to start
several processes. Only the main process evaluates and writes
``weights.pt`` and ``metrics.json`` (the same format as :mod:`sftcourse.ddp_train`).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor
from torch.distributed.elastic.multiprocessing.errors import record
from torch.nn import functional as F
from torch.utils.data import DataLoader

from sftcourse.ddp_train import TrainConfig, accuracy, write_outputs
from sftcourse.distributed import EpochShuffle, digits_split, make_mlp


@dataclass
class AccelerateConfig:
    """What an accelerate run depends on; ``batch_size`` is the DataLoader's batch size."""

    out: str | None = None
    steps: int = 30
    batch_size: int = 64
    split_batches: bool = False  # accelerate's default
    lr: float = 3e-3
    hidden: int = 128
    depth: int = 1
    num_train: int = 1440
    seed: int = 0
    cpu: bool = False  # stay on CPU even when CUDA is present


def parse_args(argv: Sequence[str] | None = None) -> AccelerateConfig:
    """Command-line flags -> :class:`AccelerateConfig`."""
    p = argparse.ArgumentParser(prog="python -m sftcourse.accelerate_train", description=__doc__.split("\n")[0])
    d = AccelerateConfig()
    p.add_argument("--out", default=None)
    for name in ("steps", "batch_size", "hidden", "depth", "num_train", "seed"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--split-batches", action="store_true", help="split each loader batch across the processes")
    p.add_argument("--cpu", action="store_true")
    return AccelerateConfig(**vars(p.parse_args(argv)))


def train(cfg: AccelerateConfig) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Train with ``Accelerator``; return (metrics, full weights on CPU) on every process."""
    from accelerate import Accelerator, DataLoaderConfiguration

    # accelerate 1.15 still accepts Accelerator(split_batches=...) but ignores it (measured in the
    # chapter): the setting lives in DataLoaderConfiguration.
    accelerator = Accelerator(cpu=cfg.cpu or not torch.cuda.is_available(),
                              dataloader_config=DataLoaderConfiguration(split_batches=cfg.split_batches))
    n_proc = accelerator.num_processes
    if cfg.split_batches and cfg.batch_size % n_proc:
        raise ValueError(f"split_batches=True cuts each batch of {cfg.batch_size} into {n_proc} equal parts: "
                         f"make batch_size a multiple of {n_proc}")
    train_ds, test_ds = digits_split(cfg.num_train, seed=0)
    model = make_mlp(cfg.hidden, cfg.seed, depth=cfg.depth)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    sampler = EpochShuffle(len(train_ds), seed=cfg.seed)  # the order DistributedSampler uses, for comparison
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, drop_last=True)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    torch.manual_seed(cfg.seed + accelerator.process_index)  # per-process randomness differs

    losses, step_times, global_batches = [], [], []
    step, epoch = 0, 0
    while step < cfg.steps:
        sampler.set_epoch(epoch)
        for x, y in loader:
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            accelerator.backward(loss)  # DDP averages the gradients over the processes here
            optimizer.step()
            step_times.append(time.perf_counter() - t0)
            # what one step really saw: this process's batch, summed over processes
            global_batches.append(int(accelerator.gather(torch.tensor([len(y)], device=y.device)).sum()))
            losses.append(float(accelerator.gather(loss.detach()[None]).mean()))
            step += 1
            if step == cfg.steps:
                break
        epoch += 1

    state = {k: v.detach().cpu().clone() for k, v in accelerator.unwrap_model(model).state_dict().items()}
    timed = step_times[2:] if len(step_times) > 4 else step_times
    train_cfg = TrainConfig(hidden=cfg.hidden, depth=cfg.depth, seed=cfg.seed)
    metrics: dict[str, Any] = {
        "engine": "accelerate",
        "world_size": n_proc,
        "backend": str(accelerator.state.backend) if n_proc > 1 else None,
        "config": asdict(cfg),
        "global_batch_sizes": global_batches,
        "losses": losses,
        "step_times_s": step_times,
        "median_step_s": statistics.median(timed),
        "test_accuracy": accuracy(state, train_cfg, test_ds) if accelerator.is_main_process else None,
    }
    accelerator.wait_for_everyone()
    accelerator.free_memory(model, optimizer, loader)  # drop the DDP wrapper before the process group goes
    return metrics, state


@record
def main(argv: Sequence[str] | None = None) -> None:
    cfg = parse_args(argv)
    metrics, state = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        if cfg.out is not None:
            write_outputs(cfg.out, metrics, state)
        print(f"accelerate: {metrics['world_size']} process(es), split_batches={cfg.split_batches}, "
              f"global batch {metrics['global_batch_sizes'][0]}, final loss {metrics['losses'][-1]:.4f}", flush=True)
    from accelerate import PartialState

    gc.collect()
    PartialState().destroy_process_group()


if __name__ == "__main__":
    main()

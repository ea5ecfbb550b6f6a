"""Chapter 13's training script: the digits MLP trained data-parallel, one process per rank.

    torchrun --standalone --nproc_per_node 2 -m sftcourse.ddp_train --engine ddp --out runs/ddp
    python -m sftcourse.ddp_train --engine single --out runs/single      # the one-process reference

Engines (``--engine``):

- ``single``: one process, the whole global batch; the reference every other run must equal;
- ``manual``: N processes, each backpropagates its share, then ``all_reduce`` (sum) of every
  gradient and a division by N, written out by hand;
- ``ddp``: the same with ``DistributedDataParallel`` (Li et al. 2020), which all-reduces gradient
  buckets while backward is still running;
- ``fsdp``: ``fully_shard`` (FSDP2; Zhao et al. 2023): each rank stores 1/N of the weights,
  gradients and Adam state (ZeRO stage 3; Rajbhandari et al. 2020).

The backend is ``nccl`` on CUDA devices (rank r uses ``cuda:LOCAL_RANK``) and ``gloo`` on CPU.
Every rank builds the same initial model from ``--seed``; the data order is shared
(``DistributedSampler(seed=...)`` must agree across ranks or shards overlap); randomness that
should differ per rank (dropout, augmentation) is seeded with ``seed + rank``. Only rank 0
evaluates and writes ``weights.pt`` and ``metrics.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import socket
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.elastic.multiprocessing.errors import record
from torch.nn import functional as F
from torch.utils.data import DataLoader, DistributedSampler

from sftcourse.distributed import digits_split, make_mlp, state_bytes

ENGINES = ("single", "manual", "ddp", "fsdp")


@dataclass
class TrainConfig:
    """Everything a run depends on; the same values on every rank."""

    out: str | None = None  # directory rank 0 writes weights.pt and metrics.json into
    engine: str = "ddp"
    steps: int = 30  # optimizer steps
    global_batch_size: int = 64  # samples per optimizer step, summed over ranks and micro-batches
    grad_accum: int = 1  # micro-batches per optimizer step on each rank
    lr: float = 3e-3
    hidden: int = 128
    depth: int = 1
    num_train: int = 1440
    seed: int = 0
    cpu: bool = False  # stay on CPU (gloo) even when CUDA is present
    collective_timeout_s: float = 120.0  # a collective waiting longer than this raises instead of hanging
    fail_rank: int | None = None  # for the launcher's tests: this rank raises at step 0
    hang_rank: int | None = None  # for the launcher's tests: this rank sleeps forever at step 0


@dataclass
class Context:
    """Where this process sits: its rank among ``world_size``, its device and backend."""

    rank: int
    world_size: int
    local_rank: int
    node_rank: int
    device: torch.device
    backend: str | None  # None: no process group (engine 'single')


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """Command-line flags -> :class:`TrainConfig` (``--global-batch-size 64`` etc.)."""
    p = argparse.ArgumentParser(prog="python -m sftcourse.ddp_train", description=__doc__.split("\n")[0])
    defaults = TrainConfig()
    p.add_argument("--out", default=None)
    p.add_argument("--engine", choices=ENGINES, default=defaults.engine)
    for name in ("steps", "global_batch_size", "grad_accum", "hidden", "depth", "num_train", "seed"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--collective-timeout-s", type=float, default=defaults.collective_timeout_s)
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--fail-rank", type=int, default=None)
    p.add_argument("--hang-rank", type=int, default=None)
    return TrainConfig(**vars(p.parse_args(argv)))


def local_batch_size(cfg: TrainConfig, world_size: int) -> int:
    """Samples per rank per micro-batch: global batch / (ranks x accumulation steps), which must divide."""
    if cfg.engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {cfg.engine!r}")
    for name in ("steps", "global_batch_size", "grad_accum"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    parts = world_size * cfg.grad_accum
    if cfg.global_batch_size % parts:
        raise ValueError(f"global_batch_size={cfg.global_batch_size} must be divisible by world_size x grad_accum "
                         f"= {world_size} x {cfg.grad_accum} = {parts}; pick a multiple of {parts}")
    return cfg.global_batch_size // parts


def setup(cfg: TrainConfig) -> Context:
    """Read the rank from torchrun's environment and join the process group (not for 'single')."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    node_rank = int(os.environ.get("GROUP_RANK", "0"))
    use_cuda = torch.cuda.is_available() and not cfg.cpu
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if cfg.engine == "single":
        if world_size != 1:
            raise ValueError(f"engine 'single' runs in one process but this was launched with WORLD_SIZE={world_size}; "
                             "use --engine ddp (or manual, fsdp) under torchrun")
        return Context(0, 1, 0, 0, device, None)
    if "RANK" not in os.environ:
        raise ValueError(f"engine {cfg.engine!r} needs a process group: launch with "
                         f"`torchrun --nproc_per_node 2 -m sftcourse.ddp_train --engine {cfg.engine} ...` "
                         "(or use --engine single for one process)")
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=timedelta(seconds=cfg.collective_timeout_s))
    return Context(rank, world_size, local_rank, node_rank, device, backend)


def _steps(loader: DataLoader, sampler: DistributedSampler, grad_accum: int) -> Iterator[list[tuple[Tensor, Tensor]]]:
    """Endless optimizer steps, each a list of ``grad_accum`` micro-batches from one epoch.

    Micro-batches left over at the end of an epoch (fewer than ``grad_accum``) are dropped, as the
    DataLoader drops an incomplete batch, so a step never straddles two epochs' orders.
    """
    epoch = 0
    while True:
        sampler.set_epoch(epoch)  # a new order each epoch, the same on every rank
        it = iter(loader)
        for _ in range(len(loader) // grad_accum):
            yield [next(it) for _ in range(grad_accum)]
        epoch += 1


def _wrap(model: nn.Module, cfg: TrainConfig, ctx: Context) -> nn.Module:
    if cfg.engine == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    if cfg.engine == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in model:
            if isinstance(layer, nn.Linear):
                fully_shard(layer)  # each layer's weights are gathered just before it runs, then freed
        fully_shard(model)
        return model
    if cfg.engine == "manual":
        for p in model.parameters():
            dist.broadcast(p.data, src=0)  # start from rank 0's weights (DDP does this in its constructor)
    return model


def _full_state_dict(model: nn.Module, cfg: TrainConfig) -> dict[str, Tensor]:
    if cfg.engine == "ddp":
        model = model.module  # type: ignore[assignment]
    state = model.state_dict()
    if cfg.engine == "fsdp":  # a collective: every rank gathers the shards
        state = {k: v.full_tensor() for k, v in state.items()}
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def _gather(obj: Any, ctx: Context) -> list[Any]:
    if ctx.backend is None:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def _time_allreduce(num_params: int, ctx: Context, repeats: int = 20) -> float:
    """Median seconds of one all-reduce of a gradient-sized float32 tensor."""
    t = torch.zeros(num_params, device=ctx.device)
    times = []
    for i in range(repeats + 3):
        if ctx.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        dist.all_reduce(t)
        if ctx.device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def accuracy(state: dict[str, Tensor], cfg: TrainConfig, dataset: Any) -> float:
    """Test accuracy of a state dict of :func:`make_mlp` (evaluated on CPU)."""
    model = make_mlp(cfg.hidden, cfg.seed, depth=cfg.depth)
    model.load_state_dict(state)
    x, y = dataset.tensors
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def train(cfg: TrainConfig, ctx: Context) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Run ``cfg.steps`` optimizer steps on this rank; return (metrics, full weights on CPU)."""
    local_bs = local_batch_size(cfg, ctx.world_size)
    train_ds, test_ds = digits_split(cfg.num_train, seed=0)
    model = make_mlp(cfg.hidden, cfg.seed, depth=cfg.depth).to(ctx.device)  # same seed: same start on every rank
    num_params = sum(p.numel() for p in model.parameters())
    model = _wrap(model, cfg, ctx)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    torch.manual_seed(cfg.seed + ctx.rank)  # per-rank randomness (dropout masks, augmentation) must differ

    # The sampler's seed must be the SAME on every rank: each rank draws the same permutation and
    # keeps every world_size-th index from its rank on, so the shards never overlap.
    sampler = DistributedSampler(train_ds, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=False)
    loader = DataLoader(train_ds, batch_size=local_bs, sampler=sampler, drop_last=True)
    if len(loader) < cfg.grad_accum:
        raise ValueError(f"each rank has {len(loader)} micro-batches per epoch, fewer than grad_accum={cfg.grad_accum}; "
                         "lower global_batch_size or grad_accum")
    sampler.set_epoch(0)
    epoch0_indices = list(sampler)
    steps = _steps(loader, sampler, cfg.grad_accum)

    local_losses, step_times = [], []
    for step in range(cfg.steps):
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)  # at the start, so the last step's gradients stay measurable
        step_loss = torch.zeros((), device=ctx.device)
        for micro, batch in enumerate(next(steps)):
            x, y = (t.to(ctx.device) for t in batch)
            if step == 0 and micro == 0:
                _fault_injection(cfg, ctx)
            # DDP all-reduces in backward; skip that for all but the last micro-batch of a step
            sync = (model.no_sync() if cfg.engine == "ddp" and micro < cfg.grad_accum - 1  # type: ignore[operator]
                    else contextlib.nullcontext())
            with sync:
                # divide by grad_accum: the summed micro-batch gradients are then the mean over the rank's share
                loss = F.cross_entropy(model(x), y) / cfg.grad_accum
                loss.backward()
            step_loss += loss.detach()
        if cfg.engine == "manual":
            for p in model.parameters():
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad /= ctx.world_size  # the sum of N rank means, divided by N: the global mean's gradient
        optimizer.step()
        if ctx.device.type == "cuda":
            torch.cuda.synchronize()
        step_times.append(time.perf_counter() - t0)
        local_losses.append(float(step_loss))

    memory = state_bytes(model, optimizer)
    state = _full_state_dict(model, cfg)
    gathered = _gather({"losses": local_losses, "indices": epoch0_indices, "memory": memory,
                        "host": socket.gethostname(), "pid": os.getpid(), "node_rank": ctx.node_rank,
                        "local_rank": ctx.local_rank, "device": str(ctx.device)}, ctx)
    allreduce_s = _time_allreduce(num_params, ctx) if ctx.world_size > 1 else 0.0
    timed = step_times[2:] if len(step_times) > 4 else step_times  # the first steps pay one-off costs
    median_step = statistics.median(timed)
    metrics: dict[str, Any] = {
        "engine": cfg.engine,
        "world_size": ctx.world_size,
        "backend": ctx.backend,
        "config": asdict(cfg),
        "local_batch_size": local_bs,
        "num_params": num_params,
        # the global batch's mean loss is the mean of the ranks' means (equal shard sizes)
        "losses": [sum(g["losses"][s] for g in gathered) / ctx.world_size for s in range(cfg.steps)],
        "step_times_s": step_times,
        "median_step_s": median_step,
        "samples_per_s": cfg.global_batch_size / median_step,
        "allreduce_s": allreduce_s,
        "ranks": [{k: g[k] for k in ("host", "pid", "node_rank", "local_rank", "device")} for g in gathered],
        "memory_per_rank": [g["memory"] for g in gathered],
        "epoch0_indices": [g["indices"] for g in gathered],
        "test_accuracy": accuracy(state, cfg, test_ds) if ctx.rank == 0 else None,
    }
    return metrics, state


def _fault_injection(cfg: TrainConfig, ctx: Context) -> None:
    """Make this rank fail or hang on purpose (the launcher's tests need a broken worker)."""
    if cfg.fail_rank == ctx.rank:
        raise RuntimeError(f"rank {ctx.rank} failed on purpose (--fail-rank {cfg.fail_rank}) before its first backward")
    if cfg.hang_rank == ctx.rank:
        print(f"rank {ctx.rank}: hanging on purpose (--hang-rank {cfg.hang_rank})", flush=True)
        while True:
            time.sleep(1.0)


def write_outputs(out: str | Path, metrics: dict[str, Any], state: dict[str, Tensor]) -> None:
    """Rank 0's job: ``weights.pt`` (a state dict) and ``metrics.json`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(state, out / "weights.pt")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")


def load_run(out: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Read back what a run wrote: (metrics, weights)."""
    out = Path(out)
    if not (out / "metrics.json").exists():
        raise FileNotFoundError(f"{out} has no metrics.json: the run did not finish (see its logs), "
                                "or --out pointed elsewhere")
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    return metrics, torch.load(out / "weights.pt", map_location="cpu", weights_only=True)


def run(cfg: TrainConfig) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Set up, train, and (rank 0 only) write the outputs; tear the process group down."""
    local_batch_size(cfg, int(os.environ.get("WORLD_SIZE", "1")))  # fail before joining a group
    ctx = setup(cfg)
    try:
        metrics, state = train(cfg, ctx)
        if ctx.rank == 0 and cfg.out is not None:
            write_outputs(cfg.out, metrics, state)
        if ctx.backend is not None:
            dist.barrier()  # nobody leaves (and tears down the group) while rank 0 still writes
    finally:
        if ctx.backend is not None and dist.is_initialized():
            # DDP/FSDP objects hold the process group through reference cycles: free them first, else
            # gloo's threads can outlive the group and abort the process at exit (seen here, 2 in 11 runs)
            gc.collect()
            dist.destroy_process_group()
    return metrics, state


@record  # a failing rank writes its traceback to torchrun's error file: the launcher shows it
def main(argv: Sequence[str] | None = None) -> None:
    cfg = parse_args(argv)
    metrics, _ = run(cfg)
    if int(os.environ.get("RANK", "0")) == 0:  # only rank 0 logs
        print(f"{cfg.engine}: world_size {metrics['world_size']}, final loss {metrics['losses'][-1]:.4f}, "
              f"test accuracy {metrics['test_accuracy']:.3f}, {metrics['samples_per_s']:.0f} samples/s", flush=True)


if __name__ == "__main__":
    main()

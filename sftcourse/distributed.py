"""Data parallelism's pieces, shared by chapter 13's launch scripts, its notebook and its tests.

- the task: a small MLP on scikit-learn's real 8x8 digits (``digits_split``, ``make_mlp``);
- how a global batch is cut across ranks (``EpochShuffle``, ``shard_indices``) and why the
  gradient of the global mean loss is the average of the ranks' gradients (``average_gradients``);
- the memory of training state per parameter, with ZeRO/FSDP sharding (``training_state_bytes``),
  and the same quantity measured from the tensors a model and optimizer hold (``state_bytes``).

Nothing here starts processes; :mod:`sftcourse.ddp_train` and :mod:`sftcourse.accelerate_train`
are the scripts that ``torchrun`` / ``accelerate launch`` run, and :mod:`sftcourse.launch` runs them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.utils.data import Sampler, TensorDataset

Precision = Literal["fp32", "mixed"]

# Bytes per parameter of each piece of training state with Adam (Rajbhandari et al. 2020, sec. 3.1).
# fp32: weights 4 + gradients 4 + Adam's two moments 4 + 4.
# mixed (fp16/bf16 compute): half-precision weights 2 + gradients 2, and the optimizer keeps an
# fp32 master copy of the weights (4) next to its two fp32 moments (4 + 4): K = 12.
BYTES_PER_PARAM: dict[str, dict[str, int]] = {
    "fp32": {"params": 4, "grads": 4, "optimizer": 8},
    "mixed": {"params": 2, "grads": 2, "optimizer": 12},
}
ZERO_STAGES = (0, 1, 2, 3)


# ---------------------------------------------------------------------------
# The task


def digits_split(num_train: int = 1440, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """scikit-learn's 1,797 real handwritten digits as (train, test) TensorDatasets.

    x: (n, 64) float32 pixels scaled to [0, 1] (raw values are 0..16); y: (n,) int64 in 0..9.
    The split is a fixed permutation drawn from ``seed``; ``num_train`` samples train, the rest test.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    n = len(digits.target)
    if not isinstance(num_train, int) or not 0 < num_train < n:
        raise ValueError(f"num_train must be an int in [1, {n - 1}] (there are {n} digits), got {num_train!r}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    x = torch.tensor(digits.data, dtype=torch.float32)[order] / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)[order]
    return TensorDataset(x[:num_train], y[:num_train]), TensorDataset(x[num_train:], y[num_train:])


def make_mlp(hidden: int = 128, seed: int = 0, *, depth: int = 1) -> nn.Sequential:
    """A 64 -> hidden (-> hidden ...) -> 10 ReLU MLP whose initial weights depend only on ``seed``.

    No dropout: with it each rank would draw its own masks and the runs could not match exactly.
    """
    if not isinstance(hidden, int) or hidden < 1:
        raise ValueError(f"hidden must be a positive int (units per hidden layer), got {hidden!r}")
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive int (number of hidden layers), got {depth!r}")
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    width = 64
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, 10))
    model = nn.Sequential(*layers)
    torch.random.set_rng_state(gen_state)  # building the model leaves the caller's RNG untouched
    return model


# ---------------------------------------------------------------------------
# Cutting the data


class EpochShuffle(Sampler[int]):
    """All ``n`` indices in a fresh order each epoch: exactly DistributedSampler's order for one rank.

    ``DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=seed)`` yields
    ``randperm(n)`` from a generator seeded with ``seed + epoch``; so does this, without needing a
    process group. Single-process reference runs use it so that they see the same global batches
    as the distributed runs. Call ``set_epoch(e)`` before each epoch, as with DistributedSampler.
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int (the dataset length), got {n!r}")
        self.n, self.seed, self.epoch = n, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def shard_indices(n: int, world_size: int, rank: int, *, drop_last: bool = False) -> list[int]:
    """The indices ``DistributedSampler(shuffle=False)`` gives ``rank`` out of ``world_size``.

    Every rank must get the same number of samples (a collective waits for all of them), so
    ``n`` is evened out first: ``drop_last=False`` pads by repeating indices from the start up to
    ``ceil(n / world_size) * world_size``; ``drop_last=True`` cuts the tail down to
    ``floor(n / world_size) * world_size``. Then rank r takes every ``world_size``-th index from r.
    """
    for name, value in (("n", n), ("world_size", world_size), ("rank", rank)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if n < 1 or world_size < 1:
        raise ValueError(f"n and world_size must be >= 1, got n={n}, world_size={world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size - 1}] for world_size={world_size}, got {rank}")
    if drop_last:
        per_rank = n // world_size
        if per_rank == 0:
            raise ValueError(f"drop_last=True with n={n} < world_size={world_size} leaves every rank empty; "
                             "use drop_last=False or fewer ranks")
        indices = list(range(per_rank * world_size))
    else:
        per_rank = math.ceil(n / world_size)
        total = per_rank * world_size
        indices = list(range(n))
        while len(indices) < total:  # repeat from the start (n may be smaller than the padding)
            indices += indices[: total - len(indices)]
    return indices[rank::world_size]


# ---------------------------------------------------------------------------
# Gradient averaging


def average_gradients(grads: Sequence[Mapping[str, Tensor]],
                      sizes: Sequence[int] | None = None) -> dict[str, Tensor]:
    """The gradient of the global mean loss from each worker's gradient of its own mean loss.

    grads: one ``{name: tensor}`` per worker, same names and shapes; ``sizes``: the workers' batch
    sizes ``b_i``. The global batch loss is ``L = sum_i (b_i / B) L_i`` with ``B = sum_i b_i``, so
    its gradient is ``sum_i (b_i / B) g_i``: with equal ``b_i`` (or ``sizes=None``), the plain
    average ``(1/N) sum_i g_i``, which is what DDP computes (an all-reduce sum, then divide by N).
    """
    if len(grads) == 0:
        raise ValueError("grads is empty: pass one {name: gradient} mapping per worker")
    names = list(grads[0])
    for i, g in enumerate(grads):
        if list(g) != names:
            raise ValueError(f"worker {i} has gradients for {sorted(g)} but worker 0 for {sorted(names)}; "
                             "every worker must hold the same model")
    if sizes is None:
        weights = [1.0 / len(grads)] * len(grads)
    else:
        if len(sizes) != len(grads) or any(int(b) < 1 for b in sizes):
            raise ValueError(f"sizes must hold one positive batch size per worker ({len(grads)}), got {list(sizes)}")
        total = float(sum(sizes))
        weights = [b / total for b in sizes]
    return {name: sum(w * g[name] for w, g in zip(weights, grads)) for name in names}  # type: ignore[misc]


# ---------------------------------------------------------------------------
# Memory


def training_state_bytes(num_params: int, *, precision: Precision = "fp32", world_size: int = 1,
                         zero_stage: int = 0) -> dict[str, float]:
    """Bytes per device of weights, gradients and Adam state for ``num_params`` parameters.

    ZeRO (Rajbhandari et al. 2020) shards across ``world_size`` devices: stage 1 the optimizer
    state, stage 2 also the gradients, stage 3 also the weights (FSDP's full sharding, Zhao et al.
    2023). Stage 0 is plain data parallelism: every device holds everything. With Psi parameters
    and mixed precision, stage 0 holds 2 Psi + 2 Psi + 12 Psi = 16 Psi bytes and stage 3 16 Psi / N.
    Activations, buffers and temporaries are not included.
    """
    if precision not in BYTES_PER_PARAM:
        raise ValueError(f"precision must be one of {sorted(BYTES_PER_PARAM)}, got {precision!r}")
    if zero_stage not in ZERO_STAGES:
        raise ValueError(f"zero_stage must be one of {ZERO_STAGES} (0 = no sharding), got {zero_stage!r}")
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive int, got {world_size!r}")
    if num_params < 0:
        raise ValueError(f"num_params must be >= 0, got {num_params}")
    per = BYTES_PER_PARAM[precision]
    sharded = {"optimizer": zero_stage >= 1, "grads": zero_stage >= 2, "params": zero_stage >= 3}
    out = {k: num_params * per[k] / (world_size if sharded[k] else 1) for k in ("params", "grads", "optimizer")}
    out["total"] = out["params"] + out["grads"] + out["optimizer"]
    return out


def _local(t: Tensor) -> Tensor:
    """The part of ``t`` this process stores: a DTensor's local shard, else ``t`` itself."""
    to_local = getattr(t, "to_local", None)
    return to_local() if callable(to_local) else t


def _storage_bytes(tensors: Sequence[Tensor], seen: set[int]) -> int:
    total = 0
    for t in tensors:
        storage = _local(t).untyped_storage()
        if storage.data_ptr() in seen:  # views and tied weights share one storage: count it once
            continue
        seen.add(storage.data_ptr())
        total += storage.nbytes()
    return total


def state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, int]:
    """Measured bytes this process stores for the model's parameters, gradients and optimizer state.

    Sums the sizes of the tensors' storages (each storage once), taking only the local shard of a
    sharded (DTensor) parameter. Unlike the process's resident memory this counts exactly the
    tensors the formula of :func:`training_state_bytes` is about, and it works on any device.
    """
    seen: set[int] = set()
    params = list(model.parameters())
    out = {
        "params": _storage_bytes(params, seen),
        "grads": _storage_bytes([p.grad for p in params if p.grad is not None], seen),
        "optimizer": 0,
    }
    if optimizer is not None:
        out["optimizer"] = _storage_bytes(
            [t for state in optimizer.state.values() for key, t in state.items()
             if isinstance(t, Tensor) and key != "step"], seen)  # Adam's step counter is one number, not per parameter
    out["total"] = out["params"] + out["grads"] + out["optimizer"]
    return out


def max_abs_diff(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> float:
    """Largest absolute difference between two state dicts with the same keys and shapes."""
    if set(a) != set(b):
        raise ValueError(f"the state dicts hold different tensors: only in a {sorted(set(a) - set(b))}, "
                         f"only in b {sorted(set(b) - set(a))}")
    diffs = []
    for k in a:
        if a[k].shape != b[k].shape:
            raise ValueError(f"{k!r} has shape {tuple(a[k].shape)} in a but {tuple(b[k].shape)} in b")
        diffs.append(float((a[k].detach().float().cpu() - b[k].detach().float().cpu()).abs().max()))
    return max(diffs) if diffs else 0.0

"""sftcourse.distributed: the task, the data split, gradient averaging and the memory formula."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DistributedSampler

from sftcourse.distributed import (
    EpochShuffle,
    average_gradients,
    digits_split,
    make_mlp,
    max_abs_diff,
    shard_indices,
    state_bytes,
    training_state_bytes,
)


def test_digits_split_is_the_real_digits_disjoint_and_scaled():
    train, test = digits_split(1440)
    (x, y), (xt, yt) = train.tensors, test.tensors
    assert x.shape == (1440, 64) and xt.shape == (357, 64) and y.dtype == torch.long
    assert 0.0 <= float(x.min()) and float(x.max()) == 1.0 and set(y.tolist()) == set(range(10))
    rows = {tuple(r.tolist()) for r in x}
    assert sum(tuple(r.tolist()) in rows for r in xt) < 10  # a few digits in the set are exact duplicates
    again, _ = digits_split(1440)
    assert torch.equal(again.tensors[0], x)


@pytest.mark.parametrize("bad", [0, 1797, 2.5, "10"])
def test_digits_split_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="num_train"):
        digits_split(bad)


def test_make_mlp_depends_only_on_its_seed_and_keeps_the_callers_rng():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a, b = make_mlp(32, seed=1), make_mlp(32, seed=1)
    assert torch.equal(torch.rand(1), expected_next)
    assert max_abs_diff(a.state_dict(), b.state_dict()) == 0.0
    assert max_abs_diff(a.state_dict(), make_mlp(32, seed=2).state_dict()) > 0
    assert make_mlp(16, depth=2)(torch.zeros(3, 64)).shape == (3, 10)
    with pytest.raises(ValueError, match="hidden"):
        make_mlp(0)
    with pytest.raises(ValueError, match="depth"):
        make_mlp(8, depth=0)


def test_epoch_shuffle_is_distributed_samplers_order_for_one_rank():
    data = list(range(50))
    ref = DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=7)
    ours = EpochShuffle(50, seed=7)
    for epoch in (0, 1, 5):
        ref.set_epoch(epoch)
        ours.set_epoch(epoch)
        assert list(ours) == list(ref)
    ours.set_epoch(0)
    first = list(ours)
    ours.set_epoch(1)
    assert list(ours) != first and sorted(first) == data and len(ours) == 50
    with pytest.raises(ValueError, match="n must be"):
        EpochShuffle(0)


@pytest.mark.parametrize("n", [1, 2, 7, 10, 11])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_shard_indices_match_torch_distributed_sampler(n, world_size, drop_last):
    if drop_last and n < world_size:
        with pytest.raises(ValueError, match="empty"):
            shard_indices(n, world_size, 0, drop_last=True)
        return
    shards = [shard_indices(n, world_size, r, drop_last=drop_last) for r in range(world_size)]
    for r, shard in enumerate(shards):
        oracle = DistributedSampler(list(range(n)), num_replicas=world_size, rank=r, shuffle=False, drop_last=drop_last)
        assert shard == list(oracle)
    assert len({len(s) for s in shards}) == 1  # every rank the same count: collectives need it
    flat = [i for s in shards for i in s]
    if drop_last:
        assert len(flat) == len(set(flat)) == n - n % world_size  # no overlap; exactly the remainder dropped
    else:
        assert set(flat) == set(range(n))  # nothing dropped
        assert len(flat) - n == (-n) % world_size  # duplicates: exactly the padding


def test_shard_indices_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rank must be in"):
        shard_indices(10, 2, 2)
    with pytest.raises(ValueError, match="world_size must be an int"):
        shard_indices(10, 2.0, 0)
    with pytest.raises(ValueError, match=">= 1"):
        shard_indices(0, 2, 0)


def _grads(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return {k: p.grad.clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("sizes", [(6, 6), (3, 3, 3, 3), (2, 7, 3)])
def test_average_gradients_is_the_global_mean_losss_gradient(sizes):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    x, y = torch.randn(sum(sizes), 5, dtype=torch.float64), torch.randint(3, (sum(sizes),))
    full = _grads(model, x, y)  # oracle: autograd on the whole batch
    parts = [_grads(model, xs, ys) for xs, ys in zip(x.split(list(sizes)), y.split(list(sizes)))]
    avg = average_gradients(parts, sizes)
    assert max_abs_diff(avg, full) < 1e-12
    summed = {k: sum(p[k] for p in parts) for k in full}
    assert max_abs_diff(summed, full) > 1e-3  # the oracle rejects a sum
    if len(set(sizes)) == 1:
        assert max_abs_diff(average_gradients(parts), full) < 1e-12
    else:  # DDP's plain average is wrong for unequal shards: why samplers even them out
        assert max_abs_diff(average_gradients(parts), full) > 1e-4


def test_average_gradients_rejects_bad_input():
    g = {"w": torch.ones(2)}
    with pytest.raises(ValueError, match="empty"):
        average_gradients([])
    with pytest.raises(ValueError, match="same model"):
        average_gradients([g, {"v": torch.ones(2)}])
    with pytest.raises(ValueError, match="one positive batch size"):
        average_gradients([g, g], sizes=[1])


def test_training_state_bytes_reproduces_the_zero_papers_example():
    # Rajbhandari et al. 2020, Figure 1: 7.5B parameters, 64 GPUs, mixed-precision Adam (K = 12)
    psi, n, gb = 7.5e9, 64, 1e9
    totals = [training_state_bytes(psi, precision="mixed", world_size=n, zero_stage=s)["total"] / gb for s in range(4)]
    assert totals == pytest.approx([120.0, 31.4, 16.6, 1.9], abs=0.05)
    fp32 = training_state_bytes(1000, precision="fp32")
    assert fp32 == {"params": 4000, "grads": 4000, "optimizer": 8000, "total": 16000}
    assert training_state_bytes(1000, world_size=4, zero_stage=2) == {
        "params": 4000, "grads": 1000, "optimizer": 2000, "total": 7000}
    for kwargs, match in [({"precision": "fp16"}, "precision"), ({"zero_stage": 4}, "zero_stage"),
                          ({"world_size": 0}, "world_size")]:
        with pytest.raises(ValueError, match=match):
            training_state_bytes(10, **kwargs)


def test_state_bytes_measures_params_grads_and_adams_two_moments():
    model = make_mlp(32)
    p = sum(t.numel() for t in model.parameters())
    opt = torch.optim.AdamW(model.parameters())
    assert state_bytes(model, opt) == {"params": 4 * p, "grads": 0, "optimizer": 0, "total": 4 * p}
    F.cross_entropy(model(torch.rand(4, 64)), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()
    measured = state_bytes(model, opt)
    assert measured == {k: v for k, v in training_state_bytes(p).items()}
    tied = nn.Linear(3, 3)
    shared = nn.ModuleList([tied, tied])  # one storage reached twice is counted once
    assert state_bytes(shared)["params"] == 4 * 12


def test_max_abs_diff_checks_keys_and_shapes():
    a = {"w": torch.zeros(2)}
    assert max_abs_diff(a, {"w": torch.tensor([0.0, -0.5])}) == 0.5
    with pytest.raises(ValueError, match="only in a"):
        max_abs_diff(a, {"v": torch.zeros(2)})
    with pytest.raises(ValueError, match="shape"):
        max_abs_diff(a, {"w": torch.zeros(3)})

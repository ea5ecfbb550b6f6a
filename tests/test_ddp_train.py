"""sftcourse.ddp_train: the one-process reference in-process, and real 2-process gloo jobs via torchrun."""

from __future__ import annotations

import pytest
import torch

from sftcourse.ddp_train import TrainConfig, load_run, local_batch_size, parse_args, run
from sftcourse.distributed import max_abs_diff, training_state_bytes
from sftcourse.launch import launch, torchrun_command

STEPS = 12  # a short run: enough AdamW steps for a wrong gradient to show


def test_parse_args_and_local_batch_size():
    cfg = parse_args(["--engine", "fsdp", "--global-batch-size", "32", "--grad-accum", "2", "--lr", "0.1"])
    assert (cfg.engine, cfg.global_batch_size, cfg.grad_accum, cfg.lr) == ("fsdp", 32, 2, 0.1)
    assert local_batch_size(cfg, world_size=2) == 8
    with pytest.raises(ValueError, match="divisible by world_size x grad_accum = 2 x 2 = 4"):
        local_batch_size(TrainConfig(global_batch_size=30, grad_accum=2), world_size=2)
    with pytest.raises(ValueError, match="engine"):
        local_batch_size(TrainConfig(engine="horovod"), 1)


def test_distributed_engines_refuse_to_run_without_torchrun(monkeypatch):
    for var in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="torchrun"):
        run(TrainConfig(engine="ddp", steps=1))
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="engine 'single' runs in one process"):
        run(TrainConfig(engine="single", steps=1))


def test_single_process_run_learns_and_writes_its_outputs(tmp_path):
    metrics, state = run(TrainConfig(engine="single", steps=STEPS, out=str(tmp_path)))
    again, state_read = load_run(tmp_path)
    assert max_abs_diff(state, state_read) == 0.0 and again["losses"] == metrics["losses"]
    assert metrics["losses"][-1] < 0.85 * metrics["losses"][0] and metrics["test_accuracy"] > 0.4  # chance: 0.1
    assert metrics["memory_per_rank"][0] == training_state_bytes(metrics["num_params"])
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        load_run(tmp_path / "missing")


def test_gradient_accumulation_equals_the_large_batch():
    # 25 steps cross the end of the first epoch (1440 / 64 = 22.5 steps): no step may straddle two epochs
    _, big = run(TrainConfig(engine="single", steps=25, global_batch_size=64))
    _, accum = run(TrainConfig(engine="single", steps=25, global_batch_size=64, grad_accum=4))
    _, wrong = run(TrainConfig(engine="single", steps=25, global_batch_size=16))  # oracle can fail
    assert max_abs_diff(big, accum) < 1e-5
    assert max_abs_diff(big, wrong) > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["ddp", "fsdp"])
def test_two_gloo_processes_equal_one_process_on_the_global_batch(tmp_path, engine):
    args = ["--engine", engine, "--steps", STEPS, "--out", tmp_path / "out", "--cpu"]
    launch(torchrun_command("sftcourse.ddp_train", args, nproc_per_node=2, log_dir=tmp_path / "logs"), timeout=240)
    metrics, weights = load_run(tmp_path / "out")
    _, reference = run(TrainConfig(engine="single", steps=STEPS))
    assert metrics["world_size"] == 2 and metrics["backend"] == "gloo" and metrics["local_batch_size"] == 32
    assert max_abs_diff(weights, reference) < 1e-5
    _, other_seed = run(TrainConfig(engine="single", steps=STEPS, seed=1))
    assert max_abs_diff(weights, other_seed) > 1e-2
    # DistributedSampler: the ranks' epoch-0 shards do not overlap and together hold every sample
    a, b = metrics["epoch0_indices"]
    assert not set(a) & set(b) and sorted(a + b) == list(range(1440))
    full = training_state_bytes(metrics["num_params"])
    per_rank = metrics["memory_per_rank"]
    if engine == "ddp":
        assert per_rank == [full, full]
    else:  # FSDP: each rank stores about half of every piece of state (the 10-row head splits 5 + 5)
        for mem in per_rank:
            for key in ("params", "grads", "optimizer"):
                assert mem[key] == pytest.approx(full[key] / 2, rel=0.02)

"""sftcourse.accelerate_train: the split_batches pitfall, measured with real 2-process accelerate jobs."""

from __future__ import annotations

import pytest

from sftcourse.accelerate_train import parse_args
from sftcourse.ddp_train import TrainConfig, load_run, run
from sftcourse.distributed import max_abs_diff
from sftcourse.launch import accelerate_command, launch

STEPS = 12


def test_parse_args():
    cfg = parse_args(["--split-batches", "--batch-size", "32", "--cpu"])
    assert cfg.split_batches and cfg.batch_size == 32 and cfg.cpu
    assert not parse_args([]).split_batches  # accelerate's own default is False too


def test_accelerator_split_batches_keyword_is_silently_ignored():
    """accelerate 1.15: Accelerator(split_batches=True) is accepted and does nothing.

    If this starts failing, accelerate honours the keyword again: update chapter 13's section 13.3.
    """
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.state import AcceleratorState

    try:
        assert Accelerator(cpu=True, split_batches=True).split_batches is False
        AcceleratorState._reset_state(True)
        assert Accelerator(cpu=True, dataloader_config=DataLoaderConfiguration(split_batches=True)).split_batches
    finally:
        AcceleratorState._reset_state(True)


@pytest.mark.slow
def test_split_batches_keeps_the_global_batch_and_its_default_doubles_it(tmp_path):
    results = {}
    for split in (True, False):
        out = tmp_path / f"split{split}"
        args = ["--cpu", "--steps", STEPS, "--batch-size", 64, "--out", out] + (["--split-batches"] if split else [])
        launch(accelerate_command("sftcourse.accelerate_train", args, num_processes=2, log_dir=out / "logs"),
               timeout=240)
        results[split] = load_run(out)
    _, ref64 = run(TrainConfig(engine="single", steps=STEPS, global_batch_size=64))
    _, ref128 = run(TrainConfig(engine="single", steps=STEPS, global_batch_size=128))
    (m_split, w_split), (m_default, w_default) = results[True], results[False]
    assert m_split["world_size"] == 2 and set(m_split["global_batch_sizes"]) == {64}
    assert max_abs_diff(w_split, ref64) < 1e-5
    assert set(m_default["global_batch_sizes"]) == {128}  # each process took a whole batch of 64
    assert max_abs_diff(w_default, ref64) > 1e-2
    assert max_abs_diff(w_default, ref128) < 1e-5  # ... so it trained the batch-128 run

"""sftcourse.pretrain_digits: digit splits, the pretraining script, and the shipped checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sftcourse.pretrain_digits import (
    CHECKPOINT,
    SOURCE_CLASSES,
    TARGET_CLASSES,
    accuracy_on,
    digits_task,
    load_mnist,
    load_source_model,
    main,
)
from sftcourse.vision import ImageTransform, ResNet


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def test_load_mnist_shapes(mnist):
    images, labels = mnist
    assert images.shape == (5000, 1, 28, 28) and images.dtype == torch.uint8
    assert np.bincount(labels.numpy()).tolist() == [500] * 10
    assert int(images.max()) == 255 and int(images.min()) == 0


def test_digits_task_splits_are_disjoint_deterministic_and_relabelled(mnist):
    task = digits_task(TARGET_CLASSES, n_test_per_class=200, n_val_per_class=20, data=mnist)
    assert len(task.test) == 1000 and len(task.val) == 100 and len(task.pool) == 1400
    parts = [set(t.tolist()) for t in (task.pool, task.val, task.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert np.bincount(task.labels[task.test].numpy()).tolist() == [200] * 5
    # relabelled digits 5..9 -> 0..4, and the images really are those digits
    images, digits = mnist
    first_seven = images[(digits == 7).nonzero()[:, 0]]
    some = task.images[task.labels == 2][:5]
    assert all(any(torch.equal(s, f) for f in first_seven) for s in some)
    again = digits_task(TARGET_CLASSES, n_test_per_class=200, n_val_per_class=20, data=mnist)
    assert torch.equal(task.test, again.test) and torch.equal(task.images, again.images)
    with pytest.raises(ValueError, match="distinct digits"):
        digits_task((3, 3), data=mnist)
    with pytest.raises(ValueError, match="too few"):
        digits_task((0, 1), n_test_per_class=480, n_val_per_class=30, data=mnist)


@pytest.mark.slow
def test_pretraining_script_writes_a_loadable_checkpoint(tmp_path, capsys):
    out = tmp_path / "tiny.pt"
    assert main(["--out", str(out), "--epochs", "1", "--train-limit", "64", "--batch-size", "32"]) == 0
    assert "source accuracy" in capsys.readouterr().out
    model, info = load_source_model(out)
    assert isinstance(model, ResNet) and model.config["num_classes"] == len(SOURCE_CLASSES)
    for key in ("mean", "std", "classes", "source_accuracy", "seed", "epochs", "num_train", "split_seed"):
        assert key in info, f"checkpoint info lacks {key!r}"
    assert info["num_train"] == 64 and info["classes"] == list(SOURCE_CLASSES) and info["epochs"] == 1
    assert 0 < info["mean"][0] < 0.5 and 0.1 < info["std"][0] < 0.6
    assert 0.0 <= info["source_accuracy"] <= 1.0


def test_shipped_checkpoint_is_small_and_scores_on_held_out_source_digits(mnist):
    assert CHECKPOINT.is_file(), "re-create it with python -m sftcourse.pretrain_digits"
    assert CHECKPOINT.stat().st_size < 2_000_000
    model, info = load_source_model()
    task = digits_task(SOURCE_CLASSES, n_test_per_class=100, n_val_per_class=0, data=mnist)
    X, y = task.subset(task.test)
    acc = accuracy_on(model, X, y, ImageTransform(info["mean"], info["std"]))
    assert acc >= 0.98, f"shipped checkpoint scores {acc:.3f} on held-out digits 0-4"
    assert abs(acc - info["source_accuracy"]) < 1e-6  # the recorded number is what it measures

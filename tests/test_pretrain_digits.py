"""sftcourse.pretrain_digits: the pretraining script, and what it measures on the shipped checkpoint."""

from __future__ import annotations

import pytest

from sftcourse.digits import CHECKPOINT, SOURCE_CLASSES, digits_task, load_mnist, load_source_model
from sftcourse.images import ImageTransform
from sftcourse.pretrain_digits import accuracy_on, main
from sftcourse.resnet import ResNet


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


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

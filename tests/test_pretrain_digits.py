"""sftcourse.pretrain_digits: the pretraining script, and what it measures on the shipped checkpoint."""

from __future__ import annotations

import pytest
import torch

from sftcourse.digits import CHECKPOINT, SOURCE_CLASSES, digits_task, load_mnist, load_source_model
from sftcourse.images import ImageTransform
from sftcourse.pretrain_digits import accuracy_on, main, pretrain
from sftcourse.resnet import ResNet, resnet8


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


# ---------------------------------------------------------------------------
# Bad input: a clear error naming the argument


def _small():
    torch.manual_seed(0)
    return resnet8(1, 2).eval(), torch.zeros(4, 1, 28, 28, dtype=torch.uint8), ImageTransform([0.1], [0.3])


BAD_INPUTS = [
    ("labels out of range", lambda tmp: accuracy_on(*_small()[:2], torch.tensor([0, 1, 2, 1]), _small()[2]), ValueError,
     r"labels must lie in \[0, 1\] for the model's 2 outputs"),
    ("negative labels", lambda tmp: accuracy_on(*_small()[:2], torch.tensor([0, -1, 0, 1]), _small()[2]), ValueError,
     "labels must be class ids >= 0"),
    ("float labels", lambda tmp: accuracy_on(*_small()[:2], torch.tensor([0.0, 1.0, 0.5, 1.0]), _small()[2]),
     ValueError,
     "integer class ids"),
    ("label count", lambda tmp: accuracy_on(*_small()[:2], torch.tensor([0, 1]), _small()[2]), ValueError,
     r"labels must be \(n,\)"),
    ("transform None", lambda tmp: accuracy_on(*_small()[:2], torch.tensor([0, 1, 0, 1]), None), TypeError,
     "transform must be an ImageTransform"),
    ("batch_size 0", lambda tmp: accuracy_on(*_small()[:2], torch.tensor([0, 1, 0, 1]), _small()[2], batch_size=0),
     ValueError, "batch_size must be an int >= 1"),
    ("model not a module", lambda tmp: accuracy_on(None, _small()[1], torch.tensor([0, 1, 0, 1]), _small()[2]),
     TypeError,
     "model must be a torch.nn.Module"),
    ("pretrain epochs 0", lambda tmp: pretrain(tmp / "x.pt", epochs=0), ValueError, "epochs must be an int >= 1"),
    ("pretrain lr 0", lambda tmp: pretrain(tmp / "x.pt", lr=0.0), ValueError, "lr must be a positive"),
    ("pretrain lr NaN", lambda tmp: pretrain(tmp / "x.pt", lr=float("nan")), ValueError, "lr must be a positive"),
    ("pretrain batch_size 0", lambda tmp: pretrain(tmp / "x.pt", batch_size=0), ValueError, "batch_size"),
    ("pretrain train_limit 0", lambda tmp: pretrain(tmp / "x.pt", train_limit=0), ValueError, "train_limit"),
    ("pretrain max_shift -1", lambda tmp: pretrain(tmp / "x.pt", max_shift=-1), ValueError, "max_shift"),
    ("pretrain out is a folder", lambda tmp: pretrain(tmp, epochs=1), ValueError, "is a folder"),
    ("main bad option", lambda tmp: main(["--epochs", "zero"]), SystemExit, "2"),
]


@pytest.mark.parametrize("case, call, exc, match", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_a_clear_error(case, call, exc, match, tmp_path):
    with pytest.raises(exc, match=match):
        call(tmp_path)

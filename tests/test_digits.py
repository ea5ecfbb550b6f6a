"""sftcourse.digits: MNIST digit tasks and the shipped pretrained ResNet-8."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sftcourse.digits import CHECKPOINT, SOURCE_CLASSES, TARGET_CLASSES, digits_task, load_mnist, load_source_model
from sftcourse.resnet import ResNet


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


def test_digits_task_takes_any_sequence_of_digits(mnist):
    task = digits_task(range(3), n_test_per_class=10, n_val_per_class=5, data=mnist)
    assert task.class_names == ["0", "1", "2"] and len(task.test) == 30


def test_load_source_model_reads_the_shipped_checkpoint():
    model, info = load_source_model()
    assert isinstance(model, ResNet) and not model.training and info["classes"] == list(SOURCE_CLASSES)
    assert CHECKPOINT.is_file() and len(info["mean"]) == 1


# ---------------------------------------------------------------------------
# Bad input: a clear error naming the argument


def _junk(tmp):
    (tmp / "junk.pt").write_bytes(b"definitely not a checkpoint")
    return tmp / "junk.pt"


SMALL = (torch.zeros(40, 1, 28, 28, dtype=torch.uint8), torch.arange(40) % 10)
BAD_INPUTS = [
    ("repeated digits", lambda tmp: digits_task((3, 3), data=SMALL), ValueError, "distinct digits"),
    ("one digit", lambda tmp: digits_task((3,), data=SMALL), ValueError, "at least two"),
    ("digit out of range", lambda tmp: digits_task((3, 12), data=SMALL), ValueError, "0..9"),
    ("digits as a str", lambda tmp: digits_task("57", data=SMALL), TypeError, "classes must be a sequence of ints"),
    ("float digit", lambda tmp: digits_task((3, 4.5), data=SMALL), TypeError, "classes must be a sequence of ints"),
    ("n_test negative", lambda tmp: digits_task((0, 1), n_test_per_class=-1, data=SMALL), ValueError,
     "n_test_per_class must be an int >= 0"),
    ("n_val float", lambda tmp: digits_task((0, 1), n_val_per_class=1.5, data=SMALL), ValueError, "n_val_per_class"),
    ("too few images", lambda tmp: digits_task((0, 1), n_test_per_class=5, n_val_per_class=5, data=SMALL), ValueError,
     "too few"),
    ("data not a pair", lambda tmp: digits_task((0, 1), data=torch.zeros(4, 1, 28, 28)),
     ValueError, r"\(images, labels\)"),
    ("data length mismatch", lambda tmp: digits_task((0, 1), data=(SMALL[0], SMALL[1][:5])), ValueError,
     "images has 40 .* labels has 5"),
    ("data 3-D images", lambda tmp: digits_task((0, 1), data=(SMALL[0][:, 0], SMALL[1])),
     ValueError, r"\(n, 1, 28, 28\)"),
    ("source model missing", lambda tmp: load_source_model(tmp / "missing.pt"), ValueError, "does not exist"),
    ("source model junk", lambda tmp: load_source_model(_junk(tmp)), ValueError, "not an sftcourse checkpoint"),
    ("source model bad device", lambda tmp: load_source_model(device="gpu"), ValueError, "device 'gpu'"),
]


@pytest.mark.parametrize("case, call, exc, match", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_a_clear_error(case, call, exc, match, tmp_path):
    with pytest.raises(exc, match=match):
        call(tmp_path)

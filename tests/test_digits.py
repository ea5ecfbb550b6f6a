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


def test_load_source_model_reads_the_shipped_checkpoint():
    model, info = load_source_model()
    assert isinstance(model, ResNet) and not model.training and info["classes"] == list(SOURCE_CLASSES)
    assert CHECKPOINT.is_file() and len(info["mean"]) == 1

"""sftcourse.checks: each shared check accepts what it should and names the argument when it refuses."""

import numpy as np
import pytest
import torch

from sftcourse import checks as c


def test_good_values_pass_through_converted():
    assert c.check_positive_int(np.int64(3), "n") == 3 and isinstance(c.check_positive_int(np.int64(3), "n"), int)
    assert c.check_int(0, "n", minimum=0) == 0
    assert c.check_finite_float(1, "lr") == 1.0
    assert c.check_finite_float(np.float32(0.5), "lr", low=0, high=1) == 0.5
    assert c.check_finite_float(torch.tensor(2.0), "lr", low=0.0, low_open=True) == 2.0
    assert c.check_finite_float(np.array(0.0), "p", low=0.0, high=1.0, high_open=True) == 0.0
    c.check_callable(len, "f")
    c.check_label_tensor(torch.tensor([0, 2, -100]), 3, ignore_index=-100)
    assert c.check_labels([0.0, 1.0], 2).dtype == np.int64
    np.testing.assert_array_equal(c.check_binary_labels([0, 1], 2), [0.0, 1.0])


@pytest.mark.parametrize("call, exc, message", [
    (lambda: c.check_positive_int(0, "num_steps"), ValueError, r"num_steps must be an int >= 1, got 0"),
    (lambda: c.check_positive_int(-1, "num_steps"), ValueError, r"num_steps must be an int >= 1, got -1"),
    (lambda: c.check_positive_int(2.0, "num_steps"), TypeError, r"num_steps must be an int >= 1, got 2\.0 \(float\)"),
    (lambda: c.check_positive_int(True, "num_steps"), TypeError, r"got True \(bool\)"),
    (lambda: c.check_positive_int(None, "num_steps"), TypeError, r"got None"),
    (lambda: c.check_positive_int("3", "n", hint="pass 3"), TypeError, r"got '3' \(str\); pass 3"),
    (lambda: c.check_int(-1, "n", minimum=0), ValueError, r"n must be an int >= 0, got -1"),
    (lambda: c.check_finite_float(float("nan"), "lr"), ValueError, r"lr must be a finite number, got nan"),
    (lambda: c.check_finite_float(float("inf"), "lr", low=0), ValueError, r"lr must be a finite number >= 0, got inf"),
    (lambda: c.check_finite_float(-1e-3, "lr", low=0), ValueError, r"lr must be a finite number >= 0, got -0\.001"),
    (lambda: c.check_finite_float(0.0, "eps", low=0, low_open=True), ValueError, r"eps must be a finite number > 0"),
    (lambda: c.check_finite_float(1.0, "p", low=0, high=1, high_open=True), ValueError, r"p must be a finite number in \[0, 1\)"),
    (lambda: c.check_finite_float(2.0, "p", high=1), ValueError, r"p must be a finite number <= 1, got 2"),
    (lambda: c.check_finite_float(None, "lr"), TypeError, r"lr must be a finite number, got None"),
    (lambda: c.check_finite_float("0.1", "lr"), TypeError, r"got '0\.1' \(str\)"),
    (lambda: c.check_finite_float(True, "lr"), TypeError, r"got True \(bool\)"),
    (lambda: c.check_finite_float(np.zeros(2), "lr"), TypeError, r"lr must be a finite number, got an array of shape \(2,\)"),
    (lambda: c.check_finite_float(torch.tensor([True]), "lr"), TypeError, r"dtype bool"),
    (lambda: c.check_finite_float(torch.tensor(float("nan")), "lr"), ValueError, r"got nan"),
    (lambda: c.check_callable(None, "loss_fn", hint="pass nn.CrossEntropyLoss()"), TypeError,
     r"loss_fn must be callable, got None.*nn\.CrossEntropyLoss\(\)"),
    (lambda: c.check_label_tensor([0, 1], 2), TypeError, r"labels must be a torch tensor.*got list"),
    (lambda: c.check_label_tensor(torch.tensor([0.0, 1.0]), 2), ValueError, r"integer class indices, got dtype torch\.float32.*\.long\(\)"),
    (lambda: c.check_label_tensor(torch.tensor([True]), 2), ValueError, r"dtype torch\.bool"),
    (lambda: c.check_label_tensor(torch.zeros(0, dtype=torch.long), 2), ValueError, r"labels is empty"),
    (lambda: c.check_label_tensor(torch.tensor([0, 3]), 3, "y"), ValueError, r"y lie in \[0, 3\] but there are 3 classes"),
    (lambda: c.check_label_tensor(torch.tensor([-1, 0]), 3), ValueError, r"lie in \[-1, 0\]"),
    (lambda: c.check_label_tensor(torch.tensor([0, 1]), 3, n=3), ValueError, r"must have shape \(3,\)"),
    (lambda: c.check_label_tensor(torch.tensor([0, 1]), 0), ValueError, r"num_classes must be an int >= 1, got 0"),
    (lambda: c.as_float_array([[1.0], [np.nan]], "X"), ValueError, r"X contains 1 NaN"),
    (lambda: c.as_float_array(["a"], "X"), ValueError, r"X must be numeric"),
    (lambda: c.as_float_array(np.zeros((0, 2)), "X"), ValueError, r"X is empty"),
    (lambda: c.check_X(np.zeros(3)), ValueError, r"X must be 2-D, got shape \(3,\)"),
    (lambda: c.check_X(np.zeros((3, 0))), ValueError, r"X has no features"),
    (lambda: c.check_targets(np.zeros(2), 3), ValueError, r"y must have shape \(3,\)"),
    (lambda: c.check_labels([[0, 1]], 2), ValueError, r"1-D class indices.*argmax"),
    (lambda: c.check_labels([0.5], 2), ValueError, r"integer class indices, got dtype float64"),
    (lambda: c.check_labels([0, 2], 2), ValueError, r"labels in \[0, 2\] but num_classes=2"),
    (lambda: c.check_binary_labels([0, 2], 2), ValueError, r"only 0 and 1"),
])
def test_bad_values_are_named(call, exc, message):
    with pytest.raises(exc, match=message):
        call()

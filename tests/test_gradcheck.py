import numpy as np
import pytest
import torch

from sftcourse.gradcheck import check_grad, numerical_grad, rel_error


def test_numerical_grad_matches_closed_form_of_a_quadratic():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 4))
    A = A @ A.T
    x = rng.normal(size=4)
    f = lambda v: 0.5 * v @ A @ v  # noqa: E731
    assert rel_error(numerical_grad(f, x), A @ x) < 1e-8
    # x is restored after the in-place perturbations
    assert np.array_equal(x, x.copy())


def test_numerical_grad_matches_autograd_on_a_matrix():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(3, 2))
    X = rng.normal(size=(5, 3))
    f = lambda w: float(np.sum(np.tanh(X @ w) ** 2))  # noqa: E731
    Wt = torch.tensor(W, requires_grad=True)
    torch.sum(torch.tanh(torch.tensor(X) @ Wt) ** 2).backward()
    assert rel_error(numerical_grad(f, W), Wt.grad.numpy()) < 1e-7


def test_rel_error_and_shapes():
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.array([1.0]), np.array([1.0 + 1e-6])) == pytest.approx(5e-7, rel=1e-3)
    with pytest.raises(ValueError, match="shapes differ"):
        rel_error(np.zeros(2), np.zeros(3))


def test_numerical_grad_refuses_float32_and_ints():
    with pytest.raises(ValueError, match="float64"):
        numerical_grad(lambda v: float(v.sum()), np.zeros(2, dtype=np.float32))
    with pytest.raises(ValueError, match="float NumPy array"):
        numerical_grad(lambda v: float(v.sum()), np.zeros(2, dtype=np.int64))


def test_check_grad_passes_and_fails():
    x = np.array([1.0, -2.0, 0.5])
    f = lambda v: float(np.sum(v**3))  # noqa: E731
    assert check_grad(f, 3 * x**2, x) < 1e-7
    with pytest.raises(AssertionError, match="disagrees with finite differences"):
        check_grad(f, 2 * x**2, x)
    with pytest.raises(AssertionError, match="shape"):
        check_grad(f, (3 * x**2)[:, None], x)

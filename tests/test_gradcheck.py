"""sftcourse.gradcheck: the oracle must reject a wrong gradient before we trust it to accept a right one."""

import numpy as np
import pytest
import torch

from sftcourse.gradcheck import check_grad, numerical_grad, rel_error


def _quadratic(seed=0, d=4):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(d, d))
    A = A @ A.T
    x = rng.normal(size=d)
    return A, x, (lambda v: 0.5 * v @ A @ v)


def test_numerical_grad_rejects_wrong_gradients_and_accepts_the_closed_form():
    A, x, f = _quadratic()
    num = numerical_grad(f, x)
    # first the oracle must be able to fail: a gradient off by 1e-4 in one entry, a factor of 2, a transpose
    off_by_a_bit = A @ x
    off_by_a_bit[2] += 1e-4
    assert rel_error(num, off_by_a_bit) > 1e-6
    assert rel_error(num, 2 * A @ x) > 0.3
    B = A + np.triu(np.ones_like(A))  # not symmetric: B x != B^T x
    assert rel_error(numerical_grad(lambda v: v @ B @ v / 2, x), B @ x) > 1e-3
    # ... and only then accept the right one
    assert rel_error(num, A @ x) < 1e-8


def test_numerical_grad_restores_x_after_perturbing_it():
    _, x, f = _quadratic()
    x0 = x.copy()  # a copy taken BEFORE: comparing x with x.copy() afterwards could never fail
    numerical_grad(f, x)
    assert np.array_equal(x, x0)


def test_numerical_grad_restores_x_when_f_raises():
    x = np.array([1.0, 2.0, 3.0])
    x0 = x.copy()
    calls = []

    def f(v):
        calls.append(v.copy())
        if len(calls) == 4:
            raise RuntimeError("boom")
        return float(v.sum())

    with pytest.raises(RuntimeError, match="boom"):
        numerical_grad(f, x)
    assert np.array_equal(x, x0)
    assert not np.array_equal(calls[3], x0)  # the failing call did see a perturbed x


def test_numerical_grad_matches_autograd_on_a_matrix():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(3, 2))
    X = rng.normal(size=(5, 3))
    f = lambda w: float(np.sum(np.tanh(X @ w) ** 2))  # noqa: E731
    Wt = torch.tensor(W, requires_grad=True)
    torch.sum(torch.tanh(torch.tensor(X) @ Wt) ** 2).backward()
    num = numerical_grad(f, W)
    assert rel_error(num, Wt.grad.numpy() * 1.001) > 1e-4  # the oracle sees a 0.1% error
    assert rel_error(num, Wt.grad.numpy()) < 1e-7


def test_rel_error_values():
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.array([1.0]), np.array([1.0 + 1e-6])) == pytest.approx(5e-7, rel=1e-3)
    assert rel_error(np.array([1.0, -1.0]), np.array([1.0, 1.0])) == pytest.approx(1.0)  # sign error: maximal
    assert rel_error(np.zeros(0), np.zeros(0)) == 0.0
    assert np.isnan(rel_error(np.array([np.nan]), np.array([1.0])))
    assert np.isnan(rel_error(np.array([1.0]), np.array([np.inf])))


def test_check_grad_passes_the_right_gradient_and_fails_wrong_ones():
    x = np.array([1.0, -2.0, 0.5])
    f = lambda v: float(np.sum(v**3))  # noqa: E731
    with pytest.raises(AssertionError, match="disagrees with finite differences"):
        check_grad(f, 2 * x**2, x)
    with pytest.raises(AssertionError, match="disagrees with finite differences"):
        check_grad(f, 3 * x**2 + np.array([0.0, 0.0, 1e-5]), x)
    with pytest.raises(AssertionError, match="shape"):
        check_grad(f, (3 * x**2)[:, None], x)
    assert check_grad(f, 3 * x**2, x) < 1e-7


def test_check_grad_never_passes_a_nan():
    x = np.array([1.0, -2.0, 0.5])
    with pytest.raises(ValueError, match=r"f returned nan"):
        check_grad(lambda v: float("nan"), np.zeros(3), x)
    near_zero = np.array([1.0, 0.5e-5])
    with np.errstate(invalid="ignore", over="ignore"), pytest.raises(ValueError, match=r"f returned nan"):
        check_grad(lambda v: float(np.log(v[1])), np.array([0.0, 2e5]), near_zero)  # NaN on one side only
    with np.errstate(over="ignore"), pytest.raises(ValueError, match=r"f returned inf"):
        check_grad(lambda v: float(np.exp(800 * v[0])), np.zeros(3), x)
    with pytest.raises(AssertionError, match=r"1 NaN or infinite entry"):
        check_grad(lambda v: float(np.sum(v**3)), np.array([3.0, np.nan, 0.75]), x)


def _f(v):
    return float(np.sum(v**2))


@pytest.mark.parametrize("call, exc, message", [
    (lambda: numerical_grad(None, np.zeros(2)), TypeError, r"f must be callable, got None"),
    (lambda: numerical_grad(_f, [1.0, 2.0]), TypeError, r"x must be a float NumPy array.*got list.*np\.asarray"),
    (lambda: numerical_grad(_f, np.zeros(2, dtype=np.float32)), TypeError, r"dtype float32.*astype\(np\.float64\)"),
    (lambda: numerical_grad(_f, np.zeros(2, dtype=np.int64)), TypeError, r"x must be a float NumPy array.*int64"),
    (lambda: numerical_grad(_f, torch.zeros(2, dtype=torch.float64)), TypeError, r"got Tensor"),
    (lambda: numerical_grad(_f, np.zeros((0, 3))), ValueError, r"x is empty \(shape \(0, 3\)\)"),
    (lambda: numerical_grad(_f, np.array([1.0, np.nan])), ValueError, r"x contains NaN"),
    (lambda: numerical_grad(_f, np.array([np.inf])), ValueError, r"x contains NaN or infinite"),
    (lambda: numerical_grad(_f, np.zeros(2), h=0.0), ValueError, r"h must be a finite number > 0, got 0"),
    (lambda: numerical_grad(_f, np.zeros(2), h=-1e-5), ValueError, r"h must be a finite number > 0"),
    (lambda: numerical_grad(_f, np.zeros(2), h=float("nan")), ValueError, r"h must be a finite number > 0, got nan"),
    (lambda: numerical_grad(_f, np.zeros(2), h="1e-5"), TypeError, r"h must be a finite number > 0, got '1e-5'"),
    (lambda: numerical_grad(lambda v: v * 2, np.zeros(2)), ValueError, r"f must return one number.*shape \(2,\)"),
    (lambda: numerical_grad(lambda v: None, np.zeros(2)), ValueError, r"f must return one number"),
    (lambda: numerical_grad(lambda v: "1.0", np.zeros(2)), ValueError, r"f must return one number"),
    (lambda: rel_error(np.zeros(2), np.zeros(3)), ValueError, r"a has shape \(2,\), b has \(3,\)"),
    (lambda: rel_error(np.zeros(2), np.zeros((2, 1))), ValueError, r"shapes differ"),
    (lambda: rel_error(["a"], [1.0]), TypeError, r"a must be a numeric array"),
    (lambda: rel_error(np.zeros(2), None), TypeError, r"b must be a numeric array, got None"),
    (lambda: rel_error(np.zeros(2), np.zeros(2), eps=0.0), ValueError, r"eps must be a finite number > 0"),
    (lambda: rel_error(np.zeros(2), np.zeros(2), eps=float("nan")), ValueError, r"eps must be"),
    (lambda: check_grad(_f, np.zeros(2), np.zeros(2), tol=float("nan")), ValueError, r"tol must be a finite number > 0"),
    (lambda: check_grad(_f, np.zeros(2), np.zeros(2), tol=-1.0), ValueError, r"tol must be a finite number > 0"),
    (lambda: check_grad(_f, None, np.zeros(2)), TypeError, r"gradient must be a numeric array, got None"),
    (lambda: check_grad(_f, "grad", np.zeros(2)), TypeError, r"gradient must be a numeric array"),
    (lambda: check_grad(_f, np.zeros(2), np.zeros(2), h=0), ValueError, r"h must be a finite number > 0"),
])
def test_bad_inputs_get_a_clear_error(call, exc, message):
    with pytest.raises(exc, match=message):
        call()

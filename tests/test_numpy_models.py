"""sftcourse.numpy_models: every hand gradient against finite differences AND torch.autograd (float64).

torch is only a test oracle here; the library itself is pure NumPy.
"""

from __future__ import annotations

import warnings
from decimal import Decimal, localcontext

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sftcourse import numpy_models as nm
from sftcourse.gradcheck import check_grad, rel_error

TOL = 1e-7


def _t(a):
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=torch.float64, requires_grad=True)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def reg_data(rng):
    X = rng.normal(size=(12, 3))
    y = X @ np.array([1.5, -2.0, 0.5]) + 0.3 + 0.1 * rng.normal(size=12)
    return X, y


@pytest.fixture
def bin_data(rng):
    X = rng.normal(size=(10, 3))
    y = (rng.random(10) < 0.5).astype(float)
    return X, y


@pytest.fixture
def cls_data(rng):
    X = rng.normal(size=(9, 4))
    y = np.array([0, 1, 2, 0, 1, 2, 2, 1, 0])
    return X, y


# ---------------------------------------------------------------------------------------------
# Linear regression


def test_linear_mse_value_and_gradients_match_finite_differences_and_autograd(reg_data, rng):
    X, y = reg_data
    w, b = rng.normal(size=3), np.array(0.7)
    loss, dL_dw, dL_db = nm.linear_mse(X, y, w, b)
    assert loss == pytest.approx(np.mean((X @ w + 0.7 - y) ** 2), rel=1e-12)
    assert nm.mse_loss(X, y, w, b) == loss
    check_grad(lambda w_: nm.linear_mse(X, y, w_, b)[0], dL_dw, w, name="dL_dw", tol=TOL)
    check_grad(lambda b_: nm.linear_mse(X, y, w, b_)[0], np.array(dL_db), b, name="dL_db", tol=TOL)
    wt, bt = _t(w), _t(0.7)
    torch.mean((torch.tensor(X) @ wt + bt - torch.tensor(y)) ** 2).backward()
    assert rel_error(dL_dw, wt.grad.numpy()) < TOL
    assert rel_error(np.array(dL_db), bt.grad.numpy()) < TOL


def test_least_squares_matches_lstsq(reg_data):
    X, y = reg_data
    w, b = nm.least_squares(X, y)
    sol, *_ = np.linalg.lstsq(np.column_stack([X, np.ones(len(X))]), y, rcond=None)
    np.testing.assert_allclose(w, sol[:3], rtol=1e-10)
    assert b == pytest.approx(sol[3], rel=1e-10)
    # the gradient vanishes at the minimiser
    _, dL_dw, dL_db = nm.linear_mse(X, y, w, b)
    assert np.max(np.abs(dL_dw)) < 1e-12 and abs(dL_db) < 1e-12


def test_least_squares_rejects_collinear_columns(reg_data):
    X, y = reg_data
    with pytest.raises(ValueError, match="collinear"):
        nm.least_squares(np.column_stack([X, 2 * X[:, 0]]), y)


def test_mse_hessian_matches_autograd_and_bounds_the_learning_rate(reg_data):
    X, y = reg_data
    H = nm.mse_hessian(X)
    Xt, yt = torch.tensor(X), torch.tensor(y)

    def loss(theta):
        return torch.mean((Xt @ theta[:3] + theta[3] - yt) ** 2)

    H_torch = torch.autograd.functional.hessian(loss, torch.zeros(4, dtype=torch.float64)).numpy()
    assert rel_error(H, H_torch) < TOL
    lr_max = nm.max_stable_lr(X)
    assert lr_max == pytest.approx(2 / np.linalg.eigvalsh(H_torch).max(), rel=1e-10)

    def f(p):
        loss_, dw, db = nm.linear_mse(X, y, p["w"], p["b"])
        return loss_, {"w": dw, "b": np.asarray(db)}

    start = {"w": np.zeros(3), "b": np.asarray(0.0)}
    _, below = nm.gradient_descent(f, start, lr=0.95 * lr_max, num_steps=2000)
    _, above = nm.gradient_descent(f, start, lr=1.05 * lr_max, num_steps=2000)
    assert not below.diverged and below.loss[-1] < below.loss[0]
    assert above.diverged or above.loss[-1] > 1e6 * above.loss[0]


def test_standardize_centres_and_scales_and_reuses_training_statistics(rng):
    X = rng.normal(loc=[5.0, -3.0, 0.0], scale=[10.0, 0.1, 0.0], size=(50, 3))
    Xs, mean, std = nm.standardize(X)
    np.testing.assert_allclose(Xs.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Xs.std(axis=0)[:2], 1.0, rtol=1e-12)
    assert std[2] == 1.0  # a constant column is only centred
    X2 = rng.normal(size=(4, 3))
    Xs2, m2, s2 = nm.standardize(X2, mean, std)
    np.testing.assert_allclose(Xs2, (X2 - mean) / std)
    np.testing.assert_array_equal(m2, mean)
    # scaling shrinks the Hessian's condition number
    assert np.linalg.cond(nm.mse_hessian(Xs[:, :2])) < np.linalg.cond(nm.mse_hessian(X[:, :2])) / 100


# ---------------------------------------------------------------------------------------------
# Logistic regression


def test_sigmoid_and_log_sigmoid_are_stable_and_correct():
    z = np.array([-1000.0, -30.0, -1.0, 0.0, 2.0, 40.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = nm.sigmoid(z)
        ls = nm.log_sigmoid(z)
    np.testing.assert_allclose(s, torch.sigmoid(torch.tensor(z)).numpy(), rtol=1e-12, atol=0)
    np.testing.assert_allclose(ls, F.logsigmoid(torch.tensor(z)).numpy(), rtol=1e-12)
    assert ls[0] == pytest.approx(-1000.0) and np.isfinite(ls).all()


def test_bce_worked_examples_are_confident_mistakes():
    # y=0, p=0.9 and y=1, p=0.1 both cost -log(0.1) = 2.303 (not 0.0556)
    assert nm.binary_cross_entropy([0.0], [0.9]) == pytest.approx(np.log(10), rel=1e-12)
    assert nm.binary_cross_entropy([1.0], [0.1]) == pytest.approx(2.302585, rel=1e-6)
    assert nm.binary_cross_entropy([1.0, 0.0], [0.9, 0.1]) == pytest.approx(-np.log(0.9), rel=1e-12)
    p = np.array([0.2, 0.7, 0.99])
    y = np.array([0.0, 1.0, 0.0])
    expected = F.binary_cross_entropy(torch.tensor(p), torch.tensor(y)).item()
    assert nm.binary_cross_entropy(y, p) == pytest.approx(expected, rel=1e-12)
    assert nm.bce_with_logits(y, np.log(p / (1 - p))) == pytest.approx(expected, rel=1e-10)


def test_bce_with_logits_is_finite_for_huge_logits():
    y = np.array([0.0, 1.0, 1.0, 0.0])
    z = np.array([1000.0, -1000.0, 1000.0, -1000.0])
    loss = nm.bce_with_logits(y, z)
    assert loss == pytest.approx(500.0, rel=1e-12)  # two confident mistakes cost 1000 each, two hits cost 0
    torch_loss = F.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(y)).item()
    assert loss == pytest.approx(torch_loss, rel=1e-12)


def test_logistic_bce_gradients(bin_data, rng):
    X, y = bin_data
    w, b = rng.normal(size=3), np.array(-0.2)
    loss, dL_dw, dL_db = nm.logistic_bce(X, y, w, b)
    check_grad(lambda w_: nm.logistic_bce(X, y, w_, b)[0], dL_dw, w, name="dL_dw", tol=TOL)
    check_grad(lambda b_: nm.logistic_bce(X, y, w, b_)[0], np.array(dL_db), b, name="dL_db", tol=TOL)
    np.testing.assert_allclose(dL_dw, X.T @ (nm.logistic_predict_proba(X, w, b) - y) / len(y), rtol=1e-12)
    wt, bt = _t(w), _t(-0.2)
    torch_loss = F.binary_cross_entropy_with_logits(torch.tensor(X) @ wt + bt, torch.tensor(y))
    torch_loss.backward()
    assert loss == pytest.approx(torch_loss.item(), rel=1e-12)
    assert rel_error(dL_dw, wt.grad.numpy()) < TOL
    assert rel_error(np.array(dL_db), bt.grad.numpy()) < TOL


def test_logistic_mse_gradient_carries_the_sigmoid_derivative(bin_data, rng):
    X, y = bin_data
    w, b = rng.normal(size=3), np.array(0.4)
    loss, dL_dw, dL_db = nm.logistic_mse(X, y, w, b)
    check_grad(lambda w_: nm.logistic_mse(X, y, w_, b)[0], dL_dw, w, name="dL_dw", tol=TOL)
    check_grad(lambda b_: nm.logistic_mse(X, y, w, b_)[0], np.array(dL_db), b, name="dL_db", tol=TOL)
    p = nm.logistic_predict_proba(X, w, b)
    np.testing.assert_allclose(dL_dw, (2 / len(y)) * X.T @ ((p - y) * p * (1 - p)), rtol=1e-12)
    wt, bt = _t(w), _t(0.4)
    torch_loss = torch.mean((torch.sigmoid(torch.tensor(X) @ wt + bt) - torch.tensor(y)) ** 2)
    torch_loss.backward()
    assert loss == pytest.approx(torch_loss.item(), rel=1e-12)
    assert rel_error(dL_dw, wt.grad.numpy()) < TOL
    assert rel_error(np.array(dL_db), bt.grad.numpy()) < TOL


def test_mse_gradient_vanishes_on_a_confident_mistake_but_ce_does_not():
    X = np.array([[1.0]])
    y = np.array([1.0])
    w = np.array([-10.0])  # p = sigmoid(-10) ~ 4.5e-5: confidently wrong
    _, g_ce, _ = nm.logistic_bce(X, y, w, 0.0)
    _, g_mse, _ = nm.logistic_mse(X, y, w, 0.0)
    assert abs(g_ce[0]) > 0.99 and abs(g_mse[0]) < 1e-3


# ---------------------------------------------------------------------------------------------
# Softmax regression


def test_logsumexp_softmax_are_stable_for_logits_of_1000():
    Z = np.array([[1000.0, 999.0, -1000.0], [0.0, 0.0, 0.0], [-1000.0, -1000.0, -999.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lse = nm.logsumexp(Z)
        P = nm.softmax(Z)
    np.testing.assert_allclose(lse, torch.logsumexp(torch.tensor(Z), dim=1).numpy(), rtol=1e-12)
    np.testing.assert_allclose(P, torch.softmax(torch.tensor(Z), dim=1).numpy(), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(nm.log_softmax(Z), F.log_softmax(torch.tensor(Z), dim=1).numpy(), rtol=1e-12)
    loss, dZ = nm.softmax_cross_entropy(Z, np.array([2, 0, 2]))
    assert np.isfinite(loss) and np.all(np.isfinite(dZ))
    assert loss == pytest.approx(F.cross_entropy(torch.tensor(Z), torch.tensor([2, 0, 2])).item(), rel=1e-12)


def test_softmax_cross_entropy_gradient(cls_data, rng):
    _, y = cls_data
    Z = rng.normal(size=(9, 3))  # moderate logits: no near-zero entries, where rel_error measures roundoff
    loss, dL_dZ = nm.softmax_cross_entropy(Z, y)
    check_grad(lambda Z_: nm.softmax_cross_entropy(Z_, y)[0], dL_dZ, Z, name="dL_dZ", tol=TOL)
    Zt = _t(Z)
    F.cross_entropy(Zt, torch.tensor(y)).backward()
    assert rel_error(dL_dZ, Zt.grad.numpy()) < TOL
    np.testing.assert_allclose(dL_dZ, (nm.softmax(Z) - nm.one_hot(y, 3)) / 9, rtol=1e-12)


def test_softmax_regression_gradients(cls_data, rng):
    X, y = cls_data
    W, b = rng.normal(size=(4, 3)), rng.normal(size=3)
    loss, dL_dW, dL_db = nm.softmax_regression(X, y, W, b)
    check_grad(lambda W_: nm.softmax_regression(X, y, W_, b)[0], dL_dW, W, name="dL_dW", tol=TOL)
    check_grad(lambda b_: nm.softmax_regression(X, y, W, b_)[0], dL_db, b, name="dL_db", tol=TOL)
    Wt, bt = _t(W), _t(b)
    torch_loss = F.cross_entropy(torch.tensor(X) @ Wt + bt, torch.tensor(y))
    torch_loss.backward()
    assert loss == pytest.approx(torch_loss.item(), rel=1e-12)
    assert rel_error(dL_dW, Wt.grad.numpy()) < TOL
    assert rel_error(dL_db, bt.grad.numpy()) < TOL


def test_one_hot():
    np.testing.assert_array_equal(nm.one_hot([2, 0], 3), [[0, 0, 1], [1, 0, 0]])


# ---------------------------------------------------------------------------------------------
# Two-layer MLP


@pytest.fixture
def mlp_setup(rng):
    X = rng.normal(size=(6, 5))
    y = np.array([0, 1, 2, 1, 0, 2])
    params = nm.init_mlp(5, 7, 3, rng)
    params["b1"] = rng.normal(size=7) * 0.1  # non-zero biases, so their gradients are tested too
    params["b2"] = rng.normal(size=3) * 0.1
    return X, y, params


@pytest.mark.parametrize("l2, use_mask", [(0.0, False), (0.3, False), (0.0, True), (0.1, True)])
def test_mlp_gradients_match_finite_differences_and_autograd(mlp_setup, l2, use_mask):
    X, y, params = mlp_setup
    mask = nm.dropout_mask((6, 7), 0.5, np.random.default_rng(1)) if use_mask else None
    loss, grads = nm.mlp_loss_and_grads(X, y, params, l2=l2, mask=mask)
    assert set(grads) == set(nm.MLP_KEYS)
    for key in nm.MLP_KEYS:
        assert grads[key].shape == params[key].shape

        def f(_, key=key):
            return nm.mlp_loss_and_grads(X, y, params, l2=l2, mask=mask)[0]

        check_grad(f, grads[key], params[key], name=f"d{key}", tol=TOL)
    tp = {k: _t(v) for k, v in params.items()}
    h = torch.relu(torch.tensor(X) @ tp["W1"] + tp["b1"])
    if mask is not None:
        h = h * torch.tensor(mask)
    logits = h @ tp["W2"] + tp["b2"]
    torch_loss = F.cross_entropy(logits, torch.tensor(y)) + 0.5 * l2 * ((tp["W1"] ** 2).sum() + (tp["W2"] ** 2).sum())
    torch_loss.backward()
    assert loss == pytest.approx(torch_loss.item(), rel=1e-12)
    for key in nm.MLP_KEYS:
        assert rel_error(grads[key], tp[key].grad.numpy()) < TOL, key


def test_dropout_mask_is_inverted_and_reproducible():
    m = nm.dropout_mask((200, 100), 0.25, np.random.default_rng(3))
    assert set(np.unique(m)) == {0.0, 1 / 0.75}
    assert abs((m == 0).mean() - 0.25) < 0.02 and abs(m.mean() - 1.0) < 0.03
    np.testing.assert_array_equal(m, nm.dropout_mask((200, 100), 0.25, np.random.default_rng(3)))
    assert np.all(nm.dropout_mask((3, 4), 0.0, np.random.default_rng(0)) == 1.0)


def test_mlp_forward_dropout_modes(mlp_setup):
    X, _, params = mlp_setup
    eval_logits, cache = nm.mlp_forward(X, params)
    assert "mask" not in cache and eval_logits.shape == (6, 3)
    a, cache_a = nm.mlp_forward(X, params, dropout=0.5, rng=np.random.default_rng(7))
    b, _ = nm.mlp_forward(X, params, dropout=0.5, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert (cache_a["mask"] == 0).any() and not np.allclose(a, eval_logits)
    # an all-ones mask is the same as no dropout
    ones, _ = nm.mlp_forward(X, params, mask=np.ones((6, 7)))
    np.testing.assert_allclose(ones, eval_logits)
    np.testing.assert_array_equal(nm.mlp_predict(X, params), eval_logits.argmax(axis=1))


def test_mlp_learns_a_separable_problem(rng):
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)  # XOR-like: not linearly separable
    params = nm.init_mlp(2, 16, 2, rng)
    params, hist = nm.gradient_descent(lambda p: nm.mlp_loss_and_grads(X, y, p), params, lr=0.5, num_steps=500)
    assert hist.loss[-1] < 0.5 * hist.loss[0]
    assert (nm.mlp_predict(X, params) == y).mean() > 0.9


# ---------------------------------------------------------------------------------------------
# Gradient descent


def _linreg_step(X, y):
    def f(p):
        loss, dw, db = nm.linear_mse(X, y, p["w"], p["b"])
        return loss, {"w": dw, "b": np.asarray(db)}
    return f


def test_gradient_descent_reaches_the_closed_form(reg_data):
    X, y = reg_data
    start = {"w": np.zeros(3), "b": np.asarray(0.0)}
    final, hist = nm.gradient_descent(_linreg_step(X, y), start, lr=0.5 * nm.max_stable_lr(X), num_steps=3000)
    w_star, b_star = nm.least_squares(X, y)
    np.testing.assert_allclose(final["w"], w_star, atol=1e-8)
    assert float(final["b"]) == pytest.approx(b_star, abs=1e-8)
    assert np.all(start["w"] == 0), "the input params are not modified"
    assert len(hist.loss) == len(hist.params) == 3001 and not hist.diverged
    assert hist.path("w").shape == (3001, 3)
    assert np.all(np.diff(hist.loss) <= 1e-12), "below the threshold the loss never increases"


def test_gradient_descent_stops_on_divergence_and_on_tol(reg_data):
    X, y = reg_data
    start = {"w": np.zeros(3), "b": np.asarray(0.0)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, hist = nm.gradient_descent(_linreg_step(X, y), start, lr=10 * nm.max_stable_lr(X), num_steps=10_000)
    assert hist.diverged and len(hist.loss) < 10_001
    _, early = nm.gradient_descent(_linreg_step(X, y), start, lr=0.5 * nm.max_stable_lr(X), num_steps=10_000,
                                   tol=1e-6)
    assert len(early.loss) < 10_001 and not early.diverged


# ---------------------------------------------------------------------------------------------
# Bad input: ValueError naming the argument and the expected shape


@pytest.fixture
def good():
    X = np.ones((4, 2)) * np.arange(4)[:, None]
    return X, np.arange(4.0), np.zeros(2), 0.0


@pytest.mark.parametrize("mutate, match", [
    (lambda X, y, w, b: (X, y[:3], w, b), r"y must have shape \(4,\)"),
    (lambda X, y, w, b: (X, y, np.zeros(3), b), r"w must have shape \(2,\)"),
    (lambda X, y, w, b: (X[0], y, w, b), "X must be 2-D"),
    (lambda X, y, w, b: (np.where(X == 0, np.nan, X), y, w, b), "X contains .* NaN"),
    (lambda X, y, w, b: (X, np.full(4, np.inf), w, b), "y contains .* NaN or infinite"),
    (lambda X, y, w, b: (np.zeros((0, 2)), y[:0], w, b), "X is empty"),
    (lambda X, y, w, b: (X, y, w, np.zeros(2)), "b must be a single number"),
    (lambda X, y, w, b: (X, y, w, np.nan), "b is nan"),
    (lambda X, y, w, b: (X, y, w, "zero"), "b must be a single number"),
])
def test_linear_mse_bad_input(good, mutate, match):
    with pytest.raises(ValueError, match=match):
        nm.linear_mse(*mutate(*good))


def test_standardize_bad_input():
    X = np.ones((3, 2))
    with pytest.raises(ValueError, match="both mean and std"):
        nm.standardize(X, mean=np.zeros(2))
    with pytest.raises(ValueError, match=r"std must have shape \(2,\)"):
        nm.standardize(X, np.zeros(2), np.ones(3))
    with pytest.raises(ValueError, match="positive"):
        nm.standardize(X, np.zeros(2), np.zeros(2))


@pytest.mark.parametrize("y, p, match", [
    ([0.0, 2.0], [0.5, 0.5], "only 0 and 1"),
    ([0.0, 1.0], [0.0, 0.5], "strictly between 0 and 1"),
    ([0.0, 1.0], [0.5, 1.0], "strictly between 0 and 1"),
    ([0.0], [0.5, 0.5], r"y must have shape \(2,\)"),
    ([0.0, 1.0], [[0.5, 0.5]], "p must be 1-D"),
])
def test_binary_cross_entropy_bad_input(y, p, match):
    with pytest.raises(ValueError, match=match):
        nm.binary_cross_entropy(y, p)


def test_logistic_bad_input(bin_data):
    X, y = bin_data
    with pytest.raises(ValueError, match="only 0 and 1"):
        nm.logistic_bce(X, y * 2 - 1, np.zeros(3), 0.0)
    with pytest.raises(ValueError, match=r"w must have shape \(3,\)"):
        nm.logistic_mse(X, y, np.zeros(2), 0.0)
    with pytest.raises(ValueError, match="z contains"):
        nm.bce_with_logits([1.0], [np.nan])


@pytest.mark.parametrize("Z, y, match", [
    (np.zeros((3, 2)), [0, 1, 2], r"labels must lie in \[0, 1\]"),
    (np.zeros((3, 2)), [0, -1, 1], r"labels in \[-1, 1\]"),
    (np.zeros((3, 2)), [0, 1], r"y must have shape \(3,\)"),
    (np.zeros((3, 2)), [0.5, 1, 0], "integer class indices"),
    (np.zeros((3, 2)), np.eye(3, 2), "one-hot"),
    (np.zeros(3), [0, 1, 0], "Z must be 2-D"),
    (np.full((3, 2), np.inf), [0, 1, 0], "Z contains"),
])
def test_softmax_cross_entropy_bad_input(Z, y, match):
    with pytest.raises(ValueError, match=match):
        nm.softmax_cross_entropy(Z, y)


def test_softmax_regression_bad_input(cls_data):
    X, y = cls_data
    with pytest.raises(ValueError, match=r"W must have shape \(4, k\)"):
        nm.softmax_regression(X, y, np.zeros((3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match=r"b must have shape \(3,\)"):
        nm.softmax_regression(X, y, np.zeros((4, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="num_classes=2"):
        nm.softmax_regression(X, y, np.zeros((4, 2)), np.zeros(2))


def test_mlp_bad_input(mlp_setup):
    X, y, params = mlp_setup
    with pytest.raises(ValueError, match=r"params\['W1'\] must have shape \(4, h\)"):
        nm.mlp_forward(X[:, :4], params)
    with pytest.raises(ValueError, match="keys"):
        nm.mlp_forward(X, {"W1": params["W1"]})
    bad = dict(params, W2=np.zeros((6, 3)))
    with pytest.raises(ValueError, match=r"params\['W2'\] must have shape \(7, k\)"):
        nm.mlp_forward(X, bad)
    with pytest.raises(ValueError, match=r"mask must have the hidden layer's shape \(6, 7\)"):
        nm.mlp_forward(X, params, mask=np.ones((6, 6)))
    with pytest.raises(ValueError, match="mask must be >= 0"):
        nm.mlp_forward(X, params, mask=-np.ones((6, 7)))
    with pytest.raises(ValueError, match="needs rng"):
        nm.mlp_forward(X, params, dropout=0.5)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        nm.mlp_forward(X, params, dropout=1.0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        nm.mlp_forward(X, params, dropout=-0.1)
    with pytest.raises(ValueError, match="l2 must be"):
        nm.mlp_loss_and_grads(X, y, params, l2=-1.0)
    with pytest.raises(ValueError, match="num_classes=3"):
        nm.mlp_loss_and_grads(X, np.array([0, 1, 2, 3, 0, 1]), params)
    _, cache = nm.mlp_forward(X, params)
    with pytest.raises(ValueError, match=r"dL_dlogits must have the logits' shape \(6, 3\)"):
        nm.mlp_backward(np.zeros((6, 2)), cache, params)
    with pytest.raises(ValueError, match="d_hidden must be an int >= 1, got 0"):
        nm.init_mlp(2, 0, 2, np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng must be a np.random.Generator"):
        nm.init_mlp(2, 3, 2, 0)


@pytest.mark.parametrize("kwargs, match", [
    ({"lr": 0.0, "num_steps": 3}, "lr must be"),
    ({"lr": float("nan"), "num_steps": 3}, "lr must be"),
    ({"lr": 0.1, "num_steps": -1}, "num_steps"),
])
def test_gradient_descent_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nm.gradient_descent(lambda p: (0.0, p), {"w": np.zeros(1)}, **kwargs)


def test_gradient_descent_bad_params_and_grads():
    with pytest.raises(ValueError, match="params is an empty dict"):
        nm.gradient_descent(lambda p: (0.0, p), {}, lr=0.1, num_steps=1)
    with pytest.raises(ValueError, match="returned grads"):
        nm.gradient_descent(lambda p: (0.0, {"v": np.zeros(1)}), {"w": np.zeros(1)}, lr=0.1, num_steps=1)


# ---------------------------------------------------------------------------------------------
# Numerics: losses keep full relative precision where the exact value is a normal float


def _softplus_exact(s: float) -> Decimal:
    """log(1 + e^s) in 400-digit decimal arithmetic: an oracle independent of NumPy's log1p."""
    with localcontext() as ctx:
        ctx.prec = 400
        return (Decimal(1) + Decimal(s).exp()).ln()


def _rel(got: float, exact: Decimal) -> float:
    return float(abs(Decimal(got) - exact) / exact)


_ZS = np.concatenate([-np.logspace(-3, 3, 61), [0.0], np.logspace(-3, 3, 61)])


@pytest.mark.parametrize("label", [0.0, 1.0])
def test_bce_with_logits_keeps_full_relative_precision_up_to_1e3(label):
    worst = 0.0
    checked = 0
    for z in _ZS:
        exact = _softplus_exact((1 - 2 * label) * z)  # -[y log s(z) + (1-y) log(1-s(z))] for y in {0, 1}
        if float(exact) < np.finfo(np.float64).tiny:  # not a nonzero normal float: nothing to compare
            continue
        got_bce = nm.bce_with_logits(np.array([label]), np.array([z]))
        got_lr = nm.logistic_bce(np.array([[1.0]]), np.array([label]), np.array([z]), 0.0)[0]
        worst = max(worst, _rel(got_bce, exact), _rel(got_lr, exact))
        checked += 1
    assert checked >= 110
    assert worst <= 1e-12, f"relative error {worst:.2e}"


def test_the_naive_bce_form_would_fail_that_test():
    """The oracle can fail: log(1 + e^z) - z at y = 1, z = 40 keeps no correct digit."""
    z = 40.0
    naive = float(np.logaddexp(0.0, z) - z)
    assert _rel(naive, _softplus_exact(-z)) > 0.5
    assert _rel(nm.bce_with_logits([1.0], [z]), _softplus_exact(-z)) <= 1e-12


def test_softmax_cross_entropy_of_a_confident_right_answer_is_accurate():
    for d in (1.0, 40.0, 300.0, 700.0):
        Z = np.array([[0.0, -d, -d - 1.0]])
        loss, dL_dZ = nm.softmax_cross_entropy(Z, np.array([0]))
        with localcontext() as ctx:
            ctx.prec = 400
            others = (-Decimal(d)).exp() + (-Decimal(d) - 1).exp()
            exact = (Decimal(1) + others).ln()
            grad_y = -others / (Decimal(1) + others)
        assert _rel(loss, exact) <= 1e-12
        assert _rel(-dL_dZ[0, 0], -grad_y) <= 1e-12
        np.testing.assert_allclose(nm.logsumexp(Z), [0.0 + float(exact)], rtol=1e-15, atol=0)


def test_logistic_mse_of_a_confident_right_answer_is_accurate():
    for z in (1.0, 40.0, 300.0):
        loss, dL_dw, _ = nm.logistic_mse(np.array([[1.0]]), np.array([1.0]), np.array([z]), 0.0)
        with localcontext() as ctx:
            ctx.prec = 400
            q = Decimal(1) / (Decimal(1) + Decimal(z).exp())  # 1 - sigmoid(z)
            exact_loss = q * q
            exact_grad = -2 * q * q * (1 - q)  # 2 (p - y) p (1 - p) x, with x = 1
        assert _rel(loss, exact_loss) <= 1e-12
        assert _rel(-dL_dw[0], -exact_grad) <= 1e-12


def test_logsumexp_edge_rows():
    np.testing.assert_array_equal(nm.logsumexp(np.array([[-np.inf, -np.inf], [0.0, np.inf]])), [-np.inf, np.inf])
    assert nm.logsumexp(np.array([1.0, 1.0])) == pytest.approx(1.0 + np.log(2.0), rel=1e-15)  # a tie
    np.testing.assert_allclose(nm.logsumexp(np.array([[1.0, 2.0], [3.0, 0.0]]), axis=0),
                               np.log(np.exp([1.0, 2.0]) + np.exp([3.0, 0.0])), rtol=1e-15)


# ---------------------------------------------------------------------------------------------
# Bad input: every public name, a clear error that names the argument


def _gd(grads, params=None, **kw):
    params = {"w": np.zeros(3), "b": np.zeros(())} if params is None else params
    return nm.gradient_descent(lambda p: (1.0, grads), params, **{"lr": 0.1, "num_steps": 2, **kw})


_X = np.arange(6.0).reshape(3, 2)
_Y = np.array([0.0, 1.0, 1.0])
_W = np.zeros(2)
_P = nm.init_mlp(2, 3, 2, np.random.default_rng(0))


@pytest.mark.parametrize("call, exc, message", [
    # the silent case: a gradient of the wrong shape was broadcast into the parameter
    (lambda: _gd({"w": np.ones((3, 1)), "b": 0.0}), ValueError, r"grads\['w'\] of shape \(3, 1\) but params\['w'\] has shape \(3,\)"),
    (lambda: _gd({"w": np.ones(1), "b": 0.0}), ValueError, r"grads\['w'\] of shape \(1,\)"),
    (lambda: _gd({"w": np.ones(3), "b": np.ones(3)}), ValueError, r"grads\['b'\] of shape \(3,\) but params\['b'\] has shape \(\)"),
    (lambda: nm.gradient_descent(lambda p: p, {"w": np.zeros(1)}, lr=0.1, num_steps=1), TypeError, r"must return \(loss, grads\)"),
    (lambda: nm.gradient_descent(lambda p: (np.ones(2), p), {"w": np.zeros(1)}, lr=0.1, num_steps=1), TypeError, r"loss of shape \(2,\)"),
    (lambda: nm.gradient_descent(None, {"w": np.zeros(1)}, lr=0.1, num_steps=1), TypeError, r"loss_and_grad must be callable"),
    (lambda: nm.gradient_descent(lambda p: (0.0, p), [np.zeros(1)], lr=0.1, num_steps=1), TypeError, r"params must be a dict.*got list"),
    (lambda: nm.gradient_descent(lambda p: (0.0, p), {"w": [np.nan]}, lr=0.1, num_steps=1), ValueError, r"params\['w'\] contains 1 NaN"),
    (lambda: _gd({}, lr="0.1"), TypeError, r"lr must be a finite number > 0, got '0\.1'"),
    (lambda: _gd({}, lr=-0.1), ValueError, r"lr must be a finite number > 0"),
    (lambda: _gd({}, num_steps=2.5), TypeError, r"num_steps must be an int >= 0, got 2\.5"),
    (lambda: _gd({}, tol=float("nan")), ValueError, r"tol must be a finite number > 0"),
    (lambda: nm.GDHistory().path("w"), ValueError, r"history is empty"),
    (lambda: _gd({"w": np.ones(3), "b": 0.0})[1].path("v"), ValueError, r"no parameter named 'v'.*\['b', 'w'\]"),
    # data and parameters
    (lambda: nm.linear_predict(_X, np.zeros(3), 0.0), ValueError, r"w must have shape \(2,\)"),
    (lambda: nm.linear_predict(_X, _W, np.zeros(2)), ValueError, r"b must be a single number"),
    (lambda: nm.linear_predict(_X, _W, None), TypeError, r"b must be a single number \(the bias\), got None"),
    (lambda: nm.linear_predict(_X, _W, np.inf), ValueError, r"b is inf"),
    (lambda: nm.linear_predict(_X[:, 0], _W, 0.0), ValueError, r"X must be 2-D, got shape \(3,\)"),
    (lambda: nm.mse_loss(_X, _Y[:2], _W, 0.0), ValueError, r"y must have shape \(3,\)"),
    (lambda: nm.linear_mse(np.zeros((0, 2)), np.zeros(0), _W, 0.0), ValueError, r"X is empty"),
    (lambda: nm.linear_mse(_X, [1.0, np.nan, 0.0], _W, 0.0), ValueError, r"y contains 1 NaN"),
    (lambda: nm.least_squares(_X, None), ValueError, r"y must be 1-D"),
    (lambda: nm.least_squares(np.ones((3, 2)), _Y), ValueError, r"centred rank 0 < d=2"),
    (lambda: nm.mse_hessian([[1.0, "a"]]), ValueError, r"X must be numeric"),
    (lambda: nm.max_stable_lr(np.zeros((2, 0))), ValueError, r"X has no features"),
    (lambda: nm.standardize(_X, mean=np.zeros(2)), ValueError, r"pass both mean and std"),
    (lambda: nm.standardize(_X, mean=np.zeros(2), std=np.zeros(2)), ValueError, r"std must be positive"),
    (lambda: nm.standardize(_X, mean=np.zeros(3), std=np.ones(3)), ValueError, r"mean must have shape \(2,\)"),
    (lambda: nm.sigmoid(None), TypeError, r"z must be a number or an array of numbers, got None"),
    (lambda: nm.sigmoid("a"), TypeError, r"z must be a number or an array of numbers, got str"),
    (lambda: nm.sigmoid([0.0, np.nan]), ValueError, r"z contains NaN"),
    (lambda: nm.log_sigmoid(None), TypeError, r"z must be a number"),
    (lambda: nm.binary_cross_entropy(_Y, [0.5, 1.0, 0.5]), ValueError, r"p must lie strictly between 0 and 1"),
    (lambda: nm.binary_cross_entropy([0, 2, 1], [0.5, 0.5, 0.5]), ValueError, r"y must contain only 0 and 1"),
    (lambda: nm.binary_cross_entropy(_Y, [0.5, 0.5]), ValueError, r"y must have shape \(2,\)"),
    (lambda: nm.bce_with_logits(_Y, [0.0, np.inf, 0.0]), ValueError, r"z contains 1 NaN or infinite"),
    (lambda: nm.bce_with_logits([0.5, 1.0, 0.0], np.zeros(3)), ValueError, r"only 0 and 1"),
    (lambda: nm.bce_with_logits(_Y, np.zeros((3, 1))), ValueError, r"z must be 1-D, got shape \(3, 1\)"),
    (lambda: nm.logistic_predict_proba(_X, np.zeros(3), 0.0), ValueError, r"w must have shape \(2,\)"),
    (lambda: nm.logistic_bce(_X, [0.0, 1.0, -1.0], _W, 0.0), ValueError, r"only 0 and 1"),
    (lambda: nm.logistic_mse(_X, _Y[:1], _W, 0.0), ValueError, r"y must have shape \(3,\)"),
    (lambda: nm.logsumexp(np.zeros((2, 0))), ValueError, r"Z has no entries along axis -1"),
    (lambda: nm.logsumexp(np.zeros(2), axis=1), ValueError, r"axis must be an int in \[-1, 0\]"),
    (lambda: nm.logsumexp(3.0), ValueError, r"Z is a single number"),
    (lambda: nm.log_softmax([[0.0, np.nan]]), ValueError, r"Z contains NaN"),
    (lambda: nm.softmax(None), TypeError, r"Z must be a number or an array"),
    (lambda: nm.one_hot([0, 1], 1.5), TypeError, r"num_classes must be an int >= 1, got 1\.5"),
    (lambda: nm.one_hot([0, 2], 2), ValueError, r"labels in \[0, 2\] but num_classes=2"),
    (lambda: nm.one_hot([[0, 1]], 2), ValueError, r"1-D class indices.*argmax"),
    (lambda: nm.softmax_cross_entropy(np.zeros((2, 3)), [0, 3]), ValueError, r"labels in \[0, 3\] but num_classes=3"),
    (lambda: nm.softmax_cross_entropy(np.zeros((2, 3)), [0, -1]), ValueError, r"labels in \[-1, 0\]"),
    (lambda: nm.softmax_cross_entropy(np.zeros((2, 3)), [0.5, 1]), ValueError, r"integer class indices"),
    (lambda: nm.softmax_cross_entropy(np.zeros(3), [0]), ValueError, r"Z must be 2-D"),
    (lambda: nm.softmax_regression(_X, [0, 1, 1], np.zeros((3, 2)), np.zeros(2)), ValueError, r"W must have shape \(2, k\)"),
    (lambda: nm.softmax_regression(_X, [0, 1, 1], np.zeros((2, 2)), np.zeros(3)), ValueError, r"b must have shape \(2,\)"),
    # the MLP
    (lambda: nm.init_mlp(True, 3, 2, np.random.default_rng(0)), TypeError, r"d_in must be an int >= 1, got True"),
    (lambda: nm.init_mlp(2, 3, 2, None), TypeError, r"rng must be a np\.random\.Generator, got NoneType"),
    (lambda: nm.dropout_mask((2, 3), float("nan"), np.random.default_rng(0)), ValueError, r"p must be a finite number in \[0, 1\)"),
    (lambda: nm.dropout_mask((2, 3), "0.5", np.random.default_rng(0)), TypeError, r"p must be a finite number"),
    (lambda: nm.dropout_mask((2, -3), 0.5, np.random.default_rng(0)), TypeError, r"shape must be a tuple of ints"),
    (lambda: nm.dropout_mask((2, 3), 0.5, 0), TypeError, r"rng must be a np\.random\.Generator"),
    (lambda: nm.mlp_forward(_X, _P, dropout=float("nan"), rng=np.random.default_rng(0)), ValueError, r"dropout must be a finite number in \[0, 1\)"),
    (lambda: nm.mlp_forward(_X, _P, dropout=0.5, mask=np.ones((3, 3))), ValueError, r"either mask= or dropout=0\.5"),
    (lambda: nm.mlp_forward(_X, _P, dropout=0.5, rng=1), TypeError, r"rng must be a np\.random\.Generator"),
    (lambda: nm.mlp_forward(_X, None), TypeError, r"params must be a dict with keys"),
    (lambda: nm.mlp_forward(_X, dict(_P, b1=np.zeros(2))), ValueError, r"params\['b1'\] must have shape \(3,\)"),
    (lambda: nm.mlp_backward(np.zeros((3, 2)), {"X": _X}, _P), ValueError, r"cache must be the dict that mlp_forward returned"),
    (lambda: nm.mlp_backward(np.zeros((3, 2)), None, _P), ValueError, r"cache must be the dict.*got NoneType"),
    (lambda: nm.mlp_backward(np.full((3, 2), np.nan), nm.mlp_forward(_X, _P)[1], _P), ValueError, r"dL_dlogits contains 6 NaN"),
    (lambda: nm.mlp_backward(np.zeros((3, 2)), nm.mlp_forward(_X, _P)[1], _P, l2=float("nan")), ValueError, r"l2 must be a finite number >= 0, got nan"),
    (lambda: nm.l2_penalty({"W1": np.zeros(2)}, 0.1), ValueError, r"params lacks \['b1', 'W2', 'b2'\]"),
    (lambda: nm.l2_penalty(_P, -0.1), ValueError, r"l2 must be a finite number >= 0"),
    (lambda: nm.mlp_loss_and_grads(_X, [0, 1, 2], _P), ValueError, r"labels in \[0, 2\] but num_classes=2"),
    (lambda: nm.mlp_loss_and_grads(_X, [0, 1], _P), ValueError, r"y must have shape \(3,\)"),
    (lambda: nm.mlp_predict(_X[:, :1], _P), ValueError, r"params\['W1'\] must have shape \(1, h\)"),
])
def test_bad_input_is_named(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_gradient_descent_with_a_wrongly_shaped_gradient_would_have_run_silently():
    """Before the check, lr * g broadcast a (3, 1) gradient into a (3, 3) 'parameter'; now it is refused first."""
    w = np.zeros(3)
    g = np.ones((3, 1))
    assert (w - 0.1 * g).shape == (3, 3)  # what NumPy alone does without a word
    with pytest.raises(ValueError, match="a gradient has the shape of its parameter"):
        nm.gradient_descent(lambda p: (float(np.sum(p["w"] ** 2)), {"w": g}), {"w": w}, lr=0.1, num_steps=1)

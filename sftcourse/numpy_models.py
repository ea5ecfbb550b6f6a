"""Part I models in NumPy: losses with hand-derived, vectorised gradients (no loops over samples).

Conventions (shapes in comments and docstrings):

- ``X: (n, d)`` inputs, ``y: (n,)`` targets; real values for regression, {0, 1} for
  logistic regression, integer class indices in ``[0, k)`` for softmax regression.
- Every loss is a MEAN over the n samples, so gradients carry a ``1/n``.
- Parameters of a model live in a ``dict[str, np.ndarray]`` (``Params``) so that one
  gradient-descent loop (:func:`gradient_descent`) serves every model.
- Bad input raises ``ValueError`` naming the argument and the shape expected.

Chapter 01 builds the linear-regression functions cell by cell, chapter 02 the
logistic and softmax ones, chapter 03 the two-layer MLP; each then says "this is now
``sftcourse.numpy_models``" and later chapters import them from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sftcourse.checks import (
    as_float_array,
    check_binary_labels,
    check_callable,
    check_finite_float,
    check_int,
    check_labels,
    check_positive_int,
    check_targets,
    check_X,
)

Params = dict[str, np.ndarray]


# ---------------------------------------------------------------------------------------------
# Small checks for parameters (data checks live in sftcourse.checks)


def _check_numeric(a: object, name: str) -> np.ndarray:
    """Any-shape float64 array; +-inf allowed (sigmoid(inf) = 1), NaN, None and non-numbers refused."""
    if a is None:
        raise TypeError(f"{name} must be a number or an array of numbers, got None")
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or an array of numbers, got {type(a).__name__}") from None
    if np.any(np.isnan(arr)):
        raise ValueError(f"{name} contains NaN; find where it came from (0/0, inf - inf, log of a negative)")
    return arr


def _check_vector(a: object, name: str, size: int, what: str) -> np.ndarray:
    arr = as_float_array(a, name, ndim=1)
    if arr.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},) {what}, got {arr.shape}")
    return arr


def _check_scalar(a: object, name: str) -> float:
    if a is None:
        raise TypeError(f"{name} must be a single number (the bias), got None; pass 0.0 to start from zero")
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a single number, got {type(a).__name__}") from None
    if arr.size != 1:
        raise ValueError(f"{name} must be a single number (the bias), got shape {arr.shape}")
    value = float(arr.reshape(()))
    if not np.isfinite(value):
        raise ValueError(f"{name} is {value}; it must be finite")
    return value


def _check_nonneg(value: float, name: str) -> float:
    return check_finite_float(value, name, low=0.0)


def _check_rng(rng: object) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a np.random.Generator, got {type(rng).__name__}; "
                        "pass np.random.default_rng(seed)")


def _softplus(s: np.ndarray) -> np.ndarray:
    """``log(1 + e^s)`` to full relative precision for every s: ``max(s, 0) + log1p(e^-|s|)``."""
    return np.maximum(s, 0.0) + np.log1p(np.exp(-np.abs(s)))


def _residual_sigmoid(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``sigmoid(z) - y`` for y in {0, 1} without cancellation: for y = 1 it is -sigmoid(-z)."""
    return np.where(y == 1.0, -sigmoid(-z), sigmoid(z))


# ---------------------------------------------------------------------------------------------
# Linear regression with the mean squared error


def linear_predict(X: object, w: object, b: object) -> np.ndarray:
    """Predictions ``y_hat = X @ w + b``: X (n, d), w (d,), b scalar -> (n,)."""
    X = check_X(X)
    w = _check_vector(w, "w", X.shape[1], "(one weight per column of X)")
    return X @ w + _check_scalar(b, "b")


def mse_loss(X: object, y: object, w: object, b: object) -> float:
    """Mean squared error ``(1/n) sum (x_i . w + b - y_i)^2``: X (n, d), y (n,), w (d,), b scalar."""
    return linear_mse(X, y, w, b)[0]


def linear_mse(X: object, y: object, w: object, b: object) -> tuple[float, np.ndarray, float]:
    """MSE loss and its gradients ``(L, dL_dw (d,), dL_db)`` for X (n, d), y (n,), w (d,), b scalar.

    With residuals r = X w + b - y:  dL/dw = (2/n) X^T r,  dL/db = (2/n) sum r.
    """
    X = check_X(X)
    y = check_targets(y, X.shape[0])
    n = X.shape[0]
    r = linear_predict(X, w, b) - y  # (n,)
    loss = float(r @ r) / n
    dL_dw = (2.0 / n) * (X.T @ r)  # (d,)
    dL_db = 2.0 * float(r.mean())
    return loss, dL_dw, dL_db


def least_squares(X: object, y: object) -> tuple[np.ndarray, float]:
    """Closed-form minimiser ``(w (d,), b)`` of the MSE, via the normal equations on centred data.

    Setting the gradient to zero gives b = mean(y) - mean(X) w and (Xc^T Xc) w = Xc^T yc
    with Xc, yc the centred data. Raises if Xc^T Xc is singular (collinear or constant
    columns, or n <= d), where the minimiser is not unique.
    """
    X = check_X(X)
    y = check_targets(y, X.shape[0])
    x_mean, y_mean = X.mean(axis=0), y.mean()
    Xc, yc = X - x_mean, y - y_mean
    A = Xc.T @ Xc  # (d, d)
    rank = np.linalg.matrix_rank(A)
    if rank < X.shape[1]:
        raise ValueError(f"X (shape {X.shape}) has centred rank {rank} < d={X.shape[1]}: constant or collinear "
                         "columns (or too few samples) make the least-squares solution non-unique; "
                         "drop those columns or use np.linalg.lstsq for the minimum-norm solution")
    w = np.linalg.solve(A, Xc.T @ yc)
    b = float(y_mean - x_mean @ w)
    return w, b


def mse_hessian(X: object) -> np.ndarray:
    """Hessian of the MSE with respect to (w, b): ``(2/n) A^T A`` with A = [X, 1], shape (d+1, d+1).

    The MSE is quadratic, so the Hessian does not depend on w, b or y.
    """
    X = check_X(X)
    A = np.column_stack([X, np.ones(X.shape[0])])  # (n, d+1)
    return (2.0 / X.shape[0]) * (A.T @ A)


def max_stable_lr(X: object) -> float:
    """Gradient descent on the MSE converges iff ``0 < lr < 2 / lambda_max(H)``; return that bound."""
    lam_max = float(np.linalg.eigvalsh(mse_hessian(X))[-1])
    return 2.0 / lam_max


def standardize(X: object, mean: object | None = None, std: object | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale each column to mean 0, std 1: returns ``(X_scaled (n, d), mean (d,), std (d,))``.

    Pass the training set's ``mean`` and ``std`` to scale validation or test data the same way.
    Constant columns keep std 1 (they are only centred) instead of dividing by zero.
    """
    X = check_X(X)
    d = X.shape[1]
    if (mean is None) != (std is None):
        raise ValueError("pass both mean and std (from the training set) or neither")
    if mean is None:
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        std = np.where(std > 0, std, 1.0)
    else:
        mean = _check_vector(mean, "mean", d, "(one per column of X)")
        std = _check_vector(std, "std", d, "(one per column of X)")
        if np.any(std <= 0):
            raise ValueError("std must be positive in every column")
    return (X - mean) / std, np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Logistic regression: sigmoid, binary cross-entropy, and MSE through a sigmoid for contrast


def sigmoid(z: object) -> np.ndarray:
    """``1 / (1 + exp(-z))`` elementwise, without overflow for large |z| (any shape)."""
    z = _check_numeric(z, "z")
    # exp(-|z|) never overflows; pick the algebraically equal form for each sign
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def log_sigmoid(z: object) -> np.ndarray:
    """``log(sigmoid(z)) = -log(1 + exp(-z))`` computed stably with logaddexp (any shape)."""
    return -_softplus(-_check_numeric(z, "z"))


def binary_cross_entropy(y: object, p: object) -> float:
    """Mean BCE ``-[y log p + (1-y) log(1-p)]`` from probabilities: y (n,) in {0,1}, p (n,) in (0, 1).

    Probabilities of exactly 0 or 1 would give log(0); they are rejected. From a model,
    prefer :func:`bce_with_logits`, which never forms p at all.
    """
    p_arr = as_float_array(p, "p", ndim=1)
    y_arr = check_binary_labels(y, p_arr.shape[0])
    if np.any((p_arr <= 0) | (p_arr >= 1)):
        raise ValueError("p must lie strictly between 0 and 1 (log(0) is -inf); "
                         "compute the loss from logits with bce_with_logits instead")
    return float(-np.mean(y_arr * np.log(p_arr) + (1 - y_arr) * np.log1p(-p_arr)))


def bce_with_logits(y: object, z: object) -> float:
    """Mean BCE from logits z (n,) and labels y (n,) in {0, 1}: ``mean(log(1 + e^z) - y z)``, finite for any z.

    Same value as -[y log sigmoid(z) + (1-y) log(1 - sigmoid(z))], since
    log(1 - sigmoid(z)) = log sigmoid(-z) = log sigmoid(z) - z. Computed per sample as
    softplus(z) for y = 0 and softplus(-z) for y = 1: written as ``log(1 + e^z) - z`` the
    y = 1 term subtracts two nearly equal numbers when z is large and keeps no correct digit.
    """
    z_arr = as_float_array(z, "z", ndim=1)
    y_arr = check_binary_labels(y, z_arr.shape[0])
    return float(np.mean(_softplus((1.0 - 2.0 * y_arr) * z_arr)))


def logistic_predict_proba(X: object, w: object, b: object) -> np.ndarray:
    """P(y = 1 | x) = sigmoid(X w + b): X (n, d), w (d,), b scalar -> (n,)."""
    return sigmoid(linear_predict(X, w, b))


def logistic_bce(X: object, y: object, w: object, b: object) -> tuple[float, np.ndarray, float]:
    """BCE of logistic regression and its gradients ``(L, dL_dw (d,), dL_db)``; y (n,) in {0, 1}.

    dL/dz_i = (p_i - y_i) / n, so dL/dw = (1/n) X^T (p - y) and dL/db = mean(p - y).
    """
    X = check_X(X)
    y = check_binary_labels(y, X.shape[0])
    z = linear_predict(X, w, b)  # (n,)
    loss = float(np.mean(_softplus((1.0 - 2.0 * y) * z)))  # the stable form of bce_with_logits
    err = _residual_sigmoid(z, y)  # p - y, (n,), without cancellation when p is near y = 1
    return loss, (X.T @ err) / X.shape[0], float(err.mean())


def logistic_mse(X: object, y: object, w: object, b: object) -> tuple[float, np.ndarray, float]:
    """MSE through a sigmoid, ``mean((p - y)^2)``, and its gradients ``(L, dL_dw (d,), dL_db)``.

    dL/dw = (2/n) sum (p_i - y_i) p_i (1 - p_i) x_i: the factor p(1-p) = sigmoid'(z) is at
    most 1/4 and vanishes for confident predictions, right or wrong, which is why this
    loss learns slowly from confident mistakes where cross-entropy does not.
    """
    X = check_X(X)
    y = check_binary_labels(y, X.shape[0])
    z = linear_predict(X, w, b)
    r = _residual_sigmoid(z, y)  # p - y, (n,)
    loss = float(np.mean(r**2))
    dp_dz = sigmoid(z) * sigmoid(-z)  # p (1 - p), without forming 1 - p
    delta = 2.0 * r * dp_dz / X.shape[0]  # dL/dz_i, (n,)
    return loss, X.T @ delta, float(delta.sum())


# ---------------------------------------------------------------------------------------------
# Softmax regression: stable log-sum-exp and categorical cross-entropy


def _check_axis_array(Z: object, axis: int) -> np.ndarray:
    Z = _check_numeric(Z, "Z")
    if Z.ndim == 0:
        raise ValueError("Z is a single number; pass an array of logits, shape (k,) or (n, k)")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -Z.ndim <= axis < Z.ndim:
        raise ValueError(f"axis must be an int in [{-Z.ndim}, {Z.ndim - 1}] for Z of shape {Z.shape}, got {axis!r}")
    if Z.shape[axis] == 0:
        raise ValueError(f"Z has no entries along axis {axis} (shape {Z.shape}); the sum would be empty")
    return Z


def logsumexp(Z: object, axis: int = -1) -> np.ndarray:
    """``log(sum(exp(Z), axis))`` computed as ``m + log1p(sum_{j != argmax} exp(Z_j - m))`` with m the max.

    Subtracting m means exp never overflows; log1p of the other terms (rather than log of
    1 + them) keeps full precision when one entry dominates, which is what makes the
    cross-entropy of a confident right answer accurate rather than 0.
    """
    Z = _check_axis_array(Z, axis)
    idx = np.expand_dims(np.argmax(Z, axis=axis), axis)
    m = np.take_along_axis(Z, idx, axis=axis)  # (..., 1, ...)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(Z - m_safe)
    np.put_along_axis(e, idx, 0.0, axis=axis)  # the max's own term is the "1" in log1p
    out = np.squeeze(m_safe, axis=axis) + np.log1p(np.sum(e, axis=axis))
    m = np.squeeze(m, axis=axis)
    return np.where(np.isfinite(m), out, m)  # a row of -inf gives -inf; a +inf entry gives +inf


def log_softmax(Z: object) -> np.ndarray:
    """Row-wise ``log softmax``: Z (n, k) -> (n, k), stable for logits of any size."""
    Z = _check_axis_array(Z, -1)
    return Z - logsumexp(Z, axis=-1)[..., None]


def softmax(Z: object) -> np.ndarray:
    """Row-wise softmax: Z (n, k) -> probabilities (n, k) whose rows sum to 1."""
    return np.exp(log_softmax(Z))


def one_hot(y: object, num_classes: int) -> np.ndarray:
    """Class indices y (n,) -> one-hot float matrix (n, num_classes)."""
    num_classes = check_positive_int(num_classes, "num_classes")
    y = check_labels(y, num_classes)
    Y = np.zeros((y.shape[0], num_classes))
    Y[np.arange(y.shape[0]), y] = 1.0
    return Y


def softmax_cross_entropy(Z: object, y: object) -> tuple[float, np.ndarray]:
    """Mean categorical cross-entropy of logits Z (n, k) for labels y (n,), and ``dL_dZ (n, k)``.

    L = -(1/n) sum_i log softmax(z_i)[y_i]; dL/dZ = (softmax(Z) - onehot(y)) / n.
    """
    Z = as_float_array(Z, "Z", ndim=2)
    n, k = Z.shape
    y = check_labels(y, k, n=n)
    logp = log_softmax(Z)  # (n, k)
    rows = np.arange(n)
    loss = float(-np.mean(logp[rows, y]))
    dL_dZ = np.exp(logp)
    dL_dZ[rows, y] = 0.0
    # p_y - 1 = -(sum of the other p_j): positive terms, so no cancellation when p_y is near 1
    dL_dZ[rows, y] = -dL_dZ.sum(axis=1)
    return loss, dL_dZ / n


def softmax_regression(X: object, y: object, W: object, b: object) -> tuple[float, np.ndarray, np.ndarray]:
    """Cross-entropy of ``Z = X W + b`` and gradients ``(L, dL_dW (d, k), dL_db (k,))``.

    X (n, d), y (n,) in [0, k), W (d, k), b (k,).
    """
    X = check_X(X)
    W = as_float_array(W, "W", ndim=2)
    if W.shape[0] != X.shape[1]:
        raise ValueError(f"W must have shape ({X.shape[1]}, k) to multiply X {X.shape}, got {W.shape}")
    b = _check_vector(b, "b", W.shape[1], f"(one bias per class; W has {W.shape[1]} columns)")
    y = check_labels(y, W.shape[1], n=X.shape[0])
    loss, dL_dZ = softmax_cross_entropy(X @ W + b, y)
    return loss, X.T @ dL_dZ, dL_dZ.sum(axis=0)


# ---------------------------------------------------------------------------------------------
# A two-layer MLP: X -> ReLU(X W1 + b1) -> [dropout] -> W2 + b2 -> logits, with backprop by hand

MLP_KEYS = ("W1", "b1", "W2", "b2")


def init_mlp(d_in: int, d_hidden: int, d_out: int, rng: np.random.Generator) -> Params:
    """He-initialised weights ``W1 (d_in, d_hidden), b1 (d_hidden,), W2 (d_hidden, d_out), b2 (d_out,)``."""
    for name, v in (("d_in", d_in), ("d_hidden", d_hidden), ("d_out", d_out)):
        check_positive_int(v, name)
    _check_rng(rng)
    return {
        "W1": rng.normal(0.0, np.sqrt(2.0 / d_in), size=(d_in, d_hidden)),
        "b1": np.zeros(d_hidden),
        "W2": rng.normal(0.0, np.sqrt(2.0 / d_hidden), size=(d_hidden, d_out)),
        "b2": np.zeros(d_out),
    }


def _check_mlp_keys(params: object) -> None:
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict with keys {MLP_KEYS} (see init_mlp), got {type(params).__name__}")
    missing = [k for k in MLP_KEYS if k not in params]
    if missing:
        raise ValueError(f"params lacks {missing}; it must be a dict with keys {MLP_KEYS} (see init_mlp)")


def _check_mlp_params(params: Params, d_in: int) -> Params:
    _check_mlp_keys(params)
    W1 = as_float_array(params["W1"], "params['W1']", ndim=2)
    if W1.shape[0] != d_in:
        raise ValueError(f"params['W1'] must have shape ({d_in}, h) to multiply X with {d_in} "
                         f"features, got {W1.shape}")
    h = W1.shape[1]
    b1 = _check_vector(params["b1"], "params['b1']", h, f"(W1 has {h} columns)")
    W2 = as_float_array(params["W2"], "params['W2']", ndim=2)
    if W2.shape[0] != h:
        raise ValueError(f"params['W2'] must have shape ({h}, k) to follow W1 {W1.shape}, got {W2.shape}")
    b2 = _check_vector(params["b2"], "params['b2']", W2.shape[1], f"(W2 has {W2.shape[1]} columns)")
    return {"W1": W1, "b1": b1, "W2": W2, "b2": b2}


def _check_shape(shape: object) -> tuple[int, ...]:
    dims = (shape,) if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool) else shape
    if not isinstance(dims, (tuple, list)) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise TypeError(f"shape must be a tuple of ints >= 0 such as (n, h), got {shape!r}")
    return tuple(int(d) for d in dims)


def dropout_mask(shape: tuple[int, ...], p: float, rng: np.random.Generator) -> np.ndarray:
    """Inverted-dropout mask: 0 with probability p, else 1/(1-p), so E[mask] = 1 and no test-time rescale."""
    p = check_finite_float(p, "p", low=0.0, high=1.0, high_open=True, hint="p is the probability of dropping a unit")
    _check_rng(rng)
    shape = _check_shape(shape)
    return (rng.random(shape) >= p) / (1.0 - p)


def mlp_forward(X: object, params: Params, *, dropout: float = 0.0, rng: np.random.Generator | None = None,
                mask: object | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Logits (n, k) of the two-layer ReLU net and the cache that :func:`mlp_backward` needs.

    Dropout (training only) multiplies the hidden activations (n, h) by an inverted-dropout
    mask: pass ``mask`` explicitly (e.g. to gradient-check with a fixed mask) or
    ``dropout=p`` with ``rng`` to draw one. With neither, no dropout (evaluation mode).
    """
    X = check_X(X)
    p = _check_mlp_params(params, X.shape[1])
    dropout = check_finite_float(dropout, "dropout", low=0.0, high=1.0, high_open=True,
                                 hint="0 means no dropout (evaluation mode)")
    if mask is not None and dropout > 0.0:
        raise ValueError(f"pass either mask= or dropout={dropout} (with rng), not both: "
                         "the mask already decides which units drop")
    if rng is not None:
        _check_rng(rng)
    z1 = X @ p["W1"] + p["b1"]  # (n, h)
    h = np.maximum(z1, 0.0)
    if mask is not None:
        mask = as_float_array(mask, "mask", ndim=2)
        if mask.shape != h.shape:
            raise ValueError(f"mask must have the hidden layer's shape {h.shape} (n, h), got {mask.shape}")
        if np.any(mask < 0):
            raise ValueError("mask must be >= 0 (0 drops a unit, 1/(1-p) keeps it)")
    elif dropout > 0.0:
        if rng is None:
            raise ValueError("dropout > 0 needs rng=np.random.default_rng(seed) (or an explicit mask=)")
        mask = dropout_mask(h.shape, dropout, rng)
    h_out = h * mask if mask is not None else h
    logits = h_out @ p["W2"] + p["b2"]  # (n, k)
    cache = {"X": X, "z1": z1, "h_out": h_out, "W2": p["W2"]}
    if mask is not None:
        cache["mask"] = mask
    return logits, cache


def mlp_backward(dL_dlogits: object, cache: dict[str, np.ndarray], params: Params, *, l2: float = 0.0
                 ) -> Params:
    """Backprop through the MLP: from dL/dlogits (n, k) to grads of W1, b1, W2, b2 (their shapes).

    ``l2`` adds the gradient ``l2 * W`` of the penalty ``(l2/2)(||W1||^2 + ||W2||^2)`` (biases unpenalised).
    """
    l2 = _check_nonneg(l2, "l2")
    if not isinstance(cache, dict) or any(k not in cache for k in ("X", "z1", "h_out")):
        got = sorted(cache) if isinstance(cache, dict) else type(cache).__name__
        raise ValueError(f"cache must be the dict that mlp_forward returned (keys X, z1, h_out[, mask]), got {got}")
    X, z1, h_out = cache["X"], cache["z1"], cache["h_out"]
    p = _check_mlp_params(params, X.shape[1])
    G = as_float_array(dL_dlogits, "dL_dlogits", ndim=2)
    if G.shape != (X.shape[0], p["W2"].shape[1]):
        raise ValueError(f"dL_dlogits must have the logits' shape {(X.shape[0], p['W2'].shape[1])}, got {G.shape}")
    dW2 = h_out.T @ G + l2 * p["W2"]  # (h, k)
    db2 = G.sum(axis=0)  # (k,)
    dh = G @ p["W2"].T  # (n, h)
    if "mask" in cache:
        dh = dh * cache["mask"]  # dropped units pass no gradient back
    dz1 = dh * (z1 > 0)  # ReLU'(z) = 1 where z > 0
    dW1 = X.T @ dz1 + l2 * p["W1"]  # (d, h)
    db1 = dz1.sum(axis=0)  # (h,)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def l2_penalty(params: Params, l2: float) -> float:
    """``(l2/2)(||W1||^2 + ||W2||^2)``: the weight penalty (biases are not penalised)."""
    l2 = _check_nonneg(l2, "l2")
    _check_mlp_keys(params)
    return 0.5 * l2 * float(np.sum(params["W1"] ** 2) + np.sum(params["W2"] ** 2))


def mlp_loss_and_grads(X: object, y: object, params: Params, *, l2: float = 0.0, dropout: float = 0.0,
                       rng: np.random.Generator | None = None, mask: object | None = None
                       ) -> tuple[float, Params]:
    """Cross-entropy (+ L2 penalty) of the MLP on X (n, d), y (n,), and grads for W1, b1, W2, b2."""
    logits, cache = mlp_forward(X, params, dropout=dropout, rng=rng, mask=mask)
    data_loss, dL_dlogits = softmax_cross_entropy(logits, y)
    grads = mlp_backward(dL_dlogits, cache, params, l2=l2)
    return data_loss + l2_penalty(params, l2), grads


def mlp_predict(X: object, params: Params) -> np.ndarray:
    """Predicted class indices (n,) (evaluation mode: no dropout)."""
    return mlp_forward(X, params)[0].argmax(axis=1)


# ---------------------------------------------------------------------------------------------
# One gradient-descent loop for every model above


@dataclass
class GDHistory:
    """What :func:`gradient_descent` saw: ``loss[t]`` and ``params[t]`` at steps t = 0..T."""

    loss: list[float] = field(default_factory=list)
    params: list[Params] = field(default_factory=list)
    diverged: bool = False

    def path(self, name: str) -> np.ndarray:
        """Stack one parameter over the steps: shape (T+1, *param.shape)."""
        if not self.params:
            raise ValueError("this history is empty: run gradient_descent first")
        if name not in self.params[0]:
            raise ValueError(f"no parameter named {name!r}; the history holds {sorted(self.params[0])}")
        return np.stack([np.asarray(p[name]) for p in self.params])


def _call_loss_and_grad(loss_and_grad: Callable[[Params], tuple[float, Params]], params: Params
                        ) -> tuple[float, dict[str, object]]:
    out = loss_and_grad(params)
    if not isinstance(out, tuple) or len(out) != 2 or not isinstance(out[1], dict):
        raise TypeError(f"loss_and_grad must return (loss, grads) with grads a dict shaped like params, "
                        f"got {type(out).__name__}"
                        + (f" of {len(out)} items" if isinstance(out, tuple) else "")
                        + "; wrap a model as lambda p: (loss, {'w': dL_dw, 'b': dL_db})")
    loss = np.asarray(out[0])
    if loss.size != 1 or not np.issubdtype(loss.dtype, np.number):
        raise TypeError(f"loss_and_grad returned a loss of shape {loss.shape} and dtype {loss.dtype}; "
                        "it must be one number (the mean loss)")
    return float(loss.reshape(())), out[1]


def _check_grad_shape(grad: object, param: np.ndarray, name: str) -> np.ndarray:
    g = np.asarray(grad, dtype=np.float64)
    if g.shape != param.shape:
        # lr * g would broadcast a wrong shape into every entry of the parameter without a word
        raise ValueError(f"loss_and_grad returned grads[{name!r}] of shape {g.shape} but params[{name!r}] has shape "
                         f"{param.shape}: a gradient has the shape of its parameter (check the formula, "
                         "e.g. X.T @ r, not X @ r)")
    return g


def gradient_descent(loss_and_grad: Callable[[Params], tuple[float, Params]], params: Params, *, lr: float,
                     num_steps: int, tol: float | None = None) -> tuple[Params, GDHistory]:
    """Plain full-batch gradient descent ``theta <- theta - lr * grad`` on a dict of parameters.

    ``loss_and_grad(params)`` returns ``(loss, grads)`` with grads shaped like params. Stops
    early when the loss stops being finite (divergence; ``history.diverged`` is then True)
    or, if ``tol`` is given, when the largest gradient entry falls below it. The input
    ``params`` are not modified; returns ``(final params, history)``.
    """
    check_callable(loss_and_grad, "loss_and_grad", hint="pass a function params -> (loss, grads)")
    lr = check_finite_float(lr, "lr", low=0.0, low_open=True, hint="try 0.1, or max_stable_lr(X) for the MSE")
    num_steps = check_int(num_steps, "num_steps", minimum=0)
    if tol is not None:
        tol = check_finite_float(tol, "tol", low=0.0, low_open=True, hint="or None to run all num_steps")
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of name -> array such as {{'w': w, 'b': b}}, "
                        f"got {type(params).__name__}")
    if not params:
        raise ValueError("params is an empty dict; pass the parameters to optimise, e.g. {'w': w, 'b': b}")
    current = {k: as_float_array(v, f"params[{k!r}]", allow_empty=True) for k, v in params.items()}
    history = GDHistory()
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is a result, not a warning
        for step in range(num_steps + 1):
            loss, grads = _call_loss_and_grad(loss_and_grad, current)
            history.loss.append(loss)
            history.params.append({k: v.copy() for k, v in current.items()})
            if not np.isfinite(loss):
                history.diverged = True
                break
            if step == num_steps:
                break
            if set(grads) != set(current):
                raise ValueError(f"loss_and_grad returned grads for {sorted(grads)} but params are {sorted(current)}")
            grads = {k: _check_grad_shape(grads[k], current[k], k) for k in current}
            if tol is not None and max(float(np.max(np.abs(g))) for g in grads.values()) < tol:
                break
            updated = {k: current[k] - lr * grads[k] for k in current}
            if not all(np.all(np.isfinite(v)) for v in updated.values()):
                history.diverged = True
                break
            current = updated
    return current, history

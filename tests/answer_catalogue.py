"""Plausible wrong answers and correct alternatives for every exercise, run by test_answer_catalogue.py.

Each entry replaces one solution cell (named by its nbgrader grade_id) with a learner's code. A wrong
answer must fail a VISIBLE check (the student copy's check cell) with a CheckError whose sentence
matches ``expect``; a right answer must pass the visible and the hidden checks.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    grade_id: str           # the solution cell it replaces
    code: str               # what the learner wrote
    expect: str | None      # regex the failing sentence must match; None for a correct answer
    why: str = ""

    @property
    def wrong(self) -> bool:
        return self.expect is not None


def W(grade_id: str, expect: str, code: str, why: str = "") -> Answer:
    return Answer(grade_id, code, expect, why)


def R(grade_id: str, code: str, why: str = "") -> Answer:
    return Answer(grade_id, code, None, why)


CATALOGUE: dict[str, list[Answer]] = {
    "01_linear_regression": [
        W("ex1_mse_grad", r"n times too large", """
def mse_grad(X, y, w, b):
    r = X @ w + b - y
    return 2 * X.T @ r, 2 * float(np.sum(r))""", "sum instead of mean"),
        W("ex1_mse_grad", r"factor of 0\.5.*forget the 2", """
def mse_grad(X, y, w, b):
    r = X @ w + b - y
    return X.T @ r / len(y), float(np.mean(r))""", "forgot the 2"),
        W("ex1_mse_grad", r"wrong sign", """
def mse_grad(X, y, w, b):
    r = y - (X @ w + b)
    return 2 * X.T @ r / len(y), 2 * float(np.mean(r))"""),
        W("ex1_mse_grad", r"calls sftcourse\.numpy_models\.linear_mse", """
def mse_grad(X, y, w, b):
    _, dL_dw, dL_db = nm.linear_mse(X, y, w, b)
    return dL_dw, dL_db""", "delegates"),
        W("ex1_mse_grad", r"returned None", """
def mse_grad(X, y, w, b):
    r = X @ w + b - y
    dL_dw, dL_db = 2 * X.T @ r / len(y), 2 * float(np.mean(r))"""),
        R("ex1_mse_grad", """
def mse_grad(X, y, w, b):
    n = len(y)
    A = np.column_stack([X, np.ones(n)])
    g = 2.0 / n * A.T @ (X @ w + b - y)
    return g[:-1], float(g[-1])""", "bias as a column of ones"),
        R("ex1_mse_grad", """
def mse_grad(X, y, w, b):
    r = np.einsum('ij,j->i', X, w) + b - y
    return 2 * np.einsum('ij,i->j', X, r) / X.shape[0], 2 * r.mean()""", "einsum, numpy scalar"),
        W("ex2_gd_fit", r"shifted by one step", """
def gd_fit(X, y, lr, num_steps):
    w, b, losses = np.zeros(X.shape[1]), 0.0, []
    for _ in range(num_steps):
        _, dw, db = nm.linear_mse(X, y, w, b)
        w, b = w - lr * dw, b - lr * db
        losses.append(nm.linear_mse(X, y, w, b)[0])
    return w, b, losses""", "loss recorded after the update"),
        W("ex2_gd_fit", r"went UP|NaN or inf", """
def gd_fit(X, y, lr, num_steps):
    w, b, losses = np.zeros(X.shape[1]), 0.0, []
    for _ in range(num_steps):
        loss, dw, db = nm.linear_mse(X, y, w, b)
        losses.append(loss)
        w, b = w + lr * dw, b + lr * db
    return w, b, losses""", "gradient ascent"),
        W("ex2_gd_fit", r"calls sftcourse\.numpy_models\.gradient_descent", """
def gd_fit(X, y, lr, num_steps):
    def objective(p):
        loss, dw, db = nm.linear_mse(X, y, p["w"], p["b"])
        return loss, {"w": dw, "b": np.asarray(db)}
    final, history = nm.gradient_descent(objective, {"w": np.zeros(X.shape[1]), "b": np.asarray(0.0)},
                                         lr=lr, num_steps=num_steps)
    return final["w"], float(final["b"]), history.loss[:num_steps]"""),
        R("ex2_gd_fit", """
def gd_fit(X, y, lr, num_steps):
    w = np.zeros(X.shape[1]); b = 0.0; losses = []
    step = 0
    while step < num_steps:
        r = X @ w + b - y
        losses.append(float(np.mean(r ** 2)))
        w -= lr * 2 * X.T @ r / len(y)
        b -= lr * 2 * r.mean()
        step += 1
    return w, b, losses""", "own gradient, while loop, in-place updates"),
        W("ex3_lr_threshold", r"SMALLEST", """
def lr_threshold(X):
    A = np.column_stack([X, np.ones(len(X))])
    return 2.0 / np.linalg.eigvalsh(2.0 / len(X) * A.T @ A)[0]"""),
        W("ex3_lr_threshold", r"without the bias", """
def lr_threshold(X):
    return 2.0 / np.linalg.eigvalsh(2.0 / len(X) * X.T @ X)[-1]"""),
        W("ex3_lr_threshold", r"half the expected value.*2 / lambda_max", """
def lr_threshold(X):
    A = np.column_stack([X, np.ones(len(X))])
    return 1.0 / np.linalg.eigvalsh(2.0 / len(X) * A.T @ A)[-1]"""),
        W("ex3_lr_threshold", r"twice too large.*\(2/n\)", """
def lr_threshold(X):
    A = np.column_stack([X, np.ones(len(X))])
    return 2.0 / np.linalg.eigvalsh(A.T @ A / len(X))[-1]"""),
        W("ex3_lr_threshold", r"calls sftcourse\.numpy_models\.max_stable_lr", """
def lr_threshold(X):
    return nm.max_stable_lr(X)"""),
        R("ex3_lr_threshold", """
def lr_threshold(X):
    A = np.hstack([X, np.ones((X.shape[0], 1))])
    return float(2.0 / np.linalg.norm(2.0 / X.shape[0] * A.T @ A, 2))""", "spectral norm"),
        R("ex3_lr_threshold", """
def lr_threshold(X):
    A = np.column_stack([X, np.ones(len(X))])
    return 2.0 / np.max(np.linalg.eigvals(2.0 / len(X) * A.T @ A).real)""", "eigvals with max"),
    ],
    "02_logistic_softmax": [
        W("ex1_bce", r"for y = 0 your loss is 0", """
def bce(y, p):
    return float(-np.mean(y * np.log(p)))""", "only the y log p term (erratum 2)"),
        W("ex1_bce", r"negative", """
def bce(y, p):
    return float(-np.mean(y * np.log(p)) + np.mean((1 - y) * np.log(1 - p)))""", "dropped brackets"),
        W("ex1_bce", r"log base 10", """
def bce(y, p):
    return float(-np.mean(y * np.log10(p) + (1 - y) * np.log10(1 - p)))"""),
        W("ex1_bce", r"n times too large", """
def bce(y, p):
    return float(-np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)))"""),
        W("ex1_bce", r"calls sklearn\.metrics\.log_loss", """
def bce(y, p):
    from sklearn.metrics import log_loss
    return log_loss(y, p, labels=[0, 1])"""),
        R("ex1_bce", """
def bce(y, p):
    return -np.mean(np.where(y == 1, np.log(p), np.log1p(-p)))""", "np.where and log1p"),
        R("ex1_bce", """
def bce(y, p):
    return -(y @ np.log(p) + (1 - y) @ np.log(1 - p)) / len(y)""", "dot products"),
        W("ex2_softmax_ce", r"inf or NaN for large logits", """
def softmax_ce(Z, y):
    return float(np.mean(np.log(np.exp(Z).sum(axis=1)) - Z[np.arange(len(y)), y]))""", "no max subtracted"),
        W("ex2_softmax_ce", r"did not add it back", """
def softmax_ce(Z, y):
    Zs = Z - Z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(Zs).sum(axis=1)) - Z[np.arange(len(y)), y]))"""),
        W("ex2_softmax_ce", r"calls sftcourse\.numpy_models\.softmax_cross_entropy", """
def softmax_ce(Z, y):
    return nm.softmax_cross_entropy(Z, y)[0]"""),
        W("ex2_softmax_ce", r"calls scipy\.special\.logsumexp", """
def softmax_ce(Z, y):
    from scipy.special import logsumexp
    return float(np.mean(logsumexp(Z, axis=1) - Z[np.arange(len(y)), y]))"""),
        R("ex2_softmax_ce", """
def softmax_ce(Z, y):
    Zs = Z - Z.max(axis=1, keepdims=True)
    log_p = Zs - np.log(np.exp(Zs).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())""", "log-softmax by hand"),
        W("ex3_softmax_ce_grad", r"softmax\(Z\) / n", """
def softmax_ce_grad(Z, y):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True) / len(y)"""),
        W("ex3_softmax_ce_grad", r"n times too large", """
def softmax_ce_grad(Z, y):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True) - np.eye(Z.shape[1])[y]"""),
        W("ex3_softmax_ce_grad", r"wrong sign", """
def softmax_ce_grad(Z, y):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return (np.eye(Z.shape[1])[y] - E / E.sum(axis=1, keepdims=True)) / len(y)"""),
        R("ex3_softmax_ce_grad", """
def softmax_ce_grad(Z, y):
    P = nm.softmax(Z)
    P[np.arange(len(y)), y] -= 1
    return P / len(y)""", "the library's softmax is allowed"),
    ],
    "03_mlp_backprop": [
        W("ex1_mlp_grads", r"ignores the ReLU", """
def mlp_grads(X, y, params):
    z1 = X @ params["W1"] + params["b1"]; h = np.maximum(z1, 0)
    _, G2 = nm.softmax_cross_entropy(h @ params["W2"] + params["b2"], y)
    G1 = G2 @ params["W2"].T
    return {"W1": X.T @ G1, "b1": G1.sum(0), "W2": h.T @ G2, "b2": G2.sum(0)}"""),
        W("ex1_mlp_grads", r"AFTER the ReLU", """
def mlp_grads(X, y, params):
    z1 = X @ params["W1"] + params["b1"]; h = np.maximum(z1, 0)
    _, G2 = nm.softmax_cross_entropy(h @ params["W2"] + params["b2"], y)
    G1 = (G2 @ params["W2"].T) * (z1 > 0)
    return {"W1": X.T @ G1, "b1": G1.sum(0), "W2": z1.T @ G2, "b2": G2.sum(0)}"""),
        W("ex1_mlp_grads", r"n times too small", """
def mlp_grads(X, y, params):
    n = len(y)
    z1 = X @ params["W1"] + params["b1"]; h = np.maximum(z1, 0)
    _, G2 = nm.softmax_cross_entropy(h @ params["W2"] + params["b2"], y)
    G2 = G2 / n
    G1 = (G2 @ params["W2"].T) * (z1 > 0)
    return {"W1": X.T @ G1, "b1": G1.sum(0), "W2": h.T @ G2, "b2": G2.sum(0)}"""),
        W("ex1_mlp_grads", r"calls sftcourse\.numpy_models\.mlp_loss_and_grads", """
def mlp_grads(X, y, params):
    return nm.mlp_loss_and_grads(X, y, params)[1]"""),
        R("ex1_mlp_grads", """
def mlp_grads(X, y, params):
    z1 = X @ params["W1"] + params["b1"]
    h = np.where(z1 > 0, z1, 0.0)
    logits = h @ params["W2"] + params["b2"]
    P = np.exp(logits - logits.max(1, keepdims=True)); P /= P.sum(1, keepdims=True)
    P[np.arange(len(y)), y] -= 1
    G2 = P / len(y)
    G1 = np.where(z1 > 0, G2 @ params["W2"].T, 0.0)
    return dict(W1=X.T @ G1, b1=G1.sum(0), W2=h.T @ G2, b2=G2.sum(0))""", "own softmax, np.where"),
        W("ex2_l2", r"includes the biases", """
def l2_penalty_and_grads(params, lam):
    pen = 0.5 * lam * sum(np.sum(v ** 2) for v in params.values())
    return float(pen), {"W1": lam * params["W1"], "W2": lam * params["W2"]}"""),
        W("ex2_l2", r"twice too large: the penalty has a factor 1/2", """
def l2_penalty_and_grads(params, lam):
    pen = lam * (np.sum(params["W1"] ** 2) + np.sum(params["W2"] ** 2))
    return float(pen), {"W1": lam * params["W1"], "W2": lam * params["W2"]}"""),
        W("ex2_l2", r"the 1/2 in the penalty cancels", """
def l2_penalty_and_grads(params, lam):
    pen = 0.5 * lam * (np.sum(params["W1"] ** 2) + np.sum(params["W2"] ** 2))
    return float(pen), {"W1": 2 * lam * params["W1"], "W2": 2 * lam * params["W2"]}"""),
        W("ex2_l2", r"calls sftcourse\.numpy_models\.l2_penalty", """
def l2_penalty_and_grads(params, lam):
    return nm.l2_penalty(params, lam), {k: lam * params[k] for k in ("W1", "W2")}"""),
        R("ex2_l2", """
def l2_penalty_and_grads(params, lam):
    W = [params["W1"], params["W2"]]
    return lam / 2 * sum(float(np.vdot(w, w)) for w in W), {"W1": lam * W[0], "W2": lam * W[1]}""", "vdot"),
        W("ex3_dropout", r"scaled by 1 / \(1 - p\)", """
def dropout_forward(h, p, rng):
    mask = (rng.random(h.shape) >= p).astype(float)
    return h * mask, mask"""),
        W("ex3_dropout", r"keep the units that should be dropped", """
def dropout_forward(h, p, rng):
    mask = (rng.random(h.shape) < p) / (1 - p)
    return h * mask, mask"""),
        W("ex3_dropout", r"calls sftcourse\.numpy_models\.dropout_mask", """
def dropout_forward(h, p, rng):
    mask = nm.dropout_mask(h.shape, p, rng)
    return h * mask, mask"""),
        W("ex3_dropout", r"same scaled mask", """
def dropout_backward(dout, mask):
    return dout * (mask > 0)"""),
        R("ex3_dropout", """
def dropout_forward(h, p, rng):
    keep = rng.random(h.shape) >= p
    mask = np.where(keep, 1.0 / (1.0 - p), 0.0)
    return np.where(keep, h / (1.0 - p), 0.0), mask""", "np.where"),
    ],
    "04_autograd": [
        W("ex1_mse_autograd", r"n times too large.*\.mean\(\)", """
def mse_grads_autograd(X, y, w, b):
    w_t = torch.tensor(w, requires_grad=True); b_t = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    ((torch.from_numpy(X) @ w_t + b_t - torch.from_numpy(y)) ** 2).sum().backward()
    return w_t.grad.numpy(), float(b_t.grad)"""),
        W("ex1_mse_autograd", r"calls sftcourse\.numpy_models\.linear_mse", """
def mse_grads_autograd(X, y, w, b):
    _, dw, db = nm.linear_mse(X, y, w, b)
    return dw, db"""),
        R("ex1_mse_autograd", """
def mse_grads_autograd(X, y, w, b):
    w_t = torch.from_numpy(np.array(w, dtype=np.float64)).requires_grad_()
    b_t = torch.tensor(float(b), dtype=torch.float64, requires_grad=True)
    F.mse_loss(torch.from_numpy(X) @ w_t + b_t, torch.from_numpy(y)).backward()
    return w_t.grad.detach().numpy(), b_t.grad.item()""", "F.mse_loss"),
        W("ex2_cross_entropy", r"inf or NaN for large logits.*logsumexp", """
def cross_entropy_from_logits(Z, y):
    return (torch.log(torch.exp(Z).sum(dim=1)) - Z[torch.arange(len(y)), y]).mean()""", "naive log-sum-exp"),
        W("ex2_cross_entropy", r"calls torch\.nn\.functional\.cross_entropy", """
def cross_entropy_from_logits(Z, y):
    return F.cross_entropy(Z, y)"""),
        W("ex2_cross_entropy", r"return a torch tensor", """
def cross_entropy_from_logits(Z, y):
    return (torch.logsumexp(Z, 1) - Z[torch.arange(len(y)), y]).mean().item()"""),
        W("ex2_cross_entropy", r"wrong sign", """
def cross_entropy_from_logits(Z, y):
    return (Z[torch.arange(len(y)), y] - torch.logsumexp(Z, 1)).mean()"""),
        R("ex2_cross_entropy", """
def cross_entropy_from_logits(Z, y):
    return -(Z.gather(1, y[:, None]).squeeze(1) - torch.logsumexp(Z, dim=1)).sum() / Z.shape[0]""", "gather"),
        W("ex3_mlp_module", r"transpose, not a reshape", """
def load_numpy_params(model, params):
    with torch.no_grad():
        model.fc1.weight.copy_(torch.from_numpy(params["W1"]).reshape(model.fc1.weight.shape))
        model.fc1.bias.copy_(torch.from_numpy(params["b1"]))
        model.fc2.weight.copy_(torch.from_numpy(params["W2"]).reshape(model.fc2.weight.shape))
        model.fc2.bias.copy_(torch.from_numpy(params["b2"]))"""),
        R("ex3_mlp_module", """
def load_numpy_params(model, params):
    model.fc1.weight.data = torch.tensor(params["W1"].T.copy())
    model.fc1.bias.data = torch.tensor(params["b1"])
    model.fc2.weight.data = torch.tensor(params["W2"].T.copy())
    model.fc2.bias.data = torch.tensor(params["b2"])""", ".data assignment"),
    ],
    "05_training_loop": [
        W("ex1_train_epoch", r"left in eval mode.*model\.train\(\)", """
def train_one_epoch(model, loader, optimizer, loss_fn):
    total, count = 0.0, 0
    for X_batch, y_batch in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(X_batch), y_batch)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(y_batch); count += len(y_batch)
    return total / count""", "forgot model.train()"),
        W("ex1_train_epoch", r"mean of the batch losses", """
def train_one_epoch(model, loader, optimizer, loss_fn):
    model.train()
    losses = []
    for X_batch, y_batch in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(X_batch), y_batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)"""),
        W("ex1_train_epoch", r"weights did not change", """
def train_one_epoch(model, loader, optimizer, loss_fn):
    model.train()
    total, count = 0.0, 0
    for X_batch, y_batch in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(X_batch), y_batch)
        loss.backward()
        total += loss.item() * len(y_batch); count += len(y_batch)
    return total / count""", "forgot optimizer.step()"),
        W("ex1_train_epoch", r"calls sftcourse\.train\.train_epoch", """
def train_one_epoch(model, loader, optimizer, loss_fn):
    return train_epoch(model, loader, optimizer=optimizer, loss_fn=loss_fn, device="cpu")["train_loss"]"""),
        R("ex1_train_epoch", """
def train_one_epoch(model, loader, optimizer, loss_fn):
    model.train(True)
    sums = torch.zeros((), dtype=torch.float64)
    for X_batch, y_batch in loader:
        for p in model.parameters():
            p.grad = None
        loss = loss_fn(model(X_batch), y_batch)
        loss.backward()
        optimizer.step()
        sums += loss.detach() * y_batch.shape[0]
    return float(sums / len(loader.dataset))""", "grads set to None, dataset length"),
        W("ex2_adam", r"no bias correction", """
def adam_update(p, g, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    return p - lr * m / (np.sqrt(v) + eps), m, v"""),
        W("ex2_adam", r"although the call passed betas", """
def adam_update(p, g, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + 0.001 * g * g
    return p - lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + eps), m, v""", "hard-coded betas"),
        R("ex2_adam", """
def adam_update(p, g, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    m_new = m * beta1 + g * (1 - beta1)
    v_new = v * beta2 + np.square(g) * (1 - beta2)
    step = lr / (1 - beta1 ** t) * m_new / (np.sqrt(v_new) / np.sqrt(1 - beta2 ** t) + eps)
    return p - step, m_new, v_new""", "the bias correction folded differently"),
        W("ex3_schedule", r"calls sftcourse\.optim\.linear_warmup_cosine_decay", """
def warmup_cosine(step, warmup_steps, total_steps):
    return optim.linear_warmup_cosine_decay(step, warmup_steps=warmup_steps, total_steps=total_steps)"""),
        W("ex3_schedule", r"factor at the end of warmup", """
def warmup_cosine(step, warmup_steps, total_steps):
    if step <= warmup_steps:
        return step / (warmup_steps + 1)
    p = (step - warmup_steps) / (total_steps - warmup_steps)
    return max(0.0, 0.5 * (1 + math.cos(math.pi * p)))"""),
        R("ex3_schedule", """
def warmup_cosine(step, warmup_steps, total_steps):
    if step >= warmup_steps:
        return max(0.0, (1 + math.cos(math.pi * (step - warmup_steps) / (total_steps - warmup_steps))) / 2)
    return float(step) / float(warmup_steps)"""),
    ],
    "06_evaluation": [
        W("ex1_confusion", r"transposed", """
def confusion_matrix_by_hand(y_true, y_pred, num_classes):
    C = np.zeros((num_classes, num_classes), dtype=int)
    for t, p in zip(y_true, y_pred):
        C[p, t] += 1
    return C"""),
        W("ex1_confusion", r"size it by num_classes", """
def confusion_matrix_by_hand(y_true, y_pred, num_classes):
    k = max(y_true.max(), y_pred.max()) + 1
    C = np.zeros((k, k), dtype=int)
    np.add.at(C, (y_true, y_pred), 1)
    return C""", "sized by the labels seen"),
        W("ex1_confusion", r"calls sklearn\.metrics\.confusion_matrix", """
def confusion_matrix_by_hand(y_true, y_pred, num_classes):
    from sklearn.metrics import confusion_matrix
    return confusion_matrix(y_true, y_pred, labels=list(range(num_classes)))"""),
        R("ex1_confusion", """
def confusion_matrix_by_hand(y_true, y_pred, num_classes):
    C = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(C, (y_true, y_pred), 1)
    return C""", "np.add.at"),
        W("ex2_f1", r"an F1 is NaN", """
def f1_from_confusion(C):
    C = np.asarray(C, dtype=float)
    tp = np.diag(C); P = tp / C.sum(0); R = tp / C.sum(1)
    f1 = 2 * P * R / (P + R)
    return f1, float(np.mean(f1))"""),
        W("ex2_f1", r"numerator is 2 \* TP", """
def f1_from_confusion(C):
    C = np.asarray(C, dtype=float)
    tp = np.diag(C); fp = C.sum(0) - tp; fn = C.sum(1) - tp
    d = 2 * tp + fp + fn
    f1 = np.divide(tp, d, out=np.zeros_like(tp), where=d > 0)
    return f1, float(f1.mean())"""),
        W("ex2_f1", r"calls sftcourse\.metrics\.scores_from_confusion", """
def f1_from_confusion(C):
    s = metrics.scores_from_confusion(C)
    return s["f1"], s["macro_f1"]"""),
        R("ex2_f1", """
def f1_from_confusion(C):
    C = np.asarray(C, dtype=float)
    tp = np.diag(C)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * tp / (C.sum(0) + C.sum(1)))
    return f1, f1.mean()""", "2TP / (row + column sums), nan_to_num"),
        W("ex3_shift", r"wrapped around the edge", """
def shift_image(img, dy, dx):
    return np.roll(img, (dy, dx), axis=(0, 1))"""),
        W("ex3_shift", r"shifted the wrong way", """
def shift_image(img, dy, dx):
    H, W = img.shape
    out = np.zeros_like(img)
    for i in range(H):
        for j in range(W):
            if 0 <= i + dy < H and 0 <= j + dx < W:
                out[i, j] = img[i + dy, j + dx]
    return out"""),
        W("ex3_shift", r"img\[:-0\] is EMPTY", """
def shift_image(img, dy, dx):
    out = np.zeros_like(img)
    if dy >= 0 and dx >= 0:
        out[dy:, dx:] = img[:-dy, :-dx]
    elif dy >= 0:
        out[dy:, :dx] = img[:-dy, -dx:]
    elif dx >= 0:
        out[:dy, dx:] = img[-dy:, :-dx]
    else:
        out[:dy, :dx] = img[-dy:, -dx:]
    return out""", "the img[:-0] trap"),
        W("ex3_shift", r"changed its input", """
def shift_image(img, dy, dx):
    shifted = np.roll(img, (dy, dx), axis=(0, 1))
    if dy > 0: shifted[:dy] = 0
    if dy < 0: shifted[dy:] = 0
    if dx > 0: shifted[:, :dx] = 0
    if dx < 0: shifted[:, dx:] = 0
    img[...] = shifted
    return img"""),
        R("ex3_shift", """
def shift_image(img, dy, dx):
    H, W = img.shape
    padded = np.pad(img, ((H, H), (W, W)))
    return padded[H - dy:2 * H - dy, W - dx:2 * W - dx].copy()""", "np.pad then crop"),
    ],
    "07_cnn_resnet": [
        W("ex1_conv_sizes", r"BOTH sides", """
def conv_output_size(size, kernel, stride=1, padding=0):
    return (size + padding - kernel) // stride + 1"""),
        W("ex1_conv_sizes", r"one short", """
def conv_output_size(size, kernel, stride=1, padding=0):
    return (size + 2 * padding - kernel) // stride"""),
        W("ex1_conv_sizes", r"integer division", """
def conv_output_size(size, kernel, stride=1, padding=0):
    return (size + 2 * padding - kernel) / stride + 1"""),
        W("ex1_conv_sizes", r"EACH input channel", """
def conv_num_params(c_in, c_out, kernel, bias=True):
    return c_out * kernel * kernel + (c_out if bias else 0)"""),
        W("ex1_conv_sizes", r"calls torch\.nn\.Conv2d\.__init__", """
def conv_num_params(c_in, c_out, kernel, bias=True):
    return sum(p.numel() for p in nn.Conv2d(c_in, c_out, kernel, bias=bias).parameters())"""),
        R("ex1_conv_sizes", """
import math
def conv_output_size(size, kernel, stride=1, padding=0):
    return int(math.floor((size - kernel + 2 * padding) / stride)) + 1""", "math.floor"),
        W("ex2_batch_norm", r"each CHANNEL over \(n, h, w\)", """
def batch_norm_train(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    mean = x.mean(dim=(1, 2, 3), keepdim=True); var = x.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
    y = (x - mean) / torch.sqrt(var + eps) * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1)
    return y, running_mean, running_var"""),
        W("ex2_batch_norm", r"BIASED batch variance", """
def batch_norm_train(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3))
    s = (1, -1, 1, 1)
    y = (x - mean.view(s)) / torch.sqrt(var.view(s) + eps) * gamma.view(s) + beta.view(s)
    return y, (1 - momentum) * running_mean + momentum * mean, (1 - momentum) * running_var + momentum * var"""),
        W("ex2_batch_norm", r"UNBIASED batch variance", """
def batch_norm_train(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)
    s = (1, -1, 1, 1)
    y = (x - mean.view(s)) / torch.sqrt(var.view(s) + eps) * gamma.view(s) + beta.view(s)
    return y, (1 - momentum) * running_mean + momentum * mean, (1 - momentum) * running_var + momentum * var"""),
        W("ex2_batch_norm", r"calls torch\.nn\.functional\.batch_norm", """
def batch_norm_train(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    rm, rv = running_mean.clone(), running_var.clone()
    y = F.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=momentum, eps=eps)
    return y, rm, rv"""),
        W("ex2_batch_norm", r"do not change the inputs in place", """
def batch_norm_train(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)
    m = x.numel() // x.shape[1]; s = (1, -1, 1, 1)
    y = (x - mean.view(s)) / torch.sqrt(var.view(s) + eps) * gamma.view(s) + beta.view(s)
    running_mean.mul_(1 - momentum).add_(momentum * mean)
    running_var.mul_(1 - momentum).add_(momentum * var * m / (m - 1))
    return y, running_mean, running_var"""),
        R("ex2_batch_norm", """
def batch_norm_train(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    xc = x.transpose(0, 1).reshape(x.shape[1], -1)            # (c, n*h*w)
    mean, var_b = xc.mean(1), xc.var(1, unbiased=False)
    var_u = xc.var(1, unbiased=True)
    y = (x - mean[:, None, None]) * torch.rsqrt(var_b[:, None, None] + eps) * gamma[:, None, None] + beta[:, None, None]
    return y, torch.lerp(running_mean, mean, momentum), torch.lerp(running_var, var_u, momentum)""", "lerp, rsqrt"),
        W("ex3_max_pool", r"windows are mixed up", """
def max_pool_2x2(x):
    n, c, H, W = x.shape
    return x.reshape(n, c, 2, H // 2, 2, W // 2).amax(dim=(2, 4))"""),
        W("ex3_max_pool", r"average pooling", """
def max_pool_2x2(x):
    n, c, H, W = x.shape
    return x.reshape(n, c, H // 2, 2, W // 2, 2).mean(dim=(3, 5))"""),
        W("ex3_max_pool", r"need not be square", """
def max_pool_2x2(x):
    n, c, H, _ = x.shape
    return x.reshape(n, c, H // 2, 2, H // 2, 2).amax(dim=(3, 5))"""),
        W("ex3_max_pool", r"calls torch\.nn\.functional\.max_pool2d", """
def max_pool_2x2(x):
    return F.max_pool2d(x, 2)"""),
        R("ex3_max_pool", """
def max_pool_2x2(x):
    return x.unfold(2, 2, 2).unfold(3, 2, 2).amax(dim=(-2, -1))""", "unfold"),
        W("ex4_residual", r"shortcut is missing", """
def residual_forward(block, x):
    return F.relu(block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x))))))"""),
        W("ex4_residual", r"AFTER adding the shortcut", """
def residual_forward(block, x):
    return F.relu(block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))) + block.shortcut(x)"""),
        W("ex4_residual", r"add block\.shortcut\(x\), not x", """
def residual_forward(block, x):
    return F.relu(block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x))))) + x)"""),
        W("ex4_residual", r"build y from the block's layers", """
def residual_forward(block, x):
    return block(x)"""),
        R("ex4_residual", """
def residual_forward(block, x):
    h = torch.relu(block.bn1(block.conv1(x)))
    return (block.bn2(block.conv2(h)) + block.shortcut(x)).clamp(min=0)""", "clamp as ReLU"),
    ],
    "08_finetune_resnet": [
        W("ex1_freeze", r"models differ in their number of stages", """
def freeze_all_but_last_stage(model):
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(("stage3.", "fc.")))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)""", "hard-coded stage3"),
        W("ex1_freeze", r"head is frozen", """
def freeze_all_but_last_stage(model):
    last = model.stage_names[-1] + "."
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(last))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)"""),
        W("ex1_freeze", r"number of ALL parameters", """
def freeze_all_but_last_stage(model):
    keep = (model.stage_names[-1] + ".", "fc.")
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(keep))
    return sum(p.numel() for p in model.parameters())"""),
        W("ex1_freeze", r"calls sftcourse\.finetune\.freeze_all_but", """
def freeze_all_but_last_stage(model):
    from sftcourse.finetune import freeze_all_but
    return freeze_all_but(model, [model.stage_names[-1], "fc"])"""),
        R("ex1_freeze", """
def freeze_all_but_last_stage(model):
    model.requires_grad_(False)
    getattr(model, model.stage_names[-1]).requires_grad_(True)
    model.fc.requires_grad_(True)
    return count_parameters(model, trainable_only=True)""", "module.requires_grad_, count_parameters allowed"),
        W("ex2_lr_groups", r"order is reversed", """
def stage_lr_groups(model, base_lr, decay):
    parts = ["stem", *model.stage_names, "fc"]
    groups = []
    for depth, part in enumerate(parts):
        ps = [p for n, p in model.named_parameters() if n.startswith(part + ".") and p.requires_grad]
        if ps:
            groups.append({"params": ps, "lr": base_lr * decay ** depth})
    return groups"""),
        W("ex2_lr_groups", r"not a fixed list", """
def stage_lr_groups(model, base_lr, decay):
    parts = ["stem", "stage1", "stage2", "stage3", "fc"]
    groups = []
    for depth, part in enumerate(reversed(parts)):
        ps = [p for n, p in model.named_parameters() if n.startswith(part + ".") and p.requires_grad]
        if ps:
            groups.append({"params": ps, "lr": base_lr * decay ** depth})
    return groups""", "hard-coded part list"),
        W("ex2_lr_groups", r"frozen parameters were included", """
def stage_lr_groups(model, base_lr, decay):
    parts = ["stem", *model.stage_names, "fc"]
    return [{"params": [p for n, p in model.named_parameters() if n.startswith(part + ".")],
             "lr": base_lr * decay ** depth} for depth, part in enumerate(reversed(parts))]"""),
        W("ex2_lr_groups", r"calls sftcourse\.finetune\.discriminative_param_groups", """
def stage_lr_groups(model, base_lr, decay):
    from sftcourse import finetune
    return finetune.discriminative_param_groups(model, base_lr, decay)"""),
        R("ex2_lr_groups", """
def stage_lr_groups(model, base_lr, decay):
    parts = ["stem"] + list(model.stage_names) + ["fc"]
    groups, lr = [], base_lr
    for part in parts[::-1]:
        ps = [p for p in getattr(model, part).parameters() if p.requires_grad]
        if ps:
            groups.append(dict(params=ps, lr=lr))
        lr *= decay
    return groups""", "getattr on the parts"),
        W("ex3_normalize", r"divide by 255", """
def normalize_like_pretraining(images, mean, std):
    m = torch.tensor(mean).view(1, -1, 1, 1); s = torch.tensor(std).view(1, -1, 1, 1)
    return (images.float() - m) / s"""),
        W("ex3_normalize", r"view them as \(1, c, 1, 1\)", """
def normalize_like_pretraining(images, mean, std):
    return (images.float() / 255 - torch.tensor(mean)) / torch.tensor(std)""", "no per-channel view"),
        W("ex3_normalize", r"return float32", """
def normalize_like_pretraining(images, mean, std):
    m = torch.tensor(mean, dtype=torch.float64).view(1, -1, 1, 1); s = torch.tensor(std, dtype=torch.float64).view(1, -1, 1, 1)
    return (images.double() / 255 - m) / s"""),
        R("ex3_normalize", """
def normalize_like_pretraining(images, mean, std):
    x = images.to(torch.float32).div(255)
    return (x - torch.as_tensor(mean)[None, :, None, None]) / torch.as_tensor(std)[None, :, None, None]""", "indexing with None"),
        W("ex4_forgetting", r"restore the model's train/eval mode", """
def old_task_accuracy(model, old_head, images, labels, mean, std):
    new_head = model.fc
    model.fc = old_head
    model.eval()
    with torch.no_grad():
        pred = model(normalize_like_pretraining(images, mean, std)).argmax(1)
    model.fc = new_head
    model.train()
    return float((pred == labels).float().mean())""", "always back to train()"),
        W("ex4_forgetting", r"batch-norm statistics changed", """
def old_task_accuracy(model, old_head, images, labels, mean, std):
    new_head = model.fc
    model.fc = old_head
    with torch.no_grad():
        pred = model(normalize_like_pretraining(images, mean, std)).argmax(1)
    model.fc = new_head
    return float((pred == labels).float().mean())""", "no eval()"),
        W("ex4_forgetting", r"own head must be back", """
def old_task_accuracy(model, old_head, images, labels, mean, std):
    was = model.training
    model.fc = old_head
    model.eval()
    with torch.no_grad():
        pred = model(normalize_like_pretraining(images, mean, std)).argmax(1)
    model.train(was)
    return float((pred == labels).float().mean())"""),
        R("ex4_forgetting", """
def old_task_accuracy(model, old_head, images, labels, mean, std):
    mode, head = model.training, model.fc
    model.eval(); model.fc = old_head
    with torch.inference_mode():
        correct = (model(normalize_like_pretraining(images, mean, std)).argmax(1) == labels).sum().item()
    model.fc = head; model.train(mode)
    return correct / len(labels)""", "inference_mode, counts"),
    ],
    "09_attention_transformer": [
        W("ex1_attention", r"without scaling", """
def attention(Q, K, V, mask=None):
    s = Q @ K.transpose(-2, -1)
    if mask is not None:
        s = s.masked_fill(~mask, torch.finfo(s.dtype).min)
    w = torch.softmax(s, dim=-1)
    return w @ V, w"""),
        W("ex1_attention", r"sum to 1", """
def attention(Q, K, V, mask=None):
    s = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, torch.finfo(s.dtype).min)
    w = torch.softmax(s, dim=-2)
    return w @ V, w"""),
        W("ex1_attention", r"any number of leading axes", """
def attention(Q, K, V, mask=None):
    s = Q @ K.transpose(1, 2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, torch.finfo(s.dtype).min)
    w = torch.softmax(s, dim=-1)
    return w @ V, w""", "transpose(1, 2)"),
        W("ex1_attention", r"masked keys must get weight exactly 0", """
def attention(Q, K, V, mask=None):
    s = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])
    if mask is not None:
        s = s.masked_fill(mask, -1e9)
    w = torch.softmax(s, dim=-1)
    return w @ V, w""", "mask inverted"),
        W("ex1_attention", r"calls sftcourse\.attention\.scaled_dot_product_attention", """
def attention(Q, K, V, mask=None):
    return scaled_dot_product_attention(Q, K, V, mask)"""),
        R("ex1_attention", """
def attention(Q, K, V, mask=None):
    scores = torch.einsum("...qd,...kd->...qk", Q, K) * Q.shape[-1] ** -0.5
    if mask is not None:
        scores = torch.where(mask, scores, torch.tensor(float("-inf"), dtype=scores.dtype))
    weights = scores.softmax(-1)
    return torch.einsum("...qk,...kd->...qd", weights, V), weights""", "einsum, -inf"),
        W("ex2_heads", r"mixes features of different tokens", """
def split_heads(x, num_heads):
    B, T, H = x.shape
    return x.reshape(B, num_heads, T, H // num_heads)"""),
        R("ex2_heads", """
def split_heads(x, num_heads):
    return torch.stack(x.chunk(num_heads, dim=-1), dim=1)""", "chunk and stack"),
        W("ex3_mlm_loss", r"fraction of targets", """
def mlm_loss(logits, labels):
    targets = labels != -100
    lp = torch.log_softmax(logits, -1).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    return -(lp * targets).mean()""", "mean over all positions"),
        W("ex3_mlm_loss", r"wrong sign", """
def mlm_loss(logits, labels):
    t = labels != -100
    return torch.log_softmax(logits[t], -1).gather(1, labels[t][:, None]).mean()"""),
        W("ex3_mlm_loss", r"calls torch\.nn\.functional\.cross_entropy", """
def mlm_loss(logits, labels):
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)"""),
        R("ex3_mlm_loss", """
def mlm_loss(logits, labels):
    keep = labels.ne(-100)
    lp = torch.log_softmax(logits, dim=-1).gather(-1, labels.masked_fill(~keep, 0).unsqueeze(-1)).squeeze(-1)
    return -(lp * keep).sum() / keep.sum()""", "masked sum over all positions"),
        W("ex4_mean_pool", r"ALL positions, padding included", """
def mean_pool(hidden, attention_mask):
    return hidden.mean(dim=1)"""),
        W("ex4_mean_pool", r"still divided by T", """
def mean_pool(hidden, attention_mask):
    return (hidden * attention_mask[..., None]).mean(dim=1)"""),
        W("ex4_mean_pool", r"calls sftcourse\.text\.mean_pool", """
def mean_pool(hidden, attention_mask):
    return reference_mean_pool(hidden, attention_mask)"""),
        R("ex4_mean_pool", """
def mean_pool(hidden, attention_mask):
    m = attention_mask.to(hidden.dtype)
    return torch.einsum("bth,bt->bh", hidden, m) / m.sum(1, keepdim=True)""", "einsum"),
        W("ex5_drop_repeats", r"differ only in spaces or line breaks", """
def drop_repeats(texts, labels):
    seen, kept, kept_labels = set(), [], []
    for t, y in zip(texts, labels):
        if t not in seen:
            seen.add(t); kept.append(t); kept_labels.append(y)
    return kept, kept_labels, len(texts) - len(kept)""", "compares raw texts"),
        W("ex5_drop_repeats", r"dropped every copy", """
def drop_repeats(texts, labels):
    from collections import Counter
    keys = [" ".join(t.split()) for t in texts]
    n = Counter(keys)
    kept = [(k, y) for k, y in zip(keys, labels) if n[k] == 1]
    return [k for k, _ in kept], [y for _, y in kept], len(texts) - len(kept)""", "keeps only unrepeated texts"),
        W("ex5_drop_repeats", r"come out sorted", """
def drop_repeats(texts, labels):
    first = {}
    for t, y in zip(texts, labels):
        first.setdefault(" ".join(t.split()), y)
    kept = sorted(first)
    return kept, [first[k] for k in kept], len(texts) - len(kept)""", "sorted set"),
        W("ex5_drop_repeats", r"first copy .* original order", """
def drop_repeats(texts, labels):
    last = {}
    for t, y in zip(texts, labels):
        key = " ".join(t.split())
        last.pop(key, None)
        last[key] = y
    return list(last), list(last.values()), len(texts) - len(last)""", "keeps the last copy"),
        W("ex5_drop_repeats", r"calls sftcourse\.topics\.drop_duplicates", """
def drop_repeats(texts, labels):
    from sftcourse.topics import drop_duplicates
    from sftcourse.text import TextDataset
    kept, exact, _ = drop_duplicates(TextDataset(texts, labels, [str(c) for c in range(max(labels) + 1)]), lead_chars=None)
    return kept.texts, kept.labels, exact""", "delegates"),
        R("ex5_drop_repeats", """
def drop_repeats(texts, labels):
    first = {}
    for t, y in zip(texts, labels):
        first.setdefault(" ".join(t.split()), y)
    return list(first), list(first.values()), len(texts) - len(first)""", "dict keeps insertion order"),
    ],
    "10_finetune_bert": [
        W("ex1_pad_batch", r"dynamic padding", """
def pad_batch(sequences, pad_id):
    ids = torch.full((len(sequences), 128), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, s in enumerate(sequences):
        ids[b, :len(s)] = torch.tensor(s); mask[b, :len(s)] = 1
    return ids, mask""", "fixed max length"),
        W("ex1_pad_batch", r"you padded with 0", """
def pad_batch(sequences, pad_id):
    T = max(map(len, sequences))
    ids = torch.zeros((len(sequences), T), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, s in enumerate(sequences):
        ids[b, :len(s)] = torch.tensor(s); mask[b, :len(s)] = 1
    return ids, mask""", "always pads with 0"),
        W("ex1_pad_batch", r"cannot be input_ids != pad_id", """
def pad_batch(sequences, pad_id):
    T = max(map(len, sequences))
    ids = torch.tensor([s + [pad_id] * (T - len(s)) for s in sequences], dtype=torch.long)
    return ids, (ids != pad_id).long()""", "mask from the ids"),
        W("ex1_pad_batch", r"calls sftcourse\.text\.pad_collate", """
def pad_batch(sequences, pad_id):
    out = pad_collate([{"input_ids": s} for s in sequences], pad_id)
    return out["input_ids"], out["attention_mask"]"""),
        R("ex1_pad_batch", """
def pad_batch(sequences, pad_id):
    from torch.nn.utils.rnn import pad_sequence
    seqs = [torch.tensor(s, dtype=torch.long) for s in sequences]
    ids = pad_sequence(seqs, batch_first=True, padding_value=pad_id)
    mask = pad_sequence([torch.ones_like(s) for s in seqs], batch_first=True, padding_value=0)
    return ids, mask""", "pad_sequence"),
        W("ex2_encode_labels", r"SORTED distinct names", """
def encode_labels(names, label_names=None):
    classes = list(dict.fromkeys(names)) if label_names is None else list(label_names)
    mapping = {n: i for i, n in enumerate(classes)}
    if set(names) - set(mapping):
        raise ValueError(f"unknown {sorted(set(names) - set(mapping))}")
    return [mapping[n] for n in names], mapping""", "order of appearance"),
        W("ex2_encode_labels", r"class i is label_names\[i\]", """
def encode_labels(names, label_names=None):
    classes = sorted(set(names) if label_names is None else label_names)
    mapping = {n: i for i, n in enumerate(classes)}
    if set(names) - set(mapping):
        raise ValueError(f"unknown {sorted(set(names) - set(mapping))}")
    return [mapping[n] for n in names], mapping""", "sorts the given label names"),
        W("ex2_encode_labels", r"should raise ValueError", """
def encode_labels(names, label_names=None):
    classes = sorted(set(names)) if label_names is None else list(label_names)
    mapping = {n: i for i, n in enumerate(classes)}
    return [mapping.get(n, -1) for n in names], mapping""", "silent -1"),
        R("ex2_encode_labels", """
def encode_labels(names, label_names=None):
    classes = sorted(set(names)) if label_names is None else label_names
    mapping = dict(zip(classes, range(len(classes))))
    ids = []
    for n in names:
        if n not in mapping:
            raise ValueError(f"label {n!r} is not one of {list(classes)}")
        ids.append(mapping[n])
    return ids, mapping""", "explicit loop"),
        W("ex3_macro_f1", r"returned the accuracy", """
def macro_f1(logits, labels):
    return float((logits.argmax(1) == labels).float().mean())"""),
        W("ex3_macro_f1", r"classes that occur", """
def macro_f1(logits, labels):
    pred = logits.argmax(1)
    f1s = []
    for c in labels.unique().tolist():
        tp = ((pred == c) & (labels == c)).sum().item()
        fp = ((pred == c) & (labels != c)).sum().item(); fn = ((pred != c) & (labels == c)).sum().item()
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return sum(f1s) / len(f1s)""", "average over the labels present"),
        W("ex3_macro_f1", r"weighted the classes by their size", """
def macro_f1(logits, labels):
    pred = logits.argmax(1); C = logits.shape[1]
    total = 0.0
    for c in range(C):
        tp = ((pred == c) & (labels == c)).sum().item()
        fp = ((pred == c) & (labels != c)).sum().item(); fn = ((pred != c) & (labels == c)).sum().item()
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        total += f1 * (labels == c).sum().item()
    return total / len(labels)"""),
        W("ex3_macro_f1", r"calls sklearn\.metrics\.f1_score", """
def macro_f1(logits, labels):
    from sklearn.metrics import f1_score
    return float(f1_score(labels, logits.argmax(1), average="macro", labels=list(range(logits.shape[1])), zero_division=0))"""),
        R("ex3_macro_f1", """
def macro_f1(logits, labels):
    C = logits.shape[1]
    cm = torch.bincount(labels * C + logits.argmax(1), minlength=C * C).reshape(C, C).double()
    tp = cm.diag()
    denom = cm.sum(0) + cm.sum(1)
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.zeros_like(tp))
    return f1.mean().item()""", "confusion matrix by bincount"),
        W("ex4_mistakes", r"sorted the wrong way", """
def most_confident_mistakes(logits, labels, k):
    conf, pred = torch.softmax(logits, 1).max(1)
    wrong = (pred != labels).nonzero().flatten()
    return wrong[conf[wrong].argsort()][:k].tolist()"""),
        W("ex4_mistakes", r"correctly classified samples", """
def most_confident_mistakes(logits, labels, k):
    conf = torch.softmax(logits, 1).max(1).values
    return conf.argsort(descending=True)[:k].tolist()"""),
        R("ex4_mistakes", """
def most_confident_mistakes(logits, labels, k):
    p = logits.softmax(-1)
    conf, pred = p.max(-1)
    idx = [i for i in range(len(labels)) if pred[i] != labels[i]]
    return sorted(idx, key=lambda i: conf[i].item(), reverse=True)[:k]""", "plain Python sort"),
    ],
}

"""sftcourse.train: the batch convention, the loop's arithmetic, checkpoints, and its error messages."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sftcourse.train import (
    EarlyStopping,
    History,
    check_logits_labels,
    evaluate,
    fit,
    forward_logits,
    load_checkpoint,
    predict,
    save_checkpoint,
    train_epoch,
    unpack_batch,
)

CPU = torch.device("cpu")


def _data(n=40, d=3, c=3, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=dtype)
    y = torch.randint(0, c, (n,), generator=g)
    return X, y


def _mlp(d=3, c=3, seed=0, dropout=0.0, dtype=torch.float32):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 8), nn.Tanh(), nn.Dropout(dropout), nn.Linear(8, c)).to(dtype)


def _loader(X, y, batch_size, shuffle=False, seed=0, drop_last=False):
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=shuffle, generator=gen,
                      drop_last=drop_last)


class DictModel(nn.Module):
    """A Hugging Face-shaped model: keyword inputs, an output object with .logits."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, features, mask):
        return SimpleNamespace(logits=self.lin(features * mask))


# --- the batch convention ---------------------------------------------------------------


def test_unpack_batch_tuple_mapping_and_lone_tensor():
    X, y = _data(4)
    x1, y1 = unpack_batch((X, y), "cpu")
    assert x1 is X or torch.equal(x1, X)
    assert torch.equal(y1, y)
    inputs, labels = unpack_batch({"features": X, "mask": torch.ones(4, 3), "labels": y, "note": "kept"}, CPU)
    assert set(inputs) == {"features", "mask", "note"} and torch.equal(labels, y)
    x3, y3 = unpack_batch(X, CPU)
    assert y3 is None and torch.equal(x3, X)
    with pytest.raises(ValueError, match=r"must be \(x, y\)"):
        unpack_batch((X, y, y), CPU)


def test_forward_logits_uses_dot_logits_and_mapping_batches_train():
    X, y = _data(16, c=2)
    model = DictModel()
    inputs, labels = unpack_batch({"features": X, "mask": torch.ones_like(X), "labels": y % 2}, CPU)
    assert torch.equal(forward_logits(model, inputs), model.lin(X))
    batches = [{"features": X[i:i + 4], "mask": torch.ones(4, 3), "labels": y[i:i + 4] % 2} for i in range(0, 16, 4)]
    h = fit(model, batches, batches, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            loss_fn=nn.CrossEntropyLoss(), device=CPU, num_epochs=2, progress=False)
    assert len(h["val_loss"]) == 2 and 0 <= h["val_accuracy"][-1] <= 1


def test_a_tiny_hugging_face_model_trains_through_the_mapping_convention():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=16, num_labels=2)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(cfg)
    ids = torch.randint(1, 50, (8, 6))
    batches = [{"input_ids": ids[i:i + 4], "attention_mask": torch.ones(4, 6, dtype=torch.long),
                "labels": torch.tensor([0, 1, 0, 1])} for i in (0, 4)]
    h = fit(model, batches, batches, optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3),
            loss_fn=nn.CrossEntropyLoss(), device=CPU, num_epochs=2, progress=False)
    assert h["epoch"] == [1, 2]
    logits, labels = predict(model, batches, device=CPU)
    assert logits.shape == (8, 2) and labels.tolist() == [0, 1, 0, 1] * 2


# --- the loop's arithmetic ----------------------------------------------------------------


def _params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize("n, micro, k", [(16, 4, 4), (20, 4, 3)])  # the second ends on a short group (12 + 8)
def test_gradient_accumulation_equals_one_big_batch(n, micro, k):
    X, y = _data(n, dtype=torch.float64)
    small, big = _mlp(dtype=torch.float64), _mlp(dtype=torch.float64)
    big.load_state_dict(small.state_dict())
    fit(small, _loader(X, y, micro), optimizer=torch.optim.SGD(small.parameters(), lr=0.3),
        loss_fn=nn.CrossEntropyLoss(), device=CPU, num_epochs=2, grad_accum_steps=k, progress=False)
    fit(big, _loader(X, y, micro * k), optimizer=torch.optim.SGD(big.parameters(), lr=0.3),
        loss_fn=nn.CrossEntropyLoss(), device=CPU, num_epochs=2, progress=False)
    start = _mlp(dtype=torch.float64)
    assert not torch.allclose(_params(big), _params(start))  # training moved the weights
    torch.testing.assert_close(_params(small), _params(big), rtol=1e-12, atol=1e-12)


def test_naive_accumulation_without_the_scale_would_differ():
    """The oracle above can fail: summing un-scaled micro-batch losses gives k times the gradient."""
    X, y = _data(16, dtype=torch.float64)
    model = _mlp(dtype=torch.float64)
    loss_fn = nn.CrossEntropyLoss()
    for i in range(0, 16, 4):
        loss_fn(model(X[i:i + 4]), y[i:i + 4]).backward()
    naive = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    model.zero_grad()
    loss_fn(model(X), y).backward()
    full = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(naive, 4 * full, rtol=1e-10, atol=1e-12)


def test_one_step_is_zero_grad_forward_loss_backward_step():
    X, y = _data(8, dtype=torch.float64)
    model, ref = _mlp(dtype=torch.float64), _mlp(dtype=torch.float64)
    fit(model, _loader(X, y, 8), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        loss_fn=nn.CrossEntropyLoss(), device=CPU, num_epochs=1, progress=False)
    loss = nn.functional.cross_entropy(ref(X), y)
    grads = torch.autograd.grad(loss, list(ref.parameters()))
    expected = torch.cat([(p - 0.1 * g).reshape(-1) for p, g in zip(ref.parameters(), grads)])
    torch.testing.assert_close(_params(model), expected.detach(), rtol=1e-12, atol=1e-12)


def test_max_grad_norm_clips_the_update():
    X, y = _data(8, dtype=torch.float64)
    model = _mlp(dtype=torch.float64)
    before = _params(model).clone()
    h = fit(model, _loader(X, y, 8), optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
            loss_fn=nn.CrossEntropyLoss(), device=CPU, num_epochs=1, max_grad_norm=1e-3, progress=False)
    assert h["grad_norm"][0] > 1e-3  # the raw gradient was bigger than the limit...
    # ...the step was cut to it (torch divides by norm + 1e-6, hence the relative tolerance)
    assert float(torch.linalg.vector_norm(_params(model) - before)) == pytest.approx(1e-3, rel=1e-4)


def test_scheduler_is_stepped_per_optimizer_step_and_lr_is_logged():
    X, y = _data(40)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1 + step))
    h = fit(model, _loader(X, y, 4), optimizer=opt, loss_fn=nn.CrossEntropyLoss(), device=CPU, num_epochs=3,
            scheduler=sched, grad_accum_steps=2, progress=False)
    assert sched.last_epoch == 3 * 5  # 10 batches / 2 per step = 5 optimizer steps per epoch
    # "lr" is the rate of each epoch's last optimizer step (steps 4, 9, 14 counted from 0)
    assert h["lr"] == pytest.approx([1 / 5, 1 / 10, 1 / 15])


def test_amp_is_a_no_op_on_cpu():
    X, y = _data(24)
    runs = []
    for amp in (False, True, torch.bfloat16):
        model = _mlp()
        runs.append(fit(model, _loader(X, y, 8), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                        loss_fn=nn.CrossEntropyLoss(), device=CPU, num_epochs=2, amp=amp,
                        progress=False)["train_loss"])
    assert runs[0] == runs[1] == runs[2]
    model = _mlp()
    with pytest.raises(ValueError, match="amp must be"):
        fit(model, _loader(X, y, 8), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            loss_fn=nn.CrossEntropyLoss(), device=CPU, num_epochs=1, amp="yes", progress=False)


@pytest.mark.gpu
def test_amp_bf16_on_cuda_trains():
    dev = torch.device("cuda")
    X, y = _data(64)
    model = _mlp().to(dev)
    h = fit(model, _loader(X, y, 16), _loader(X, y, 32), optimizer=torch.optim.AdamW(model.parameters(), lr=1e-2),
            loss_fn=nn.CrossEntropyLoss(), device=dev, num_epochs=5, amp=True, max_grad_norm=1.0, progress=False)
    assert h["train_loss"][-1] < h["train_loss"][0]
    half = _mlp().to(dev)
    h16 = fit(half, _loader(X, y, 16), optimizer=torch.optim.AdamW(half.parameters(), lr=1e-2),
              loss_fn=nn.CrossEntropyLoss(), device=dev, num_epochs=5, amp=torch.float16, progress=False)
    assert h16["train_loss"][-1] < h16["train_loss"][0]


def test_progress_bars_run(capsys):
    X, y = _data(16)
    model = _mlp()
    h = fit(model, _loader(X, y, 4), _loader(X, y, 8), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            loss_fn=nn.CrossEntropyLoss(), device=CPU, num_epochs=2, progress=True)
    assert isinstance(h, History) and h["epoch"] == [1, 2]
    assert "epochs" in capsys.readouterr().err


# --- evaluation ---------------------------------------------------------------------------


def test_evaluate_matches_a_direct_computation_and_restores_train_mode():
    X, y = _data(30)
    model = _mlp(dropout=0.5)
    model.train()
    out = evaluate(model, _loader(X, y, 7), loss_fn=nn.CrossEntropyLoss(), device=CPU, metrics=("accuracy", "macro_f1"))
    assert model.training
    model.eval()
    with torch.no_grad():
        logits = model(X)
    assert out["loss"] == pytest.approx(float(nn.functional.cross_entropy(logits, y)), rel=1e-6)
    assert out["accuracy"] == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    assert 0 <= out["macro_f1"] <= 1


def test_evaluate_binary_logits_with_bce():
    X, _ = _data(20)
    y = (X[:, 0] > 0).float()
    model = nn.Linear(3, 1)
    out = evaluate(model, _loader(X, y[:, None], 6), loss_fn=nn.BCEWithLogitsLoss(), device=CPU)
    with torch.no_grad():
        acc = float(((model(X)[:, 0] > 0).float() == y).float().mean())
    assert out["accuracy"] == pytest.approx(acc)


def test_predict_returns_cpu_logits_and_labels_in_order():
    X, y = _data(10)
    model = _mlp()
    logits, labels = predict(model, _loader(X, y, 3), device=CPU)
    assert logits.device.type == "cpu" and torch.equal(labels, y)
    with torch.no_grad():
        torch.testing.assert_close(logits, model(X))
    logits2, none = predict(model, [X[:5], X[5:]], device=CPU)
    assert none is None and logits2.shape == (10, 3)


# --- early stopping -------------------------------------------------------------------------


def test_early_stopping_counts_patience_and_respects_min_delta():
    model = nn.Linear(1, 1)
    es = EarlyStopping(patience=2, min_delta=0.1)
    assert [es.step(v, model, e) for e, v in enumerate([1.0, 0.95, 0.5, 0.45, 0.44], start=1)] == \
        [False, False, False, False, True]
    assert es.best == 0.5 and es.best_epoch == 3
    es_max = EarlyStopping(patience=1, mode="max")
    assert es_max.step(0.5, model, 1) is False and es_max.step(0.4, model, 2) is True
    for bad in (dict(patience=0), dict(min_delta=-1), dict(mode="up")):
        with pytest.raises(ValueError):
            EarlyStopping(**bad)


def test_fit_stops_early_and_restores_the_best_weights():
    X, y = _data(40)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # nothing improves after the first epoch
    h = fit(model, _loader(X, y, 8), _loader(X, y, 8), optimizer=opt, loss_fn=nn.CrossEntropyLoss(), device=CPU,
            num_epochs=20, early_stopping=EarlyStopping(patience=3), progress=False)
    assert h["epoch"] == [1, 2, 3, 4] and h.stopped_early and h.best_epoch == 1

    # with a real lr on a tiny training set the model overfits; the best val epoch's weights come back
    Xt, yt = _data(12, seed=1)
    Xv, yv = _data(60, seed=2)
    model = _mlp(seed=3)
    es = EarlyStopping(patience=2, min_delta=0.0)
    h = fit(model, _loader(Xt, yt, 4), _loader(Xv, yv, 30), optimizer=torch.optim.Adam(model.parameters(), lr=0.05),
            loss_fn=nn.CrossEntropyLoss(), device=CPU, num_epochs=60, early_stopping=es, progress=False)
    assert h.best_epoch == 1 + min(range(len(h["val_loss"])), key=h["val_loss"].__getitem__)
    best_val = evaluate(model, _loader(Xv, yv, 30), loss_fn=nn.CrossEntropyLoss(), device=CPU)["loss"]
    assert best_val == pytest.approx(min(h["val_loss"]), rel=1e-6)


# --- checkpoints ---------------------------------------------------------------------------


def _resumable_run(path, num_epochs, resume=False, seed=0):
    """A run whose every epoch depends on RNG: shuffled batches, dropout, Adam, a schedule."""
    X, y = _data(48, seed=5)
    model = _mlp(dropout=0.3, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.95 ** step)
    train = _loader(X, y, 8, shuffle=True, seed=123)
    val = _loader(X, y, 16)
    h = fit(model, train, val, optimizer=opt, loss_fn=nn.CrossEntropyLoss(), device=CPU, num_epochs=num_epochs,
            scheduler=sched, checkpoint_path=path, resume=resume, progress=False,
            early_stopping=EarlyStopping(patience=50))
    return h, model


def test_resumed_run_reproduces_the_uninterrupted_run_exactly(tmp_path):
    full, full_model = _resumable_run(tmp_path / "full.pt", 5)
    _resumable_run(tmp_path / "cut.pt", 2)  # "interrupted" after epoch 2
    assert load_checkpoint(tmp_path / "cut.pt")["epoch"] == 2
    torch.manual_seed(999)  # a new session: the global RNG is elsewhere
    resumed, resumed_model = _resumable_run(tmp_path / "cut.pt", 5, resume=True)
    assert resumed["epoch"] == [1, 2, 3, 4, 5]
    assert resumed["train_loss"] == full["train_loss"]
    assert resumed["val_loss"] == full["val_loss"]
    assert resumed["lr"] == full["lr"]
    assert torch.equal(_params(resumed_model), _params(full_model))


def test_resuming_without_the_rng_states_would_not_reproduce(tmp_path):
    """The exact-equality test above can fail: restoring only model and optimizer changes later epochs."""
    full, _ = _resumable_run(tmp_path / "full.pt", 4)
    _resumable_run(tmp_path / "cut.pt", 2)
    ckpt = load_checkpoint(tmp_path / "cut.pt")
    X, y = _data(48, seed=5)
    model = _mlp(dropout=0.3)
    model.load_state_dict(ckpt["model"])
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    opt.load_state_dict(ckpt["optimizer"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.95 ** step)
    sched.load_state_dict(ckpt["scheduler"])
    h = fit(model, _loader(X, y, 8, shuffle=True, seed=123), optimizer=opt, loss_fn=nn.CrossEntropyLoss(),
            device=CPU, num_epochs=2, scheduler=sched, progress=False)
    assert h["train_loss"] != full["train_loss"][2:]


def test_resume_without_a_file_starts_fresh_and_a_finished_run_returns_its_history(tmp_path):
    h1, _ = _resumable_run(tmp_path / "new.pt", 2, resume=True)
    assert h1["epoch"] == [1, 2]
    h2, _ = _resumable_run(tmp_path / "new.pt", 2, resume=True)
    assert h2["train_loss"] == h1["train_loss"]
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


# --- errors before torch's tracebacks ------------------------------------------------------


def _fit(model=None, loader=None, **kw):
    X, y = _data(16)
    model = model if model is not None else _mlp()
    args = dict(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=nn.CrossEntropyLoss(),
                device=CPU, num_epochs=1, progress=False)
    args.update(kw)
    return fit(model, loader if loader is not None else _loader(X, y, 4), **args)


def test_empty_loaders_are_named():
    X, y = _data(3)
    with pytest.raises(ValueError, match=r"train_loader is empty: .*3 samples, batch_size=8, drop_last=True"):
        _fit(loader=_loader(X, y, 8, drop_last=True))
    with pytest.raises(ValueError, match="train_loader is empty"):
        _fit(loader=iter([]))
    with pytest.raises(ValueError, match="val_loader is empty"):
        fit(_mlp(), _loader(X, y, 2), [], optimizer=torch.optim.SGD(_mlp().parameters(), lr=0.1),
            loss_fn=nn.CrossEntropyLoss(), device=CPU, num_epochs=1, progress=False)


@pytest.mark.parametrize("logits_shape, labels, loss_fn, message", [
    ((4,), torch.tensor([0, 1, 0, 1]), nn.CrossEntropyLoss(), r"needs \(batch, num_classes\)"),
    ((4, 3), torch.tensor([[0], [1], [2], [0]]), nn.CrossEntropyLoss(), r"squeeze"),
    ((4, 3), torch.tensor([0, 1, 3, 0]), nn.CrossEntropyLoss(), r"labels lie in \[0, 3\] but the logits have 3"),
    ((4, 3), torch.tensor([0, -1, 2, 0]), nn.CrossEntropyLoss(), r"labels lie in \[-1, 2\]"),
    ((4, 3), torch.tensor([0.0, 1.0, 2.0, 0.0]), nn.CrossEntropyLoss(), r"labels\.long\(\)"),
    ((4, 1), torch.tensor([0.0, 1.0, 1.0, 0.0]), nn.BCEWithLogitsLoss(), r"broadcast silently.*view"),
    ((4,), torch.tensor([0, 1, 1, 0]), nn.BCEWithLogitsLoss(), r"labels\.float\(\)"),
    ((4,), torch.tensor([0.0, 2.0, 1.0, 0.0]), nn.BCEWithLogitsLoss(), r"targets in \[0, 1\]"),
])
def test_logits_label_mismatches_are_explained(logits_shape, labels, loss_fn, message):
    with pytest.raises(ValueError, match=message):
        check_logits_labels(torch.zeros(logits_shape), labels, loss_fn)


def test_accepted_shapes_pass_the_check():
    check_logits_labels(torch.zeros(4, 3), torch.tensor([0, 1, -100, 2]), nn.CrossEntropyLoss())  # ignore_index
    check_logits_labels(torch.zeros(2, 5, 7), torch.zeros(2, 7, dtype=torch.long), nn.CrossEntropyLoss())  # tokens
    check_logits_labels(torch.zeros(4, 3), torch.full((4, 3), 1 / 3), nn.CrossEntropyLoss())  # soft targets
    check_logits_labels(torch.zeros(4), torch.tensor([1, 7, 9, 9]), lambda a, b: a.sum())  # custom: not checked


def test_fit_reports_label_errors_not_a_torch_traceback():
    X, _ = _data(16)
    with pytest.raises(ValueError, match=r"labels lie in \[0, [345]\] but the logits have 3 classes"):
        _fit(loader=_loader(X, torch.arange(16) % 6, 4))


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="num_epochs must be an int >= 1, got 0"):
        _fit(num_epochs=0)
    with pytest.raises(ValueError, match="grad_accum_steps"):
        _fit(grad_accum_steps=0)
    with pytest.raises(ValueError, match="max_grad_norm"):
        _fit(max_grad_norm=0.0)
    with pytest.raises(ValueError, match="unknown metric"):
        _fit(metrics=("auc",))
    with pytest.raises(ValueError, match="resume=True needs checkpoint_path"):
        _fit(resume=True)
    with pytest.raises(ValueError, match="optimizer holds none"):
        _fit(optimizer=torch.optim.SGD(_mlp().parameters(), lr=0.1))
    with pytest.raises(ValueError, match="no val_loader"):
        _fit(early_stopping=EarlyStopping())


def test_a_model_on_another_device_is_reported():
    model = _mlp().to("meta")
    with pytest.raises(ValueError, match=r"is on meta but device=cpu: call model\.to\(device\)"):
        _fit(model=model)
    with pytest.raises(ValueError, match="model.to"):
        evaluate(model, [(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))], loss_fn=nn.CrossEntropyLoss(),
                 device=CPU)


def test_a_diverging_loss_is_reported():
    X, y = _data(16)
    X[3, 0] = float("nan")
    with pytest.raises(ValueError, match="training loss became nan"):
        _fit(loader=_loader(X, y, 4))


def test_history_is_a_dict_of_lists():
    h = History()
    h.append(train_loss=1.0, lr=0.1)
    h.append(train_loss=0.5, lr=0.1)
    assert dict(h) == {"train_loss": [1.0, 0.5], "lr": [0.1, 0.1]}
    assert copy.deepcopy(h) == h


# --- bad input: every argument checked before any work ---------------------------------------


def _epoch(**kw):
    X, y = _data(16)
    model = kw.pop("model", None) or _mlp()
    loader = kw.pop("train_loader", _loader(X, y, 4))
    args = dict(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=nn.CrossEntropyLoss(), device=CPU)
    args.update(kw)
    return train_epoch(model, loader, **args)


def _eval(**kw):
    X, y = _data(8)
    args = dict(loss_fn=nn.CrossEntropyLoss(), device=CPU)
    args.update(kw)
    return evaluate(args.pop("model", _mlp()), _loader(X, y, 4), **args)


class _NoStep:
    pass


@pytest.mark.parametrize("call, exc, message", [
    # the silent cases
    (lambda: _epoch(grad_accum_steps=0), ValueError, r"grad_accum_steps must be an int >= 1, got 0"),
    (lambda: _epoch(grad_accum_steps=-1), ValueError, r"grad_accum_steps must be an int >= 1, got -1"),
    (lambda: _epoch(max_grad_norm=0), ValueError, r"max_grad_norm must be a number > 0 or None, got 0; 0 would zero"),
    (lambda: _fit(grad_accum_steps=-1), ValueError, r"grad_accum_steps must be an int >= 1, got -1"),
    (lambda: _fit(max_grad_norm=0), ValueError, r"max_grad_norm must be a number > 0 or None, got 0"),
    (lambda: _fit(loss_fn=nn.CrossEntropyLoss), TypeError, r"loss_fn is the class CrossEntropyLoss, not a loss: .*loss_fn=CrossEntropyLoss\(\)"),
    (lambda: _epoch(loss_fn=nn.CrossEntropyLoss), TypeError, r"loss_fn is the class CrossEntropyLoss"),
    (lambda: _eval(loss_fn=nn.MSELoss), TypeError, r"loss_fn is the class MSELoss.*MSELoss\(\)"),
    (lambda: check_logits_labels(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), nn.CrossEntropyLoss),
     TypeError, r"loss_fn is the class CrossEntropyLoss"),
    # other arguments of the loop
    (lambda: _epoch(grad_accum_steps=2.0), TypeError, r"grad_accum_steps must be an int >= 1, got 2\.0"),
    (lambda: _epoch(max_grad_norm=float("nan")), ValueError, r"max_grad_norm must be a number > 0 or None, got nan"),
    (lambda: _epoch(max_grad_norm=-1.0), ValueError, r"max_grad_norm must be a number > 0"),
    (lambda: _epoch(max_grad_norm="1"), ValueError, r"max_grad_norm must be a number > 0 or None, got '1'"),
    (lambda: _epoch(loss_fn=None), TypeError, r"loss_fn must be callable, got None"),
    (lambda: _epoch(optimizer=None), TypeError, r"optimizer must be a torch\.optim\.Optimizer, got NoneType"),
    (lambda: _epoch(optimizer=torch.optim.SGD), TypeError, r"optimizer must be a torch\.optim\.Optimizer, got type"),
    (lambda: _epoch(scheduler=_NoStep()), TypeError, r"scheduler must have a step\(\) method.*_NoStep"),
    (lambda: _epoch(device="gpu0"), ValueError, r"device 'gpu0' is not a torch device"),
    (lambda: _epoch(device=0.5), TypeError, r"device must be a device name.*got float"),
    (lambda: _epoch(train_loader=None), ValueError, r"train_loader is None"),
    (lambda: _epoch(amp="bf16"), ValueError, r"amp must be True, False, torch\.bfloat16 or torch\.float16"),
    (lambda: train_epoch(None, [], optimizer=torch.optim.SGD(_mlp().parameters(), lr=0.1), loss_fn=nn.CrossEntropyLoss(),
                         device=CPU), TypeError, r"model must be a torch\.nn\.Module, got NoneType"),
    (lambda: fit(nn.Linear, [], optimizer=torch.optim.SGD(_mlp().parameters(), lr=0.1), loss_fn=nn.CrossEntropyLoss(),
                 device=CPU, num_epochs=1), TypeError, r"model must be a torch\.nn\.Module, got type; pass an instance"),
    (lambda: _fit(num_epochs=1.5), TypeError, r"num_epochs must be an int >= 1, got 1\.5"),
    (lambda: _fit(num_epochs=True), TypeError, r"num_epochs must be an int >= 1, got True"),
    (lambda: _fit(metrics="accuracy"), TypeError, r"metrics must be a tuple of names such as \('accuracy',\)"),
    (lambda: _fit(early_stopping=3), TypeError, r"early_stopping must be an EarlyStopping or None, got int"),
    (lambda: _fit(checkpoint_path=3), TypeError, r"checkpoint_path must be a path"),
    (lambda: _fit(device="cuda:x"), ValueError, r"device 'cuda:x' is not a torch device"),
    (lambda: _eval(metrics=("auc",)), ValueError, r"unknown metric\(s\) \['auc'\]"),
    (lambda: _eval(metrics="macro_f1"), TypeError, r"metrics must be a tuple"),
    (lambda: _eval(model=None), TypeError, r"model must be a torch\.nn\.Module"),
    (lambda: _eval(device=None), TypeError, r"device must be a device name.*torch.device"),
    (lambda: predict(None, [torch.zeros(2, 3)], device=CPU), TypeError, r"model must be a torch\.nn\.Module"),
    (lambda: predict(_mlp(), None, device=CPU), ValueError, r"loader is None"),
    (lambda: predict(_mlp(), [], device=CPU), ValueError, r"loader is empty"),
    (lambda: unpack_batch((torch.zeros(1), torch.zeros(1)), "tpu9"), ValueError, r"device 'tpu9' is not a torch device"),
    (lambda: unpack_batch((torch.zeros(1),), CPU), ValueError, r"must be \(x, y\), got 1 items"),
    (lambda: unpack_batch(None, CPU), ValueError, r"cannot unpack a batch of type NoneType"),
    (lambda: forward_logits(None, torch.zeros(1)), TypeError, r"model must be callable, got None"),
    (lambda: forward_logits(lambda x: [x], torch.zeros(1)), ValueError, r"returned list, not a tensor of logits"),
    (lambda: check_logits_labels([[0.0, 1.0]], torch.zeros(1, dtype=torch.long), nn.CrossEntropyLoss()),
     TypeError, r"logits must be a torch tensor, got list"),
    (lambda: check_logits_labels(torch.zeros(1, 2), [0], nn.CrossEntropyLoss()), TypeError, r"labels must be a torch tensor, got list"),
    (lambda: check_logits_labels(torch.zeros(2, 3), torch.tensor([0, 1]), None), TypeError, r"loss_fn must be callable"),
    (lambda: _fit(progress="no"), TypeError, r"progress must be True or False, got 'no'"),
    (lambda: _fit(resume=torch.zeros(2)), TypeError, r"resume must be True or False"),
    (lambda: _epoch(progress=None), TypeError, r"progress must be True or False, got None"),
    (lambda: predict(_mlp(), torch.zeros(4, 3), device=CPU), TypeError, r"loader must be a DataLoader or another iterable of batches, got Tensor"),
    (lambda: _fit(loader=_data(8)[0]), TypeError, r"train_loader must be a DataLoader.*got Tensor.*TensorDataset"),
    (lambda: _eval(model=_mlp(), loss_fn=nn.CrossEntropyLoss(), metrics=("accuracy",), device="cpu") and
     evaluate(_mlp(), {"x": torch.zeros(2, 3)}, loss_fn=nn.CrossEntropyLoss(), device=CPU), TypeError, r"loader must be a DataLoader.*got dict"),
    # early stopping
    (lambda: EarlyStopping(min_delta=float("nan")), ValueError, r"min_delta must be a finite number >= 0, got nan"),
    (lambda: EarlyStopping(min_delta=-0.1), ValueError, r"min_delta must be a finite number >= 0"),
    (lambda: EarlyStopping(patience=True), TypeError, r"patience must be an int >= 1, got True"),
    (lambda: EarlyStopping(patience=0), ValueError, r"patience must be an int >= 1, got 0"),
    (lambda: EarlyStopping(patience=2.0), TypeError, r"patience must be an int >= 1, got 2\.0"),
    (lambda: EarlyStopping(mode="mean"), ValueError, r"mode must be 'min' \(losses\) or 'max'"),
    (lambda: EarlyStopping(monitor=None), TypeError, r"monitor must be a History key"),
    (lambda: EarlyStopping(restore_best="yes"), TypeError, r"restore_best must be True or False"),
    (lambda: EarlyStopping().step("0.5", _mlp(), 1), TypeError, r"needs one number for val_loss, got str"),
    (lambda: EarlyStopping().step(0.5, None, 1), TypeError, r"model must be a torch\.nn\.Module"),
    (lambda: EarlyStopping().step(float("nan"), _mlp(), 1), ValueError, r"val_loss = nan: the loss diverged"),
    # checkpoints
    (lambda: save_checkpoint(None, a=1), TypeError, r"path must be a file path \(str or pathlib\.Path\), got None"),
    (lambda: load_checkpoint(None), TypeError, r"path must be a file path"),
    (lambda: load_checkpoint(""), TypeError, r"path must be a file path"),
])
def test_bad_arguments_get_a_clear_error(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_max_grad_norm_inf_is_allowed_and_only_reports_the_norm():
    out = _epoch(max_grad_norm=float("inf"))
    assert out["grad_norm"] > 0
    assert _epoch(max_grad_norm=np.float32(0.5))["grad_norm"] > 0  # NumPy scalars count as numbers


@pytest.mark.parametrize("content, message", [
    (b"not a checkpoint at all\n", r"is not an sftcourse checkpoint \(torch\.load could not read it"),
    (None, r"is not an sftcourse checkpoint \(torch\.load could not read it"),  # truncated, filled below
    ("list", r"is not an sftcourse checkpoint: it holds a list"),
])
def test_foreign_or_truncated_checkpoints_are_named(tmp_path, content, message):
    path = tmp_path / "ckpt.pt"
    if content is None:
        save_checkpoint(path, model=_mlp().state_dict(), epoch=1)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif content == "list":
        torch.save([1, 2, 3], path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_checkpoint(path)


def test_resuming_from_a_checkpoint_not_written_by_fit_is_named(tmp_path):
    path = tmp_path / "other.pt"
    save_checkpoint(path, weights=torch.zeros(2))
    with pytest.raises(ValueError, match=r"is not a checkpoint written by fit \(it lacks \['model', 'optimizer'"):
        _fit(checkpoint_path=path, resume=True)


# --- no host-device wait per step ------------------------------------------------------------


def test_the_label_check_reads_only_the_shape_of_the_logits():
    """So train_epoch can check labels on the host while the logits stay on the device (meta: no values)."""
    logits = torch.empty(4, 3, device="meta")
    check_logits_labels(logits, torch.tensor([0, 2, -100, 1]), nn.CrossEntropyLoss())
    with pytest.raises(ValueError, match=r"labels lie in \[0, 3\] but the logits have 3 classes"):
        check_logits_labels(logits, torch.tensor([0, 3, 1, 1]), nn.CrossEntropyLoss())


def _count_float_reads(monkeypatch):
    """Count conversions of floating-point tensors to Python numbers (each one a sync on a GPU)."""
    reads = []
    for name in ("item", "__float__", "tolist"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, **kwargs):
            if self.is_floating_point():
                reads.append(tuple(self.shape))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    return reads


@pytest.mark.parametrize("max_grad_norm", [None, 1.0])
def test_train_epoch_reads_the_loss_once_not_every_step(monkeypatch, max_grad_norm):
    import sftcourse.train as train_module

    X, y = _data(80)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monkeypatch.setattr(train_module, "_READ_EVERY_S", float("inf"))
    reads = _count_float_reads(monkeypatch)
    out = train_module.train_epoch(model, _loader(X, y, 4), optimizer=opt, loss_fn=nn.CrossEntropyLoss(),
                                   device=CPU, max_grad_norm=max_grad_norm)
    assert len(reads) == (1 if max_grad_norm is None else 2), reads  # 20 steps: the mean loss (and mean norm)
    reads.clear()
    with torch.no_grad():  # the oracle: the per-batch losses, read one by one (20 reads: the counter counts)
        per_batch = [float(nn.functional.cross_entropy(_mlp()(X[i:i + 4]), y[i:i + 4])) for i in range(0, 80, 4)]
    assert len(reads) == 20
    assert out["train_loss"] < sum(per_batch) / 20  # trained: below the untrained model's losses


def test_the_running_loss_is_read_at_intervals(monkeypatch):
    import sftcourse.train as train_module

    X, y = _data(40)
    model = _mlp()
    monkeypatch.setattr(train_module, "_READ_EVERY_S", 0.0)  # read after every step
    reads = _count_float_reads(monkeypatch)
    train_module.train_epoch(model, _loader(X, y, 4), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                             loss_fn=nn.CrossEntropyLoss(), device=CPU)
    assert len(reads) == 10 + 1


def test_the_epoch_loss_is_the_sample_weighted_mean_of_the_batch_losses():
    X, y = _data(22)  # batches of 8, 8 and 6
    model, ref = _mlp(), _mlp()
    out = fit(model, _loader(X, y, 8), optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
              loss_fn=nn.CrossEntropyLoss(), device=CPU, num_epochs=1, progress=False)
    with torch.no_grad():
        expected = float(nn.functional.cross_entropy(ref(X), y))  # lr 0: the weights never move
    assert out["train_loss"][0] == pytest.approx(expected, rel=1e-6)

"""One training loop, written once: ``fit`` (train + validate per epoch), ``evaluate`` and ``predict``.

The batch convention (``unpack_batch``) covers both halves of the course:

- a ``(x, y)`` tuple or list (a ``TensorDataset``): the model is called as ``model(x)``;
- a ``Mapping`` with a ``"labels"`` key (a Hugging Face tokenised batch): the labels are
  taken out and the model is called as ``model(**rest)``.

When the model's output has a ``.logits`` attribute (Hugging Face models) that is used;
the loss is always ``loss_fn(logits, labels)``, computed here, never inside the model.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sftcourse.checks import check_callable, check_finite_float, check_positive_int
from sftcourse.runtime import as_device

LossFn = Callable[[Tensor, Tensor], Tensor]
Inputs = Tensor | dict[str, Any]

KNOWN_METRICS = ("accuracy", "macro_f1")


class History(dict):
    """Per-epoch lists keyed by name: "epoch", "train_loss", "val_loss", "val_accuracy", "lr", "epoch_time_s".

    A plain ``dict`` (so ``plot_history(history)`` and ``history["val_loss"][-1]`` work),
    with ``stopped_early`` and ``best_epoch`` attributes set by :func:`fit`.
    """

    stopped_early: bool = False
    best_epoch: int | None = None

    def append(self, **values: float) -> None:
        """Add one epoch's values (a key seen for the first time starts a new list)."""
        for key, value in values.items():
            self.setdefault(key, []).append(value)


# ---------------------------------------------------------------------------
# Batches


def _move(value: Any, device: torch.device) -> Any:
    if isinstance(value, Tensor):
        # non_blocking only helps (and is only safe to ask for) on a copy to CUDA
        return value.to(device, non_blocking=device.type == "cuda")
    return value


def unpack_batch(batch: Any, device: torch.device | str) -> tuple[Inputs, Tensor | None]:
    """Split a batch into model inputs and labels, both moved to ``device``.

    ``(x, y)`` -> ``(x, y)``; ``{"input_ids": ..., "labels": y}`` -> ``({"input_ids": ...}, y)``;
    a lone tensor or a Mapping without "labels" -> ``(inputs, None)``.
    """
    device = as_device(device)
    if isinstance(batch, Mapping):
        inputs = {k: _move(v, device) for k, v in batch.items() if k != "labels"}
        return inputs, _move(batch.get("labels"), device)
    if isinstance(batch, (tuple, list)):
        if len(batch) != 2:
            raise ValueError(f"a batch that is a tuple/list must be (x, y), got {len(batch)} items; "
                             "return (inputs, labels) from your Dataset's __getitem__, or a dict with 'labels'")
        x, y = batch
        return _move(x, device), _move(y, device)
    if isinstance(batch, Tensor):
        return _move(batch, device), None
    raise ValueError(f"cannot unpack a batch of type {type(batch).__name__}: use an (x, y) tuple "
                     "or a dict of tensors with a 'labels' key")


def forward_logits(model: nn.Module, inputs: Inputs) -> Tensor:
    """Call the model the way :func:`unpack_batch` prepared it and return its logits."""
    check_callable(model, "model", hint="pass the nn.Module instance")
    out = model(**inputs) if isinstance(inputs, dict) else model(inputs)
    logits = getattr(out, "logits", out)
    if not isinstance(logits, Tensor):
        raise ValueError(f"the model returned {type(out).__name__}, not a tensor of logits; "
                         "return the logits tensor from forward() (or an object with .logits)")
    return logits


# ---------------------------------------------------------------------------
# Checks that fire before torch's deep tracebacks


def _loss_kind(loss_fn: LossFn) -> str:
    """'ce' (class indices), 'bce' / 'mse' (targets shaped like the output), or 'other'."""
    if isinstance(loss_fn, (nn.CrossEntropyLoss, nn.NLLLoss)) or loss_fn in (F.cross_entropy, F.nll_loss):
        return "ce"
    if isinstance(loss_fn, (nn.BCEWithLogitsLoss, nn.BCELoss)) or loss_fn in (
            F.binary_cross_entropy_with_logits, F.binary_cross_entropy):
        return "bce"
    if isinstance(loss_fn, (nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss)) or loss_fn in (
            F.mse_loss, F.l1_loss, F.smooth_l1_loss, F.huber_loss):
        return "mse"
    return "other"


def _loss_name(loss_fn: LossFn) -> str:
    return type(loss_fn).__name__ if isinstance(loss_fn, nn.Module) else getattr(loss_fn, "__name__", "loss_fn")


def check_logits_labels(logits: Tensor, labels: Tensor, loss_fn: LossFn) -> None:
    """Raise a ValueError naming the fix when ``logits`` and ``labels`` do not fit ``loss_fn``.

    Cross-entropy: logits (B, C) or (B, C, d...) with integer labels (B,) or (B, d...) in [0, C)
    (``ignore_index`` allowed), or probabilities shaped like the logits. BCE / MSE: same shapes.
    """
    for arg, value in (("logits", logits), ("labels", labels)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{arg} must be a torch tensor, got {type(value).__name__}; "
                            f"convert with torch.as_tensor({arg})")
    _check_loss_fn(loss_fn)
    kind = _loss_kind(loss_fn)
    name = _loss_name(loss_fn)
    lg, lb = tuple(logits.shape), tuple(labels.shape)
    if kind == "ce":
        if labels.is_floating_point() and lb == lg:
            return  # class probabilities (soft targets) are allowed by cross_entropy
        if logits.ndim < 2:
            raise ValueError(f"logits have shape {lg} but {name} needs (batch, num_classes): give the model's "
                             "last layer num_classes outputs, or for one score per sample use "
                             "BCEWithLogitsLoss with float labels of the same shape")
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise ValueError(f"labels have dtype {labels.dtype} but {name} needs integer class indices "
                             "(torch.long): convert with labels.long(), or pass probabilities shaped like the logits")
        if labels.ndim != logits.ndim - 1 or lb[:1] != lg[:1] or lb[1:] != lg[2:]:
            tip = ""
            if labels.ndim == logits.ndim and lb[-1:] == (1,):
                tip = "; drop the extra axis with labels.squeeze(-1) (or y.view(-1))"
            elif labels.ndim == logits.ndim and lb == lg:
                tip = "; one-hot labels must be class indices: use labels.argmax(dim=1)"
            want = (lg[0],) + lg[2:]
            raise ValueError(f"logits have shape {lg} so {name} needs labels of shape {want}, "
                             f"got {lb}{tip}")
        num_classes = lg[1]
        ignore = getattr(loss_fn, "ignore_index", -100)
        valid = labels[labels != ignore]
        if valid.numel():
            lo, hi = int(valid.min()), int(valid.max())
            if lo < 0 or hi >= num_classes:
                raise ValueError(f"labels lie in [{lo}, {hi}] but the logits have {num_classes} classes: "
                                 f"labels must be in [0, {num_classes - 1}] (remap them, or give the model "
                                 f"{hi + 1} outputs)")
    elif kind in ("bce", "mse"):
        if lg != lb:
            tip = ""
            if logits.numel() == labels.numel():
                tip = f"; reshape one of them, e.g. logits.view({lb}) or labels.view({lg})"
            raise ValueError(f"logits have shape {lg} but labels have shape {lb}; {name} compares them "
                             f"element by element and would broadcast silently{tip}")
        if not labels.is_floating_point():
            raise ValueError(f"labels have dtype {labels.dtype} but {name} needs float targets: "
                             "use labels.float()")
        if kind == "bce" and labels.numel():
            lo, hi = float(labels.min()), float(labels.max())
            if lo < 0 or hi > 1:
                raise ValueError(f"{name} needs targets in [0, 1], got values in [{lo:g}, {hi:g}]")


def _check_model(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}"
                        + ("; pass an instance (call the class first)" if isinstance(model, type) else ""))


def _check_loss_fn(loss_fn: object) -> None:
    if isinstance(loss_fn, type):
        raise TypeError(f"loss_fn is the class {loss_fn.__name__}, not a loss: pass an instance, "
                        f"loss_fn={loss_fn.__name__}()")
    check_callable(loss_fn, "loss_fn", hint="pass e.g. nn.CrossEntropyLoss() or F.cross_entropy")


def _check_optimizer(optimizer: object) -> None:
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}; "
                        "build one: optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3)")


def _check_scheduler(scheduler: object) -> None:
    if scheduler is not None and not callable(getattr(scheduler, "step", None)):
        raise TypeError(f"scheduler must have a step() method (a torch.optim.lr_scheduler), got "
                        f"{type(scheduler).__name__}; or pass None")


def _check_loop_numbers(grad_accum_steps: object, max_grad_norm: object) -> None:
    check_positive_int(grad_accum_steps, "grad_accum_steps", hint="1 means one optimizer step per batch")
    if max_grad_norm is not None:
        # inf is allowed: it clips nothing but still reports the norm
        if isinstance(max_grad_norm, bool) or not isinstance(max_grad_norm, (int, float, np.integer, np.floating)) \
                or math.isnan(max_grad_norm) or max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be a number > 0 or None, got {max_grad_norm!r}; "
                             "0 would zero every update (1.0 is usual, None turns clipping off)")


def _check_flag(value: object, name: str) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def _check_metrics(metrics: object) -> tuple[str, ...]:
    if isinstance(metrics, str) or not isinstance(metrics, (tuple, list)):
        raise TypeError(f"metrics must be a tuple of names such as ('accuracy',), got {metrics!r}")
    unknown = [m for m in metrics if m not in KNOWN_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {KNOWN_METRICS}")
    return tuple(metrics)


def _check_loader(loader: Any, name: str) -> None:
    if loader is None:
        raise ValueError(f"{name} is None; pass a DataLoader (or any iterable of batches)")
    if isinstance(loader, (Tensor, np.ndarray, str, bytes, Mapping)):
        # iterating a tensor yields its rows, each taken for a whole batch without labels
        raise TypeError(f"{name} must be a DataLoader or another iterable of batches, got {type(loader).__name__}; "
                        f"wrap data in DataLoader(TensorDataset(X, y), batch_size=...), or pass [batch]")
    try:
        n = len(loader)
    except TypeError:
        return  # an iterable without a length: checked when it yields nothing
    if n == 0:
        raise ValueError(_empty_message(loader, name))


def _empty_message(loader: Any, name: str) -> str:
    msg = f"{name} is empty: it yields no batches"
    dataset = getattr(loader, "dataset", None)
    batch_size = getattr(loader, "batch_size", None)
    try:
        size = len(dataset) if dataset is not None else None
    except TypeError:
        size = None
    if size is not None:
        msg += f" (dataset of {size} samples, batch_size={batch_size}, drop_last={getattr(loader, 'drop_last', None)})"
    return msg + "; check the split that built it, or lower batch_size / set drop_last=False"


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type == "cuda":
        ia = a.index if a.index is not None else torch.cuda.current_device()
        ib = b.index if b.index is not None else torch.cuda.current_device()
        return ia == ib
    return True


def _check_model_device(model: nn.Module, device: torch.device) -> None:
    for name, p in model.named_parameters():
        if not _same_device(p.device, device):
            raise ValueError(f"model parameter {name!r} is on {p.device} but device={device}: "
                             f"call model.to(device) first (before building the optimizer is tidiest)")
        return  # the first one tells; mixed placements are the model's own business


def _check_optimizer_owns_model(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    model_ids = {id(p) for p in model.parameters()}
    opt_ids = {id(p) for g in optimizer.param_groups for p in g["params"]}
    if model_ids and not (model_ids & opt_ids):
        raise ValueError("optimizer holds none of the model's parameters: build it from this model "
                         "(torch.optim.AdamW(model.parameters(), ...)) after creating the model")


def _amp_dtype(amp: bool | torch.dtype, device: torch.device) -> torch.dtype | None:
    if amp is False or amp is None:
        return None
    if amp is not True and amp not in (torch.bfloat16, torch.float16):
        raise ValueError(f"amp must be True, False, torch.bfloat16 or torch.float16, got {amp!r}")
    if device.type != "cuda":
        return None  # autocast is a no-op on CPU/MPS here: documented in fit()
    if amp is True:
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return amp  # type: ignore[return-value]


def _autocast(dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return torch.autocast(device_type="cuda", dtype=dtype) if dtype is not None else contextlib.nullcontext()


# ---------------------------------------------------------------------------
# Early stopping and checkpoints


def _as_metric_value(value: object, monitor: str) -> float:
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"early stopping needs one number for {monitor}, got {type(value).__name__}")
    return float(value)


class EarlyStopping:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``mode="min"`` for losses, ``"max"`` for accuracies. With ``restore_best`` the model's
    best weights (a CPU copy) are loaded back when training ends.
    """

    def __init__(self, patience: int = 3, min_delta: float = 0.0, mode: str = "min",
                 restore_best: bool = True, monitor: str = "val_loss") -> None:
        check_positive_int(patience, "patience", hint="the number of epochs without improvement to wait")
        # NaN used to pass '< 0' and then no epoch ever counted as an improvement
        min_delta = check_finite_float(min_delta, "min_delta", low=0.0, hint="it is an improvement threshold")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' (losses) or 'max' (accuracies), got {mode!r}")
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"monitor must be a History key such as 'val_loss' or 'val_accuracy', got {monitor!r}")
        if not isinstance(restore_best, bool):
            raise TypeError(f"restore_best must be True or False, got {restore_best!r}")
        self.patience, self.min_delta, self.mode = patience, float(min_delta), mode
        self.restore_best, self.monitor = restore_best, monitor
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.best_state: dict[str, Tensor] | None = None

    def improved(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by more than ``min_delta``."""
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def step(self, value: float, model: nn.Module, epoch: int) -> bool:
        """Record one epoch's ``value``; return True when training should stop."""
        value = _as_metric_value(value, self.monitor)
        _check_model(model)
        if not math.isfinite(value):
            raise ValueError(f"early stopping monitors {self.monitor} = {value}: the loss diverged; "
                             "lower the learning rate")
        if self.improved(value):
            self.best, self.best_epoch, self.bad_epochs = float(value), epoch, 0
            if self.restore_best:
                self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                "best_state": self.best_state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.bad_epochs, self.best_state = state["bad_epochs"], state["best_state"]


def _loader_generators(loaders: Iterable[Any]) -> list[torch.Generator]:
    """The torch.Generators that drive shuffling (DataLoader, its sampler, its batch sampler's sampler)."""
    found: list[torch.Generator] = []
    for loader in loaders:
        if loader is None:
            continue
        candidates = [getattr(loader, "generator", None), getattr(getattr(loader, "sampler", None), "generator", None),
                      getattr(getattr(getattr(loader, "batch_sampler", None), "sampler", None), "generator", None)]
        for g in candidates:
            if isinstance(g, torch.Generator) and all(g is not h for h in found):
                found.append(g)
    return found


def _rng_state(generators: Sequence[torch.Generator]) -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             # NumPy's state as plain types and a tensor, so torch.load(weights_only=True) can read it
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
             "loaders": [g.get_state() for g in generators]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any], generators: Sequence[torch.Generator]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if len(state["loaders"]) != len(generators):
        raise ValueError(f"the checkpoint saved {len(state['loaders'])} DataLoader generator(s) but these loaders "
                         f"have {len(generators)}: resume with loaders built the same way as the original run")
    for g, s in zip(generators, state["loaders"]):
        g.set_state(s)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, **state: Any) -> None:
    """Write ``state`` with torch.save atomically (a crash mid-write never leaves a half file)."""
    path = _check_path(path, "path")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`fit` (plain tensors and Python types only: weights_only=True).

    A file that torch cannot read (truncated, another format, arbitrary pickled objects) or that
    does not hold a dict raises ValueError saying it is not an sftcourse checkpoint.
    """
    path = _check_path(path, "path")
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist; train with checkpoint_path={str(path)!r} first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises pickle, zip and runtime errors alike
        raise ValueError(f"{path} is not an sftcourse checkpoint (torch.load could not read it: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); "
                         "is it truncated, or written by another program? Delete it to start fresh") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not an sftcourse checkpoint: it holds a {type(state).__name__}, "
                         "not the dict that save_checkpoint writes")
    return state


def _check_path(path: object, name: str) -> Path:
    if not isinstance(path, (str, os.PathLike)) or (isinstance(path, str) and not path):
        raise TypeError(f"{name} must be a file path (str or pathlib.Path), got {path!r}")
    return Path(path)


# ---------------------------------------------------------------------------
# Training


def _progress(iterable: Any, enabled: bool, **kwargs: Any) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)


def _groups(loader: Iterable[Any], size: int) -> Iterable[list[Any]]:
    """Yield lists of ``size`` consecutive batches (the last list may be shorter)."""
    group: list[Any] = []
    for batch in loader:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def _num_samples(labels: Tensor) -> int:
    return int(labels.shape[0]) if labels.ndim else 1


_READ_EVERY_S = 1.0  # train_epoch reads its running loss (a host-device sync) at most this often


def _sum_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


def _loader_labels(batch: Any) -> Any:
    """The labels of a batch where the loader put them (before :func:`unpack_batch` moves them)."""
    if isinstance(batch, Mapping):
        return batch.get("labels")
    return batch[1]  # unpack_batch has checked that a labelled non-Mapping batch is (x, y)


def _mean_loss(total: Tensor, n: int) -> float:
    """The running mean training loss as a float (waits for the device); raises when it is not finite."""
    value = float(total) / n
    if not math.isfinite(value):
        raise ValueError(f"the training loss became {value}: lower the learning rate, "
                         "check the inputs for NaN, or clip gradients (max_grad_norm)")
    return value


def train_epoch(model: nn.Module, train_loader: Iterable[Any], *, optimizer: torch.optim.Optimizer,
                loss_fn: LossFn, device: torch.device | str, scheduler: Any = None, grad_accum_steps: int = 1,
                max_grad_norm: float | None = None, amp: bool | torch.dtype = False,
                scaler: torch.amp.GradScaler | None = None, progress: bool = False) -> dict[str, float]:
    """One pass over ``train_loader``: zero_grad, forward, loss, backward, (clip), step, per group.

    Each optimizer step sees ``grad_accum_steps`` batches; every batch's mean loss is weighted
    by its share of the group's samples, so the accumulated gradient equals that of one big
    batch (a short last group included). Returns {"train_loss", "lr", optionally "grad_norm"}.
    """
    _check_model(model)
    _check_optimizer(optimizer)
    _check_loss_fn(loss_fn)
    _check_scheduler(scheduler)
    _check_loop_numbers(grad_accum_steps, max_grad_norm)
    _check_flag(progress, "progress")
    _check_loader(train_loader, "train_loader")
    device = as_device(device)
    amp_dtype = _amp_dtype(amp, device)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    model.train()
    # The loss sum and the gradient norms stay on the device: reading one (float()) makes the host
    # wait for the GPU, so it happens every _READ_EVERY_S seconds and at the end, not every step.
    total_loss = torch.zeros((), dtype=_sum_dtype(device), device=device)
    total_n, lr, norms, last_read = 0, float("nan"), [], time.perf_counter()
    try:
        n_batches = len(train_loader)  # type: ignore[arg-type]
    except TypeError:
        n_batches = None
    bar = _progress(None, progress, total=n_batches, desc="train", leave=False) if progress else None
    for group in _groups(train_loader, grad_accum_steps):
        unpacked = [unpack_batch(b, device) for b in group]
        for _, y in unpacked:
            if y is None:
                raise ValueError("a training batch has no labels: yield (x, y) or a dict with a 'labels' key")
        group_n = sum(_num_samples(y) for _, y in unpacked)
        optimizer.zero_grad(set_to_none=True)
        for (x, y), y_loader in zip(unpacked, (_loader_labels(b) for b in group)):
            with _autocast(amp_dtype):
                logits = forward_logits(model, x)
                # label values are checked on the loader's copy (usually on the host), against the
                # logits' shape only: no wait for the device
                check_logits_labels(logits, y_loader, loss_fn)
                loss = loss_fn(logits, y)
            n = _num_samples(y)
            # weight n / group_n: the sum over the group is the big batch's mean loss
            scaled = loss * (n / group_n)
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
            total_loss += loss.detach().to(total_loss.dtype) * n
            total_n += n
            if bar is not None:
                bar.update(1)
        if scaler is not None:
            scaler.unscale_(optimizer)  # clip (and report) the true gradients, not the scaled ones
        if max_grad_norm is not None:
            norms.append(torch.nn.utils.clip_grad_norm_(params, max_grad_norm).detach())
        lr = float(optimizer.param_groups[0]["lr"])
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if scheduler is not None and not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step()  # per optimizer step: warmup/decay schedules count steps, not epochs
        if time.perf_counter() - last_read >= _READ_EVERY_S:
            running = _mean_loss(total_loss, total_n)  # one wait for the device per interval
            if bar is not None:
                bar.set_postfix(loss=f"{running:.4f}")
            last_read = time.perf_counter()
    if bar is not None:
        bar.close()
    if total_n == 0:
        raise ValueError(_empty_message(train_loader, "train_loader"))
    out = {"train_loss": _mean_loss(total_loss, total_n), "lr": lr}
    if norms:
        out["grad_norm"] = float(torch.stack(norms).to("cpu", torch.float64).mean())
    return out


def fit(model: nn.Module, train_loader: Iterable[Any], val_loader: Iterable[Any] | None = None, *,
        optimizer: torch.optim.Optimizer, loss_fn: LossFn, device: torch.device | str, num_epochs: int,
        scheduler: Any = None, grad_accum_steps: int = 1, max_grad_norm: float | None = None,
        amp: bool | torch.dtype = False, early_stopping: EarlyStopping | None = None,
        checkpoint_path: str | Path | None = None, progress: bool = True,
        metrics: Sequence[str] = ("accuracy",), resume: bool = False) -> History:
    """Train ``model`` for ``num_epochs`` epochs and return its History (per-epoch lists).

    Per epoch: :func:`train_epoch`, then :func:`evaluate` on ``val_loader`` if given.
    History keys: "epoch", "train_loss", "lr" (the lr of the epoch's last optimizer step,
    first param group), "epoch_time_s", and with a val_loader "val_loss" and "val_<metric>"
    for each of ``metrics`` that applies ("accuracy", "macro_f1"); "grad_norm" (mean norm
    before clipping) when ``max_grad_norm`` is set.

    - ``scheduler`` is stepped after every optimizer step (ReduceLROnPlateau: once per epoch
      on val_loss, or train_loss without a val_loader).
    - ``grad_accum_steps=k``: one optimizer step per k batches, equal to one k-times-bigger batch.
    - ``amp=True`` (bfloat16, float16 where bf16 is unsupported) or a dtype: autocast on CUDA,
      with a GradScaler for float16. On CPU and MPS it is a no-op: training runs in float32.
    - ``early_stopping``: an :class:`EarlyStopping`; its monitor must be a History key.
    - ``checkpoint_path``: after every epoch, save model, optimizer, scheduler, RNG states
      (Python, NumPy, torch, CUDA, the loaders' torch.Generators), epoch and history.
      ``resume=True`` continues from that file if it exists, giving the same per-epoch losses
      as an uninterrupted run (with loaders built the same way, seeded by torch.Generators).
    """
    _check_model(model)
    _check_optimizer(optimizer)
    _check_loss_fn(loss_fn)
    _check_scheduler(scheduler)
    device = as_device(device)
    check_positive_int(num_epochs, "num_epochs")
    _check_loop_numbers(grad_accum_steps, max_grad_norm)
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise TypeError(f"early_stopping must be an EarlyStopping or None, got {type(early_stopping).__name__}; "
                        "pass EarlyStopping(patience=3)")
    if checkpoint_path is not None and not isinstance(checkpoint_path, (str, os.PathLike)):
        raise TypeError(f"checkpoint_path must be a path (str or pathlib.Path) or None, got "
                        f"{type(checkpoint_path).__name__}")
    _check_flag(resume, "resume")
    _check_flag(progress, "progress")
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs checkpoint_path (the file to resume from)")
    metrics = _check_metrics(metrics)
    _check_loader(train_loader, "train_loader")
    if val_loader is not None:
        _check_loader(val_loader, "val_loader")
    _check_model_device(model, device)
    _check_optimizer_owns_model(model, optimizer)
    if early_stopping is not None and val_loader is None and early_stopping.monitor.startswith("val_"):
        raise ValueError(f"early_stopping monitors {early_stopping.monitor!r} but there is no val_loader; "
                         "pass val_loader, or EarlyStopping(monitor='train_loss')")
    amp_dtype = _amp_dtype(amp, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    generators = _loader_generators([train_loader, val_loader])

    history = History()
    start = 0
    if resume and Path(checkpoint_path).is_file():  # type: ignore[arg-type]
        ckpt = load_checkpoint(checkpoint_path)  # type: ignore[arg-type]
        missing = [k for k in ("model", "optimizer", "epoch", "history", "rng") if k not in ckpt]
        if missing:
            raise ValueError(f"{checkpoint_path} is not a checkpoint written by fit (it lacks {missing}); "
                             "pass another checkpoint_path, or resume=False to start fresh")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler") is not None:
            scaler.load_state_dict(ckpt["scaler"])
        if early_stopping is not None and ckpt.get("early_stopping") is not None:
            early_stopping.load_state_dict(ckpt["early_stopping"])
        history.update({k: list(v) for k, v in ckpt["history"].items()})
        history.stopped_early = bool(ckpt.get("stopped_early", False))
        start = int(ckpt["epoch"])
        _set_rng_state(ckpt["rng"], generators)

    epochs = _progress(range(start, num_epochs), progress and not history.stopped_early, desc="epochs",
                       initial=start, total=num_epochs)
    for epoch in epochs:
        if history.stopped_early:
            break
        t0 = time.perf_counter()
        row = train_epoch(model, train_loader, optimizer=optimizer, loss_fn=loss_fn, device=device,
                          scheduler=scheduler, grad_accum_steps=grad_accum_steps, max_grad_norm=max_grad_norm,
                          amp=amp, scaler=scaler, progress=progress)
        if val_loader is not None:
            val = evaluate(model, val_loader, loss_fn=loss_fn, device=device, metrics=metrics, amp=amp)
            row.update({f"val_{k}": v for k, v in val.items()})
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(row.get("val_loss", row["train_loss"]))
        history.append(epoch=epoch + 1, **row, epoch_time_s=time.perf_counter() - t0)
        if progress:
            epochs.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k != "lr"})
        if early_stopping is not None:
            if early_stopping.monitor not in row:
                raise ValueError(f"early_stopping monitors {early_stopping.monitor!r}, which this run does not "
                                 f"record; choose one of {sorted(row)}")
            history.stopped_early = early_stopping.step(row[early_stopping.monitor], model, epoch + 1)
        if checkpoint_path is not None:
            save_checkpoint(checkpoint_path, model=model.state_dict(), optimizer=optimizer.state_dict(),
                            scheduler=scheduler.state_dict() if scheduler is not None else None,
                            scaler=scaler.state_dict() if scaler is not None else None,
                            early_stopping=early_stopping.state_dict() if early_stopping is not None else None,
                            epoch=epoch + 1, history=dict(history), stopped_early=history.stopped_early,
                            rng=_rng_state(generators))
    if progress and hasattr(epochs, "close"):
        epochs.close()
    if early_stopping is not None:
        history.best_epoch = early_stopping.best_epoch
        if early_stopping.restore_best and early_stopping.best_state is not None:
            model.load_state_dict(early_stopping.best_state)
    return history


# ---------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def _collect(model: nn.Module, loader: Iterable[Any], device: torch.device, amp: bool | torch.dtype,
             need_labels: bool, name: str) -> Iterable[tuple[Tensor, Tensor | None]]:
    amp_dtype = _amp_dtype(amp, device)
    seen = False
    for batch in loader:
        x, y = unpack_batch(batch, device)
        if need_labels and y is None:
            raise ValueError(f"a batch of {name} has no labels: yield (x, y) or a dict with a 'labels' key")
        with _autocast(amp_dtype):
            logits = forward_logits(model, x)
        seen = True
        yield logits.float(), y
    if not seen:
        raise ValueError(_empty_message(loader, name))


def _predictions(logits: Tensor, labels: Tensor, loss_fn: LossFn) -> tuple[Tensor, Tensor] | None:
    """Predicted and true classes (flattened, ignored positions dropped), or None for regression."""
    kind = _loss_kind(loss_fn)
    if kind == "ce" and not labels.is_floating_point():
        pred = logits.argmax(dim=1)
        keep = labels != getattr(loss_fn, "ignore_index", -100)
        return pred[keep], labels[keep]
    if kind == "bce":
        return (logits > 0).long().reshape(-1), labels.round().long().reshape(-1)
    return None


def evaluate(model: nn.Module, loader: Iterable[Any], *, loss_fn: LossFn, device: torch.device | str,
             metrics: Sequence[str] = ("accuracy",), amp: bool | torch.dtype = False) -> dict[str, float]:
    """Mean loss and ``metrics`` ("accuracy", "macro_f1") of ``model`` on ``loader``, in eval mode.

    The loss is the sample-weighted mean of the batches' mean losses; classification metrics
    are reported for cross-entropy (argmax) and BCE-with-logits (logit > 0) losses only.
    The model's train/eval mode is restored afterwards.
    """
    from sftcourse.metrics import precision_recall_f1

    _check_model(model)
    _check_loss_fn(loss_fn)
    device = as_device(device)
    metrics = _check_metrics(metrics)
    _check_loader(loader, "loader")
    _check_model_device(model, device)
    was_training = model.training
    model.eval()
    total_loss, total_n = 0.0, 0
    preds, trues = [], []
    num_classes = 2
    try:
        for logits, y in _collect(model, loader, device, amp, need_labels=True, name="loader"):
            check_logits_labels(logits, y, loss_fn)  # type: ignore[arg-type]
            n = _num_samples(y)  # type: ignore[arg-type]
            total_loss += float(loss_fn(logits, y)) * n
            total_n += n
            pair = _predictions(logits, y, loss_fn)  # type: ignore[arg-type]
            if pair is not None:
                preds.append(pair[0].cpu())
                trues.append(pair[1].cpu())
                if _loss_kind(loss_fn) == "ce":
                    num_classes = int(logits.shape[1])
    finally:
        model.train(was_training)
    out = {"loss": total_loss / total_n}
    if preds:
        p, t = torch.cat(preds), torch.cat(trues)
        if "accuracy" in metrics:
            out["accuracy"] = float((p == t).double().mean()) if t.numel() else float("nan")
        if "macro_f1" in metrics:
            out["macro_f1"] = float(precision_recall_f1(t, p, num_classes)["macro_f1"])
    return out


def predict(model: nn.Module, loader: Iterable[Any], *, device: torch.device | str,
            amp: bool | torch.dtype = False) -> tuple[Tensor, Tensor | None]:
    """Logits (N, ...) and labels (N, ...) of every batch, concatenated on the CPU, in eval mode.

    Labels are None when the batches carry none (a lone tensor, or a dict without "labels").
    """
    _check_model(model)
    device = as_device(device)
    _check_loader(loader, "loader")
    _check_model_device(model, device)
    was_training = model.training
    model.eval()
    logits_all, labels_all = [], []
    try:
        for logits, y in _collect(model, loader, device, amp, need_labels=False, name="loader"):
            logits_all.append(logits.cpu())
            labels_all.append(y.cpu() if y is not None else None)
    finally:
        model.train(was_training)
    labels = None if any(y is None for y in labels_all) else torch.cat(labels_all)  # type: ignore[arg-type]
    return torch.cat(logits_all), labels


__all__ = ["History", "EarlyStopping", "unpack_batch", "forward_logits", "check_logits_labels",
           "train_epoch", "fit", "evaluate", "predict", "save_checkpoint", "load_checkpoint"]

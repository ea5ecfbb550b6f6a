"""Plot helpers shared by the chapters: each returns what it drew on and never saves or shows.

Every function that draws on one panel takes ``ax=None`` (a new figure is made when
it is None) and returns the ``matplotlib.axes.Axes``; :func:`plot_image_grid` draws
many panels and returns the ``Figure``. Nothing here calls ``savefig`` or ``show``:
the notebook decides what to do with a figure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sftcourse.checks import as_float_array, check_callable, check_finite_float, check_int, check_positive_int


def _axes(ax: Axes | None, figsize: tuple[float, float] = (5.0, 3.5)) -> Axes:
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}"
                        + ("; for an array of Axes from plt.subplots(1, 2), pass one of them, e.g. ax=axes[0]"
                           if isinstance(ax, np.ndarray) else ""))
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _check_names(names: object, name: str, count: int, what: str) -> list[str]:
    if isinstance(names, (str, bytes)):
        raise TypeError(f"{name} must be a list of {count} strings, got the string {names!r}; "
                        f"pass a list such as {list(str(names))[:3]!r}")
    try:
        out = [str(n) for n in names]  # type: ignore[union-attr]
    except TypeError:
        raise TypeError(f"{name} must be a list of {count} strings, got {type(names).__name__}") from None
    if len(out) != count:
        raise ValueError(f"{name} has {len(out)} entries but there are {count} {what}")
    return out


def _check_class_labels(y: np.ndarray, name: str) -> np.ndarray:
    if y.dtype == bool:
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    if not np.issubdtype(y.dtype, np.integer):
        if not (np.all(np.isfinite(y)) and np.all(y == np.round(y))):
            raise ValueError(f"{name} must hold integer class indices (0, 1, ...), got non-integer values such as "
                             f"{y[~(np.isfinite(y) & (y == np.round(y)))][:3]}; colours are chosen per class")
    return y.astype(np.int64)


def _to_numpy(a: object) -> np.ndarray:
    """Accept NumPy arrays, lists and torch tensors (detached, moved to the CPU)."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()  # type: ignore[union-attr]
    return np.asarray(a)


def plot_history(history: Mapping[str, Sequence[float]], keys: Sequence[str] | None = None,
                 ax: Axes | None = None) -> Axes:
    """One line per key of a per-epoch history (e.g. "train_loss", "val_loss"), x = epoch 1..E.

    ``keys`` defaults to every key whose name contains "loss" (or every key, if none does).
    Keys holding accuracies are best plotted on their own Axes, since their scale differs.
    """
    if not isinstance(history, Mapping) or len(history) == 0:
        raise ValueError("history must be a non-empty mapping of names to per-epoch lists, "
                         "e.g. {'train_loss': [...], 'val_loss': [...]}")
    if keys is None:
        keys = [k for k in history if "loss" in k] or list(history)
    elif isinstance(keys, str):
        keys = [keys]
    elif not isinstance(keys, (list, tuple)):
        raise TypeError(f"keys must be a key or a list of keys of history, got {type(keys).__name__}")
    missing = [k for k in keys if k not in history]
    if missing:
        raise ValueError(f"keys {missing} are not in history; it has {sorted(history)}")
    ax = _axes(ax)
    for key in keys:
        try:
            values = np.asarray(_to_numpy(history[key]), dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise TypeError(f"history[{key!r}] must be a list of numbers (one per epoch), got "
                            f"{history[key]!r:.80}") from None
        if values.size == 0:
            raise ValueError(f"history[{key!r}] is empty; record at least one epoch before plotting")
        ax.plot(np.arange(1, values.size + 1), values, marker="o" if values.size <= 30 else None,
                markersize=3, label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel(", ".join(keys) if len(keys) == 1 else "value")
    ax.set_title("Training history")
    ax.legend()
    ax.grid(True, alpha=0.3)
    return ax


def plot_decision_boundary(predict: Callable[[np.ndarray], np.ndarray], X: object, y: object,
                           ax: Axes | None = None, *, resolution: int = 200, margin: float = 0.5) -> Axes:
    """Shade the class ``predict`` assigns over the plane and scatter the points ``X: (n, 2)``, ``y: (n,)``.

    ``predict`` maps an (m, 2) array to m class indices (or to m scores in [0, 1] for a
    binary model, which are thresholded at 0.5).
    """
    check_callable(predict, "predict", hint="pass a function from an (m, 2) array to m classes or probabilities")
    X = as_float_array(_to_numpy(X), "X", ndim=2)
    if X.shape[1] != 2:
        raise ValueError(f"X must have shape (n, 2) to draw a boundary in the plane, got {X.shape}")
    y = np.asarray(_to_numpy(y))
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must have shape ({X.shape[0]},) to match X, got {y.shape}")
    y = _check_class_labels(y, "y")
    resolution = check_int(resolution, "resolution", minimum=2, hint="200 draws a smooth boundary")
    margin = check_finite_float(margin, "margin", low=0.0, hint="the border around the data, in data units")
    x0 = np.linspace(X[:, 0].min() - margin, X[:, 0].max() + margin, resolution)
    x1 = np.linspace(X[:, 1].min() - margin, X[:, 1].max() + margin, resolution)
    g0, g1 = np.meshgrid(x0, x1)
    grid = np.column_stack([g0.ravel(), g1.ravel()])
    out = np.asarray(_to_numpy(predict(grid)))
    if out.ndim == 0 or out.shape[0] != grid.shape[0]:
        raise ValueError(f"predict returned shape {out.shape} for {grid.shape[0]} grid points; "
                         "it must return one class (or probability) per row")
    if not np.issubdtype(out.dtype, np.number) and out.dtype != bool:
        raise TypeError(f"predict returned dtype {out.dtype}; it must return class indices or probabilities")
    if out.dtype != bool and not np.all(np.isfinite(out)):
        # NaN >= 0.5 is False: a NaN prediction would be drawn as class 0 without a word
        raise ValueError("predict returned NaN or infinite values for some grid points; check the model's "
                         "parameters (a diverged training run?)")
    if out.ndim == 2:  # scores per class
        out = out.argmax(axis=1)
    elif np.issubdtype(out.dtype, np.floating) and not np.all(out == np.round(out)):
        out = (out >= 0.5).astype(int)
    classes = np.unique(np.concatenate([np.unique(y).astype(int), np.unique(out).astype(int)]))
    ax = _axes(ax, (5.0, 4.5))
    lo, hi = int(classes.min()), int(classes.max())
    palette = plt.get_cmap("tab10" if hi - lo < 10 else "tab20")
    colors = [palette((c - lo) % palette.N) for c in range(lo, hi + 1)]  # region and points share a colour
    levels = np.arange(lo, hi + 2) - 0.5
    ax.contourf(g0, g1, out.reshape(g0.shape).astype(float), levels=levels, colors=colors, alpha=0.25)
    for c in np.unique(y):
        mask = y == c
        ax.scatter(X[mask, 0], X[mask, 1], s=14, color=colors[int(c) - lo], edgecolors="k", linewidths=0.3,
                   label=f"class {c}")
    ax.set_xlim(x0[0], x0[-1])
    ax.set_ylim(x1[0], x1[-1])
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title("Decision boundary")
    ax.legend(loc="best", fontsize="small")
    return ax


def plot_confusion_matrix(cm: object, class_names: Sequence[str] | None = None, ax: Axes | None = None,
                          normalize: bool = False) -> Axes:
    """Show a (k, k) confusion matrix (rows = true class, columns = predicted) with counts in the cells.

    With ``normalize=True`` each row is divided by its sum, so the diagonal reads as per-class recall.
    """
    cm = as_float_array(_to_numpy(cm), "cm", ndim=2)
    k = cm.shape[0]
    if cm.shape != (k, k):
        raise ValueError(f"cm must be square (k, k), got {cm.shape}")
    if np.any(cm < 0):
        raise ValueError("cm holds counts and must not be negative")
    if class_names is None:
        class_names = [str(i) for i in range(k)]
    class_names = _check_names(class_names, "class_names", k, f"classes (cm is {k}x{k})")
    if normalize:
        rows = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    ax = _axes(ax, (0.5 * k + 3, 0.5 * k + 2.5))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalize else max(cm.max(), 1))
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), labels=list(class_names), rotation=45 if k > 5 else 0)
    ax.set_yticks(range(k), labels=list(class_names))
    threshold = (1 if normalize else cm.max()) / 2
    for i in range(k):
        for j in range(k):
            text = f"{cm[i, j]:.2f}" if normalize else f"{int(round(cm[i, j]))}"
            ax.text(j, i, text, ha="center", va="center", fontsize="small",
                    color="white" if cm[i, j] > threshold else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Confusion matrix" + (" (row-normalised)" if normalize else ""))
    return ax


def plot_image_grid(images: object, titles: Sequence[str] | None = None, ncols: int = 8,
                    cmap: str = "gray") -> Figure:
    """Show images in a grid and return the Figure.

    ``images``: (n, H, W) grey, (n, H, W, C) channels-last, or (n, C, H, W) channels-first
    with C in {1, 3} (torch layout); float images are clipped to [0, 1] if they are RGB.
    """
    arr = np.asarray(_to_numpy(images))
    if arr.ndim not in (3, 4) or arr.shape[0] == 0:
        raise ValueError(f"images must be (n, H, W), (n, H, W, C) or (n, C, H, W) with n >= 1, got {arr.shape}")
    if arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = np.moveaxis(arr, 1, -1)  # (n, C, H, W) -> (n, H, W, C)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 4 and arr.shape[-1] != 3:
        raise ValueError(f"images with channels must have 1 or 3 of them, got shape {arr.shape}")
    n = arr.shape[0]
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"images must be numeric, got dtype {arr.dtype}")
    if titles is not None:
        titles = _check_names(titles, "titles", n, "images")
    ncols = check_positive_int(ncols, "ncols")
    if isinstance(cmap, str) and cmap not in plt.colormaps():
        raise ValueError(f"cmap={cmap!r} is not a matplotlib colormap; try 'gray', 'viridis' or 'magma'")
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.4 * ncols, 1.5 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = arr[i]
        if img.ndim == 3 and np.issubdtype(img.dtype, np.floating):
            img = np.clip(img, 0.0, 1.0)
        ax.imshow(img, cmap=cmap if img.ndim == 2 else None)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize="small")
    fig.tight_layout()
    return fig


def plot_loss_surface(loss_fn: Callable[[float, float], float], w_range: tuple[float, float],
                      b_range: tuple[float, float], trajectory: object | None = None, ax: Axes | None = None,
                      *, resolution: int = 80, levels: int = 30, log_scale: bool = True,
                      labels: tuple[str, str] = ("$w$", "$b$")) -> Axes:
    """Contours of a two-parameter loss ``loss_fn(w, b)`` with an optional path ``trajectory: (T, 2)``.

    ``loss_fn`` is called on scalars (so any Python function works); contour levels are
    spaced logarithmically by default, which shows both the valley and the walls.
    The trajectory is clipped to the plotted window so a diverging run stays readable.
    """
    check_callable(loss_fn, "loss_fn", hint="pass a function (w, b) -> loss")
    for name, r in (("w_range", w_range), ("b_range", b_range)):
        try:
            pair = np.asarray(r, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a pair of numbers (low, high), got {r!r}") from None
        if pair.shape != (2,) or not np.all(np.isfinite(pair)) or not pair[0] < pair[1]:
            raise ValueError(f"{name} must be (low, high) with low < high, got {r}")
    resolution = check_int(resolution, "resolution", minimum=2)
    levels = check_int(levels, "levels", minimum=2)
    if not (isinstance(labels, (tuple, list)) and len(labels) == 2):
        raise TypeError(f"labels must be a pair of axis labels such as ('$w$', '$b$'), got {labels!r}")
    ws = np.linspace(w_range[0], w_range[1], resolution)
    bs = np.linspace(b_range[0], b_range[1], resolution)
    W, B = np.meshgrid(ws, bs)
    Z = np.vectorize(lambda w, b: float(loss_fn(w, b)))(W, B)
    if not np.all(np.isfinite(Z)):
        i = np.argwhere(~np.isfinite(Z))[0]
        raise ValueError(f"loss_fn returned {Z[tuple(i)]} at (w, b) = ({W[tuple(i)]:.3g}, {B[tuple(i)]:.3g}); "
                         "narrow w_range / b_range to where the loss is finite")
    ax = _axes(ax, (5.0, 4.5))
    if log_scale and np.all(Z > 0):
        lv = np.geomspace(Z.min(), Z.max(), levels)
    else:
        lv = np.linspace(Z.min(), Z.max(), levels)
    if np.unique(lv).size < 2:  # a flat surface: matplotlib needs increasing levels
        lv = np.array([Z.min() - 1.0, Z.min() + 1.0])
    ax.contour(W, B, Z, levels=lv, cmap="viridis", linewidths=0.8)
    if trajectory is not None:
        path = np.asarray(_to_numpy(trajectory), dtype=np.float64)
        if path.ndim != 2 or path.shape[1] != 2 or path.shape[0] == 0:
            raise ValueError(f"trajectory must have shape (T, 2) of (w, b) pairs, got {path.shape}")
        path = path[np.all(np.isfinite(path), axis=1)]
        path = np.column_stack([np.clip(path[:, 0], *w_range), np.clip(path[:, 1], *b_range)])
        ax.plot(path[:, 0], path[:, 1], "-o", color="crimson", markersize=2.5, linewidth=1.0,
                label="gradient descent")
        ax.plot(path[:1, 0], path[:1, 1], "s", color="black", markersize=6, label="start")
        ax.legend(loc="best", fontsize="small")
    ax.set_xlim(*w_range)
    ax.set_ylim(*b_range)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title("Loss surface")
    return ax

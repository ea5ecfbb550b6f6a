"""sftcourse.plotting: what each helper draws (lines, labels, titles, image data), on the Agg backend."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sftcourse.plotting import (  # noqa: E402
    plot_confusion_matrix,
    plot_decision_boundary,
    plot_history,
    plot_image_grid,
    plot_loss_surface,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --- plot_history -----------------------------------------------------------------------------

def test_plot_history_defaults_to_loss_keys_and_draws_epochs_from_one():
    history = {"train_loss": [3.0, 2.0, 1.0], "val_loss": [3.5, 2.5, 2.0], "val_accuracy": [0.1, 0.5, 0.7]}
    ax = plot_history(history)
    assert isinstance(ax, Axes)
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["train_loss", "val_loss"]
    np.testing.assert_array_equal(lines[0].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(lines[1].get_ydata(), [3.5, 2.5, 2.0])
    assert ax.get_xlabel() == "epoch" and ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train_loss", "val_loss"]


def test_plot_history_explicit_keys_on_given_axes_and_tensor_values():
    fig, ax = plt.subplots()
    out = plot_history({"val_accuracy": torch.tensor([0.2, 0.9])}, keys=["val_accuracy"], ax=ax)
    assert out is ax
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_ydata(), [0.2, 0.9], rtol=1e-6)
    assert ax.get_ylabel() == "val_accuracy"
    # a single key given as a string is one key, not a sequence of characters
    ax2 = plot_history({"val_accuracy": [0.5]}, keys="val_accuracy")
    assert len(ax2.get_lines()) == 1


def test_plot_history_without_loss_keys_plots_everything():
    ax = plot_history({"accuracy": [0.1, 0.2], "lr": [1e-3, 1e-4]})
    assert len(ax.get_lines()) == 2


@pytest.mark.parametrize("history, keys, match", [
    ({}, None, "non-empty mapping"),
    ({"train_loss": [1.0]}, ["val_loss"], "not in history"),
    ({"train_loss": []}, None, "empty"),
])
def test_plot_history_bad_input(history, keys, match):
    with pytest.raises(ValueError, match=match):
        plot_history(history, keys=keys)


# --- plot_decision_boundary -------------------------------------------------------------------

def _two_blobs():
    X = np.array([[-1.0, -1.0], [-1.5, -0.5], [1.0, 1.0], [1.2, 0.4]])
    y = np.array([0, 0, 1, 1])
    return X, y


def test_plot_decision_boundary_shades_the_predicted_regions_and_scatters_points():
    X, y = _two_blobs()
    ax = plot_decision_boundary(lambda G: (G[:, 0] > 0).astype(int), X, y, resolution=50)
    assert isinstance(ax, Axes)
    assert len(ax.collections) >= 3  # filled contour + one scatter per class
    scatters = [c for c in ax.collections if c.get_label().startswith("class")]
    assert sorted(c.get_label() for c in scatters) == ["class 0", "class 1"]
    offsets = np.vstack([c.get_offsets() for c in scatters])
    assert offsets.shape == (4, 2)
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title() == "Decision boundary"
    # the window covers the data plus the margin
    assert ax.get_xlim()[0] == pytest.approx(-2.0) and ax.get_xlim()[1] == pytest.approx(1.7)


def test_plot_decision_boundary_accepts_probabilities_and_class_scores():
    X, y = _two_blobs()
    probs = plot_decision_boundary(lambda G: 1 / (1 + np.exp(-G[:, 0])), X, y, resolution=20)
    scores = plot_decision_boundary(lambda G: np.column_stack([-G[:, 0], G[:, 0]]), X, y, resolution=20)
    assert probs.get_title() and scores.get_title()


@pytest.mark.parametrize("X, y, predict, match", [
    (np.zeros((4, 3)), np.zeros(4), lambda G: G[:, 0], r"shape \(n, 2\)"),
    (np.zeros((4, 2)), np.zeros(3), lambda G: G[:, 0], r"y must have shape \(4,\)"),
    (np.zeros((4, 2)), np.zeros(4), lambda G: G[:10, 0], "one class"),
    (np.full((4, 2), np.nan), np.zeros(4), lambda G: G[:, 0], "NaN"),
])
def test_plot_decision_boundary_bad_input(X, y, predict, match):
    with pytest.raises(ValueError, match=match):
        plot_decision_boundary(predict, X, y, resolution=10)


# --- plot_confusion_matrix --------------------------------------------------------------------

def test_plot_confusion_matrix_shows_counts_and_names():
    cm = np.array([[5, 1], [2, 7]])
    ax = plot_confusion_matrix(cm, class_names=["neg", "pos"])
    (img,) = ax.get_images()
    np.testing.assert_array_equal(img.get_array(), cm)
    assert [t.get_text() for t in ax.texts] == ["5", "1", "2", "7"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["neg", "pos"]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"


def test_plot_confusion_matrix_normalize_divides_rows():
    cm = torch.tensor([[3, 1], [0, 0]])
    ax = plot_confusion_matrix(cm, normalize=True)
    np.testing.assert_allclose(ax.get_images()[0].get_array(), [[0.75, 0.25], [0.0, 0.0]])
    assert ax.texts[0].get_text() == "0.75"
    assert "normalised" in ax.get_title()


@pytest.mark.parametrize("cm, names, match", [
    (np.ones((2, 3)), None, "square"),
    (np.ones((2, 2)), ["a"], "class_names"),
    (-np.ones((2, 2)), None, "negative"),
    (np.ones(4), None, "2-D"),
])
def test_plot_confusion_matrix_bad_input(cm, names, match):
    with pytest.raises(ValueError, match=match):
        plot_confusion_matrix(cm, class_names=names)


# --- plot_image_grid --------------------------------------------------------------------------

def test_plot_image_grid_returns_figure_with_images_and_titles():
    images = np.arange(5 * 4 * 4, dtype=float).reshape(5, 4, 4)
    fig = plot_image_grid(images, titles=list("abcde"), ncols=3)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 6  # 2 rows x 3 columns, the last one blank
    drawn = [ax for ax in fig.axes if ax.get_images()]
    assert len(drawn) == 5
    np.testing.assert_array_equal(drawn[2].get_images()[0].get_array(), images[2])
    assert [ax.get_title() for ax in drawn] == list("abcde")


def test_plot_image_grid_channels_first_tensor_becomes_channels_last():
    images = torch.rand(2, 3, 6, 5)
    fig = plot_image_grid(images)
    arr = fig.axes[0].get_images()[0].get_array()
    assert arr.shape == (6, 5, 3)
    np.testing.assert_allclose(arr, images[0].permute(1, 2, 0).numpy(), rtol=1e-6)
    single = plot_image_grid(torch.rand(3, 1, 4, 4))
    assert single.axes[0].get_images()[0].get_array().shape == (4, 4)


@pytest.mark.parametrize("images, titles, match", [
    (np.zeros((4, 4)), None, r"\(n, H, W\)"),
    (np.zeros((2, 4, 4)), ["a"], "titles"),
    (np.zeros((2, 4, 4, 2)), None, "1 or 3"),
])
def test_plot_image_grid_bad_input(images, titles, match):
    with pytest.raises(ValueError, match=match):
        plot_image_grid(images, titles=titles)


# --- plot_loss_surface ------------------------------------------------------------------------

def test_plot_loss_surface_draws_contours_and_the_trajectory():
    def loss(w, b):
        return (w - 1.0) ** 2 + 3 * (b + 0.5) ** 2 + 0.1

    traj = np.array([[-2.0, 1.0], [0.0, 0.0], [1.0, -0.5]])
    fig, ax = plt.subplots()
    out = plot_loss_surface(loss, (-3, 3), (-2, 2), trajectory=traj, ax=ax, resolution=30)
    assert out is ax
    assert ax.collections, "contour lines are drawn"
    path, start = ax.get_lines()
    np.testing.assert_array_equal(path.get_xydata(), traj)
    np.testing.assert_array_equal(start.get_xydata(), traj[:1])
    assert path.get_label() == "gradient descent"
    assert ax.get_xlabel() == "$w$" and ax.get_ylabel() == "$b$" and ax.get_title() == "Loss surface"
    assert ax.get_xlim() == (-3, 3)


def test_plot_loss_surface_clips_a_diverging_trajectory_and_handles_zero_loss():
    traj = np.array([[0.0, 0.0], [10.0, -10.0], [np.inf, 1.0]])
    ax = plot_loss_surface(lambda w, b: w**2 + b**2, (-1, 1), (-1, 1), trajectory=traj, resolution=10)
    path = ax.get_lines()[0].get_xydata()
    np.testing.assert_array_equal(path, [[0.0, 0.0], [1.0, -1.0]])  # the inf row is dropped
    flat = plot_loss_surface(lambda w, b: 1.0, (-1, 1), (-1, 1), resolution=5)
    assert flat.get_lines() == []


@pytest.mark.parametrize("w_range, traj, match", [
    ((1, -1), None, "w_range"),
    ((-1, 1), np.zeros((3, 3)), r"\(T, 2\)"),
])
def test_plot_loss_surface_bad_input(w_range, traj, match):
    with pytest.raises(ValueError, match=match):
        plot_loss_surface(lambda w, b: w + b, w_range, (-1, 1), trajectory=traj, resolution=5)


def test_helpers_never_save_or_show(monkeypatch):
    calls = []
    monkeypatch.setattr(Figure, "savefig", lambda *a, **k: calls.append("savefig"))
    monkeypatch.setattr(plt, "show", lambda *a, **k: calls.append("show"))
    X, y = _two_blobs()
    plot_history({"train_loss": [1.0, 0.5]})
    plot_decision_boundary(lambda G: G[:, 0] > 0, X, y, resolution=10)
    plot_confusion_matrix(np.eye(2))
    plot_image_grid(np.zeros((2, 3, 3)))
    plot_loss_surface(lambda w, b: w**2 + b**2 + 1, (-1, 1), (-1, 1), resolution=5)
    assert calls == []


# --- bad input: every helper names the argument --------------------------------------------------

_XB = np.array([[-1.0, -1.0], [-1.5, -0.5], [1.0, 1.0], [1.2, 0.4]])
_YB = np.array([0, 0, 1, 1])


def _quad(w, b):
    return w**2 + b**2


@pytest.mark.parametrize("call, exc, message", [
    # silent before: a NaN prediction was drawn as class 0, fractional y picked wrong colours,
    # a string of class names or titles was split into letters
    (lambda: plot_decision_boundary(lambda G: np.full(len(G), np.nan), _XB, _YB, resolution=5), ValueError,
     r"predict returned NaN or infinite values"),
    (lambda: plot_decision_boundary(lambda G: G[:, 0] > 0, _XB, np.array([0.0, 0.5, 1.0, 1.0]), resolution=5),
     ValueError, r"y must hold integer class indices.*0\.5"),
    (lambda: plot_confusion_matrix(np.eye(2), class_names="ab"), TypeError, r"class_names must be a list of 2 strings, got the string 'ab'"),
    (lambda: plot_image_grid(np.zeros((2, 4, 4)), titles="ab"), TypeError, r"titles must be a list of 2 strings, got the string"),
    # deep before
    (lambda: plot_decision_boundary(None, _XB, _YB), TypeError, r"predict must be callable, got None"),
    (lambda: plot_decision_boundary(lambda G: G[:, 0] > 0, _XB, _YB, resolution=2.5), TypeError, r"resolution must be an int >= 2, got 2\.5"),
    (lambda: plot_decision_boundary(lambda G: G[:, 0] > 0, _XB, _YB, resolution=1), ValueError, r"resolution must be an int >= 2, got 1"),
    (lambda: plot_decision_boundary(lambda G: G[:, 0] > 0, _XB, _YB, margin=float("nan")), ValueError, r"margin must be a finite number >= 0, got nan"),
    (lambda: plot_decision_boundary(lambda G: 0, _XB, _YB, resolution=5), ValueError, r"predict returned shape \(\)"),
    (lambda: plot_decision_boundary(lambda G: np.array(["a"] * len(G)), _XB, _YB, resolution=5), TypeError, r"predict returned dtype <U1"),
    (lambda: plot_decision_boundary(lambda G: G[:, 0] > 0, _XB, np.array(["a", "a", "b", "b"])), ValueError, r"y must hold integer class indices, got dtype <U1"),
    (lambda: plot_decision_boundary(lambda G: G[:, 0] > 0, _XB, _YB, ax=np.array([1, 2]), resolution=5), TypeError, r"ax must be a matplotlib Axes or None.*ax=axes\[0\]"),
    (lambda: plot_history({"loss": [1.0]}, ax="left"), TypeError, r"ax must be a matplotlib Axes or None, got str"),
    (lambda: plot_history(None), ValueError, r"history must be a non-empty mapping"),
    (lambda: plot_history({"loss": ["a", "b"]}), TypeError, r"history\['loss'\] must be a list of numbers"),
    (lambda: plot_history({"loss": [1.0]}, keys=3), TypeError, r"keys must be a key or a list of keys"),
    (lambda: plot_confusion_matrix(None), ValueError, r"cm must be 2-D"),
    (lambda: plot_confusion_matrix(np.array([[1.0, np.nan], [0.0, 1.0]])), ValueError, r"cm contains 1 NaN"),
    (lambda: plot_confusion_matrix(np.eye(2), class_names=3), TypeError, r"class_names must be a list of 2 strings, got int"),
    (lambda: plot_image_grid(np.zeros((2, 4, 4)), ncols=0), ValueError, r"ncols must be an int >= 1, got 0"),
    (lambda: plot_image_grid(np.zeros((2, 4, 4)), ncols=2.0), TypeError, r"ncols must be an int >= 1, got 2\.0"),
    (lambda: plot_image_grid(np.zeros((2, 4, 4)), cmap="gray_r_x"), ValueError, r"cmap='gray_r_x' is not a matplotlib colormap"),
    (lambda: plot_image_grid(np.zeros((0, 4, 4))), ValueError, r"with n >= 1, got \(0, 4, 4\)"),
    (lambda: plot_image_grid(np.array([[["a"]]])), TypeError, r"images must be numeric, got dtype <U1"),
    (lambda: plot_loss_surface(None, (-1, 1), (-1, 1)), TypeError, r"loss_fn must be callable, got None"),
    (lambda: plot_loss_surface(lambda w, b: np.log(w), (-1, 1), (-1, 1), resolution=5), ValueError,
     r"loss_fn returned nan at \(w, b\) = \(-1, -1\); narrow w_range"),
    (lambda: plot_loss_surface(_quad, (-1, 1), (-1, 1), resolution=3.0), TypeError, r"resolution must be an int >= 2"),
    (lambda: plot_loss_surface(_quad, (-1, 1), (-1, 1), levels=1), ValueError, r"levels must be an int >= 2, got 1"),
    (lambda: plot_loss_surface(_quad, ("a", "b"), (-1, 1)), TypeError, r"w_range must be a pair of numbers"),
    (lambda: plot_loss_surface(_quad, (-1, 1), (-1, 1, 2)), ValueError, r"b_range must be \(low, high\)"),
    (lambda: plot_loss_surface(_quad, (-1, 1), (-1, np.nan)), ValueError, r"b_range must be \(low, high\)"),
    (lambda: plot_loss_surface(_quad, (-1, 1), (-1, 1), resolution=5, labels="wb"), TypeError, r"labels must be a pair of axis labels"),
    (lambda: plot_loss_surface(_quad, (-1, 1), (-1, 1), resolution=5, trajectory=np.zeros((0, 2))), ValueError, r"trajectory must have shape \(T, 2\)"),
])
def test_bad_arguments_are_named(call, exc, message):
    with np.errstate(invalid="ignore", divide="ignore"), pytest.raises(exc, match=message):
        call()
    plt.close("all")


def test_integer_valued_float_and_bool_labels_are_accepted():
    ax = plot_decision_boundary(lambda G: G[:, 0] > 0, _XB, _YB.astype(float), resolution=5)
    assert sorted(c.get_label() for c in ax.collections if c.get_label().startswith("class")) == ["class 0", "class 1"]
    plot_decision_boundary(lambda G: G[:, 0] > 0, _XB, _YB.astype(bool), resolution=5)
    plt.close("all")

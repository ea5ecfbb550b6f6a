"""sftcourse.images: statistics and normalisation against NumPy, augmentation, datasets, folders, splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sftcourse import hub
from sftcourse.images import (
    ImageTask,
    ImageTensorDataset,
    ImageTransform,
    channel_stats,
    hf_image_task,
    hf_images_to_tensor,
    load_hf_image_dataset,
    load_image_folder,
    normalize,
    random_hflip,
    random_shift,
    resize,
    sample_per_class,
    stratified_split,
    to_float_image,
)


def test_hf_dataset_from_disk_to_tensors_and_a_task(tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (8, 10, 3), dtype=np.uint8) for _ in range(10)]
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog"])})
    labels = [0, 1, 1, 0, 0, 1, 0, 1, 1, 0]
    split = lambda lo, hi: datasets.Dataset.from_dict(  # noqa: E731
        {"img": [Image.fromarray(a) for a in arrays[lo:hi]], "label": labels[lo:hi]}, features=features)
    datasets.DatasetDict({"train": split(0, 7), "test": split(7, 10)}).save_to_disk(str(tmp_path / "ds"))
    loaded = load_hf_image_dataset(tmp_path / "ds")
    images, y = hf_images_to_tensor(loaded["train"], "img", "label", limit=3)
    assert images.shape == (3, 3, 8, 10) and images.dtype == torch.uint8
    np.testing.assert_array_equal(images[1].permute(1, 2, 0).numpy(), arrays[1])
    assert y.tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="column 'image'"):
        hf_images_to_tensor(loaded["train"], "image", "label")
    task = hf_image_task(loaded, n_val_per_class=1, size=6)
    assert task.class_names == ["cat", "dog"] and task.images.shape == (10, 3, 6, 6)
    assert len(task.val) == 2 and len(task.pool) == 5 and task.test.tolist() == [7, 8, 9]
    assert sorted(task.labels[task.val].tolist()) == [0, 1] and task.labels.tolist() == labels
    assert set(task.pool.tolist()) | set(task.val.tolist()) == set(range(7))
    with pytest.raises(ValueError, match="no 'validation' split"):
        hf_image_task(loaded, test_split="validation")


def test_channel_stats_and_normalize_against_numpy():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (5, 3, 4, 4), dtype=np.uint8))
    mean, std = channel_stats(x)
    a = x.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(mean, a.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(std, a.transpose(1, 0, 2, 3).reshape(3, -1).std(axis=1, ddof=1), rtol=1e-4)
    z = normalize(x.float() / 255, mean, std)
    np.testing.assert_allclose(z.mean(dim=(0, 2, 3)).numpy(), 0, atol=1e-5)
    with pytest.raises(ValueError, match="one mean/std per channel"):
        normalize(x.float(), [0.5], [0.5])
    with pytest.raises(ValueError, match="positive"):
        normalize(x.float(), [0, 0, 0], [1, 0, 1])


def test_random_shift_moves_content_without_changing_it():
    torch.manual_seed(0)
    img = torch.zeros(1, 12, 12)
    img[0, 5:7, 4:8] = torch.arange(1.0, 9.0).view(2, 4)
    seen = set()
    for _ in range(30):
        out = random_shift(img, 2)
        assert out.shape == img.shape and torch.isclose(out.sum(), img.sum())
        ys, xs = torch.nonzero(out[0], as_tuple=True)
        dy, dx = int(ys.min()) - 5, int(xs.min()) - 4
        assert abs(dy) <= 2 and abs(dx) <= 2
        torch.testing.assert_close(out[0, 5 + dy:7 + dy, 4 + dx:8 + dx], img[0, 5:7, 4:8])
        seen.add((dy, dx))
    assert len(seen) > 5
    torch.testing.assert_close(random_shift(img, 0), img)


def test_image_transform_order_and_eval_copy():
    t = ImageTransform([0.5], [0.25], max_shift=1, hflip=True)
    x = torch.full((1, 4, 4), 255, dtype=torch.uint8)
    e = t.eval()
    assert e.max_shift == 0 and not e.hflip
    torch.testing.assert_close(e(x), torch.full((1, 4, 4), 2.0))
    # augmentation pads with black pixels before normalisation: padded pixels become (0 - 0.5) / 0.25
    torch.manual_seed(3)
    outs = torch.stack([t(x) for _ in range(20)])
    assert set(torch.unique(outs).tolist()) <= {2.0, -2.0}
    sized = ImageTransform([0.0] * 3, [1.0] * 3, size=8)
    assert sized(torch.zeros(3, 4, 4, dtype=torch.uint8)).shape == (3, 8, 8)


def test_image_tensor_dataset_checks_shapes():
    ds = ImageTensorDataset(torch.zeros(3, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1, 2]))
    x, y = ds[1]
    assert x.dtype == torch.float32 and int(y) == 1 and len(ds) == 3
    with pytest.raises(ValueError, match="unsqueeze"):
        ImageTensorDataset(torch.zeros(3, 4, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"labels must be \(n,\)"):
        ImageTensorDataset(torch.zeros(3, 1, 4, 4), torch.tensor([0, 1]))


def _write_folder(root, counts, size=(10, 12), mode="L"):
    from PIL import Image

    rng = np.random.default_rng(0)
    arrays = {}
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            shape = size[::-1] + ((3,) if mode == "RGB" else ())
            a = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(a, mode=mode).save(root / name / f"img{i}.png")
            arrays[(name, i)] = a
    return arrays


def test_load_image_folder_reads_classes_in_sorted_order(tmp_path):
    arrays = _write_folder(tmp_path, {"zebra": 2, "ant": 3}, size=(12, 10))
    (tmp_path / "ant" / "notes.txt").write_text("ignored")
    images, labels, classes = load_image_folder(tmp_path, image_size=(10, 12))
    assert classes == ["ant", "zebra"] and labels.tolist() == [0, 0, 0, 1, 1]
    assert images.shape == (5, 1, 10, 12) and images.dtype == torch.uint8
    np.testing.assert_array_equal(images[3, 0].numpy(), arrays[("zebra", 0)])
    rgb, _, _ = load_image_folder(tmp_path, image_size=6, grayscale=False)
    assert rgb.shape == (5, 3, 6, 6)


def test_load_image_folder_errors_say_what_to_fix(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_image_folder(tmp_path / "nope")
    _write_folder(tmp_path / "one", {"a": 2})
    with pytest.raises(ValueError, match="at least 2"):
        load_image_folder(tmp_path / "one")
    _write_folder(tmp_path / "two", {"a": 2})
    (tmp_path / "two" / "b").mkdir()
    (tmp_path / "two" / "b" / "readme.md").write_text("x")
    with pytest.raises(ValueError, match=r"two/b has no images"):
        load_image_folder(tmp_path / "two")
    (tmp_path / "two" / "b" / "broken.png").write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png"):
        load_image_folder(tmp_path / "two")


def test_stratified_split_is_deterministic_disjoint_and_per_class():
    y = np.array([0] * 10 + [1] * 5 + [2] * 2 + [3])
    tr, va = stratified_split(y, 0.2, seed=1)
    tr2, va2 = stratified_split(y, 0.2, seed=1)
    assert torch.equal(tr, tr2) and torch.equal(va, va2)
    assert set(tr.tolist()).isdisjoint(va.tolist()) and sorted(tr.tolist() + va.tolist()) == list(range(18))
    assert np.bincount(y[va.numpy()], minlength=4).tolist() == [2, 1, 1, 0]
    assert not torch.equal(va, stratified_split(y, 0.2, seed=2)[1])
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split(y, 1.0)


def test_sample_per_class_draws_k_from_the_candidates():
    y = np.repeat(np.arange(3), 10)
    cand = np.arange(0, 30, 2)
    idx = sample_per_class(y, 3, seed=0, candidates=cand)
    assert np.bincount(y[idx.numpy()]).tolist() == [3, 3, 3] and set(idx.tolist()) <= set(cand.tolist())
    assert torch.equal(idx, sample_per_class(y, 3, seed=0, candidates=cand))
    assert not torch.equal(idx, sample_per_class(y, 3, seed=1, candidates=cand))
    with pytest.raises(ValueError, match="fewer than k"):
        sample_per_class(y, 6, seed=0, candidates=cand)


def test_normalize_converts_uint8_instead_of_returning_inf():
    x = torch.full((1, 2, 2), 255, dtype=torch.uint8)
    z = normalize(x, [0.5], [0.25])
    assert z.dtype == torch.float32 and torch.isfinite(z).all()
    torch.testing.assert_close(z, torch.full((1, 2, 2), 2.0))


# ---------------------------------------------------------------------------
# Bad input: a clear error naming the argument


def _task(**overrides):
    kw = dict(images=torch.zeros(4, 1, 2, 2, dtype=torch.uint8), labels=torch.tensor([0, 1, 0, 1]),
              class_names=["a", "b"], pool=torch.tensor([0, 1]), val=torch.tensor([2]), test=torch.tensor([3]))
    kw.update(overrides)
    return ImageTask(**kw)


def _folder(tmp, counts=None):
    from PIL import Image

    for name, n in (counts or {"a": 1, "b": 1}).items():
        (tmp / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp / name / f"{i}.png")
    return tmp


def _hf(tmp):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    split = datasets.Dataset.from_dict({"img": [Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8))] * 2,
                                        "label": [0, 1]}, features=features)
    return datasets.DatasetDict({"train": split, "test": split})


U8 = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
BAD_INPUTS = [
    ("to_float_image not a tensor", lambda tmp: to_float_image(np.zeros((1, 2, 2))),
     TypeError, "x must be a torch.Tensor"),
    ("to_float_image int64", lambda tmp: to_float_image(torch.zeros(1, 2, 2, dtype=torch.int64)), ValueError,
     "uint8 .* or floating-point"),
    ("channel_stats 3-D", lambda tmp: channel_stats(torch.zeros(1, 4, 4)), ValueError, r"\(n, c, h, w\)"),
    ("channel_stats empty", lambda tmp: channel_stats(torch.zeros(0, 1, 4, 4)), ValueError, "non-empty"),
    ("channel_stats NaN", lambda tmp: channel_stats(torch.full((2, 1, 2, 2), float("nan"))), ValueError, "NaN"),
    ("channel_stats one pixel", lambda tmp: channel_stats(torch.zeros(1, 1, 1, 1)), ValueError, "at least two"),
    ("normalize 2-D", lambda tmp: normalize(torch.zeros(4, 4), [0.5], [0.5]), ValueError, "one mean/std per channel"),
    ("normalize mean length", lambda tmp: normalize(torch.zeros(3, 2, 2), [0.5], [0.5]), ValueError, "one mean/std"),
    ("normalize std zero", lambda tmp: normalize(torch.zeros(1, 2, 2), [0.5], [0.0]),
     ValueError, "std must be positive"),
    ("normalize std NaN", lambda tmp: normalize(torch.zeros(1, 2, 2), [0.5], [float("nan")]), ValueError,
     "std must be positive"),
    ("normalize mean inf", lambda tmp: normalize(torch.zeros(1, 2, 2), [float("inf")], [0.5]), ValueError, "finite"),
    ("normalize int64", lambda tmp: normalize(torch.zeros(1, 2, 2, dtype=torch.int64), [0.5], [0.5]),
     ValueError, "uint8"),
    ("random_shift negative", lambda tmp: random_shift(torch.zeros(1, 4, 4), -1),
     ValueError, "max_shift must be an int >= 0"),
    ("random_shift float", lambda tmp: random_shift(torch.zeros(1, 4, 4), 1.5), ValueError, "max_shift"),
    ("random_shift 1-D", lambda tmp: random_shift(torch.zeros(4), 1), ValueError, r"\(c, h, w\)"),
    ("random_hflip p > 1", lambda tmp: random_hflip(torch.zeros(1, 2, 2), p=1.5), ValueError, r"p must be in \[0, 1\]"),
    ("random_hflip p NaN", lambda tmp: random_hflip(torch.zeros(1, 2, 2), p=float("nan")), ValueError, "p must be"),
    ("resize size 0", lambda tmp: resize(torch.zeros(1, 4, 4), 0), ValueError, "size must be an int >= 1"),
    ("resize 2-D", lambda tmp: resize(torch.zeros(4, 4), 2), ValueError, r"\(c, h, w\) or \(n, c, h, w\)"),
    ("resize uint8", lambda tmp: resize(torch.zeros(1, 4, 4, dtype=torch.uint8), 2), ValueError, "to_float_image"),
    ("ImageTransform std zero", lambda tmp: ImageTransform([0.5], [0.0]), ValueError, "std must be positive"),
    ("ImageTransform lengths", lambda tmp: ImageTransform([0.5, 0.5], [0.5]), ValueError, "one std per mean"),
    ("ImageTransform size 0", lambda tmp: ImageTransform([0.5], [0.5], size=0), ValueError, "size must be"),
    ("ImageTransform max_shift -1", lambda tmp: ImageTransform([0.5], [0.5], max_shift=-1), ValueError, "max_shift"),
    ("ImageTransform wrong channels", lambda tmp: ImageTransform([0.5], [0.5])(torch.zeros(3, 2, 2)), ValueError,
     "one mean/std per channel"),
    ("dataset 3-D images", lambda tmp: ImageTensorDataset(torch.zeros(3, 4, 4), torch.tensor([0, 1, 2])), ValueError,
     "unsqueeze"),
    ("dataset label count", lambda tmp: ImageTensorDataset(U8, torch.tensor([0])),
     ValueError, r"labels must be \(n,\)"),
    ("dataset empty", lambda tmp: ImageTensorDataset(U8[:0], torch.tensor([], dtype=torch.long)), ValueError, "empty"),
    ("dataset float labels", lambda tmp: ImageTensorDataset(U8, torch.tensor([0.0, 1.5])), ValueError,
     "integer class ids"),
    ("dataset negative labels", lambda tmp: ImageTensorDataset(U8, torch.tensor([0, -1])), ValueError, ">= 0"),
    ("dataset images not a tensor", lambda tmp: ImageTensorDataset(np.zeros((2, 1, 4, 4)), [0, 1]), TypeError,
     "images must be a torch.Tensor"),
    ("dataset transform not callable", lambda tmp: ImageTensorDataset(U8, torch.tensor([0, 1]), transform="norm"),
     TypeError, "transform must be callable"),
    ("folder missing", lambda tmp: load_image_folder(tmp / "nope"), ValueError, "does not exist"),
    ("folder None", lambda tmp: load_image_folder(None), TypeError, "root must be a folder path"),
    ("folder one class", lambda tmp: load_image_folder(_folder(tmp, {"a": 1})), ValueError, "at least 2"),
    ("folder image_size 0", lambda tmp: load_image_folder(_folder(tmp), image_size=0), ValueError, "image_size"),
    ("folder image_size negative pair", lambda tmp: load_image_folder(_folder(tmp), image_size=(4, -1)), ValueError,
     "image_size"),
    ("folder extensions a str", lambda tmp: load_image_folder(_folder(tmp), extensions=".png"),
     ValueError, "extensions"),
    ("split empty", lambda tmp: stratified_split([]), ValueError, "non-empty"),
    ("split 2-D", lambda tmp: stratified_split(np.zeros((2, 2))), ValueError, "1-D"),
    ("split fraction 1", lambda tmp: stratified_split([0, 1, 0, 1], 1.0), ValueError, "val_fraction"),
    ("split fraction NaN", lambda tmp: stratified_split([0, 1, 0, 1], float("nan")), ValueError, "val_fraction"),
    ("split float labels", lambda tmp: stratified_split([0.5, 1.0]), ValueError, "integer class ids"),
    ("split seed str", lambda tmp: stratified_split([0, 1, 0, 1], seed="0"), ValueError, "seed"),
    ("sample k 0", lambda tmp: sample_per_class([0, 1], 0, seed=0), ValueError, "k .* must be an int >= 1"),
    ("sample fewer than k", lambda tmp: sample_per_class([0, 1], 2, seed=0), ValueError, "fewer than k"),
    ("sample candidates out of range", lambda tmp: sample_per_class([0, 1], 1, seed=0, candidates=[0, 5]), ValueError,
     r"candidates must be indices in \[0, 1\]"),
    ("sample 2-D labels", lambda tmp: sample_per_class(np.zeros((2, 2), dtype=int), 1, seed=0), ValueError, "1-D"),
    ("task labels out of range", lambda tmp: _task(labels=torch.tensor([0, 1, 0, 2])), ValueError,
     r"labels must lie in \[0, 1\]"),
    ("task length mismatch", lambda tmp: _task(labels=torch.tensor([0, 1])), ValueError, "labels has 2"),
    ("task index out of range", lambda tmp: _task(test=torch.tensor([9])),
     ValueError, r"test holds indices outside \[0, 3\]"),
    ("task overlapping splits", lambda tmp: _task(val=torch.tensor([1])), ValueError, "overlap"),
    ("task class_names a string", lambda tmp: _task(class_names="ab"), TypeError, "class_names must be a list"),
    ("task subset out of range", lambda tmp: _task().subset(torch.tensor([7])),
     ValueError, r"idx must hold indices in \[0, 3\]"),
    ("hf dataset None", lambda tmp: load_hf_image_dataset(None), TypeError, "name_or_dir"),
    ("hf dataset missing path", lambda tmp: load_hf_image_dataset(tmp / "nope"), ValueError, "does not exist"),
    ("hf tensors missing column", lambda tmp: hf_images_to_tensor(_hf(tmp)["train"], "image", "label"), ValueError,
     "column 'image'"),
    ("hf tensors limit 0", lambda tmp: hf_images_to_tensor(_hf(tmp)["train"], "img", "label", limit=0), ValueError,
     "limit must be an int >= 1"),
    ("hf tensors size 0", lambda tmp: hf_images_to_tensor(_hf(tmp)["train"], "img", "label", size=0), ValueError,
     "size must be an int >= 1"),
    ("hf task missing split", lambda tmp: hf_image_task(_hf(tmp), test_split="validation"), ValueError,
     "no 'validation' split"),
    ("hf task n_val 0", lambda tmp: hf_image_task(_hf(tmp), n_val_per_class=0), ValueError, "n_val_per_class"),
]


@pytest.mark.parametrize("case, call, exc, match", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_a_clear_error(case, call, exc, match, tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(exc, match=match):
        call(tmp_path)

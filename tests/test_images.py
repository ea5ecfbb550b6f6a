"""sftcourse.images: statistics and normalisation against NumPy, augmentation, datasets, folders, splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sftcourse.images import (
    ImageTensorDataset,
    ImageTransform,
    channel_stats,
    hf_image_task,
    hf_images_to_tensor,
    load_hf_image_dataset,
    load_image_folder,
    normalize,
    random_shift,
    sample_per_class,
    stratified_split,
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

"""sftcourse.vision: blocks against hand-written math, freezing, LR groups, checkpoints, loading, image data."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from sftcourse import vision
from sftcourse.vision import (
    BasicBlock,
    ImageTensorDataset,
    ImageTransform,
    ResNet,
    channel_stats,
    count_parameters,
    discriminative_param_groups,
    freeze,
    freeze_all_but,
    fresh_like,
    get_head,
    load_hf_image_dataset,
    load_image_folder,
    load_pretrained_resnet,
    load_resnet_checkpoint,
    normalize,
    parameter_table,
    random_shift,
    replace_head,
    resnet8,
    sample_per_class,
    save_resnet_checkpoint,
    set_head,
    stage_prefixes,
    stratified_split,
    unfreeze,
)


def _bn_eval(x, bn):
    return (x - bn.running_mean[None, :, None, None]) / torch.sqrt(bn.running_var[None, :, None, None] + bn.eps) \
        * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]


def _randomise_bn(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g))


# ---------------------------------------------------------------------------
# Blocks and the ResNet


@pytest.mark.parametrize("c_in, c_out, stride", [(4, 4, 1), (4, 8, 2), (4, 8, 1)])
def test_basic_block_matches_its_formula(c_in, c_out, stride):
    torch.manual_seed(0)
    block = BasicBlock(c_in, c_out, stride)
    _randomise_bn(block)
    block.eval()
    x = torch.randn(2, c_in, 8, 8)
    # oracle: the same computation spelled out with F.conv2d and the BN formula
    h = F.relu(_bn_eval(F.conv2d(x, block.conv1.weight, stride=stride, padding=1), block.bn1))
    h = _bn_eval(F.conv2d(h, block.conv2.weight, padding=1), block.bn2)
    if stride == 1 and c_in == c_out:
        assert isinstance(block.shortcut, nn.Identity)
        short = x
    else:
        conv, bn = block.shortcut[0], block.shortcut[1]
        assert conv.kernel_size == (1, 1) and conv.stride == (stride, stride)
        short = _bn_eval(F.conv2d(x, conv.weight, stride=stride), bn)
    expected = F.relu(h + short)
    out = block(x)
    assert out.shape == (2, c_out, 8 // stride, 8 // stride)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def _expected_resnet_params(c_in, k, widths, depths):
    total = 9 * c_in * widths[0] + 2 * widths[0]  # stem conv + BN
    prev = widths[0]
    for i, (w, d) in enumerate(zip(widths, depths)):
        for b in range(d):
            cin = prev if b == 0 else w
            total += 9 * cin * w + 2 * w + 9 * w * w + 2 * w
            if b == 0 and (i > 0 or cin != w):
                total += cin * w + 2 * w  # projection shortcut
        prev = w
    return total + prev * k + k


@pytest.mark.parametrize("widths, depths", [((16, 32, 64), (1, 1, 1)), ((8, 16), (2, 1)), ((4, 4), (1, 2))])
def test_resnet_parameter_count_has_a_closed_form(widths, depths):
    model = ResNet(3, 7, widths=widths, depths=depths)
    assert count_parameters(model) == _expected_resnet_params(3, 7, widths, depths)
    assert sum(r[1] for r in parameter_table(model)) == count_parameters(model)


def test_resnet8_shapes_layers_and_features():
    model = resnet8(1, 5)
    assert model.num_layers == 8
    main_path = [m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and "shortcut" not in n]
    assert len(main_path) == 8
    x = torch.randn(3, 1, 28, 28)
    assert model(x).shape == (3, 5)
    maps = model.feature_maps(x)
    assert [tuple(v.shape[1:]) for v in maps.values()] == [(16, 14, 14), (16, 14, 14), (32, 7, 7), (64, 4, 4)]
    assert resnet8(1, 5, stem_stride=1).feature_maps(x)["stage3"].shape[1:] == (64, 7, 7)
    model.eval()
    torch.testing.assert_close(model.fc(model.features(x)), model(x))
    with pytest.raises(ValueError, match="unsqueeze"):
        model(torch.randn(3, 28, 28))
    with pytest.raises(ValueError, match="equal length"):
        ResNet(1, 2, widths=(8, 16), depths=(1,))


# ---------------------------------------------------------------------------
# Stages, heads, freezing, learning-rate groups


def test_stage_prefixes_cover_every_parameter():
    model = resnet8(1, 5)
    prefixes = stage_prefixes(model)
    assert prefixes == ["stem", "stage1", "stage2", "stage3", "fc"]
    names = [n for n, _ in model.named_parameters()]
    assert all(sum(n.startswith(p + ".") for p in prefixes) == 1 for n in names)


def test_freeze_counts_and_blocks_gradients():
    model = resnet8(1, 5)
    sizes = {p: sum(t.numel() for n, t in model.named_parameters() if n.startswith(p + "."))
             for p in stage_prefixes(model)}
    left = freeze(model, ["stem", "stage1"])
    assert left == count_parameters(model) - sizes["stem"] - sizes["stage1"]
    assert count_parameters(model, trainable_only=True) == left
    model(torch.randn(4, 1, 28, 28)).sum().backward()
    assert all(p.grad is None for n, p in model.named_parameters() if n.startswith(("stem.", "stage1.")))
    assert all(p.grad is not None for n, p in model.named_parameters() if n.startswith(("stage2.", "fc.")))
    assert freeze_all_but(model, ["fc"]) == sizes["fc"]
    assert unfreeze(model) == count_parameters(model)
    assert freeze(model, names=["fc.bias"]) == count_parameters(model) - 5


def test_freeze_rejects_unknown_names_with_the_stage_list():
    model = resnet8(1, 5)
    with pytest.raises(ValueError, match="stages are"):
        freeze(model, ["layer1"])
    with pytest.raises(ValueError, match="no parameter named"):
        freeze(model, names=["fc.weights"])
    with pytest.raises(ValueError, match="lists of strings"):
        freeze(model, "stem")


def test_frozen_batchnorm_keeps_its_statistics_in_train_mode():
    torch.manual_seed(0)
    model = resnet8(1, 5)
    freeze(model, ["stem"])
    before_stem = model.stem[1].running_mean.clone()
    before_s1 = model.stage1[0].bn1.running_mean.clone()
    model.train()  # what fit() does every epoch
    model(torch.randn(8, 1, 28, 28) * 3 + 1)
    torch.testing.assert_close(model.stem[1].running_mean, before_stem, rtol=0, atol=0)
    assert not torch.equal(model.stage1[0].bn1.running_mean, before_s1)
    unfreeze(model)
    model.train()
    model(torch.randn(8, 1, 28, 28) * 3 + 1)
    assert not torch.equal(model.stem[1].running_mean, before_stem)


def test_frozen_batchnorm_can_be_switched_off():
    model = resnet8(1, 5)
    freeze(model, ["stem"], freeze_bn_stats=False)
    before = model.stem[1].running_mean.clone()
    model.train()
    model(torch.randn(8, 1, 28, 28) + 1)
    assert not torch.equal(model.stem[1].running_mean, before)


def test_discriminative_groups_decay_per_stage_and_cover_trainable_params():
    model = resnet8(1, 5)
    groups = discriminative_param_groups(model, 1e-2, 0.5)
    assert [g["name"] for g in groups] == ["stem", "stage1", "stage2", "stage3", "fc"]
    np.testing.assert_allclose([g["lr"] for g in groups], [1e-2 / 16, 1e-2 / 8, 1e-2 / 4, 1e-2 / 2, 1e-2])
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    opt = torch.optim.SGD(groups, lr=1.0)
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in groups]
    freeze(model, ["stem", "stage1"])
    groups = discriminative_param_groups(model, 1e-3, 0.1)
    assert [g["name"] for g in groups] == ["stage2", "stage3", "fc"]
    np.testing.assert_allclose([g["lr"] for g in groups], [1e-5, 1e-4, 1e-3])
    with pytest.raises(ValueError, match="none of the prefixes"):
        discriminative_param_groups(model, 1e-3, prefixes=["stage3", "fc"])
    with pytest.raises(ValueError, match="decay"):
        discriminative_param_groups(model, 1e-3, 0.0)
    freeze(model, ["stage2", "stage3", "fc"])
    with pytest.raises(ValueError, match="no trainable"):
        discriminative_param_groups(model, 1e-3)


def test_replace_and_reattach_head():
    torch.manual_seed(0)
    model = resnet8(1, 5).eval()
    x = torch.randn(2, 1, 28, 28)
    before = model(x)
    old = replace_head(model, 3)
    assert model(x).shape == (2, 3) and old.out_features == 5
    set_head(model, old)
    torch.testing.assert_close(model(x), before)
    with pytest.raises(ValueError, match="num_classes"):
        replace_head(model, 0)


def test_extract_features_swaps_the_head_and_restores_it():
    torch.manual_seed(0)
    model = resnet8(1, 5).eval()
    x, y = torch.randn(6, 1, 28, 28), torch.arange(6) % 5
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    feats, labels = vision.extract_features(model, loader, device="cpu")
    torch.testing.assert_close(feats, model.features(x))
    assert torch.equal(labels, y) and isinstance(model.fc, nn.Linear) and model(x).shape == (6, 5)


def test_fresh_like_rebuilds_the_architecture_with_random_weights():
    torch.manual_seed(0)
    model = resnet8(1, 5)
    fresh = fresh_like(model, 3)
    assert fresh.config == {**model.config, "num_classes": 3}
    assert count_parameters(fresh) == count_parameters(model) - 64 * 2 - 2
    assert not torch.equal(fresh.stem[0].weight, model.stem[0].weight)
    with pytest.raises(ValueError, match="num_classes"):
        fresh_like(model, 0)


# ---------------------------------------------------------------------------
# Checkpoints


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = resnet8(1, 4)
    _randomise_bn(model)
    path = save_resnet_checkpoint(tmp_path / "m.pt", model, mean=[0.1], std=[0.3], classes=list("abcd"),
                                  source_accuracy=0.5, seed=3)
    loaded, info = load_resnet_checkpoint(path)
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model.eval()(x))
    assert info["mean"] == [0.1] and info["classes"] == list("abcd") and info["seed"] == 3
    assert info["config"] == model.config and not loaded.training
    with pytest.raises(ValueError, match="one value per input channel"):
        save_resnet_checkpoint(tmp_path / "x.pt", model, mean=[0.1, 0.2], std=[0.3], classes=list("abcd"))
    with pytest.raises(ValueError, match="does not exist"):
        load_resnet_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a"):
        load_resnet_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not read"):
        load_resnet_checkpoint(tmp_path / "junk.pt")


# ---------------------------------------------------------------------------
# Hugging Face ResNet and datasets from local directories (what the full profile loads)


@pytest.fixture
def tiny_hf_resnet(tmp_path):
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    config = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                          layer_type="basic", num_labels=6)
    model = ResNetForImageClassification(config).eval()
    path = tmp_path / "tiny-resnet"
    model.save_pretrained(path)
    (path / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.2, 0.25], "crop_size": {"height": 64, "width": 64}}))
    return path, model


def test_load_pretrained_resnet_from_a_local_directory(tiny_hf_resnet):
    path, original = tiny_hf_resnet
    model, info = load_pretrained_resnet(path)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model.eval()(x).logits, original(x).logits)
    assert info["mean"] == [0.5, 0.4, 0.3] and info["std"] == [0.2, 0.2, 0.25] and info["image_size"] == 64
    assert stage_prefixes(model) == ["resnet.embedder", "resnet.encoder.stages.0", "resnet.encoder.stages.1",
                                     "classifier"]
    # a new head for 3 classes, then the pretrained head reattached gives the original logits
    model, info = load_pretrained_resnet(path, num_labels=3)
    assert model.eval()(x).logits.shape == (2, 3) and info["num_pretrained_labels"] == 6
    set_head(model, info["pretrained_head"])
    torch.testing.assert_close(model(x).logits, original(x).logits)
    assert model.config.num_labels == 6
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(2, dtype=torch.long)))
    feats, _ = vision.extract_features(model, loader, device="cpu")
    torch.testing.assert_close(feats, model.resnet(x).pooler_output.flatten(1))
    scratch = fresh_like(model, 4).eval()
    assert type(scratch) is type(model) and scratch(x).logits.shape == (2, 4)
    assert count_parameters(scratch) == count_parameters(model) - 16 * 2 - 2


def test_freezing_and_groups_work_on_the_hf_resnet(tiny_hf_resnet):
    path, _ = tiny_hf_resnet
    model, _ = load_pretrained_resnet(path, num_labels=3)
    head = sum(p.numel() for p in get_head(model).parameters())
    assert freeze_all_but(model, ["classifier"]) == head == 16 * 3 + 3
    unfreeze(model)
    groups = discriminative_param_groups(model, 1e-3, 0.5)
    assert [g["name"] for g in groups] == stage_prefixes(model)
    assert sum(p.numel() for g in groups for p in g["params"]) == count_parameters(model)


def test_hub_name_offline_fails_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setattr(vision, "_hub_reachable", lambda timeout=3.0: False)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="save_pretrained") as err:
        load_pretrained_resnet("microsoft/resnet-18", num_labels=3, cache_root=tmp_path)
    assert "run this once with internet" in str(err.value)
    with pytest.raises(ValueError, match="save_to_disk"):
        load_hf_image_dataset("uoft-cs/cifar10", cache_root=tmp_path)
    assert time.perf_counter() - t0 < 5
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        load_pretrained_resnet(tmp_path / "empty")


def test_hub_probe_respects_hf_hub_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert vision._hub_reachable() is False


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
    images, y = vision.hf_images_to_tensor(loaded["train"], "img", "label", limit=3)
    assert images.shape == (3, 3, 8, 10) and images.dtype == torch.uint8
    np.testing.assert_array_equal(images[1].permute(1, 2, 0).numpy(), arrays[1])
    assert y.tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="column 'image'"):
        vision.hf_images_to_tensor(loaded["train"], "image", "label")
    task = vision.hf_image_task(loaded, n_val_per_class=1, size=6)
    assert task.class_names == ["cat", "dog"] and task.images.shape == (10, 3, 6, 6)
    assert len(task.val) == 2 and len(task.pool) == 5 and task.test.tolist() == [7, 8, 9]
    assert sorted(task.labels[task.val].tolist()) == [0, 1] and task.labels.tolist() == labels
    assert set(task.pool.tolist()) | set(task.val.tolist()) == set(range(7))
    with pytest.raises(ValueError, match="no 'validation' split"):
        vision.hf_image_task(loaded, test_split="validation")


# ---------------------------------------------------------------------------
# Normalisation and augmentation


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


# ---------------------------------------------------------------------------
# Your own images in folders


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

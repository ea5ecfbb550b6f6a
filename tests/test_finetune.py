"""sftcourse.finetune: stages, heads, freezing (batch norm included), per-stage learning rates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sftcourse.finetune import (
    count_parameters,
    discriminative_param_groups,
    extract_features,
    freeze,
    freeze_all_but,
    fresh_like,
    get_head,
    replace_head,
    set_head,
    stage_prefixes,
    unfreeze,
)
from sftcourse.resnet import load_pretrained_resnet, resnet8


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
    feats, labels = extract_features(model, loader, device="cpu")
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


def test_freezing_and_groups_work_on_the_hf_resnet(tiny_hf_resnet):
    path, _ = tiny_hf_resnet
    model, _ = load_pretrained_resnet(path)
    replace_head(model, 3)
    head = sum(p.numel() for p in get_head(model).parameters())
    assert freeze_all_but(model, ["classifier"]) == head == 16 * 3 + 3
    unfreeze(model)
    groups = discriminative_param_groups(model, 1e-3, 0.5)
    assert [g["name"] for g in groups] == stage_prefixes(model)
    assert sum(p.numel() for g in groups for p in g["params"]) == count_parameters(model)

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
    freeze_batchnorm_stats,
    fresh_like,
    get_head,
    parameter_table,
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



def test_discriminative_groups_weight_decay_reaches_weights_not_biases_or_norms():
    model = resnet8(1, 5)
    # None: no group sets weight_decay, so the optimizer's default reaches every parameter
    groups = discriminative_param_groups(model, 1e-2, 0.5)
    assert all("weight_decay" not in g for g in groups)
    opt = torch.optim.AdamW(groups, lr=1e-2, weight_decay=0.05)
    assert all(g["weight_decay"] == 0.05 for g in opt.param_groups)
    # a value: matrices and kernels decay, biases and batch-norm parameters do not; lr per stage kept
    groups = discriminative_param_groups(model, 1e-2, 0.5, weight_decay=1e-4)
    assert [g["name"] for g in groups] == [n for s in ["stem", "stage1", "stage2", "stage3", "fc"]
                                           for n in (s, f"{s} (no decay)")]
    np.testing.assert_allclose([g["lr"] for g in groups[::2]], [1e-2 / 16, 1e-2 / 8, 1e-2 / 4, 1e-2 / 2, 1e-2])
    assert all(g["lr"] == h["lr"] for g, h in zip(groups[::2], groups[1::2]))
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    opt = torch.optim.AdamW(groups, lr=1.0, weight_decay=0.5)  # the optimizer default must not win
    by_id = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        expected = 0.0 if (name.endswith("bias") or p.ndim == 1) else 1e-4
        assert by_id[id(p)] == expected, name
    # large lr and decay so that the shrink is far above float32 rounding
    opt = torch.optim.AdamW(discriminative_param_groups(model, 0.5, 0.5, weight_decay=0.4), lr=1.0, weight_decay=0.5)
    by_id = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert by_id[id(bn.weight)] == 0.0 and by_id[id(bn.bias)] == 0.0
    # the decay acts: zero gradients, one AdamW step shrinks decayed weights by exactly (1 - lr * wd)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        factor = 1 - lr_of[id(p)] * by_id[id(p)]
        torch.testing.assert_close(p.detach(), before[name] * factor, rtol=1e-6, atol=0)
    # the oracle can fail: the old behaviour (every group at 0) would leave the conv weights unchanged
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert not torch.equal(conv.weight.detach(), before[next(n for n, p in model.named_parameters() if p is conv.weight)])
    for bad in (-1.0, float("nan"), "0.01", True):
        with pytest.raises(ValueError, match="weight_decay"):
            discriminative_param_groups(model, 1e-2, weight_decay=bad)


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


# ---------------------------------------------------------------------------
# freeze_batchnorm_stats on its own: the hook a chapter can show


def test_freeze_batchnorm_stats_keeps_running_statistics_through_model_train():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))
    assert freeze_batchnorm_stats(net) == 2
    before = [m.running_mean.clone() for m in net if isinstance(m, nn.BatchNorm2d)]
    net.train()
    x = torch.randn(8, 1, 8, 8) * 3 + 1
    out = net(x)
    bns = [m for m in net if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(m.running_mean, b) for m, b in zip(bns, before))
    torch.testing.assert_close(out, net.eval()(x))  # frozen layers normalise with the stored statistics
    freeze_batchnorm_stats(net, frozen=False)
    net.train()
    net(x)
    assert not torch.equal(net[1].running_mean, before[0])
    assert freeze_batchnorm_stats(nn.Linear(2, 2)) == 0


# ---------------------------------------------------------------------------
# Bad input: a clear error naming the argument


class _with_fc(nn.Module):  # noqa: N801 - a tiny stand-in model whose head has no Linear layer
    def __init__(self, fc):
        super().__init__()
        self.fc = fc


def _loader(x, y=None):
    data = torch.utils.data.TensorDataset(x) if y is None else torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(data, batch_size=2)


BAD_INPUTS = [
    ("count_parameters not a module", lambda: count_parameters([1, 2]), TypeError, "model must be a torch.nn.Module"),
    ("count_parameters trainable_only str", lambda: count_parameters(resnet8(1, 2), trainable_only="yes"), TypeError,
     "trainable_only must be True or False"),
    ("stage_prefixes not a module", lambda: stage_prefixes(None), TypeError, "model must be a torch.nn.Module"),
    ("parameter_table not a module", lambda: parameter_table("resnet"), TypeError, "model must be a torch.nn.Module"),
    ("get_head without a head", lambda: get_head(nn.Sequential(nn.Linear(2, 2))),
     ValueError, "neither .fc nor .classifier"),
    ("get_head not a module", lambda: get_head(3), TypeError, "model must be a torch.nn.Module"),
    ("set_head not a module", lambda: set_head(resnet8(1, 2), "linear"), TypeError, "head must be a torch.nn.Module"),
    ("replace_head 0 classes", lambda: replace_head(resnet8(1, 2), 0), ValueError, "num_classes must be an int >= 1"),
    ("replace_head float classes", lambda: replace_head(resnet8(1, 2), 2.0), ValueError, "num_classes"),
    ("replace_head bool classes", lambda: replace_head(resnet8(1, 2), True), ValueError, "num_classes"),
    ("replace_head head without Linear", lambda: replace_head(_with_fc(nn.Identity()), 3), ValueError, "no nn.Linear"),
    ("fresh_like 0 classes", lambda: fresh_like(resnet8(1, 2), 0), ValueError, "num_classes"),
    ("fresh_like no config", lambda: fresh_like(nn.Linear(2, 2), 2), ValueError, "cannot rebuild"),
    ("extract_features no labels",
     lambda: extract_features(resnet8(1, 2), _loader(torch.randn(2, 1, 8, 8)), device="cpu"),
     ValueError, "must be \\(x, y\\)"),
    ("extract_features bare tensors", lambda: extract_features(
        resnet8(1, 2), torch.utils.data.DataLoader(torch.randn(2, 1, 8, 8), batch_size=2), device="cpu"),
     ValueError, "yields no labels"),
    ("extract_features not a module", lambda: extract_features(None, [], device="cpu"), TypeError,
     "model must be a torch.nn.Module"),
    ("freeze_batchnorm_stats not a module", lambda: freeze_batchnorm_stats("bn"),
     TypeError, "module must be a torch.nn.Module"),
    ("freeze_batchnorm_stats frozen str", lambda: freeze_batchnorm_stats(resnet8(1, 2), frozen="no"), TypeError,
     "frozen must be True or False"),
    ("freeze prefixes a str", lambda: freeze(resnet8(1, 2), "stem"), ValueError, "lists of strings"),
    ("freeze unknown prefix", lambda: freeze(resnet8(1, 2), ["layer1"]), ValueError, "stages are"),
    ("freeze unknown name", lambda: freeze(resnet8(1, 2), names=["fc.weights"]), ValueError, "no parameter named"),
    ("freeze None prefix", lambda: freeze(resnet8(1, 2), [None]), ValueError, "lists of strings"),
    ("freeze freeze_bn_stats str", lambda: freeze(resnet8(1, 2), ["stem"], freeze_bn_stats="yes"), TypeError,
     "freeze_bn_stats must be True or False"),
    ("freeze_all_but a str", lambda: freeze_all_but(resnet8(1, 2), "fc"), ValueError, "lists of strings"),
    ("freeze_all_but unknown", lambda: freeze_all_but(resnet8(1, 2), ["head"]), ValueError, "stages are"),
    ("unfreeze unknown", lambda: unfreeze(resnet8(1, 2), ["head"]), ValueError, "stages are"),
    ("unfreeze a str", lambda: unfreeze(resnet8(1, 2), "fc"), ValueError, "lists of strings"),
    ("groups base_lr 0", lambda: discriminative_param_groups(resnet8(1, 2), 0.0),
     ValueError, "base_lr must be a positive"),
    ("groups base_lr NaN", lambda: discriminative_param_groups(resnet8(1, 2), float("nan")), ValueError, "base_lr"),
    ("groups base_lr str", lambda: discriminative_param_groups(resnet8(1, 2), "1e-3"), ValueError, "base_lr"),
    ("groups decay 0", lambda: discriminative_param_groups(resnet8(1, 2), 1e-3, 0.0), ValueError, "decay must be in"),
    ("groups decay > 1", lambda: discriminative_param_groups(resnet8(1, 2), 1e-3, 1.5), ValueError, "decay"),
    ("groups decay NaN", lambda: discriminative_param_groups(resnet8(1, 2), 1e-3, float("nan")), ValueError, "decay"),
    ("groups weight_decay negative", lambda: discriminative_param_groups(resnet8(1, 2), 1e-3, weight_decay=-0.1),
     ValueError, "weight_decay must be a finite number >= 0"),
    ("groups weight_decay NaN", lambda: discriminative_param_groups(resnet8(1, 2), 1e-3, weight_decay=float("nan")),
     ValueError, "weight_decay"),
    ("groups unknown prefix", lambda: discriminative_param_groups(resnet8(1, 2), 1e-3, prefixes=["head"]), ValueError,
     "stages are"),
    ("groups prefixes miss params", lambda: discriminative_param_groups(resnet8(1, 2), 1e-3, prefixes=["fc"]),
     ValueError,
     "none of the prefixes"),
]


@pytest.mark.parametrize("case, call, exc, match", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_a_clear_error(case, call, exc, match):
    with pytest.raises(exc, match=match):
        call()

"""sftcourse.resnet: blocks against hand-written math, parameter counts, checkpoints, the HF ResNet loader."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from sftcourse.finetune import (
    count_parameters,
    extract_features,
    fresh_like,
    parameter_table,
    replace_head,
    set_head,
    stage_prefixes,
)
from sftcourse.resnet import (
    BasicBlock,
    ResNet,
    load_pretrained_resnet,
    load_resnet_checkpoint,
    resnet8,
    save_resnet_checkpoint,
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
    with pytest.raises(ValueError, match="not an sftcourse checkpoint"):
        load_resnet_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not an sftcourse checkpoint"):
        load_resnet_checkpoint(tmp_path / "junk.pt")


# ---------------------------------------------------------------------------
# The Hugging Face ResNet from a local directory (what the full profile loads)


def test_load_pretrained_resnet_from_a_local_directory(tiny_hf_resnet):
    path, original = tiny_hf_resnet
    model, info = load_pretrained_resnet(path)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model.eval()(x).logits, original(x).logits)
    assert info["mean"] == [0.5, 0.4, 0.3] and info["std"] == [0.2, 0.2, 0.25] and info["image_size"] == 64
    assert stage_prefixes(model) == ["resnet.embedder", "resnet.encoder.stages.0", "resnet.encoder.stages.1",
                                     "classifier"]
    # a new head for 3 classes, then the pretrained head reattached gives the original logits
    pretrained_head = replace_head(model, 3)
    assert model.eval()(x).logits.shape == (2, 3) and info["num_pretrained_classes"] == 6
    set_head(model, pretrained_head)
    torch.testing.assert_close(model(x).logits, original(x).logits)
    assert model.config.num_labels == 6
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(2, dtype=torch.long)))
    feats, _ = extract_features(model, loader, device="cpu")
    torch.testing.assert_close(feats, model.resnet(x).pooler_output.flatten(1))
    scratch = fresh_like(model, 4).eval()
    assert type(scratch) is type(model) and scratch(x).logits.shape == (2, 4)
    assert count_parameters(scratch) == count_parameters(model) - 16 * 2 - 2

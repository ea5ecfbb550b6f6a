"""sftcourse.resnet: blocks against hand-written math, parameter counts, checkpoints, the HF ResNet loader."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from sftcourse import hub
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
    conv3x3,
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


# ---------------------------------------------------------------------------
# Bad input: a clear error naming the argument


def _checkpoint(tmp):
    torch.manual_seed(0)
    return save_resnet_checkpoint(tmp / "ok.pt", resnet8(1, 2), mean=[0.1], std=[0.3], classes=[0, 1])


def _truncated(tmp):
    data = _checkpoint(tmp).read_bytes()
    (tmp / "truncated.pt").write_bytes(data[: len(data) // 2])
    return tmp / "truncated.pt"


def _foreign(tmp):
    torch.save(nn.Linear(2, 2), tmp / "foreign.pt")  # a whole pickled module, not our format
    return tmp / "foreign.pt"


def _wrong_weights(tmp):
    payload = torch.load(_checkpoint(tmp), weights_only=True)
    payload["config"]["widths"] = [8, 8, 8]
    torch.save(payload, tmp / "wrong.pt")
    return tmp / "wrong.pt"


BAD_INPUTS = [
    ("conv3x3 zero channels", lambda tmp: conv3x3(0, 4), ValueError, "in_channels"),
    ("conv3x3 stride 0", lambda tmp: conv3x3(3, 4, stride=0), ValueError, "stride"),
    ("BasicBlock float channels", lambda tmp: BasicBlock(4.5, 8), ValueError, "in_channels"),
    ("ResNet widths empty", lambda tmp: ResNet(1, 2, widths=(), depths=()), ValueError, "non-empty"),
    ("ResNet lengths differ", lambda tmp: ResNet(1, 2, widths=(8, 16), depths=(1,)), ValueError, "equal length"),
    ("ResNet float width", lambda tmp: ResNet(1, 2, widths=(8.5, 16), depths=(1, 1)), ValueError, "widths"),
    ("ResNet zero classes", lambda tmp: ResNet(1, 0), ValueError, "num_classes"),
    ("ResNet str in_channels", lambda tmp: ResNet("1", 2), ValueError, "in_channels"),
    ("ResNet widths a str", lambda tmp: ResNet(1, 2, widths="16"), ValueError, "widths"),
    ("forward 3-D input", lambda tmp: resnet8(1, 2)(torch.randn(2, 28, 28)), ValueError, "unsqueeze"),
    ("forward wrong channels", lambda tmp: resnet8(1, 2)(torch.randn(2, 3, 28, 28)), ValueError, r"\(n, 1, H, W\)"),
    ("forward uint8 images", lambda tmp: resnet8(1, 2)(torch.zeros(2, 1, 28, 28, dtype=torch.uint8)), ValueError,
     "floating-point.*ImageTransform"),
    ("forward not a tensor", lambda tmp: resnet8(1, 2)([[0.0]]), TypeError, "x must be a torch.Tensor"),
    ("forward empty batch", lambda tmp: resnet8(1, 2)(torch.zeros(0, 1, 28, 28)), ValueError, "empty"),
    ("features 3-D input", lambda tmp: resnet8(1, 2).features(torch.randn(2, 28, 28)), ValueError, "unsqueeze"),
    ("feature_maps uint8", lambda tmp: resnet8(1, 2).feature_maps(torch.zeros(1, 1, 8, 8, dtype=torch.uint8)),
     ValueError, "floating-point"),
    ("resnet8 zero classes", lambda tmp: resnet8(1, 0), ValueError, "num_classes"),
    ("save not a ResNet", lambda tmp: save_resnet_checkpoint(tmp / "x.pt", nn.Linear(2, 2), mean=[0.1], std=[0.3],
                                                             classes=[0, 1]), ValueError, "sftcourse.resnet.ResNet"),
    ("save mean length", lambda tmp: save_resnet_checkpoint(tmp / "x.pt", resnet8(1, 2), mean=[0.1, 0.2], std=[0.3],
                                                            classes=[0, 1]), ValueError, "one value per input channel"),
    ("save std zero", lambda tmp: save_resnet_checkpoint(tmp / "x.pt", resnet8(1, 2), mean=[0.1], std=[0.0],
                                                         classes=[0, 1]), ValueError, "std must be positive"),
    ("save mean NaN", lambda tmp: save_resnet_checkpoint(tmp / "x.pt", resnet8(1, 2), mean=[float("nan")], std=[0.3],
                                                         classes=[0, 1]), ValueError, "finite"),
    ("save classes length", lambda tmp: save_resnet_checkpoint(tmp / "x.pt", resnet8(1, 2), mean=[0.1], std=[0.3],
                                                               classes=[0, 1, 2]), ValueError, "classes has 3"),
    ("save path is a folder", lambda tmp: save_resnet_checkpoint(tmp, resnet8(1, 2), mean=[0.1], std=[0.3],
                                                                 classes=[0, 1]), ValueError, "is a folder"),
    ("save info not plain", lambda tmp: save_resnet_checkpoint(tmp / "x.pt", resnet8(1, 2), mean=[0.1], std=[0.3],
                                                               classes=[0, 1], extra=nn.Linear(1, 1)), ValueError,
     "info values must be plain"),
    ("load None", lambda tmp: load_resnet_checkpoint(None), TypeError, "path must be a file path"),
    ("load missing", lambda tmp: load_resnet_checkpoint(tmp / "missing.pt"), ValueError, "does not exist"),
    ("load a folder", lambda tmp: load_resnet_checkpoint(tmp), ValueError, "is a folder"),
    ("load truncated", lambda tmp: load_resnet_checkpoint(_truncated(tmp)), ValueError,
     "not an sftcourse checkpoint.*truncated"),
    ("load foreign pickle", lambda tmp: load_resnet_checkpoint(_foreign(tmp)),
     ValueError, "not an sftcourse checkpoint"),
    ("load weights that do not fit", lambda tmp: load_resnet_checkpoint(_wrong_weights(tmp)), ValueError,
     "weights do not fit"),
    ("load bad device", lambda tmp: load_resnet_checkpoint(_checkpoint(tmp), device="gpu"), ValueError,
     "device 'gpu' is not a torch device"),
    ("hf loader None", lambda tmp: load_pretrained_resnet(None), TypeError, "name_or_dir must be a Hub name"),
    ("hf loader missing folder", lambda tmp: load_pretrained_resnet(tmp / "nope"), ValueError, "does not exist"),
    ("hf loader folder without config", lambda tmp: load_pretrained_resnet(tmp), ValueError, "no config.json"),
    ("hf loader profile", lambda tmp: load_pretrained_resnet("microsoft/resnet-18", profile="Full"), ValueError,
     "profile must be one of"),
]


@pytest.mark.parametrize("case, call, exc, match", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_a_clear_error(case, call, exc, match, tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(exc, match=match):
        call(tmp_path)


def test_a_non_bert_folder_is_not_an_image_classifier(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "not-a-model"}')
    with pytest.raises(ValueError, match="could not load an image classifier"):
        load_pretrained_resnet(tmp_path)

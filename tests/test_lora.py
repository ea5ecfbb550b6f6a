"""sftcourse.lora: the formula by hand, the step-0 identity, freezing, merging, and peft as the oracle."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification, LlamaConfig, LlamaForCausalLM

from sftcourse.lora import LoRALinear, add_lora, count_parameters, lora_layers, lora_parameters, merge_lora


def _tiny_bert(seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=16, num_labels=2,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(cfg).eval()


def _batch(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 50, (3, 7), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def test_lora_linear_is_the_formula():
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    layer = LoRALinear(base, r=2, alpha=8)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(4, 3, 6)
    W, b, A, B = base.weight, base.bias, layer.lora_A, layer.lora_B
    expected = x @ W.T + b + (8 / 2) * (x @ A.T @ B.T)
    assert torch.allclose(layer(x), expected, atol=1e-6)
    assert torch.allclose(layer.delta_weight(), 4 * B @ A)
    # the oracle can fail: without the alpha / r scale the output differs
    assert not torch.allclose(layer(x), x @ W.T + b + x @ A.T @ B.T, atol=1e-3)


def test_step_zero_identity_and_frozen_base():
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    x = torch.randn(4, 6)
    layer = LoRALinear(copy.deepcopy(base), r=3, alpha=6)
    assert torch.equal(layer(x), base(x))  # B = 0: exactly the pretrained output
    assert torch.count_nonzero(layer.lora_A) > 0 and torch.count_nonzero(layer.lora_B) == 0
    assert [n for n, p in layer.named_parameters() if p.requires_grad] == ["lora_A", "lora_B"]
    layer(x).sum().backward()
    assert layer.base.weight.grad is None and layer.lora_B.grad is not None
    assert torch.count_nonzero(layer.lora_A.grad) == 0  # dL/dA = scaling * B^T (...) = 0 while B = 0


def test_gradients_match_autograd_of_the_dense_update():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(5, 4), r=2, alpha=4)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(3, 5)
    layer(x).pow(2).sum().backward()
    # hand gradient: y = x W^T + b + s x A^T B^T, L = sum y^2, G = dL/dy = 2y
    with torch.no_grad():
        G = 2 * layer(x)
        s, A, B = layer.scaling, layer.lora_A, layer.lora_B
        dB = s * G.T @ (x @ A.T)
        dA = s * B.T @ G.T @ x
    assert torch.allclose(layer.lora_B.grad, dB, atol=1e-5)
    assert torch.allclose(layer.lora_A.grad, dA, atol=1e-5)


def test_add_lora_counts_freezes_and_merges():
    model = _tiny_bert()
    before = model(**_batch()).logits
    names = add_lora(model, ["query", "value"], r=4, alpha=8)
    assert names == [f"bert.encoder.layer.{i}.attention.self.{t}" for i in range(2) for t in ("query", "value")]
    assert torch.equal(model(**_batch()).logits, before)
    trainable, total = count_parameters(model)
    assert trainable == 4 * 4 * (16 + 16) == sum(p.numel() for p in lora_parameters(model))
    assert total == count_parameters(_tiny_bert())[1] + trainable
    with torch.no_grad():
        for _, layer in lora_layers(model):
            layer.lora_B.normal_()
    unmerged = model(**_batch()).logits
    assert not torch.allclose(unmerged, before, atol=1e-4)
    merge_lora(model)
    assert not lora_layers(model) and isinstance(model.bert.encoder.layer[0].attention.self.query, nn.Linear)
    assert torch.allclose(model(**_batch()).logits, unmerged, atol=1e-5)


def _peft_twin(model: nn.Module, r: int, alpha: float, targets: list[str]) -> nn.Module:
    """peft's LoRA on a copy of ``model``, with every A and B copied from our layers of the same name."""
    from peft import LoraConfig, get_peft_model

    ours = dict(lora_layers(model))
    plain = copy.deepcopy(model)
    for name, layer in ours.items():
        plain.set_submodule(name, copy.deepcopy(layer.base))
    peft_model = get_peft_model(plain, LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0))
    for name, layer in ours.items():
        theirs = peft_model.base_model.model.get_submodule(name)
        with torch.no_grad():
            theirs.lora_A["default"].weight.copy_(layer.lora_A)
            theirs.lora_B["default"].weight.copy_(layer.lora_B)
    return peft_model


def test_matches_peft_on_a_bert_classifier():
    model = _tiny_bert()
    add_lora(model, ["query", "value"], r=4, alpha=16)
    with torch.no_grad():
        for _, layer in lora_layers(model):
            layer.lora_B.normal_(std=0.1)
    twin = _peft_twin(model, 4, 16, ["query", "value"])
    ours, theirs = model(**_batch()).logits, twin(**_batch()).logits
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert count_parameters(model)[0] == count_parameters(twin)[0]
    # the oracle can fail: a different alpha moves peft's output away from ours
    other = _peft_twin(model, 4, 4, ["query", "value"])
    assert not torch.allclose(ours, other(**_batch()).logits, atol=1e-4)
    merged = twin.merge_and_unload()
    assert torch.allclose(merged(**_batch()).logits, ours, atol=1e-5)


def test_matches_peft_on_a_causal_lm_and_trains_the_same():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32)
    model = LlamaForCausalLM(cfg).eval()
    add_lora(model, ["q_proj", "v_proj"], r=2, alpha=4)
    twin = _peft_twin(model, 2, 4, ["q_proj", "v_proj"])
    ids = torch.randint(0, 40, (2, 9), generator=torch.Generator().manual_seed(3))
    opt_a = torch.optim.AdamW(lora_parameters(model), lr=1e-2)
    opt_b = torch.optim.AdamW([p for p in twin.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(5):
        losses = []
        for m, opt in ((model, opt_a), (twin, opt_b)):
            loss = m(input_ids=ids, labels=ids).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[0] == pytest.approx(losses[1], abs=1e-5)


def test_bad_arguments_are_explained():
    with pytest.raises(TypeError, match="wraps an nn.Linear"):
        LoRALinear(nn.Conv1d(2, 2, 1), r=1, alpha=1)
    with pytest.raises(ValueError, match="r \\(the rank\\)"):
        LoRALinear(nn.Linear(4, 4), r=0, alpha=1)
    with pytest.raises(ValueError, match="exceeds"):
        LoRALinear(nn.Linear(4, 3), r=4, alpha=1)
    with pytest.raises(ValueError, match="alpha must be"):
        LoRALinear(nn.Linear(4, 4), r=2, alpha=0)
    model = _tiny_bert()
    with pytest.raises(ValueError, match="linear layers end with"):
        add_lora(model, ["q_proj"], r=2, alpha=4)
    with pytest.raises(TypeError, match="write \\['query'\\]"):
        add_lora(model, "query", r=2, alpha=4)
    with pytest.raises(TypeError, match="nn.Linear layers only"):
        add_lora(model, ["attention"], r=2, alpha=4)
    with pytest.raises(ValueError, match="no LoRA layers"):
        lora_parameters(model)
    add_lora(model, ["query"], r=2, alpha=4)
    with pytest.raises(ValueError, match="already carry LoRA"):
        add_lora(model, ["query"], r=2, alpha=4)

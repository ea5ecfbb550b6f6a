"""Attention from scratch against PyTorch's and Hugging Face's implementations."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from sftcourse.attention import (
    BertEncoderFromScratch,
    EncoderLayer,
    MultiHeadSelfAttention,
    extended_padding_mask,
    scaled_dot_product_attention,
)


def _additive(attention_mask: torch.Tensor) -> torch.Tensor:
    """The (B, 1, 1, T) additive mask a Hugging Face BertLayer takes: 0 to keep, very negative to drop."""
    return (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


def test_sdpa_matches_torch_with_and_without_mask():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 4, 8, generator=g, dtype=torch.float64) for _ in range(3))
    out, w = scaled_dot_product_attention(q, k, v)
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v), atol=1e-12)
    assert torch.allclose(w.sum(-1), torch.ones(2, 3, 4, dtype=torch.float64))
    keep = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]).bool()[:, None, None, :]
    out, w = scaled_dot_product_attention(q, k, v, keep)
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v, attn_mask=keep), atol=1e-12)
    assert torch.all(w[0, ..., 3] == 0) and torch.all(w[1, ..., 2:] == 0)


def test_sdpa_is_matrix_products_not_elementwise():
    """A hand-computed 2x2 case: weights softmax(q k^T / sqrt(d)) and output weights @ v."""
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    v = torch.tensor([[10.0, 0.0], [0.0, 10.0]])
    out, w = scaled_dot_product_attention(q, k, v)
    s = torch.tensor([[1.0, 1.0], [0.0, 1.0]]) / 2 ** 0.5
    expected_w = torch.exp(s) / torch.exp(s).sum(1, keepdim=True)
    assert torch.allclose(w, expected_w)
    assert torch.allclose(out, expected_w @ v)


def test_sdpa_errors():
    x = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="same last dimension"):
        scaled_dot_product_attention(x, torch.zeros(2, 3, 5), x)
    with pytest.raises(ValueError, match="number of positions"):
        scaled_dot_product_attention(x, x, torch.zeros(2, 2, 4))
    with pytest.raises(ValueError, match="cannot broadcast"):
        scaled_dot_product_attention(x, x, x, torch.ones(5, 5).bool())
    with pytest.raises(ValueError, match="every key"):
        scaled_dot_product_attention(x, x, x, torch.zeros(3).bool())
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        extended_padding_mask(torch.ones(3))


def test_multi_head_attention_matches_torch_multihead_attention():
    torch.manual_seed(0)
    d, h = 12, 3
    mine = MultiHeadSelfAttention(d, h).double()
    ref = torch.nn.MultiheadAttention(d, h, batch_first=True).double()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([mine.q.weight, mine.k.weight, mine.v.weight]))
        ref.in_proj_bias.copy_(torch.cat([mine.q.bias, mine.k.bias, mine.v.bias]))
        ref.out_proj.weight.copy_(mine.out.weight)
        ref.out_proj.bias.copy_(mine.out.bias)
    x = torch.randn(2, 5, d, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    out, w = mine(x, mask)
    ref_out, ref_w = ref(x, x, x, key_padding_mask=~mask.bool(), average_attn_weights=False)
    valid = mask.bool()
    assert torch.allclose(out[valid], ref_out[valid], atol=1e-10)
    assert torch.allclose(w, ref_w, atol=1e-10)
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadSelfAttention(10, 3)
    with pytest.raises(ValueError, match=r"\(B, T, 12\)"):
        mine(torch.zeros(2, 5, 7, dtype=torch.float64))


@pytest.fixture(scope="module")
def tiny_bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=24, max_position_embeddings=20)
    return BertModel(config).eval()


def test_encoder_layer_reproduces_a_bert_layer(tiny_bert):
    layer = EncoderLayer.from_config(tiny_bert.config).load_bert_layer(tiny_bert.encoder.layer[1]).eval()
    x = torch.randn(2, 6, 16)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        ref = tiny_bert.encoder.layer[1](x, _additive(mask))
        out, w = layer(x, mask)
    assert torch.allclose(out[mask.bool()], ref[mask.bool()], atol=1e-5)
    assert w.shape == (2, 4, 6, 6)


def test_load_bert_layer_checks_sizes(tiny_bert):
    with pytest.raises(ValueError, match="from_config"):
        EncoderLayer(16, 4, 32).load_bert_layer(tiny_bert.encoder.layer[0])


def test_from_scratch_encoder_reproduces_bert_model(tiny_bert):
    mine = BertEncoderFromScratch.from_bert(tiny_bert)
    ids = torch.tensor([[2, 7, 9, 11, 3], [2, 8, 3, 0, 0]])
    mask = (ids != 0).long()
    types = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]])
    with torch.no_grad():
        ref = tiny_bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        out = mine(ids, mask, types)
        # the embedding is a table lookup: row i of the weight matrix
        assert torch.equal(mine.word(ids), mine.word.weight[ids])
    assert torch.allclose(out[mask.bool()], ref[mask.bool()], atol=1e-5)


@pytest.mark.slow
def test_real_minilm_layer_and_stack_are_reproduced():
    """The claim chapter 09 makes, on the real pretrained weights."""
    from sftcourse.hub import minilm_dir
    from sftcourse.text import load_model, load_tokenizer

    tok = load_tokenizer(minilm_dir())
    bert = load_model(minilm_dir(), head="base").eval()
    batch = tok(["The soup was stellar, honestly.", "Bad."], padding=True, return_tensors="pt")
    valid = batch["attention_mask"].bool()
    with torch.no_grad():
        out = bert(**batch, output_hidden_states=True)
        layer = EncoderLayer.from_config(bert.config).load_bert_layer(bert.encoder.layer[0]).eval()
        y, _ = layer(out.hidden_states[0], batch["attention_mask"])
        full = BertEncoderFromScratch.from_bert(bert)(batch["input_ids"], batch["attention_mask"],
                                                      batch["token_type_ids"])
    assert torch.allclose(y[valid], out.hidden_states[1][valid], atol=1e-5)
    assert torch.allclose(full[valid], out.last_hidden_state[valid], atol=1e-4)

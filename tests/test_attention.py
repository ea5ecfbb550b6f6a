"""Attention from scratch against PyTorch's and Hugging Face's implementations."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from sftcourse.attention import (
    BertEncoderFromScratch,
    EncoderLayer,
    MultiHeadSelfAttention,
    TransformerClassifier,
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


# --- the from-scratch classifier ---------------------------------------------------------------


def _clf(**kw):
    torch.manual_seed(0)
    sizes = dict(max_positions=12, d_model=8, num_heads=2, d_ff=12, num_layers=2)
    return TransformerClassifier(30, 3, **{**sizes, **kw}).eval()


def test_classifier_shapes_and_the_computation_it_names():
    """logits = head(mean over real tokens of encoder(ids)): recomputed here from the parts."""
    model = _clf()
    ids = torch.tensor([[2, 7, 9, 11, 3], [2, 8, 3, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        logits = model(ids, mask)
        hidden = model.encoder(ids, mask)  # (B, T, d_model)
        by_hand = torch.stack([hidden[b, mask[b].bool()].mean(0) for b in range(2)]) @ model.head.weight.T \
            + model.head.bias
    assert logits.shape == (2, 3) and hidden.shape == (2, 5, 8)
    assert torch.allclose(logits, by_hand, atol=1e-6)
    # trained with cross-entropy: gradients reach the embeddings and the head
    model.train()
    F.cross_entropy(model(ids, mask), torch.tensor([0, 2])).backward()
    assert model.encoder.word.weight.grad[7].abs().sum() > 0 and model.head.weight.grad.abs().sum() > 0
    assert model.encoder.word.weight.grad[5].abs().sum() == 0, "an id that no text uses gets no gradient"


def test_classifier_logits_do_not_depend_on_padding():
    """A text alone, padded by 1 and by 6 extra [PAD] tokens inside a batch: the same logits to 1e-6."""
    model = _clf()
    text = torch.tensor([[2, 7, 9, 11, 3]])
    with torch.no_grad():
        alone = model(text)  # no mask: every token is real
        for extra in (1, 6):
            padded = torch.cat([text, torch.zeros(1, extra, dtype=torch.long)], dim=1)
            batch = torch.cat([padded, torch.randint(1, 30, (1, padded.shape[1]))])  # a longer neighbour
            mask = torch.cat([(padded != 0).long(), torch.ones(1, padded.shape[1], dtype=torch.long)])
            out = model(batch, mask)
            assert (out[0] - alone[0]).abs().max() < 1e-6, f"{extra} pad tokens changed the logits"
        # the oracle can fail: without the mask the pads are read as tokens and the logits move
        assert (model(padded) - alone).abs().max() > 1e-3


def test_classifier_from_bert_is_the_pretrained_encoder_plus_a_head(tiny_bert):
    model = TransformerClassifier.from_bert(tiny_bert, 4)
    assert model.training and model.encoder.training, "returned ready to train"
    model.eval()
    ids = torch.tensor([[2, 7, 9, 11, 3], [2, 8, 3, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        ref = tiny_bert(input_ids=ids, attention_mask=mask).last_hidden_state
        pooled = (ref * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        assert torch.allclose(model(ids, mask), model.head(pooled), atol=1e-5)
    assert model.head.out_features == 4 and len(model.encoder.layers) == tiny_bert.config.num_hidden_layers


def test_classifier_bad_inputs():
    model = _clf()
    ids = torch.tensor([[2, 7, 3]])
    with pytest.raises(ValueError, match=r"num_classes must be at least 2 .*got 1"):
        TransformerClassifier(30, 1)
    with pytest.raises(ValueError, match=r"d_model=8 must be divisible by num_heads=3"):
        TransformerClassifier(30, 3, d_model=8, num_heads=3)
    with pytest.raises(ValueError, match=r"attention_mask must have input_ids' shape \(1, 3\)"):
        model(ids, torch.ones(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"token_type_ids has non-zero entries.*type_vocab_size=2"):
        model(ids, None, torch.tensor([[0, 1, 1]]))
    with pytest.raises(ValueError, match=r"row 0 of attention_mask has no real tokens"):
        model(ids, torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"input_ids lie in \[2, 30\] but the embedding table has 30 rows"):
        model(torch.tensor([[2, 30]]))
    with pytest.raises(ValueError, match=r"13 positions but the model has 12"):
        model(torch.ones(1, 13, dtype=torch.long))
    with pytest.raises(TypeError, match=r"bert must be a Hugging Face BertModel"):
        TransformerClassifier.from_bert(torch.nn.Linear(2, 2), 3)


# --- bad input ---------------------------------------------------------------------------------

_Q = torch.randn(2, 3, 4)


def _enc():
    torch.manual_seed(0)
    return BertEncoderFromScratch(vocab_size=10, max_positions=5, type_vocab_size=2, d_model=8, num_heads=2,
                                  d_ff=12, num_layers=1).eval()


@pytest.mark.parametrize("call, exc, message", [
    # the silent case: an additive mask (0 keep, -inf drop) was inverted by .bool()
    (lambda: scaled_dot_product_attention(_Q, _Q, _Q, torch.tensor([0.0, 0.0, float("-inf")])), ValueError,
     r"mask must hold 1 \(attend\) and 0 \(padding\).*additive mask.*\(mask == 0\)"),
    (lambda: extended_padding_mask(torch.tensor([[0.0, -10000.0]])), ValueError, r"attention_mask must hold 1 \(attend\)"),
    (lambda: MultiHeadSelfAttention(4, 2)(torch.randn(1, 2, 4), torch.tensor([[1, 2]])), ValueError, r"attention_mask must hold 1"),
    # wrong types, dtypes and shapes
    (lambda: scaled_dot_product_attention(_Q.numpy(), _Q, _Q), TypeError, r"q must be a torch tensor, got ndarray"),
    (lambda: scaled_dot_product_attention(_Q, _Q.long(), _Q), TypeError, r"k must be a floating-point tensor, got dtype torch\.int64"),
    (lambda: scaled_dot_product_attention(_Q, _Q, _Q.double()), TypeError, r"q, k, v must share one dtype"),
    (lambda: scaled_dot_product_attention(_Q, torch.randn(3, 3, 4), torch.randn(3, 3, 4)), ValueError, r"leading \(batch, head\) dims.*do not broadcast"),
    (lambda: scaled_dot_product_attention(_Q, torch.randn(2, 0, 4), torch.randn(2, 0, 4)), ValueError, r"k has no positions"),
    (lambda: scaled_dot_product_attention(_Q, _Q, _Q, [1, 1, 1]), TypeError, r"mask must be a torch tensor, got list"),
    (lambda: extended_padding_mask([[1, 0]]), TypeError, r"attention_mask must be a torch tensor"),
    (lambda: extended_padding_mask(torch.ones(2, 3, 4)), ValueError, r"attention_mask must be \(B, T\)"),
    (lambda: MultiHeadSelfAttention(8, 0), ValueError, r"num_heads must be an int >= 1, got 0"),
    (lambda: MultiHeadSelfAttention(8.0, 2), TypeError, r"d_model must be an int >= 1, got 8\.0"),
    (lambda: MultiHeadSelfAttention(4, 2)(torch.randn(1, 2, 4), torch.ones(1, 3)), ValueError, r"attention_mask must be \(B, T\) = \(1, 2\)"),
    (lambda: MultiHeadSelfAttention(4, 2)(torch.ones(1, 2, 4, dtype=torch.long)), TypeError, r"x must be a floating-point tensor"),
    (lambda: EncoderLayer(8, 2, 0), ValueError, r"d_ff must be an int >= 1, got 0"),
    (lambda: EncoderLayer(8, 2, 16, eps=float("nan")), ValueError, r"eps must be a finite number > 0, got nan"),
    (lambda: EncoderLayer.from_config(None), TypeError, r"config must be a BertConfig.*got NoneType"),
    (lambda: EncoderLayer(8, 2, 16).load_bert_layer(torch.nn.Linear(8, 8)), TypeError, r"layer must be a Hugging Face BertLayer"),
    (lambda: BertEncoderFromScratch.from_bert(torch.nn.Linear(2, 2)), TypeError, r"bert must be a Hugging Face BertModel"),
    (lambda: BertEncoderFromScratch(0, 5, 2, 8, 2, 12, 1), ValueError, r"vocab_size must be an int >= 1, got 0"),
    (lambda: BertEncoderFromScratch(10, 5, 2, 8, 2, 12, 0), ValueError, r"num_layers must be an int >= 1, got 0"),
    (lambda: _enc()(torch.tensor([[1, 10]])), ValueError, r"input_ids lie in \[1, 10\] but the embedding table has 10 rows"),
    (lambda: _enc()(torch.tensor([[1, -1]])), ValueError, r"input_ids lie in \[-1, 1\]"),
    (lambda: _enc()(torch.tensor([[1.0, 2.0]])), TypeError, r"input_ids must be integer token ids.*\.long\(\)"),
    (lambda: _enc()(torch.tensor([1, 2])), ValueError, r"input_ids must be a non-empty \(B, T\) tensor, got shape \(2,\)"),
    (lambda: _enc()(torch.ones(1, 6, dtype=torch.long)), ValueError, r"6 positions but the model has 5 position embeddings"),
    (lambda: _enc()(torch.ones(1, 3, dtype=torch.long), None, torch.full((1, 3), 2)), ValueError, r"token_type_ids lie in \[2, 2\].*2 rows"),
    (lambda: _enc()(torch.ones(1, 3, dtype=torch.long), None, torch.zeros(1, 2, dtype=torch.long)), ValueError, r"token_type_ids must have input_ids' shape \(1, 3\)"),
    (lambda: _enc()(torch.ones(1, 3, dtype=torch.long), torch.ones(1, 4)), ValueError, r"attention_mask must be \(B, T\) = \(1, 3\)"),
])
def test_bad_inputs_are_named(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_bool_and_integer_masks_agree():
    x = torch.randn(1, 3, 4)
    m = torch.tensor([1, 1, 0])
    out_int, _ = scaled_dot_product_attention(x, x, x, m)
    out_bool, _ = scaled_dot_product_attention(x, x, x, m.bool())
    out_float, _ = scaled_dot_product_attention(x, x, x, m.float())
    assert torch.equal(out_int, out_bool) and torch.equal(out_int, out_float)

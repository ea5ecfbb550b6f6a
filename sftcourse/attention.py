"""Attention and a BERT encoder layer from scratch, in plain PyTorch, loadable with real BERT weights.

- :func:`scaled_dot_product_attention`: softmax(Q K^T / sqrt(d_k)) V with MATRIX products
  (the source articles write element-wise products, which is not attention).
- :class:`MultiHeadSelfAttention`: h heads of width d_model / h, concatenated and projected.
- :class:`EncoderLayer`: BERT's post-LayerNorm block (attention -> add & norm ->
  GELU feed-forward -> add & norm); :meth:`EncoderLayer.load_bert_layer` copies the
  weights of a Hugging Face ``BertLayer`` so the two can be compared number for number.
- :class:`BertEncoderFromScratch`: BERT's embeddings (word + position + segment, LayerNorm)
  and a stack of :class:`EncoderLayer`, built from a ``BertModel``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None
                                 ) -> tuple[Tensor, Tensor]:
    """Attention output and weights for queries (..., Tq, d_k), keys (..., Tk, d_k), values (..., Tk, d_v).

    ``mask`` (broadcastable to (..., Tq, Tk)) is True/1 where a query may attend to a key and
    False/0 where it may not (padding). Returns (output (..., Tq, d_v), weights (..., Tq, Tk));
    each row of weights is a probability distribution over the allowed keys.
    """
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"q, k, v need at least 2 dims (..., T, d); got {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same last dimension d_k, got {q.shape[-1]} and {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same number of positions Tk, got {k.shape[-2]} and {v.shape[-2]}")
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., Tq, Tk)
    if mask is not None:
        mask = mask.bool()
        try:
            allowed = torch.broadcast_to(mask, scores.shape)
        except RuntimeError:
            raise ValueError(f"mask of shape {tuple(mask.shape)} cannot broadcast to the scores' shape "
                             f"{tuple(scores.shape)} (..., Tq, Tk); for padding use mask[:, None, None, :]"
                             ) from None
        if not bool(allowed.any(dim=-1).all()):
            raise ValueError("mask hides every key from some query; each query needs at least one allowed key")
        # the most negative finite number: exp() of it is exactly 0, and no inf - inf = NaN
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def extended_padding_mask(attention_mask: Tensor) -> Tensor:
    """A (B, T) 1/0 padding mask as a boolean (B, 1, 1, T) mask: every query, every head, keys allowed."""
    if attention_mask.ndim != 2:
        raise ValueError(f"attention_mask must be (B, T), got shape {tuple(attention_mask.shape)}")
    return attention_mask.bool()[:, None, None, :]


class MultiHeadSelfAttention(nn.Module):
    """Self-attention with ``num_heads`` heads of size d_model / num_heads, then an output projection."""

    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        self.d_model, self.num_heads, self.d_head = d_model, num_heads, d_model // num_heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, T, d_model) -> (B, h, T, d_head)."""
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.d_head).transpose(1, 2)

    def forward(self, x: Tensor, attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x (B, T, d_model), attention_mask (B, T) of 1/0 -> (output (B, T, d_model), weights (B, h, T, T))."""
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must be (B, T, {self.d_model}), got {tuple(x.shape)}")
        q, k, v = self.split_heads(self.q(x)), self.split_heads(self.k(x)), self.split_heads(self.v(x))
        mask = None if attention_mask is None else extended_padding_mask(attention_mask)
        ctx, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, h, T, d_head)
        B, _, T, _ = ctx.shape
        ctx = ctx.transpose(1, 2).reshape(B, T, self.d_model)  # concatenate the heads
        return self.out(ctx), weights


class EncoderLayer(nn.Module):
    """BERT's encoder block (post-LayerNorm):

    a = LayerNorm(x + Attention(x)); y = LayerNorm(a + W2 GELU(W1 a)).
    Dropout is left out: it is the identity in eval mode, where outputs are compared.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, eps: float = 1e-12) -> None:
        super().__init__()
        self.attn = MultiHeadSelfAttention(d_model, num_heads)
        self.norm1 = nn.LayerNorm(d_model, eps=eps)
        self.ff1 = nn.Linear(d_model, d_ff)
        self.ff2 = nn.Linear(d_ff, d_model)
        self.norm2 = nn.LayerNorm(d_model, eps=eps)

    def forward(self, x: Tensor, attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x (B, T, d_model) -> (output (B, T, d_model), attention weights (B, h, T, T))."""
        attn_out, weights = self.attn(x, attention_mask)
        a = self.norm1(x + attn_out)
        y = self.norm2(a + self.ff2(F.gelu(self.ff1(a))))  # exact (erf) GELU, as BERT's "gelu"
        return y, weights

    @classmethod
    def from_config(cls, config: Any) -> EncoderLayer:
        """An untrained layer with a ``BertConfig``'s sizes."""
        if getattr(config, "hidden_act", "gelu") != "gelu":
            raise ValueError(f"this layer implements the exact GELU; the config uses {config.hidden_act!r}")
        return cls(config.hidden_size, config.num_attention_heads, config.intermediate_size, config.layer_norm_eps)

    @torch.no_grad()
    def load_bert_layer(self, layer: nn.Module) -> EncoderLayer:
        """Copy the weights of a Hugging Face ``BertLayer`` into this layer (sizes must match); return self."""
        pairs = [
            (self.attn.q, layer.attention.self.query), (self.attn.k, layer.attention.self.key),
            (self.attn.v, layer.attention.self.value), (self.attn.out, layer.attention.output.dense),
            (self.norm1, layer.attention.output.LayerNorm),
            (self.ff1, layer.intermediate.dense), (self.ff2, layer.output.dense),
            (self.norm2, layer.output.LayerNorm),
        ]
        for mine, theirs in pairs:
            for name in ("weight", "bias"):
                src, dst = getattr(theirs, name), getattr(mine, name)
                if src.shape != dst.shape:
                    raise ValueError(f"{name} of {type(theirs).__name__} has shape {tuple(src.shape)} but this "
                                     f"layer expects {tuple(dst.shape)}; build it with EncoderLayer.from_config")
                dst.copy_(src)
        return self


class BertEncoderFromScratch(nn.Module):
    """BERT's embeddings and encoder stack written out: token + position + segment embeddings,
    LayerNorm, then the :class:`EncoderLayer` stack. Returns the last hidden state (B, T, H)."""

    def __init__(self, vocab_size: int, max_positions: int, type_vocab_size: int, d_model: int,
                 num_heads: int, d_ff: int, num_layers: int, eps: float = 1e-12) -> None:
        super().__init__()
        self.word = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(max_positions, d_model)
        self.segment = nn.Embedding(type_vocab_size, d_model)
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.layers = nn.ModuleList([EncoderLayer(d_model, num_heads, d_ff, eps) for _ in range(num_layers)])

    def embed(self, input_ids: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        """(B, T) ids -> (B, T, H): a table lookup for each of the three embeddings, summed, normalised."""
        B, T = input_ids.shape
        positions = torch.arange(T, device=input_ids.device).expand(B, T)
        segments = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        return self.norm(self.word(input_ids) + self.position(positions) + self.segment(segments))

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None) -> Tensor:
        h = self.embed(input_ids, token_type_ids)
        for layer in self.layers:
            h, _ = layer(h, attention_mask)
        return h

    @classmethod
    @torch.no_grad()
    def from_bert(cls, bert: nn.Module) -> BertEncoderFromScratch:
        """Build one with the sizes and the weights of a Hugging Face ``BertModel``."""
        c = bert.config
        model = cls(c.vocab_size, c.max_position_embeddings, c.type_vocab_size, c.hidden_size,
                    c.num_attention_heads, c.intermediate_size, c.num_hidden_layers, c.layer_norm_eps)
        e = bert.embeddings
        model.word.weight.copy_(e.word_embeddings.weight)
        model.position.weight.copy_(e.position_embeddings.weight)
        model.segment.weight.copy_(e.token_type_embeddings.weight)
        model.norm.load_state_dict(e.LayerNorm.state_dict())
        for mine, theirs in zip(model.layers, bert.encoder.layer):
            mine.load_bert_layer(theirs)
        return model.eval()


__all__ = ["scaled_dot_product_attention", "extended_padding_mask", "MultiHeadSelfAttention", "EncoderLayer",
           "BertEncoderFromScratch"]

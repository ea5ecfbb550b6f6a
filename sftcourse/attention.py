"""Attention and a BERT encoder layer from scratch, in plain PyTorch, loadable with real BERT weights.

- :func:`scaled_dot_product_attention`: softmax(Q K^T / sqrt(d_k)) V with MATRIX products
  (the source articles write element-wise products, which is not attention).
- :class:`MultiHeadSelfAttention`: h heads of width d_model / h, concatenated and projected.
- :class:`EncoderLayer`: BERT's post-LayerNorm block (attention -> add & norm ->
  GELU feed-forward -> add & norm); :meth:`EncoderLayer.load_bert_layer` copies the
  weights of a Hugging Face ``BertLayer`` so the two can be compared number for number.
- :class:`BertEncoderFromScratch`: BERT's embeddings (word + position + segment, LayerNorm)
  and a stack of :class:`EncoderLayer`, built from a ``BertModel``.
- :class:`TransformerClassifier`: that encoder from random weights, the masked mean of its token
  vectors, and a linear layer: a text classifier trained from scratch (chapter 9, the model that
  source article 003 meant to build).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sftcourse.checks import check_finite_float, check_positive_int
from sftcourse.text import mean_pool


def _check_tensor(value: object, name: str, *, floating: bool = False) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch tensor, got {type(value).__name__}; convert with torch.as_tensor")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}; use {name}.float()")
    return value


def _check_mask_values(mask: Tensor, name: str) -> None:
    """A keep/drop mask must hold only 0 and 1 (or be bool).

    An additive mask (0 = keep, -10000 or -inf = drop, as Hugging Face layers take) would be
    silently inverted by ``.bool()``. Checked where it is free: on the CPU (on an accelerator
    the check would cost a device sync per call; pass a bool mask there).
    """
    if mask.dtype == torch.bool or mask.device.type != "cpu":
        return
    if mask.is_complex() or not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{name} must hold 1 (attend) and 0 (padding) or be bool; got other values "
                         f"(e.g. {mask.flatten()[((mask != 0) & (mask != 1)).flatten()][:3].tolist()}). "
                         "An additive mask (0 keep, -inf drop) is the opposite convention: pass (mask == 0)")


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None
                                 ) -> tuple[Tensor, Tensor]:
    """Attention output and weights for queries (..., Tq, d_k), keys (..., Tk, d_k), values (..., Tk, d_v).

    ``mask`` (broadcastable to (..., Tq, Tk)) is True/1 where a query may attend to a key and
    False/0 where it may not (padding). Returns (output (..., Tq, d_v), weights (..., Tq, Tk));
    each row of weights is a probability distribution over the allowed keys.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        _check_tensor(t, name, floating=True)
    if not q.dtype == k.dtype == v.dtype:
        raise TypeError(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}; convert with .to(q.dtype)")
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"q, k, v need at least 2 dims (..., T, d); got {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same last dimension d_k, got {q.shape[-1]} and {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same number of positions Tk, got {k.shape[-2]} and {v.shape[-2]}")
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(f"the leading (batch, head) dims of q {tuple(q.shape)}, k {tuple(k.shape)} and "
                         f"v {tuple(v.shape)} do not broadcast; they must match (..., T, d)") from None
    if k.shape[-2] == 0:
        raise ValueError(f"k has no positions (shape {tuple(k.shape)}): there is nothing to attend to")
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., Tq, Tk)
    if mask is not None:
        _check_tensor(mask, "mask")
        _check_mask_values(mask, "mask")
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
    _check_tensor(attention_mask, "attention_mask")
    _check_mask_values(attention_mask, "attention_mask")
    if attention_mask.ndim != 2:
        raise ValueError(f"attention_mask must be (B, T), got shape {tuple(attention_mask.shape)}")
    return attention_mask.bool()[:, None, None, :]


class MultiHeadSelfAttention(nn.Module):
    """Self-attention with ``num_heads`` heads of size d_model / num_heads, then an output projection."""

    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        check_positive_int(d_model, "d_model")
        check_positive_int(num_heads, "num_heads")
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
        _check_tensor(x, "x", floating=True)
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must be (B, T, {self.d_model}), got {tuple(x.shape)}")
        if attention_mask is not None:
            _check_tensor(attention_mask, "attention_mask")
            if tuple(attention_mask.shape) != tuple(x.shape[:2]):
                raise ValueError(f"attention_mask must be (B, T) = {tuple(x.shape[:2])} to match x, "
                                 f"got {tuple(attention_mask.shape)}")
        q, k, v = self.split_heads(self.q(x)), self.split_heads(self.k(x)), self.split_heads(self.v(x))
        mask = None if attention_mask is None else extended_padding_mask(attention_mask)
        ctx, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, h, T, d_head)
        B, _, T, _ = ctx.shape
        ctx = ctx.transpose(1, 2).reshape(B, T, self.d_model)  # concatenate the heads
        return self.out(ctx), weights


_CONFIG_FIELDS = ("hidden_size", "num_attention_heads", "intermediate_size", "layer_norm_eps")


def _check_config(config: object) -> None:
    missing = [f for f in _CONFIG_FIELDS if not hasattr(config, f)]
    if missing:
        raise TypeError(f"config must be a BertConfig (or have {_CONFIG_FIELDS}), got {type(config).__name__} "
                        f"lacking {missing}; pass model.config of a BertModel")


def _check_bert_layer(layer: object) -> None:
    for path in ("attention.self.query", "attention.output.dense", "intermediate.dense", "output.dense"):
        obj = layer
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if not isinstance(obj, nn.Linear):
            raise TypeError(f"layer must be a Hugging Face BertLayer (e.g. bert.encoder.layer[0]), got "
                            f"{type(layer).__name__} without {path}")


class EncoderLayer(nn.Module):
    """BERT's encoder block (post-LayerNorm):

    a = LayerNorm(x + Attention(x)); y = LayerNorm(a + W2 GELU(W1 a)).
    Dropout is left out: it is the identity in eval mode, where outputs are compared.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, eps: float = 1e-12) -> None:
        super().__init__()
        check_positive_int(d_ff, "d_ff")
        check_finite_float(eps, "eps", low=0.0, low_open=True, hint="BERT uses 1e-12")
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
        _check_config(config)
        if getattr(config, "hidden_act", "gelu") != "gelu":
            raise ValueError(f"this layer implements the exact GELU; the config uses {config.hidden_act!r}")
        return cls(config.hidden_size, config.num_attention_heads, config.intermediate_size, config.layer_norm_eps)

    @torch.no_grad()
    def load_bert_layer(self, layer: nn.Module) -> EncoderLayer:
        """Copy the weights of a Hugging Face ``BertLayer`` into this layer (sizes must match); return self."""
        _check_bert_layer(layer)
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
        for name, value in (("vocab_size", vocab_size), ("max_positions", max_positions),
                            ("type_vocab_size", type_vocab_size), ("num_layers", num_layers)):
            check_positive_int(value, name)
        self.word = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(max_positions, d_model)
        self.segment = nn.Embedding(type_vocab_size, d_model)
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.layers = nn.ModuleList([EncoderLayer(d_model, num_heads, d_ff, eps) for _ in range(num_layers)])

    def embed(self, input_ids: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        """(B, T) ids -> (B, T, H): a table lookup for each of the three embeddings, summed, normalised."""
        self._check_ids(input_ids, "input_ids", self.word.num_embeddings)
        if token_type_ids is not None:
            self._check_ids(token_type_ids, "token_type_ids", self.segment.num_embeddings)
            if token_type_ids.shape != input_ids.shape:
                raise ValueError(f"token_type_ids must have input_ids' shape {tuple(input_ids.shape)}, "
                                 f"got {tuple(token_type_ids.shape)}")
        B, T = input_ids.shape
        if T > self.position.num_embeddings:
            raise ValueError(f"input_ids has {T} positions but the model has {self.position.num_embeddings} "
                             f"position embeddings; truncate to max_length={self.position.num_embeddings}")
        positions = torch.arange(T, device=input_ids.device).expand(B, T)
        segments = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        return self.norm(self.word(input_ids) + self.position(positions) + self.segment(segments))

    @staticmethod
    def _check_ids(ids: object, name: str, size: int) -> None:
        _check_tensor(ids, name)
        if ids.is_floating_point() or ids.dtype == torch.bool:  # type: ignore[union-attr]
            raise TypeError(f"{name} must be integer token ids (torch.long), got {ids.dtype}; use {name}.long()"
                            )  # type: ignore[union-attr]
        if ids.ndim != 2 or ids.numel() == 0:  # type: ignore[union-attr]
            raise ValueError(f"{name} must be a non-empty (B, T) tensor, got shape {tuple(ids.shape)}")  # type: ignore
        if ids.device.type == "cpu":  # free on the CPU; on an accelerator it would cost a sync per call
            lo, hi = int(ids.min()), int(ids.max())  # type: ignore[union-attr]
            if lo < 0 or hi >= size:
                raise ValueError(f"{name} lie in [{lo}, {hi}] but the embedding table has {size} rows; "
                                 "was the text tokenised with another model's tokenizer?")

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None) -> Tensor:
        """input_ids (B, T), attention_mask (B, T) of 1/0, token_type_ids (B, T) -> hidden states (B, T, H)."""
        h = self.embed(input_ids, token_type_ids)
        for layer in self.layers:
            h, _ = layer(h, attention_mask)
        return h

    @classmethod
    @torch.no_grad()
    def from_bert(cls, bert: nn.Module) -> BertEncoderFromScratch:
        """Build one with the sizes and the weights of a Hugging Face ``BertModel``."""
        if not (hasattr(bert, "config") and hasattr(bert, "embeddings") and hasattr(bert, "encoder")):
            raise TypeError(f"bert must be a Hugging Face BertModel (with .config, .embeddings, .encoder), got "
                            f"{type(bert).__name__}; for a BertForSequenceClassification pass model.bert")
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


class TransformerClassifier(nn.Module):
    """A Transformer text classifier from random weights (Vaswani et al. 2017's encoder, BERT's layout).

    input_ids (B, T) -> token embedding + learned position embedding, LayerNorm (B, T, d_model)
    -> ``num_layers`` :class:`EncoderLayer` -> mean of the real tokens' vectors (B, d_model)
    -> linear -> logits (B, num_classes). The softmax over classes is left to the cross-entropy.

    The encoder is :class:`BertEncoderFromScratch` with a single segment (its one segment row is a
    learned vector added to every token). Padding changes nothing: padded keys get zero attention
    and padded positions are left out of the mean, so the logits of a text do not depend on how far
    its batch was padded. No dropout (training runs are short; add it for long ones).
    """

    def __init__(self, vocab_size: int, num_classes: int, *, max_positions: int = 512, d_model: int = 128,
                 num_heads: int = 4, d_ff: int = 256, num_layers: int = 2, type_vocab_size: int = 1,
                 eps: float = 1e-12) -> None:
        super().__init__()
        check_positive_int(num_classes, "num_classes")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2 (a classifier chooses between classes), got {num_classes}")
        self.encoder = BertEncoderFromScratch(vocab_size, max_positions, type_vocab_size, d_model, num_heads, d_ff,
                                              num_layers, eps)
        self.head = nn.Linear(d_model, num_classes)

    @classmethod
    def from_bert(cls, bert: nn.Module, num_classes: int) -> TransformerClassifier:
        """The same classifier with a pretrained ``BertModel``'s sizes and encoder weights and a new random head.

        The encoder is :meth:`BertEncoderFromScratch.from_bert` (in training mode); only ``head`` is new.
        """
        encoder = BertEncoderFromScratch.from_bert(bert)  # checks that bert is a BertModel
        c = bert.config
        model = cls(c.vocab_size, num_classes, max_positions=c.max_position_embeddings, d_model=c.hidden_size,
                    num_heads=c.num_attention_heads, d_ff=c.intermediate_size, num_layers=1,  # replaced below
                    type_vocab_size=c.type_vocab_size, eps=c.layer_norm_eps)
        model.encoder = encoder.train()
        return model

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None) -> Tensor:
        """input_ids (B, T), attention_mask (B, T) of 1/0 (None: no padding) -> logits (B, num_classes).

        ``token_type_ids`` (B, T) is accepted so that a tokenizer's batch can be passed as
        ``model(**batch)``; with one segment (the default) it must be all 0 (one text per example).
        """
        BertEncoderFromScratch._check_ids(input_ids, "input_ids", self.encoder.word.num_embeddings)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        else:
            _check_tensor(attention_mask, "attention_mask")
            if attention_mask.shape != input_ids.shape:
                raise ValueError(f"attention_mask must have input_ids' shape {tuple(input_ids.shape)}, got "
                                 f"{tuple(attention_mask.shape)}")
            _check_mask_values(attention_mask, "attention_mask")
            if attention_mask.device.type == "cpu":  # free here; on an accelerator it would cost a sync per call
                empty = (attention_mask.sum(dim=1) == 0).nonzero().flatten().tolist()
                if empty:
                    raise ValueError(f"row {empty[0]} of attention_mask has no real tokens (all 0); every text needs "
                                     "at least one token ([CLS] at least)")
        if token_type_ids is not None and self.encoder.segment.num_embeddings == 1:
            _check_tensor(token_type_ids, "token_type_ids")
            if token_type_ids.device.type == "cpu" and bool(token_type_ids.ne(0).any()):
                raise ValueError("token_type_ids has non-zero entries (a sentence pair?) but this classifier has one "
                                 "segment: tokenise single texts, or build it with type_vocab_size=2")
        hidden = self.encoder(input_ids, attention_mask, token_type_ids)  # (B, T, d_model)
        return self.head(mean_pool(hidden, attention_mask))  # (B, num_classes)


__all__ = ["scaled_dot_product_attention", "extended_padding_mask", "MultiHeadSelfAttention", "EncoderLayer",
           "BertEncoderFromScratch", "TransformerClassifier"]

"""BERT-family encoder (absolute positions, token types, post-LN), e.g. all-MiniLM-L6-v2.

Shares the layer blocks with DeBERTa (`Layer`, `Embeddings`); only the self-attention differs.
Names follow transformers' BertModel (`encoder.layer.{i}.attention.self.query`, `pooler.dense`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gliner_jax.config import EncoderConfig
from gliner_jax.encoders.deberta import Embeddings, Layer
from gliner_jax.layers import Precision, dense, normal


class BertSelfAttention(nnx.Module):
    def __init__(self, cfg: EncoderConfig, prec: Precision, *, rngs: nnx.Rngs):
        he, init = cfg.hidden_size, normal(cfg.initializer_range)
        self.cfg = cfg
        self.query = dense(he, he, ("embed", "heads"), prec, rngs, init=init)
        self.key = dense(he, he, ("embed", "heads"), prec, rngs, init=init)
        self.value = dense(he, he, ("embed", "heads"), prec, rngs, init=init)
        self.dropout = nnx.Dropout(cfg.attention_probs_dropout_prob, rngs=rngs)

    def __call__(self, x, pair_mask, rel_embeddings=None, rel_idx=None):
        n, h = self.cfg.num_attention_heads, self.cfg.head_dim
        split = lambda t: t.reshape(t.shape[:-1] + (n, h))  # noqa: E731
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = jnp.einsum("BTNH,BSNH->BNTS", q, k) * (h ** -0.5)
        soft_dtype = jnp.promote_types(scores.dtype, jnp.float32)
        # transformers masks keys only (additive finfo.min); padded query rows are never read
        key_mask = pair_mask[:, None]
        scores = jnp.where(key_mask, scores.astype(soft_dtype), jnp.finfo(soft_dtype).min)
        probs = self.dropout(jax.nn.softmax(scores, axis=-1)).astype(v.dtype)
        ctx = jnp.einsum("BNTS,BSNH->BTNH", probs, v)
        return ctx.reshape(ctx.shape[:2] + (n * h,))


class Pooler(nnx.Module):
    """Kept so checkpoints round-trip; GLiNER reads the last hidden states, never the pooler."""

    def __init__(self, cfg: EncoderConfig, prec: Precision, *, rngs: nnx.Rngs):
        self.dense = dense(cfg.hidden_size, cfg.hidden_size, ("embed", "embed"), prec, rngs,
                           init=normal(cfg.initializer_range))


class BertEncoder(nnx.Module):
    def __init__(self, cfg: EncoderConfig, prec: Precision, *, rngs: nnx.Rngs):
        self.layer = nnx.List([
            Layer(BertSelfAttention(cfg, prec, rngs=rngs), cfg, prec, rngs=rngs)
            for _ in range(cfg.num_hidden_layers)])

    def __call__(self, x, attention_mask):
        m = attention_mask.astype(bool)
        pair = jnp.broadcast_to(m[:, None, :], m.shape + m.shape[-1:])
        for layer in self.layer:
            x = layer(x, pair)
        return x


class BertModel(nnx.Module):
    """`BertModel(input_ids, attention_mask) -> last hidden states [B, T, He]`."""

    def __init__(self, cfg: EncoderConfig, prec: Precision = Precision(), *, rngs: nnx.Rngs,
                 add_pooling_layer: bool = True):
        self.config = cfg
        self.embeddings = Embeddings(cfg, prec, rngs=rngs)
        self.encoder = BertEncoder(cfg, prec, rngs=rngs)
        if add_pooling_layer:
            self.pooler = Pooler(cfg, prec, rngs=rngs)

    def __call__(self, input_ids, attention_mask, token_type_ids=None):
        x = self.embeddings(input_ids, attention_mask, token_type_ids)
        return self.encoder(x, attention_mask)

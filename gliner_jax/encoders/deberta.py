"""DeBERTa-v2/v3 encoder in Flax NNX, numerically equal to transformers' DebertaV2Model.

Module and attribute names follow transformers (`embeddings.word_embeddings`,
`encoder.layer.{i}.attention.self.query_proj`, ...), so the weight table is an identity up to
transposes. The maths and its traps are listed in GLINER_SPEC.md §4.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gliner_jax.config import EncoderConfig
from gliner_jax.layers import Precision, activation, dense, embed, layer_norm, normal


def log_bucket_position(rel: np.ndarray, bucket_size: int, max_position: int) -> np.ndarray:
    """transformers' make_log_bucket_position, in float32 exactly as torch computes it."""
    rel = rel.astype(np.int64)
    sign = np.sign(rel)
    mid = bucket_size // 2
    abs_pos = np.where((rel < mid) & (rel > -mid), mid - 1, np.abs(rel))
    log_pos = np.ceil(
        np.log(abs_pos.astype(np.float32) / np.float32(mid))
        / np.log(np.float32((max_position - 1) / mid)) * np.float32(mid - 1)
    ) + np.float32(mid)
    return np.where(abs_pos <= mid, rel.astype(np.float32), log_pos * sign).astype(np.int64)


@functools.lru_cache(maxsize=64)
def relative_index(length: int, position_buckets: int, max_relative: int, att_span: int):
    """Rows of the relative-embedding table each (query i, key j) pair reads: [T, T] int32.

    Returns (index - lo, lo, hi): only rows lo..hi are reachable for this length, so only those
    rows are used (a 512-row product per layer is mostly wasted on short inputs).
    """
    pos = np.arange(length)
    rel = pos[:, None] - pos[None, :]
    if position_buckets > 0 and max_relative > 0:
        rel = log_bucket_position(rel, position_buckets, max_relative)
    idx = np.clip(rel + att_span, 0, 2 * att_span - 1)
    lo, hi = int(idx.min()), int(idx.max())
    return (idx - lo).astype(np.int32), lo, hi


def attention_scale(head_dim: int, scale_factor: int) -> np.float32:
    # DeBERTa: scale = sqrt(head_dim * (1 + #{c2p, p2c})), computed in float32 even in a
    # float64 model (torch.tensor(..., dtype=torch.float)), then cast.
    return np.sqrt(np.float32(head_dim) * np.float32(scale_factor))


class DisentangledSelfAttention(nnx.Module):
    def __init__(self, cfg: EncoderConfig, prec: Precision, *, rngs: nnx.Rngs):
        he, init = cfg.hidden_size, normal(cfg.initializer_range)
        self.cfg, self.prec = cfg, prec
        self.query_proj = dense(he, he, ("embed", "heads"), prec, rngs, init=init)
        self.key_proj = dense(he, he, ("embed", "heads"), prec, rngs, init=init)
        self.value_proj = dense(he, he, ("embed", "heads"), prec, rngs, init=init)
        self.c2p = "c2p" in cfg.pos_att_type
        self.p2c = "p2c" in cfg.pos_att_type
        if cfg.relative_attention and not cfg.share_att_key:
            if self.c2p:
                self.pos_key_proj = dense(he, he, ("embed", "heads"), prec, rngs, init=init)
            if self.p2c:
                self.pos_query_proj = dense(he, he, ("embed", "heads"), prec, rngs, init=init)
        self.pos_dropout = nnx.Dropout(cfg.hidden_dropout_prob, rngs=rngs)
        self.dropout = nnx.Dropout(cfg.attention_probs_dropout_prob, rngs=rngs)

    def relative_projections(self, rel):
        """Relative-position rows [R, He] -> (position keys for c2p, position queries for
        p2c), each [R, He] or None. Input-independent: inference can compute them once
        (`Encoder.relative_tables`)."""
        cfg = self.cfg
        rel = self.pos_dropout(rel)
        pk = pq = None
        if self.c2p:
            pk = (self.key_proj if cfg.share_att_key else self.pos_key_proj)(rel)
        if self.p2c:
            pq = (self.query_proj if cfg.share_att_key else self.pos_query_proj)(rel)
        return pk, pq

    def __call__(self, x, pair_mask, pos_key=None, pos_query=None, rel_idx=None):
        """x [B,T,He]; pair_mask [B,T,T] bool; pos_key / pos_query [R, He]: the projected
        relative rows this length reaches (None without that term); rel_idx [T,T]: the row
        that (query i, key j) reads."""
        cfg = self.cfg
        n, h = cfg.num_attention_heads, cfg.head_dim
        split = lambda t: t.reshape(t.shape[:-1] + (n, h))  # noqa: E731
        q, k, v = split(self.query_proj(x)), split(self.key_proj(x)), split(self.value_proj(x))
        scale = attention_scale(h, 1 + self.c2p + self.p2c).astype(q.dtype)
        scores = jnp.einsum("BTNH,BSNH->BNTS", q, k / scale)
        # One product against the R reachable rows and a [T, T] gather (measured faster on CPU
        # than a product against all 2T-1 offsets plus a Transformer-XL shift, and much faster
        # for long inputs, where the log buckets make R far smaller than 2T-1).
        rows = jnp.arange(x.shape[1])[:, None]
        if pos_key is not None:
            c2p = jnp.einsum("BTNH,RNH->BNTR", q, split(pos_key))
            scores = scores + c2p[:, :, rows, rel_idx] / scale          # q_i . pk[idx(i,j)]
        if pos_query is not None:
            p2c = jnp.einsum("BSNH,RNH->BNSR", k, split(pos_query))
            # k_j . pq[idx(i,j)]: torch gathers at -r and transposes; the bucket is odd.
            scores = scores + p2c[:, :, rows.T, rel_idx] / scale
        soft_dtype = jnp.promote_types(scores.dtype, jnp.float32)
        scores = jnp.where(pair_mask[:, None], scores.astype(soft_dtype),
                           jnp.finfo(soft_dtype).min)
        probs = self.dropout(jax.nn.softmax(scores, axis=-1)).astype(v.dtype)
        ctx = jnp.einsum("BNTS,BSNH->BTNH", probs, v)
        return ctx.reshape(ctx.shape[:2] + (n * h,))


class SelfOutput(nnx.Module):
    """dense -> dropout -> LayerNorm(+ residual): DeBERTa's and BERT's *Output blocks."""

    def __init__(self, d_in: int, d_out: int, axes, eps: float, p: float, init,
                 prec: Precision, *, rngs: nnx.Rngs):
        self.dense = dense(d_in, d_out, axes, prec, rngs, init=init)
        self.LayerNorm = layer_norm(d_out, eps, prec, rngs)
        self.dropout = nnx.Dropout(p, rngs=rngs)

    def __call__(self, x, residual):
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class Attention(nnx.Module):
    def __init__(self, self_attention: nnx.Module, cfg: EncoderConfig, prec: Precision, *,
                 rngs: nnx.Rngs):
        self.self = self_attention
        self.output = SelfOutput(cfg.hidden_size, cfg.hidden_size, ("heads", "embed"),
                                 cfg.layer_norm_eps, cfg.hidden_dropout_prob,
                                 normal(cfg.initializer_range), prec, rngs=rngs)

    def __call__(self, x, *args):
        return self.output(self.self(x, *args), x)


class Intermediate(nnx.Module):
    def __init__(self, cfg: EncoderConfig, prec: Precision, *, rngs: nnx.Rngs):
        self.dense = dense(cfg.hidden_size, cfg.intermediate_size, ("embed", "mlp"), prec, rngs,
                           init=normal(cfg.initializer_range))
        self.act = activation(cfg.hidden_act)

    def __call__(self, x):
        return self.act(self.dense(x))


class Layer(nnx.Module):
    """attention -> intermediate -> output, post-LN (DeBERTa and BERT alike)."""

    def __init__(self, self_attention: nnx.Module, cfg: EncoderConfig, prec: Precision, *,
                 rngs: nnx.Rngs):
        self.attention = Attention(self_attention, cfg, prec, rngs=rngs)
        self.intermediate = Intermediate(cfg, prec, rngs=rngs)
        self.output = SelfOutput(cfg.intermediate_size, cfg.hidden_size, ("mlp", "embed"),
                                 cfg.layer_norm_eps, cfg.hidden_dropout_prob,
                                 normal(cfg.initializer_range), prec, rngs=rngs)

    def __call__(self, x, *args):
        h = self.attention(x, *args)
        return self.output(self.intermediate(h), h)


class Embeddings(nnx.Module):
    def __init__(self, cfg: EncoderConfig, prec: Precision, *, rngs: nnx.Rngs):
        e = cfg.embedding_size or cfg.hidden_size
        std = cfg.initializer_range
        self.cfg = cfg
        self.word_embeddings = embed(cfg.vocab_size, e, ("vocab", "embed"), prec, rngs, std)
        if cfg.position_biased_input:
            self.position_embeddings = embed(cfg.max_position_embeddings, e, (None, "embed"),
                                             prec, rngs, std)
        if cfg.type_vocab_size > 0:
            self.token_type_embeddings = embed(cfg.type_vocab_size, e, (None, "embed"), prec,
                                               rngs, std)
        if cfg.embedding_size:
            self.embed_proj = dense(e, cfg.hidden_size, ("embed", "embed"), prec, rngs,
                                    init=normal(std), use_bias=False)
        self.LayerNorm = layer_norm(cfg.hidden_size, cfg.layer_norm_eps, prec, rngs)
        self.dropout = nnx.Dropout(cfg.hidden_dropout_prob, rngs=rngs)

    def __call__(self, input_ids, attention_mask, token_type_ids=None):
        cfg = self.cfg
        x = self.word_embeddings(input_ids)
        if cfg.position_biased_input:
            t = input_ids.shape[1]
            if t > cfg.max_position_embeddings:
                raise ValueError(
                    f"sequence of {t} tokens is longer than max_position_embeddings "
                    f"{cfg.max_position_embeddings} of this encoder")
            x = x + self.position_embeddings(jnp.arange(t))[None]
        if cfg.type_vocab_size > 0:
            tt = jnp.zeros_like(input_ids) if token_type_ids is None else token_type_ids
            x = x + self.token_type_embeddings(tt)
        if cfg.embedding_size:
            x = self.embed_proj(x)
        x = self.LayerNorm(x)
        if cfg.family == "deberta":  # DeBERTa zeroes padded positions; BERT does not
            x = x * attention_mask[..., None].astype(x.dtype)
        return self.dropout(x)


class Encoder(nnx.Module):
    def __init__(self, cfg: EncoderConfig, prec: Precision, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.layer = nnx.List([
            Layer(DisentangledSelfAttention(cfg, prec, rngs=rngs), cfg, prec, rngs=rngs)
            for _ in range(cfg.num_hidden_layers)])
        if cfg.relative_attention:
            self.rel_embeddings = embed(2 * cfg.att_span, cfg.hidden_size, (None, "embed"), prec,
                                        rngs, cfg.initializer_range)
        if "layer_norm" in cfg.norm_rel_ebd:  # transformers builds it even without rel. attention
            self.LayerNorm = layer_norm(cfg.hidden_size, cfg.layer_norm_eps, prec, rngs)

    def _rel_rows(self, lo: int = 0, hi: int | None = None):
        """LayerNorm'ed relative embeddings, rows lo..hi (default: all 2*att_span)."""
        cfg = self.cfg
        rel = self.rel_embeddings.embedding[lo: None if hi is None else hi + 1]
        if "layer_norm" in cfg.norm_rel_ebd:  # row-wise, so slicing first is exact
            return self.LayerNorm(rel)
        if self.rel_embeddings.dtype is not None:
            rel = rel.astype(self.rel_embeddings.dtype)
        return rel

    def relative_tables(self):
        """Per layer, (position keys, position queries) [2*att_span, He] for every relative
        row: they depend on the weights only, so inference computes them once and passes them
        to every call (transformers projects all of them in every forward)."""
        if not self.cfg.relative_attention:
            return None
        rel = self._rel_rows()
        return [layer.attention.self.relative_projections(rel) for layer in self.layer]

    def __call__(self, x, attention_mask, rel_tables=None):
        """rel_tables: `relative_tables()` of these weights, or None to project the rows this
        length reaches (training: dropout and gradients go through them)."""
        cfg = self.cfg
        m = attention_mask.astype(bool)
        pair = m[:, :, None] & m[:, None, :]
        pos, idx = [(None, None)] * len(self.layer), None
        if cfg.relative_attention:
            idx, lo, hi = relative_index(x.shape[1], cfg.position_buckets, cfg.max_relative,
                                         cfg.att_span)
            idx = jnp.asarray(idx)
            if rel_tables is None:
                rel = self._rel_rows(lo, hi)
                pos = [layer.attention.self.relative_projections(rel) for layer in self.layer]
            else:
                pos = [tuple(None if t is None else t[lo:hi + 1] for t in tables)
                       for tables in rel_tables]
        for layer, (pk, pq) in zip(self.layer, pos, strict=True):
            x = layer(x, pair, pk, pq, idx)
        return x


class DebertaV2Model(nnx.Module):
    """`DebertaV2Model(input_ids, attention_mask) -> last hidden states [B, T, He]`."""

    def __init__(self, cfg: EncoderConfig, prec: Precision = Precision(), *, rngs: nnx.Rngs):
        self.config = cfg
        self.embeddings = Embeddings(cfg, prec, rngs=rngs)
        self.encoder = Encoder(cfg, prec, rngs=rngs)

    def __call__(self, input_ids, attention_mask, token_type_ids=None, rel_tables=None):
        """rel_tables: optional `encoder.relative_tables()` (see there)."""
        x = self.embeddings(input_ids, attention_mask, token_type_ids)
        return self.encoder(x, attention_mask, rel_tables)

"""ModernBERT encoder in Flax NNX, numerically equal to transformers' ModernBertModel (5.16).

Pre-norm layers without biases (by default), rotary position embeddings with one theta for the
global layers and another for the sliding-window (local) layers, a GeGLU MLP, and a final norm.
Padding is handled by masking keys; no unpadding (the reference's flash-attention path) is needed
for the same numbers. Names follow transformers (`embeddings.tok_embeddings`,
`layers.{i}.attn.Wqkv`, `layers.{i}.mlp.Wi`, `final_norm`), so the weight table is an identity up
to transposes. Layer 0 has no `attn_norm` (transformers: nn.Identity).

Numeric quirks copied from transformers (ModernBertRotaryEmbedding / apply_rotary_pos_emb):
- the rotary tables (cos, sin) are computed in float32 and then cast, even in a float64 model;
- q and k are cast to float32 before the rotation and back afterwards.
So a float64 ModernBERT carries float32 rounding in q and k; we do the same, for parity.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gliner_jax.config import EncoderConfig
from gliner_jax.layers import Precision, activation, axes_meta, dense, embed, normal

GLOBAL, LOCAL = "full_attention", "sliding_attention"


@functools.lru_cache(maxsize=64)
def rope_table(length: int, head_dim: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """(cos, sin) [length, head_dim] float32, as transformers' default RoPE builds them:
    inv_freq = 1 / theta ** (arange(0, H, 2) / H) in float32, angles = position * inv_freq in
    float32, duplicated over the two halves. cos/sin of the float32 angle are rounded from float64
    (torch's float32 cos is within 1 ulp of that; the tables may differ from torch's in the last
    bit)."""
    exponent = np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)
    inv_freq = (1.0 / (np.float64(theta) ** exponent.astype(np.float64))).astype(np.float32)
    angles = np.arange(length, dtype=np.float32)[:, None] * inv_freq[None, :]   # float32
    angles = np.concatenate([angles, angles], axis=-1).astype(np.float64)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def _layer_norm(features: int, cfg: EncoderConfig, prec: Precision, rngs: nnx.Rngs):
    return nnx.LayerNorm(features, epsilon=cfg.layer_norm_eps, use_bias=cfg.norm_bias,
                         use_fast_variance=False, dtype=prec.dtype, param_dtype=prec.param_dtype,
                         rngs=rngs, scale_metadata=axes_meta(("norm",)),
                         bias_metadata=axes_meta(("norm",)))


def _rotate(x, cos, sin):
    """x [B,T,N,H] rotated by the tables [T,H]; float32 arithmetic as transformers does it."""
    dt = x.dtype
    x32 = x.astype(jnp.float32).astype(jnp.promote_types(dt, jnp.float32))
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x32[..., half:], x32[..., :half]], axis=-1)
    cos, sin = cos[:, None].astype(x32.dtype), sin[:, None].astype(x32.dtype)
    return (x32 * cos + rotated * sin).astype(dt)


class ModernBertEmbeddings(nnx.Module):
    def __init__(self, cfg: EncoderConfig, prec: Precision, *, rngs: nnx.Rngs):
        self.tok_embeddings = embed(cfg.vocab_size, cfg.hidden_size, ("vocab", "embed"), prec,
                                    rngs, std=cfg.initializer_range)
        self.norm = _layer_norm(cfg.hidden_size, cfg, prec, rngs)
        self.drop = nnx.Dropout(cfg.hidden_dropout_prob, rngs=rngs)

    def __call__(self, input_ids):
        return self.drop(self.norm(self.tok_embeddings(input_ids)))


class ModernBertAttention(nnx.Module):
    def __init__(self, cfg: EncoderConfig, prec: Precision, *, rngs: nnx.Rngs):
        he, init = cfg.hidden_size, normal(cfg.initializer_range)
        self.cfg = cfg
        self.Wqkv = dense(he, 3 * he, ("embed", "heads"), prec, rngs, init=init,
                          use_bias=cfg.attention_bias)
        self.Wo = dense(he, he, ("heads", "embed"), prec, rngs, init=init,
                        use_bias=cfg.attention_bias)
        self.dropout = nnx.Dropout(cfg.attention_probs_dropout_prob, rngs=rngs)
        self.out_drop = nnx.Dropout(cfg.attention_probs_dropout_prob, rngs=rngs)

    def __call__(self, x, pair_mask, cos, sin):
        """x [B,T,He]; pair_mask [B,T,T] (key valid and, in local layers, inside the window)."""
        n, h = self.cfg.num_attention_heads, self.cfg.head_dim
        qkv = self.Wqkv(x).reshape(x.shape[:2] + (3, n, h))
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        scores = jnp.einsum("BTNH,BSNH->BNTS", q, k) * (h ** -0.5)
        soft_dtype = jnp.promote_types(scores.dtype, jnp.float32)
        scores = jnp.where(pair_mask[:, None], scores.astype(soft_dtype),
                           jnp.finfo(soft_dtype).min)
        probs = self.dropout(jax.nn.softmax(scores, axis=-1)).astype(v.dtype)
        ctx = jnp.einsum("BNTS,BSNH->BTNH", probs, v)
        return self.out_drop(self.Wo(ctx.reshape(ctx.shape[:2] + (n * h,))))


class ModernBertMLP(nnx.Module):
    """GeGLU: Wi -> (input, gate) halves -> act(input) * gate -> dropout -> Wo."""

    def __init__(self, cfg: EncoderConfig, prec: Precision, *, rngs: nnx.Rngs):
        init = normal(cfg.initializer_range)
        self.Wi = dense(cfg.hidden_size, 2 * cfg.intermediate_size, ("embed", "mlp"), prec, rngs,
                        init=init, use_bias=cfg.mlp_bias)
        self.Wo = dense(cfg.intermediate_size, cfg.hidden_size, ("mlp", "embed"), prec, rngs,
                        init=init, use_bias=cfg.mlp_bias)
        self.act = activation(cfg.hidden_act)
        self.drop = nnx.Dropout(cfg.mlp_dropout, rngs=rngs)

    def __call__(self, x):
        inp, gate = jnp.split(self.Wi(x), 2, axis=-1)
        return self.Wo(self.drop(self.act(inp) * gate))


class ModernBertEncoderLayer(nnx.Module):
    def __init__(self, cfg: EncoderConfig, index: int, prec: Precision, *, rngs: nnx.Rngs):
        if index > 0:  # transformers: layer 0 reads the (already normed) embeddings
            self.attn_norm = _layer_norm(cfg.hidden_size, cfg, prec, rngs)
        self.attn = ModernBertAttention(cfg, prec, rngs=rngs)
        self.mlp_norm = _layer_norm(cfg.hidden_size, cfg, prec, rngs)
        self.mlp = ModernBertMLP(cfg, prec, rngs=rngs)
        self.attention_type = cfg.layer_types[index]

    def __call__(self, x, pair_mask, cos, sin):
        h = self.attn_norm(x) if hasattr(self, "attn_norm") else x
        x = x + self.attn(h, pair_mask, cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class ModernBertModel(nnx.Module):
    """`ModernBertModel(input_ids, attention_mask) -> last hidden states [B, T, He]`."""

    def __init__(self, cfg: EncoderConfig, prec: Precision = Precision(), *, rngs: nnx.Rngs):
        self.config = cfg
        self.embeddings = ModernBertEmbeddings(cfg, prec, rngs=rngs)
        self.layers = nnx.List([ModernBertEncoderLayer(cfg, i, prec, rngs=rngs)
                                for i in range(cfg.num_hidden_layers)])
        self.final_norm = _layer_norm(cfg.hidden_size, cfg, prec, rngs)

    def rope_tables(self, length: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """(cos, sin) [length, head_dim] for the global and the local layers."""
        cfg = self.config
        return {GLOBAL: rope_table(length, cfg.head_dim, cfg.global_rope_theta),
                LOCAL: rope_table(length, cfg.head_dim, cfg.local_rope_theta)}

    def __call__(self, input_ids, attention_mask, token_type_ids=None, rel_tables=None):
        """rel_tables: optional {GLOBAL/LOCAL: (cos, sin)} with at least T rows, replacing
        `rope_tables(T)` (a test passes transformers' own tables through here)."""
        del token_type_ids  # ModernBERT has no token types
        t = input_ids.shape[1]
        tables = self.rope_tables(t) if rel_tables is None else rel_tables
        key_valid = attention_mask.astype(bool)
        full = jnp.broadcast_to(key_valid[:, None, :], key_valid.shape + (t,))
        pos = np.arange(t)
        # transformers' sliding_window_bidirectional_overlay: |i - j| <= local_attention // 2
        window = np.abs(pos[:, None] - pos[None, :]) <= self.config.local_attention // 2
        masks = {GLOBAL: full, LOCAL: full & window[None]}
        x = self.embeddings(input_ids)
        for layer in self.layers:
            cos, sin = tables[layer.attention_type]
            x = layer(x, masks[layer.attention_type], jnp.asarray(cos)[:t], jnp.asarray(sin)[:t])
        return self.final_norm(x)

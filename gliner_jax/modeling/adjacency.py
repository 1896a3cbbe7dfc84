"""The adjacency layers of relation extraction: gliner 0.2.29 `RelationsRepLayer`
(gliner/modeling/multitask/relations_layers.py), one module per `relations_layer`.

Each maps entity vectors X [B,E,D] and their mask [B,E] to an adjacency [B,E,E], zero where
either end is padding (the reference's _apply_pair_mask). Torch keys sit under
`relations_rep_layer.relation_rep_layer.`; the module attribute names are the torch names.

    dot        sigmoid(X X^T)
    mlp        sigmoid(MLP([X_i; X_j]))                        keys mlp.0, mlp.2
    bilinear   sigmoid(Z Z^T), Z = proj(X)                     keys proj
    gcn        X refined by one GCN layer over the dot adjacency, then sigmoid(P P^T)
    attention  (alias attn) torch MultiheadAttention's weights, averaged over heads
               (no sigmoid: each valid row sums to 1 over the valid entities)   keys attn.*
    gat        sigmoid(Z Z^T), Z = linear(MultiheadAttention(X))   keys attn.*, linear
    none       no layer: every pair is scored

The reference builds `RelationsRepLayer(in_dim=hidden_size, relation_mode=...)` with no other
argument, so the attention layers always have 8 heads and every hidden width is D.
One difference, by design: for a row with no entity at all, torch's attention softmax runs over
no key and gives NaN (the reference then selects no pair there, and its training loss is NaN);
here that row's attention is 0 (no pair either, finite loss).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gliner_jax.layers import Precision, axes_meta, torch_dense

NHEAD = 8   # RelationsRepLayer: kwargs.get("nhead", 8), never passed by the relex models


def _pair_mask(a, mask):
    """The reference's _apply_pair_mask: zero where either end is padding."""
    m = mask.astype(a.dtype)
    return a * m[:, :, None] * m[:, None, :]


def _gram(z):
    return jnp.einsum("BID,BJD->BIJ", z, z)


class DotAdjacency(nnx.Module):
    """relations_layer "dot": sigmoid(X X^T)."""

    def __init__(self, d: int, prec: Precision, *, rngs: nnx.Rngs):
        pass

    def __call__(self, x, mask):
        return _pair_mask(jax.nn.sigmoid(_gram(x)), mask)


class PairMLP(nnx.Module):
    """torch Sequential(Linear(2D, H), ReLU, Linear(H, 1)): keys `mlp.0`, `mlp.2`."""

    def __init__(self, d: int, hidden: int, prec: Precision, *, rngs: nnx.Rngs):
        self.linear_0 = torch_dense(2 * d, hidden, ("embed", "mlp"), prec, rngs)
        self.linear_2 = torch_dense(hidden, 1, ("mlp", None), prec, rngs)


class MLPAdjacency(nnx.Module):
    """relations_layer "mlp": sigmoid(MLP([X_i; X_j])); the first Linear splits per side."""

    def __init__(self, d: int, prec: Precision, *, rngs: nnx.Rngs):
        self.mlp = PairMLP(d, d, prec, rngs=rngs)

    def __call__(self, x, mask):
        d = x.shape[-1]
        lin = self.mlp.linear_0
        w = lin.kernel[...].astype(x.dtype)
        h = jax.nn.relu((x @ w[:d] + lin.bias[...].astype(x.dtype))[:, :, None]
                        + (x @ w[d:])[:, None])
        return _pair_mask(jax.nn.sigmoid(self.mlp.linear_2(h)[..., 0]), mask)


class BilinearAdjacency(nnx.Module):
    """relations_layer "bilinear": sigmoid(Z Z^T), Z = proj(X)."""

    def __init__(self, d: int, prec: Precision, *, rngs: nnx.Rngs):
        self.proj = torch_dense(d, d, ("embed", "mlp"), prec, rngs)

    def __call__(self, x, mask):
        return _pair_mask(jax.nn.sigmoid(_gram(self.proj(x))), mask)


class GCNLayer(nnx.Module):
    def __init__(self, d: int, hidden: int, prec: Precision, *, rngs: nnx.Rngs):
        self.linear = torch_dense(d, hidden, ("embed", "mlp"), prec, rngs)

    def __call__(self, x, a, mask):
        """relu(linear(D^-1/2 (A + I) D^-1/2 X)), self-loops on valid nodes only."""
        m = mask.astype(a.dtype)
        a = _pair_mask(a, mask) + m[:, :, None] * jnp.eye(a.shape[1], dtype=a.dtype)
        inv = jnp.maximum(a.sum(-1), 1e-6) ** -0.5                     # reference: clamp 1e-6
        return jax.nn.relu(self.linear((inv[:, :, None] * a * inv[:, None, :]) @ x))


class GCNAdjacency(nnx.Module):
    """relations_layer "gcn": the dot adjacency refines X through one GCN layer, then
    sigmoid(P P^T), P = proj(H)."""

    def __init__(self, d: int, prec: Precision, *, rngs: nnx.Rngs):
        self.gcn = GCNLayer(d, d, prec, rngs=rngs)
        self.proj = torch_dense(d, d, ("mlp", "embed"), prec, rngs)

    def __call__(self, x, mask):
        a0 = _pair_mask(jax.nn.sigmoid(_gram(x)), mask)
        return _pair_mask(jax.nn.sigmoid(_gram(self.proj(self.gcn(x, a0, mask)))), mask)


class MultiheadAttention(nnx.Module):
    """torch nn.MultiheadAttention(d, NHEAD, batch_first=True) as self-attention with a key
    padding mask (dropout 0, the torch default). Keys: in_proj_weight [3D,D] (q|k|v rows, torch
    layout), in_proj_bias [3D], out_proj (NNX `attn_out_proj`: `out_proj` is the MLPs' index)."""

    def __init__(self, d: int, prec: Precision, *, rngs: nnx.Rngs):
        self.prec = prec
        xavier = nnx.initializers.xavier_uniform()                # torch's _reset_parameters
        self.in_proj_weight = nnx.Param(xavier(rngs.params(), (3 * d, d), prec.param_dtype),
                                        **axes_meta(("mlp", "embed")))
        self.in_proj_bias = nnx.Param(jnp.zeros((3 * d,), prec.param_dtype),
                                      **axes_meta(("mlp",)))
        self.attn_out_proj = torch_dense(d, d, ("mlp", "embed"), prec, rngs)
        self.attn_out_proj.bias.set_value(jnp.zeros((d,), prec.param_dtype))

    def __call__(self, x, mask):
        """x [B,E,D], mask [B,E] -> (outputs [B,E,D], weights averaged over heads [B,E,E])."""
        dt = self.prec.dtype or x.dtype
        b, e, d = x.shape
        h = d // NHEAD
        qkv = x.astype(dt) @ self.in_proj_weight[...].astype(dt).T + \
            self.in_proj_bias[...].astype(dt)
        q, k, v = (t.reshape(b, e, NHEAD, h) for t in jnp.split(qkv, 3, axis=-1))
        s = jnp.einsum("BINH,BJNH->BNIJ", q * (1.0 / h) ** 0.5, k)   # torch: q * sqrt(1/H)
        # key padding -> -inf in torch; the finite minimum gives the same exp(.) = 0 and keeps
        # the gradient finite; a row without any key is zeroed below (torch: NaN)
        s = jnp.where(mask[:, None, None, :], s, jnp.finfo(s.dtype).min)
        p = jax.nn.softmax(s, axis=-1)
        p = jnp.where(mask.any(-1)[:, None, None, None], p, 0.0)
        out = jnp.einsum("BNIJ,BJNH->BINH", p, v).reshape(b, e, d)
        return self.attn_out_proj(out), p.mean(1)


class AttentionAdjacency(nnx.Module):
    """relations_layer "attention" / "attn": the attention weights, averaged over heads."""

    def __init__(self, d: int, prec: Precision, *, rngs: nnx.Rngs):
        self.attn = MultiheadAttention(d, prec, rngs=rngs)

    def __call__(self, x, mask):
        return _pair_mask(self.attn(x, mask)[1], mask)


class GATAdjacency(nnx.Module):
    """relations_layer "gat": sigmoid(Z Z^T), Z = linear(attention outputs)."""

    def __init__(self, d: int, prec: Precision, *, rngs: nnx.Rngs):
        self.attn = MultiheadAttention(d, prec, rngs=rngs)
        self.linear = torch_dense(d, d, ("embed", "mlp"), prec, rngs)

    def __call__(self, x, mask):
        return _pair_mask(jax.nn.sigmoid(_gram(self.linear(self.attn(x, mask)[0]))), mask)


# relations_layer (lower case, as the reference compares it) -> adjacency module; "none" scores
# every pair (no adjacency layer)
ADJACENCY = {"dot": DotAdjacency, "mlp": MLPAdjacency, "bilinear": BilinearAdjacency,
             "gcn": GCNAdjacency, "attention": AttentionAdjacency, "attn": AttentionAdjacency,
             "gat": GATAdjacency, "none": None}
# layers whose width must split over NHEAD heads (torch MultiheadAttention asserts it)
MULTIHEAD = ("attention", "attn", "gat")

"""The token-level scorer (gliner 0.2.29 `modeling/scorers.py::Scorer`, span_mode token_level).

For word w and type p it scores (start, end, inside):
    t = proj_token(w) = [t1; t2],  l = proj_label(p) = [l1; l2]          (each D)
    score[w,c] = out_mlp([t1; l1; t2 * l2])
    out_mlp: Linear(3D, 4D) -> Dropout -> ReLU -> Linear(4D, 3)
out_mlp's first layer splits over the concatenation: a per-word term t1 @ Wa, a per-type term
l1 @ Wb, and only the product term (t2 * l2) @ Wc costs a D x 4D matmul per (word, type) pair,
which the interaction makes unavoidable. (Dropout before ReLU equals ReLU before dropout: the
mask is a non-negative scale.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gliner_jax.layers import Precision, torch_dense
from gliner_jax.modeling.span_rep import MLP


class Scorer(nnx.Module):
    def __init__(self, d: int, dropout: float, prec: Precision, *, rngs: nnx.Rngs):
        self.proj_token = torch_dense(d, 2 * d, ("embed", "mlp"), prec, rngs)
        self.proj_label = torch_dense(d, 2 * d, ("embed", "mlp"), prec, rngs)
        self.out_mlp = MLP(3 * d, 3, dropout, prec, rngs=rngs, hidden=4 * d)   # torch .0 / .3

    def __call__(self, words, prompts):
        """words [B,L,D], prompts [B,C,D] -> [B,L,C,3] (start, end, inside) logits."""
        d = words.shape[-1]
        t = self.proj_token(words)
        lab = self.proj_label(prompts)
        lin = self.out_mlp.in_proj
        dt = lin.dtype or words.dtype
        w1 = lin.kernel[...].astype(dt)                                     # [3D, 4D]
        tw = t[..., :d].astype(dt) @ w1[:d] + lin.bias[...].astype(dt)      # [B,L,4D]
        lw = lab[..., :d].astype(dt) @ w1[d:2 * d]                          # [B,C,4D]
        pair = jnp.einsum("BLD,BCD,DF->BLCF", t[..., d:].astype(dt), lab[..., d:].astype(dt),
                          w1[2 * d:])
        h = self.out_mlp.dropout(jax.nn.relu(tw[:, :, None] + lw[:, None] + pair))
        return self.out_mlp.out_proj(h)

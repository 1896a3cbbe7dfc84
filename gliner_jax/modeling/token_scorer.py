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
        return self.score(words, *self.label_terms(prompts))

    def _first_layer(self, x):
        lin = self.out_mlp.in_proj
        dt = lin.dtype or x.dtype
        return lin, dt, lin.kernel[...].astype(dt)                           # W1 [3D, 4D]

    def label_terms(self, prompts):
        """What the scores read of the types, [..., C, D] -> (l1 @ Wb [..., C, 4D], l2
        [..., C, D]): independent of the text (a bi-encoder computes them once per label set)."""
        d = prompts.shape[-1]
        _, dt, w1 = self._first_layer(prompts)
        lab = self.proj_label(prompts)
        return lab[..., :d].astype(dt) @ w1[d:2 * d], lab[..., d:].astype(dt)

    def score(self, words, lw, l2):
        """words [B,L,D] and a label set's terms (`label_terms`: [B,C,*] per row, or [C,*]
        shared by the rows) -> [B,L,C,3]."""
        d = words.shape[-1]
        lin, dt, w1 = self._first_layer(words)
        t = self.proj_token(words)
        tw = t[..., :d].astype(dt) @ w1[:d] + lin.bias[...].astype(dt)      # [B,L,4D]
        t2 = t[..., d:].astype(dt)
        if lw.ndim == 2:  # shared: no [B, C, *] copies
            pair = jnp.einsum("BLD,CD,DF->BLCF", t2, l2, w1[2 * d:])
            lw = lw[None]
        else:
            pair = jnp.einsum("BLD,BCD,DF->BLCF", t2, l2, w1[2 * d:])
        h = self.out_mlp.dropout(jax.nn.relu(tw[:, :, None] + lw[:, None] + pair))
        return self.out_mlp.out_proj(h)

"""The token-level scorer (gliner 0.2.29 `modeling/scorers.py::Scorer`, span_mode token_level).

For word w and type p it scores (start, end, inside):
    t = proj_token(w) = [t1; t2],  l = proj_label(p) = [l1; l2]          (each D)
    score[w,c] = out_mlp([t1; l1; t2 * l2])
    out_mlp: Linear(3D, 4D) -> Dropout -> ReLU -> Linear(4D, 3)
out_mlp's first layer splits over the concatenation: a per-word term t1 @ Wa, a per-type term
l1 @ Wb, and only the product term (t2 * l2) @ Wc costs a D x 4D matmul per (word, type) pair,
which the interaction makes unavoidable. (Dropout before ReLU equals ReLU before dropout: the
mask is a non-negative scale.)

Without dropout (inference) the [B, L, C, 4D] hidden layer is never held whole: a lax.map runs
over blocks of one row's words (at most PAIR_BLOCK (word, type) pairs a step), each block's
product, ReLU and last layer in turn, so that the hidden block stays in the CPU's cache between
them. Measured on this project's 2-core CPU at batch 8, 24-96 words, 12 types: the scorer
1.3-1.8x faster than with one product over the whole batch, the same numbers. With dropout
(training) it is that one product: forward + backward measured no faster in blocks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gliner_jax.layers import Precision, torch_dense
from gliner_jax.modeling.span_rep import MLP

# (word, type) pairs per step of the scoring map (see the module docstring); 512-2,048 measured
# alike, 256 and the whole row (past ~1,500 pairs) slower
PAIR_BLOCK = 1024


def words_per_block(num_words: int, num_types: int) -> int:
    """The most words of a row, dividing num_words, whose pairs fit in PAIR_BLOCK (>= 1)."""
    fit = max(1, PAIR_BLOCK // max(num_types, 1))
    return max((k for k in range(1, min(fit, num_words) + 1) if num_words % k == 0), default=1)


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
        wc = w1[2 * d:]                                                     # [D, 4D]
        drop = self.out_mlp.dropout
        if drop.deterministic or drop.rate == 0:
            return self._score_blocks(tw, t2, lw, l2, wc)
        # training: one product over the batch, dropout on the whole hidden layer (forward +
        # backward measured no faster in blocks)
        if lw.ndim == 2:  # shared: no [B, C, *] copies
            pair = jnp.einsum("BLD,CD,DF->BLCF", t2, l2, wc)
            lw = lw[None]
        else:
            pair = jnp.einsum("BLD,BCD,DF->BLCF", t2, l2, wc)
        return self.out_mlp.out_proj(drop(jax.nn.relu(tw[:, :, None] + lw[:, None] + pair)))

    def _score_blocks(self, tw, t2, lw, l2, wc):
        """`score` without dropout, in blocks of one row's words (module docstring)."""
        (b, L, f), d, c = tw.shape, t2.shape[-1], l2.shape[-2]
        k = words_per_block(L, c)
        n = L // k                                                          # blocks per row
        xs = {"tw": tw.reshape(b * n, k, f), "t2": t2.reshape(b * n, k, d)}
        per_row = lw.ndim == 3
        if per_row:  # each block takes its row's terms
            xs["lw"], xs["l2"] = jnp.repeat(lw, n, axis=0), jnp.repeat(l2, n, axis=0)

        def block(x):  # [k, *] -> [k, C, 3]
            lw_, l2_ = (x["lw"], x["l2"]) if per_row else (lw, l2)
            h = jax.nn.relu(x["tw"][:, None] + lw_[None] + (x["t2"][:, None] * l2_[None]) @ wc)
            return self.out_mlp.out_proj(h)

        return jax.lax.map(block, xs).reshape(b, L, c, 3)

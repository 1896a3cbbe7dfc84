"""The token-level scorer (gliner 0.2.29 `modeling/scorers.py::Scorer`, span_mode token_level).

For word w and type p it scores (start, end, inside):
    t = proj_token(w) = [t1; t2],  l = proj_label(p) = [l1; l2]          (each D)
    score[w,c] = out_mlp([t1; l1; t2 * l2])
    out_mlp: Linear(3D, 4D) -> Dropout -> ReLU -> Linear(4D, 3)
out_mlp's first layer splits over the concatenation: a per-word term t1 @ Wa, a per-type term
l1 @ Wb, and only the product term (t2 * l2) @ Wc costs a D x 4D matmul per (word, type) pair,
which the interaction makes unavoidable. (Dropout before ReLU equals ReLU before dropout: the
mask is a non-negative scale.)

Given the texts' lengths and no dropout (inference), that product skips the padded words: the
batch's words are packed, text words first, into blocks of ~PAIR_BLOCK (word, type) pairs
(lax.map), and blocks holding no text word are skipped (lax.cond). A batch pads each text to its
longest and then to a W bucket: a fifth of the word slots of BENCHMARKS.md's 96 sentences at
batch 8. Text words get the same numbers; padded words' logits mean nothing (0 where
skipped). Measured there (2 CPU cores, under load), in turns: encoder + scorer 7-9% faster
than with one product over the whole batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gliner_jax.layers import Precision, torch_dense
from gliner_jax.modeling.span_rep import MLP

# (word, type) pairs per block of the packed product (module docstring)
PAIR_BLOCK = 768


class Scorer(nnx.Module):
    def __init__(self, d: int, dropout: float, prec: Precision, *, rngs: nnx.Rngs):
        self.proj_token = torch_dense(d, 2 * d, ("embed", "mlp"), prec, rngs)
        self.proj_label = torch_dense(d, 2 * d, ("embed", "mlp"), prec, rngs)
        self.out_mlp = MLP(3 * d, 3, dropout, prec, rngs=rngs, hidden=4 * d)   # torch .0 / .3

    def __call__(self, words, prompts, text_lengths=None):
        """words [B,L,D], prompts [B,C,D] -> [B,L,C,3] (start, end, inside) logits; with
        text_lengths [B], those of padded words (>= the length) mostly not computed (0)."""
        return self.score(words, *self.label_terms(prompts), text_lengths)

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

    def score(self, words, lw, l2, text_lengths=None):
        """words [B,L,D] and a label set's terms (`label_terms`: [B,C,*] per row, or [C,*]
        shared by the rows) -> [B,L,C,3]; text_lengths: as `__call__`."""
        d = words.shape[-1]
        lin, dt, w1 = self._first_layer(words)
        t = self.proj_token(words)
        tw = t[..., :d].astype(dt) @ w1[:d] + lin.bias[...].astype(dt)      # [B,L,4D]
        t2 = t[..., d:].astype(dt)
        drop = self.out_mlp.dropout
        if text_lengths is not None and lw.ndim == 3 and (drop.deterministic or drop.rate == 0):
            return self._packed(tw, t2, lw, l2, w1[2 * d:], text_lengths)
        if lw.ndim == 2:  # shared: no [B, C, *] copies
            pair = jnp.einsum("BLD,CD,DF->BLCF", t2, l2, w1[2 * d:])
            lw = lw[None]
        else:
            pair = jnp.einsum("BLD,BCD,DF->BLCF", t2, l2, w1[2 * d:])
        h = self.out_mlp.dropout(jax.nn.relu(tw[:, :, None] + lw[:, None] + pair))
        return self.out_mlp.out_proj(h)

    def _packed(self, tw, t2, lw, l2, wc, text_lengths):
        """`score` of the text words only, per-row terms, no dropout (module docstring)."""
        (b, L, f), d, c = tw.shape, t2.shape[-1], l2.shape[-2]
        k = max(1, PAIR_BLOCK // c)                                         # words per block
        n = -(-(b * L) // k)                                                # blocks
        text = (jnp.arange(L)[None] < text_lengths[:, None]).reshape(-1)
        # text words first; the slots past b * L point at a zero row b * L (their output dropped)
        slot = jnp.pad(jnp.argsort(~text, stable=True), (0, n * k - b * L),
                       constant_values=b * L).reshape(n, k)
        row = jnp.minimum(slot // L, b - 1)
        tw = jnp.pad(tw.reshape(b * L, f), ((0, 1), (0, 0)))
        t2 = jnp.pad(t2.reshape(b * L, d), ((0, 1), (0, 0)))
        used = text.sum()
        skipped = jnp.zeros((k, c, 3), jax.eval_shape(self.out_mlp.out_proj, jax.ShapeDtypeStruct(
            (1, f), tw.dtype)).dtype)

        def block(x):  # block j: k word slots and their rows -> [k, C, 3]
            j, s, r = x

            def scores(_):
                pair = (t2[s][:, None] * l2[r]) @ wc
                return self.out_mlp.out_proj(jax.nn.relu(tw[s][:, None] + lw[r] + pair))

            return jax.lax.cond(j * k < used, scores, lambda _: skipped, None)

        out = jax.lax.map(block, (jnp.arange(n), slot, row)).reshape(n * k, c, 3)
        out = jnp.zeros((b * L + 1, c, 3), out.dtype).at[slot.reshape(-1)].set(out)
        return out[:b * L].reshape(b, L, c, 3)

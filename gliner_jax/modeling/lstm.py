"""One-layer bidirectional LSTM with torch's packed-sequence semantics.

Parameters keep torch's names and layouts (`weight_ih_l0` [4h, D], gate rows i|f|g|o), so the
converter maps them unchanged and a round trip is bit-identical (both biases kept apart).
Packed semantics: row b with n words runs forward over 0..n-1 and backward over n-1..0, both from
a zero state; outputs at positions >= n are exactly 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gliner_jax.layers import Precision, axes_meta, torch_uniform


class BiLSTM(nnx.Module):
    def __init__(self, d_in: int, hidden: int, prec: Precision, *, rngs: nnx.Rngs):
        init = torch_uniform(hidden)
        self.hidden, self.prec = hidden, prec
        g = 4 * hidden

        def param(shape, axes):
            return nnx.Param(init(rngs.params(), shape, prec.param_dtype), **axes_meta(axes))

        for sfx in ("l0", "l0_reverse"):
            setattr(self, f"weight_ih_{sfx}", param((g, d_in), ("mlp", "embed")))
            setattr(self, f"weight_hh_{sfx}", param((g, hidden), ("mlp", None)))
            setattr(self, f"bias_ih_{sfx}", param((g,), ("mlp",)))
            setattr(self, f"bias_hh_{sfx}", param((g,), ("mlp",)))

    def __call__(self, x, lengths):
        """x [B,L,D], lengths [B] -> [B,L,2h]."""
        dt = self.prec.dtype or x.dtype
        x = x.astype(dt)
        b, L, _ = x.shape
        t = jnp.arange(L)
        n = lengths.astype(jnp.int32)[:, None]
        valid = t[None] < n                                              # [B,L]
        rev = jnp.where(valid, n - 1 - t[None], t[None])                 # per-row reversal
        x_rev = jnp.take_along_axis(x, rev[..., None], axis=1)

        def proj(inp, sfx):
            w = getattr(self, f"weight_ih_{sfx}")[...].astype(dt)
            bias = (getattr(self, f"bias_ih_{sfx}")[...] + getattr(self, f"bias_hh_{sfx}")[...])
            return jnp.einsum("BLD,GD->LBG", inp, w) + bias.astype(dt)

        gates_in = jnp.stack([proj(x, "l0"), proj(x_rev, "l0_reverse")], axis=1)  # [L,2,B,4h]
        w_hh = jnp.stack([self.weight_hh_l0[...], self.weight_hh_l0_reverse[...]]).astype(dt)

        def step(carry, g_in):
            h, c = carry                                                  # [2,B,h]
            z = g_in + jnp.einsum("SBH,SGH->SBG", h, w_hh)
            i, f, g, o = jnp.split(z, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        zeros = jnp.zeros((2, b, self.hidden), dt)
        _, hs = jax.lax.scan(step, (zeros, zeros), gates_in)              # [L,2,B,h]
        fwd = jnp.transpose(hs[:, 0], (1, 0, 2))
        bwd = jnp.take_along_axis(jnp.transpose(hs[:, 1], (1, 0, 2)), rev[..., None], axis=1)
        out = jnp.concatenate([fwd, bwd], axis=-1)
        return jnp.where(valid[..., None], out, 0)

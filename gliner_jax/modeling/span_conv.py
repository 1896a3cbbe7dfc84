"""Width-indexed span modes: query, mlp, cat, conv_conv / conv_max / conv_mean / conv_sum,
conv_share (gliner 0.2.29 `span_rep.py`).

Each builds, for every width k, a per-start vector x_k[s] from the words w, and scores it against
the type vectors q_c:
    query:  relu((w[s] * Q[:,k]) @ P + b) . q_c               (no factorisation: a D x D per span)
    mlp:    relu(w[s] @ M + m)[k] . q_c                        (one per-word matmul for all k)
    cat:    relu(w[s] @ Pw + Q'[k] @ Pq + b) . q_c             (per-word + per-width terms)
    conv_*: (relu(x_k[s]) @ P + b) . q_c = relu(x_k[s]) . (P q_c) + b . q_c
            x_0 = w; x_k = conv / max / mean / sum of w[s..s+k] (zero padded after the last word)
    conv_share: as conv_*, x_k[s] = sum_{j<=k} w[s+j] @ W_j (prefix sums of per-word products)
The conv modes' final Linear folds into the type vectors (as markerV0's out_project does), and
`cat` runs the same per-width kernel as the markers; `query` must form its D-vector per span.
None of these modes has dropout. Scores are computed one width at a time ([L,C] per width), never
as a stacked [L,K,D] tensor.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gliner_jax.layers import Precision, axes_meta, torch_dense, torch_uniform


def _param(rngs: nnx.Rngs, shape, axes, prec: Precision, init):
    return nnx.Param(init(rngs.params(), shape, prec.param_dtype), **axes_meta(axes))


def _shifted(x, k: int):
    """x[:, s+k] for every s, zeros past the end: [B,L,D]."""
    L = x.shape[1]
    return jnp.pad(x, ((0, 0), (0, k), (0, 0)))[:, k:k + L]


class Linear0(nnx.Module):
    """torch `nn.Sequential(nn.Linear, nn.ReLU)`: the Linear is `.0`."""

    def __init__(self, d_in: int, d_out: int, prec: Precision, *, rngs: nnx.Rngs):
        self.linear_0 = torch_dense(d_in, d_out, ("embed", "embed"), prec, rngs)


class Linear1(nnx.Module):
    """torch `nn.Sequential(nn.ReLU, nn.Linear)`: the Linear is `.1`."""

    def __init__(self, d_in: int, d_out: int, prec: Precision, *, rngs: nnx.Rngs):
        self.linear_1 = torch_dense(d_in, d_out, ("embed", "embed"), prec, rngs)

    def fold(self, prompts):
        """Types through the Linear's transpose: score = relu(x) . q' + q0. ([B,C,D], [B,C])"""
        lin = self.linear_1
        dt = prompts.dtype
        return (jnp.einsum("BCE,DE->BCD", prompts, lin.kernel[...].astype(dt)),
                prompts @ lin.bias[...].astype(dt))


class SpanQuery(nnx.Module):
    def __init__(self, d: int, max_width: int, dropout: float, prec: Precision, *,
                 rngs: nnx.Rngs):
        self.max_width = max_width
        self.query_seg = _param(rngs, (d, max_width), ("embed", None), prec,
                                lambda k, s, t: jax.random.uniform(k, s, t, -1.0, 1.0))
        self.project = Linear0(d, d, prec, rngs=rngs)

    def __call__(self, words, prompts, text_lengths):
        lin = self.project.linear_0
        qs = self.query_seg[...].astype(words.dtype)
        return jnp.stack([jnp.einsum("BLD,BCD->BLC", jax.nn.relu(lin(words * qs[:, k])), prompts)
                          for k in range(self.max_width)], axis=2)


class SpanMLP(nnx.Module):
    def __init__(self, d: int, max_width: int, dropout: float, prec: Precision, *,
                 rngs: nnx.Rngs):
        self.max_width = max_width
        self.mlp = torch_dense(d, d * max_width, ("embed", "mlp"), prec, rngs)

    def __call__(self, words, prompts, text_lengths):
        B, L, D = words.shape
        reps = jax.nn.relu(self.mlp(words)).reshape(B, L, self.max_width, D)  # torch .view
        return jnp.einsum("BLKD,BCD->BLKC", reps, prompts.astype(reps.dtype))


class SpanCAT(nnx.Module):
    QUERY = 128  # the reference's fixed query width

    def __init__(self, d: int, max_width: int, dropout: float, prec: Precision, *,
                 rngs: nnx.Rngs):
        self.max_width = max_width
        self.query_seg = _param(rngs, (self.QUERY, max_width), (None, None), prec,
                                lambda k, s, t: jax.random.normal(k, s, t))
        self.project = Linear0(d + self.QUERY, d, prec, rngs=rngs)

    def __call__(self, words, prompts, text_lengths):
        lin = self.project.linear_0
        d = words.shape[-1]
        dt = lin.dtype or words.dtype
        w = lin.kernel[...].astype(dt)                                      # [D+128, D]
        a = words.astype(dt) @ w[:d] + lin.bias[...].astype(dt)             # [B,L,D]
        # the reference `.view`s the [128, K] parameter as [K, 128] (a reshape, not a transpose)
        per_width = self.query_seg[...].astype(dt).reshape(self.max_width, -1) @ w[d:]  # [K,D]
        p = prompts.astype(dt)
        return jnp.stack([jnp.einsum("BLD,BCD->BLC", jax.nn.relu(a + per_width[k]), p)
                          for k in range(self.max_width)], axis=2)


class ConvBlock(nnx.Module):
    """One conv_conv width: torch Conv1d(D, D, kernel) weight [D_out, D_in, kernel], bias."""

    def __init__(self, d: int, kernel: int, prec: Precision, *, rngs: nnx.Rngs):
        # torch: kaiming_uniform_(nonlinearity="relu") on the weight, default bias init
        bound = (6.0 / (d * kernel)) ** 0.5
        self.weight = _param(rngs, (d, d, kernel), ("embed", "embed", None), prec,
                             lambda k, s, t: jax.random.uniform(k, s, t, -bound, bound))
        self.bias = _param(rngs, (d,), ("embed",), prec, torch_uniform(d * kernel))


class ConvHolder(nnx.Module):
    """torch `convs.{i}.conv`: holds one ConvBlock as `.conv`."""

    def __init__(self, d: int, kernel: int, prec: Precision, *, rngs: nnx.Rngs):
        self.conv = ConvBlock(d, kernel, prec, rngs=rngs)


def _pool_max(words, k):
    return jnp.max(jnp.stack([_shifted(words, j) for j in range(k + 1)]), axis=0)


def _pool_sum(words, k):
    return sum(_shifted(words, j) for j in range(k + 1))


# pooling of widths k >= 1 (kernel k+1) over zero-padded words; AvgPool1d divides by the kernel
# size (zeros included); conv_sum multiplies that mean back by the kernel size, as the reference
POOLS = {
    "conv_max": _pool_max,
    "conv_mean": lambda w, k: _pool_sum(w, k) / (k + 1),
    "conv_sum": lambda w, k: (_pool_sum(w, k) / (k + 1)) * (k + 1),
}


class SpanConv(nnx.Module):
    """conv_conv, conv_max, conv_mean, conv_sum: width k+1 is a conv or pool of kernel k+1."""

    mode = "conv_conv"

    def __init__(self, d: int, max_width: int, dropout: float, prec: Precision, *,
                 rngs: nnx.Rngs):
        self.max_width = max_width
        if self.mode == "conv_conv":
            self.convs = nnx.List([ConvHolder(d, k + 2, prec, rngs=rngs)
                                   for k in range(max_width - 1)])
        self.project = Linear1(d, d, prec, rngs=rngs)

    def width_input(self, words, k: int):
        if k == 0:
            return words
        if self.mode != "conv_conv":
            return POOLS[self.mode](words, k)
        conv = self.convs[k - 1].conv
        w = conv.weight[...].astype(words.dtype)                             # [D_out, D_in, k+1]
        return sum(_shifted(words, j) @ w[:, :, j].T for j in range(k + 1)) + conv.bias[...]

    def __call__(self, words, prompts, text_lengths):
        q, q0 = self.project.fold(prompts.astype(words.dtype))
        return jnp.stack([jnp.einsum("BLD,BCD->BLC", jax.nn.relu(self.width_input(words, k)), q)
                          for k in range(self.max_width)], axis=2) + q0[:, None, None]


class SpanConvMax(SpanConv):
    mode = "conv_max"


class SpanConvMean(SpanConv):
    mode = "conv_mean"


class SpanConvSum(SpanConv):
    mode = "conv_sum"


class ConvShare(nnx.Module):
    """conv_share: one weight [D_out, D_in, K] (torch name `conv_weigth`, sic); width k+1 uses
    its first k+1 taps, so x_k = x_{k-1} + w[s+k] @ W_k^T."""

    def __init__(self, d: int, max_width: int, dropout: float, prec: Precision, *,
                 rngs: nnx.Rngs):
        self.max_width = max_width
        bound = (6.0 / (d * max_width)) ** 0.5
        self.conv_weigth = _param(rngs, (d, d, max_width), ("embed", "embed", None), prec,
                                  lambda k, s, t: jax.random.uniform(k, s, t, -bound, bound))
        self.project = Linear1(d, d, prec, rngs=rngs)

    def __call__(self, words, prompts, text_lengths):
        q, q0 = self.project.fold(prompts.astype(words.dtype))
        w = self.conv_weigth[...].astype(words.dtype)
        out, x = [], 0
        for k in range(self.max_width):
            x = x + _shifted(words, k) @ w[:, :, k].T
            out.append(jnp.einsum("BLD,BCD->BLC", jax.nn.relu(x), q))
        return jnp.stack(out, axis=2) + q0[:, None, None]

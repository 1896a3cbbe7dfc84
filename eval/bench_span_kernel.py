"""What the factorised markerV0 kernel buys, measured side by side on the same weights.

naive (the reference's formulation): R[s,k] = MLP_out(relu([S[s]; E[s+k]])) for every span,
    a [B, L*K, 2D] x [2D, 4D] and a [B, L*K, 4D] x [4D, D] matmul, then R . Q
factorised (gliner_jax): per-word halves of MLP_out's first layer, its last layer folded into
    the type vectors: h = relu(a[s] + e[s+k]) and h . (W2^T q) -- no per-span D x 4D matmul.

    python -m eval.bench_span_kernel [--batch 8] [--words 32] [--types 10]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gliner_jax.layers import Precision
from gliner_jax.modeling.span_rep import MLP, SpanMarkerV0


def naive(marker: SpanMarkerV0, words, prompts):
    K = marker.max_width
    B, L, D = words.shape
    S, E = marker.project_start(words), marker.project_end(words)
    starts = jnp.repeat(jnp.arange(L), K)
    ends = jnp.minimum(starts + jnp.tile(jnp.arange(K), L), L - 1)
    cat = jax.nn.relu(jnp.concatenate([S[:, starts], E[:, ends]], axis=-1))   # [B, L*K, 2D]
    R = marker.out_project(cat).reshape(B, L, K, D)
    return jnp.einsum("BLKD,BCD->BLKC", R, prompts)


def timed(fn, repeats=5):
    fn().block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn().block_until_ready()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--words", type=int, default=32)
    ap.add_argument("--types", type=int, default=10)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--max-width", type=int, default=12)
    a = ap.parse_args()
    B, L, C, D, K = a.batch, a.words, a.types, a.hidden, a.max_width
    marker = SpanMarkerV0(D, K, 0.4, Precision(), rngs=nnx.Rngs(0))
    prompt_mlp = MLP(D, D, 0.4, Precision(), rngs=nnx.Rngs(1))
    marker.eval()
    prompt_mlp.eval()
    rng = np.random.default_rng(0)
    words = jnp.asarray(rng.normal(size=(B, L, D)), jnp.float32)
    prompts = prompt_mlp(jnp.asarray(rng.normal(size=(B, C, D)), jnp.float32))
    gd, st = nnx.split(marker)
    f_fact = jax.jit(lambda st, w, p: nnx.merge(gd, st)(w, p))
    f_naive = jax.jit(lambda st, w, p: naive(nnx.merge(gd, st), w, p))
    valid = ((np.arange(L)[:, None] + np.arange(K)[None]) < L)[None, :, :, None]
    diff = np.abs(np.asarray(f_fact(st, words, prompts)) - np.asarray(f_naive(st, words, prompts)))
    t_f = timed(lambda: f_fact(st, words, prompts))
    t_n = timed(lambda: f_naive(st, words, prompts))
    S = B * L * K
    word_mlps = 2 * 2 * (B * L * D * 4 * D * 2)          # project_start and project_end
    gf_naive = (word_mlps + 2 * S * (2 * D * 4 * D + 4 * D * D + D * C)) / 1e9
    gf_fact = (word_mlps + 2 * (B * L * 2 * D * 4 * D + S * 4 * D * C + B * C * D * 4 * D)) / 1e9
    print(f"B={B} L={L} K={K} C={C} D={D}, fp32, {jax.default_backend()}")
    print(f"naive markerV0      : {t_n * 1e3:8.2f} ms  ({gf_naive:.2f} GFLOP)")
    print(f"factorised (ours)   : {t_f * 1e3:8.2f} ms  ({gf_fact:.2f} GFLOP)")
    err = diff[np.broadcast_to(valid, diff.shape)].max()
    print(f"speed-up {t_n / t_f:.1f}x; max|diff| on valid spans {err:.2e}")


if __name__ == "__main__":
    main()

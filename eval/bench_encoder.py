"""Encoder forward throughput: gliner_jax (Flax NNX, jit) vs transformers (PyTorch), same weights.

A deberta-v3-small-sized random encoder (6 layers, 768 wide, 12 heads, FFN 3072, 256 buckets)
is saved once, loaded by both, and run on the same padded batches in one process:

    python -m eval.bench_encoder [--batch 8] [--length 64] [--repeats 5]

Prints tokens/s for both and the ratio. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx
from transformers import DebertaV2Config, DebertaV2Model

from gliner_jax.encoders import load_encoder

SMALL = dict(vocab_size=128100, hidden_size=768, num_hidden_layers=6, num_attention_heads=12,
             intermediate_size=3072, relative_attention=True, position_buckets=256,
             max_relative_positions=-1, pos_att_type="p2c|c2p", norm_rel_ebd="layer_norm",
             share_att_key=True, position_biased_input=False, type_vocab_size=0,
             layer_norm_eps=1e-7)


def timed(fn, repeats):
    fn()  # warm-up / compile
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as d:
        torch.manual_seed(0)
        ref = DebertaV2Model(DebertaV2Config(**SMALL)).eval()
        ref.save_pretrained(d, safe_serialization=True)
        enc = load_encoder(d)
    graphdef, state = nnx.split(enc)

    @jax.jit
    def fwd(state, ids, mask):
        return nnx.merge(graphdef, state)(ids, mask)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"jax {jax.__version__} ({jax.default_backend()}), torch {torch.__version__}")
    print(f"deberta-v3-small-sized encoder, fp32, length {args.length}")
    print(f"{'batch':>5} {'jax tok/s':>10} {'torch tok/s':>12} {'ratio':>6} {'max|diff|':>10}")
    rng = np.random.default_rng(0)
    for b in args.batch:
        ids = rng.integers(5, 128000, size=(b, args.length))
        mask = np.ones_like(ids)
        mask[b // 2:, args.length * 3 // 4:] = 0  # some padding, as real batches have
        ids_j, mask_j = jnp.asarray(ids), jnp.asarray(mask)
        tj = timed(lambda i=ids_j, m=mask_j: fwd(state, i, m).block_until_ready(), args.repeats)

        ids_t, mask_t = torch.tensor(ids), torch.tensor(mask)

        def run_torch(i=ids_t, m=mask_t):
            with torch.inference_mode():
                return ref(input_ids=i, attention_mask=m).last_hidden_state

        tt = timed(run_torch, args.repeats)
        diff = np.abs(np.asarray(fwd(state, ids_j, mask_j)) - run_torch().numpy())[
            mask.astype(bool)].max()
        n = b * args.length
        print(f"{b:>5} {n / tj:>10.0f} {n / tt:>12.0f} {tt / tj:>6.2f} {diff:>10.2e}")


if __name__ == "__main__":
    main()

"""The pieces of eval/bench_speed.py that its reported figures rest on (no timing here): the
encoder FLOP count behind "fraction of the matmul peak" agrees with XLA's own count, and the
entity comparison behind "same entities" tells agreement from disagreement."""

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from eval.bench_speed import compare_entities, encoder_flops
from gliner_jax.config import EncoderConfig
from gliner_jax.encoders import build_encoder


@pytest.mark.parametrize("t, buckets", [(24, 256), (96, 16)])  # all 2T-1 rows / log buckets
def test_encoder_flops_match_xla(t, buckets):
    cfg = EncoderConfig(vocab_size=50, hidden_size=128, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=512,
                        position_buckets=buckets, max_relative_positions=128)
    enc = build_encoder(cfg, rngs=nnx.Rngs(0))
    enc.eval()
    gd, st = nnx.split(enc)
    tables = jax.jit(lambda st: nnx.merge(gd, st).encoder.relative_tables())(st)
    fwd = jax.jit(lambda st, tb, ids, mask: nnx.merge(gd, st)(ids, mask, rel_tables=tb))
    ids = jnp.ones((3, t), jnp.int32)
    xla = fwd.lower(st, tables, ids, ids).compile().cost_analysis()
    xla = xla[0] if isinstance(xla, list) else xla  # older jax: a list of one dict
    ours = encoder_flops(SimpleNamespace(input_ids=np.asarray(ids)), cfg)
    # ours counts the matmuls only; XLA adds softmax, GELU, LayerNorm, gathers (a few %)
    assert 1.0 <= xla["flops"] / ours < 1.12, (xla["flops"], ours)


def test_compare_entities():
    e = lambda s, end, lab, score: {"start": s, "end": end, "label": lab, "score": score}  # noqa: E731
    a = [[e(0, 5, "person", 0.9)], [e(1, 2, "city", 0.6), e(4, 8, "person", 0.8)]]
    same = compare_entities(a, [[e(0, 5, "person", 0.9 + 1e-7)],
                                [e(1, 2, "city", 0.6), e(4, 8, "person", 0.8)]], 0.5)
    assert same["same"] == 2 and same["texts"] == 2
    assert same["max_score_diff"] == pytest.approx(1e-7) and same["max_flip_margin"] == 0
    diff = compare_entities(a, [[e(0, 5, "person", 0.9)], [e(4, 8, "person", 0.8)]], 0.5)
    assert diff["same"] == 1
    assert diff["max_flip_margin"] == pytest.approx(0.1)  # the missing entity's distance
    label = compare_entities(a, [[e(0, 5, "city", 0.9)], a[1]], 0.5)
    assert label["same"] == 1

"""eval/device_check.py and eval/roofline.py: the dry run end to end on CPU (the code paths the
accelerator run takes, tiny shapes), and the analytic counts behind MFU and the roofline table
against the models themselves (parameters) and XLA's cost analysis (FLOPs)."""

import json

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from eval import device_check, roofline

SHAPE = dict(layers=2, hidden=64, heads=4, ffn=128, d=48, vocab=0)  # with the 64 -> 48 projection


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from gliner_jax import GLiNER

    saved = device_check.build(SHAPE, tmp_path_factory.mktemp("dc"), "tiny")
    return GLiNER.from_pretrained(saved)


def test_param_count_matches_the_model(tiny):
    n = sum(x.size for x in jax.tree.leaves(nnx.state(tiny.model, nnx.Param)))
    rows = tiny.config.encoder.vocab_size
    assert sum(roofline.param_count({**SHAPE, "vocab": rows}).values()) == n


@pytest.mark.parametrize("b, t, w, c", [(2, 48, 16, 8), (1, 96, 40, 16)])
def test_forward_flops_match_xla(tiny, b, t, w, c):
    gd, st = nnx.split(tiny.model)

    def fwd(st, ids, mask, words_mask, lengths):
        return nnx.merge(gd, st)(ids, mask, words_mask, lengths, num_words=w, num_classes=c)[0]
    ids = jnp.ones((b, t), jnp.int32)
    xla = jax.jit(fwd).lower(st, ids, ids, ids, jnp.full((b,), w)).compile().cost_analysis()
    xla = xla[0] if isinstance(xla, list) else xla
    ours = roofline.forward_flops(SHAPE, b, t, w, c, tables=True)  # computed in this call
    # ours counts the matmuls; XLA adds softmax, GELU, LayerNorm, the LSTM's gates, the span
    # kernel's adds and ReLUs (more, relatively, at these tiny widths)
    assert 1.0 <= xla["flops"] / ours < 1.25, (xla["flops"], ours)


def test_roofline_table(tmp_path):
    assert device_check.main(["--roofline", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "roofline.json").read_text())
    assert len(rows) == 2 * (len(roofline.WORKLOADS["inference"]) +
                             len(roofline.WORKLOADS["training"]))
    by = {(r["shape"], r["kind"], r["B"], r["T"]): r for r in rows}
    # batch 1 inference is bound by reading the weights; batch 128 by the matmuls
    assert by[("gliner_small", "inference", 1, 64)]["bound_at_bf16_measured"] == "memory"
    assert by[("gliner_large", "inference", 128, 64)]["bound_at_bf16_measured"] == "compute"
    small, large = (by[(s, "training", 32, 256)]["flops"] for s in ("gliner_small",
                                                                     "gliner_large"))
    assert 4 < large / small < 8  # 4x the layers, 1.33x the width


def test_dry_run_on_cpu(tmp_path):
    # no time budget here: a loaded CI machine must not turn the checks below into skips
    assert device_check.main(["--out", str(tmp_path), "--dry-run", "--budget-s", "1e6"]) == 0
    res = json.loads((tmp_path / "device_check.json").read_text())
    assert res["dry_run"] and res["environment"]["backend"] == "cpu"
    assert res["matmul"]["bf16_tflops"] > 0
    for name in roofline.DRY_SHAPES:
        part = res[name]
        for dt in ("fp32", "bf16"):
            rows = part["inference"][dt]
            assert sorted(rows) == ["1", "4"], rows
            for r in rows.values():
                assert r["texts_per_s"] > 0 and r["device_texts_per_s"] > 0
                # one length bucket: the first call of a batch size compiles, no other does
                assert 1 <= r["compiles"] <= 3, r
        tr = part["train"]
        assert tr["step_s"] > 0 and tr["mfu"] is None  # no bf16 peak known for a CPU
        assert 1.0 <= tr["xla_flops_over_ours"] < 2.0, tr
        ref = part["reference"]
        if "skipped" in ref:  # only where gliner is not installed
            pytest.importorskip("gliner")
            raise AssertionError(ref)
        assert ref["batches"]["4"]["texts_per_s"] > 0 and ref["batches"]["4"]["ratio_fp32"] > 0
        agree = ref["batches"]["4"]["entities_fp32"]
        assert agree["ours"] > 0 and agree["reference"] > 0, agree  # not two empty lists
        assert agree["same"] == agree["texts"] and agree["max_score_diff"] < 1e-5, agree
    assert res["compiles_total"]["compiles"] > 0

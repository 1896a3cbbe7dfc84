"""Analytic roofline of GLiNER steps: FLOPs and HBM bytes per step, per model shape.

    python -m eval.device_check --roofline [--out DIR]     # prints the BENCHMARKS.md table

FLOPs are 2 x multiply-adds of the matmuls a padded batch runs: the encoder as
`eval.bench_speed.encoder_flops` counts it (checked against XLA's cost analysis in
tests/test_bench_speed.py) plus the GLiNER head below (the whole forward is checked against XLA
in tests/test_device_check.py). A training step is 3 forwards (forward, and a backward of two
matmuls per forward matmul), the usual MFU convention; it also projects the relative-position
table every step, which inference does once per model.

Bytes are a lower-bound traffic model, not a measurement: parameters are stored in float32 and
read once per pass, activations are bf16; per encoder layer a fused implementation still
writes and reads q, k, v, the attention output, the FFN intermediate, the residual stream
(18 B x T x E elements in all) and the T x T score and T x R relative-score matrices (written,
softmaxed, read: 4 passes each; XLA does not fuse attention into one kernel). Training adds
the backward (2x the forward's activation traffic), the gradients and AdamW over every
parameter, the 128k-row word-embedding table included (XLA forms its gradient densely):
40 bytes a parameter.
"""

from __future__ import annotations

from types import SimpleNamespace

from gliner_jax.config import EncoderConfig

# (DeBERTa-v3 encoder, GLiNER head) of the released v2.1 models (GLINER_SPEC 1.2)
SHAPES = {
    "gliner_small": dict(layers=6, hidden=768, heads=12, ffn=3072, d=768, vocab=128004),
    "gliner_large": dict(layers=24, hidden=1024, heads=16, ffn=4096, d=768, vocab=128004),
}
# tiny stand-ins for --dry-run: the same code paths, seconds on a CPU
DRY_SHAPES = {
    "gliner_small": dict(layers=1, hidden=32, heads=2, ffn=64, d=32, vocab=0),
    "gliner_large": dict(layers=2, hidden=64, heads=4, ffn=128, d=48, vocab=0),
}
K = 12  # max_width of the released models

# NVIDIA H200 SXM: bf16 dense tensor-core peak (spec sheet), what a large bf16 matmul reaches
# in practice (~80%), HBM3e bandwidth
H200 = dict(name="H200", bf16_spec=989e12, bf16_measured=790e12, hbm=4.8e12)
# bf16 dense peaks by device_kind substring, for MFU (first match wins)
PEAKS = (("H200", 989e12), ("H100", 989e12), ("H800", 989e12), ("A100", 312e12),
         ("L4", 121e12), ("TPU v6", 918e12), ("TPU v5p", 459e12), ("TPU v5", 197e12),
         ("TPU v4", 275e12))

# (name, rows, tokens T, words W, types C): padded bucket sizes of typical batches
WORKLOADS = {
    "inference": [("sentences, batch 1", 1, 64, 32, 16), ("sentences, batch 32", 32, 64, 32, 16),
                  ("sentences, batch 128", 128, 64, 32, 16),
                  ("documents (384 words), batch 8", 8, 512, 384, 16)],
    "training": [("batch 8 (reference recipe)", 8, 256, 128, 32), ("batch 32", 32, 256, 128, 32)],
}


def bf16_peak(device_kind: str) -> float | None:
    return next((p for k, p in PEAKS if k.lower() in device_kind.lower()), None)


def encoder_config(shape: dict) -> EncoderConfig:
    return EncoderConfig(vocab_size=shape["vocab"] or 400, hidden_size=shape["hidden"],
                         num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
                         intermediate_size=shape["ffn"])


def relative_rows(t: int, cfg: EncoderConfig) -> int:
    from gliner_jax.encoders.deberta import relative_index

    _, lo, hi = relative_index(t, cfg.position_buckets, cfg.max_relative, cfg.att_span)
    return hi - lo + 1


def head_flops(b: int, t: int, w: int, c: int, e: int, d: int, k: int = K) -> float:
    """The GLiNER head on a padded batch: the 1024->768 projection (large), the BiLSTM (D/2 a
    direction, 4 gates), markerV0's start/end MLPs (D->4D->D), the two per-word halves of
    out_project's first layer, the prompt MLP and the folding of out_project's last layer into
    the types (per type), and the span x type products (4D per pair; span_rep.py)."""
    proj = 2.0 * b * t * e * d if e != d else 0.0
    per_word = 12 * d * d + 32 * d * d + 16 * d * d
    per_type = 24 * d * d
    return proj + b * (w * per_word + c * per_type + 8.0 * d * w * k * c)


def forward_flops(shape: dict, b: int, t: int, w: int, c: int, k: int = K,
                  tables: bool = False) -> float:
    """`tables`: also project the R reachable rows of the relative-position table through
    each layer's query and key projections (batch-independent: inference does it once per
    model, `GLiNER._tables`; a training step does it every step)."""
    from eval.bench_speed import encoder_flops

    cfg = encoder_config(shape)
    enc = encoder_flops(SimpleNamespace(input_ids=SimpleNamespace(shape=(b, t))), cfg)
    rel = 4.0 * cfg.num_hidden_layers * relative_rows(t, cfg) * cfg.hidden_size ** 2 \
        if tables else 0.0
    return enc + rel + head_flops(b, t, w, c, cfg.hidden_size, shape["d"], k)


def param_count(shape: dict) -> dict:
    """Parameters: the word-embedding table, the rest of the encoder, the head."""
    e, f, n, d = shape["hidden"], shape["ffn"], shape["layers"], shape["d"]
    layer = 4 * (e * e + e) + 2 * e * f + e + f + 4 * e
    encoder = n * layer + 2 * 256 * e + 4 * e  # + relative table (2 x buckets rows) and norms
    mlp = 8 * d * d + 5 * d  # D -> 4D -> D with biases
    head = (e * d + d if e != d else 0) + 2 * 4 * (d // 2) * (d + d // 2 + 2) \
        + 3 * mlp + 4 * d * d + mlp  # start, end, out (its input is 2D), prompt
    return {"embedding": shape["vocab"] * e, "encoder": encoder, "head": head}


def forward_bytes(shape: dict, b: int, t: int, w: int, c: int, k: int = K) -> float:
    cfg = encoder_config(shape)
    e, f, n, d, heads = shape["hidden"], shape["ffn"], shape["layers"], shape["d"], shape["heads"]
    r = relative_rows(t, cfg)
    s = 2  # bf16 activations
    per_layer = (18 * b * t * e + 2 * b * t * f + 4 * b * heads * t * t
                 + 4 * b * heads * t * r) * s
    p = param_count(shape)
    weights = 4 * (p["encoder"] + p["head"]) + 4 * b * t * e  # + the gathered embedding rows
    head = (4 * b * t * d + 8 * b * w * d + 2 * b * w * k * 4 * d) * s + 4 * b * w * k * c
    return weights + n * per_layer + head


def step(shape: dict, kind: str, b: int, t: int, w: int, c: int, chip: dict = H200) -> dict:
    fl = forward_flops(shape, b, t, w, c, tables=kind == "training")
    by = forward_bytes(shape, b, t, w, c)
    if kind == "training":
        p = param_count(shape)
        weights = 4 * (p["encoder"] + p["head"]) + 4 * b * t * shape["hidden"]
        fl, by = 3 * fl, 3 * (by - weights) + 40 * sum(p.values())
    out = {"flops": fl, "bytes": by, "intensity": fl / by}
    for peak_name in ("bf16_spec", "bf16_measured"):
        t_min = max(fl / chip[peak_name], by / chip["hbm"])
        out[f"seconds_at_{peak_name}"] = t_min
        out[f"bound_at_{peak_name}"] = "compute" if fl / chip[peak_name] >= by / chip["hbm"] \
            else "memory"
    out["rows_per_s_at_bf16_measured"] = b / out["seconds_at_bf16_measured"]
    return out


def table(chip: dict = H200) -> tuple[list[dict], str]:
    """(rows, markdown) for every shape x workload."""
    rows = []
    for name, shape in SHAPES.items():
        for kind, loads in WORKLOADS.items():
            for label, b, t, w, c in loads:
                rows.append({"shape": name, "kind": kind, "workload": label, "B": b, "T": t,
                             "W": w, "C": c, **step(shape, kind, b, t, w, c, chip)})
    ridge_spec, ridge_meas = chip["bf16_spec"] / chip["hbm"], chip["bf16_measured"] / chip["hbm"]
    lines = [
        f"{chip['name']}: bf16 dense {chip['bf16_spec'] / 1e12:.0f} TFLOP/s (spec), "
        f"~{chip['bf16_measured'] / 1e12:.0f} TFLOP/s (measured matmul), HBM "
        f"{chip['hbm'] / 1e12:.1f} TB/s; ridge point {ridge_spec:.0f} / {ridge_meas:.0f} "
        "FLOP/byte.", "",
        "| shape | step | workload (B, T tokens, W words, C types) | GFLOP | MB moved | "
        "FLOP/byte | bound | lower bound ms (spec / measured peak) | rows/s at most |",
        "|---" * 9 + "|"]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['kind']} | {r['workload']} ({r['B']}, {r['T']}, {r['W']}, "
            f"{r['C']}) | {r['flops'] / 1e9:,.1f} | {r['bytes'] / 1e6:,.0f} | "
            f"{r['intensity']:.0f} | {r['bound_at_bf16_measured']} | "
            f"{r['seconds_at_bf16_spec'] * 1e3:.3f} / {r['seconds_at_bf16_measured'] * 1e3:.3f} "
            f"| {r['rows_per_s_at_bf16_measured']:,.0f} |")
    params = {n: param_count(s) for n, s in SHAPES.items()}
    lines += ["", "Parameters (our count): " + "; ".join(
        f"{n} {sum(p.values()) / 1e6:.0f}M ({p['embedding'] / 1e6:.0f}M word embeddings, "
        f"{p['encoder'] / 1e6:.0f}M encoder, {p['head'] / 1e6:.1f}M head)"
        for n, p in params.items())]
    return rows, "\n".join(lines)


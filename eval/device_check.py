"""One prepared accelerator check: speed, MFU, memory and compile counts, as JSON.

    eval/device_check.sh OUT_DIR                      # a bare GPU machine: installs, then runs
    python -m eval.device_check --out DIR [--dry-run] [--budget-s 360]
    python -m eval.device_check --roofline [--out DIR]   # the analytic table (no device needed)

It records in DIR/device_check.json (rewritten after every section, so a run cut short keeps
what it measured):
- devices and versions, and a measured bf16 matmul peak;
- `inference` texts/s at batch 1, 8, 32, 128, in fp32 and bf16 compute, for random models with
  gliner_small's and gliner_large's shapes (eval/roofline.py): end to end (tokenization and
  decoding included) and the device part alone (the jitted forward on encoded batches);
- the training step of both shapes in bf16 compute (fp32 parameters and AdamW, the 128k-row
  embedding table): seconds, and MFU = 3 x forward FLOPs (the count eval.bench_speed checks
  against XLA) / step time / the chip's bf16 peak; XLA's own count of the step beside it;
- the PyTorch reference (gliner 0.2.29, same weights, same texts) on the same device when torch
  and gliner import, as a ratio, with the entities compared in fp32 (our side at "highest"
  matmul precision: JAX's default on GPUs is TF32, torch's is full fp32);
- compiles (count and seconds, from jax.monitoring) and peak device memory after each part.

--dry-run runs the same code paths with tiny shapes, few texts and batches 1 and 4, on
whatever backend there is (CI runs it on CPU). Synthetic texts: 28 words each from a fixed
vocabulary, 10 labels, all of one length so that each (batch, dtype) compiles once.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# JAX takes 75% of a GPU's memory up front; leave the reference's process room beside it
os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.6")

REPO = Path(__file__).resolve().parents[1]
LABELS = ["person", "organization", "location", "date", "event", "product", "award",
          "language", "country", "company"]


class Budget:
    def __init__(self, seconds: float):
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


class Compiles:
    """Backend compilations seen through jax.monitoring: count and seconds."""

    def __init__(self):
        import jax

        self.n, self.seconds = 0, 0.0
        jax.monitoring.register_event_duration_secs_listener(self._on)

    def _on(self, event: str, duration: float, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            self.n, self.seconds = self.n + 1, self.seconds + duration

    def since(self, mark: tuple) -> dict:
        return {"compiles": self.n - mark[0], "compile_s": round(self.seconds - mark[1], 2)}

    def mark(self) -> tuple:
        return self.n, self.seconds


def peak_memory() -> int | None:
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def texts(n: int, words: int = 28, seed: int = 0) -> list[str]:
    import random

    from tests.reference_models import WORDS

    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)) for _ in range(n)]


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def matmul_peak(n: int, dtype) -> float:
    """FLOP/s of one n^3 matmul in `dtype` (best of 5, after a warm-up)."""
    import jax

    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    mm = jax.jit(lambda x: x @ x)
    mm(a).block_until_ready()
    return 2 * n ** 3 / best_time(lambda: mm(a).block_until_ready(), 5)


# ------------------------------------------------------------------------------------------------
# models


def build(shape: dict, root: Path, name: str, seed: int = 0):
    """A random GLiNER with `shape`, saved in the reference layout to root/name (gliner_jax and
    gliner load it); returns the directory and the tokenizer's folder."""
    from gliner_jax.convert import save_gliner
    from tests.reference_models import build_deberta_tokenizer
    from train.build import build_model
    from train.config import DataConfig, ModelConfig

    enc_dir = root / f"{name}_encoder"
    build_deberta_tokenizer(enc_dir)
    (enc_dir / "config.json").write_text(json.dumps({"model_type": "deberta-v2"}))
    mcfg = ModelConfig(init="random", path=str(enc_dir), hidden_size=shape["d"], max_width=12,
                       max_len=384, dropout=0.4,
                       encoder=dict(hidden_size=shape["hidden"], num_hidden_layers=shape["layers"],
                                    num_attention_heads=shape["heads"],
                                    intermediate_size=shape["ffn"], position_buckets=256,
                                    max_relative_positions=-1, relative_attention=True,
                                    norm_rel_ebd="layer_norm", share_att_key=True,
                                    pos_att_type=["p2c", "c2p"], position_biased_input=False))
    model, tokenizer, _ = build_model(mcfg, DataConfig(max_types=25), seed)
    model.eval()
    return save_gliner(model, tokenizer, root / name)


def big_vocab_model(saved: Path, rows: int, prec):
    """The saved model with its word-embedding table grown to `rows` (the real tokenizer's
    128004): AdamW then updates as many parameters as in real training."""
    import numpy as np

    from gliner_jax.convert import load_gliner, model_from_state
    from gliner_jax.weights import export_state

    model, tok = load_gliner(saved)
    sd = export_state(model)
    key = next(k for k in sd if k.endswith("embeddings.word_embeddings.weight"))
    if rows > sd[key].shape[0]:
        extra = np.random.default_rng(0).normal(0, 0.02, (rows - sd[key].shape[0],
                                                          sd[key].shape[1]))
        sd[key] = np.concatenate([sd[key], extra.astype(sd[key].dtype)])
    cfg = model.config
    cfg = dataclasses.replace(cfg, vocab_size=sd[key].shape[0], encoder=dataclasses.replace(
        cfg.encoder, vocab_size=sd[key].shape[0]))
    return model_from_state(cfg, sd, prec), tok


# ------------------------------------------------------------------------------------------------
# sections


def bench_inference(saved: Path, batches: list[int], dtype_name: str, n_texts: int,
                    repeats: int, threshold: float, compiles: Compiles, budget: Budget,
                    accelerator: bool) -> dict:
    import jax.numpy as jnp

    from gliner_jax import GLiNER

    jm = GLiNER.from_pretrained(saved, dtype=None if dtype_name == "fp32" else jnp.bfloat16)
    if accelerator:  # the chunking is a CPU cache optimisation: whole batches on a device
        jm.chunk_tokens = 1 << 20
    rows = {}
    for bs in batches:
        if budget.left() < 0:
            rows[bs] = {"skipped": "time budget"}
            continue
        n = max(bs, n_texts // bs * bs)
        work = texts(n)
        mark = compiles.mark()
        jm.inference(work[:bs], LABELS, batch_size=bs, threshold=threshold)  # compile
        t = best_time(lambda w=work, b=bs: jm.inference(w, LABELS, batch_size=b,
                                                       threshold=threshold), repeats)
        enc = jm.processor.encode_texts(work[:bs], LABELS, pad=True)
        dev = best_time(lambda e=enc: jm.span_probs(e), repeats)
        rows[bs] = {"texts": n, "seconds": t, "texts_per_s": n / t,
                    "device_texts_per_s": bs / dev, "tokens": int(enc.input_ids.shape[1]),
                    "peak_memory": peak_memory(), **compiles.since(mark)}
        print(f"    {dtype_name} batch {bs:>3}: {n / t:9.1f} texts/s end to end, "
              f"{bs / dev:9.1f} on the device alone", flush=True)
    return rows


def bench_train(saved: Path, shape: dict, batch: int, steps: int, peak: float | None,
                compiles: Compiles) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from eval.roofline import forward_flops
    from gliner_jax.layers import Precision
    from gliner_jax.processing import Processor
    from gliner_jax.sharding import make_mesh
    from train.config import DataConfig, LossConfig, OptimConfig, TrainConfig
    from train.data import Batcher, sample_types
    from train.train import device_batch, init_state, make_trainer

    model, tok = big_vocab_model(saved, shape["vocab"], Precision(jnp.bfloat16))
    cfg = model.config
    processor = Processor.from_config(tok, cfg.class_token_index, cfg)
    words = texts(batch, words=100, seed=2)
    exs = [{"tokenized_text": t.split(), "ner": [[i, i + 1, LABELS[i % len(LABELS)]]
                                                 for i in range(0, 90, 9)]} for t in words]
    types = sample_types(exs, np.random.default_rng(0), max_types=25, max_neg_type_ratio=1)
    tcfg = TrainConfig(data=DataConfig(batch_size=batch, max_types=25),
                       loss=LossConfig(alpha=0.75), optim=OptimConfig(max_grad_norm=10.0),
                       # CPU (the dry run in CI): compiles about twice as fast
                       xla_options={"xla_backend_optimization_level": 0}
                       if jax.default_backend() == "cpu" else {})
    mark = compiles.mark()
    tr, params = make_trainer(model, tcfg, make_mesh((1, 1, 1), jax.devices()[:1]))
    arrays, _ = Batcher(processor, tcfg.data, 1)(exs, types)
    batch_arrays = device_batch(arrays, tr.batch_sh)
    state = {"s": init_state(tr, params)}
    xla = tr.step_fn.lower(state["s"], tr.rest, batch_arrays).cost_analysis()
    xla = xla[0] if isinstance(xla, list) else xla

    def one():
        state["s"], m = tr.step_fn(state["s"], tr.rest, batch_arrays)
        jax.block_until_ready(m)
        return m
    one()
    one()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        m = one()
        times.append(time.perf_counter() - t)
    sec = statistics.median(times)
    _, b, t, = arrays["input_ids"].shape
    w, c = arrays["labels"].shape[2], arrays["labels"].shape[4]
    fl = 3 * forward_flops(shape, b, t, w, c, tables=True)
    return {"batch": batch, "T": t, "W": w, "C": c, "step_s": sec, "sequences_per_s": b / sec,
            "flops": fl, "xla_flops_over_ours": (xla or {}).get("flops", 0) / fl,
            "achieved_tflops": fl / sec / 1e12, "mfu": fl / sec / peak if peak else None,
            "loss": float(m["loss"]), "peak_memory": peak_memory(), **compiles.since(mark)}


# ------------------------------------------------------------------------------------------------


def environment() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import jax

    def v(p):
        try:
            return version(p)
        except PackageNotFoundError:
            return None
    d = jax.devices()
    return {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "backend": jax.default_backend(), "devices": [str(x) for x in d],
            "device_kind": d[0].device_kind, "device_count": len(d),
            "memory_limit": (d[0].memory_stats() or {}).get("bytes_limit"),
            "host": f"{platform.machine()}, {os.cpu_count()} cores",
            "versions": {p: v(p) for p in ("jax", "jaxlib", "jax-cuda12-plugin", "flax", "optax",
                                           "orbax-checkpoint", "torch", "gliner",
                                           "transformers")},
            "python": platform.python_version()}


def run_check(out: Path, dry: bool, budget_s: float) -> dict:
    import jax.numpy as jnp

    from eval import device_reference, roofline
    from eval.bench_speed import pick_threshold
    from gliner_jax import GLiNER

    budget = Budget(budget_s)
    compiles = Compiles()
    res = {"command": "python -m eval.device_check " + " ".join(sys.argv[1:]), "dry_run": dry,
           "environment": environment()}
    path = out / "device_check.json"

    def save():
        path.write_text(json.dumps(res, indent=2, default=str))
    save()
    env = res["environment"]
    accelerator = env["backend"] != "cpu"
    print(f"{env['date']} {env['backend']} {env['device_kind']} x{env['device_count']}; "
          + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v), flush=True)
    peak = roofline.bf16_peak(env["device_kind"]) if accelerator else None
    n = 8192 if accelerator and not dry else 256
    res["matmul"] = {"n": n, "bf16_tflops": matmul_peak(n, jnp.bfloat16) / 1e12,
                     "fp32_tflops": matmul_peak(n, jnp.float32) / 1e12,
                     "bf16_spec_tflops": peak / 1e12 if peak else None}
    print(f"matmul {n}^3: bf16 {res['matmul']['bf16_tflops']:.1f} TFLOP/s, fp32 "
          f"{res['matmul']['fp32_tflops']:.1f}", flush=True)
    save()
    shapes = roofline.DRY_SHAPES if dry else roofline.SHAPES
    batches = [1, 4] if dry else [1, 8, 32, 128]
    n_texts, repeats = (8, 1) if dry else (256, 3)
    train_batch, train_steps = (4, 2) if dry else (32, 5)
    device = "cuda" if env["backend"] == "gpu" else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        saved = {name: build(shape, Path(tmp), name) for name, shape in shapes.items()}
        # the training steps first (the MFU target), then inference, then the reference: what
        # the budget cuts is the least needed
        for name, shape in shapes.items():
            part = res.setdefault(name, {"shape": shape})
            if budget.left() < 0:
                part["train"] = {"skipped": "time budget"}
                continue
            part["train"] = tr = bench_train(saved[name], shape, train_batch, train_steps, peak,
                                             compiles)
            print(f"{name} train bf16 batch {tr['batch']} (T {tr['T']}, W {tr['W']}, C "
                  f"{tr['C']}): {tr['step_s'] * 1e3:.1f} ms/step, {tr['achieved_tflops']:.2f} "
                  "TFLOP/s" + (f", MFU {tr['mfu']:.1%}" if tr["mfu"] else "")
                  + f"; XLA counts {tr['xla_flops_over_ours']:.2f}x our FLOPs", flush=True)
            save()
        thr = {}
        for name in shapes:
            print(f"{name} inference:", flush=True)
            part = res[name]
            # ~1 candidate span per 25 words of the timed texts (their first 32), as a trained
            # model (eval.bench_speed)
            part["threshold"] = thr[name] = pick_threshold(
                GLiNER.from_pretrained(saved[name]), texts(32), LABELS)
            part["inference"] = {}
            for dt in ("fp32", "bf16"):
                part["inference"][dt] = bench_inference(saved[name], batches, dt, n_texts,
                                                        repeats, thr[name], compiles, budget,
                                                        accelerator)
                save()
        for name in shapes:
            print(f"{name} reference:", flush=True)
            res[name]["reference"] = device_reference.bench_reference(
                saved[name], res[name]["inference"], batches, n_texts, repeats, thr[name],
                budget, device)
            save()
    res["compiles_total"] = {"compiles": compiles.n, "compile_s": round(compiles.seconds, 1)}
    res["peak_memory"] = peak_memory()
    res["seconds"] = round(budget_s - budget.left(), 1)
    save()
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.device_check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="folder for device_check.json (roofline.json)")
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes, any backend")
    ap.add_argument("--roofline", action="store_true",
                    help="print the analytic roofline table (no device work)")
    ap.add_argument("--budget-s", type=float, default=360.0,
                    help="skip what is left of the timed parts past this many seconds")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    if args.roofline:
        from eval import roofline

        rows, md = roofline.table()
        print(md)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "roofline.json").write_text(json.dumps(rows, indent=2))
        return 0
    if not args.out:
        ap.error("--out DIR is needed (or --roofline)")
    args.out.mkdir(parents=True, exist_ok=True)
    res = run_check(args.out, args.dry_run, args.budget_s)
    print(f"wrote {args.out / 'device_check.json'} in {res['seconds']:.0f} s; "
          f"{res['compiles_total']['compiles']} compiles", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

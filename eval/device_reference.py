"""The PyTorch reference (gliner 0.2.29) beside eval/device_check.py: same weights, same texts,
same device, in its own process (torch and JAX in one process fight over the device memory and
the host threads).

    python -m eval.device_reference MODEL_DIR DEVICE     # the worker: JSON requests on stdin
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def ours_fp32_exact(saved: Path, work: list[str], threshold: float, bs: int) -> list:
    import jax

    from eval.device_check import LABELS
    from gliner_jax import GLiNER

    jm = GLiNER.from_pretrained(saved)
    jm.chunk_tokens = 1 << 20
    with jax.default_matmul_precision("highest"):
        return jm.inference(work, LABELS, batch_size=bs, threshold=threshold)


class Reference:
    """gliner 0.2.29 in its own process on `device`, driven over a pipe."""

    def __init__(self, model: Path, device: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "eval.device_reference", str(model), device], cwd=REPO,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONPATH=str(REPO)))
        self.hello = self._read()  # torch version and device, once the model is loaded

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the reference worker died (its stderr is above)")
        return json.loads(line)

    def call(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def reference_worker(model: str, device: str) -> int:
    import torch
    from gliner import GLiNER

    from eval.device_check import best_time

    # full fp32: cuDNN (the LSTM) would use TF32 by default on Ampere and later
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    m = GLiNER.from_pretrained(model, local_files_only=True).to(device)
    m.eval()
    out, sys.stdout = sys.stdout, sys.stderr
    out.write(json.dumps({"torch": torch.__version__, "device": str(device)}) + "\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        def run(req=req):
            return m.inference(req["texts"], req["labels"], batch_size=req["batch_size"],
                               threshold=req["threshold"])
        res = run()  # warm-up
        t = best_time(run, req["repeats"])
        out.write(json.dumps({"seconds": t, "result": [
            [{k: e[k] for k in ("start", "end", "label", "score")} for e in r] for r in res]})
            + "\n")
        out.flush()
    return 0


def bench_reference(saved: Path, ours: dict, batches: list[int], n_texts: int, repeats: int,
                    threshold: float, budget, device: str) -> dict:
    """The reference's texts/s at each batch, the ratio to our fp32 and bf16, and its entities
    against ours (fp32, 'highest' precision) at the largest batch."""
    try:
        import gliner  # noqa: F401
        import torch
    except ImportError as e:
        return {"skipped": f"reference not installed ({e})"}
    if device == "cuda" and not torch.cuda.is_available():
        return {"skipped": "torch sees no CUDA device"}
    if budget.left() < 0:
        return {"skipped": "time budget"}
    from eval.bench_speed import compare_entities
    from eval.device_check import LABELS, texts

    ref = Reference(saved, device)
    try:
        out = {"worker": ref.hello, "batches": {}}
        for bs in batches:
            if budget.left() < 0:
                out["batches"][bs] = {"skipped": "time budget"}
                continue
            n = max(bs, n_texts // bs * bs)
            r = ref.call(texts=texts(n), labels=LABELS, batch_size=bs, threshold=threshold,
                         repeats=repeats)
            row = {"texts_per_s": n / r["seconds"]}
            for dt in ("fp32", "bf16"):
                mine = ours[dt].get(bs, {})
                if "texts_per_s" in mine:
                    row[f"ratio_{dt}"] = mine["texts_per_s"] / row["texts_per_s"]
            if bs == max(batches):
                found = ours_fp32_exact(saved, texts(n), threshold, bs)
                row["entities_fp32"] = dict(
                    compare_entities(found, r["result"], threshold), threshold=threshold,
                    ours=sum(map(len, found)), reference=sum(map(len, r["result"])))
            out["batches"][bs] = row
            print(f"    reference batch {bs:>3}: {row['texts_per_s']:9.1f} texts/s; ours/ref "
                  + ", ".join(f"{k} {v:.2f}x" for k, v in row.items() if k.startswith("ratio")),
                  flush=True)
    finally:
        ref.close()
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(reference_worker(sys.argv[1], sys.argv[2]))

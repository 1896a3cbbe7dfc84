"""Turn an exported training run into the shipped model: fp16 storage of the weight matrices
(1-D tensors, biases and LayerNorm, stay fp32: 0.1 MiB), plus the fp32 model's predictions on
fixed sentences so a test can prove the storage changes no entity and no score beyond the third
decimal. (bf16 storage was tried first: it moved scores by up to 3.4e-3 and flipped entities
near the threshold. All-fp16 moved the 2026-11-25 model's scores by up to 6.7e-4; with fp32
vectors, 2.0e-4.) Both gliner_jax and the PyTorch gliner package load mixed dtypes: each
tensor is cast to the model's parameter dtype.

    python -m train.release WORKDIR/model checkpoints/NAME
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SENTENCES = [
    "Marie Curie received the Nobel Prize in Physics in 1903 together with Pierre Curie.",
    "Barack Obama was born in Honolulu , Hawaii , and served as president of the United States .",
    "Apple released the iPhone at the Moscone Center in San Francisco in January 2007 .",
    "The European Central Bank raised interest rates while Christine Lagarde spoke in Frankfurt .",
    "Geoffrey Hinton worked on backpropagation and deep learning at the University of Toronto .",
    "Radiohead performed Paranoid Android at the Glastonbury Festival in 1997 .",
]
LABELS = ["person", "organization", "location", "award", "date", "country", "city",
          "university", "song", "band", "event", "product", "field", "researcher"]


def predictions(model_dir: Path) -> list[list[dict]]:
    from gliner_jax import GLiNER

    model = GLiNER.from_pretrained(model_dir)
    return model.inference(SENTENCES, LABELS, threshold=0.3)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.release", description=__doc__)
    ap.add_argument("src", type=Path, help="exported model directory (fp32)")
    ap.add_argument("dst", type=Path, help="checkpoints/NAME")
    args = ap.parse_args(argv)
    import numpy as np

    from gliner_jax.convert import convert
    from gliner_jax.weights import read_safetensors, write_safetensors

    want = predictions(args.src)
    convert(args.src, args.dst, dtype="float32")  # validates every key, writes the other files
    weights = read_safetensors(args.dst / "model.safetensors")
    write_safetensors(args.dst / "model.safetensors",
                      {k: v if v.ndim == 1 else v.astype(np.float16) for k, v in weights.items()})
    got = predictions(args.dst)
    (args.dst / "fp32_predictions.json").write_text(json.dumps(
        {"labels": LABELS, "threshold": 0.3, "sentences": SENTENCES, "entities": want},
        indent=1) + "\n")
    worst = max((abs(a["score"] - b["score"]) for ra, rb in zip(want, got, strict=True)
                 for a, b in zip(ra, rb, strict=False)), default=0.0)
    same = [[(e["start"], e["end"], e["label"]) for e in r] for r in want] == \
        [[(e["start"], e["end"], e["label"]) for e in r] for r in got]
    size = sum(p.stat().st_size for p in args.dst.iterdir()) / 2**20
    print(f"fp16 (fp32 vectors) release in {args.dst}: {size:.1f} MiB; same entities {same}; "
          f"max score change {worst:.2e}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

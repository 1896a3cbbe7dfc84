"""Does the model find dates? re3d's human-annotated temporal expressions, asked for as "date".

    python -m eval.date_probe --model checkpoints/gliner_jax-minilm-l6 \
        [--data ../shared/data/ner] [--label date] [--threshold 0.5]

No corpus here labels dates for training (issue 12), so the shipped model's data gets silver
ones (train/temporal.py). This probe scores the model on gold ones: the re3d test split with
every type but `Temporal` dropped and `Temporal` named `--label`. re3d's training split is in
the mixture under its own name, "temporal expression", and gets no silver spans. 46 spans in
200 sentences: a probe, not a benchmark.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from eval.ner_eval import EvalError, evaluate_dataset, load_dataset, load_model, pct
from gliner_jax import corpora


def probe_folder(re3d: Path, out: Path, label: str) -> Path:
    """A dataset folder holding re3d's test split with only its temporal spans, as `label`."""
    types = json.loads((re3d / "labels.json").read_text())
    if "Temporal" not in types:
        raise EvalError(f"{re3d}/labels.json has no Temporal type")
    folder = out / "re3d_dates"
    folder.mkdir(parents=True)
    (folder / "test.txt").symlink_to((re3d / "test.txt").resolve())
    (folder / "labels.json").write_text(
        json.dumps({t: (label if t == "Temporal" else None) for t in types}))
    return folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.date_probe", description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default="../shared/data/ner", help="the corpora (README there)")
    ap.add_argument("--label", default="date")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--output", default=None, help="write the result as JSON here")
    args = ap.parse_args(argv)
    re3d = Path(args.data) / "supervised" / "re3d"
    try:
        if not (re3d / "test.txt").is_file():
            raise EvalError(f"no re3d test split at {re3d}")
        with tempfile.TemporaryDirectory() as tmp:
            ds = load_dataset("re3d_dates", probe_folder(re3d, Path(tmp), args.label), "test")
            res = evaluate_dataset(load_model(args.model), ds, "test", threshold=args.threshold)
    except (EvalError, corpora.CorpusError) as e:
        print(f"{ap.prog}: error: {e}", file=sys.stderr)
        return 1
    s = res.scores
    print(f"{args.label!r} on re3d test temporal expressions ({s.micro.n_true} spans): "
          f"P {pct(s.precision)} R {pct(s.recall)} F1 {pct(res.f1)}")
    if args.output:
        Path(args.output).write_text(json.dumps({"model": args.model, "label": args.label,
                                                 "threshold": args.threshold,
                                                 **res.to_json()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""In-domain NER F1 on the supervised corpora's test splits (the GLiNER paper's Table 4).

    python -m eval.supervised --model checkpoints/M --data ../shared/data/ner/supervised \
        [--split test|dev] [--threshold 0.5] [--batch-size 12] [--limit N] [--output res.json]

Scored exactly as the reference evaluator (eval/ner_eval.py); datasets without the split (e.g.
train-only corpora) are skipped, and each skip is reported.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from eval.ner_eval import DatasetResult, average_f1, pct, run_cli


def format_table(results: Sequence[DatasetResult], model_name: str) -> str:
    """One row per dataset (P, R, F1 in percent) and the average F1."""
    name_w = max([len("Average"), len("Dataset")] + [len(r.name) for r in results])
    split = results[0].split if results else ""
    lines = [f"Supervised NER ({split} split), model {model_name}",
             f"{'Dataset':<{name_w}} | {'P':>5} | {'R':>5} | {'F1':>5}",
             f"{'-' * name_w}-+-------+-------+------"]
    for r in results:
        lines.append(f"{r.name:<{name_w}} | {pct(r.scores.precision):>5} | "
                     f"{pct(r.scores.recall):>5} | {pct(r.f1):>5}")
    lines.append(f"{'Average':<{name_w}} | {'':>5} | {'':>5} | {pct(average_f1(results)):>5}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, prog="python -m eval.supervised", description=__doc__.split("\n")[0],
                   default_data="../shared/data/ner/supervised", format_table=format_table)


if __name__ == "__main__":
    sys.exit(main())

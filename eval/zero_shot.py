"""Zero-shot NER F1 on the out-of-domain benchmark (the GLiNER paper's Table 1).

    python -m eval.zero_shot --model checkpoints/M --data ../shared/data/ner/zeroshot \
        [--split test|dev] [--threshold 0.5] [--batch-size 12] [--limit N] [--output res.json]

Every dataset folder under --data is scored with all of its labels as the prompt, exactly as the
reference evaluator (eval/ner_eval.py). The CrossNER dev splits (`--split dev`) are for choosing a
checkpoint or a threshold; the test splits are the benchmark.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from eval.ner_eval import DatasetResult, average_f1, pct, run_cli

# Table 1 column names for the folders of ../shared/data/ner/zeroshot (others keep their name)
PAPER_COLUMNS = {
    "crossner_ai": "AI", "crossner_literature": "Literature", "crossner_music": "Music",
    "crossner_politics": "Politics", "crossner_science": "Science", "mit_movie": "Movie",
    "mit_restaurant": "Restaurant",
}


def format_table(results: Sequence[DatasetResult], model_name: str) -> str:
    """One row per model, one column per dataset plus the average, F1 in percent."""
    header = ["Model"] + [PAPER_COLUMNS.get(r.name, r.name) for r in results] + ["Average"]
    row = [model_name] + [pct(r.f1) for r in results] + [pct(average_f1(results))]
    widths = [max(len(h), len(v)) for h, v in zip(header, row, strict=True)]

    def line(cells):
        return " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                          for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    split = results[0].split if results else ""
    return "\n".join([f"Zero-shot NER F1 ({split} split)", line(header),
                      "-+-".join("-" * w for w in widths), line(row)])


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, prog="python -m eval.zero_shot", description=__doc__.split("\n")[0],
                   default_data="../shared/data/ner/zeroshot", format_table=format_table)


if __name__ == "__main__":
    sys.exit(main())

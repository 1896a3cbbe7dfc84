"""Training data for the shipped model, generated reproducibly from the supervised corpora and
WordNet (nothing generated is ever committed):

    python -m train.prepare_data --data ../shared/data/ner --wordnet ../shared/data/nltk_data \
        --out data/prepared [--seed 0] [--datasets fewnerd,conll2003,...]

Per dataset of the training mixture (train/configs/common.py; never a zero-shot set) it writes
`OUT/NAME.jsonl` (gliner JSONL with `ner_negatives`) and `OUT/manifest.json` (settings, counts).
The levers, each with its own rate so that ablations switch one off:
- passages: runs of consecutive sentences joined into texts of `--min-passage`..`--max-passage`
  words (spans shifted), so that the model sees paragraphs and not only ~20-word sentences;
- fine types: spans of a coarse label whose text is a WordNet named instance are re-typed to
  its class or a class between it and the coarse label (Einstein: person -> physicist or
  scientist), only when every span of that label in the text can be, and the new types do not
  contain one another;
- paraphrases: a label renamed, consistently within a text (organization -> organisation);
- temporal: silver "date" / "year" / "time" spans from token patterns (train/temporal.py), which
  no corpus here labels; a text whose temporal expressions stay unlabeled never gets a temporal
  negative;
- negatives: each text lists absent types: the dataset's own absent labels (its annotation is
  complete for them) and types from a pool of hundreds (all corpus labels and WordNet's instance
  classes), never one that WordNet relates to a gold type of the text.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gliner_jax import corpora
from train import temporal
from train.wordnet_labels import CURATED, WordNet

MAX_TYPES = 25  # reference max_types: positives + negatives never exceed it
# datasets whose catch-all "miscellaneous" (or unannotated persons, Few-NERD) makes outside
# negatives risky: they get only their own absent labels / no person-like negatives
MISC_DATASETS = {"conll2003", "wikigold", "sec_filings"}
UNANNOTATED = {"fewnerd": ("person",)}
# datasets that annotate temporal expressions themselves: no silver temporal spans added
OWN_TEMPORAL = {"re3d"}


def make_units(n: int, rng: np.random.Generator, lengths: list[int], rate: float,
               lo: int, hi: int) -> list[list[int]]:
    """Consecutive sentence indices grouped into texts: with probability `rate` a run of
    sentences of lo..hi words (a target drawn per passage; never past hi unless one sentence
    alone is longer), else one sentence."""
    units, i = [], 0
    while i < n:
        if rate and rng.random() < rate:
            target, run, words = int(rng.integers(lo, hi + 1)), [i], lengths[i]
            i += 1
            while i < n and words < target and words + lengths[i] <= hi:
                run.append(i)
                words += lengths[i]
                i += 1
            units.append(run)
        else:
            units.append([i])
            i += 1
    return units


def join(examples: list[dict]) -> dict:
    words, ner = [], []
    for ex in examples:
        ner.extend([s + len(words), e + len(words), lab] for s, e, lab in ex["ner"])
        words.extend(ex["tokenized_text"])
    return {"tokenized_text": words, "ner": ner}


class Augmenter:
    def __init__(self, wn: WordNet, pool: list[str], *, fine_rate: float,
                 paraphrase_rate: float, temporal_rate: float = 0.0):
        self.wn, self.pool = wn, pool
        self.fine_rate, self.paraphrase_rate = fine_rate, paraphrase_rate
        self.temporal_rate = temporal_rate
        self.counts = {"retyped_spans": 0, "paraphrased_labels": 0, "negatives": 0,
                       "temporal_spans": 0}

    def temporal(self, ex: dict, rng: np.random.Generator, *, own: bool) -> tuple[str, ...]:
        """Add silver temporal spans; returns the temporal types the text must not get as
        negatives (all of them when one of its temporal expressions stays unlabeled)."""
        added, unlabeled = temporal.add_spans(ex, rng, 0.0 if own else self.temporal_rate)
        self.counts["temporal_spans"] += added
        return temporal.LABELS if unlabeled else ()

    def retype(self, ex: dict, rng: np.random.Generator) -> None:
        by_label: dict[str, list[list]] = {}
        for span in ex["ner"]:
            by_label.setdefault(span[2], []).append(span)
        for label, spans in by_label.items():
            if rng.random() >= self.fine_rate:
                continue
            chains = []
            for s, e, _ in spans:
                found = self.wn.fine_types(" ".join(ex["tokenized_text"][s:e + 1]), label)
                if not found:  # not an instance, or an ambiguous name: keep the coarse label
                    break
                chains.append(found[int(rng.integers(len(found)))])
            else:
                # the most specific class, or one between it and the coarse label; when two
                # spans' types contain one another (physicist, nuclear physicist), every span
                # takes its most general fine class instead
                picks = [c[0] if rng.random() < 0.6 else c[int(rng.integers(len(c)))]
                         for c in chains]
                for chosen in (picks, [c[-1] for c in chains]):
                    distinct = sorted(set(chosen))
                    if all(not self.wn.related(a, b) for i, a in enumerate(distinct)
                           for b in distinct[i + 1:]):
                        for span, t in zip(spans, chosen, strict=True):
                            span[2] = t
                        self.counts["retyped_spans"] += len(spans)
                        break

    def paraphrase(self, ex: dict, rng: np.random.Generator) -> None:
        rename = {}
        for label in sorted({s[2] for s in ex["ner"]}):
            if rng.random() < self.paraphrase_rate:
                options = self.wn.paraphrases(label)
                if options:
                    rename[label] = options[int(rng.integers(len(options)))]
        for span in ex["ner"]:
            span[2] = rename.get(span[2], span[2])
        self.counts["paraphrased_labels"] += len(rename)

    def negatives(self, ex: dict, own_labels: list[str], rng: np.random.Generator, *,
                  outside: bool, unannotated: tuple[str, ...]) -> list[str]:
        gold = sorted({s[2] for s in ex["ner"]})
        guard = gold + list(unannotated)
        never = set(guard)
        budget = MAX_TYPES - len(gold)
        if budget <= 0:
            return []
        hi = min(budget, 2 * len(gold) + 8)
        n = int(rng.integers(min(max(1, len(gold)), hi), hi + 1)) if gold \
            else int(rng.integers(3, 13))
        ok = lambda t: t not in never and all(not self.wn.related(t, g) for g in guard)  # noqa: E731
        own = [t for t in own_labels if t not in gold and ok(t)]
        own = [own[i] for i in rng.permutation(len(own))][: (n + 1) // 2 if outside else n]
        out = list(own)
        if outside:
            for i in rng.permutation(len(self.pool)):
                if len(out) >= n:
                    break
                t = self.pool[i]
                if t not in out and ok(t):
                    out.append(t)
        self.counts["negatives"] += len(out)
        return out


def prepare_dataset(name: str, folder: Path, aug: Augmenter, args) -> tuple[list[dict], dict]:
    examples, labels = corpora.read_split(folder, "train", misaligned="drop")
    rng = np.random.default_rng([args.seed, zlib.crc32(name.encode())])
    lengths = [len(ex["tokenized_text"]) for ex in examples]
    units = make_units(len(examples), rng, lengths, args.passage_rate, args.min_passage,
                       args.max_passage)
    out = []
    for unit in units:
        ex = join([examples[i] for i in unit])
        unlabeled = aug.temporal(ex, rng, own=name in OWN_TEMPORAL)
        aug.retype(ex, rng)
        aug.paraphrase(ex, rng)
        ex["ner_negatives"] = aug.negatives(ex, labels, rng, outside=name not in MISC_DATASETS,
                                            unannotated=UNANNOTATED.get(name, ()) + unlabeled)
        out.append(ex)
    words = [len(ex["tokenized_text"]) for ex in out]
    return out, {"sentences": len(examples), "texts": len(out),
                 "passages": sum(len(u) > 1 for u in units),
                 "mean_words": round(float(np.mean(words)), 1), "max_words": max(words),
                 "labels": len({s[2] for ex in out for s in ex["ner"]})}


def main(argv: list[str] | None = None) -> int:
    from train.configs.common import MIXTURE

    ap = argparse.ArgumentParser(prog="python -m train.prepare_data", description=__doc__)
    ap.add_argument("--data", default="../shared/data/ner", help="the corpora (README there)")
    ap.add_argument("--wordnet", default="../shared/data/nltk_data", help="NLTK data folder")
    ap.add_argument("--out", required=True, help="output folder (not committed)")
    ap.add_argument("--datasets", default=",".join(n for n, _ in MIXTURE),
                    help="supervised datasets to prepare (default: the training mixture)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--passage-rate", type=float, default=0.25)
    ap.add_argument("--min-passage", type=int, default=50)
    ap.add_argument("--max-passage", type=int, default=300)
    ap.add_argument("--fine-rate", type=float, default=0.5)
    ap.add_argument("--paraphrase-rate", type=float, default=0.25)
    ap.add_argument("--temporal-rate", type=float, default=0.0,
                    help="share of texts with dates/times that get silver temporal spans")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    bad = [n for n in names if n.startswith("mit_")]
    if bad:
        print(f"{ap.prog}: error: {', '.join(bad)} share domains with the zero-shot test sets",
              file=sys.stderr)
        return 2
    try:
        wn = WordNet(args.wordnet)
        folders = {n: Path(args.data) / "supervised" / n for n in names}
        missing = [str(f) for f in folders.values() if not (f / "train.txt").is_file()]
        if missing:
            raise FileNotFoundError(f"no train split in {', '.join(missing)}")
        all_labels = set()
        for f in folders.values():
            all_labels.update(corpora.natural_labels(corpora.read_labels_json(f / "labels.json")))
        pool = sorted(all_labels | set(wn.classes())
                      | {p for ps in CURATED.values() for p in ps}
                      | (set(temporal.LABELS) if args.temporal_rate else set()))
        aug = Augmenter(wn, pool, fine_rate=args.fine_rate,
                        paraphrase_rate=args.paraphrase_rate, temporal_rate=args.temporal_rate)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        report = {}
        for name in tqdm(names, desc="datasets", file=sys.stderr):
            examples, report[name] = prepare_dataset(name, folders[name], aug, args)
            corpora.write_gliner_jsonl(examples, out / f"{name}.jsonl")
    except (FileNotFoundError, corpora.CorpusError) as e:
        print(f"{ap.prog}: error: {e}", file=sys.stderr)
        return 1
    manifest = {"settings": {k: v for k, v in vars(args).items() if k != "out"},
                "pool_size": len(pool), "counts": aug.counts, "datasets": report}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps({"pool_size": len(pool), **aug.counts}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Score a GLiNER model on NER dataset folders exactly as the reference evaluator does.

gliner 0.2.29 `evaluation/evaluate_ner.py::get_for_one_path` + `GLiNER.evaluate` (GLINER_SPEC.md
section 9.2): every sentence is predicted from its pre-split words (`tokenized_text`, never
re-split) with all of the dataset's labels as the prompt, threshold 0.5, flat_ner=False when the
folder name contains ACE, GENIA or Corpus (else True), multi_label=False. Sentences longer than
max_len words are cut (their later words get no prediction); gold spans past the cut, wider than
K words, or misaligned (None index) stay in the gold set and count as misses. Scores are micro
P/R/F1 over (label, span, sentence) sets (`gliner_jax.metrics`).

Batching differs from the reference (sentences sorted by length, padded to bucket sizes), which
changes nothing but speed: each sentence's probabilities do not depend on its batch.

`run_cli` is the shared body of `python -m eval.zero_shot` and `python -m eval.supervised`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gliner_jax import corpora
from gliner_jax.metrics import PRF, NerScores, ner_scores

# evaluate_ner.get_for_one_path: these substrings of the folder name select nested decoding
NESTED_MARKERS = ("ACE", "GENIA", "Corpus")


class EvalError(ValueError):
    """Bad command-line input (folders, datasets, model): the message is the whole story."""


def is_flat_ner(name: str) -> bool:
    """The reference's rule, case-sensitive, on the dataset folder's name."""
    return not any(m in name for m in NESTED_MARKERS)


# ---------------------------------------------------------------------------------------------
# datasets


@dataclasses.dataclass
class Dataset:
    name: str          # folder name (the reference's data_name), relative path if nested deeper
    folder: Path
    examples: list[dict]   # {"tokenized_text": [...], "ner": [[start, end, label], ...]}
    labels: list[str]
    stats: corpora.CorpusStats


def has_split(folder: Path, split: str) -> bool:
    layout = corpora.detect_layout(folder)
    if layout == "bio":
        return (folder / f"{split}.txt").is_file()
    # eval layout: file roles by substring, as corpora (and evaluate_ner.open_content) assign them
    return layout == "eval" and split in corpora._eval_layout_files(folder)


def find_split_datasets(root: str | Path, split: str) -> tuple[list[tuple[str, Path]], list[str]]:
    """([(name, folder)] holding `split`, [reason per skipped folder]) under `root`."""
    root = Path(root)
    if not root.is_dir():
        raise EvalError(f"data folder {root} does not exist")
    found, skipped = [], []
    for folder in corpora.find_datasets(root):
        name = folder.relative_to(root).as_posix() if folder != root else folder.name
        if "sample_" in name:  # get_for_all_path skips these
            skipped.append(f"{name}: a sample_ folder")
        elif not has_split(folder, split):
            skipped.append(f"{name}: no {split} split")
        else:
            found.append((name, folder))
    if not found and not skipped:
        raise EvalError(f"no datasets found under {root} (expected folders with labels.json and "
                        "train/dev/test.txt, or *labels*.json and *train/dev/test*.json)")
    return found, skipped


def load_dataset(name: str, folder: Path, split: str, limit: int | None = None) -> Dataset:
    examples, labels = corpora.read_split(folder, split)  # misaligned gold kept, as the reference
    if not labels:
        raise EvalError(f"{folder}: the dataset has no labels")
    return Dataset(name, folder, list(examples[:limit] if limit else examples), labels,
                   examples.stats)


# ---------------------------------------------------------------------------------------------
# model


def load_model(path: str | Path):
    """gliner_jax.GLiNER from a model directory (or hub id); EvalError with one line otherwise."""
    from gliner_jax.convert import ModelLoadError
    from gliner_jax.model import GLiNER
    from gliner_jax.weights import WeightsError

    try:
        return GLiNER.from_pretrained(path)
    except (ModelLoadError, WeightsError, OSError, ValueError) as e:
        raise EvalError(f"cannot load model {path}: {e}") from None


def predict_spans(model, words: Sequence[Sequence[str]], labels: Sequence[str], *,
                  threshold: float = 0.5, flat_ner: bool = True, multi_label: bool = False,
                  batch_size: int = 12, progress=None) -> list[list]:
    """Decoded word spans (`decoding.Span`, inclusive ends) per sentence of pre-split words.

    The reference's GLiNER.evaluate path: words go to the tokenizer as they are, the same label
    list prompts every sentence, an empty sentence is the single word "[PAD]". A label given
    twice is asked once (the reference would prompt it twice and shift later class ids).
    """
    from gliner_jax import decoding
    from gliner_jax.processing import TruncationWarning, normalize_labels

    if batch_size < 1:
        raise EvalError(f"--batch-size must be >= 1, got {batch_size}")
    prompts, names = normalize_labels(list(labels))
    proc = model.processor
    policy = dataclasses.replace(proc.buckets or proc.default_buckets(), min_batch=batch_size)
    order = sorted(range(len(words)), key=lambda i: len(words[i]))  # less padding
    out: list[list] = [[] for _ in words]
    for lo in range(0, len(order), batch_size):
        rows = order[lo:lo + batch_size]
        with warnings.catch_warnings():  # cut sentences are counted in DatasetResult instead
            # (sub-words past the tokenizer's model_max_length still warn)
            warnings.filterwarnings("ignore", r"text \d+ has \d+ words, more than max_len",
                                    TruncationWarning)
            batch = proc.encode([words[i] for i in rows], prompts, names, pad=False)
        batch = proc.pad(batch, policy)  # B is always batch_size: fewer compiled shapes
        probs = model.probs(batch)
        spans = decoding.decode(probs, batch.text_lengths, batch.label_names,
                                threshold=threshold, flat_ner=flat_ner, multi_label=multi_label,
                                head=model.head_name)
        for i, s in zip(rows, spans, strict=True):
            out[i] = s
        if progress is not None:
            progress.update(len(rows))
    return out


def join_passages(examples: Sequence[dict], words: int) -> list[dict]:
    """Consecutive sentences joined into passages of at most `words` words (a longer sentence
    stays alone), spans shifted: how users send paragraphs and documents."""
    out: list[dict] = []
    for ex in examples:
        n = len(ex["tokenized_text"])
        if out and len(out[-1]["tokenized_text"]) + n <= words:
            last = out[-1]
            off = len(last["tokenized_text"])
            last["tokenized_text"].extend(ex["tokenized_text"])
            last["ner"].extend([s + off, e + off, lab] for s, e, lab in ex["ner"])
        else:
            out.append({"tokenized_text": list(ex["tokenized_text"]),
                        "ner": [list(span) for span in ex["ner"]]})
    return out


def evaluate_examples(model, examples: Sequence[dict], labels: Sequence[str], *,
                      threshold: float = 0.5, flat_ner: bool = True, batch_size: int = 12,
                      progress=None, windows: bool = False) -> tuple[NerScores, list[list]]:
    """(scores, predicted spans per sentence) of `model` on gliner-format examples.

    windows=True predicts through the API's word windows (`GLiNER.predict_word_spans`: long
    texts split into overlapping windows that also respect the tokenizer's limit) instead of
    the reference evaluator's one pass per text: the passage mode."""
    words = [ex["tokenized_text"] for ex in examples]
    if windows:
        bar = None if progress is None else progress.update
        pred = model.predict_word_spans(words, list(dict.fromkeys(labels)), threshold=threshold,
                                        flat_ner=flat_ner, batch_size=batch_size, progress=bar)
    else:
        pred = predict_spans(model, words, labels, threshold=threshold, flat_ner=flat_ner,
                             batch_size=batch_size, progress=progress)
    # plain (start, end, label) tuples: metrics reads a `.start` object as a gliner Span
    pred_tuples = [[(sp.start, sp.end, sp.label) for sp in row] for row in pred]
    return ner_scores([ex["ner"] for ex in examples], pred_tuples), pred


# ---------------------------------------------------------------------------------------------
# results


def _prf_json(x: PRF) -> dict[str, Any]:
    return {"precision": x.precision, "recall": x.recall, "f1": x.f1, "tp": x.tp,
            "n_pred": x.n_pred, "n_true": x.n_true}


@dataclasses.dataclass
class DatasetResult:
    name: str
    split: str
    flat_ner: bool
    sentences: int
    truncated_sentences: int  # longer than max_len words: the tail gets no prediction
    gold_unreachable: int     # gold spans no prediction can match (past max_len, > K, misaligned)
    scores: NerScores
    seconds: float

    @property
    def f1(self) -> float:
        return self.scores.f1

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "split": self.split, "flat_ner": self.flat_ner,
                "sentences": self.sentences, "truncated_sentences": self.truncated_sentences,
                "gold_unreachable": self.gold_unreachable, **_prf_json(self.scores.micro),
                "seconds": round(self.seconds, 3),
                "per_label": {k: _prf_json(v) for k, v in self.scores.per_label.items()}}


def evaluate_dataset(model, ds: Dataset, split: str, *, threshold: float = 0.5,
                     batch_size: int = 12, progress=None, windows: bool = False
                     ) -> DatasetResult:
    max_len, max_width = model.config.max_len, model.config.max_width
    if windows:
        max_len = 1 << 30  # windows reach every word
    flat = is_flat_ner(ds.folder.name)
    t0 = time.perf_counter()
    scores, _ = evaluate_examples(model, ds.examples, ds.labels, threshold=threshold,
                                  flat_ner=flat, batch_size=batch_size, progress=progress,
                                  windows=windows)
    unreachable = sum(
        1 for ex in ds.examples for s, e, _ in ex["ner"]
        if s is None or e is None or e >= max_len or e - s + 1 > max_width)
    return DatasetResult(
        name=ds.name, split=split, flat_ner=flat, sentences=len(ds.examples),
        truncated_sentences=sum(len(ex["tokenized_text"]) > max_len for ex in ds.examples),
        gold_unreachable=unreachable, scores=scores, seconds=time.perf_counter() - t0)


def average_f1(results: Sequence[DatasetResult]) -> float:
    """Mean F1 over datasets (get_for_all_path's average)."""
    return sum(r.f1 for r in results) / len(results) if results else 0.0


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


# ---------------------------------------------------------------------------------------------
# CLI


def build_parser(prog: str, description: str, default_data: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=description)
    ap.add_argument("--model", required=True, help="model directory (reference layout) or hub id")
    ap.add_argument("--data", default=default_data,
                    help=f"folder of dataset folders (default {default_data})")
    ap.add_argument("--split", default="test", choices=corpora.SPLITS,
                    help="split to score (default test; dev to pick checkpoints/thresholds)")
    ap.add_argument("--threshold", type=float, default=0.5, help="span probability > threshold")
    ap.add_argument("--batch-size", type=int, default=12, help="sentences per forward pass")
    ap.add_argument("--limit", type=int, default=None,
                    help="score only the first N sentences of each dataset (quick looks)")
    ap.add_argument("--passages", type=int, default=None, metavar="WORDS",
                    help="passage mode: join consecutive sentences into texts of at most WORDS "
                         "words (e.g. 300) and predict them with the API's windows")
    ap.add_argument("--output", default=None, help="write the results as JSON here")
    return ap


def run_cli(argv: Sequence[str] | None, *, prog: str, description: str, default_data: str,
            format_table: Callable[[Sequence[DatasetResult], str], str]) -> int:
    args = build_parser(prog, description, default_data).parse_args(argv)
    try:
        return _run(args, format_table)
    except (EvalError, corpora.CorpusError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1


def _run(args, format_table) -> int:
    from tqdm import tqdm

    if args.limit is not None and args.limit < 1:
        raise EvalError(f"--limit must be >= 1, got {args.limit}")
    if args.batch_size < 1:
        raise EvalError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.passages is not None and args.passages < 1:
        raise EvalError(f"--passages must be >= 1 word, got {args.passages}")
    found, skipped = find_split_datasets(args.data, args.split)
    for reason in skipped:
        print(f"skipping {reason}", file=sys.stderr)
    if not found:
        raise EvalError(f"no dataset under {args.data} has a {args.split} split")
    datasets = [load_dataset(name, folder, args.split, args.limit) for name, folder in found]
    if args.passages:
        datasets = [dataclasses.replace(ds, examples=join_passages(ds.examples, args.passages))
                    for ds in datasets]
    model = load_model(args.model)

    results = []
    for ds in datasets:
        with tqdm(total=len(ds.examples), desc=ds.name, unit="sent", file=sys.stderr,
                  dynamic_ncols=True) as bar:
            results.append(evaluate_dataset(model, ds, args.split, threshold=args.threshold,
                                            batch_size=args.batch_size, progress=bar,
                                            windows=bool(args.passages)))
    print(format_table(results, "/".join(Path(str(args.model)).parts[-2:])))
    if args.output:
        out = {"model": str(args.model), "data": str(args.data), "split": args.split,
               "threshold": args.threshold, "batch_size": args.batch_size, "limit": args.limit,
               "passages": args.passages,
               "max_len": model.config.max_len, "max_width": model.config.max_width,
               "datasets": [r.to_json() for r in results], "average_f1": average_f1(results),
               "skipped": skipped}
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
    return 0

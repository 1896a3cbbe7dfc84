"""Training data: datasets, a weighted mixture with a resumable position, the reference's
per-example type sampling (GLINER_SPEC 5.2), and length-bucketed batches.

Everything is a deterministic function of (seed, step) and the mixture position, so every host
builds the same global batch and a restarted run continues with the very next examples. Set order
never leaks in: type sets are sorted before a seeded shuffle (the reference's `list(set(...))`
depends on PYTHONHASHSEED).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np

from gliner_jax import corpora
from gliner_jax.processing import Processor, TruncationWarning, bucket, pad_batch
from train.config import DataConfig, DatasetConfig

# ---------------------------------------------------------------------------------------------
# datasets


@dataclasses.dataclass
class Dataset:
    name: str
    examples: list[dict]
    labels: list[str]          # the dataset's label set (the prompt at evaluation)
    stats: corpora.CorpusStats
    weight: float = 1.0


def load_dataset(dc: DatasetConfig, skip_errors: bool) -> Dataset:
    """A folder (BIO or evaluation bundle; split `dc.split`) or a gliner JSON / JSONL file.

    Malformed lines and out-of-range spans raise a CorpusError naming the file and line, or with
    `skip_errors` are skipped and counted in `.stats.skipped`. A "tfds:NAME" path reads a
    prepared TFDS dataset (train/tfds_data.py) from `dc.data_dir`."""
    path = Path(dc.path)
    if dc.path.startswith("tfds:"):
        from train import tfds_data  # optional extra: imported only for TFDS input

        name, rows, labels = tfds_data.load_examples(dc.path[5:], dc.data_dir, dc.split)
        examples = corpora.Examples(rows, corpora.CorpusStats(source=name, sentences=len(rows)))
    elif path.is_dir():
        examples, labels = corpora.read_split(path, dc.split, skip_errors=skip_errors,
                                              misaligned="drop")
        name = f"{path.name}/{dc.split}"
    else:
        examples = corpora.read_gliner_json(path, skip_errors=skip_errors)
        labels, name = corpora.dataset_labels(examples), path.name
    if not examples:
        raise corpora.CorpusError(f"{dc.path}: no examples")
    stats = examples.stats
    if dc.max_examples is not None:
        examples = examples[: dc.max_examples]
    return Dataset(name, list(examples), labels, stats, dc.weight)


def data_report(datasets: list[Dataset], max_width: int, max_len: int) -> dict:
    """What each dataset holds and what the model cannot learn from it (nothing goes unsaid):
    spans wider than max_width or ending past max_len words, texts cut at max_len."""
    out = {}
    for ds in datasets:
        spans = [s for ex in ds.examples for s in ex["ner"]]
        out[ds.name] = {
            "examples": len(ds.examples), "entities": len(spans), "weight": ds.weight,
            "skipped_lines": len(ds.stats.skipped), "first_skipped": ds.stats.skipped[:3],
            "spans_wider_than_max_width": sum(s[1] - s[0] >= max_width for s in spans),
            "spans_past_max_len": sum(s[1] >= max_len for s in spans),
            "texts_cut_at_max_len": sum(len(ex["tokenized_text"]) > max_len
                                        for ex in ds.examples),
        }
    return out


# ---------------------------------------------------------------------------------------------
# mixture


class Mixture:
    """A weighted, endless mixture of datasets. Each dataset is read in a fresh seeded permutation
    per epoch; which dataset fills each slot of step s is drawn from (seed, s). The position is
    the number of examples consumed from each dataset."""

    def __init__(self, datasets: list[Dataset], seed: int):
        self.datasets, self.seed = datasets, seed
        w = np.array([d.weight for d in datasets], np.float64)
        if (w <= 0).any():
            raise ValueError("dataset weights must be positive")
        self.p = w / w.sum()
        self.consumed = [0] * len(datasets)
        self._perm: dict[tuple[int, int], np.ndarray] = {}

    def _index(self, d: int, count: int) -> int:
        epoch, i = divmod(count, len(self.datasets[d].examples))
        if (d, epoch) not in self._perm:
            self._perm = {k: v for k, v in self._perm.items() if k[0] != d}
            rng = np.random.default_rng([self.seed, d, epoch])
            self._perm[d, epoch] = rng.permutation(len(self.datasets[d].examples))
        return int(self._perm[d, epoch][i])

    def take(self, step: int, n: int) -> list[dict]:
        rng = np.random.default_rng([self.seed, step, 0])
        out = []
        for d in rng.choice(len(self.datasets), size=n, p=self.p):
            out.append(self.datasets[d].examples[self._index(d, self.consumed[d])])
            self.consumed[d] += 1
        return out

    def position(self) -> dict:
        return {"consumed": list(self.consumed), "names": [d.name for d in self.datasets],
                "sizes": [len(d.examples) for d in self.datasets]}

    def restore(self, pos: dict) -> None:
        mine = self.position()
        if (pos["names"], pos["sizes"]) != (mine["names"], mine["sizes"]):
            raise ValueError(f"the checkpoint's datasets {pos['names']} (sizes {pos['sizes']}) "
                             f"differ from this run's {mine['names']} (sizes {mine['sizes']})")
        self.consumed = list(pos["consumed"])


# ---------------------------------------------------------------------------------------------
# type sampling


def sample_types(examples: list[dict], rng: np.random.Generator, *, max_types: int,
                 max_neg_type_ratio: int, sampled_negatives: int = 100) -> list[list[str]]:
    """Per example, the entity types to prompt with (gliner 0.2.29 batch_generate_class_mappings):
    its gold types plus len(ner) * r in-batch negatives, r uniform in {0..max_neg_type_ratio},
    shuffled, cut at max_types; `ner_negatives` / `ner_labels` of an example are honoured; an
    example with no entity and no type gets the single empty type [""] (all negative)."""
    pool = sorted({span[2] for ex in examples for span in ex["ner"]})
    negatives = [pool[i] for i in rng.permutation(len(pool))[:sampled_negatives]]
    out = []
    for ex in examples:
        r = int(rng.integers(0, max_neg_type_ratio + 1)) if max_neg_type_ratio else 0
        negs = ex["ner_negatives"] if "ner_negatives" in ex else negatives[: len(ex["ner"]) * r]
        if "ner_labels" in ex:
            types = list(ex["ner_labels"])
        else:
            types = sorted({span[2] for span in ex["ner"]} | set(negs))
            types = [types[i] for i in rng.permutation(len(types))][:max_types]
        if not ex["ner"] and not types:
            types = [""]
        out.append(types)
    return out


# ---------------------------------------------------------------------------------------------
# batches


class Batcher:
    """Examples + their types -> numpy arrays [A, b, ...] (A = grad_accum micro-batches).

    Every batch has the same B (the global batch); T, W and C are padded up to powers of two
    times min_tokens / min_words / min_classes (T capped at max_tokens, W at max_len), so the
    step compiles once per (T, W, C) bucket: a handful of times."""

    def __init__(self, processor: Processor, cfg: DataConfig, grad_accum: int):
        self.processor, self.cfg, self.accum = processor, cfg, grad_accum
        self.max_tokens = cfg.max_tokens or processor.model_max_length
        self.truncated = 0  # texts cut at max_len words so far

    def sizes(self, t: int, w: int, c: int, b: int) -> dict:
        cfg = self.cfg
        T = bucket(t, cfg.min_tokens, half_steps=False)
        if self.max_tokens:
            T = max(min(T, self.max_tokens), t)
        W = max(min(bucket(w, cfg.min_words, half_steps=False), self.processor.max_len), w)
        return {"B": b, "T": T, "W": W, "C": bucket(c, cfg.min_classes, half_steps=False)}

    def _unpadded(self, examples: list[dict], types: list[list[str]]):
        words = [ex["tokenized_text"] for ex in examples]
        self.truncated += sum(len(w) > self.processor.max_len for w in words)
        with warnings.catch_warnings():  # counted above and in the data report
            warnings.simplefilter("ignore", TruncationWarning)
            return self.processor.encode(words, types, ner=[ex["ner"] for ex in examples],
                                         pad=False)

    def _pad(self, batch, t: int, w: int, c: int, rows: int):
        return pad_batch(batch, **self.sizes(t, w, c, rows),
                         pad_token_id=self.processor.pad_token_id,
                         padding_side=getattr(self.processor.tokenizer, "padding_side", "right"))

    def encode(self, examples: list[dict], types: list[list[str]], rows: int):
        """A padded processing.Batch with labels (rows padded to `rows`)."""
        batch = self._unpadded(examples, types)
        s = batch.shape
        return self._pad(batch, s["T"], s["W"], s["C"], rows)

    def __call__(self, examples: list[dict], types: list[list[str]], *, agree=None,
                 ) -> tuple[dict, dict]:
        """Arrays [A, b, ...] of `examples` (with several processes: this process's rows of
        the global batch). `agree` maps this process's (T, W, C, tokens) to the global batch's
        (max, max, max, sum), so that every process pads to the same buckets."""
        batch = self._unpadded(examples, types)
        s = batch.shape
        need = np.array([s["T"], s["W"], s["C"], batch.attention_mask.sum()], np.int64)
        t, w, c, tokens = (int(x) for x in (need if agree is None else agree(need)))
        batch = self._pad(batch, t, w, c, len(examples))
        arrays = {k: v.reshape(self.accum, -1, *v.shape[1:])
                  for k, v in batch.arrays().items() if k != "prompt_mask"}
        return arrays, {"examples": len(examples), "tokens": tokens}

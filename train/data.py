"""Training data: datasets, a weighted mixture with a resumable position, the reference's
per-example type sampling (GLINER_SPEC 5.2), and length-bucketed batches.

Everything is a deterministic function of (seed, step) and the mixture position, so every host
draws the same global batch and a restarted run continues with the very next examples. Set order
never leaks in: type sets are sorted before a seeded shuffle (the reference's `list(set(...))`
depends on PYTHONHASHSEED).

A global batch is drawn as references (dataset, index). Type sampling needs only each example's
types, which every dataset keeps in memory (`TypeIndex`, a few bytes per entity); the records
themselves are read only for the rows a host encodes (`Mixture.read`). For a TFDS dataset that
is a read of one array_record record per row: a host reads only its share of every batch.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from gliner_jax import corpora
from gliner_jax.processing import Processor, TruncationWarning, bucket, pad_batch
from train.config import DataConfig, DatasetConfig

# ---------------------------------------------------------------------------------------------
# the types of an example, without its text


class TypeInfo(NamedTuple):
    """What type sampling needs of one example: the type of each gold span (in order, repeats
    kept: the number of negatives is proportional to the number of spans), and its
    `ner_negatives` / `ner_labels` when it has them (None when it has not)."""

    spans: tuple[str, ...]
    negatives: tuple[str, ...] | None = None
    labels: tuple[str, ...] | None = None

    @classmethod
    def of(cls, ex: dict) -> TypeInfo:
        opt = {k: tuple(ex[key]) for k, key in (("negatives", "ner_negatives"),
                                                ("labels", "ner_labels")) if key in ex}
        return cls(tuple(span[2] for span in ex["ner"]), **opt)


_LISTS = ("span", "neg", "lab")  # ragged columns: gold span types, ner_negatives, ner_labels


@dataclasses.dataclass
class TypeIndex:
    """Per example of a dataset, its TypeInfo and what the data report counts (words, span
    bounds), as flat numpy columns: the in-memory stand-in for a dataset whose records stay on
    disk. Type strings are indices into `names`; a ragged column X is `X_ids` cut by
    `X_offsets` [n + 1]; `has_neg` / `has_lab` tell an absent list from an empty one."""

    names: list[str]
    words: np.ndarray            # [n] words per example
    span_ids: np.ndarray         # [S] gold span types
    span_offsets: np.ndarray     # [n + 1]
    span_start: np.ndarray       # [S]
    span_end: np.ndarray         # [S] (inclusive, as in the examples)
    neg_ids: np.ndarray
    neg_offsets: np.ndarray
    has_neg: np.ndarray          # [n] bool
    lab_ids: np.ndarray
    lab_offsets: np.ndarray
    has_lab: np.ndarray          # [n] bool

    @classmethod
    def of(cls, examples: Iterable[dict]) -> TypeIndex:
        ids: dict[str, int] = {}
        words, bounds, has = [], [], {"neg": [], "lab": []}
        cols = {k: ([], [0]) for k in _LISTS}

        def put(col, types):
            flat, offsets = cols[col]
            flat.extend(ids.setdefault(t, len(ids)) for t in types)
            offsets.append(len(flat))

        for ex in examples:
            info = TypeInfo.of(ex)
            words.append(len(ex["tokenized_text"]))
            bounds.extend((span[0], span[1]) for span in ex["ner"])
            put("span", info.spans)
            for col, opt in (("neg", info.negatives), ("lab", info.labels)):
                has[col].append(opt is not None)
                put(col, opt or ())
        bounds = np.array(bounds, np.int32).reshape(-1, 2)
        arrays = {f"{k}_{part}": np.array(v, dtype)
                  for k, (flat, offsets) in cols.items()
                  for part, v, dtype in (("ids", flat, np.int32), ("offsets", offsets, np.int64))}
        return cls(names=list(ids), words=np.array(words, np.int32),
                   span_start=bounds[:, 0], span_end=bounds[:, 1],
                   has_neg=np.array(has["neg"], bool), has_lab=np.array(has["lab"], bool),
                   **arrays)

    def __len__(self) -> int:
        return len(self.words)

    def _list(self, col: str, j: int) -> tuple[str, ...]:
        ids, offsets = getattr(self, f"{col}_ids"), getattr(self, f"{col}_offsets")
        return tuple(self.names[k] for k in ids[offsets[j]:offsets[j + 1]])

    def __getitem__(self, j: int) -> TypeInfo:
        j = range(len(self))[j]  # IndexError past the end, negative indices from it
        return TypeInfo(self._list("span", j),
                        self._list("neg", j) if self.has_neg[j] else None,
                        self._list("lab", j) if self.has_lab[j] else None)

    def head(self, n: int) -> TypeIndex:
        """The first n examples."""
        n = min(n, len(self))
        cut = {}
        for col in _LISTS:
            offsets = getattr(self, f"{col}_offsets")[: n + 1]
            cut[f"{col}_offsets"] = offsets
            cut[f"{col}_ids"] = getattr(self, f"{col}_ids")[: offsets[-1]]
        s = self.span_offsets[n]
        return dataclasses.replace(self, words=self.words[:n], span_start=self.span_start[:s],
                                   span_end=self.span_end[:s], has_neg=self.has_neg[:n],
                                   has_lab=self.has_lab[:n], **cut)

    def span_types(self) -> list[str]:
        """The sorted distinct gold span types (corpora.dataset_labels)."""
        return sorted({self.names[k] for k in np.unique(self.span_ids)})

    def arrays(self) -> dict[str, np.ndarray]:
        """The columns as numpy arrays (np.savez; `from_arrays` reads them back)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["names"] = np.array(self.names, dtype=str)
        return out

    @classmethod
    def from_arrays(cls, arrays) -> TypeIndex:
        kw = {f.name: np.asarray(arrays[f.name]) for f in dataclasses.fields(cls)}
        kw["names"] = [str(x) for x in kw["names"]]
        return cls(**kw)


# ---------------------------------------------------------------------------------------------
# datasets


@dataclasses.dataclass
class Dataset:
    name: str
    examples: Sequence[dict]   # random access: a list, or records read on [i] (TFDS)
    labels: list[str]          # the dataset's label set (the prompt at evaluation)
    stats: corpora.CorpusStats
    weight: float = 1.0
    types: TypeIndex | None = None  # built from `examples` when not given

    def __post_init__(self):
        if self.types is None:
            self.types = TypeIndex.of(self.examples)
        if len(self.types) != len(self.examples):
            raise ValueError(f"{self.name}: {len(self.types)} type entries for "
                             f"{len(self.examples)} examples")


def load_dataset(dc: DatasetConfig, skip_errors: bool) -> Dataset:
    """A folder (BIO or evaluation bundle; split `dc.split`) or a gliner JSON / JSONL file, read
    whole into memory; or a "tfds:NAME" dataset prepared by train/tfds_data.py in `dc.data_dir`,
    whose records stay on disk (read on `examples[i]`) while their types are held in memory.

    Malformed lines and out-of-range spans raise a CorpusError naming the file and line, or with
    `skip_errors` are skipped and counted in `.stats.skipped`."""
    path = Path(dc.path)
    types = None
    if dc.path.startswith("tfds:"):
        from train import tfds_data  # optional extra: imported only for TFDS input

        name, examples, types, labels = tfds_data.load_split(dc.path[5:], dc.data_dir,
                                                             dc.split)
        stats = corpora.CorpusStats(source=name, sentences=len(examples))
    else:
        if path.is_dir():
            examples, labels = corpora.read_split(path, dc.split, skip_errors=skip_errors,
                                                  misaligned="drop")
            name = f"{path.name}/{dc.split}"
        else:
            examples = corpora.read_gliner_json(path, skip_errors=skip_errors)
            labels, name = corpora.dataset_labels(examples), path.name
        stats, examples = examples.stats, list(examples)
    if not len(examples):
        raise corpora.CorpusError(f"{dc.path}: no examples")
    if dc.max_examples is not None:
        examples = examples[: dc.max_examples]  # a TFDS view slices lazily
        types = types.head(dc.max_examples) if types is not None else None
    return Dataset(name, examples, labels, stats, dc.weight, types)


def data_report(datasets: list[Dataset], max_width: int, max_len: int) -> dict:
    """What each dataset holds and what the model cannot learn from it (nothing goes unsaid):
    spans wider than max_width or ending past max_len words, texts cut at max_len. Counted from
    the type index: no record is read."""
    out = {}
    for ds in datasets:
        t = ds.types
        out[ds.name] = {
            "examples": len(t), "entities": len(t.span_ids), "weight": ds.weight,
            "skipped_lines": len(ds.stats.skipped), "first_skipped": ds.stats.skipped[:3],
            "spans_wider_than_max_width": int(np.sum(t.span_end - t.span_start >= max_width)),
            "spans_past_max_len": int(np.sum(t.span_end >= max_len)),
            "texts_cut_at_max_len": int(np.sum(t.words > max_len)),
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

    def take(self, step: int, n: int) -> list[tuple[int, int]]:
        """The global batch of `step`: n references (dataset, example index); advances the
        position. Nothing is read: see `types` and `read`."""
        rng = np.random.default_rng([self.seed, step, 0])
        out = []
        for d in rng.choice(len(self.datasets), size=n, p=self.p):
            out.append((int(d), self._index(d, self.consumed[d])))
            self.consumed[d] += 1
        return out

    def types(self, refs: Iterable[tuple[int, int]]) -> list[TypeInfo]:
        """The TypeInfo of each referenced example, from memory."""
        return [self.datasets[d].types[i] for d, i in refs]

    def read(self, refs: Iterable[tuple[int, int]]) -> list[dict]:
        """The referenced examples (for a TFDS dataset: one record read each)."""
        return [self.datasets[d].examples[i] for d, i in refs]

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


def sample_types(examples: Sequence[dict | TypeInfo], rng: np.random.Generator, *,
                 max_types: int, max_neg_type_ratio: int, sampled_negatives: int = 100,
                 ) -> list[list[str]]:
    """Per example, the entity types to prompt with (gliner 0.2.29 batch_generate_class_mappings):
    its gold types plus len(ner) * r in-batch negatives, r uniform in {0..max_neg_type_ratio},
    shuffled, cut at max_types; `ner_negatives` / `ner_labels` of an example are honoured; an
    example with no entity and no type gets the single empty type [""] (all negative).
    `examples` are example dicts or their TypeInfo (the same result)."""
    infos = [ex if isinstance(ex, TypeInfo) else TypeInfo.of(ex) for ex in examples]
    pool = sorted({t for info in infos for t in info.spans})
    negatives = [pool[i] for i in rng.permutation(len(pool))[:sampled_negatives]]
    out = []
    for info in infos:
        r = int(rng.integers(0, max_neg_type_ratio + 1)) if max_neg_type_ratio else 0
        negs = info.negatives if info.negatives is not None else \
            negatives[: len(info.spans) * r]
        if info.labels is not None:
            types = list(info.labels)
        else:
            types = sorted(set(info.spans) | set(negs))
            types = [types[i] for i in rng.permutation(len(types))][:max_types]
        if not info.spans and not types:
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

    def arrays(self, batch, accum: int, all_types: list[list[str]] | None = None) -> dict:
        """The step's arrays [A, b, ...] of a padded batch, with the family's label arrays
        (`Processor.label_arrays`: a bi-encoder's distinct labels, the same in every
        micro-batch). `all_types`: the global batch's types (several processes)."""
        union = None if all_types is None else list(dict.fromkeys(
            x for row in all_types for x in row))
        extra = self.processor.label_arrays(batch, union)
        out = {k: v.reshape(accum, -1, *v.shape[1:]) for k, v in batch.arrays().items()
               if k != "prompt_mask"}
        for k, v in extra.items():
            shared = k in self.processor.shared_label_arrays
            out[k] = np.broadcast_to(v, (accum, *v.shape)).copy() if shared else \
                v.reshape(accum, -1, *v.shape[1:])
        return out

    def __call__(self, examples: list[dict], types: list[list[str]], *, agree=None,
                 all_types: list[list[str]] | None = None) -> tuple[dict, dict]:
        """Arrays [A, b, ...] of `examples` (with several processes: this process's rows of
        the global batch, and `all_types` the types of all of it). `agree` maps this process's
        (T, W, C, tokens) to the global batch's (max, max, max, sum), so that every process
        pads to the same buckets."""
        batch = self._unpadded(examples, types)
        s = batch.shape
        need = np.array([s["T"], s["W"], s["C"], batch.attention_mask.sum()], np.int64)
        t, w, c, tokens = (int(x) for x in (need if agree is None else agree(need)))
        batch = self._pad(batch, t, w, c, len(examples))
        return (self.arrays(batch, self.accum, all_types),
                {"examples": len(examples), "tokens": tokens})

"""`gliner_jax.GLiNER`: the reference's user API (from_pretrained, predict_entities, inference,
save_pretrained) on the JAX model, so switching frameworks is changing an import.

Beyond the reference: texts longer than `max_len` words are split into overlapping word windows
and stitched (the reference silently cuts them); `truncate=True` restores its behaviour, with a
warning naming how many words were cut.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gliner_jax import decoding
from gliner_jax.convert import load_gliner, save_gliner
from gliner_jax.layers import Precision
from gliner_jax.modeling import GlinerModel
from gliner_jax.processing import BucketPolicy, Processor, normalize_labels, split_words

Labels = str | Sequence[str] | Mapping[str, str]


@functools.partial(jax.jit, static_argnames=("graphdef", "num_words", "num_classes"))
def _span_probs(graphdef, state, input_ids, attention_mask, words_mask, text_lengths, *,
                num_words: int, num_classes: int):
    model = nnx.merge(graphdef, state)
    logits, _ = model(input_ids, attention_mask, words_mask, text_lengths,
                      num_words=num_words, num_classes=num_classes)
    return jax.nn.sigmoid(logits.astype(jnp.float32))


@dataclasses.dataclass
class _Row:
    text: int                 # index of the text in the caller's list
    first_word: int           # offset of this row's first word in the text
    words: list[str]
    labels: tuple[list[str], list[str]]   # (prompts, output names)


class GLiNER:
    """A GLiNER span model with its tokenizer. Build it with `GLiNER.from_pretrained`."""

    def __init__(self, model: GlinerModel, tokenizer, *, buckets: BucketPolicy | None = None):
        self.model = model
        self.config = model.config
        self.tokenizer = tokenizer
        self.processor = Processor.from_config(tokenizer, self.config.class_token_index,
                                               self.config, buckets=buckets)
        self._graphdef, self._state = nnx.split(model)

    # -- files ------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, model_id: str | Path, *, dtype=None, param_dtype=jnp.float32,
                        local_files_only: bool = False, max_length: int | None = None,
                        buckets: BucketPolicy | None = None) -> GLiNER:
        """Load a directory in the reference layout, or a hub id (downloaded when online).

        dtype: compute dtype (e.g. jnp.bfloat16); param_dtype: storage of the parameters.
        max_length: overrides the config's max_len (words per window/text).
        """
        model, tokenizer = load_gliner(model_id, Precision(dtype, param_dtype),
                                       local_files_only=local_files_only)
        if max_length is not None:
            model.config = dataclasses.replace(model.config, max_len=int(max_length))
        return cls(model, tokenizer, buckets=buckets)

    def save_pretrained(self, out_dir: str | Path, dtype=None) -> Path:
        """Write the reference layout; `gliner.GLiNER.from_pretrained(out_dir)` loads it."""
        nnx.update(self.model, self._state)
        return save_gliner(self.model, self.tokenizer, out_dir, dtype=dtype)

    # -- prediction -------------------------------------------------------------------------

    def predict_entities(self, text: str, labels: Labels, threshold: float = 0.5,
                         flat_ner: bool = True, multi_label: bool = False,
                         **kwargs) -> list[dict[str, Any]]:
        """Entities of one text: [{"start", "end", "text", "label", "score"}, ...]."""
        return self.inference([text], labels, threshold=threshold, flat_ner=flat_ner,
                              multi_label=multi_label, **kwargs)[0]

    def inference(self, texts: Sequence[str], labels: Labels | Sequence[Labels],
                  batch_size: int = 8, threshold: float = 0.5, flat_ner: bool = True,
                  multi_label: bool = False, *, truncate: bool = False,
                  window_stride: int | None = None) -> list[list[dict[str, Any]]]:
        """Entities for each text. `labels`: one set for all texts, or one set per text.

        Texts longer than `max_len` words are predicted in windows of `max_len` words every
        `window_stride` words (default 3/4 of max_len) and stitched: offsets refer to the
        original text, an entity seen twice is kept once with its highest score, and flat-NER
        conflicts across windows are resolved by the same greedy rule. `truncate=True` cuts long
        texts at max_len words instead, exactly as the reference does.
        """
        if isinstance(texts, str):
            raise TypeError("inference takes a list of texts; use predict_entities for one text")
        texts = list(texts)
        label_sets = self._label_sets(labels, len(texts))
        splits = [split_words(t) if isinstance(t, str) else None for t in texts]
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text {i} is {type(t).__name__}, not str")
        rows = list(self._rows(splits, label_sets, truncate, window_stride))
        cands: dict[int, list[decoding.Span]] = {}
        for batch_rows, probs, lengths in self._predict_rows(rows, batch_size):
            names = [r.labels[1] for r in batch_rows]
            per_row = decoding.candidates(probs, lengths, names, threshold=threshold)
            for r, spans in zip(batch_rows, per_row, strict=True):
                cands.setdefault(r.text, []).extend(
                    sp._replace(start=sp.start + r.first_word, end=sp.end + r.first_word)
                    for sp in spans)
        out = []
        for i, text in enumerate(texts):
            merged = decoding.merge_candidates(cands.get(i, []), label_sets[i][1])
            spans = decoding.greedy_search(merged, flat_ner=flat_ner, multi_label=multi_label,
                                           presorted=True)
            offsets = [(a, b) for _, a, b in splits[i]]
            out.append(decoding.spans_to_entities(spans, text, offsets))
        return out

    batch_predict_entities = inference  # the reference's deprecated alias

    # -- internals --------------------------------------------------------------------------

    def _label_sets(self, labels, n: int) -> list[tuple[list[str], list[str]]]:
        per_text = (isinstance(labels, Sequence) and not isinstance(labels, str) and labels
                    and all(isinstance(x, list | tuple | Mapping) for x in labels))
        if per_text:
            if len(labels) != n:
                raise ValueError(f"per-text labels: {len(labels)} label sets for {n} texts")
            return [normalize_labels(x) for x in labels]
        return [normalize_labels(labels)] * n

    def _rows(self, splits, label_sets, truncate: bool, stride: int | None) -> Iterator[_Row]:
        size = self.config.max_len
        stride = stride or max(1, size * 3 // 4)
        if stride > size:
            raise ValueError(f"window_stride {stride} is larger than the window ({size} words)")
        for i, split in enumerate(splits):
            words = [w for w, _, _ in split]
            if not words:
                continue  # empty or whitespace-only text: no entities (as the reference)
            if len(words) <= size or truncate:
                yield _Row(i, 0, words, label_sets[i])  # the processor warns when it cuts
                continue
            starts = list(range(0, len(words) - size, stride)) + [len(words) - size]
            for s in starts:
                yield _Row(i, s, words[s:s + size], label_sets[i])

    def _predict_rows(self, rows: list[_Row], batch_size: int):
        """Yields (rows, probs [b,L,K,C] numpy, text_lengths) per batch; rows sorted by length
        so padding stays small."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        order = sorted(range(len(rows)), key=lambda j: len(rows[j].words))
        for lo in range(0, len(order), batch_size):
            chunk = [rows[j] for j in order[lo:lo + batch_size]]
            batch = self.processor.encode([r.words for r in chunk],
                                          [r.labels[0] for r in chunk],
                                          [r.labels[1] for r in chunk], pad=True)
            probs = self.span_probs(batch)
            yield chunk, probs[: len(chunk)], batch.text_lengths[: len(chunk)]

    def span_probs(self, batch) -> np.ndarray:
        """sigmoid(logits) [B, W, K, C] (float32 numpy) for a processed Batch."""
        s = batch.shape
        probs = _span_probs(self._graphdef, self._state, batch.input_ids, batch.attention_mask,
                            batch.words_mask, batch.text_lengths, num_words=s["W"],
                            num_classes=s["C"])
        return np.asarray(probs)

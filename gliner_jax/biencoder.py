"""`BiEncoderGLiNER`: the GLiNER API on a bi-encoder, with label vectors computed once.

A bi-encoder encodes each label alone, so a label's vector does not depend on the text. This
class keeps the vectors of every label it has seen (`encode_labels` fills the same store) and, per
label set, what the span kernel reads of them (`BiEncoderSpanModel.label_terms`); so thousands of
labels cost their encoding once per run, and each batch of texts only pays for the text encoder
and one [spans x labels] product. `python -m gliner_jax.predict` uses this through
`GLiNER.from_pretrained`, and `--label-cache FILE` keeps the vectors across runs.

The reference's names work too: `encode_labels(labels)`, `predict_with_embeds(text, embeddings,
labels)`, `batch_predict_with_embeds(texts, embeddings, labels)`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gliner_jax.biencoder_io import (
    labels_fingerprint,
    load_biencoder,
    read_label_cache,
    save_biencoder,
    save_label_cache,
)
from gliner_jax.layers import Precision
from gliner_jax.model import GLiNER, _ById
from gliner_jax.modeling.biencoder import BiEncoderSpanModel
from gliner_jax.processing import BucketPolicy, Processor, bucket, normalize_labels


class BiEncoderProcessor(Processor):
    """The text alone goes through the text encoder: no `<<ENT>> label ... <<SEP>>` prompt
    (reference `BaseBiEncoderProcessor.tokenize_inputs`); channel c of a row is its c-th label."""

    def _prompt(self, prompts):
        return []

    def encode(self, words, prompts, label_names=None, ner=None, *, pad=None, **metadata):
        batch = super().encode(words, prompts, label_names, ner, pad=False, **metadata)
        n = np.array([len(p) for p in batch.prompts])
        c = int(n.max())
        labels = None if batch.labels is None else batch.labels[..., :c]
        batch = dataclasses.replace(batch, prompt_mask=np.arange(c)[None] < n[:, None],
                                    labels=labels)
        return self.pad(batch) if (pad if pad is not None else self.buckets is not None) else batch


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _encode_labels(graphdef: _ById, state, ids, mask):
    return nnx.merge(graphdef.value, state).encode_labels(ids, mask)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _label_terms(graphdef: _ById, state, vectors):
    return nnx.merge(graphdef.value, state).label_terms(vectors)


@functools.partial(jax.jit, static_argnames=("graphdef", "num_words", "folded"))
def _bi_span_probs(graphdef: _ById, state, tables, terms, gather, input_ids, attention_mask,
                   words_mask, *, num_words: int, folded: bool):
    model = nnx.merge(graphdef.value, state)
    words = model.words(input_ids, attention_mask, words_mask, num_words=num_words,
                        encoder_tables=tables)
    logits = model.span_logits_shared(words, terms, folded=folded)
    if gather is not None:  # per-row label sets: [B, C] indices into the batch's union
        logits = jnp.take_along_axis(logits, gather[:, None, None, :], axis=-1)
    return jax.nn.sigmoid(logits.astype(jnp.float32))


class BiEncoderGLiNER(GLiNER):
    """A bi-encoder GLiNER with its two tokenizers. Build it with `GLiNER.from_pretrained`."""

    label_batch = 256         # labels per labels-encoder call
    max_label_sets = 4        # label sets whose kernel terms stay cached

    def __init__(self, model: BiEncoderSpanModel, tokenizer, labels_tokenizer, *,
                 buckets: BucketPolicy | None = None):
        super().__init__(model, tokenizer, buckets=buckets)
        self.processor = BiEncoderProcessor.from_config(tokenizer, -1, self.config,
                                                        buckets=buckets)
        self.labels_tokenizer = labels_tokenizer
        self._vectors: dict[str, np.ndarray] = {}        # label text -> pooled vector [D]
        self._terms: OrderedDict = OrderedDict()          # (labels, C) -> kernel terms
        self._given: dict[str, np.ndarray] | None = None  # label_embeddings of this call
        self._given_id = 0                                # tells calls' embeddings apart

    @classmethod
    def from_pretrained(cls, model_id, *, dtype=None, param_dtype=jnp.float32,
                        local_files_only: bool = False, max_length: int | None = None,
                        buckets: BucketPolicy | None = None) -> BiEncoderGLiNER:
        model, tokenizer, labels_tokenizer = load_biencoder(
            model_id, Precision(dtype, param_dtype), local_files_only=local_files_only)
        if max_length is not None:
            model.config = dataclasses.replace(model.config, max_len=int(max_length))
        return cls(model, tokenizer, labels_tokenizer, buckets=buckets)

    def _save_local(self, out_dir, dtype) -> Path:
        nnx.update(self.model, self._state)
        return save_biencoder(self.model, self.tokenizer, self.labels_tokenizer, out_dir,
                              dtype=dtype)

    # -- label vectors ----------------------------------------------------------------------

    def encode_labels(self, labels: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Label vectors [C, D] (float32 numpy), in the order given: the reference's
        `encode_labels`. They are also kept, so later predictions reuse them."""
        if isinstance(labels, str):
            labels = [labels]
        labels = list(labels)
        prompts, _ = normalize_labels(labels) if labels else ([], [])
        todo = [x for x in prompts if x not in self._vectors]
        step = batch_size or self.label_batch
        for lo in range(0, len(todo), step):
            chunk = todo[lo:lo + step]
            enc = self.labels_tokenizer(chunk, truncation=True, padding="longest")
            ids = np.asarray(enc["input_ids"], np.int32)
            mask = np.asarray(enc["attention_mask"], np.int32)
            rows, t = bucket(len(chunk), 8, half_steps=False), bucket(ids.shape[1], 8)
            ids = np.pad(ids, ((0, rows - ids.shape[0]), (0, t - ids.shape[1])),
                         constant_values=self.labels_tokenizer.pad_token_id or 0)
            mask = np.pad(mask, ((0, rows - mask.shape[0]), (0, t - mask.shape[1])))
            vecs = np.asarray(_encode_labels(self._static, self._state, ids, mask), np.float32)
            self._vectors.update(zip(chunk, vecs[: len(chunk)], strict=True))
        if not labels:
            return np.zeros((0, self.config.hidden_size), np.float32)
        return np.stack([self._vectors[x] for x in labels])

    def save_label_cache(self, path, labels: Sequence[str]) -> Path:
        """Write the vectors of `labels` (computed now if needed) to a file for later runs."""
        labels = list(dict.fromkeys(labels))
        return save_label_cache(path, labels, self.encode_labels(labels),
                                labels_fingerprint(self.model))

    def load_label_cache(self, path) -> int:
        """Read vectors written by `save_label_cache` for these weights; returns how many."""
        vectors = read_label_cache(path, labels_fingerprint(self.model))
        self._vectors.update(vectors)
        return len(vectors)

    # -- prediction -------------------------------------------------------------------------

    def inference(self, texts, labels, batch_size: int = 8, threshold: float = 0.5,
                  flat_ner: bool = True, multi_label: bool = False, *,
                  label_embeddings=None, **kwargs):
        """`GLiNER.inference`; `label_embeddings` [C, D] (from `encode_labels`) are used for
        `labels` (one label set, in the same order) instead of encoding them."""
        given = None
        if label_embeddings is not None:
            prompts, _ = normalize_labels(labels)
            vecs = np.asarray(label_embeddings, np.float32)
            if vecs.ndim != 2 or vecs.shape != (len(prompts), self.config.hidden_size):
                raise ValueError(
                    f"label_embeddings must be [{len(prompts)} labels, "
                    f"{self.config.hidden_size}], got {list(vecs.shape)}")
            given = dict(zip(prompts, vecs, strict=True))
            self._given_id += 1
        self._given = given
        try:
            return super().inference(texts, labels, batch_size, threshold, flat_ner,
                                     multi_label, **kwargs)
        finally:
            self._given = None
            for key in [k for k in self._terms if k[2] is not None]:  # this call's only
                del self._terms[key]

    def batch_predict_with_embeds(self, texts, labels_embeddings, labels, flat_ner=True,
                                  threshold=0.5, multi_label=False, batch_size=8, **kwargs):
        return self.inference(texts, labels, batch_size, threshold, flat_ner, multi_label,
                              label_embeddings=labels_embeddings, **kwargs)

    def predict_with_embeds(self, text, labels_embeddings, labels, flat_ner=True, threshold=0.5,
                            multi_label=False, **kwargs):
        return self.batch_predict_with_embeds([text], labels_embeddings, labels, flat_ner,
                                              threshold, multi_label, **kwargs)[0]

    # -- internals --------------------------------------------------------------------------

    def _label_set_terms(self, labels: tuple[str, ...], size: int):
        """Kernel terms of a label set, padded with zero vectors to `size` labels."""
        key = (labels, size, None if self._given is None else self._given_id)
        if key in self._terms:
            self._terms.move_to_end(key)
            return self._terms[key]
        if self._given is not None and all(x in self._given for x in labels):
            vecs = np.stack([self._given[x] for x in labels])
        else:
            vecs = self.encode_labels(list(labels))
        vecs = np.pad(vecs, ((0, size - len(labels)), (0, 0)))
        terms = _label_terms(self._static, self._state, vecs.astype(self._param_dtype()))
        self._terms[key] = terms
        if len(self._terms) > self.max_label_sets:
            self._terms.popitem(last=False)
        return terms

    def _param_dtype(self):
        return jax.tree.leaves(nnx.state(self.model.prompt_rep_layer, nnx.Param))[0].dtype

    def _forward(self, batch) -> np.ndarray:
        s = batch.shape
        rows = [tuple(p) for p in batch.prompts]
        if all(r == rows[0] for r in rows):
            terms, gather = self._label_set_terms(rows[0], s["C"]), None
        else:  # per-row label sets: score the union once, then pick each row's labels
            union = tuple(dict.fromkeys(x for r in rows for x in r))
            terms = self._label_set_terms(union, bucket(len(union), 4))
            where = {x: i for i, x in enumerate(union)}
            gather = np.zeros((s["B"], s["C"]), np.int32)
            for i, r in enumerate(rows):
                gather[i, : len(r)] = [where[x] for x in r]
        d = self.config.hidden_size
        folded = terms["prompts"].shape[0] * 3 < 4 * d  # see span_logits_shared
        probs = _bi_span_probs(self._static, self._state, self._tables[1], terms, gather,
                               *self._place_rows(batch.input_ids, batch.attention_mask,
                                                 batch.words_mask),
                               num_words=s["W"], folded=folded)
        return np.asarray(probs)

"""`BiEncoderGLiNER` (span) and `BiEncoderTokenGLiNER` (token level): the GLiNER API on a
bi-encoder, with label vectors computed once.

A bi-encoder encodes each label alone, so a label's vector does not depend on the text. This
class keeps the vectors of every label it has seen (`encode_labels` fills the same store) and, per
label set, what the scoring kernel reads of them (the model's `label_terms`); so thousands of
labels cost their encoding once per run, and each batch of texts only pays for the text encoder
and one [spans (or words) x labels] product. `python -m gliner_jax.predict` uses this through
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

from gliner_jax import decoding
from gliner_jax.biencoder_io import labels_fingerprint, read_label_cache, save_label_cache
from gliner_jax.model import GLiNER, _ById
from gliner_jax.modeling.biencoder import BiEncoder
from gliner_jax.processing import BucketPolicy, Processor, bucket, normalize_labels


class BiEncoderProcessor(Processor):
    """The text alone goes through the text encoder: no `<<ENT>> label ... <<SEP>>` prompt
    (reference `BaseBiEncoderProcessor.tokenize_inputs`); channel c of a row is its c-th label.
    The labels go through `labels_tokenizer`, each alone."""

    labels_tokenizer = None
    shared_label_arrays = ("labels_input_ids", "labels_attention_mask")

    @property
    def tokenizers(self) -> tuple:
        return (self.tokenizer, self.labels_tokenizer)

    def _prompt(self, prompts):
        return []

    def tokenize_labels(self, labels: Sequence[str], min_tokens: int = 8,
                        half_steps: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(input ids, attention mask) [U, T] of labels for the labels encoder: rows padded to a
        power of two from 8 (zero rows: masked out), tokens to a bucket from `min_tokens` (few
        compiled shapes)."""
        labels = list(labels)
        if labels:
            enc = self.labels_tokenizer(labels, truncation=True, padding="longest")
            ids = np.asarray(enc["input_ids"], np.int32).reshape(len(labels), -1)
            mask = np.asarray(enc["attention_mask"], np.int32).reshape(len(labels), -1)
        else:
            ids = mask = np.zeros((0, 1), np.int32)
        rows = bucket(len(labels), 8, half_steps=False)
        t = bucket(ids.shape[1], min_tokens, half_steps=half_steps)
        ids = np.pad(ids, ((0, rows - ids.shape[0]), (0, t - ids.shape[1])),
                     constant_values=self.labels_tokenizer.pad_token_id or 0)
        mask = np.pad(mask, ((0, rows - mask.shape[0]), (0, t - mask.shape[1])))
        return ids, mask

    def label_arrays(self, batch, labels: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """A training batch's labels, as the reference's `BiEncoderSpanDataCollator` gives them:
        the distinct labels once (`labels_input_ids` / `labels_attention_mask` [U, T], shared by
        all rows), `labels_gather_indices` [B, C] into them and `prompts_embedding_mask` [B, C].
        `labels`: the distinct labels to encode (default: those of the batch's rows; a
        multi-process run passes the global batch's, so that every process holds the same)."""
        union = list(dict.fromkeys(x for row in batch.prompts for x in row)
                     if labels is None else labels)
        where = {x: i for i, x in enumerate(union)}
        b, c = batch.prompt_mask.shape
        gather = np.zeros((b, c), np.int32)
        for i, row in enumerate(batch.prompts):
            gather[i, : len(row)] = [where[x] for x in row]
        # training: label tokens padded to powers of two from 16 (labels are short: one shape)
        ids, mask = self.tokenize_labels(union, min_tokens=16, half_steps=False)
        return {"labels_input_ids": ids, "labels_attention_mask": mask,
                "labels_gather_indices": gather, "prompts_embedding_mask": batch.prompt_mask}

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


@functools.partial(jax.jit, static_argnames=("graphdef", "num_words", "folded", "best"))
def _bi_span_probs(graphdef: _ById, state, tables, terms, gather, input_ids, attention_mask,
                   words_mask, class_mask, *, num_words: int, folded: bool, best: bool = False):
    """sigmoid(logits) [B, W, K, C]; `best`: only each span's best class instead (`best_class`),
    so that thousands of labels never leave the device as a [B, W, K, C] array."""
    model = nnx.merge(graphdef.value, state)
    words = model.words(input_ids, attention_mask, words_mask, num_words=num_words,
                        encoder_tables=tables)
    logits = model.span_logits_shared(words, terms, folded=folded)
    if gather is not None:  # per-row label sets: [B, C] indices into the batch's union
        logits = jnp.take_along_axis(logits, gather[:, None, None, :], axis=-1)
    probs = jax.nn.sigmoid(logits.astype(jnp.float32))
    return best_class(probs, class_mask) if best else probs


def best_class(probs, class_mask):
    """(best [B, W, K], arg [B, W, K]): the highest probability of each span over the row's
    valid classes (`class_mask` [B, C]; NaN counts as -inf, never a candidate) and its lowest
    channel, the greedy search's first candidate there (`decoding.best_candidates`). Computed
    on the probabilities, not the logits: distinct logits can share a float32 probability (it
    saturates at 1.0), and ties go to the lowest channel."""
    p = jnp.where(class_mask[:, None, None, :] & ~jnp.isnan(probs), probs, -jnp.inf)
    arg = jnp.argmax(p, axis=-1)
    return jnp.take_along_axis(p, arg[..., None], axis=-1)[..., 0], arg.astype(jnp.int32)


class BiEncoderGLiNER(GLiNER):
    """A bi-encoder GLiNER with its two tokenizers. Build it with `GLiNER.from_pretrained`
    (the family table names this class for bi-encoder directories)."""

    label_batch = 256         # labels per labels-encoder call
    max_label_sets = 4        # label sets whose kernel terms stay cached

    def __init__(self, model: BiEncoder, tokenizer, labels_tokenizer, *,
                 buckets: BucketPolicy | None = None):
        super().__init__(model, tokenizer, buckets=buckets)
        self.processor = BiEncoderProcessor.from_config(tokenizer, -1, self.config,
                                                        buckets=buckets)
        self.processor.labels_tokenizer = self.labels_tokenizer = labels_tokenizer
        self._vectors: dict[str, np.ndarray] = {}        # label text -> pooled vector [D]
        self._terms: OrderedDict = OrderedDict()          # (labels, C) -> kernel terms
        self._given: dict[str, np.ndarray] | None = None  # label_embeddings of this call
        self._given_id = 0                                # tells calls' embeddings apart

    @property
    def tokenizers(self) -> tuple:
        return (self.tokenizer, self.labels_tokenizer)

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
            ids, mask = self.processor.tokenize_labels(chunk)
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
        terms = _label_terms(self._static, self._state, vecs.astype(self._param_dtype))
        self._terms[key] = terms
        if len(self._terms) > self.max_label_sets:
            self._terms.popitem(last=False)
        return terms

    @functools.cached_property
    def _param_dtype(self):
        """The parameters' storage dtype: label vectors enter `label_terms` in it."""
        return jax.tree.leaves(nnx.state(self.model.token_rep_layer.labels_encoder,
                                         nnx.Param))[0].dtype

    def _row_candidates(self, rows, batch_size: int, thresholds, multi, thr=None):
        """Without multi-label, only each span's best class can be kept (decoding module
        docstring): it is picked on device, and [B, W, K] comes back instead of [B, W, K, C]."""
        if any(multi[r.text] for r in rows):
            yield from super()._row_candidates(rows, batch_size, thresholds, multi, thr)
            return
        for chunk, batch in self._batches(rows, batch_size):
            self._refresh_tables()
            n = self.chunk_rows(batch.input_ids.shape[1])
            best = np.zeros(batch.span_mask.shape, np.float32)
            arg = np.zeros(batch.span_mask.shape, np.int32)
            for lo in range(0, len(chunk), n):
                hi = min(lo + n, len(chunk))
                part = batch if len(chunk) <= n else self._rows_of(batch, lo, hi)
                b, a = self._forward(part, best=True)
                best[lo:hi, : b.shape[1]], arg[lo:hi, : b.shape[1]] = b[: hi - lo], a[: hi - lo]
            yield chunk, decoding.best_candidates(
                best, arg, batch.text_lengths, [thresholds[r.text] for r in chunk]), None

    def _batch_terms(self, batch):
        """(label-set terms, gather [B, C] or None) of a padded batch: one label set shared by
        the rows, or the union of the rows' sets scored once and each row's picked from it."""
        s = batch.shape
        rows = [tuple(p) for p in batch.prompts]
        if all(r == rows[0] for r in rows):
            return self._label_set_terms(rows[0], s["C"]), None
        union = tuple(dict.fromkeys(x for r in rows for x in r))
        where = {x: i for i, x in enumerate(union)}
        gather = np.zeros((s["B"], s["C"]), np.int32)
        for i, r in enumerate(rows):
            gather[i, : len(r)] = [where[x] for x in r]
        return self._label_set_terms(union, bucket(len(union), 4)), gather

    def _forward(self, batch, best: bool = False):
        terms, gather = self._batch_terms(batch)
        d = self.config.hidden_size
        folded = terms["prompts"].shape[0] * 3 < 4 * d  # see span_logits_shared
        out = _bi_span_probs(self._static, self._state, self._tables[1], terms, gather,
                             *self._place_rows(batch.input_ids, batch.attention_mask,
                                               batch.words_mask, batch.prompt_mask),
                             num_words=batch.shape["W"], folded=folded, best=best)
        return tuple(map(np.asarray, out)) if best else np.asarray(out)


@functools.partial(jax.jit, static_argnames=("graphdef", "num_words"))
def _bi_token_probs(graphdef: _ById, state, tables, terms, gather, input_ids, attention_mask,
                    words_mask, *, num_words: int):
    """sigmoid(logits) [B, W, C, 3] of a token-level bi-encoder against a label set's terms."""
    model = nnx.merge(graphdef.value, state)
    words = model.words(input_ids, attention_mask, words_mask, num_words=num_words,
                        encoder_tables=tables)
    logits = model.token_logits_shared(words, terms)
    if gather is not None:  # per-row label sets: [B, C] indices into the batch's union
        logits = jnp.take_along_axis(logits, gather[:, None, :, None], axis=2)
    return jax.nn.sigmoid(logits.astype(jnp.float32))


class BiEncoderTokenGLiNER(BiEncoderGLiNER):
    """A token-level bi-encoder GLiNER (gliner `BiEncoderTokenGLiNER`): the label cache of
    `BiEncoderGLiNER` with the token-level scorer, decoded as the uni-encoder token model
    (word probabilities stitched over windows, then the reference's `TokenDecoder` rules)."""

    _row_candidates = GLiNER._row_candidates  # no best-class shortcut: a word's three scores

    def _forward(self, batch, best: bool = False):
        terms, gather = self._batch_terms(batch)
        out = _bi_token_probs(self._static, self._state, self._tables[1], terms, gather,
                              *self._place_rows(batch.input_ids, batch.attention_mask,
                                                batch.words_mask),
                              num_words=batch.shape["W"])
        return np.asarray(out)

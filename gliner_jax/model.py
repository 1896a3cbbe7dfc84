"""`gliner_jax.GLiNER`: the reference's user API (from_pretrained, predict_entities, inference,
save_pretrained) on the JAX model, so switching frameworks is changing an import.

Relex models (`relations_layer` in the config) also take relation labels, as the reference's
`UniEncoderSpanRelexGLiNER`: `inference(..., relations=[...])` returns (entities, relations)
and `predict_relations` one text's pair (see `gliner_jax.relations`).

Beyond the reference: texts longer than `max_len` words are split into overlapping word windows
and stitched (the reference silently cuts them); `truncate=True` restores its behaviour, with a
warning naming how many words were cut.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gliner_jax import decoding
from gliner_jax import relations as relex
from gliner_jax.convert import ModelLoadError, dir_family, resolve_model_dir
from gliner_jax.layers import Precision
from gliner_jax.modeling.families import batch_coupled, symbol
from gliner_jax.processing import BucketPolicy, Processor, normalize_labels, split_words

Labels = str | Sequence[str] | Mapping[str, str]


class _ById:
    """A static jit argument hashed by identity. Hashing an NNX GraphDef walks the whole module
    tree on every call (~5-10 ms, a tenth of a batch-1 prediction)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


@functools.partial(jax.jit, static_argnames=("graphdef", "num_words", "num_classes"))
def _span_probs(graphdef: _ById, state, tables, input_ids, attention_mask, words_mask,
                text_lengths, *, num_words: int, num_classes: int):
    model = nnx.merge(graphdef.value, state)
    logits, _ = model(input_ids, attention_mask, words_mask, text_lengths,
                      num_words=num_words, num_classes=num_classes, encoder_tables=tables)
    return jax.nn.sigmoid(logits.astype(jnp.float32))


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _encoder_tables(graphdef: _ById, state):
    return nnx.merge(graphdef.value, state).encoder_tables()


def plan_windows(num_words: int, size: int, stride: int, min_overlap: int = 0,
                 word_tokens: Sequence[int] | None = None,
                 budget: int | None = None) -> list[tuple[int, int]]:
    """Word windows [first, end) over a text: `size` words every `stride` words, consecutive
    windows overlapping by at least `min_overlap` words; the last window is the longest one that
    ends at the last word. With `word_tokens` (sub-tokens per word) a window also holds at most
    `budget` sub-tokens, so that a tokenizer limit (BERT: 512) never cuts it."""
    cum = None if word_tokens is None else np.concatenate([[0], np.cumsum(word_tokens)])

    def fits(s: int, e: int) -> bool:
        return e - s <= size and (cum is None or cum[e] - cum[s] <= budget)

    def longest(s: int) -> int:
        e = min(s + size, num_words)
        if cum is not None:
            e = min(e, int(np.searchsorted(cum, cum[s] + budget, side="right")) - 1)
        return max(e, s + 1)  # a word longer than the budget alone: the processor warns

    windows, s = [], 0
    while True:
        e = longest(s)
        windows.append((s, e))
        if e >= num_words:
            return windows
        # a window cut short by the budget moves on by the same fraction of itself
        nxt = s + max(1, min(stride, (e - s) * stride // size, e - s - min_overlap))
        if fits(nxt, num_words):
            last = nxt
            while last - 1 > s and fits(last - 1, num_words):
                last -= 1
            windows.append((last, num_words))
            return windows
        s = nxt


def _per_text(value, n: int, name: str) -> list:
    """One value for all texts, or a list of one value per text."""
    if isinstance(value, list | tuple | np.ndarray):
        if len(value) != n:
            raise ValueError(f"{name}: {len(value)} values for {n} texts")
        return list(value)
    return [value] * n


@dataclasses.dataclass
class _Row:
    text: int                 # index of the text in the caller's list
    first_word: int           # offset of this row's first word in the text
    words: list[str]
    labels: tuple[list[str], list[str]]   # (prompts, output names)
    relations: list[str] | None = None    # relation labels (relex models)


class GLiNER:
    """A GLiNER model (any family of `modeling.families`) with its tokenizer. Build it with
    `GLiNER.from_pretrained`."""

    mesh: jax.sharding.Mesh | None = None  # set by use_mesh: batch rows split over its devices
    _shards = 1                            # pieces the mesh splits a batch's rows into

    def __init__(self, model: nnx.Module, tokenizer, *, buckets: BucketPolicy | None = None):
        self.model = model
        self.config = model.config
        self.tokenizer = tokenizer
        self.processor = Processor.from_config(tokenizer, self.config.class_token_index,
                                               self.config, buckets=buckets)
        self._graphdef, self._state = nnx.split(model)
        self._static = _ById(self._graphdef)
        self._tables = (None, None)  # (state they were computed from, tables)
        self.head = decoding.HEADS[self.config.family.head]
        self.head_name = self.config.family.head
        # batch-coupled span modes (markerV1/V2): the reference's batches, in input order, whole
        self._coupled = batch_coupled(self.config)
        self.extracts_relations = self.config.family.relations

    # -- files ------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, model_id: str | Path, *, dtype=None, param_dtype=jnp.float32,
                        revision: str | None = None, cache_dir: str | Path | None = None,
                        token: str | bool | None = None, force_download: bool = False,
                        local_files_only: bool = False, max_length: int | None = None,
                        buckets: BucketPolicy | None = None) -> GLiNER:
        """Load a directory in the reference layout, or a hub id "org/name".

        A hub id is fetched through huggingface_hub into its cache (HF_HOME, or `cache_dir`) at
        `revision` (branch, tag or commit; default main) and read from there next time;
        HF_ENDPOINT, HF_TOKEN (or `token`) and HF_HUB_OFFLINE apply.
        dtype: compute dtype (e.g. jnp.bfloat16); param_dtype: storage of the parameters.
        max_length: overrides the config's max_len (words per window/text).
        """
        hub = {k: v for k, v in dict(revision=revision, cache_dir=cache_dir, token=token,
                                     force_download=force_download).items() if v}
        local = resolve_model_dir(model_id, local_files_only=local_files_only, **hub)
        if not Path(model_id).expanduser().exists() \
                and not (local / "gliner_config.json").is_file():
            raise ModelLoadError(f"hub repo {model_id} has no gliner_config.json: it is not a "
                                 "GLiNER model")
        # the family row names the API class and the loader (a bi-encoder: BiEncoderGLiNER);
        # a subclass of that class (the server's) loads as itself
        fam = dir_family(local, local_files_only=local_files_only)
        api = symbol(fam.api)
        if issubclass(cls, api):
            api = cls
        elif not issubclass(api, cls):
            raise ModelLoadError(f"{model_id} is a {fam.name} model: load it with "
                                 f"{api.__name__}.from_pretrained or GLiNER.from_pretrained")
        model, *tokenizers = symbol(fam.load)(local, Precision(dtype, param_dtype),
                                              local_files_only=local_files_only,
                                              fast_tokenizer=True)
        if max_length is not None:
            model.config = dataclasses.replace(model.config, max_len=int(max_length))
        return api(model, *tokenizers, buckets=buckets)

    @property
    def tokenizers(self) -> tuple:
        """What the family's writer takes after the model (the text tokenizer; a bi-encoder's
        labels tokenizer too)."""
        return (self.tokenizer,)

    def save_pretrained(self, out_dir: str | Path, dtype=None, *, push_to_hub: bool = False,
                        repo_id: str | None = None, **push_to_hub_kwargs) -> Path | str:
        """Write the reference layout; `gliner.GLiNER.from_pretrained(out_dir)` loads it.

        push_to_hub: also upload the directory to the hub repo `repo_id` (default: the
        directory's name, as the reference), created if missing, in one commit; returns the
        commit's URL then. push_to_hub_kwargs: commit_message, private, token, branch,
        create_pr (the reference's names). HF_ENDPOINT and HF_TOKEN apply.
        """
        out = self._save_local(out_dir, dtype)
        if not push_to_hub:
            return out
        from gliner_jax.hub import upload

        return upload(out, repo_id or Path(out_dir).name, **push_to_hub_kwargs)

    def _save_local(self, out_dir, dtype) -> Path:
        nnx.update(self.model, self._state)
        return symbol(self.config.family.save)(self.model, *self.tokenizers, out_dir,
                                               dtype=dtype)

    def use_mesh(self, mesh: jax.sharding.Mesh | None) -> GLiNER:
        """Run data-parallel over `mesh` (e.g. `sharding.make_mesh((-1, 1, 1),
        jax.local_devices())`): the parameters are placed by the rules table of
        `gliner_jax.sharding` (replicated on a data-only mesh), and every batch's rows are split
        over the mesh's batch axes (batches are padded to a multiple of their size). Each row is
        computed as on one device. `None` goes back to the default device."""
        from gliner_jax.sharding import batch_shards, state_shardings

        pure = nnx.to_pure_dict(self._state)
        where = jax.devices()[0] if mesh is None else state_shardings(self._state, mesh)
        nnx.replace_by_pure_dict(self._state, jax.device_put(pure, where))
        self.mesh = mesh
        self._tables = (None, None)
        self._shards = 1 if mesh is None else batch_shards(mesh)
        if mesh is not None:
            policy = self.processor.buckets or self.processor.default_buckets()
            self.processor.buckets = dataclasses.replace(
                policy, min_batch=math.lcm(policy.min_batch, self._shards))
        return self

    def _place_rows(self, *arrays):
        """Batch arrays split by rows over the mesh (unchanged without one)."""
        if self.mesh is None:
            return arrays
        from gliner_jax.sharding import batch_sharding

        return tuple(jax.device_put(x, batch_sharding(self.mesh, np.ndim(x))) for x in arrays)

    # -- prediction -------------------------------------------------------------------------

    def predict_entities(self, text: str, labels: Labels, threshold: float = 0.5,
                         flat_ner: bool = True, multi_label: bool = False,
                         **kwargs) -> list[dict[str, Any]]:
        """Entities of one text: [{"start", "end", "text", "label", "score"}, ...]."""
        if self.extracts_relations:
            kwargs.setdefault("return_relations", False)
        return self.inference([text], labels, threshold=threshold, flat_ner=flat_ner,
                              multi_label=multi_label, **kwargs)[0]

    def inference(self, texts: Sequence[str], labels: Labels | Sequence[Labels],
                  batch_size: int = 8, threshold: float | Sequence[float] = 0.5,
                  flat_ner: bool | Sequence[bool] = True,
                  multi_label: bool | Sequence[bool] = False, *, truncate: bool = False,
                  window_size: int | None = None, window_stride: int | None = None,
                  progress: Callable[[int], None] | None = None,
                  relations: str | Sequence[str] | Sequence[Sequence[str]] | None = None,
                  adjacency_threshold: float | Sequence[float] | None = None,
                  relation_threshold: float | Sequence[float] | None = None,
                  return_relations: bool | None = None, merge_entities: bool = False):
        """Entities for each text. `labels`: one set for all texts, or one set per text.

        Texts longer than `window_size` words (default: the config's window_size, else max_len)
        are predicted in windows of `window_size` words every `window_stride` words (default:
        3/4 of the window, and never so far that a span of max_width words would fit in no
        window) and stitched:
        offsets refer to the original text, a span seen in two windows is kept once with its
        highest score, and flat-NER conflicts across windows are resolved by the same greedy
        rule as within one window. Texts that fit in one window get exactly the reference's
        result. `truncate=True` cuts long texts at max_len words instead, as the reference does.
        `progress(n)` is called after each batch with the number of texts it completed.
        threshold, flat_ner and multi_label may also be given per text (a list, one value per
        text): the server batches requests that ask for different ones.

        Relex models: `relations` (one label, a list, or one list per text) and
        `return_relations` (default True, as the reference) make the result (entities,
        relations): per text, [{"head": {"start", "end", "text", "type", "entity_idx"},
        "tail": {...}, "relation", "score"}, ...]. adjacency_threshold and relation_threshold
        default to threshold.

        `merge_entities=True`: NuNER Zero's post-processing (`decoding.merge_entities`): an
        entity that follows one of the same label with at most one character between them is
        joined to it. Not in the reference; not with relations (it renumbers the entities).
        """
        if isinstance(texts, str):
            raise TypeError("inference takes a list of texts; use predict_entities for one text")
        texts = list(texts)
        label_sets = self._label_sets(labels, len(texts))
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text {i} is {type(t).__name__}, not str")
        rel_sets = relex.relation_sets(self, relations, return_relations, len(texts))
        if merge_entities and rel_sets is not None:
            raise ValueError("merge_entities cannot be combined with relations (it renumbers "
                             "the entities the relations point at)")
        splits = [split_words(t) for t in texts]
        spans = self._word_spans(splits, label_sets, batch_size=batch_size, threshold=threshold,
                                 flat_ner=flat_ner, multi_label=multi_label, truncate=truncate,
                                 window_size=window_size, window_stride=window_stride,
                                 progress=progress, relation_sets=rel_sets,
                                 adjacency_threshold=adjacency_threshold,
                                 relation_threshold=relation_threshold)
        if rel_sets is not None:
            spans, rels = spans
        ents = [decoding.spans_to_entities(sp, text, [(a, b) for _, a, b in split])
                for sp, text, split in zip(spans, texts, splits, strict=True)]
        if merge_entities:
            ents = [decoding.merge_entities(e, t) for e, t in zip(ents, texts, strict=True)]
        if rel_sets is None:
            return ents
        return ents, [relex.relations_to_dicts(r, e, sp)
                      for r, e, sp in zip(rels, ents, spans, strict=True)]

    def predict_relations(self, text: str, labels: Labels, relations: str | Sequence[str],
                          flat_ner: bool = True, threshold: float = 0.5,
                          adjacency_threshold: float | None = None,
                          relation_threshold: float | None = None, multi_label: bool = False,
                          **kwargs) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(entities, relations) of one text (relex models; the reference's signature)."""
        ents, rels = self.inference([text], labels, relations=relations, flat_ner=flat_ner,
                                    threshold=threshold, multi_label=multi_label,
                                    adjacency_threshold=adjacency_threshold,
                                    relation_threshold=relation_threshold,
                                    return_relations=True, **kwargs)
        return ents[0], rels[0]

    def predict_word_spans(self, words: Sequence[Sequence[str]], labels: Labels,
                           **kwargs) -> list[list[decoding.Span]]:
        """Decoded spans (word indices, inclusive ends) of texts given as word lists, with the
        windows of `inference` (same keyword arguments) for texts longer than a window: how
        the evaluation scores ~300-word passages without re-splitting their words."""
        splits = [[(w, 0, 0) for w in ws] for ws in words]
        return self._word_spans(splits, self._label_sets(labels, len(splits)), **kwargs)

    def _word_spans(self, splits, label_sets, *, batch_size: int = 8,
                    threshold: float | Sequence[float] = 0.5,
                    flat_ner: bool | Sequence[bool] = True,
                    multi_label: bool | Sequence[bool] = False, truncate: bool = False,
                    window_size: int | None = None, window_stride: int | None = None,
                    progress: Callable[[int], None] | None = None, relation_sets=None,
                    adjacency_threshold=None, relation_threshold=None):
        """Decoded spans per text; with `relation_sets` (relex), (spans, relation candidates)."""
        thresholds = _per_text(threshold, len(splits), "threshold")
        adj_thr = thresholds if adjacency_threshold is None else _per_text(
            adjacency_threshold, len(splits), "adjacency_threshold")
        rel_thr = thresholds if relation_threshold is None else _per_text(
            relation_threshold, len(splits), "relation_threshold")
        flat = _per_text(flat_ner, len(splits), "flat_ner")
        multi = _per_text(multi_label, len(splits), "multi_label")
        size, stride = self.window_shape(window_size, window_stride)
        rows = list(self._rows(splits, label_sets, truncate, size, stride))
        for r in rows if relation_sets is not None else ():
            r.relations = relation_sets[r.text]
        pending = [0] * len(splits)  # rows still to predict, per text
        for r in rows:
            pending[r.text] += 1
        empty = pending.count(0)  # empty texts have no rows: already done
        if progress is not None and empty:
            progress(empty)
        cands: dict[int, list[decoding.Candidates]] = {}
        rel_cands: dict[int, list[relex.Relation]] = {}
        thr = {"entity": thresholds, "adjacency": adj_thr, "relation": rel_thr}
        parts: dict[int, list] = {}  # stitched heads: (first word, word probs) per window
        for batch_rows, per_row, rels in self._row_candidates(rows, batch_size, thresholds,
                                                              multi, thr):
            done = 0
            for i, r in enumerate(batch_rows if rels is not None else ()):
                rel_cands.setdefault(r.text, []).extend(x.shifted(r.first_word) for x in rels[i])
            for r, found in zip(batch_rows, per_row, strict=True):
                if self.head.stitched:  # decoded per text once its windows are stitched
                    parts.setdefault(r.text, []).append((r.first_word, found))
                else:
                    cands.setdefault(r.text, []).append(found.shifted(r.first_word))
                pending[r.text] -= 1
                done += pending[r.text] == 0
                if pending[r.text] == 0 and r.text in parts:
                    word_probs = decoding.stitch_windows(parts.pop(r.text))
                    cands[r.text] = self.head.arrays(
                        word_probs[None], [len(word_probs)], [r.labels[1]],
                        threshold=[thresholds[r.text]], multi_label=[multi[r.text]])
            if progress is not None and done:
                progress(done)
        out = [decoding.select(cands.get(i, []), label_sets[i][1], flat_ner=flat[i],
                               multi_label=multi[i], head=self.head_name)
               for i in range(len(splits))]
        if relation_sets is None:
            return out
        return out, [relex.merge_relations(rel_cands.get(i, [])) for i in range(len(splits))]

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

    def window_shape(self, size: int | None = None, stride: int | None = None) -> tuple[int, int]:
        """(window size, stride) in words, defaults filled in and checked.

        Consecutive windows overlap by size - stride >= max_width - 1 words, so that every
        span the model can score (at most max_width words) lies whole inside some window.
        """
        max_len, k = self.config.max_len, self.config.max_width
        size = size or self.config.window_size or max_len
        if not k <= size <= max_len:
            raise ValueError(f"window size must be between max_width={k} and max_len={max_len} "
                             f"words, got {size}")
        longest = size - k + 1  # the largest stride that keeps an overlap of k - 1 words
        stride = stride or max(1, min(size * 3 // 4, longest))
        if not 1 <= stride <= longest:
            raise ValueError(f"window stride must be between 1 and {longest} words (window "
                             f"{size} - max_width {k} + 1), got {stride}: larger strides would "
                             "miss spans that cross a window boundary")
        return size, stride

    def _rows(self, splits, label_sets, truncate: bool, size: int, stride: int) -> Iterator[_Row]:
        for i, split in enumerate(splits):
            words = [w for w, _, _ in split]
            if not words:
                continue  # empty or whitespace-only text: no entities (as the reference)
            if len(words) <= size or truncate:
                yield _Row(i, 0, words, label_sets[i])  # the processor warns when it cuts
                continue
            tokens, budget = self._token_budget(words, label_sets[i][0])
            for s, e in plan_windows(len(words), size, stride, self.config.max_width - 1,
                                     tokens, budget):
                yield _Row(i, s, words[s:e], label_sets[i])

    def _token_budget(self, words: list[str], prompts: list[str]):
        """(sub-tokens per word, sub-tokens left for words after the prompt), or (None, None)
        when the tokenizer has no length limit."""
        limit = self.processor.model_max_length
        if limit is None:
            return None, None
        tok = self.tokenizer
        prompt = len(tok(self.processor._prompt(list(dict.fromkeys(prompts))),
                         is_split_into_words=True)["input_ids"])
        # verbose=False: the whole text is longer than the tokenizer's limit on purpose (it is
        # about to be windowed); transformers would log "Token indices sequence length ..."
        ids = tok(words, is_split_into_words=True, add_special_tokens=False,
                  verbose=False).word_ids()
        counts = np.bincount([w for w in ids if w is not None], minlength=len(words))
        return counts, limit - prompt

    def _batches(self, rows: list[_Row], batch_size: int):
        """Yields (rows, padded Batch) per batch; rows sorted by length so padding stays small
        (kept in input order for batch-coupled span modes, as the reference)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        order = list(range(len(rows)))
        if not self._coupled:
            order.sort(key=lambda j: len(rows[j].words))
        for lo in range(0, len(order), batch_size):
            chunk = [rows[j] for j in order[lo:lo + batch_size]]
            rel_kw = {"relations": [r.relations for r in chunk]} \
                if chunk[0].relations is not None else {}
            yield chunk, self.processor.encode([r.words for r in chunk],
                                               [r.labels[0] for r in chunk],
                                               [r.labels[1] for r in chunk], pad=True, **rel_kw)

    def _predict_rows(self, rows: list[_Row], batch_size: int, thresholds=None):
        """Yields (rows, probs numpy, text_lengths, relation candidates per row or None) per
        batch (see `_batches`); `thresholds`: relex models' {"entity", "adjacency",
        "relation"} per text."""
        for chunk, batch in self._batches(rows, batch_size):
            if chunk[0].relations is not None:
                probs, rels = relex.relex_rows(self, batch, chunk, thresholds)
            else:
                probs, rels = self.probs(batch), None
            yield chunk, probs[: len(chunk)], batch.text_lengths[: len(chunk)], rels

    def _row_candidates(self, rows: list[_Row], batch_size: int, thresholds, multi, thr=None):
        """Yields (rows, per row: decoding.Candidates, or for a stitched head (token level) its
        word probabilities, relation candidates per row or None) per batch; `thresholds` /
        `multi`: per text; `thr`: relex thresholds (`_predict_rows`)."""
        for chunk, probs, lengths, rels in self._predict_rows(rows, batch_size, thr):
            if self.head.stitched:
                yield chunk, [probs[j, : lengths[j]] for j in range(len(chunk))], rels
                continue
            yield chunk, self.head.arrays(probs, lengths, [r.labels[1] for r in chunk],
                                          threshold=[thresholds[r.text] for r in chunk],
                                          multi_label=[multi[r.text] for r in chunk]), rels

    chunk_tokens = 1536  # see probs

    def probs(self, batch) -> np.ndarray:
        """sigmoid(logits) (float32 numpy) for a processed Batch: [B, W, K, C] for span models,
        [B, W, C, 3] (start, end, inside) for token-level ones (`decoding.HEADS`).

        A large batch runs in chunks of at most `chunk_tokens` padded tokens (8 or 16 sentences
        of ~100 tokens, 2 documents of 600; a power of two of rows), each cut down to its own
        length buckets: rows come sorted by length, so chunks pad less than the whole batch, and
        their activations (12 KB a token in the FFN) stay in the CPU's cache. Measured on this
        project's 2-core machine: 32 sentences ~1.5x faster, 8 documents ~1.35x (BENCHMARKS.md).
        Rows are independent: the numbers are the same up to float32 rounding. (Batch-coupled
        span modes run whole: there a row's scores depend on its batch.)
        """
        self._refresh_tables()
        rows = self.chunk_rows(batch.input_ids.shape[1])
        if batch.num_rows <= rows or self._coupled:
            return self._forward(batch)
        out = np.zeros(self.head.probs_shape(*batch.span_mask.shape,
                                             batch.prompt_mask.shape[1]), np.float32)
        for lo in range(0, batch.num_rows, rows):
            hi = min(lo + rows, batch.num_rows)
            probs = self._forward(self._rows_of(batch, lo, hi))[: hi - lo]
            out[(slice(lo, hi), *(slice(0, n) for n in probs.shape[1:]))] = probs
        return out

    span_probs = probs  # the name before token-level models

    def _refresh_tables(self) -> None:
        """Input-independent encoder tables, recomputed when the parameters change."""
        if self._tables[0] is not self._state:
            self._tables = (self._state, _encoder_tables(self._static, self._state))

    def chunk_rows(self, tokens: int) -> int:
        """Rows per chunk for a batch padded to `tokens`: the largest power of two (few batch
        shapes) whose rows fit in `chunk_tokens`, at least 1."""
        rows = max(1, self.chunk_tokens // tokens)
        return (1 << (rows.bit_length() - 1)) * self._shards  # per device

    def _forward(self, batch) -> np.ndarray:
        s = batch.shape
        rows = self._place_rows(batch.input_ids, batch.attention_mask, batch.words_mask,
                                batch.text_lengths)
        probs = _span_probs(self._static, self._state, self._tables[1], *rows,
                            num_words=s["W"], num_classes=s["C"])
        return np.asarray(probs)

    def _rows_of(self, batch, lo: int, hi: int):
        """Rows lo..hi of a padded batch, re-padded to their own buckets."""
        att = batch.attention_mask[lo:hi]
        cols = np.flatnonzero(att.any(0))
        t0, t1 = (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, 1)
        w = max(int(batch.text_lengths[lo:hi].max()), 1)
        meta = {k: None if getattr(batch, k) is None else getattr(batch, k)[lo:hi]
                for k in ("words", "prompts", "label_names", "offsets", "texts", "text_index",
                          "relations")}
        part = dataclasses.replace(
            batch, input_ids=batch.input_ids[lo:hi, t0:t1], attention_mask=att[:, t0:t1],
            words_mask=batch.words_mask[lo:hi, t0:t1], text_lengths=batch.text_lengths[lo:hi],
            span_mask=batch.span_mask[lo:hi, :w], prompt_mask=batch.prompt_mask[lo:hi],
            labels=None, **meta)
        return self.processor.pad(part)

"""Relation extraction at inference: the host side of `modeling/relex.py` (numpy + two jitted
calls), with the reference's rules (gliner 0.2.29 `UniEncoderSpanRelexModel.forward`,
`build_entity_pairs`, `SpanRelexDecoder._decode_relations`, `GLiNER._process_relations`).

Per batch: one encoder pass gives entity probabilities, words and relation prompts
(`relex_forward`); the spans whose best probability over the row's labels is > threshold
(float32, as torch compares) become the entities, in flat (start, width) order; a second call
scores their adjacency and every (head, tail) pair; the pairs (i != j) with adjacency >
adjacency_threshold (every pair for relations_layer "none"), row-major, and the relation types
with probability > relation_threshold (compared as python floats, as the reference) are the
relation candidates, named by their spans' word boundaries. After the entities of a text are
decoded, a candidate whose two spans are decoded entities becomes a relation pointing at the
first decoded entity with each boundary (the reference's `entity_idx`), in the reference's
order: head span, tail span (each by start, then end), relation channel.

Long texts: every window finds the relations whose two ends lie inside it; a relation found in
several windows keeps its highest score (`merge_relations`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gliner_jax.processing import bucket


class Relation(NamedTuple):
    head: tuple[int, int]     # (first word, last word) of the head span
    tail: tuple[int, int]
    label: str
    score: float
    channel: int              # relation class channel (tie order)

    def shifted(self, offset: int) -> Relation:
        return self._replace(head=(self.head[0] + offset, self.head[1] + offset),
                             tail=(self.tail[0] + offset, self.tail[1] + offset))


@functools.partial(jax.jit, static_argnames=("graphdef", "num_words", "num_classes",
                                             "num_relations"))
def relex_forward(graphdef, state, tables, input_ids, attention_mask, words_mask, text_lengths,
                  *, num_words: int, num_classes: int, num_relations: int):
    """(entity probs [B,W,K,C] float32, words [B,W,D], relation prompts [B,R,D])."""
    model = nnx.merge(graphdef.value, state)
    logits, _, words, rel, _ = model.relex_forward(
        input_ids, attention_mask, words_mask, text_lengths, num_words=num_words,
        num_classes=num_classes, num_relations=num_relations, encoder_tables=tables)
    return jax.nn.sigmoid(logits.astype(jnp.float32)), words, rel


@functools.partial(jax.jit, static_argnames=("graphdef",))
def relation_scores(graphdef, state, words, text_lengths, rel, ent_idx, ent_mask):
    """(adjacency [B,E,E] float32 or None, pair probabilities [B,E,E,R] float32)."""
    model = nnx.merge(graphdef.value, state)
    adj, logits = model.relation_scores(words, text_lengths, rel, ent_idx, ent_mask)
    adj = None if adj is None else adj.astype(jnp.float32)
    return adj, jax.nn.sigmoid(logits.astype(jnp.float32))


def _relation_labels(labels) -> list[str]:
    for x in labels:
        if not isinstance(x, str) or not x.strip():
            raise ValueError(f"relation labels must be non-empty strings, got {x!r}")
    return list(labels)


def relation_sets(model, relations, return_relations, n: int) -> list[list[str]] | None:
    """Relation labels per text (relex models), or None when relations are not wanted."""
    if not model.extracts_relations:
        if relations or return_relations:
            raise ValueError(f"this model ({model.config.family.name}) does not extract "
                             "relations; relation labels need a relex model")
        return None
    if return_relations is False:
        return None
    if relations is None:
        return [[]] * n
    if isinstance(relations, str):
        return [[relations]] * n
    relations = list(relations)
    if relations and all(isinstance(x, list | tuple) for x in relations):
        if len(relations) != n:
            raise ValueError(f"per-text relations: {len(relations)} label sets for {n} texts")
        return [list(dict.fromkeys(_relation_labels(x))) for x in relations]
    return [list(dict.fromkeys(_relation_labels(relations)))] * n


def relex_rows(model, batch, chunk, thr: dict):
    """Entity probs and relation candidates (window coordinates) of one relex batch: the rows
    `chunk` (gliner_jax.model rows with .labels, .relations, .text) of a GLiNER `model`."""
    from gliner_jax.model import _encoder_tables as encoder_tables

    if model._tables[0] is not model._state:
        model._tables = (model._state, encoder_tables(model._static, model._state))
    s = batch.shape
    n_rel = bucket(max(len(r.relations) for r in chunk), 2)
    probs, words, rel = relex_forward(
        model._static, model._state, model._tables[1], batch.input_ids, batch.attention_mask,
        batch.words_mask, batch.text_lengths, num_words=s["W"], num_classes=s["C"],
        num_relations=n_rel)
    probs = np.asarray(probs)
    pick = [[thr[k][r.text] for r in chunk] for k in ("entity", "adjacency", "relation")]
    selected = select_entities(probs, batch.text_lengths, [len(r.labels[1]) for r in chunk],
                               pick[0])
    if not any(len(x) > 1 for x in selected) or not any(r.relations for r in chunk):
        return probs, [[] for _ in chunk]
    ent_idx, ent_mask = pad_entities(selected, s["B"])
    adj, pair = relation_scores(model._static, model._state, words, batch.text_lengths, rel,
                                ent_idx, ent_mask)
    adj = None if adj is None else np.asarray(adj)
    return probs, relation_candidates(selected, adj, np.asarray(pair), model.config.max_width,
                                      [r.relations for r in chunk], pick[1], pick[2])


def select_entities(probs: np.ndarray, text_lengths, n_labels: Sequence[int],
                    thresholds: Sequence[float]) -> list[np.ndarray]:
    """Per row, the flat span indices (start * K + width, ascending) whose best probability over
    the row's labels is > threshold and that end inside the text (`select_span_target_embedding`).

    The reference takes the best over the batch's padded class axis; here over the row's own
    labels (identical when the rows of a batch share their labels)."""
    _, w, k, _ = probs.shape
    s = np.arange(w)[:, None]
    kk = np.arange(k)[None, :]
    out = []
    for b, (n, c, thr) in enumerate(zip(text_lengths, n_labels, thresholds, strict=False)):
        if c == 0:
            out.append(np.zeros(0, np.int64))
            continue
        best = probs[b, :, :, :c].max(-1)
        keep = (best > np.float32(thr)) & (s + kk < int(n))
        out.append(np.flatnonzero(keep.reshape(-1)))
    return out


def pad_entities(selected: list[np.ndarray], rows: int) -> tuple[np.ndarray, np.ndarray]:
    """[B,E] int32 indices and bool mask, E a bucket of the longest row (>= 1)."""
    e = bucket(max((len(x) for x in selected), default=0), 4)
    idx = np.zeros((rows, e), np.int32)
    mask = np.zeros((rows, e), bool)
    for b, x in enumerate(selected):
        idx[b, :len(x)] = x
        mask[b, :len(x)] = True
    return idx, mask


def relation_candidates(selected: list[np.ndarray], adj: np.ndarray | None,
                        pair_probs: np.ndarray, max_width: int,
                        relation_names: Sequence[Sequence[str]],
                        adjacency_thresholds: Sequence[float],
                        relation_thresholds: Sequence[float]) -> list[list[Relation]]:
    """Per row, the relation candidates of its selected entities (window word coordinates)."""
    out = []
    for b, ents in enumerate(selected):
        names, row = relation_names[b], []
        n = len(ents)
        spans = [(int(f // max_width), int(f // max_width + f % max_width)) for f in ents]
        if n < 2 or not names:
            out.append(row)
            continue
        off = ~np.eye(n, dtype=bool)
        if adj is not None:   # build_entity_pairs: adj > threshold, compared in float32
            off &= adj[b, :n, :n] > np.float32(adjacency_thresholds[b])
        thr = float(relation_thresholds[b])
        for i, j in zip(*np.nonzero(off), strict=True):   # row-major, as the reference
            for c, p in enumerate(pair_probs[b, i, j, :len(names)].tolist()):
                if p > thr:
                    row.append(Relation(spans[i], spans[j], names[c], p, c))
        out.append(row)
    return out


def merge_relations(relations: Sequence[Relation]) -> list[Relation]:
    """Candidates of one text from several windows: one per (head, tail, label), its highest
    score, in the reference's order (head span, tail span, channel)."""
    best: dict[tuple, Relation] = {}
    for r in relations:
        key = (r.head, r.tail, r.label)
        if key not in best or r.score > best[key].score:
            best[key] = r
    return sorted(best.values(), key=lambda r: (r.head, r.tail, r.channel))


def relations_to_dicts(relations: Sequence[Relation], entities: Sequence[dict[str, Any]],
                       spans: Sequence[Any]) -> list[dict[str, Any]]:
    """The reference's relation dicts: candidates whose two spans are decoded entities (the
    first decoded entity with each word boundary), head / tail copied from the entities."""
    first: dict[tuple[int, int], int] = {}
    for i, sp in enumerate(spans):
        first.setdefault((sp.start, sp.end), i)
    out = []
    for r in relations:
        h, t = first.get(r.head), first.get(r.tail)
        if h is None or t is None:
            continue
        out.append({"head": _end(entities[h], h), "tail": _end(entities[t], t),
                    "relation": r.label, "score": r.score})
    return out


def _end(entity: dict[str, Any], idx: int) -> dict[str, Any]:
    return {"start": entity["start"], "end": entity["end"], "text": entity["text"],
            "type": entity["label"], "entity_idx": idx}

"""Span probabilities -> entities, with the reference's rules (gliner 0.2.29 `SpanDecoder`).

GLINER_SPEC.md section 6. Candidates are `probs > threshold` (strict, compared in float32) whose
span ends inside the text (s + k + 1 <= n) and whose class channel is one of the row's labels.
A greedy search keeps them in order of decreasing score (a stable sort, so ties keep the
(start, width, class) order) unless they conflict with a kept span:
  flat:   any overlap (inclusive word ends);
  nested: only crossing spans (overlap with neither containing the other);
  both:   the very same (start, end) conflicts unless multi_label.
Kept spans come out sorted by start (stable). Numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np


class Span(NamedTuple):
    start: int    # first word
    end: int      # last word, inclusive
    label: str
    score: float  # the float32 probability as a python float


def _per_row(value, n_rows: int, name: str) -> list:
    if isinstance(value, list | tuple | np.ndarray):
        if len(value) != n_rows:
            raise ValueError(f"{name} must have one value per row ({n_rows}), got {len(value)}")
        return list(value)
    return [value] * n_rows


def candidates(probs: np.ndarray, text_lengths: Sequence[int] | np.ndarray,
               label_names: Sequence[Sequence[str]], *,
               threshold: float | Sequence[float] = 0.5) -> list[list[Span]]:
    """Per row, every span above threshold that ends inside the text, on a valid class channel,
    in the reference's greedy order: stable sort by decreasing score, ties in (s, k, c) order.

    `probs` [B, W, K, C] (rows, words and classes may be padded); rows past
    `len(label_names)` are padding; channel c of row b is valid for c < len(label_names[b]).
    """
    n_rows = len(label_names)
    probs = np.asarray(probs)
    if probs.ndim != 4 or probs.shape[0] < n_rows:
        raise ValueError(f"probs must be [B>={n_rows}, W, K, C], got {probs.shape}")
    probs = probs[:n_rows].astype(np.float32, copy=False)
    _, num_words, max_width, num_classes = probs.shape
    lengths = np.asarray(text_lengths, np.int64).reshape(-1)[:n_rows]
    n_labels = np.array([len(x) for x in label_names], np.int64)
    if (n_labels > num_classes).any():
        raise ValueError(f"a row has {n_labels.max()} labels but probs has {num_classes} classes")
    # torch compares a float32 tensor with a python float (or a float32 tensor) in float32
    thr = np.asarray(_per_row(threshold, n_rows, "threshold"), np.float32)

    s = np.arange(num_words)[None, :, None, None]
    k = np.arange(max_width)[None, None, :, None]
    c = np.arange(num_classes)[None, None, None, :]
    keep = ((probs > thr[:, None, None, None])
            & (s + k + 1 <= lengths[:, None, None, None])
            & (c < n_labels[:, None, None, None]))
    bi, si, ki, ci = np.nonzero(keep)  # row-major: (b, s, k, c) ascending, as torch.where
    scores = probs[bi, si, ki, ci]
    bounds = np.searchsorted(bi, np.arange(n_rows + 1))

    out = []
    for b in range(n_rows):
        lo, hi = bounds[b], bounds[b + 1]
        order = lo + np.argsort(-scores[lo:hi], kind="stable")
        names = label_names[b]
        out.append([Span(st, st + w, names[cl], sc) for st, w, cl, sc in zip(
            si[order].tolist(), ki[order].tolist(), ci[order].tolist(), scores[order].tolist(),
            strict=True)])
    return out


def decode(probs: np.ndarray, text_lengths: Sequence[int] | np.ndarray,
           label_names: Sequence[Sequence[str]], *, threshold: float | Sequence[float] = 0.5,
           flat_ner: bool | Sequence[bool] = True,
           multi_label: bool | Sequence[bool] = False, head: str = "span") -> list[list[Span]]:
    """Entities per row from `probs` [B, W, K, C] (token head: [B, W, C, 3]; rows, words and
    classes may be padded).

    Rows past `len(label_names)` are padding and ignored; channel c of row b is valid for
    c < len(label_names[b]). threshold / flat_ner / multi_label may be given per row.
    """
    n_rows = len(label_names)
    flat = _per_row(flat_ner, n_rows, "flat_ner")
    multi = _per_row(multi_label, n_rows, "multi_label")
    rows = HEADS[head].candidates(probs, text_lengths, label_names, threshold=threshold)
    return [greedy_search(c, flat_ner=bool(f), multi_label=bool(m), presorted=True)
            for c, f, m in zip(rows, flat, multi, strict=True)]


def merge_candidates(spans: Sequence[Span], label_order: Sequence[str],
                     head: str = "span") -> list[Span]:
    """Candidates of one text gathered from several (overlapping) windows, in text coordinates:
    a span seen more than once (same start, end, label) is kept once with its highest score;
    the result is in greedy order (decreasing score, ties in the head's candidate order: span
    (start, width, class channel), token (start, class channel, end)), which for the candidates
    of a single window is exactly the head's `candidates` order."""
    best: dict[tuple[int, int, str], Span] = {}
    for sp in spans:
        key = (sp.start, sp.end, sp.label)
        if key not in best or sp.score > best[key].score:
            best[key] = sp
    channel = {name: i for i, name in enumerate(label_order)}
    tie = HEADS[head].tie
    return sorted(best.values(), key=lambda x: (-x.score, *tie(x, channel[x.label])))


def token_candidates(probs: np.ndarray, text_lengths: Sequence[int] | np.ndarray,
                     label_names: Sequence[Sequence[str]], *,
                     threshold: float | Sequence[float] = 0.5) -> list[list[Span]]:
    """Token-level (start, end, inside) probabilities [B, W, C, 3] -> per row, the reference's
    `TokenDecoder` spans in greedy order (stable by decreasing score, ties by (start, class, end),
    the order the reference builds them in).

    A span (s, e) of class c is a candidate when start[s, c] > threshold and end[e, c] >
    threshold (compared in float32, as torch compares a float32 tensor with a python float),
    e >= s, and no inside[w, c] for w in s..e is < threshold (compared as python floats, as the
    reference does); its score is the least of those probabilities.
    """
    n_rows = len(label_names)
    probs = np.asarray(probs)
    if probs.ndim != 4 or probs.shape[0] < n_rows or probs.shape[-1] != 3:
        raise ValueError(f"token probs must be [B>={n_rows}, W, C, 3], got {probs.shape}")
    probs = probs[:n_rows].astype(np.float32, copy=False)
    lengths = np.asarray(text_lengths, np.int64).reshape(-1)[:n_rows]
    thresholds = _per_row(threshold, n_rows, "threshold")
    out = []
    for b in range(n_rows):
        names, thr = label_names[b], float(thresholds[b])
        n = min(int(lengths[b]), probs.shape[1])
        start, end, inside = (probs[b, :n, :len(names), i] for i in range(3))
        thr32 = np.float32(thr)
        row = []
        for c in range(len(names)):
            ends = np.flatnonzero(end[:, c] > thr32).tolist()
            ins = inside[:, c].tolist()
            for st in np.flatnonzero(start[:, c] > thr32).tolist():
                low = float(start[st, c])
                w = st
                for ed in ends:
                    if ed < st:
                        continue
                    while w <= ed and ins[w] >= thr:
                        low = min(low, ins[w])
                        w += 1
                    if w <= ed:
                        break  # an inside score below threshold: no longer span either
                    row.append((c, Span(st, ed, names[c], min(low, float(end[ed, c])))))
        row.sort(key=lambda x: (-x[1].score, x[1].start, x[0], x[1].end))
        out.append([sp for _, sp in row])
    return out


class Head(NamedTuple):
    """How a model family's probabilities become candidates (modeling.families Family.head)."""

    candidates: Any      # (probs, text_lengths, label_names, threshold=) -> [[Span]] per row
    tie: Any             # (span, class channel) -> tie-break key among equal scores
    probs_shape: Any     # (B, W, K, C) -> the probabilities' shape
    # long texts: False = candidates per window, merged (a span lies whole in some window);
    # True = per-word probabilities stitched over the windows, decoded once per text (an
    # entity may be longer than the windows' overlap: `stitch_windows`)
    stitched: bool = False


HEADS = {
    "span": Head(candidates, lambda sp, c: (sp.start, sp.end, c), lambda b, w, k, c: (b, w, k, c)),
    "token": Head(token_candidates, lambda sp, c: (sp.start, c, sp.end),
                  lambda b, w, k, c: (b, w, c, 3), stitched=True),
}


def stitch_windows(parts: Sequence[tuple[int, np.ndarray]]) -> np.ndarray:
    """Per-word probabilities of a whole text from its windows: parts are (first word, probs
    [words of the window, ...]); each word takes the window in which it sits furthest from an
    edge (the most context on both sides; ties: the earlier window). One window: itself.

    Token-level models decode entities of any length from start / end / inside scores per word,
    so an entity longer than the windows' overlap, which no single window holds whole, is found
    in the stitched scores."""
    n = max(s + len(p) for s, p in parts)
    out = np.zeros((n, *parts[0][1].shape[1:]), parts[0][1].dtype)
    best = np.full(n, -1)
    for s, p in sorted(parts, key=lambda x: x[0]):
        w = np.arange(s, s + len(p))
        margin = np.minimum(w - s, s + len(p) - 1 - w)
        take = margin > best[w]
        out[w[take]] = p[take]
        best[w[take]] = margin[take]
    return out


def greedy_search(spans: Sequence[Span], *, flat_ner: bool = True, multi_label: bool = False,
                  presorted: bool = False) -> list[Span]:
    """Keep the best-scoring non-conflicting spans (the reference's `greedy_search`).

    `presorted`: `spans` are already in stable order of decreasing score.
    """
    if not presorted:
        spans = sorted(spans, key=lambda x: -x.score)
    kept: list[Span] = []
    if flat_ner:
        # Kept spans at distinct positions never overlap, so each word has at most one owner
        # position; a candidate conflicts with any owner other than its own position.
        owner: dict[int, tuple[int, int]] = {}
        for sp in spans:
            pos = (sp.start, sp.end)
            words = range(sp.start, sp.end + 1)
            if multi_label:
                if any(owner.get(w, pos) != pos for w in words):
                    continue
            elif any(w in owner for w in words):
                continue
            kept.append(sp)
            for w in words:
                owner[w] = pos
    else:
        # Nested: a kept span q crosses (s, e) iff qs < s <= qe < e or s < qs <= e < qe; with
        # widths below max_width, only kept spans starting in [s - max_width + 1, e] can.
        max_width = max((sp.end - sp.start + 1 for sp in spans), default=1)
        ends_by_start: dict[int, list[int]] = {}
        positions: set[tuple[int, int]] = set()
        for sp in spans:
            s, e = sp.start, sp.end
            if not multi_label and (s, e) in positions:
                continue
            if _crosses(s, e, ends_by_start, max_width):
                continue
            kept.append(sp)
            if (s, e) not in positions:
                positions.add((s, e))
                ends_by_start.setdefault(s, []).append(e)
    kept.sort(key=lambda x: x.start)
    return kept


def _crosses(s: int, e: int, ends_by_start: dict[int, list[int]], max_width: int) -> bool:
    for qs in range(max(s - max_width + 1, 0), e + 1):
        for qe in ends_by_start.get(qs, ()):
            if (qs < s <= qe < e) or (s < qs <= e < qe):
                return True
    return False


def spans_to_entities(spans: Sequence[Span], text: str,
                      offsets: Sequence[tuple[int, int]]) -> list[dict[str, Any]]:
    """Word spans -> the reference's output dicts, using each word's (start, end) char offsets."""
    out = []
    for sp in spans:
        start, end = offsets[sp.start][0], offsets[sp.end][1]
        out.append({"start": start, "end": end, "text": text[start:end], "label": sp.label,
                    "score": float(sp.score)})
    return out


def merge_entities(entities: Sequence[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """NuNER Zero's post-processing (its model card's `merge_entities`; not in the reference
    package): walking the entities in order, one that has the label of the entity before it and
    starts at most one character after its end (a space, any one character, or none) is joined
    to it: the end and the text (`text[start:end].strip()`) grow, the first score stays.
    NuNER Zero tags words (max_width 1), so a multi-word name comes out as one entity per word
    without it. Opt-in: `inference(..., merge_entities=True)`, `predict --merge-entities`."""
    out: list[dict[str, Any]] = []
    for e in entities:
        last = out[-1] if out else None
        if last is not None and e["label"] == last["label"] and \
                last["end"] <= e["start"] <= last["end"] + 1:
            last["end"] = e["end"]
            last["text"] = text[last["start"]:e["end"]].strip()
        else:
            out.append(dict(e))
    return out


def batch_to_entities(spans_per_row: Sequence[Sequence[Span]], texts: Sequence[str],
                      offsets: Sequence[Sequence[tuple[int, int]]],
                      text_index: Sequence[int] | None = None,
                      num_texts: int | None = None) -> list[list[dict[str, Any]]]:
    """Entities for every input text: rows mapped back by `text_index`; left-out texts get []."""
    rows = [spans_to_entities(sp, t, o)
            for sp, t, o in zip(spans_per_row, texts, offsets, strict=True)]
    if text_index is None:
        return rows
    out: list[list[dict[str, Any]]] = [[] for _ in range(num_texts or 0)]
    for i, row in zip(text_index, rows, strict=True):
        if i >= len(out):
            out.extend([] for _ in range(i + 1 - len(out)))
        out[i] = row
    return out

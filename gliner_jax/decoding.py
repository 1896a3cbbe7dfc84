"""Span probabilities -> entities, with the reference's rules (gliner 0.2.29 `SpanDecoder`).

GLINER_SPEC.md section 6. Candidates are `probs > threshold` (strict, compared in float32) whose
span ends inside the text (s + k + 1 <= n) and whose class channel is one of the row's labels.
A greedy search keeps them in order of decreasing score (a stable sort, so ties keep the
(start, width, class) order) unless they conflict with a kept span:
  flat:   any overlap (inclusive word ends);
  nested: only crossing spans (overlap with neither containing the other);
  both:   the very same (start, end) conflicts unless multi_label.
Kept spans come out sorted by start (stable). Numpy only.

Two implementations of the same rules:
- `candidates` / `merge_candidates` / `greedy_search` build one `Span` per candidate, the
  reference's way: clear, and the yardstick the tests compare the other with.
- `candidate_arrays` + `select` (what `decode` and the API use) keep candidates as numpy arrays
  and run the greedy search over span *positions* only. Whether a candidate is kept depends only
  on its position's first candidate in greedy order: a kept position blocks every later
  candidate at the same position (unless multi_label) and every crossing / overlapping one; a
  position rejected because of a kept span stays rejected. So without multi_label only the best
  class of each position (ties: the lowest channel, as the stable sort) can be kept, and with
  multi_label a position's candidates are all kept or all dropped with its first one. A random
  model at 1,000 labels puts ~10^5 (span, label) pairs of a batch above 0.5; the positions are
  at most W x K per text.
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


def _span_args(probs, text_lengths, label_names, threshold):
    """The checked arguments of span decoding for R = len(label_names) rows: (probs as an array
    [B >= R, W, K, C], not copied; text lengths [R]; labels per row [R]; thresholds float32
    [R]), or a ValueError naming what does not fit."""
    n_rows = len(label_names)
    probs = np.asarray(probs)
    if probs.ndim != 4 or probs.shape[0] < n_rows:
        raise ValueError(f"probs must be [B>={n_rows}, W, K, C], got {probs.shape}")
    num_classes = probs.shape[3]
    lengths = np.asarray(text_lengths, np.int64).reshape(-1)[:n_rows]
    n_labels = np.array([len(x) for x in label_names], np.int64)
    if (n_labels > num_classes).any():
        raise ValueError(f"a row has {n_labels.max()} labels but probs has {num_classes} classes")
    # torch compares a float32 tensor with a python float (or a float32 tensor) in float32
    thr = np.asarray(_per_row(threshold, n_rows, "threshold"), np.float32)
    return probs, lengths, n_labels, thr


def candidates(probs: np.ndarray, text_lengths: Sequence[int] | np.ndarray,
               label_names: Sequence[Sequence[str]], *,
               threshold: float | Sequence[float] = 0.5) -> list[list[Span]]:
    """Per row, every span above threshold that ends inside the text, on a valid class channel,
    in the reference's greedy order: stable sort by decreasing score, ties in (s, k, c) order.

    `probs` [B, W, K, C] (rows, words and classes may be padded); rows past
    `len(label_names)` are padding; channel c of row b is valid for c < len(label_names[b]).
    """
    n_rows = len(label_names)
    probs, lengths, n_labels, thr = _span_args(probs, text_lengths, label_names, threshold)
    probs = probs[:n_rows].astype(np.float32, copy=False)
    _, num_words, max_width, num_classes = probs.shape

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
    rows = HEADS[head].arrays(probs, text_lengths, label_names, threshold=threshold,
                              multi_label=multi)
    return [select([c], names, flat_ner=bool(f), multi_label=bool(m), head=head)
            for c, names, f, m in zip(rows, label_names, flat, multi, strict=True)]


class Candidates(NamedTuple):
    """Candidates of one row (or of one text, gathered from its windows) as arrays, in any
    order; `select` sorts them."""

    start: np.ndarray    # int64 [N] first word
    end: np.ndarray      # int64 [N] last word, inclusive
    channel: np.ndarray  # int64 [N] class channel: index into the row's label names
    score: np.ndarray    # float32 [N]

    def shifted(self, words: int) -> Candidates:
        return self._replace(start=self.start + words, end=self.end + words)


def candidate_arrays(probs: np.ndarray, text_lengths: Sequence[int] | np.ndarray,
                     label_names: Sequence[Sequence[str]], *,
                     threshold: float | Sequence[float] = 0.5,
                     multi_label: bool | Sequence[bool] = True) -> list[Candidates]:
    """Per row, the span candidates of `candidates` as arrays; for a row without multi_label
    only each position's first one in greedy order (its best class, ties: the lowest channel),
    the only one the greedy search can keep (module docstring). That holds for a text's windows
    too: the best of a position over the windows is the best of its windows' bests."""
    n_rows = len(label_names)
    probs, lengths, n_labels, thr = _span_args(probs, text_lengths, label_names, threshold)
    _, num_words, max_width, _ = probs.shape
    multi = _per_row(multi_label, n_rows, "multi_label")
    inside = (np.arange(num_words)[:, None] + np.arange(max_width)[None, :] + 1)  # s + k + 1
    out = []
    for b in range(n_rows):
        p = probs[b, :, :, : n_labels[b]].astype(np.float32, copy=False)
        valid = inside <= lengths[b]
        if n_labels[b] == 0:
            out.append(Candidates(*(np.zeros(0, np.int64),) * 3, np.zeros(0, np.float32)))
            continue
        if multi[b]:
            si, ki, ci = np.nonzero((p > thr[b]) & valid[..., None])
            out.append(Candidates(si, si + ki, ci, p[si, ki, ci]))
            continue
        # the best class above threshold per position (NaN and below: -inf, never kept)
        best = np.where(p > thr[b], p, np.float32(-np.inf))
        arg = best.argmax(-1)                        # first maximum: the lowest channel
        top = np.take_along_axis(best, arg[..., None], -1)[..., 0]
        out.append(best_candidates(top[None], arg[None], lengths[b:b + 1], thr[b:b + 1])[0])
    return out


def best_candidates(best: np.ndarray, arg: np.ndarray, text_lengths,
                    threshold) -> list[Candidates]:
    """Candidates of rows without multi_label from each position's best class, reduced
    elsewhere (`candidate_arrays`, or on device by the bi-encoder): `best` [B, W, K] the
    highest probability over the row's valid classes (NaN counted as -inf), `arg` [B, W, K] its
    lowest channel; a position is a candidate when best > threshold (float32) and the span ends
    inside the text."""
    best = np.asarray(best, np.float32)
    _, num_words, max_width = best.shape
    thr = np.asarray(threshold, np.float32).reshape(-1)
    ends = np.arange(num_words)[:, None] + np.arange(max_width)[None, :] + 1     # s + k + 1
    out = []
    for b in range(len(thr)):
        si, ki = np.nonzero((best[b] > thr[b]) & (ends <= int(text_lengths[b])))
        out.append(Candidates(si, si + ki, np.asarray(arg[b, si, ki], np.int64), best[b, si, ki]))
    return out


def token_candidate_arrays(probs, text_lengths, label_names, *, threshold=0.5,
                           multi_label=True) -> list[Candidates]:
    """`token_candidates` as arrays (few candidates per row: no reduction)."""
    out = []
    for row in _token_rows(probs, text_lengths, label_names, threshold):
        cols = list(zip(*((sp.start, sp.end, c, sp.score) for c, sp in row), strict=True))
        if not cols:
            cols = [[], [], [], []]
        out.append(Candidates(np.asarray(cols[0], np.int64), np.asarray(cols[1], np.int64),
                              np.asarray(cols[2], np.int64), np.asarray(cols[3], np.float32)))
    return out


def select(parts: Sequence[Candidates], label_names: Sequence[str], *, flat_ner: bool = True,
           multi_label: bool = False, head: str = "span") -> list[Span]:
    """The greedy decoding of one text's candidates (from one or more windows, in text words):
    what `greedy_search(merge_candidates(...), presorted=True)` gives, with the greedy search
    run over positions (module docstring). A span found in several windows counts once, with
    its highest score."""
    parts = [p for p in parts if p.score.size]
    if not parts:
        return []
    c = parts[0] if len(parts) == 1 else Candidates(
        *(np.concatenate(x) for x in zip(*parts, strict=True)))
    start, end, channel = c.start, c.end, c.channel
    score = c.score.astype(np.float32, copy=False)
    # greedy order: decreasing score, ties in the head's candidate order
    order = np.lexsort((*reversed(HEADS[head].array_tie(start, end, channel)), -score))
    span_id = start * (int(end.max()) + 1) + end  # a position
    if len(parts) > 1:  # the same (position, class) from several windows: its first is its best
        key = span_id[order] * (int(channel.max()) + 1) + channel[order]
        order = order[np.sort(np.unique(key, return_index=True)[1])]
    firsts = order[np.sort(np.unique(span_id[order], return_index=True)[1])]
    kept = greedy_search([Span(s, e, label_names[ch], sc) for s, e, ch, sc in zip(
        start[firsts].tolist(), end[firsts].tolist(), channel[firsts].tolist(),
        score[firsts].tolist(), strict=True)], flat_ner=flat_ner, presorted=True)
    if not multi_label:
        return kept
    # every candidate of a kept position, in greedy order, then stably by start
    chosen = order[np.isin(span_id[order], [s * (int(end.max()) + 1) + e for s, e, *_ in kept])]
    chosen = chosen[np.argsort(start[chosen], kind="stable")]
    return [Span(s, e, label_names[ch], sc) for s, e, ch, sc in zip(
        start[chosen].tolist(), end[chosen].tolist(), channel[chosen].tolist(),
        score[chosen].tolist(), strict=True)]


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
    return [[sp for _, sp in row]
            for row in _token_rows(probs, text_lengths, label_names, threshold)]


def _token_rows(probs, text_lengths, label_names, threshold) -> list[list[tuple[int, Span]]]:
    """`token_candidates` with each span's class channel: [(channel, Span)] per row."""
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
        out.append(row)
    return out


class Head(NamedTuple):
    """How a model family's probabilities become candidates (modeling.families Family.head)."""

    candidates: Any      # (probs, text_lengths, label_names, threshold=) -> [[Span]] per row
    tie: Any             # (span, class channel) -> tie-break key among equal scores
    probs_shape: Any     # (B, W, K, C) -> the probabilities' shape
    arrays: Any          # (probs, ..., threshold=, multi_label=) -> [Candidates] per row
    array_tie: Any       # (start, end, channel) arrays -> `tie` as lexsort keys, major first
    # long texts: False = candidates per window, merged (a span lies whole in some window);
    # True = per-word probabilities stitched over the windows, decoded once per text (an
    # entity may be longer than the windows' overlap: `stitch_windows`)
    stitched: bool = False


HEADS = {
    "span": Head(candidates, lambda sp, c: (sp.start, sp.end, c), lambda b, w, k, c: (b, w, k, c),
                 candidate_arrays, lambda s, e, c: (s, e, c)),
    "token": Head(token_candidates, lambda sp, c: (sp.start, c, sp.end),
                  lambda b, w, k, c: (b, w, c, 3), token_candidate_arrays,
                  lambda s, e, c: (s, c, e), stitched=True),
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

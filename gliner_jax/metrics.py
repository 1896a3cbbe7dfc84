"""Micro precision / recall / F1 of predicted entity spans, as the reference evaluates NER.

gliner 0.2.29 ``evaluation/evaluator.py::BaseNEREvaluator`` + ``evaluation/utils.py``: every
gold and predicted entity becomes ``(label, (start, end), sentence_idx)``; per label, the gold and
predicted entities are *sets* (duplicates count once) and tp = |gold & pred|; counts are summed
over labels; P = tp / n_pred and R = tp / n_true, each 0 when its denominator is 0;
F1 = 2PR / (P + R), or 0 when P + R = 0. The same float64 operations in the same order, so the
results are bit-identical.

Spans are ``(start_word, end_word_inclusive, label, *ignored)``; indices are compared as given (the
reference's None index for a misaligned gold entity is a gold entity nothing can match).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

Span = Sequence[Any]  # (start, end, label) or (start, end, label, score)


@dataclasses.dataclass(frozen=True)
class PRF:
    """Counts and scores of one label, or of all labels (micro)."""

    tp: int
    n_pred: int
    n_true: int

    @property
    def precision(self) -> float:
        return self.tp / self.n_pred if self.n_pred else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.n_true if self.n_true else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        # reference: denominator 0 is replaced by 1, so F1 = 0 there
        return 2 * (p * r) / (p + r) if p + r != 0.0 else 0.0

    def line(self) -> str:
        """The reference evaluator's result string."""
        return f"P: {self.precision:.2%}\tR: {self.recall:.2%}\tF1: {self.f1:.2%}\n"


@dataclasses.dataclass(frozen=True)
class NerScores:
    micro: PRF
    per_label: dict[str, PRF]  # every label seen in gold or predictions, sorted

    @property
    def precision(self) -> float:
        return self.micro.precision

    @property
    def recall(self) -> float:
        return self.micro.recall

    @property
    def f1(self) -> float:
        return self.micro.f1


def _entity_sets(sentences: Sequence[Sequence[Span]]) -> dict[Any, set]:
    """label -> {((start, end), sentence_idx)}."""
    sets: dict[Any, set] = defaultdict(set)
    for i, spans in enumerate(sentences):
        for span in spans:
            if hasattr(span, "entity_type"):  # a gliner decoder Span, as the reference accepts
                start, end, label = span.start, span.end, span.entity_type
            else:  # (start, end, label, *rest), incl. gliner_jax.decoding.Span
                start, end, label = span[0], span[1], span[2]
            sets[label].add(((start, end), i))
    return sets


def ner_scores(gold: Sequence[Sequence[Span]], pred: Sequence[Sequence[Span]]) -> NerScores:
    """Micro and per-label P/R/F1 of predicted spans against gold spans, one list per sentence."""
    if len(gold) != len(pred):
        # the reference zips the two lists and silently ignores the longer one's tail
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    gold_sets, pred_sets = _entity_sets(gold), _entity_sets(pred)
    per_label = {}
    for label in sorted(gold_sets.keys() | pred_sets.keys()):
        g, p = gold_sets.get(label, set()), pred_sets.get(label, set())
        per_label[label] = PRF(tp=len(g & p), n_pred=len(p), n_true=len(g))
    micro = PRF(
        tp=sum(x.tp for x in per_label.values()),
        n_pred=sum(x.n_pred for x in per_label.values()),
        n_true=sum(x.n_true for x in per_label.values()),
    )
    return NerScores(micro=micro, per_label=per_label)

"""Training targets per model head (`modeling.families` Family.head), numpy only.

Every head's targets keep the class axis last, so batch padding treats them alike:
    span   [W, K, C]   1 where span (start, width) has type c
    token  [W, 3, C]   1 where word w starts / ends / is inside an entity of type c
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def make_span_labels(ner: Sequence[Sequence[Any]], n_words: int, max_width: int,
                     class_ids: Mapping[str, int], num_words: int,
                     num_classes: int) -> np.ndarray:
    """[W, K, C] float32 targets from gold spans [[start, end_inclusive, label], ...].

    0.2.29 `UniEncoderSpanProcessor.create_labels`: several labels on one span are all positive;
    labels not in `class_ids` (1-based ids), spans wider than K and spans ending at or past
    `n_words` are silently not learned.
    """
    out = np.zeros((num_words, max_width, num_classes), np.float32)
    for start, end, label in ner:
        start, end = int(start), int(end)
        width = end - start
        if label not in class_ids or not (0 <= start and 0 <= width < max_width):
            continue
        if end > n_words - 1:
            continue
        out[start, width, class_ids[label] - 1] = 1.0
    return out


def make_token_labels(ner: Sequence[Sequence[Any]], n_words: int, max_width: int,
                      class_ids: Mapping[str, int], num_words: int,
                      num_classes: int) -> np.ndarray:
    """[W, 3, C] float32 targets (start, end, inside) from gold spans.

    0.2.29 `UniEncoderTokenProcessor.create_labels`: labels not in `class_ids` are skipped, and
    so are spans reaching the batch's longest text (`num_words`), not the row's own length (the
    loss masks the words past it). Span width is not limited.
    """
    out = np.zeros((num_words, 3, num_classes), np.float32)
    for start, end, label in ner:
        start, end = int(start), int(end)
        if label not in class_ids or start >= num_words or end >= num_words:
            continue
        c = class_ids[label] - 1
        out[start, 0, c] = 1.0
        out[end, 1, c] = 1.0
        out[start:end + 1, 2, c] = 1.0
    return out


TARGETS = {"span": make_span_labels, "token": make_token_labels}

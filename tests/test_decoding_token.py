"""Token-level decoding against the reference's own `TokenDecoder` (gliner 0.2.29) on crafted
logits: few distinct values so that scores tie and sit exactly on thresholds, saturated
probabilities, per-row label counts and lengths, flat / nested / multi-label."""

import numpy as np
import pytest
import torch
from gliner.decoding.decoder import TokenDecoder

from gliner_jax import decoding

LABELS = [["person", "city", "org"], ["person", "date"], ["x", "y", "z"]]


def _reference(logits, lengths, threshold, flat_ner, multi_label):
    tokens = [["w"] * int(n) for n in lengths]
    id_to_classes = [{i + 1: name for i, name in enumerate(names)} for names in LABELS]
    out = TokenDecoder(None).decode(tokens, id_to_classes, torch.tensor(logits),
                                    flat_ner=flat_ner, threshold=threshold,
                                    multi_label=multi_label)
    return [[(s.start, s.end, s.entity_type, s.score) for s in row] for row in out]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("flat_ner,multi_label", [(True, False), (False, False), (True, True),
                                                  (False, True)])
def test_token_decoding_matches_reference(seed, flat_ner, multi_label):
    rng = np.random.default_rng(seed)
    b, w, c = 3, 14, 3
    # logit(0.3) and logit(0.5) = 0 are on the grid: probabilities equal to the threshold
    grid = np.array([-3.0, np.log(0.3 / 0.7), 0.0, 0.4, 1.2, 2.5, 30.0], np.float32)
    logits = rng.choice(grid, size=(b, w, c, 3)).astype(np.float32)
    lengths = np.array([14, 9, 1])
    probs = torch.sigmoid(torch.tensor(logits)).numpy()   # as the model's float32 sigmoid
    found = 0
    for threshold in (0.3, 0.5, 0.7):
        want = _reference(logits, lengths, threshold, flat_ner, multi_label)
        found += sum(map(len, want))
        got = decoding.decode(probs, lengths, LABELS, threshold=threshold, flat_ner=flat_ner,
                              multi_label=multi_label, head="token")
        assert [[(s.start, s.end, s.label, s.score) for s in row] for row in got] == want
    assert found > 0

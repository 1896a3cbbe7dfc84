"""Decoding parity: our numpy decoder equals the reference's SpanDecoder (gliner 0.2.29)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gliner.decoding.decoder import SpanDecoder
from reference_models import cached_reference_gliner

from gliner_jax import decoding as D
from gliner_jax import processing as P

F32 = np.float32
# values around every tested threshold (as float32 and one ulp either side) and many ties
TIE_VALUES = np.array(
    [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99]
    + [float(np.nextafter(F32(t), F32(d))) for t in (0.3, 0.5, 0.9) for d in (0.0, 1.0)],
    F32)
MODES = [(True, False), (True, True), (False, False), (False, True)]  # (flat_ner, multi_label)
THRESHOLDS = [0.0, 0.3, 0.5, 0.9]


def random_case(seed: int, B: int = 3, L: int = 14, K: int = 5, C: int = 4):
    """Probabilities (half drawn from TIE_VALUES), per-row lengths and label sets."""
    rng = np.random.default_rng(seed)
    probs = rng.random((B, L, K, C), dtype=F32)
    ties = rng.random((B, L, K, C)) < 0.5
    probs[ties] = rng.choice(TIE_VALUES, int(ties.sum()))
    lengths = [int(x) for x in rng.integers(1, L + 1, B)]
    lengths[0] = L
    names = ["person", "location", "org", "date", "misc", "event"]
    label_names = [list(rng.choice(names, int(rng.integers(1, C + 1)), replace=False))
                   for _ in range(B)]
    return probs, lengths, label_names


def reference_decode(probs, lengths, label_names, threshold, flat_ner, multi_label):
    tokens = [["w"] * n for n in lengths]
    id_to_classes = [{i + 1: x for i, x in enumerate(names)} for names in label_names]
    decoder = SpanDecoder(config=None)
    out = decoder._decode_batch(
        probs=torch.from_numpy(probs), tokens=tokens, id_to_classes=id_to_classes,
        K=probs.shape[2], threshold=threshold, flat_ner=flat_ner, multi_label=multi_label,
        span_label_maps=[{} for _ in lengths])
    return [[(s.start, s.end, s.entity_type, s.score) for s in row] for row in out]


def padded(probs, lengths, rng):
    """probs padded with junk (high scores) in extra rows, words and classes."""
    B, L, K, C = probs.shape
    out = rng.random((B + 2, L + 5, K, C + 3), dtype=F32) * 0.1 + 0.9
    out[:B, :L, :, :C] = probs
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("flat_ner, multi_label", MODES)
@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_decode_matches_reference(seed, flat_ner, multi_label, threshold):
    probs, lengths, label_names = random_case(seed)
    expected = reference_decode(probs, lengths, label_names, threshold, flat_ner, multi_label)
    ours = D.decode(padded(probs, lengths, np.random.default_rng(seed)),
                    np.array(lengths + [0, 0]), label_names, threshold=threshold,
                    flat_ner=flat_ner, multi_label=multi_label)
    assert [[tuple(s) for s in row] for row in ours] == expected
    assert all(type(s.score) is float for row in ours for s in row)
    assert sum(map(len, expected)) > 0 or threshold == 0.9


@pytest.mark.parametrize("flat_ner, multi_label", MODES)
def test_decode_single_row_and_per_row_params(flat_ner, multi_label):
    probs, lengths, label_names = random_case(7, B=4, L=20, K=6, C=5)
    # B == 1 goes through the reference's per-item path
    for b in range(4):
        expected = reference_decode(probs[b:b + 1], lengths[b:b + 1], label_names[b:b + 1],
                                    0.5, flat_ner, multi_label)
        ours = D.decode(probs[b:b + 1], lengths[b:b + 1], label_names[b:b + 1], threshold=0.5,
                        flat_ner=flat_ner, multi_label=multi_label)
        assert [[tuple(s) for s in row] for row in ours] == expected
    thresholds = [0.0, 0.3, 0.5, 0.9]
    flats = [flat_ner, not flat_ner, flat_ner, not flat_ner]
    multis = [multi_label, multi_label, not multi_label, not multi_label]
    expected = reference_decode(probs, lengths, label_names, thresholds, flats, multis)
    ours = D.decode(probs, lengths, label_names, threshold=thresholds, flat_ner=flats,
                    multi_label=multis)
    assert [[tuple(s) for s in row] for row in ours] == expected


@pytest.mark.parametrize("flat_ner, multi_label, expected", [
    # candidates, best first: (0,2,a,.9) (1,1,b,.9) (0,2,b,.8) (1,3,a,.7) (2,2,a,.6) (4,4,a,.5)
    (True, False, [(0, 2, "a", 0.9), (4, 4, "a", 0.5)]),
    (True, True, [(0, 2, "a", 0.9), (0, 2, "b", 0.8), (4, 4, "a", 0.5)]),
    (False, False, [(0, 2, "a", 0.9), (1, 1, "b", 0.9), (2, 2, "a", 0.6), (4, 4, "a", 0.5)]),
    (False, True, [(0, 2, "a", 0.9), (0, 2, "b", 0.8), (1, 1, "b", 0.9), (2, 2, "a", 0.6),
                   (4, 4, "a", 0.5)]),
])
def test_greedy_rules(flat_ner, multi_label, expected):
    spans = [D.Span(1, 1, "b", 0.9), D.Span(0, 2, "a", 0.9), D.Span(0, 2, "b", 0.8),
             D.Span(1, 3, "a", 0.7), D.Span(2, 2, "a", 0.6), D.Span(4, 4, "a", 0.5)]
    # stable sort: (1,1,b) precedes (0,2,a) at equal score, so it wins in flat mode
    flat_first = D.greedy_search(spans, flat_ner=True)[0]
    assert flat_first == D.Span(1, 1, "b", 0.9)
    spans = [spans[1], spans[0]] + spans[2:]
    got = D.greedy_search(spans, flat_ner=flat_ner, multi_label=multi_label)
    assert [tuple(s) for s in got] == expected


def test_threshold_is_strict_float32():
    probs = np.zeros((1, 3, 1, 1), F32)
    probs[0, :, 0, 0] = [F32(0.3), np.nextafter(F32(0.3), F32(1)), F32(0.5)]
    got = D.decode(probs, [3], [["x"]], threshold=0.3)
    assert [(s.start, s.score) for s in got[0]] == [(1, float(probs[0, 1, 0, 0])),
                                                     (2, 0.5)]
    assert reference_decode(probs, [3], [["x"]], 0.3, True, False) == [
        [tuple(s) for s in got[0]]]


def test_bad_per_row_params():
    probs, lengths, names = random_case(0)
    with pytest.raises(ValueError, match="one value per row"):
        D.decode(probs, lengths, names, threshold=[0.5])
    with pytest.raises(ValueError, match="classes"):
        D.decode(probs[..., :1], lengths, [["a", "b"]] * 3)


# -- end to end: char offsets ----------------------------------------------------------------

TEXTS = [
    "John Smith works at Google in Paris, and Alice moved to New York.",
    "",
    "Zürich and São Paulo: café naïve — 東京 😀 state-of-the-art U.S.A.",
    "Obama",
]


@pytest.fixture(scope="module")
def scored_model():
    model, saved = cached_reference_gliner(backbone="deberta", weight_scale=1.0)
    return model


@pytest.mark.parametrize("labels", [["person", "location", "organization"],
                                    {"per": "a person", "loc": "a place"}])
@pytest.mark.parametrize("flat_ner, multi_label", MODES)
def test_entities_match_predict_entities(scored_model, labels, flat_ner, multi_label):
    model = scored_model
    prepared = model.prepare_batch(TEXTS, labels)
    batch = model.collate_batch(prepared["input_x"], prepared["entity_types"],
                                model.create_collator(), prepared["label_names"])
    probs = torch.sigmoid(model.run_batch(batch).logits).numpy()
    threshold = float(np.quantile(probs, 0.7))  # a threshold that keeps a fair share
    expected = model.inference(TEXTS, labels, flat_ner=flat_ner, threshold=threshold,
                               multi_label=multi_label)

    names = P.normalize_labels(labels)[1]
    kept = [i for i, t in enumerate(TEXTS) if t.strip()]
    words = [P.split_words(TEXTS[i]) for i in kept]
    spans = D.decode(probs, [len(w) for w in words], [names] * len(kept), threshold=threshold,
                     flat_ner=flat_ner, multi_label=multi_label)
    ours = D.batch_to_entities(spans, [TEXTS[i] for i in kept],
                               [[(a, b) for _, a, b in w] for w in words],
                               text_index=kept, num_texts=len(TEXTS))
    assert ours == expected
    assert sum(map(len, expected)) > 2
    assert ours[1] == []


def _model_card_merge(entities, text):
    """NuNER Zero's model card `merge_entities` (text is a global there), as published."""
    if not entities:
        return []
    merged = []
    current = entities[0]
    for next_entity in entities[1:]:
        if next_entity["label"] == current["label"] and (
                next_entity["start"] == current["end"] + 1
                or next_entity["start"] == current["end"]):
            current["text"] = text[current["start"]: next_entity["end"]].strip()
            current["end"] = next_entity["end"]
        else:
            merged.append(current)
            current = next_entity
    merged.append(current)
    return merged


MERGE_TEXT = "Barack Obama met Angela Merkel in New  York,Paris and Berlin-Mitte ."


def _ent(text, word, label, score=0.9, nth=0):
    start = -1
    for _ in range(nth + 1):
        start = text.index(word, start + 1)
    return {"start": start, "end": start + len(word), "text": word, "label": label,
            "score": score}


@pytest.mark.parametrize("names", [
    [],                                                            # nothing
    [("Barack", "person"), ("Obama", "person")],                   # one space: merged
    [("Barack", "person"), ("Obama", "location")],                 # other label: kept apart
    [("Angela", "person"), ("Merkel", "person"), ("in", "person")],  # a chain of three
    [("New", "location"), ("York", "location")],                   # two spaces: kept apart
    [("York", "location"), (",", "location"), ("Paris", "location")],  # no gap: merged
    [("Obama", "person"), ("Angela", "person")],                   # a word between: apart
    [("Berlin", "location"), ("Mitte", "location")],               # one non-space character
])
def test_merge_entities_matches_the_model_card(names):
    ents = [_ent(MERGE_TEXT, w, lab, score=0.5 + i / 10) for i, (w, lab) in enumerate(names)]
    want = _model_card_merge([dict(e) for e in ents], MERGE_TEXT)
    got = D.merge_entities(ents, MERGE_TEXT)
    assert got == want
    assert len(got) <= len(ents)
    assert ents == [_ent(MERGE_TEXT, w, lab, score=0.5 + i / 10)   # inputs left untouched
                    for i, (w, lab) in enumerate(names)]

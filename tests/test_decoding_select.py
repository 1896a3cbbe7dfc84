"""The array decoder (`candidate_arrays` + `select`, what the API runs) equals the Span-list one
(`candidates` + `merge_candidates` + `greedy_search`, itself checked against the reference in
test_decoding.py) on many random score arrays: flat / nested, multi-label or not, with ties,
padding, per-row label counts, and texts gathered from overlapping windows."""

from __future__ import annotations

import numpy as np
import pytest

from gliner_jax import decoding as D

F32 = np.float32
MODES = [(True, False), (True, True), (False, False), (False, True)]  # (flat_ner, multi_label)
NAMES = ["person", "location", "org", "date", "misc", "event", "award", "law"]
# a few values repeated many times: ties within and across positions, at and near thresholds
TIES = np.array([0.2, 0.5, np.nextafter(F32(0.5), F32(1)), 0.6, 0.8, 0.8, 0.95, 1.0], F32)


def scores(rng, shape, tie_share):
    probs = rng.random(shape, dtype=F32)
    ties = rng.random(shape) < tie_share
    probs[ties] = rng.choice(TIES, int(ties.sum()))
    return probs


def old_path(parts, names, flat_ner, multi_label, head="span"):
    spans = [sp._replace(start=sp.start + off, end=sp.end + off) for off, row in parts
             for sp in row]
    merged = D.merge_candidates(spans, names, head)
    return D.greedy_search(merged, flat_ner=flat_ner, multi_label=multi_label, presorted=True)


@pytest.mark.parametrize("flat_ner, multi_label", MODES)
def test_select_equals_span_lists(flat_ner, multi_label):
    rng = np.random.default_rng(0)
    found = 0
    for trial in range(60):
        B, W, K, C = 4, int(rng.integers(1, 16)), int(rng.integers(1, 7)), int(rng.integers(1, 7))
        probs = scores(rng, (B + 1, W + 2, K, C + 1), tie_share=trial % 3 / 2)
        lengths = [int(x) for x in rng.integers(0, W + 1, B)] + [W]
        names = [list(rng.choice(NAMES, int(rng.integers(1, C + 1)), replace=False))
                 for _ in range(B)]
        thr = [float(x) for x in rng.choice([0.0, 0.3, 0.5, 0.8, 0.99], B)]
        old = [D.greedy_search(row, flat_ner=flat_ner, multi_label=multi_label, presorted=True)
               for row in D.candidates(probs, lengths, names, threshold=thr)]
        new = D.decode(probs, lengths, names, threshold=thr, flat_ner=flat_ner,
                       multi_label=multi_label)
        assert new == old
        assert all(type(s.score) is float for row in new for s in row)
        found += sum(map(len, new))
    assert found > 100


@pytest.mark.parametrize("flat_ner, multi_label", MODES)
def test_select_equals_span_lists_across_windows(flat_ner, multi_label):
    """Windows of one text overlap: the same span comes with different (or equal) scores from
    several windows; the per-window reduction to each position's best class is still exact."""
    rng = np.random.default_rng(1)
    for trial in range(40):
        n, K, size = int(rng.integers(8, 40)), int(rng.integers(1, 6)), int(rng.integers(6, 12))
        names = list(rng.choice(NAMES, int(rng.integers(1, 6)), replace=False))
        C = len(names)
        windows = [(s, min(s + size, n)) for s in range(0, max(n - size, 0) + 1,
                                                        int(rng.integers(1, size)))]
        thr = float(rng.choice([0.3, 0.5, 0.8]))
        old_parts, new_parts = [], []
        for s, e in windows:
            probs = scores(rng, (1, e - s, K, C), tie_share=trial % 3 / 2)
            old_parts.append((s, D.candidates(probs, [e - s], [names], threshold=thr)[0]))
            new_parts.append(D.candidate_arrays(probs, [e - s], [names], threshold=thr,
                                                multi_label=multi_label)[0].shifted(s))
        want = old_path(old_parts, names, flat_ner, multi_label)
        got = D.select(new_parts, names, flat_ner=flat_ner, multi_label=multi_label)
        assert got == want


@pytest.mark.parametrize("flat_ner, multi_label", MODES)
def test_token_select_equals_span_lists(flat_ner, multi_label):
    rng = np.random.default_rng(2)
    found = 0
    for _ in range(30):
        B, W, C = 3, int(rng.integers(1, 14)), int(rng.integers(1, 5))
        probs = scores(rng, (B, W, C, 3), tie_share=0.5) ** 0.3  # mostly high: long spans
        lengths = [int(x) for x in rng.integers(1, W + 1, B)]
        names = [list(rng.choice(NAMES, C, replace=False)) for _ in range(B)]
        old = [old_path([(0, row)], n, flat_ner, multi_label, "token")
               for row, n in zip(D.token_candidates(probs, lengths, names, threshold=0.7), names,
                                 strict=True)]
        new = D.decode(probs, lengths, names, threshold=0.7, flat_ner=flat_ner,
                       multi_label=multi_label, head="token")
        assert new == old
        found += sum(map(len, new))
    assert found > 20


def test_nan_scores_are_never_candidates():
    probs = np.full((1, 3, 2, 2), 0.9, F32)
    probs[0, 0, 0, 0] = np.nan
    old = D.greedy_search(D.candidates(probs, [3], [["a", "b"]])[0], presorted=True)
    assert D.decode(probs, [3], [["a", "b"]]) == [old]
    assert old[0] == D.Span(0, 0, "b", float(F32(0.9)))


def test_best_class_on_device_equals_candidate_arrays():
    """The bi-encoder picks each span's best class on device (`best_class`); with
    `best_candidates` that gives `candidate_arrays`' candidates of rows without multi_label:
    per-row label counts, padded classes, ties, NaN."""
    from gliner_jax.biencoder import best_class

    rng = np.random.default_rng(3)
    B, W, K, C = 3, 12, 5, 8  # one shape: one compilation
    for trial in range(20):
        probs = scores(rng, (B, W, K, C), tie_share=trial % 3 / 2)
        probs[rng.random(probs.shape) < 0.05] = np.nan
        names = [list(rng.choice(NAMES, int(rng.integers(1, C + 1)), replace=False))
                 for _ in range(B)]
        lengths = [int(x) for x in rng.integers(0, W + 1, B)]
        thr = [float(x) for x in rng.choice([0.0, 0.5, 0.8], B)]
        mask = np.arange(C)[None] < np.array([len(n) for n in names])[:, None]
        best, arg = (np.asarray(x) for x in best_class(probs, mask))
        got = D.best_candidates(best, arg, lengths, thr)
        want = D.candidate_arrays(probs, lengths, names, threshold=thr, multi_label=False)
        for g, w in zip(got, want, strict=True):
            for a, b in zip(g, w, strict=True):
                np.testing.assert_array_equal(a, b)
        assert sum(len(g.score) for g in got) > 0 or trial % 3

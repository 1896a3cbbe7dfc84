"""gliner_jax.metrics against hand-computed cases and the reference's own evaluator."""

import random
import warnings

import pytest

from gliner_jax.metrics import PRF, ner_scores

# (gold per sentence, predictions per sentence, tp, n_pred, n_true, precision, recall, f1)
HAND_CASES = {
    "perfect": ([[(0, 1, "a")]], [[(0, 1, "a")]], 1, 1, 1, 1.0, 1.0, 1.0),
    "no_predictions": ([[(0, 1, "a")]], [[]], 0, 0, 1, 0.0, 0.0, 0.0),
    "no_gold": ([[]], [[(0, 1, "a")]], 0, 1, 0, 0.0, 0.0, 0.0),
    "nothing_at_all": ([[], []], [[], []], 0, 0, 0, 0.0, 0.0, 0.0),
    "wrong_label": ([[(0, 1, "a")]], [[(0, 1, "b")]], 0, 1, 1, 0.0, 0.0, 0.0),
    "wrong_boundary": ([[(0, 1, "a")]], [[(0, 2, "a")]], 0, 1, 1, 0.0, 0.0, 0.0),
    "other_sentence": ([[(0, 0, "a")], []], [[], [(0, 0, "a")]], 0, 1, 1, 0.0, 0.0, 0.0),
    # sets: a duplicated gold or predicted entity counts once
    "duplicates": ([[(0, 0, "a"), (0, 0, "a")]], [[(0, 0, "a")] * 3], 1, 1, 1, 1.0, 1.0, 1.0),
    # P = 1/2, R = 1/3, F1 = 2 * (1/6) / (5/6) = 0.4
    "partial": (
        [[(0, 0, "a"), (2, 3, "b")], [(1, 1, "a")]],
        [[(0, 0, "a"), (2, 3, "a")], []],
        1,
        2,
        3,
        0.5,
        1 / 3,
        2 * (0.5 * (1 / 3)) / (0.5 + 1 / 3),
    ),
    # a misaligned gold entity of the eval bundle (None index) is a miss
    "none_index_gold": ([[(None, 2, "a"), (0, 0, "a")]], [[(0, 0, "a")]], 1, 1, 2, 1.0, 0.5, 2 / 3),
    # decoders emit (start, end, label, score); the score is ignored
    "with_scores": (
        [[(0, 1, "a")]],
        [[(0, 1, "a", 0.9), (3, 3, "a", 0.6)]],
        1,
        2,
        1,
        0.5,
        1.0,
        2 * 0.5 / 1.5,
    ),
}


@pytest.mark.parametrize("case", HAND_CASES.values(), ids=HAND_CASES.keys())
def test_hand_computed(case):
    gold, pred, tp, n_pred, n_true, p, r, f1 = case
    scores = ner_scores(gold, pred)
    assert (scores.micro.tp, scores.micro.n_pred, scores.micro.n_true) == (tp, n_pred, n_true)
    assert scores.precision == pytest.approx(p, abs=1e-15)
    assert scores.recall == pytest.approx(r, abs=1e-15)
    assert scores.f1 == pytest.approx(f1, abs=1e-15)


def test_per_label_breakdown():
    gold = [[(0, 0, "per"), (2, 3, "loc")], [(1, 1, "per"), (4, 4, "org")]]
    pred = [[(0, 0, "per"), (2, 3, "per")], [(1, 1, "per"), (4, 4, "org"), (5, 5, "misc")]]
    scores = ner_scores(gold, pred)
    assert list(scores.per_label) == ["loc", "misc", "org", "per"]
    assert scores.per_label["per"] == PRF(tp=2, n_pred=3, n_true=2)
    assert scores.per_label["loc"] == PRF(tp=0, n_pred=0, n_true=1)
    assert scores.per_label["misc"] == PRF(tp=0, n_pred=1, n_true=0)
    assert scores.per_label["org"] == PRF(tp=1, n_pred=1, n_true=1)
    assert scores.micro == PRF(tp=3, n_pred=5, n_true=4)
    assert scores.per_label["per"].precision == 2 / 3
    assert scores.per_label["per"].recall == 1.0
    assert scores.per_label["loc"].f1 == 0.0


def test_result_line_format():
    line = ner_scores([[(0, 0, "a"), (1, 1, "a")]], [[(0, 0, "a")]]).micro.line()
    assert line == "P: 100.00%\tR: 50.00%\tF1: 66.67%\n"


def test_sentence_count_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 gold sentences but 1 predicted"):
        ner_scores([[], []], [[]])


# --------------------------------------------------------------------------------------------
# Against gliner 0.2.29's evaluator


def _random_case(seed):
    """Gold spans and predictions that agree in part: kept, relabelled, shifted, invented."""
    rng = random.Random(seed)
    labels = ["person", "location", "organization", "misc", "date"][: rng.randint(1, 5)]
    gold, pred = [], []
    for _ in range(rng.randint(0, 40)):
        n_words = rng.randint(1, 30)
        g = []
        for _ in range(rng.randint(0, 5)):
            s = rng.randrange(n_words)
            g.append((s, min(n_words - 1, s + rng.randint(0, 3)), rng.choice(labels)))
        p = []
        for s, e, lab in g:
            u = rng.random()
            if u < 0.5:
                p.append((s, e, lab))
            elif u < 0.65:
                p.append((s, e, rng.choice(labels)))
            elif u < 0.8:
                p.append((s, e + 1, lab))
        for _ in range(rng.randint(0, 2)):
            s = rng.randrange(n_words)
            p.append((s, s + rng.randint(0, 2), rng.choice(labels)))
        if rng.random() < 0.1:
            p = p + p[:1]  # a duplicated prediction
        gold.append(g)
        pred.append(p)
    if seed % 7 == 0:  # no predictions at all: the zero-division path
        pred = [[] for _ in gold]
    return gold, pred


@pytest.mark.parametrize("seed", range(60))
def test_equals_reference_evaluator(seed):
    evaluator = pytest.importorskip("gliner.evaluation.evaluator")
    ref_utils = pytest.importorskip("gliner.evaluation.utils")
    gold, pred = _random_case(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reference warns on zero division
        ev = evaluator.BaseNEREvaluator(gold, pred)
        true_typed, pred_typed = ev.transform_data()
        ref = evaluator.BaseEvaluator.compute_prf(true_typed, pred_typed)
        ref_line, ref_f1 = ev.evaluate()
    ours = ner_scores(gold, pred)
    # identical to the last bit, not approximately
    assert ours.precision == ref["precision"]
    assert ours.recall == ref["recall"]
    assert ours.f1 == ref["f_score"] == ref_f1
    assert ours.micro.line() == ref_line
    # per-label counts: the reference's own per-type table
    flat_true, flat_pred = ref_utils.flatten_for_eval(true_typed, pred_typed)
    pred_sum, tp_sum, true_sum, names = ref_utils.extract_tp_actual_correct(flat_true, flat_pred)
    assert list(ours.per_label) == names
    assert [x.tp for x in ours.per_label.values()] == tp_sum.tolist()
    assert [x.n_pred for x in ours.per_label.values()] == pred_sum.tolist()
    assert [x.n_true for x in ours.per_label.values()] == true_sum.tolist()


def test_random_cases_are_not_trivial():
    """The random cases cover perfect, partial and zero scores (else the parity test is weak)."""
    f1s = [ner_scores(*_random_case(seed)).f1 for seed in range(60)]
    assert any(f == 0.0 for f in f1s)
    assert sum(0.0 < f < 1.0 for f in f1s) > 40


def test_reference_span_objects():
    decoder = pytest.importorskip("gliner.decoding.decoder")
    span = decoder.Span(start=0, end=1, entity_type="a", score=0.9)
    assert ner_scores([[(0, 1, "a")]], [[span]]).micro == PRF(tp=1, n_pred=1, n_true=1)


def test_accepts_gliner_jax_spans():
    from gliner_jax.decoding import Span

    gold = [[(0, 1, "person")], [(2, 2, "city")]]
    pred = [[Span(0, 1, "person", 0.9)], [Span(2, 2, "person", 0.8)]]
    s = ner_scores(gold, pred)
    assert (s.micro.tp, s.micro.n_pred, s.micro.n_true) == (1, 2, 2)

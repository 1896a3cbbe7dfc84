"""Long documents: texts past max_len words are predicted in overlapping windows and stitched.

The proof the issue asks for: in a 10,000-word document, the words placed at word 5,000 get the
entity (offsets and score) that their own window gives when predicted alone, through the Python
API and through `python -m gliner_jax.predict --document`. With a random model "the entity" is
whatever the model finds over those words in their window; it is never a cut or shifted one.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from gliner_jax import decoding
from gliner_jax.model import GLiNER, plan_windows
from gliner_jax.processing import TruncationWarning, split_words
from tests.reference_models import cached_reference_gliner

REPO = Path(__file__).resolve().parents[1]
LABELS = ["person", "location"]
FILLER = "the of and to in is was for on that with as by at from river mountain date time".split()
PLANTED = 5000  # "Barack Obama" is words 5000 and 5001


@pytest.fixture(scope="module")
def ref_and_dir():
    # weight_scale 1.0: scores spread over ~0.43-0.54 instead of saturating at 1.0, so that
    # "the highest score" and "the same score" are meaningful
    return cached_reference_gliner(weight_scale=1.0)


@pytest.fixture(scope="module")
def model(ref_and_dir):
    return GLiNER.from_pretrained(ref_and_dir[1])


@pytest.fixture(scope="module")
def document() -> str:
    rng = random.Random(0)
    words = [rng.choice(FILLER) for _ in range(10_000)]
    words[PLANTED:PLANTED + 2] = ["Barack", "Obama"]
    return " ".join(words)


@pytest.fixture(scope="module")
def planted(model, document):
    """(start, end, entities over the planted words from their own windows predicted alone)."""
    return _expected_at_planted(model, document)


@pytest.fixture(scope="module")
def api_entities(model, document):
    return model.predict_entities(document, LABELS)


def _window_text(text: str, first: int, end: int) -> tuple[str, int]:
    """The characters of words [first, end) and the offset of the first one."""
    words = split_words(text)
    a, b = words[first][1], words[end - 1][2]
    return text[a:b], a


def _overlapping(entities, start: int, end: int):
    return [e for e in entities if e["start"] < end and e["end"] > start]


def _expected_at_planted(model: GLiNER, doc: str):
    """Entities over the planted words from each window that holds them, predicted alone."""
    words = split_words(doc)
    start, end = words[PLANTED][1], words[PLANTED + 1][2]
    size, stride = model.window_shape()
    best: dict[tuple, dict] = {}
    for s, e in plan_windows(len(words), size, stride, model.config.max_width - 1):
        if not (s <= PLANTED and PLANTED + 1 < e):
            continue
        text, offset = _window_text(doc, s, e)
        for e in _overlapping(model.predict_entities(text, LABELS), start - offset, end - offset):
            e = dict(e, start=e["start"] + offset, end=e["end"] + offset)
            key = (e["start"], e["end"], e["label"])
            if key not in best or e["score"] > best[key]["score"]:
                best[key] = e
    return start, end, sorted(best.values(), key=lambda e: e["start"])


def test_window_geometry(model):
    assert plan_windows(100, 384, 288, 11) == [(0, 100)]
    assert plan_windows(1000, 384, 288, 11) == [(0, 384), (288, 672), (576, 960), (616, 1000)]
    # a sub-token budget: windows shrink, still overlap by >= 11 words and cover the text
    rng = random.Random(0)
    tokens = [rng.choice([1, 1, 2, 5]) for _ in range(300)]
    windows = plan_windows(300, 32, 21, 11, tokens, 40)
    assert windows[0][0] == 0 and windows[-1][1] == 300
    for (s, e), (s2, e2) in zip(windows, windows[1:], strict=False):
        assert s < s2 and e < e2 and e - s2 >= 11
    assert all(sum(tokens[s:e]) <= 40 and e - s <= 32 for s, e in windows)
    assert any(e - s < 32 for s, e in windows[:-1])
    size, stride = model.window_shape()
    assert (size, stride) == (384, 288)
    assert model.window_shape(32) == (32, 21)  # overlap >= max_width - 1 = 11 words
    with pytest.raises(ValueError, match="stride"):
        model.window_shape(32, 22)
    with pytest.raises(ValueError, match="window size"):
        model.window_shape(385)


def test_entity_at_word_5000_of_10000(document, planted, api_entities):
    start, end, expected = planted
    assert expected, "the planted words' own window gives them no entity: pick another filler"
    assert any(e["start"] <= start < end <= e["end"] for e in expected)
    got = api_entities
    found = _overlapping(got, start, end)
    assert [(e["start"], e["end"], e["label"], e["text"]) for e in found] == \
        [(e["start"], e["end"], e["label"], e["text"]) for e in expected]
    for g, e in zip(found, expected, strict=True):
        assert document[g["start"]:g["end"]] == g["text"]
        # the same program on other rows of a padded batch: equal up to float32 rounding
        assert g["score"] == pytest.approx(e["score"], rel=1e-5, abs=0)
    # the whole document is covered: entities well past max_len words, none past the end
    assert max(e["end"] for e in got) > len(document) * 0.99
    assert all(0 <= e["start"] < e["end"] <= len(document) for e in got)


def test_windows_are_stitched(model):
    """A 100-word text in windows of 32 words every 21: the result is the greedy decoding of the
    candidates of every window predicted alone, merged by max score, in text offsets."""
    rng = random.Random(1)
    text = " ".join(rng.choice(FILLER + ["Alice", "Paris", "Google"]) for _ in range(100))
    words = split_words(text)
    size, stride = 32, 21
    windows = plan_windows(len(words), size, stride, 11)
    assert len(windows) == 5
    cands = []
    for s, e in windows:
        w = [x for x, _, _ in words[s:e]]
        batch = model.processor.encode([w], [LABELS], pad=True)
        probs = model.span_probs(batch)
        for sp in decoding.candidates(probs, batch.text_lengths, [LABELS], threshold=0.5)[0]:
            cands.append(sp._replace(start=sp.start + s, end=sp.end + s))
    keys = [(c.start, c.end, c.label) for c in cands]
    seen_twice = len(keys) - len(set(keys))
    assert seen_twice > 0  # the test exercises de-duplication
    for flat in (True, False):
        spans = decoding.greedy_search(decoding.merge_candidates(cands, LABELS), flat_ner=flat,
                                       presorted=True)
        want = decoding.spans_to_entities(spans, text, [(a, b) for _, a, b in words])
        got = model.inference([text], LABELS, batch_size=3, flat_ner=flat, window_size=size,
                              window_stride=stride)[0]
        assert [(e["start"], e["end"], e["label"]) for e in got] == \
            [(e["start"], e["end"], e["label"]) for e in want]
        np.testing.assert_allclose([e["score"] for e in got], [e["score"] for e in want],
                                   rtol=1e-5)
        positions = [(e["start"], e["end"], e["label"]) for e in got]
        assert len(positions) == len(set(positions))  # a span seen twice comes out once
        if flat:
            assert all(a["end"] <= b["start"] for a, b in zip(got, got[1:], strict=False))


def test_config_window_size_is_the_default_window(ref_and_dir, model, tmp_path):
    """A model directory whose gliner_config.json names `window_size` (a gliner_jax key the
    reference ignores) predicts texts longer than it in windows of that size by default; a value
    outside [max_width, max_len] fails at load with one line; without it nothing is written."""
    import json
    import shutil

    rng = random.Random(2)
    text = " ".join(rng.choice(FILLER + ["Alice", "Paris", "Google"]) for _ in range(100))
    d = tmp_path / "m"
    shutil.copytree(ref_and_dir[1], d)
    cfg = json.loads((d / "gliner_config.json").read_text())
    assert "window_size" not in model.config.to_dict()
    cfg["window_size"] = 32
    (d / "gliner_config.json").write_text(json.dumps(cfg))
    windowed = GLiNER.from_pretrained(d)
    assert windowed.window_shape() == (32, 21)  # overlap of max_width - 1 words
    assert windowed.config.to_dict()["window_size"] == 32
    want = model.inference([text], LABELS, window_size=32)
    assert windowed.inference([text], LABELS) == want
    assert model.inference([text], LABELS) != want  # max_len: one pass, a different result
    cfg["window_size"] = model.config.max_len + 1
    (d / "gliner_config.json").write_text(json.dumps(cfg))
    with pytest.raises(Exception, match="window_size") as e:
        GLiNER.from_pretrained(d)
    assert "\n" not in str(e.value)


def test_windows_fit_the_tokenizer_limit():
    """BERT tokenizers stop at 512 sub-tokens: windows of a long text hold at most that many,
    where a plain 384-word window would lose its last words."""
    _, saved = cached_reference_gliner(backbone="bert", weight_scale=1.0)
    bert = GLiNER.from_pretrained(saved)
    assert bert.processor.model_max_length == 512
    rng = random.Random(2)
    text = " ".join(rng.choice(["zurich", "mountain", "river", "cafe", "paris"])
                    for _ in range(1500))
    with pytest.warns(TruncationWarning, match="512 tokens"):
        bert.inference([" ".join(text.split()[:384])], LABELS)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        got = bert.predict_entities(text, LABELS)
    assert max(e["end"] for e in got) > len(text) * 0.99


def test_short_texts_match_reference_and_progress(ref_and_dir, model):
    ref, _ = ref_and_dir
    texts = ["John Smith works at Google in Paris.", "", "Alice was born in Berlin . " * 10]
    done = []
    got = model.inference(texts, LABELS, batch_size=2, progress=done.append)
    assert sum(done) == len(texts)
    want = ref.inference(texts, LABELS, batch_size=2)
    assert got[1] == []
    for g, w in zip(got, want, strict=True):
        assert [(e["start"], e["end"], e["label"]) for e in g] == \
            [(e["start"], e["end"], e["label"]) for e in w]
        np.testing.assert_allclose([e["score"] for e in g], [e["score"] for e in w], rtol=1e-4)


def test_truncate_is_the_reference(ref_and_dir, model, document):
    ref, _ = ref_and_dir
    head = " ".join(document.split()[:1000])
    with pytest.warns(TruncationWarning, match="616 words are cut"):
        got = model.predict_entities(head, LABELS, truncate=True)
    want = ref.predict_entities(head, LABELS)
    assert [(e["start"], e["end"], e["label"]) for e in got] == \
        [(e["start"], e["end"], e["label"]) for e in want]
    np.testing.assert_allclose([e["score"] for e in got], [e["score"] for e in want], rtol=1e-4)
    assert max(e["end"] for e in got) <= split_words(head)[383][2]


def test_cli_document(ref_and_dir, document, planted, api_entities, tmp_path):
    """The same proof through `python -m gliner_jax.predict --document`."""
    doc = tmp_path / "doc.txt"
    doc.write_text(document, encoding="utf-8")
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
               GLINER_JAX_CACHE=str(tmp_path / "xla"))
    proc = subprocess.run(
        [sys.executable, "-m", "gliner_jax.predict", "--model", str(ref_and_dir[1]), "--labels",
         ",".join(LABELS), "--input", str(doc), "--document", "--quiet"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    got = json.loads(line)
    assert got["id"] == 0
    start, end, expected = planted
    found = _overlapping(got["entities"], start, end)
    assert [(e["start"], e["end"], e["label"]) for e in found] == \
        [(e["start"], e["end"], e["label"]) for e in expected]
    np.testing.assert_allclose([e["score"] for e in found], [e["score"] for e in expected],
                               rtol=1e-5)
    assert [(e["start"], e["end"], e["label"]) for e in got["entities"]] == \
        [(e["start"], e["end"], e["label"]) for e in api_entities]

"""The spaCy component "gliner_jax" on spacy.blank("en") and a tiny random model: entities equal
the API's, nlp.pipe makes one inference call per batch, misaligned and overlapping spans are
handled as documented. (Registration through the installed package's entry point, with the
shipped default model, is tested on the built wheel in test_packaging.py.)
"""

from __future__ import annotations

import pytest

spacy = pytest.importorskip("spacy")  # the optional extra; requirements-test.txt installs it

from gliner_jax import spacy_component  # noqa: E402  (registers the factory)
from tests.reference_models import cached_reference_gliner  # noqa: E402

LABELS = ["person", "company", "city"]
TEXTS = ["John Smith works at Google in Paris.", "Alice was born in Berlin.", "",
         "Bob and Alice moved from London to New York with Apple.",
         "Barack Obama was born in Hawaii.", "Microsoft is in the United States.",
         "the river of Europe"]


@pytest.fixture(scope="module")
def model_dir():
    return str(cached_reference_gliner(weight_scale=2.0)[1])


def make_nlp(model_dir, **config):
    nlp = spacy.blank("en")
    nlp.add_pipe("gliner_jax", config={"model": model_dir, "labels": LABELS, **config})
    return nlp


def as_tuples(spans):
    return [(s.start_char, s.end_char, s.label_, round(s._.score, 5)) for s in spans]


def api_tuples(nlp, doc, ents):
    """The API's entities as spaCy would hold them: strictly aligned ones only."""
    out = []
    for e in ents:
        span = doc.char_span(e["start"], e["end"])
        if span is not None:
            out.append((span.start_char, span.end_char, e["label"], round(e["score"], 5)))
    return out


@pytest.mark.parametrize(("style", "threshold"), [("ent", 0.5), ("span", 0.3)])
def test_entities_equal_the_api(model_dir, style, threshold):
    nlp = make_nlp(model_dir, style=style, threshold=threshold)
    model = nlp.get_pipe("gliner_jax").model
    want = model.inference(TEXTS, LABELS, threshold=threshold, flat_ner=style == "ent")
    total = 0
    for text, ents in zip(TEXTS, want, strict=True):
        doc = nlp(text)
        got = as_tuples(doc.ents if style == "ent" else doc.spans["sc"])
        assert got == api_tuples(nlp, doc, ents)
        if style == "span":
            assert doc.ents == ()
        total += len(got)
    assert total >= 4  # the random model does find entities at this threshold


def test_pipe_makes_one_inference_call_per_batch(model_dir):
    nlp = make_nlp(model_dir, batch_size=4)
    comp = nlp.get_pipe("gliner_jax")
    one_by_one = [as_tuples(nlp(t).ents) for t in TEXTS]
    calls = []
    inference = comp.model.inference

    def counting(texts, *args, **kwargs):
        calls.append(len(texts))
        assert kwargs["batch_size"] == 4
        return inference(texts, *args, **kwargs)

    comp.model.inference = counting
    try:
        docs = list(nlp.pipe(TEXTS, batch_size=3))
    finally:
        del comp.model.inference
    assert calls == [3, 3, 1]  # 7 docs in batches of 3
    assert [as_tuples(d.ents) for d in docs] == one_by_one


def test_chunks_are_batched_and_offsets_shifted(model_dir):
    """chunk_size cuts at whitespace as gliner-spacy does; entities of later chunks land at
    their place in the doc."""
    long = " ".join(TEXTS[:2] * 3)
    nlp = make_nlp(model_dir, chunk_size=40, threshold=0.3)
    comp = nlp.get_pipe("gliner_jax")
    chunks = comp._chunks(long)
    assert len(chunks) > 3 and "".join(c for _, c in chunks) == long
    assert all(off + len(c) == nxt for (off, c), (nxt, _) in zip(chunks, chunks[1:], strict=False))
    doc = nlp(long)
    want = comp.model.inference([c for _, c in chunks], LABELS, threshold=0.3)
    expected = [(off + e["start"], off + e["end"], e["label"])
                for (off, _), ents in zip(chunks, want, strict=True) for e in ents]
    got = [(s.start_char, s.end_char, s.label_) for s in doc.ents]
    assert got == [x for x in expected if doc.char_span(x[0], x[1]) is not None]
    assert any(s > 40 for s, _, _ in got)


class _Fixed:
    """Stands in for the model in the alignment test: returns given character spans."""

    def __init__(self, entities):
        self.entities = entities

    def inference(self, texts, labels, **kwargs):
        return [list(self.entities) for _ in texts]


@pytest.mark.parametrize(("mode", "want"), [
    # "AcmeCorp" (characters 15-23) is one spaCy token; the model saw "Acme" and "Corp"
    ("strict", [(0, 10, "person")]),
    ("contract", [(0, 10, "person")]),
    ("expand", [(0, 10, "person"), (15, 23, "company")]),
])
def test_misaligned_and_overlapping_spans(model_dir, mode, want):
    text = "John Smith met AcmeCorp people."
    nlp = make_nlp(model_dir, alignment_mode=mode)
    comp = nlp.get_pipe("gliner_jax")
    comp.model = _Fixed([
        {"start": 0, "end": 10, "label": "person", "score": 0.9},     # aligned
        {"start": 15, "end": 19, "label": "company", "score": 0.8},   # "Acme": inside a token
        {"start": 19, "end": 23, "label": "company", "score": 0.7},   # "Corp": inside a token
    ])
    doc = nlp(text)
    assert [(s.start_char, s.end_char, s.label_) for s in doc.ents] == want
    assert doc.ents[0]._.score == 0.9
    if mode == "expand":  # both snap to "AcmeCorp": the overlap keeps the first
        assert doc.ents[1]._.score == 0.8
    # span style keeps what aligns, overlaps included
    comp.style = "span"
    doc = nlp(text)
    got = [(s.start_char, s.end_char, s.label_, s._.score) for s in doc.spans["sc"]]
    assert got == [(0, 10, "person", 0.9)] + ([(15, 23, "company", 0.8)] if mode == "expand"
                                              else [])


@pytest.mark.parametrize(("config", "message"), [
    ({"style": "token"}, "style must be one of"),
    ({"alignment_mode": "fuzzy"}, "alignment_mode must be one of"),
    ({"threshold": 1.5}, "threshold must be between 0 and 1"),
    ({"labels": []}, "labels must be a non-empty list"),
    ({"chunk_size": 0}, "chunk_size must be a positive"),
])
def test_bad_config(model_dir, config, message):
    with pytest.raises(ValueError, match=message):
        make_nlp(model_dir, **config)


def test_models_are_shared_between_pipes(model_dir):
    a, b = make_nlp(model_dir), make_nlp(model_dir, style="span")
    assert a.get_pipe("gliner_jax").model is b.get_pipe("gliner_jax").model
    assert spacy_component._MODELS

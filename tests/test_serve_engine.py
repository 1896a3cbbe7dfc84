"""The server's parts that need no Ray: the request protocol, the warm-up grid, the Engine
(data-parallel over this test session's 8 simulated CPU devices), and that a predict-only import
never pulls in Ray or the web stack."""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import pytest

from gliner_jax.model import GLiNER
from gliner_jax.serve.config import ServeConfig
from gliner_jax.serve.engine import Engine
from gliner_jax.serve.protocol import PredictRequest, RequestError, parse_request
from tests.reference_models import cached_reference_gliner
from tests.serve_harness import REPO

LABELS = ["person", "company", "city"]


def test_parse_request_fills_defaults_and_keeps_label_dicts():
    r = parse_request(json.dumps({"text": "x", "labels": {"person": "a human"}}).encode(),
                      default_threshold=0.4)
    assert r == PredictRequest("x", {"person": "a human"}, 0.4, True, False)
    r = parse_request(b'{"text": "x", "labels": ["a"], "threshold": 0, "multi_label": true}')
    assert (r.threshold, r.multi_label) == (0.0, True)


@pytest.mark.parametrize("body,words", [
    (b'{"text": "x", "labels": ["a", "b", "c"]}', "3 labels, at most 2"),
    (b'{"text": "x", "labels": ["a"], "threshold": true}', "must be a number"),
    (b'{"text": "x", "labels": ["a"], "threshold": NaN}', "between 0 and 1"),
    (b'{"text": "x", "labels": {"a": 1}}', "description of 'a' must be a string"),
    (b'{"text": "x", "labels": ["a"], "adapter_id": "z"}', "not supported"),
    (b"[" * 100_000, "malformed JSON"),
])
def test_parse_request_errors(body, words):
    with pytest.raises(RequestError) as e:
        parse_request(body, max_labels=2)
    assert 400 <= e.value.status < 500 and words in e.value.message


def test_serve_config_checks():
    with pytest.raises(ValueError, match="max_ongoing_requests"):
        ServeConfig(model="m", max_batch_size=64, max_ongoing_requests=32)
    assert ServeConfig(model="m", route_prefix="/api/").route_prefix == "/api"


def test_predict_only_import_does_not_import_ray():
    code = ("import sys, gliner_jax, gliner_jax.predict, gliner_jax.serve, "
            "gliner_jax.serve.engine, gliner_jax.serve.protocol; "
            "bad = [m for m in ('ray', 'starlette', 'gradio', 'fastapi') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=300,
                   env={"PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu", "PATH": "/usr/bin"})


@pytest.fixture(scope="module")
def model_dir():
    return cached_reference_gliner(weight_scale=2.0)[1]


def test_engine_is_data_parallel_and_equals_inference(model_dir):
    """8 devices: batches are padded to a multiple of 8 rows and split over the mesh; the
    entities equal single-device inference, per request threshold and switches included."""
    assert jax.local_device_count() == 8  # conftest
    eng = Engine(ServeConfig(model=str(model_dir), max_batch_size=8, cache_dir="none",
                             warmup_max_tokens=32, warmup_max_labels=4))
    assert eng.model.mesh is not None and eng.model.mesh.size == 8
    shapes = eng.warmup_shapes()
    assert shapes and all(b % 8 == 0 for b, *_ in shapes)
    texts = ["John Smith works at Google in Paris.", "Alice was born in Berlin.", "",
             "Apple and Microsoft are in New York.", "Bob"]
    reqs = [PredictRequest(t, LABELS, 0.2 + 0.1 * i, i % 2 == 0, i == 3)
            for i, t in enumerate(texts)]
    got = eng.predict(reqs)
    assert all(b % 8 == 0 for b, *_ in eng.model.shapes)
    ref = GLiNER.from_pretrained(model_dir)
    for r, g in zip(reqs, got, strict=True):
        want = ref.predict_entities(r.text, r.labels, threshold=r.threshold, flat_ner=r.flat_ner,
                                    multi_label=r.multi_label)
        assert [(e["start"], e["end"], e["label"]) for e in g] == \
               [(e["start"], e["end"], e["label"]) for e in want]
        assert [e["score"] for e in g] == pytest.approx([e["score"] for e in want], rel=1e-5)
    assert sum(map(len, got)) > 3

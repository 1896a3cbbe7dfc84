"""The shipped model (checkpoints/, fp16 storage): its predictions equal the fp32 model's
(recorded at release time by `python -m train.release`) to the score's third decimal, the
PyTorch `gliner` package loads it and finds the same entities, and `python -m gliner_jax.predict`
uses it by default."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gliner_jax import GLiNER

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.parent for p in (REPO / "checkpoints").glob("*/gliner_config.json"))


@pytest.fixture(scope="module")
def shipped():
    assert len(SHIPPED) == 1, f"expected one shipped model in checkpoints/, found {SHIPPED}"
    d = SHIPPED[0]
    return d, json.loads((d / "fp32_predictions.json").read_text()), GLiNER.from_pretrained(d)


def _spans(rows):
    return [[(e["start"], e["end"], e["label"]) for e in r] for r in rows]


def test_fp16_storage_keeps_fp32_predictions(shipped):
    _, rec, model = shipped
    got = model.inference(rec["sentences"], rec["labels"], threshold=rec["threshold"])
    assert _spans(got) == _spans(rec["entities"])
    assert sum(map(len, got)) > 0
    for rg, rw in zip(got, rec["entities"], strict=True):
        for a, b in zip(rg, rw, strict=True):
            assert abs(a["score"] - b["score"]) < 5e-4


def test_reference_package_finds_the_same_entities(shipped):
    from gliner import GLiNER as RefGLiNER

    d, rec, model = shipped
    ref = RefGLiNER.from_pretrained(str(d), local_files_only=True)
    ref.eval()
    want = ref.inference(rec["sentences"], rec["labels"], threshold=rec["threshold"])
    got = model.inference(rec["sentences"], rec["labels"], threshold=rec["threshold"])
    assert _spans(got) == _spans(want)
    for rg, rw in zip(got, want, strict=True):
        for a, b in zip(rg, rw, strict=True):
            assert abs(a["score"] - b["score"]) < 1e-5


def test_predict_uses_it_by_default(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GLINER_JAX_MODEL": ""}
    env.pop("GLINER_JAX_MODEL")
    r = subprocess.run(
        [sys.executable, "-m", "gliner_jax.predict", "-q", "--cache-dir", str(tmp_path),
         "--labels", "person,organization,location,award",
         "Marie Curie received the Nobel Prize in Physics in 1903 together with Pierre Curie."],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["id"] == 0 and out["entities"], out

"""GLiNER.from_pretrained("org/name") through huggingface_hub, against a hub stand-in on
loopback (tests/hub_server.py, HF_ENDPOINT): download, the cache (a second load downloads
nothing; offline mode reads it), revisions, and one-line errors for a missing repo, revision or
file; save_pretrained(push_to_hub=True) uploads a model that then downloads back. The loads run
in subprocesses: huggingface_hub reads HF_ENDPOINT when it is imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hub_server import FakeHub
from tests.reference_models import cached_reference_gliner

REPO = Path(__file__).resolve().parents[1]
TEXTS = ["John Smith works at Google in Paris.", "Alice was born in Berlin."]
LABELS = ["person", "company", "city"]

SCRIPT = """
import json, sys, urllib.request
from gliner_jax.convert import ModelLoadError
from gliner_jax.hub import HubError
from gliner_jax.model import GLiNER

endpoint, texts, labels, calls = sys.argv[1], *map(json.loads, sys.argv[2:5])

def log():
    return json.load(urllib.request.urlopen(endpoint + "/_requests"))

out = {}
for name, (repo, kwargs) in calls.items():
    before = len(log())
    try:
        push = kwargs.pop("push", None)
        model = GLiNER.from_pretrained(repo, **kwargs)
        if push:  # [directory, save_pretrained's keywords]
            out[name] = {"url": model.save_pretrained(push[0], push_to_hub=True, **push[1])}
        else:
            out[name] = {"entities": model.inference(texts, labels, threshold=0.3)}
    except (ModelLoadError, HubError) as e:
        out[name] = {"error": str(e)}
    out[name]["requests"] = log()[before:]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("repos")
    not_gliner = d / "not_gliner"
    not_gliner.mkdir()
    (not_gliner / "config.json").write_text("{}")
    (not_gliner / "README.md").write_text("an encoder, not a GLiNER model\n")
    main = cached_reference_gliner(weight_scale=2.0)[1]
    no_weights = d / "no_weights"
    shutil.copytree(main, no_weights)
    (no_weights / "model.safetensors").unlink()
    return {"main": main, "v1": cached_reference_gliner(weight_scale=2.0, seed=1)[1],
            "not_gliner": not_gliner, "no_weights": no_weights}


def run(hub: FakeHub, hf_home: Path, calls: dict, offline: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GLINER_JAX_"))}
    env.update(PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu", HF_ENDPOINT=hub.url,
               HF_HOME=str(hf_home), HF_HUB_OFFLINE="1" if offline else "0",
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
               TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, hub.url, json.dumps(TEXTS),
                           json.dumps(LABELS), json.dumps(calls)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def local_entities(model_dir: Path) -> list:
    from gliner_jax.model import GLiNER

    return GLiNER.from_pretrained(model_dir).inference(TEXTS, LABELS, threshold=0.3)


def same(got, want) -> bool:
    return [[(e["start"], e["end"], e["label"], round(e["score"], 5)) for e in x] for x in got] \
        == [[(e["start"], e["end"], e["label"], round(e["score"], 5)) for e in x] for x in want]


def test_download_cache_revisions_and_errors(models, tmp_path):
    hf_home = tmp_path / "hf"
    with FakeHub() as hub:
        shas = hub.add("org/tiny", {"main": models["main"], "v1": models["v1"]})
        hub.add("org/encoder", {"main": models["not_gliner"]})
        hub.add("org/no-weights", {"main": models["no_weights"]})
        out = run(hub, hf_home, {
            "first": ["org/tiny", {}],
            "again": ["org/tiny", {}],
            "v1": ["org/tiny", {"revision": "v1"}],
            "by_sha": ["org/tiny", {"revision": shas["v1"]}],
            "no_repo": ["org/nope", {}],
            "no_revision": ["org/tiny", {"revision": "v9"}],
            "not_gliner": ["org/encoder", {}],
            "no_weights": ["org/no-weights", {}],
        })
        offline = run(hub, hf_home, {"cached": ["org/tiny", {}],
                                     "cached_v1": ["org/tiny", {"revision": "v1"}],
                                     "never_fetched": ["org/encoder2", {}]}, offline=True)

    main, v1 = local_entities(models["main"]), local_entities(models["v1"])
    assert not same(main, v1) and sum(map(len, main)) > 0
    # download: the files came over HTTP and give the local model's entities
    assert same(out["first"]["entities"], main)
    fetched = {p.split("/resolve/")[1].split("/", 1)[1] for m, p in out["first"]["requests"]
               if m == "GET" and "/resolve/" in p}
    assert {"gliner_config.json", "model.safetensors"} <= fetched
    # cache: the second load downloads no file
    assert same(out["again"]["entities"], main)
    assert not [r for r in out["again"]["requests"] if r[0] == "GET" and "/resolve/" in r[1]]
    snapshots = list((hf_home / "hub" / "models--org--tiny" / "snapshots").iterdir())
    assert shas["main"] in {p.name for p in snapshots}
    # revisions: a tag and its commit hash
    assert same(out["v1"]["entities"], v1)
    assert same(out["by_sha"]["entities"], v1)
    # offline: both revisions from the cache, no request at all
    assert same(offline["cached"]["entities"], main)
    assert same(offline["cached_v1"]["entities"], v1)
    assert offline["cached"]["requests"] == offline["cached_v1"]["requests"] == []
    # errors: one line each, naming the repo and the problem
    errors = {k: out[k]["error"] for k in ("no_repo", "no_revision", "not_gliner", "no_weights")}
    errors["never_fetched"] = offline["never_fetched"]["error"]
    assert all("\n" not in e for e in errors.values()), errors
    assert errors["no_repo"].startswith("org/nope: no such model repo on the hub (http://127.0.0.1")
    assert errors["no_revision"] == ("org/tiny has no revision 'v9' on the hub (a branch, tag "
                                     "or commit hash)")
    assert errors["not_gliner"] == ("hub repo org/encoder has no gliner_config.json: it is not "
                                    "a GLiNER model")
    assert "no model.safetensors or pytorch_model.bin" in errors["no_weights"]
    assert errors["never_fetched"].startswith("org/encoder2 is not a local directory and could "
                                              "not be fetched from the Hugging Face hub")
    assert "offline mode is on" in errors["never_fetched"]


def test_push_to_hub_uploads_what_downloads_back(models, tmp_path):
    with FakeHub() as hub:
        out = run(hub, tmp_path / "hf", {
            "push": [str(models["main"]), {"push": [str(tmp_path / "saved"),
                                                    {"repo_id": "org/pushed", "token": "t"}]}],
            "again": [str(models["v1"]), {"push": [str(tmp_path / "saved_v1"),
                                                   {"repo_id": "org/pushed", "token": "t",
                                                    "commit_message": "v1 weights"}]}],
            "anonymous": [str(models["main"]), {"push": [str(tmp_path / "anon"),
                                                         {"repo_id": "org/other"}]}],
        })
        shas = [p.rsplit("/", 1)[1] for p in (out["push"]["url"], out["again"]["url"])]
        back = run(hub, tmp_path / "hf2", {"main": ["org/pushed", {}],
                                           "first": ["org/pushed", {"revision": shas[0]}]})
        posted = {p for m, p in out["push"]["requests"] if m == "POST"}
        files = set(hub.repos["org/pushed"].revisions["main"][1])
    assert posted == {"/api/repos/create", "/api/models/org/pushed/preupload/main",
                      "/api/models/org/pushed/commit/main"}
    assert out["push"]["url"].startswith(hub.url + "/org/pushed/commit/")
    assert {"gliner_config.json", "model.safetensors", "tokenizer.json"} <= files
    # the second push is a new commit of the same repo (it exists: create answers 409)
    assert shas[0] != shas[1]
    assert same(back["main"]["entities"], local_entities(models["v1"]))
    assert same(back["first"]["entities"], local_entities(models["main"]))
    err = out["anonymous"]["error"]
    assert err == ("push_to_hub org/other: the hub answered HTTP 401 (log in: hf auth login, "
                   "or HF_TOKEN)"), err

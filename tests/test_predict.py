"""`python -m gliner_jax.predict`, driven as a real command in a subprocess.

Happy paths compare the command's output with the Python API on the same tiny random model; every
bad input must give exactly one line on stderr, no traceback and a non-zero exit code. Runs share
one persistent compilation cache, so only the first model run compiles.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gliner_jax.model import GLiNER
from tests.reference_models import cached_reference_gliner

REPO = Path(__file__).resolve().parents[1]
LABELS = ["person", "company", "city"]
TEXTS = ["John Smith works at Google in Paris.", "", "Alice was born in Berlin.",
         "Zürich and São Paulo 東京 are cities 😀 .", "Bob"]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return cached_reference_gliner(weight_scale=2.0)[1]


@pytest.fixture(scope="module")
def model(model_dir) -> GLiNER:
    return GLiNER.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("GLINER_JAX_")}
    e.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(REPO),
             JAX_PLATFORMS="cpu", GLINER_JAX_CACHE=str(tmp_path_factory.mktemp("xla")))
    return e


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    (d / "texts.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    (d / "labels.txt").write_text("person\n\ncompany\ncity\n", encoding="utf-8")
    (d / "no_labels.txt").write_text("\n  \n", encoding="utf-8")
    (d / "bad_utf8.txt").write_bytes(b"good line\nbad \xff\xfe line\nanother\n")
    good = [{"id": "a", "text": TEXTS[0]},
            {"id": "b", "text": TEXTS[2], "labels": ["city"]},
            {"text": TEXTS[4], "labels": {"person": "a human being"}}]
    lines = [json.dumps(x) for x in good]
    (d / "good.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    bad = [lines[0], "{not json", lines[1], '{"id": 7}',
           '{"text": "x", "labels": ["person", ""]}', lines[2]]
    (d / "bad.jsonl").write_bytes(("\n".join(bad) + "\n").encode() + b'{"text": "\xff"}\n')
    (d / "not_a_model").mkdir()
    (d / "not_a_model" / "config.json").write_text("{}")
    return d


def run(env, *args, stdin: str | bytes | None = None, cwd=REPO):
    if isinstance(stdin, str):
        stdin = stdin.encode()
    proc = subprocess.run([sys.executable, "-m", "gliner_jax.predict", *map(str, args)],
                          input=stdin, capture_output=True, env=env, cwd=cwd, timeout=300)
    proc.stdout, proc.stderr = proc.stdout.decode(), proc.stderr.decode()
    return proc


def jsonl(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def assert_same(got: list[dict], want: list[dict]) -> None:
    assert [(e["start"], e["end"], e["text"], e["label"]) for e in got] == \
        [(e["start"], e["end"], e["text"], e["label"]) for e in want]
    np.testing.assert_allclose([e["score"] for e in got], [e["score"] for e in want], rtol=1e-5)


# ------------------------------------------------------------------------------------------------
# happy paths


def test_positional_texts(env, model_dir, model):
    proc = run(env, "--model", model_dir, "--labels", ",".join(LABELS), *TEXTS)
    assert proc.returncode == 0, proc.stderr
    out = jsonl(proc.stdout)
    assert [o["id"] for o in out] == list(range(len(TEXTS)))
    assert out[1]["entities"] == []  # an empty text
    want = model.inference(TEXTS, LABELS)
    for o, w in zip(out, want, strict=True):
        assert_same(o["entities"], w)
    assert sum(len(o["entities"]) for o in out) > 3
    assert proc.stderr == ""  # no progress bar or summary for texts given as arguments
    assert any(Path(env["GLINER_JAX_CACHE"]).iterdir())  # compiled programs were kept


def test_jsonl_file_options_and_skip_errors(env, model_dir, model, files, tmp_path):
    """Per-line labels override --labels @file; --output, --nested, --multi-label, --threshold;
    --skip-errors skips (and counts) the bad lines."""
    out_file = tmp_path / "out.jsonl"
    proc = run(env, "--model", model_dir, "--labels", f"@{files / 'labels.txt'}", "--input",
               files / "bad.jsonl", "--skip-errors", "--output", out_file, "--nested",
               "--multi-label", "--threshold", "0.45")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert re.search(r"skipped 4 bad input line\(s\); the first: .*bad\.jsonl:2: malformed JSON",
                     proc.stderr)
    out = jsonl(out_file.read_text(encoding="utf-8"))
    assert [o["id"] for o in out] == ["a", "b", 5]  # no "id": the 0-based line number
    kw = dict(threshold=0.45, flat_ner=False, multi_label=True)
    assert_same(out[0]["entities"], model.predict_entities(TEXTS[0], LABELS, **kw))
    assert_same(out[1]["entities"], model.predict_entities(TEXTS[2], ["city"], **kw))
    assert_same(out[2]["entities"], model.predict_entities(TEXTS[4], {"person": "a human being"},
                                                           **kw))
    assert {e["label"] for e in out[1]["entities"]} <= {"city"}


def test_stdin_text_format(env, model_dir, model):
    proc = run(env, "--model", model_dir, "--labels", "person,city", "--format", "text",
               "--quiet", "--device", "cpu",
               stdin="John Smith works at Google in Paris.\n\nAlice was born.\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert [x.split(":")[0] for x in lines] == ["0", "1", "2"]
    ents = model.predict_entities("John Smith works at Google in Paris.", ["person", "city"])
    marked = re.findall(r"\[([^\[\]]*)\]\((\w+) ([\d.]+)\)", lines[0])
    assert [(t, lab) for t, lab, _ in marked] == [(e["text"], e["label"]) for e in ents]
    # removing the marks gives the text back
    assert re.sub(r"\]\(\w+ [\d.]+\)", "", lines[0]).replace("[", "") == \
        "0: John Smith works at Google in Paris."


def test_txt_file_json_format_small_batches(env, model_dir, model, files):
    """Lines in several growing chunks come back in input order; a summary goes to stderr."""
    lines = [f"{t} {i}" for i in range(13) for t in TEXTS[:1]] + TEXTS
    path = files / "many.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = run(env, "--model", model_dir, "--labels", ",".join(LABELS), "--input", path,
               "--format", "json", "--batch-size", "2")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [o["id"] for o in out] == list(range(len(lines)))
    for o, w in zip(out, model.inference(lines, LABELS), strict=True):
        assert_same(o["entities"], w)
    assert re.search(rf"{len(lines)} texts, \d+ entities in [\d.]+ s \([\d.]+ texts/s\)",
                     proc.stderr)


# ------------------------------------------------------------------------------------------------
# bad input: one line on stderr, no traceback, non-zero exit


def assert_error(proc, code: int, pattern: str) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert proc.returncode == code
    assert proc.stdout == ""


BAD = [  # (case, arguments, stdin, exit code, message pattern)
    ("no labels", ["Some text."], None, 2, r"no entity labels: pass --labels"),
    ("empty label", ["--labels", "person,,city", "x"], None, 2, r"label 2 is empty"),
    ("blank labels", ["--labels", "  ", "x"], None, 2, r"label 1 is empty"),
    ("empty labels file", ["--labels", "@{d}/no_labels.txt", "x"], None, 2,
     r"no_labels\.txt: the file holds no labels"),
    ("missing labels file", ["--labels", "@{d}/nope.txt", "x"], None, 2, r"nope.txt: no such"),
    ("missing file", ["--labels", "person", "--input", "{d}/nope.txt"], None, 2,
     r"nope\.txt: no such file"),
    ("unreadable path", ["--labels", "person", "--input", "{d}/good.jsonl/x.txt"], None, 2,
     r"good\.jsonl/x\.txt: cannot read \(Not a directory\)"),
    ("directory as input", ["--labels", "person", "--input", "{d}/not_a_model"], None, 2,
     r"not_a_model: is a directory"),
    ("non-UTF-8 line", ["--labels", "person", "--input", "{d}/bad_utf8.txt"], None, 2,
     r"bad_utf8\.txt:2: not valid UTF-8"),
    ("non-UTF-8 stdin", ["--labels", "person"], b"ok\n\xc3\x28\n", 2,
     r"<stdin>:2: not valid UTF-8"),
    ("malformed JSONL", ["--labels", "person", "--input", "{d}/bad.jsonl"], None, 2,
     r"bad\.jsonl:2: malformed JSON"),
    ("JSONL without labels", ["--input", "{d}/good.jsonl"], None, 2,
     r"good\.jsonl:1: no \"labels\" in this line and no --labels"),
    ("bad threshold", ["--labels", "person", "--threshold", "2", "x"], None, 2,
     r"--threshold: must be between 0 and 1"),
    ("texts and --input", ["--labels", "person", "--input", "{d}/good.jsonl", "x"], None, 2,
     r"not both"),
    ("unknown model path", ["--model", "{d}/no_such_model", "--labels", "person", "x"], None, 3,
     r"no_such_model does not exist"),
    ("not a GLiNER model", ["--model", "{d}/not_a_model", "--labels", "person", "x"], None, 3,
     r"not_a_model is not a GLiNER model directory"),
    ("hub id offline", ["--model", "someone/some-gliner", "--labels", "person", "x"], None, 3,
     r"someone/some-gliner .*could not be fetched from the Hugging Face hub"),
    ("no such device", ["--device", "tpu", "--labels", "person", "x"], None, 2,
     r"--device tpu: JAX has no such device here \(available: cpu\)"),
    ("bad window stride", ["--window-stride", "0", "--labels", "person", "x"], None, 2,
     r"--window-stride: must be a positive integer"),
]


@pytest.mark.parametrize(("args", "stdin", "code", "pattern"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_bad_input(env, files, model_dir, args, stdin, code, pattern):
    args = [a.format(d=files, m=model_dir) for a in args]
    assert_error(run(env, *args, stdin=stdin), code, pattern)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(env, files, tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text("text\n")
    path.chmod(0)
    assert_error(run(env, "--labels", "person", "--input", path), 2,
                 r"secret\.txt: permission denied")


def test_no_shipped_model(env, tmp_path):
    """Without --model the command looks in checkpoints/; an empty one gives one clear line."""
    code = ("import sys, pathlib, gliner_jax.predict as p; "
            "p.CHECKPOINTS = pathlib.Path(sys.argv[1]); "
            "sys.exit(p.main(['--labels', 'person', 'x']))")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)
    assert_error(proc, 3, rf"no shipped model in {re.escape(str(tmp_path))} yet: pass --model")

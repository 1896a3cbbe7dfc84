"""The predict command's output streams: data on stdout, one summary line on stderr on a line of
its own, and no library notices unless --verbose. Checked byte for byte on pipes, and on a
pseudo-terminal (where the progress bar is drawn) by replaying what a terminal would show.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.reference_models import cached_reference_gliner

REPO = Path(__file__).resolve().parents[1]
SUMMARY = r"\d+ texts, \d+ entities in [\d.]+ s \([\d.]+ texts/s\)"
# imported before gliner_jax: makes this interpreter look like one without PyTorch, the way a
# user's fresh venv is (transformers then logs "PyTorch was not found ...")
HIDE_TORCH = (
    "import importlib.util as u, sys\n"
    "_find = u.find_spec\n"
    "u.find_spec = lambda name, *a, **k: None if name.split('.')[0] == 'torch' else "
    "_find(name, *a, **k)\n"
    "sys.modules['torch'] = None\n"
    "import runpy\n"
    "sys.argv[0] = 'gliner_jax.predict'\n"
    "runpy.run_module('gliner_jax.predict', run_name='__main__', alter_sys=True)\n"
)


@pytest.fixture(scope="module")
def bert_dir() -> Path:
    # the BERT tokenizer has model_max_length=512, as MiniLM (the shipped model) has
    return cached_reference_gliner(backbone="bert", weight_scale=2.0)[1]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items()
         # (an in-process predict.main() of an earlier test sets TRANSFORMERS_VERBOSITY and
         # TRANSFORMERS_NO_ADVISORY_WARNINGS in this process)
         if not k.startswith(("GLINER_JAX_", "TRANSFORMERS_VERBOSITY",
                              "TRANSFORMERS_NO_ADVISORY_WARNINGS", "TF_CPP"))}
    e.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(REPO),
             JAX_PLATFORMS="cpu", GLINER_JAX_CACHE=str(tmp_path_factory.mktemp("xla")))
    return e


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("streams")
    lines = [f"John Smith works at Google in Paris {i} ." for i in range(12)]
    (d / "lines.txt").write_text("\n".join(lines) + "\n")
    # ~900 words: > 512 sub-tokens, so the document is windowed and its whole-text tokenization
    # passes the tokenizer's limit (transformers: "Token indices sequence length ...")
    (d / "long.txt").write_text(" ".join(["Alice was born in Berlin and works for Apple ."] * 90))
    return d


def hidden_torch_run(env, *args):
    return subprocess.run([sys.executable, "-c", HIDE_TORCH, *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def test_no_library_notices_unless_verbose(env, bert_dir, inputs, tmp_path):
    """A long document in an interpreter without PyTorch, with a tokenizer class that is loaded
    through transformers (gliner_jax reads BERT's tokenizer.json itself and would not import
    transformers at all): stdout is the JSON line alone, stderr the summary line alone.
    --verbose lets transformers' notices through (so this can fail)."""
    model = tmp_path / "model"
    shutil.copytree(bert_dir, model)
    config = json.loads((model / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "DistilBertTokenizer"  # the same WordPiece tokenizer.json
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    args = ["--model", model, "--labels", "person,city", "--input", inputs / "long.txt",
            "--document"]
    proc = hidden_torch_run(env, *args)
    assert proc.returncode == 0, proc.stderr
    [line] = proc.stdout.splitlines(keepends=True)
    assert line.endswith("\n") and json.loads(line)["id"] == 0
    assert re.fullmatch(SUMMARY + "\n", proc.stderr), proc.stderr
    loud = hidden_torch_run(env, *args, "--verbose")
    assert loud.returncode == 0, loud.stderr
    assert loud.stdout == proc.stdout
    assert "PyTorch was not found" in loud.stderr
    assert re.search(SUMMARY + "\n$", loud.stderr)


def test_pipes_hold_data_and_one_summary_line(env, bert_dir, inputs):
    proc = subprocess.run([sys.executable, "-m", "gliner_jax.predict", "--model", str(bert_dir),
                           "--labels", "person,city", "--input", str(inputs / "lines.txt")],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x)["id"] for x in proc.stdout.splitlines()] == list(range(12))
    assert proc.stdout.endswith("}\n")
    assert re.fullmatch(SUMMARY + "\n", proc.stderr), proc.stderr


def terminal_screen(raw: str) -> list[str]:
    """The lines a terminal shows after `raw` (what tqdm and the command write): carriage
    returns move to the start of the line and later characters overwrite earlier ones."""
    lines, row, col = [[]], 0, 0
    for ch in raw:
        if ch == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append([])
        elif ch == "\r":
            col = 0
        else:
            line = lines[row]
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
    return ["".join(x).rstrip() for x in lines]


def run_on_terminal(env, *args) -> tuple[int, str]:
    """Run the command with stdout and stderr on one pseudo-terminal of 100 columns."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.ONLCR  # keep "\n" as written (no "\r\n" translation)
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    proc = subprocess.Popen([sys.executable, "-m", "gliner_jax.predict", *map(str, args)],
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env,
                            cwd=REPO, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the command closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=300), b"".join(chunks).decode()


def test_terminal_bar_never_glues_to_output(env, bert_dir, inputs):
    """On a terminal the progress bar is drawn, but no output line starts after a bar, and the
    screen ends with the output lines then the summary line."""
    code, raw = run_on_terminal(env, "--model", bert_dir, "--labels", "person,city", "--input",
                                inputs / "lines.txt", "--batch-size", "2")
    assert code == 0, raw
    assert "text/s]" in raw  # the bar was drawn
    for line in raw.split("\n"):  # an output line starts after the bar is wiped, at column 0
        if '{"id"' in line:
            assert line.rsplit("\r", 1)[-1].startswith('{"id"'), line
    screen = [x for x in terminal_screen(raw) if x]
    assert [json.loads(x)["id"] for x in screen[:-1]] == list(range(12)), screen
    assert re.fullmatch(SUMMARY, screen[-1]), screen[-1]


def test_api_long_text_logs_no_token_limit_notice(env, bert_dir):
    """A text past the tokenizer's 512 tokens is windowed on purpose: the API must not make
    transformers log "Token indices sequence length is longer than ..." for it."""
    code = ("import sys; from gliner_jax.model import GLiNER; "
            "m = GLiNER.from_pretrained(sys.argv[1]); "
            "text = ' '.join(['Alice was born in Berlin and works for Apple .'] * 90); "
            "print(len(m.inference([text], ['person', 'city'])))")
    proc = subprocess.run([sys.executable, "-c", code, str(bert_dir)], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "1\n"
    assert "Token indices" not in proc.stderr, proc.stderr

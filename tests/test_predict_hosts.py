"""`python -m gliner_jax.predict` over several devices and several JAX processes.

- in-process: a model on a 4-device data mesh gives the entities of one device (scores to
  float32 rounding), also for a batch that does not fill the mesh;
- 2 processes x 2 CPU devices (jax.distributed on localhost, gloo) write output byte-identical
  to 1 process x 2 devices, in input order, on process 0's standard output only (no gloo
  chatter), with global counts in process 0's summary (bad lines skipped in the other process's
  share included); and 1 process x 2 devices finds the entities of 1 process x 1 device;
- a process killed mid-run (SIGKILL) makes the job fail with a clear message, never a hang,
  and leaves no output file that looks complete.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from gliner_jax.model import GLiNER
from gliner_jax.sharding import make_mesh
from tests.reference_models import cached_reference_gliner

REPO = Path(__file__).resolve().parents[1]
LABELS = "person,company,city"
WORDS = ("John Smith works at Google in Paris Alice was born Berlin Zürich and São Paulo are "
         "cities Bob Microsoft London the of a company person").split()
TIMEOUT = 240
# process KILL_PROCESS dies (SIGKILL) when it starts predicting its first chunk
KILLER = (
    "import os, runpy, signal, sys\n"
    "from gliner_jax.model import GLiNER\n"
    "if sys.argv[sys.argv.index('--process-id') + 1] == os.environ['KILL_PROCESS']:\n"
    "    GLiNER.inference = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
    "sys.argv[0] = 'gliner_jax.predict'\n"
    "runpy.run_module('gliner_jax.predict', run_name='__main__', alter_sys=True)\n"
)


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return cached_reference_gliner(weight_scale=2.0)[1]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    rng = random.Random(0)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 30))) for _ in range(40)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, texts) -> Path:
    path = tmp_path_factory.mktemp("hosts") / "in.txt"
    lines = [t.encode() for t in texts]
    lines[10] = b"bad \xff line"  # in chunk [8, 24): the second process's share
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("GLINER_JAX_", "TRANSFORMERS_VERBOSITY",
                              "TRANSFORMERS_NO_ADVISORY_WARNINGS", "TF_CPP", "XLA_FLAGS"))}
    e.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(REPO),
             JAX_PLATFORMS="cpu", GLINER_JAX_CACHE=str(tmp_path_factory.mktemp("xla")),
             XLA_FLAGS="--xla_force_host_platform_device_count=2")
    return e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _args(model_dir, corpus, *extra) -> list[str]:
    return ["-m", str(model_dir), "-l", LABELS, "-t", "0.3", "-i", str(corpus), "--skip-errors",
            *map(str, extra)]


def _launch(env, n: int, args, *, code: list[str] | None = None):
    """n processes joined on a fresh localhost port; [(returncode, stdout, stderr)]."""
    port = _free_port()
    cmd = code or ["-m", "gliner_jax.predict"]
    procs = [subprocess.Popen(
        [sys.executable, *cmd, *args, "--coordinator", f"127.0.0.1:{port}",
         "--num-processes", str(n), "--process-id", str(i), "--heartbeat-timeout", "10"],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(n)]
    out = []
    try:
        for p in procs:
            so, se = p.communicate(timeout=TIMEOUT)
            out.append((p.returncode, so, se.decode()))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return out


def test_mesh_gives_the_entities_of_one_device(model_dir, texts):
    model = GLiNER.from_pretrained(model_dir)
    labels = LABELS.split(",")
    want = model.inference(texts[:11], labels, batch_size=4, threshold=0.3)
    model.use_mesh(make_mesh((-1, 1, 1), jax.devices()[:4]))
    for batch_size in (4, 3):  # 3: batches padded up to a multiple of the 4 devices
        got = model.inference(texts[:11], labels, batch_size=batch_size, threshold=0.3)
        assert _entities(got) == _entities(want)
        for g, w in zip(got, want, strict=True):
            for a, b in zip(g, w, strict=True):
                assert a["score"] == pytest.approx(b["score"], rel=1e-5)
    assert model.processor.buckets.min_batch == 4


def _entities(results):
    return [[(e["start"], e["end"], e["label"]) for e in r] for r in results]


def test_two_processes_write_what_one_process_writes(model_dir, corpus, env, tmp_path, texts):
    one = tmp_path / "one.jsonl"
    single = subprocess.run([sys.executable, "-m", "gliner_jax.predict",
                             *_args(model_dir, corpus, "-o", one)],
                            env=env, cwd=REPO, capture_output=True, timeout=TIMEOUT)
    assert single.returncode == 0, single.stderr.decode()
    lines = one.read_bytes().splitlines()
    assert len(lines) == 39 and json.loads(lines[-1])["id"] == 39  # line 11 skipped
    assert not (tmp_path / "one.jsonl.partial").exists()

    (rc0, out0, err0), (rc1, out1, err1) = _launch(env, 2, _args(model_dir, corpus))
    assert rc0 == 0 and rc1 == 0, err0 + err1
    assert out0 == one.read_bytes()  # in input order, nothing else on stdout
    assert out1 == b"" and err1 == ""
    assert "[Gloo]" not in err0
    assert err0.startswith("warning: skipped 1 bad input line(s); the first: ")
    assert f"{corpus}:11: not valid UTF-8" in err0
    assert "39 texts, " in err0  # global counts on process 0

    # 1 device: the same entities (scores differ by float32 rounding only)
    env1 = {**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    dev1 = subprocess.run([sys.executable, "-m", "gliner_jax.predict",
                           *_args(model_dir, corpus, "-q")],
                          env=env1, cwd=REPO, capture_output=True, timeout=TIMEOUT)
    assert dev1.returncode == 0, dev1.stderr.decode()
    parse = [json.loads(x) for x in lines]
    assert _entities(r["entities"] for r in parse) == _entities(
        json.loads(x)["entities"] for x in dev1.stdout.splitlines())


@pytest.mark.parametrize("victim", [1, 0])
def test_a_killed_process_fails_the_job(model_dir, corpus, env, tmp_path, victim):
    out = tmp_path / "out.jsonl"
    res = _launch({**env, "KILL_PROCESS": str(victim)}, 2, _args(model_dir, corpus, "-o", out),
                  code=["-c", KILLER])
    dead, alive = res[victim], res[1 - victim]
    assert dead[0] == -9, dead[2]
    assert alive[0] != 0, alive[2]
    assert not out.exists()  # nothing that looks complete
    if victim == 1:  # the survivor is process 0: our message, its partial file removed
        assert alive[0] == 1
        last = alive[2].strip().splitlines()[-1]
        assert last.startswith("error: process 0: another process of this job of 2 stopped; "
                               "the job is incomplete"), alive[2]
        assert "Traceback" not in alive[2]
        assert not (tmp_path / "out.jsonl.partial").exists()
    else:  # the coordinator died: JAX ends the survivor with its own message
        assert ("another process of this job" in alive[2]
                or "another task died" in alive[2]), alive[2]

"""Several hosts on one machine: JAX processes with simulated CPU devices (gloo collectives) run
`python -m train ... --coordinator --num_processes --process_id` on a (2, 2, 1) mesh.

- 2 processes x 2 devices and 4 processes x 1 device give the losses and final weights of one
  process with 4 devices (relative 1e-5);
- each process encodes and feeds only its own rows of every global batch (the example ids each
  one fed are recorded by the launcher and compared with the single process's batches);
- a checkpoint written by 4 processes resumes in 2 processes (and 1) to the same final weights;
- SIGTERM to one of 2 processes: both save the same checkpoint and exit 0;
- from a TFDS dataset (the 2-process run), each process reads from the array_record files only
  the records of its own rows (the launcher records them): disjoint halves that make up the
  single process's global batch; resumed from step 3 in 1 process, it reads the very next
  records and ends with the same weights.

By default (CI) the 2-process equality (from TFDS where tensorflow-datasets is installed), its
resume in 1 process and the SIGTERM test run (~3 minutes on 2 cores); the 4-process runs and
the resumes of a 4-process checkpoint in 2 and 1 processes (~4 minutes more) run with
GLINER_JAX_MULTIPROCESS=1.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gliner_jax.weights import read_safetensors

pytestmark = [pytest.mark.slow]
ALL = pytest.mark.skipif(not os.environ.get("GLINER_JAX_MULTIPROCESS"),
                         reason="8 more JAX processes (~4 min): set GLINER_JAX_MULTIPROCESS=1")

REPO = Path(__file__).resolve().parents[1]
# the launcher records, per step, the ids of the examples this process encodes
# (train.data.Batcher) and the TFDS records it read since the previous step (tfds_data.Source):
# [record index in the array_record split, the record's id = position in the source file]
LAUNCH = """
import json, os, sys
import jax
jax.config.update("jax_num_cpu_devices", {devices})
jax.config.update("jax_cpu_collectives_implementation", "gloo")
from train import data, tfds_data
from train import __main__ as cli

reads = []
get = tfds_data.Source.__getitem__
def read(self, i):
    ex = get(self, i)
    reads.append([int(i), ex["id"]])
    return ex
tfds_data.Source.__getitem__ = read

call = data.Batcher.__call__
def record(self, examples, types, **kw):
    with open(os.environ["FED_LOG"], "a") as f:
        f.write(json.dumps([ex.get("id") for ex in examples]) + "\\n")
    with open(os.environ["READ_LOG"], "a") as f:
        f.write(json.dumps(reads) + "\\n")
    reads.clear()
    return call(self, examples, types, **kw)
data.Batcher.__call__ = record
sys.exit(cli.main(sys.argv[1:]))
"""
CONFIG = """
import sys
sys.path.insert(0, {tests!r})
from train_setup import tiny_config
from pathlib import Path
from train.config import DatasetConfig

def get_config():
    d = Path({data!r})
    cfg = tiny_config(d / "train.jsonl", d / "dev.jsonl", num_steps=6, checkpoint_every=3,
                      export=True)
    cfg.mesh = (2, 2, 1)
    if {tfds!r}:  # the same examples, prepared as a TFDS dataset
        cfg.data.train = [DatasetConfig("tfds:gliner_ner/mp", data_dir={tfds!r})]
    return cfg
"""
STEPS = 6


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(workdir: Path, config: Path, processes: int, *extra) -> list[subprocess.Popen]:
    """`processes` JAX processes sharing 4 devices, one training run in `workdir`."""
    port, procs = _port(), []
    workdir.mkdir(parents=True, exist_ok=True)
    for i in range(processes):
        code = LAUNCH.format(devices=4 // processes)
        env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1",
                   FED_LOG=str(workdir / f"fed.{i}.jsonl"),
                   READ_LOG=str(workdir / f"read.{i}.jsonl"))
        dist = ["--coordinator", f"127.0.0.1:{port}", "--num_processes", str(processes),
                "--process_id", str(i)] if processes > 1 else []
        procs.append(subprocess.Popen(
            [sys.executable, "-c", code, "--config", str(config), "--workdir", str(workdir),
             "--no_progress", *dist, *extra], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return procs


def _wait(procs) -> list[str]:
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs), "\n\n".join(outs)
    return outs


def _train(workdir, config, processes, *extra) -> list[str]:
    return _wait(_launch(workdir, config, processes, *extra))


def _losses(d: Path) -> dict:
    recs = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in recs if "loss" in r}


def _fed(d: Path, i: int) -> list[list[int]]:
    return [json.loads(x) for x in (d / f"fed.{i}.jsonl").read_text().splitlines()]


def _read(d: Path, i: int) -> list[list[list[int]]]:
    return [json.loads(x) for x in (d / f"read.{i}.jsonl").read_text().splitlines()]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa = read_safetensors(a / "model" / "model.safetensors")
    wb = read_safetensors(b / "model" / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=1e-5, atol=1e-5, err_msg=k)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    sys.path.insert(0, str(REPO / "tests"))
    from train_setup import synthetic_examples, write_jsonl

    d = tmp_path_factory.mktemp("mp")
    train = [dict(ex, id=i) for i, ex in enumerate(synthetic_examples(64, seed=1))]
    write_jsonl(d / "train.jsonl", train)
    write_jsonl(d / "dev.jsonl", synthetic_examples(8, seed=2))
    config = d / "cfg.py"
    config.write_text(CONFIG.format(tests=str(REPO / "tests"), data=str(d), tfds=""))
    _train(d / "single", config, 1)
    return d, config


@pytest.fixture(scope="module")
def tfds_config(setup):
    """The config of `setup` with the same training examples prepared as a TFDS dataset; None
    without the optional extra (tensorflow-datasets)."""
    try:
        import tensorflow_datasets  # noqa: F401
    except ImportError:
        return None
    from train import tfds_data

    d, _ = setup
    tfds_data.prepare(d / "train.jsonl", "mp", str(d / "tfds"))
    config = d / "cfg_tfds.py"
    config.write_text(CONFIG.format(tests=str(REPO / "tests"), data=str(d), tfds=str(d / "tfds")))
    return config


def _rows_of_each_step(work: Path, processes: int, tfds: bool) -> list[list[list[int]]]:
    """Per step, per process, the ids (source positions) of the rows it fed. From a TFDS
    dataset: of the records it read, checking that it read one record per row it fed and that
    the processes' records are disjoint."""
    if not tfds:
        return [list(rows) for rows in zip(*(_fed(work, i) for i in range(processes)),
                                           strict=True)]
    reads = [_read(work, i) for i in range(processes)]
    fed = [_fed(work, i) for i in range(processes)]
    out = []
    for s, step in enumerate(zip(*reads, strict=True)):
        records = [{rec for rec, _ in r} for r in step]
        assert [len(x) for x in records] == [len(f[s]) for f in fed]  # one read per own row
        assert len(set().union(*records)) == sum(map(len, records))  # disjoint
        out.append([[pos for _, pos in r] for r in step])
    return out


# from the TFDS dataset where the optional extra is installed (CI), else from the file
@pytest.mark.parametrize("processes", [2, pytest.param(4, marks=ALL)])
def test_processes_equal_one(setup, tfds_config, processes):
    d, config = setup
    tfds = processes == 2 and tfds_config is not None
    multi = d / f"multi{processes}"
    _train(multi, tfds_config if tfds else config, processes)
    single = d / "single"
    assert _losses(multi).keys() == _losses(single).keys()
    assert list(_losses(multi).values()) == pytest.approx(list(_losses(single).values()),
                                                          rel=1e-5)
    _assert_same_weights(multi, single)
    assert sorted(p.name for p in (multi / "checkpoints").iterdir()) == ["3", "6"]

    # each process fed (and from TFDS, read) only its quarter / half of every global batch:
    # disjoint, contiguous slices that together are the single process's batch, in order
    (whole,) = [_fed(single, 0)]
    steps = _rows_of_each_step(multi, processes, tfds)
    assert len(whole) == STEPS and len(steps) == STEPS
    for s in range(STEPS):
        assert all(len(r) == len(whole[s]) // processes for r in steps[s])
        assert sum(steps[s], []) == whole[s]


def test_tfds_resume_in_one_process_reads_the_next_records(setup, tfds_config):
    """Step 3 of the 2-process TFDS run (test above), written by 2 processes, continues in 1
    process (another process count): it reads exactly the records of steps 4-6 (the mixture
    position was restored) and ends with the single process's weights."""
    d, _ = setup
    src = d / "multi2"
    if tfds_config is None or not (src / "checkpoints" / "3").is_dir():
        pytest.skip("needs tensorflow-datasets and the 2-process run of test_processes_equal_one")
    work = d / "resumed1"
    shutil.copytree(src / "checkpoints" / "3", work / "checkpoints" / "3")
    out = _train(work, tfds_config, 1)
    assert any("resumed from" in o and "at step 3" in o for o in out), out
    before = _rows_of_each_step(src, 2, True)[3:]
    assert _rows_of_each_step(work, 1, True) == [[sum(rows, [])] for rows in before]
    assert [sum(rows, []) for rows in _rows_of_each_step(work, 1, True)] == _fed(d / "single",
                                                                                  0)[3:]
    assert _losses(work)[STEPS] == pytest.approx(_losses(d / "single")[STEPS], rel=1e-5)
    _assert_same_weights(work, d / "single")


@ALL
@pytest.mark.parametrize("processes", [2, 1])
def test_resume_with_another_process_count(setup, processes):
    """Step 3 written by 4 processes (test above) continues in `processes` to the same end."""
    d, config = setup
    src = d / "multi4"
    if not (src / "checkpoints" / "3").is_dir():
        pytest.skip("needs the 4-process run of test_processes_equal_one")
    work = d / f"resume{processes}"
    shutil.copytree(src / "checkpoints" / "3", work / "checkpoints" / "3")
    out = _train(work, config, processes)
    assert any("resumed from" in o and "at step 3" in o for o in out), out
    _assert_same_weights(work, d / "single")
    # it continued with the very next examples (steps 4-6 of the single run)
    fed = [_fed(work, i) for i in range(processes)]
    assert [sum(rows, []) for rows in zip(*fed, strict=True)] == _fed(d / "single", 0)[3:]
    assert _losses(work)[STEPS] == pytest.approx(_losses(d / "single")[STEPS], rel=1e-5)


def test_sigterm_to_one_process_checkpoints_all(setup):
    d, config = setup
    work = d / "sigterm"
    procs = _launch(work, config, 2, "--config.num_steps=400", "--config.checkpoint_every=1000",
                    "--config.export=false")
    log = work / "fed.1.jsonl"
    deadline = time.time() + 400
    while not (log.is_file() and len(log.read_text().splitlines()) >= 3):
        assert time.time() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGTERM)
    outs = _wait(procs)
    assert "preempted: saved step" in outs[0], outs[0]
    steps = [int(p.name) for p in (work / "checkpoints").iterdir() if p.name.isdigit()]
    assert len(steps) == 1 and 3 <= steps[0] < 400, steps
    assert not (work / "model").exists()
    # both processes stopped after the same step: the one saved
    assert [len(_fed(work, i)) for i in range(2)] == [steps[0]] * 2

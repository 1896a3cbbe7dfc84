"""Hard faults in training (docs/faults.md has the table these tests fill).

- SIGKILL, 5 times in one run (between steps, before the first checkpoint, during checkpoint
  writes): each rerun resumes, the final weights and the logged losses equal an uninterrupted
  run's bit for bit, and metrics.jsonl holds each step once;
- a corrupt latest checkpoint (truncated array file, missing item, garbage metadata): the rerun
  warns, names it, resumes from the previous one and ends with the uninterrupted weights; all
  checkpoints unreadable: a clear error, nothing moved, no silent fresh start;
- disk full (a small tmpfs) and an unwritable checkpoint folder during a save: a clear error
  naming the step and the last complete checkpoint, which stays intact; a rerun with room
  continues to the uninterrupted weights;
- a non-finite loss with `skip_nonfinite`: bad batches leave the state unchanged, up to N.

The SIGKILL, disk-full and unwritable-folder runs are child processes (tests/train_child.py)
sharing a compilation cache.
"""

import contextlib
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from train_setup import synthetic_examples, tiny_config, write_jsonl

import train.train as train_loop
from gliner_jax.weights import read_safetensors
from train import checkpointing
from train.config import dumps
from train.train import NonFiniteLoss, run

CHILD = Path(__file__).with_name("train_child.py")
STEPS, EVERY = 12, 3  # SIGKILL runs: checkpoints at 3, 6, 9, 12; metrics every 2 steps


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    # 3..12 words: one length bucket, one compilation per process
    d = tmp_path_factory.mktemp("faults")
    return write_jsonl(d / "train.jsonl", synthetic_examples(64, seed=1, max_words=12))


def _cfg(train_file, **top):
    return tiny_config(train_file, None, **{"num_steps": 6, "checkpoint_every": 3,
                                            "log_every": 2, "export": True, **top})


def _weights(workdir: Path) -> dict:
    return read_safetensors(workdir / "model" / "model.safetensors")


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert sorted(wa) == sorted(wb)
    for k in wa:
        np.testing.assert_array_equal(wb[k], wa[k], err_msg=k)


def _records(workdir: Path) -> list[dict]:
    return [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]


def _losses(workdir: Path) -> list[tuple]:
    """(step, loss, grad_norm) of every metrics line that has a loss: once per step."""
    out = [(r["step"], r["loss"], r["grad_norm"]) for r in _records(workdir) if "loss" in r]
    steps = [s for s, *_ in out]
    assert len(steps) == len(set(steps)), f"steps logged twice: {steps}"
    return out


def _steps(workdir: Path) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


# ---------------------------------------------------------------------------------------------
# SIGKILL


def _child(cfg_file: Path, workdir: Path, kill: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "JAX_COMPILATION_CACHE_DIR": str(cfg_file.parent / "xla_cache"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    return subprocess.run([sys.executable, str(CHILD), str(cfg_file), str(workdir), kill],
                          env=env, capture_output=True, text=True, timeout=600)


# (where the kill lands, KILL argument of train_child.py)
KILLS = [
    ("between steps, before any checkpoint", "step:2"),
    ("during the write of the first checkpoint", "save:3:0"),
    ("between steps, after checkpoints 3 and 6 were started", "step:7"),
    ("during a checkpoint write, 5 ms in", "save:9:0.005"),
    ("after the metrics line of step 10, before checkpoint 12", "step:11"),
]


def test_sigkill_five_times_then_resume_equals_uninterrupted(train_file, tmp_path):
    cfg = _cfg(train_file, num_steps=STEPS, checkpoint_every=EVERY)
    cfg_file = tmp_path / "config.json"
    cfg_file.write_text(dumps(cfg))
    full = _child(cfg_file, tmp_path / "full")
    assert full.returncode == 0, full.stderr[-3000:]
    work = tmp_path / "killed"
    expect = None
    for kill in [k for _, k in KILLS] + [""]:
        out = _child(cfg_file, work, kill)
        if expect:  # what this run must say about the previous one's death
            for said in expect["says"]:
                assert said in out.stderr, (expect, out.stderr[-3000:])
            if not expect["complete"]:
                assert "resumed from" not in out.stderr, (expect, out.stderr[-3000:])
        if not kill:
            assert out.returncode == 0, out.stderr[-3000:]
            break
        assert out.returncode == -9, (kill, out.stderr[-3000:])
        # what the kill left: complete checkpoints (the rerun must resume from the newest),
        # partial writes (removed), metrics lines past the newest checkpoint (cut)
        names = sorted(p.name for p in (work / "checkpoints").iterdir())
        complete = _steps(work)
        last = complete[-1] if complete else 0
        partial = [n for n in names if checkpointing.TMP_MARK in n]
        after = [r for r in _records(work) if r["step"] > last] \
            if (work / "metrics.jsonl").is_file() else []
        says = [f"at step {last}"] if complete else []
        says += ["partial write of a killed save"] if partial else []
        says += [f"dropped {len(after)} line(s) logged after step {last}"] if after else []
        expect = {"kill": kill, "complete": complete, "partial": partial, "says": says}
        print(expect)
        if kill == "save:3:0":  # the kill landed mid-write: only the temporary folder exists
            assert complete == [] and len(partial) == 1 and partial[0].startswith("3."), names
    _assert_same_weights(tmp_path / "full", work)
    assert _losses(work) == _losses(tmp_path / "full")


# ---------------------------------------------------------------------------------------------
# corrupt checkpoints (in this process)


@pytest.fixture(scope="module")
def base(train_file, tmp_path_factory):
    """An uninterrupted 6-step run: checkpoints 3 and 6, metrics at 2, 3, 4, 6."""
    work = tmp_path_factory.mktemp("base")
    assert run(_cfg(train_file), work, progress=False).status == "done"
    assert _steps(work) == [3, 6]
    return work


def _biggest_file(d: Path) -> Path:
    return max((p for p in d.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


CORRUPTIONS = {
    "truncated array file": lambda d: os.truncate(_biggest_file(d / "state"),
                                                  _biggest_file(d / "state").stat().st_size // 2),
    "missing item": lambda d: shutil.rmtree(d / "data"),
    "garbage metadata": lambda d: (d / "state" / "_METADATA").write_text("{\x00garbage"),
}


@pytest.mark.parametrize("fault", list(CORRUPTIONS))
def test_corrupt_latest_checkpoint_resumes_from_previous(fault, train_file, base, tmp_path,
                                                         capfd):
    work = tmp_path / "w"
    shutil.copytree(base, work, ignore=shutil.ignore_patterns("model"))
    CORRUPTIONS[fault](work / "checkpoints" / "6")
    capfd.readouterr()
    assert run(_cfg(train_file), work, progress=False).status == "done"
    err = capfd.readouterr().err
    assert f"checkpoint {work / 'checkpoints' / '6'} is unreadable" in err, err
    assert "resumed from" in err and "at step 3" in err, err
    assert (work / "checkpoints_unreadable" / "6").is_dir()  # kept for a post-mortem
    assert _steps(work) == [3, 6]                            # step 6 written again
    _assert_same_weights(base, work)
    assert _losses(work) == _losses(base)


def test_no_readable_checkpoint_is_an_error_not_a_fresh_start(train_file, base, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(base, work, ignore=shutil.ignore_patterns("model"))
    for step in (3, 6):
        shutil.rmtree(work / "checkpoints" / str(step) / "state")
    with pytest.raises(checkpointing.CheckpointError,
                       match=r"no checkpoint in .* can be read \(step 6: .*; step 3: .*Not "
                             "starting from scratch"):
        run(_cfg(train_file), work, progress=False)
    assert _steps(work) == [3, 6] and not (work / "checkpoints_unreadable").exists()
    assert not (work / "model").exists()


# ---------------------------------------------------------------------------------------------
# disk full, unwritable folder


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _remount(path: Path, opts: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{opts}", str(path)], check=True)


def _failed_save(out: subprocess.CompletedProcess, reason: str) -> None:
    """The child ended as `python -m train` does on a failed save: status 4 and one error
    message naming the step, the cause and the last complete checkpoint. (Orbax's own writer
    threads log their failures to stderr as well, before and after it, and a traceback of
    theirs can be half-written when ours comes: the message need not start a line.)"""
    assert out.returncode == 4, out.stderr[-3000:]
    ours = re.findall(r"error: could not write checkpoint[^\n]*", out.stderr)
    assert len(ours) == 1, out.stderr[-3000:]
    assert re.fullmatch(r"error: could not write checkpoint step 6 .*" + reason +
                        ".*last complete checkpoint is step 3.*", ours[0]), ours[0]


# A failed save ends the process (the CLI exits with status 4): the run and its rerun are two
# child processes, as they are for a user.


def test_disk_full_while_saving_then_rerun_with_room(train_file, base, tmp_path):
    cfg_file = tmp_path / "config.json"
    cfg_file.write_text(dumps(_cfg(train_file)))
    # a checkpoint takes ~4.5 MB: step 3's fits, step 6's does not
    with tmpfs(tmp_path / "w", "7m") as work:
        _failed_save(_child(cfg_file, work), "No space left on device")
        assert _steps(work) == [3]
        _remount(work, "size=64m")
        out = _child(cfg_file, work)
        assert out.returncode == 0, out.stderr[-3000:]
        assert _steps(work) == [3, 6]
        assert not list((work / "checkpoints").glob("*" + checkpointing.TMP_MARK + "*"))
        _assert_same_weights(base, work)
        assert _losses(work) == _losses(base)


def test_unwritable_checkpoint_folder_while_saving_then_rerun(train_file, base, tmp_path):
    cfg_file = tmp_path / "config.json"
    cfg_file.write_text(dumps(_cfg(train_file)))
    work = tmp_path / "w"
    ckdir = work / "checkpoints"
    root = os.geteuid() == 0  # root writes through permission bits: a read-only tmpfs instead
    with tmpfs(ckdir, "64m") if root else contextlib.nullcontext(ckdir.mkdir(parents=True)):
        # after step 4, once checkpoint 3 is written (asynchronously), before 6
        _failed_save(_child(cfg_file, work, f"lock:4:{ckdir}"), "(Read-only|ermission)")
        _remount(ckdir, "rw") if root else ckdir.chmod(0o755)
        assert _steps(work) == [3]
        out = _child(cfg_file, work)
        assert out.returncode == 0, out.stderr[-3000:]
        _assert_same_weights(base, work)


# ---------------------------------------------------------------------------------------------
# non-finite loss: skip up to N bad batches


def _poison(monkeypatch, bad_steps: set[int]):
    """The step of each of `bad_steps` (1-based) returns a NaN loss and NaN gradients: it runs
    with label_smoothing=NaN, as a batch of garbage would."""
    make = train_loop.make_train_step

    def make_poisoned(graphdef, tx, loss_cfg, *args, **kw):
        good = make(graphdef, tx, loss_cfg, *args, **kw)
        bad = make(graphdef, tx, dataclasses.replace(loss_cfg, label_smoothing=float("nan")),
                   *args, **{**kw, "on_trace": None})
        calls = []

        def step(state, rest, batch):
            calls.append(1)
            return (bad if len(calls) in bad_steps else good)(state, rest, batch)
        return step
    monkeypatch.setattr(train_loop, "make_train_step", make_poisoned)


def test_skip_nonfinite_skips_bad_batches_then_stops(train_file, tmp_path, monkeypatch, capfd):
    _poison(monkeypatch, {2, 5, 6})
    cfg = _cfg(train_file, num_steps=6, checkpoint_every=1, log_every=1, keep_checkpoints=10,
               export=False, skip_nonfinite=2)
    with pytest.raises(NonFiniteLoss, match=r"non-finite loss at step 6 .*after skipping 2 bad "
                                            r"batch\(es\).*last good checkpoint is step 5"):
        run(cfg, tmp_path, progress=False)
    err = capfd.readouterr().err
    assert "non-finite loss at step 2" in err and "skipped that batch (1 of 2 allowed)" in err
    recs = _records(tmp_path)
    assert [r["step"] for r in recs if r.get("skipped_batch")] == [2, 5]
    assert [r["step"] for r in recs if "loss" in r] == [1, 3, 4]
    assert all(np.isfinite(r["loss"]) for r in recs if "loss" in r)
    # a skipped step leaves the parameters and the optimizer state as they were
    ck = checkpointing.Checkpointer(tmp_path / "checkpoints", 10)
    (s1, d1), (s2, d2), (s4, _), (s5, d5) = (ck.read(s) for s in (1, 2, 4, 5))
    ck.close()
    for a, b in ((s1, s2), (s4, s5)):
        for x, y in zip(_leaves(a["params"]) + _leaves(a["opt"]),
                        _leaves(b["params"]) + _leaves(b["opt"]), strict=True):
            np.testing.assert_array_equal(x, y)
    assert int(s2["step"]) == 2 and (d1["skipped_batches"], d2["skipped_batches"],
                                     d5["skipped_batches"]) == (0, 1, 2)


def _leaves(tree) -> list:
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_without_skip_nonfinite_the_first_bad_batch_stops(train_file, tmp_path, monkeypatch):
    _poison(monkeypatch, {2})
    cfg = _cfg(train_file, num_steps=4, checkpoint_every=1, log_every=1, export=False)
    with pytest.raises(NonFiniteLoss, match="non-finite loss at step 2 .*: stopping; the last "
                                            "good checkpoint is step 1"):
        run(cfg, tmp_path, progress=False)

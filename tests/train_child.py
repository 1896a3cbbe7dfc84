"""A training run in a child process, optionally killed with SIGKILL (test_train_faults).

    python tests/train_child.py CONFIG.json WORKDIR [KILL]

KILL is `step:K` (SIGKILL right after step K is dispatched), `save:K:SECONDS` (SIGKILL that
many seconds after the asynchronous save of step K has started: during its write) or
`lock:K:DIR` (after step K, once checkpoint K-1 is on disk, DIR becomes unwritable: a read-only
remount when root, else chmod 555). Without it the run goes to the end. The exit status is 0,
-9 when killed, or 4 with `error: ...` on stderr when a save fails, as `python -m train` does.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402

# the test process's 8 CPU devices (conftest): the same mesh, so a child's run equals an
# in-process run bit for bit
jax.config.update("jax_num_cpu_devices", 8)

from train import checkpointing, config  # noqa: E402
from train.train import run  # noqa: E402


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(cfg_file: str, workdir: str, kill: str = "") -> None:
    cfg = config.from_dict(json.loads(Path(cfg_file).read_text()))
    kind, *args = kill.split(":", 2) if kill else ("",)
    on_step = None
    if kind == "step":
        on_step = lambda s: die() if s == int(args[0]) else None  # noqa: E731
    elif kind == "save":
        save = checkpointing.Checkpointer.save

        def save_then_die(self, step, state, data):
            save(self, step, state, data)
            if step == int(args[0]):
                time.sleep(float(args[1]))
                die()
        checkpointing.Checkpointer.save = save_then_die
    elif kind == "lock":
        at, ckdir = int(args[0]), Path(args[1])
        on_step = lambda s: lock(ckdir, at) if s == at else None  # noqa: E731
    elif kind:
        raise SystemExit(f"unknown kill {kill!r}")
    try:
        result = run(cfg, workdir, on_step=on_step, progress=False)
    except checkpointing.SaveError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(4)
    print(json.dumps({"status": result.status, "step": result.step}))


def lock(ckdir: Path, step: int) -> None:
    """Make `ckdir` unwritable once the asynchronous save of step `step - 1` is on disk."""
    for _ in range(600):
        if (ckdir / str(step - 1)).is_dir():
            break
        time.sleep(0.1)
    if os.geteuid() == 0:  # root writes through permission bits: a read-only mount instead
        subprocess.run(["mount", "-o", "remount,ro", str(ckdir)], check=True)
    else:
        ckdir.chmod(0o555)


if __name__ == "__main__":
    main(*sys.argv[1:])

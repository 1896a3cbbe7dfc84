"""A training run in a child process, optionally killed with SIGKILL (test_train_faults).

    python tests/train_child.py CONFIG.json WORKDIR [KILL]

KILL is `step:K` (SIGKILL right after step K is dispatched) or `save:K:SECONDS` (SIGKILL that
many seconds after the asynchronous save of step K has started: during its write). Without it
the run goes to the end. The exit status is run()'s (0) or -9 when killed.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train import checkpointing, config  # noqa: E402
from train.train import run  # noqa: E402


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(cfg_file: str, workdir: str, kill: str = "") -> None:
    cfg = config.from_dict(json.loads(Path(cfg_file).read_text()))
    kind, *args = kill.split(":") if kill else ("",)
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
    elif kind:
        raise SystemExit(f"unknown kill {kill!r}")
    result = run(cfg, workdir, on_step=on_step, progress=False)
    print(json.dumps({"status": result.status, "step": result.step}))


if __name__ == "__main__":
    main(*sys.argv[1:])

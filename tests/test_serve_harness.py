"""The server harness's child dies with the test process (PR_SET_PDEATHSIG): a crashed pytest
must not leave a `gliner_jax.serve` and its Ray cluster running, as one did in session 5."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

PARENT = """
import subprocess, sys, time
sys.path.insert(0, {here!r})
from serve_harness import _die_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                         start_new_session=True, preexec_fn=_die_with_parent)
print(child.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_child_is_terminated_when_the_test_process_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT.format(here=str(HERE))],
                              stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.kill()  # SIGKILL: no cleanup code of the parent runs
    parent.wait(10)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert not _alive(child), "the child outlived its killed parent"
    finally:
        if _alive(child):
            os.kill(child, 9)

"""Checkpoints with Orbax (the only module that imports it).

A checkpoint holds the train state (params, optimizer state, step) and the data position (JSON).
Saves are asynchronous: `save` returns once the arrays are copied off the devices, so the next
step may donate them. Restores go straight into the sharded abstract state of the run.

Hard faults:
- a save killed part-way leaves only `STEP.orbax-checkpoint-tmp*` folders (Orbax renames a
  finished checkpoint into place): they are removed when the next run starts;
- an unreadable checkpoint (truncated or missing file, missing item, garbage metadata) is
  skipped with a warning that names it, and the previous one is restored; the unreadable ones
  are moved to `checkpoints_unreadable/` so the run can write their steps again. If none can be
  read, `restore` raises `CheckpointError`: a run never restarts from scratch silently;
- a save that fails (disk full, unwritable folder) raises `SaveError`, which names the step and
  the last complete checkpoint; the checkpoints already written are left as they are.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import jax
import orbax.checkpoint as ocp

TMP_MARK = ".orbax-checkpoint-tmp"


class CheckpointError(RuntimeError):
    """Checkpoints exist but none of them can be read."""


class SaveError(RuntimeError):
    """A checkpoint (or the metrics log) could not be written."""


def _first_line(e: BaseException) -> str:
    """The cause in one line: the OS error first when there is one (TensorStore puts it at the
    end of a long message as os_error_code='28')."""
    text = str(e).strip().splitlines()
    detail = f"{type(e).__name__}: {text[0][:240] if text else ''}"
    code = e.errno if isinstance(e, OSError) else None
    if code is None:
        found = re.search(r"os_error_code='(\d+)'", str(e))
        code = int(found.group(1)) if found else None
    return f"{os.strerror(code)} [errno {code}] ({detail})" if code else detail


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


class Checkpointer:
    def __init__(self, directory: str | Path, keep: int, warn: Callable[[str], None] = print):
        self.directory = Path(directory).absolute()
        self.warn = warn
        self.unsettled: int | None = None  # step of a save not yet known to be complete
        self.failed = False
        if jax.process_index() == 0 and self.directory.is_dir():
            for tmp in self.directory.glob(f"*{TMP_MARK}*"):  # a save that was killed
                warn(f"warning: removing {tmp.name}, the partial write of a killed save")
                shutil.rmtree(tmp, ignore_errors=True)
        _sync("gliner_jax_checkpoint_cleanup")
        self.manager = self._manager(keep)

    def _manager(self, keep: int):
        self.keep = keep
        return ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
            item_names=("state", "data"))

    def complete_steps(self) -> list[int]:
        """Steps with a finished checkpoint folder on disk (ascending)."""
        if not self.directory.is_dir():
            return []
        return sorted(int(p.name) for p in self.directory.iterdir()
                      if p.name.isdigit() and p.is_dir())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, data_position: dict) -> None:
        """Save (asynchronously) unless this step is already saved. Raises SaveError when this
        save cannot start or the previous asynchronous one failed."""
        if step in self.manager.all_steps():
            return
        try:
            self.manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_position)),
                force=True)
        except Exception as e:  # Orbax / TensorStore raise ValueError, OSError, ...
            raise self._save_error(self.unsettled or step, e) from e
        self.unsettled = step

    def _save_error(self, step: int | None, e: BaseException) -> SaveError:
        self.failed = True
        done = [s for s in self.complete_steps() if s != step]
        last = f"step {done[-1]}" if done else "none"
        return SaveError(
            f"could not write checkpoint step {step} in {self.directory}: {_first_line(e)}. "
            f"The last complete checkpoint is {last} (left as it was); free some space or make "
            f"the folder writable, then rerun the same command to continue from it")

    def restore(self, abstract_state):
        """(state laid out like `abstract_state`, data position, step) of the newest readable
        checkpoint, or None when there is none. Unreadable newer ones are warned about and
        moved aside; CheckpointError when checkpoints exist and none can be read."""
        failures = []
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                out = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
            except Exception as e:  # TensorStore raises a bare Exception on truncated files
                failures.append((step, e))
                self.warn(f"warning: checkpoint {self.directory / str(step)} is unreadable "
                          f"({_first_line(e)}); trying the previous one")
                continue
            if failures:
                self._set_aside([s for s, _ in failures])
            return out["state"], out["data"], step
        if failures:
            raise CheckpointError(
                f"no checkpoint in {self.directory} can be read (" + "; ".join(
                    f"step {s}: {_first_line(e)}" for s, e in failures) + "). Not starting from "
                "scratch: move the folder away to start a new run")
        return None

    def read(self, step: int):
        """(state as saved, data position) of `step`, without a target (for inspection)."""
        out = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(), data=ocp.args.JsonRestore()))
        return out["state"], out["data"]

    def _set_aside(self, steps: list[int]) -> None:
        """Move unreadable checkpoints out of Orbax's folder, so their steps can be saved
        again (and the keep-N policy counts only good ones)."""
        aside = self.directory.with_name(self.directory.name + "_unreadable")
        if jax.process_index() == 0:
            aside.mkdir(exist_ok=True)
            for s in steps:
                dst = aside / str(s)
                n = 1
                while dst.exists():
                    dst, n = aside / f"{s}.{n}", n + 1
                shutil.move(str(self.directory / str(s)), dst)
                self.warn(f"warning: moved the unreadable checkpoint step {s} to {dst}")
        _sync("gliner_jax_checkpoint_set_aside")
        self.manager.close()
        self.manager = self._manager(self.keep)

    def wait(self) -> None:
        """Block until the pending save is written; SaveError if it failed."""
        try:
            self.manager.wait_until_finished()
            self.manager.check_for_errors()
        except Exception as e:
            raise self._save_error(self.unsettled, e) from e
        self.unsettled = None

    def close(self) -> None:
        """Wait for the pending save and close; after a failed save, only close."""
        try:
            if not self.failed:
                self.wait()
        finally:
            try:
                self.manager.close()
            except Exception:
                if not self.failed:
                    raise


def abstract(tree, shardings):
    """ShapeDtypeStructs carrying the target shardings (what a restore fills)."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                        tree, shardings)

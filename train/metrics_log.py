"""metrics.jsonl: step metrics pulled from the devices in batches, checked, appended once.

Each line is a JSON object with a "step". After a restart from the checkpoint of step S, the
lines of later steps (written by the run that was killed) are cut away before the rerun logs
those steps again, so a step is logged once however the previous run ended.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import jax
import numpy as np

from train.checkpointing import SaveError


class NonFiniteLoss(RuntimeError):
    """The loss or gradient norm became NaN / inf (more often than `skip_nonfinite` allows);
    the run stopped before saving it."""


def host(tree):
    """Numpy copies of replicated arrays: each process reads its own replica (np.asarray of a
    global array fails when some of its devices belong to other processes)."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)


class MetricsLog:
    """Step metrics stay on the devices until `flush` (every log_every steps and before every
    save) pulls them, checks that they are finite and appends their means to metrics.jsonl.

    With `skip_limit` > 0 the step leaves the state unchanged on a non-finite loss (see
    train.step); such a batch is logged as skipped, up to `skip_limit` in the whole run (the
    count travels in the checkpoint), and the next one stops the run."""

    def __init__(self, path: Path, scheds: dict, traces: list, ckpt, main: bool,
                 skip_limit: int = 0, skipped: int = 0, log=print):
        self.path, self.scheds, self.traces, self.ckpt, self.main = path, scheds, traces, ckpt, \
            main
        self.skip_limit, self.skipped, self.log = skip_limit, skipped, log
        self.pending: list = []
        self.last: dict = {}
        self.clock = time.perf_counter()

    def cut(self, start: int, num_steps: int) -> None:
        """Drop the lines logged after the checkpoint this run starts from (step `start`): the
        steps after it, and the final evaluation when `start` is the last step. A torn last
        line (killed mid-write) goes too."""
        if not (self.main and self.path.is_file()):
            return
        keep, dropped = [], 0
        for line in self.path.read_text().splitlines():
            try:
                rec = json.loads(line)
                step = rec["step"]
            except (ValueError, KeyError, TypeError):
                dropped += 1
                continue
            if step > start or (step == start == num_steps and "dev_f1" in rec):
                dropped += 1
            else:
                keep.append(line + "\n")
        if dropped:
            tmp = self.path.with_name(self.path.name + ".tmp")
            try:
                tmp.write_text("".join(keep))
                os.replace(tmp, self.path)
            except OSError as e:
                raise SaveError(f"cannot rewrite {self.path}: {e}") from e
            self.log(f"{self.path.name}: dropped {dropped} line(s) logged after step {start} "
                     "by the previous run (they are logged again)")

    def add(self, step: int, metrics: dict, info: dict) -> None:
        self.pending.append((step, metrics, info))

    def flush(self) -> dict:
        if not self.pending:
            return self.last
        values = host([m for _, m, _ in self.pending])
        good = []
        for (s, _, info), v in zip(self.pending, values, strict=True):
            if np.isfinite(v["loss"]) and np.isfinite(v["grad_norm"]):
                good.append((v, info))
                continue
            what = f"non-finite loss at step {s + 1} (loss={v['loss']}, grad_norm={v['grad_norm']})"
            if self.skipped >= self.skip_limit:
                also = f" after skipping {self.skipped} bad batch(es), the limit set by " \
                    "skip_nonfinite" if self.skip_limit else ""
                raise NonFiniteLoss(
                    f"{what}{also}: stopping; the last good checkpoint is step "
                    f"{self.ckpt.latest_step()} in {self.ckpt.directory}")
            self.skipped += 1
            self.log(f"warning: {what}: skipped that batch ({self.skipped} of "
                     f"{self.skip_limit} allowed)")
            self.write({"step": s + 1, "skipped_batch": True, "skipped_batches": self.skipped})
        now = time.perf_counter()
        dt, self.clock = now - self.clock, now
        s = self.pending[-1][0]
        self.pending.clear()
        if not good:
            return self.last
        rec = {"step": s + 1,
               "loss": float(np.mean([v["loss"] for v, _ in good])),
               "grad_norm": float(np.mean([v["grad_norm"] for v, _ in good])),
               **{f"lr_{g}": float(f(s)) for g, f in self.scheds.items()},
               "examples_per_s": sum(i["examples"] for _, i in good) / dt,
               "tokens_per_s": sum(i["tokens"] for _, i in good) / dt,
               "compiles": len(self.traces), "time": time.time()}
        self.write(rec)
        return rec

    def write(self, rec: dict) -> None:
        self.last.update(rec)
        if self.main:
            try:
                with open(self.path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
            except OSError as e:
                raise SaveError(f"cannot append to {self.path}: {e}") from e

"""Predicting one corpus with several JAX processes (the hosts of a TPU pod or a GPU cluster).

JAX's multi-process runtime is the engine: `jax.distributed.initialize` joins the processes
(launched as training is, docs/pods.md) and `multihost_utils.process_allgather` brings every
process's results to the others. The input is cut into consecutive chunks whose sizes do not
depend on the number of processes (`chunk_bounds`); chunk k belongs to process k mod P, which
parses, predicts and formats only its own chunks. Chunks are predicted in rounds of P (one per
process) and each round's results are gathered, so process 0 writes them in input order while
the others work on. With one process nothing here talks to anyone: the chunks simply follow each
other, so 1 and P processes batch the very same texts together.

A process that dies makes the others' next gather fail; `PeerLost` says so in one line. With
`jax_enable_recoverability` the coordination service does not abort the survivors first (they
stop at their next gather, which reports the loss); a dead process 0, the coordinator, makes JAX
end the others with its own message ("Terminating process because the JAX distributed service
detected fatal errors ... another task died").
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence

import numpy as np


class PeerLost(RuntimeError):
    """Another process of the job stopped (died, was killed, or failed on its own)."""


class JoinError(RuntimeError):
    """The processes could not be joined (jax.distributed.initialize failed)."""


def chunk_bounds(n: int, first: int, largest: int) -> list[tuple[int, int]]:
    """[lo, hi) of consecutive chunks over n units, growing from `first` to `largest`: the first
    results come out fast, later chunks are long enough for length sorting to pay."""
    out, lo, size = [], 0, max(first, 1)
    while lo < n:
        out.append((lo, min(lo + size, n)))
        lo += size
        size = min(size * 2, max(largest, first))
    return out


@dataclasses.dataclass(frozen=True)
class Hosts:
    """This process's place in the job: `index` of `count` processes."""

    index: int = 0
    count: int = 1

    @property
    def multi(self) -> bool:
        return self.count > 1

    def mine(self, chunk: int) -> bool:
        return chunk % self.count == self.index

    def rounds(self, n_chunks: int) -> Iterator[range]:
        """Chunk indices predicted together: one per process."""
        for lo in range(0, n_chunks, self.count):
            yield range(lo, min(lo + self.count, n_chunks))

    def gather(self, payload) -> list:
        """Every process's JSON-able `payload`, in process order, on every process. One process:
        [payload], without JAX."""
        if not self.multi:
            return [payload]
        blob = np.frombuffer(json.dumps(payload, ensure_ascii=False).encode(), np.uint8)
        sizes = self._allgather(np.array([blob.size], np.int64)).reshape(-1)
        width = 1 << max(int(sizes.max()), 1).bit_length()  # few shapes, few compiles
        padded = np.zeros(width, np.uint8)
        padded[: blob.size] = blob
        rows = self._allgather(padded)
        return [json.loads(bytes(rows[i, : sizes[i]]).decode()) for i in range(self.count)]

    def _allgather(self, x: np.ndarray) -> np.ndarray:
        import jax
        from jax.experimental import multihost_utils

        try:
            return np.asarray(multihost_utils.process_allgather(x))
        except jax.errors.JaxRuntimeError as e:
            detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise PeerLost(f"process {self.index}: another process of this job of {self.count} "
                           f"stopped; the job is incomplete ({detail[:200]})") from None


def join(coordinator: str | None, num_processes: int | None, process_id: int | None,
         auto: bool, heartbeat_s: int) -> Hosts:
    """Join the job's processes (`auto`: JAX detects the cluster: TPU pod, SLURM, ...); a
    single process when nothing asks for several."""
    if not (coordinator or num_processes or process_id is not None or auto):
        return Hosts()
    given = [x is not None for x in (coordinator, num_processes, process_id)]
    if not auto and not all(given):
        raise JoinError("--coordinator, --num-processes and --process-id go together (or "
                        "--distributed, where JAX detects the cluster)")
    if num_processes is not None and not 0 <= (process_id or 0) < num_processes:
        raise JoinError(f"--process-id {process_id} is outside 0..{num_processes - 1}")
    import jax

    # a process that dies fails the others' next gather (PeerLost) instead of having the
    # coordination service abort them; CPU processes exchange data through gloo
    jax.config.update("jax_enable_recoverability", True)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator, num_processes, process_id,
                                   heartbeat_timeout_seconds=heartbeat_s)
    except (RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise JoinError(f"cannot join the job's processes: {first[:300]}") from None
    return Hosts(jax.process_index(), jax.process_count())


def protect_stdout(verbose: bool) -> None:
    """Keep file descriptor 1 for our data: gloo prints "[Gloo] Rank 0 is connected to 1 peer
    ranks ..." to the C++ standard output when processes connect. Python's sys.stdout moves to a
    copy of the real descriptor, and descriptor 1 goes to stderr (`verbose`) or /dev/null."""
    import os
    import sys

    sys.stdout.flush()
    data = os.dup(1)
    os.dup2(2 if verbose else os.open(os.devnull, os.O_WRONLY), 1)
    sys.stdout = open(data, "w", encoding="utf-8", closefd=True)  # noqa: SIM115


def local_mesh():
    """A data mesh over this process's devices (None with one device)."""
    import jax

    from gliner_jax.sharding import make_mesh

    devices = jax.local_devices()
    return make_mesh((-1, 1, 1), devices) if len(devices) > 1 else None


def share(units: Sequence, bounds: Sequence[tuple[int, int]], hosts: Hosts) -> dict[int, tuple]:
    """{chunk index: (lo, units[lo:hi])} of this process's chunks."""
    return {k: (lo, units[lo:hi]) for k, (lo, hi) in enumerate(bounds) if hosts.mine(k)}

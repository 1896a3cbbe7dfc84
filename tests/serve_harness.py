"""Start `python -m gliner_jax.serve` in a subprocess for a test module, talk to it over loopback,
and make sure it and its Ray processes are gone afterwards."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(cache_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GLINER_JAX_", "RAY_"))}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(REPO),
               JAX_PLATFORMS="cpu", RAY_USAGE_STATS_ENABLED="0",
               RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", GLINER_JAX_CACHE=str(cache_dir),
               TOKENIZERS_PARALLELISM="false", XLA_FLAGS="")
    return env


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the test process dies (Linux PR_SET_PDEATHSIG),
    so a crashed pytest does not leave a server (and its Ray cluster) running."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class Server:
    """A running server: `url` (the route prefix), `post(body)`, `health()`, `stop()`."""

    def __init__(self, model_dir: Path, cache_dir: Path, log_path: Path, *args: str,
                 start_timeout_s: float = 420.0):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + "/gliner"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        cmd = [sys.executable, "-m", "gliner_jax.serve", "--model", str(model_dir),
               "--port", str(self.port), "--ray-num-cpus", "2", *args]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=server_env(cache_dir), cwd=REPO, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            if "gliner_jax.serve: ready at" in self.log():
                return
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"server not ready after {start_timeout_s} s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def post(self, body: bytes | dict, path: str = "", method: str = "POST",
             timeout: float = 60.0) -> tuple[int, dict]:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except json.JSONDecodeError:
                return e.code, {"raw": raw.decode(errors="replace")}

    def health(self, timeout: float = 10.0) -> tuple[int, dict]:
        return self.post(None, "/health", method="GET", timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90.0) -> int | None:
        """SIGTERM, wait; if still alive, kill its whole process group (Ray included)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # leftovers of this server's session only
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")

"""Throughput and latency of `python -m gliner_jax.serve` under concurrent clients (a benchmark,
not a test).

    python -m eval.bench_serve [--model checkpoints/gliner_jax-minilm-l6] [--clients 1,8,32,64]
                               [--requests 256] [--seconds 60] [--reference]

Real sentences (CoNLL-2003 test, 5+ words, its 4 types as labels) go to the server over loopback
from 1, 8, 32 and 64 client threads, one text per request (the reference client's protocol).
Each level sends at most `--requests` requests and stops after `--seconds`. Reported: texts/s and
p50 / p99 latency per level, against sequential single-text `predict_entities` calls of the
in-process API. `--reference` runs the PyTorch reference's server (gliner 0.2.29
`gliner.serve`, `--device cpu`, float32, same weights) through the same load, side by side.
Both servers get a local Ray of 2 CPUs and 1 replica.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "ner" / "supervised" / "conll2003"
sys.path.insert(0, str(REPO))

from tests.serve_harness import Server, free_port, server_env  # noqa: E402


def sentences(folder: Path, n: int) -> tuple[list[str], list[str]]:
    from gliner_jax.corpora import natural_labels, read_bio_file, read_labels_json

    mapping = read_labels_json(folder / "labels.json")
    examples = read_bio_file(folder / "test.txt", mapping)
    texts = [" ".join(ex["tokenized_text"]) for ex in examples
             if len(ex["tokenized_text"]) >= 5][:n]
    return texts, natural_labels(mapping)


def post(url: str, text: str, labels: list[str], timeout: float = 120.0) -> int:
    body = json.dumps({"text": text, "labels": labels, "threshold": 0.4}).encode()
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            json.loads(r.read())
            return r.status
    except Exception:  # noqa: BLE001 - counted as an error
        return 0


def load(url: str, texts: list[str], labels: list[str], clients: int, requests: int,
         seconds: float) -> dict:
    """`clients` threads share a budget of `requests` requests and a deadline of `seconds`."""
    lock = threading.Lock()
    next_i = [0]
    lat: list[float] = []
    errors = [0]
    deadline = time.monotonic() + seconds

    def worker():
        while time.monotonic() < deadline:
            with lock:
                i = next_i[0]
                if i >= requests:
                    return
                next_i[0] += 1
            t0 = time.perf_counter()
            ok = post(url, texts[i % len(texts)], labels) == 200
            dt = time.perf_counter() - t0
            with lock:
                if ok:
                    lat.append(dt)
                else:
                    errors[0] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    [t.start() for t in threads]
    [t.join(seconds + 180) for t in threads]
    wall = time.perf_counter() - t0
    return summary(lat, wall, errors[0])


def summary(lat: list[float], wall: float, errors: int = 0) -> dict:
    lat = sorted(lat)
    q = (lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000) if lat else (lambda p: 0)
    return {"texts": len(lat), "errors": errors, "texts_per_s": len(lat) / wall,
            "p50_ms": q(0.50), "p99_ms": q(0.99)}


def in_process(model_dir: str, texts: list[str], labels: list[str], n: int) -> dict:
    from gliner_jax.model import GLiNER

    model = GLiNER.from_pretrained(model_dir)
    for t in texts[:n]:  # compile every shape these texts need first, as the server does
        model.predict_entities(t, labels, threshold=0.4)
    lat = []
    t0 = time.perf_counter()
    for t in texts[:n]:
        t1 = time.perf_counter()
        model.predict_entities(t, labels, threshold=0.4)
        lat.append(time.perf_counter() - t1)
    return summary(lat, time.perf_counter() - t0)


REFERENCE_SERVER = """
import os, signal, sys, threading, ray
from gliner.serve import GLiNERServeConfig
from gliner.serve.server import serve
from ray import serve as rs
ray.init(address="local", num_cpus=2, include_dashboard=False)
cfg = GLiNERServeConfig(model=sys.argv[1], device="cpu", dtype="float32",
                        http_port=int(sys.argv[2]),
                        num_gpus_per_replica=0, num_cpus_per_replica=1, max_batch_size=32,
                        batch_wait_timeout_ms=5, enable_compilation=False, warmup_iterations=1,
                        precompiled_batch_sizes=[1, 8, 32])
serve(cfg)
print("reference ready", flush=True)
stop = threading.Event()
for s in (signal.SIGTERM, signal.SIGINT):
    signal.signal(s, lambda *_: stop.set())
stop.wait(3600)
rs.shutdown(); ray.shutdown()
"""


def reference_server(model_dir: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = server_env(Path(tempfile.gettempdir()) / "unused")
    proc = subprocess.Popen([sys.executable, "-c", REFERENCE_SERVER, model_dir, str(port)],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env,  # noqa: SIM115
                            start_new_session=True)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if proc.poll() is not None or "reference ready" in log.read_text(errors="replace"):
            break
        time.sleep(1)
    if proc.poll() is not None or "reference ready" not in log.read_text(errors="replace"):
        tail = log.read_text(errors="replace")[-2000:]
        stop_process(proc)
        raise RuntimeError(f"the reference server did not start:\n{tail}")
    return proc, f"http://127.0.0.1:{port}/gliner"


def stop_process(proc: subprocess.Popen) -> None:
    import signal

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_levels(name: str, url: str, texts, labels, levels, args) -> list[dict]:
    for t in texts[:16]:  # first-request costs (connections, caches) out of the timings
        post(url, t, labels)
    rows = []
    for c in levels:
        r = {"server": name, "clients": c, **load(url, texts, labels, c, args.requests,
                                                  args.seconds)}
        print(json.dumps(r), flush=True)
        rows.append(r)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(REPO / "checkpoints" / "gliner_jax-minilm-l6"))
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--clients", default="1,8,32,64")
    p.add_argument("--requests", type=int, default=256, help="at most, per level")
    p.add_argument("--seconds", type=float, default=60.0, help="at most, per level")
    p.add_argument("--sequential", type=int, default=64, help="texts for the in-process line")
    p.add_argument("--reference", action="store_true")
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    levels = [int(x) for x in args.clients.split(",")]
    texts, labels = sentences(Path(args.data), 2000)
    print(f"{len(texts)} sentences, labels {labels}", flush=True)
    rows = [{"server": "in-process predict_entities (sequential)", "clients": 1,
             **in_process(args.model, texts, labels, args.sequential)}]
    print(json.dumps(rows[0]), flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench_serve_"))
    t0 = time.perf_counter()
    srv = Server(Path(args.model), Path.home() / ".cache" / "gliner_jax" / "xla",
                 work / "server.log", "--warmup-max-labels", "4", "--max-batch-size", "32",
                 start_timeout_s=1800)
    print(f"gliner_jax server ready in {time.perf_counter() - t0:.0f} s", flush=True)
    try:
        rows += run_levels("gliner_jax.serve", srv.url, texts, labels, levels, args)
        rows[-1]["late_compiles"] = srv.health()[1].get("late_compiles")
    finally:
        srv.stop()
    if args.reference:
        try:
            proc, url = reference_server(args.model, work / "reference.log")
        except RuntimeError as e:
            print(f"reference server: {e}", flush=True)
        else:
            try:
                rows += run_levels("gliner.serve (reference, cpu fp32)", url, texts, labels,
                                   levels, args)
            finally:
                stop_process(proc)
    print("\n| server | clients | texts/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['server']} | {r['clients']} | {r['texts_per_s']:.1f} | {r['p50_ms']:.0f} "
              f"| {r['p99_ms']:.0f} | {r['errors']} |")
    ours = {r["clients"]: r["texts_per_s"] for r in rows if r["server"] == "gliner_jax.serve"}
    if 1 in ours and 32 in ours:
        print(f"\ngliner_jax.serve: 32 clients / 1 client = {ours[32] / ours[1]:.2f}x "
              "(target >= 3x)")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m gliner_jax.serve --model DIR`: start the server on Ray Serve, print one "ready" line
once every replica is warm, serve until SIGTERM / SIGINT, then drain the requests in flight and
exit 0."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
import time

from gliner_jax.serve.config import ServeConfig


def parse_args(argv=None) -> ServeConfig:
    d = ServeConfig(model="")
    p = argparse.ArgumentParser(prog="python -m gliner_jax.serve", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=os.environ.get("GLINER_JAX_MODEL"),
                   help="model directory (default: $GLINER_JAX_MODEL)")
    p.add_argument("--port", type=int, default=d.http_port)
    p.add_argument("--host", default=d.http_host, help="address the HTTP proxy listens on")
    p.add_argument("--route-prefix", default=d.route_prefix)
    p.add_argument("--replicas", "--num-replicas", dest="num_replicas", type=int,
                   default=d.num_replicas)
    p.add_argument("--num-cpus-per-replica", type=float, default=d.num_cpus_per_replica)
    p.add_argument("--num-gpus-per-replica", type=float, default=None,
                   help="default: all GPUs Ray sees, divided among the replicas")
    p.add_argument("--ray-num-cpus", type=int, default=d.ray_num_cpus,
                   help="CPUs of the local Ray instance")
    p.add_argument("--ray-address", default=None, help="join this Ray cluster (default: start "
                                                      "a local one)")
    p.add_argument("--max-batch-size", type=int, default=d.max_batch_size)
    p.add_argument("--batch-wait-timeout-ms", type=float, default=d.batch_wait_timeout_ms)
    p.add_argument("--request-timeout-s", type=float, default=d.request_timeout_s)
    p.add_argument("--max-ongoing-requests", type=int, default=d.max_ongoing_requests)
    p.add_argument("--queue-capacity", type=int, default=d.queue_capacity)
    p.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes)
    p.add_argument("--max-labels", type=int, default=d.max_labels)
    p.add_argument("--default-threshold", type=float, default=d.default_threshold)
    p.add_argument("--graceful-shutdown-timeout-s", type=float,
                   default=d.graceful_shutdown_timeout_s)
    p.add_argument("--warmup-max-tokens", type=int, default=d.warmup_max_tokens)
    p.add_argument("--warmup-max-labels", type=int, default=d.warmup_max_labels)
    p.add_argument("--buckets", choices=("pow2", "fine"), default=d.buckets)
    p.add_argument("--cache-dir", default=None, help="persistent XLA cache ('none': off)")
    p.add_argument("--window-size", type=int, default=None)
    p.add_argument("--window-stride", type=int, default=None)
    a = p.parse_args(argv)
    if not a.model:
        p.error("--model is required (or set GLINER_JAX_MODEL)")
    if not os.path.isdir(a.model):
        p.error(f"--model {a.model}: not a directory")
    fields = {f.name for f in dataclasses.fields(ServeConfig)}
    kw = {k: v for k, v in vars(a).items() if k in fields}
    try:
        return ServeConfig(http_port=a.port, http_host=a.host, **kw)
    except ValueError as e:
        p.error(str(e))


def main(argv=None) -> int:
    config = parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not config.ray_address:
        # a local cluster keeps all of Ray's own traffic on loopback (by default Ray binds its
        # processes to the node's network address); read by ray at import
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import ray
    from ray import serve

    from gliner_jax.serve.deployment import build_app

    stop = threading.Event()
    ready = threading.Event()

    def on_signal(*_):
        if not ready.is_set():  # still loading / warming up: nothing to drain, stop now
            raise KeyboardInterrupt
        stop.set()

    url = f"http://{config.http_host}:{config.http_port}{config.route_prefix}"
    try:
        ray.init(address=config.ray_address or "local", num_cpus=config.ray_num_cpus
                 if config.ray_address is None else None, include_dashboard=False,
                 log_to_driver=True, configure_logging=False)
        # after ray.init, which installs its own (aborting) handlers
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
        if config.num_gpus_per_replica is None:
            gpus = ray.cluster_resources().get("GPU", 0)
            config.num_gpus_per_replica = gpus / config.num_replicas if gpus else 0
        serve.start(http_options={"host": config.http_host, "port": config.http_port,
                                  "request_timeout_s": config.request_timeout_s})
        t0 = time.perf_counter()
        serve.run(build_app(config), name="gliner", route_prefix=config.route_prefix)
        print(f"gliner_jax.serve: ready at {url} ({time.perf_counter() - t0:.1f} s to load and "
              "warm up)", flush=True)
        ready.set()
        while not stop.wait(0.5):
            pass
        print("gliner_jax.serve: draining requests in flight, then stopping", flush=True)
        # deleting the app first lets each replica finish its ongoing requests while the HTTP
        # proxy is still up to deliver the answers (serve.shutdown alone drops them)
        serve.delete("gliner", _blocking=True)
        serve.shutdown()
        print("gliner_jax.serve: stopped", flush=True)
        return 0
    except KeyboardInterrupt:
        if ray.is_initialized():
            serve.shutdown()
        print("gliner_jax.serve: stopped during start-up", flush=True)
        return 0
    except Exception as e:  # noqa: BLE001 - one line, not a Ray traceback
        print(f"gliner_jax.serve: error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        if ray.is_initialized():
            ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())

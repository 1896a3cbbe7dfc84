"""The server's settings. Field names follow the reference's `GLiNERServeConfig` where they mean
the same thing (model, max_labels, default_threshold, num_replicas, num_cpus_per_replica,
max_batch_size, batch_wait_timeout_ms, request_timeout_s, max_ongoing_requests, queue_capacity,
route_prefix, precompiled_batch_sizes, http_port, ray_address)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class ServeConfig:
    model: str
    max_labels: int = -1                  # labels per request; -1: unlimited
    default_threshold: float = 0.5

    num_replicas: int = 1
    num_cpus_per_replica: float = 1.0
    # None: all the GPUs Ray sees, shared out over the replicas (Ray hides GPUs from an actor
    # that asks for none; a replica runs data-parallel over every device it sees)
    num_gpus_per_replica: float | None = None
    ray_num_cpus: int = 2                 # CPUs the local Ray instance may use

    max_batch_size: int = 32
    batch_wait_timeout_ms: float = 5.0
    request_timeout_s: float = 30.0
    max_ongoing_requests: int = 256
    queue_capacity: int = 4096
    max_body_bytes: int = 1 << 20         # larger request bodies get 413
    graceful_shutdown_timeout_s: float = 30.0

    route_prefix: str = "/gliner"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    ray_address: str | None = None

    # warm-up compiles every bucket shape up to these sizes, so no request pays for a compile
    precompiled_batch_sizes: list[int] = dataclasses.field(
        default_factory=lambda: [1, 2, 4, 8, 16, 32])
    warmup_max_tokens: int = 256
    warmup_max_labels: int = 8
    buckets: str = "pow2"                 # "pow2": power-of-two shapes; "fine": inference's own
    cache_dir: str | None = None          # persistent XLA cache (default as predict's)
    window_size: int | None = None        # long texts: windows as in predict
    window_stride: int | None = None

    def __post_init__(self):
        checks = [
            (self.max_batch_size >= 1, f"max_batch_size must be >= 1, got {self.max_batch_size}"),
            (self.batch_wait_timeout_ms >= 0, "batch_wait_timeout_ms must be >= 0"),
            (self.num_replicas >= 1, f"num_replicas must be >= 1, got {self.num_replicas}"),
            (self.max_body_bytes >= 64, "max_body_bytes must be >= 64"),
            (0.0 <= self.default_threshold <= 1.0, "default_threshold must be in [0, 1]"),
            (self.route_prefix.startswith("/"), "route_prefix must start with '/'"),
            (self.buckets in ("pow2", "fine"), "buckets must be 'pow2' or 'fine'"),
            (self.max_ongoing_requests >= self.max_batch_size,
             "max_ongoing_requests must be >= max_batch_size (batches would never fill)"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
        self.route_prefix = "/" + self.route_prefix.strip("/") if self.route_prefix != "/" else "/"
        sizes = {int(b) for b in self.precompiled_batch_sizes if int(b) <= self.max_batch_size}
        self.precompiled_batch_sizes = sorted(sizes | {self.max_batch_size})

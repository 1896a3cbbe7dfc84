"""The model side of the server, without Ray: load, warm up every bucket shape, predict a group of
requests as one `GLiNER.inference` call (the same length-sorted, bucketed batches), data-parallel
over all local devices when there are several."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from gliner_jax.model import GLiNER
from gliner_jax.processing import BucketPolicy, bucket, pad_batch
from gliner_jax.serve.config import ServeConfig
from gliner_jax.serve.protocol import PredictRequest
from gliner_jax.sharding import make_mesh

log = logging.getLogger("gliner_jax.serve")


class ServingGLiNER(GLiNER):
    """GLiNER that records the shapes it runs (so a request that compiles is seen) and, with a
    mesh, splits every batch's rows over the mesh's data axes (parameters replicated)."""

    def _init_serving(self, mesh: jax.sharding.Mesh | None) -> None:
        self.shapes: set[tuple[int, int, int, int]] = set()
        self.warm = False
        self.late_compiles = 0
        if mesh is not None:
            self.use_mesh(mesh)

    def _forward(self, batch) -> np.ndarray:
        s = batch.shape
        key = (s["B"], s["T"], s["W"], s["C"])
        if key not in self.shapes:
            self.shapes.add(key)
            if self.warm:
                self.late_compiles += 1
                log.warning("shape B=%d T=%d W=%d C=%d was not compiled at warm-up", *key)
        return super()._forward(batch)


class Engine:
    def __init__(self, config: ServeConfig):
        self.config = config
        set_compilation_cache(config.cache_dir)
        n_dev = jax.local_device_count()
        mesh = make_mesh((-1, 1, 1), jax.local_devices()) if n_dev > 1 else None
        fine = config.buckets == "fine"
        policy = BucketPolicy(min_batch=n_dev, half_steps=fine)
        self.model = ServingGLiNER.from_pretrained(config.model, local_files_only=True,
                                                   buckets=policy)
        self.model._init_serving(mesh)
        self.policy = policy
        self.devices = n_dev
        self.window = self.model.window_shape(config.window_size, config.window_stride)

    # -- warm-up ---------------------------------------------------------------------------

    def warmup_shapes(self) -> list[tuple[int, int, int, int]]:
        """Every (B, T, W, C) a dynamic batch of up to max_batch_size texts of up to
        warmup_max_tokens tokens and warmup_max_labels labels can be padded to."""
        p, proc = self.policy, self.model.processor
        cap = proc.model_max_length
        max_t = self.config.warmup_max_tokens if cap is None else min(
            self.config.warmup_max_tokens, cap)
        ts = _buckets(p.min_tokens, max_t, p.half_steps)
        ws = _buckets(p.min_words, max(ts), p.half_steps)
        cs = _buckets(p.min_classes, self.config.warmup_max_labels, p.half_steps)
        top_b = bucket(self.config.max_batch_size, p.min_batch, half_steps=False)
        out = []
        for t in ts:
            rows = min(top_b, max(self.model.chunk_rows(t), p.min_batch))
            bs = _buckets(p.min_batch, rows, half_steps=False)
            out += [(b, t, w, c) for b in bs for w in ws if w <= t for c in cs]  # words <= tokens
        return out

    def warmup(self) -> float:
        """Compile (or load from the persistent cache) every warm-up shape; seconds taken."""
        t0 = time.perf_counter()
        proc = self.model.processor
        base = proc.encode([["warm", "up"]], [["label"]], [["label"]], pad=False)
        shapes = self.warmup_shapes()
        for b, t, w, c in shapes:
            batch = pad_batch(base, B=b, T=t, W=w, C=c, pad_token_id=proc.pad_token_id,
                              padding_side=getattr(self.model.tokenizer, "padding_side", "right"))
            self.model.span_probs(batch)
        # one real request end to end (tokenizer, decoding)
        self.model.inference(["Warm up the server ."], ["thing"], threshold=0.5,
                             return_relations=False)
        self.model.warm = True
        dt = time.perf_counter() - t0
        log.info("warm-up: %d shapes compiled in %.1f s on %d device(s)", len(shapes), dt,
                 self.devices)
        return dt

    # -- prediction ------------------------------------------------------------------------

    def predict(self, requests: Sequence[PredictRequest]) -> list[list[dict] | Exception]:
        """Entities per request: one inference call for the whole group (it sorts the texts by
        length and pads each batch to its bucket). A failure is isolated to its request."""
        try:
            return self._infer(requests)
        except Exception:
            if len(requests) == 1:
                raise
        out: list[list[dict] | Exception] = []
        for r in requests:
            try:
                out += self._infer([r])
            except Exception as e:  # noqa: BLE001 - reported to that request's client only
                log.exception("request failed")
                out.append(e)
        return out

    def _infer(self, requests: Sequence[PredictRequest]) -> list[list[dict]]:
        size, stride = self.window
        return self.model.inference(
            [r.text for r in requests], [r.labels for r in requests],
            batch_size=self.config.max_batch_size,
            threshold=[r.threshold for r in requests],
            flat_ner=[r.flat_ner for r in requests],
            multi_label=[r.multi_label for r in requests],
            window_size=size, window_stride=stride,
            return_relations=False)   # entities only, also from a relex model (protocol.py)

    def stats(self) -> dict:
        return {"devices": self.devices, "compiled_shapes": len(self.model.shapes),
                "late_compiles": self.model.late_compiles}


def _buckets(lo: int, hi: int, half_steps: bool) -> list[int]:
    """Every bucket value from `bucket(lo)` up to `bucket(hi)`."""
    out, n = [], max(lo, 1)
    while True:
        b = bucket(n, lo, half_steps)
        out.append(b)
        if b >= hi:
            return out
        n = b + 1


def set_compilation_cache(cache_dir: str | None) -> None:
    """The persistent XLA cache, as `python -m gliner_jax.predict` sets it."""
    cache = cache_dir or os.environ.get("GLINER_JAX_CACHE")
    if cache is None:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        cache = Path(base) / "gliner_jax" / "xla"
    if str(cache).lower() != "none":
        jax.config.update("jax_compilation_cache_dir", str(cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)

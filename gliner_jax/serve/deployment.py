"""The Ray Serve deployment: HTTP in (the reference's protocol), `serve.batch` groups concurrent
requests, the Engine predicts each group as one `inference` call in a worker thread (the event
loop keeps reading requests meanwhile, so the next batch fills)."""

from __future__ import annotations

import asyncio
import logging
import os

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from gliner_jax.serve.config import ServeConfig
from gliner_jax.serve.protocol import RequestError, parse_request

log = logging.getLogger("gliner_jax.serve")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or RequestError(413) as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError(400, f"bad Content-Length header {declared!r}")
        if int(declared) > limit:
            raise RequestError(413, f"request body of {int(declared)} bytes is over the limit "
                                    f"of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def build_app(config: ServeConfig):
    """The bound deployment for `serve.run`."""

    @serve.deployment(
        name="GLiNER",
        num_replicas=config.num_replicas,
        ray_actor_options={"num_cpus": config.num_cpus_per_replica,
                           "num_gpus": config.num_gpus_per_replica or 0},
        max_ongoing_requests=config.max_ongoing_requests,
        max_queued_requests=config.queue_capacity,
        graceful_shutdown_timeout_s=config.graceful_shutdown_timeout_s,
        graceful_shutdown_wait_loop_s=0.5,
    )
    class GLiNERDeployment:
        def __init__(self, cfg: ServeConfig):
            logging.basicConfig(level=logging.INFO)
            from gliner_jax.serve.engine import Engine

            self.cfg = cfg
            self.engine = Engine(cfg)
            self.engine.warmup()  # Serve routes no request here before this returns

        @serve.batch(max_batch_size=config.max_batch_size,
                     batch_wait_timeout_s=config.batch_wait_timeout_ms / 1000.0)
        async def predict_batch(self, requests: list) -> list:
            return await asyncio.to_thread(self.engine.predict, requests)

        async def __call__(self, request: Request):
            prefix = self.cfg.route_prefix.rstrip("/")
            sub = request.url.path.rstrip("/")[len(prefix):]
            if sub == "/health":
                if request.method != "GET":
                    return error(405, f"{request.method} {request.url.path}: use GET")
                return {"status": "ready", "pid": os.getpid(), **self.engine.stats()}
            if sub != "":
                return error(404, f"no such path {request.url.path!r}; POST {prefix or '/'} "
                                  f"to predict, GET {prefix}/health for health")
            if request.method != "POST":
                return error(405, f"{request.method} {request.url.path}: use POST with a JSON "
                                  "body")
            try:
                body = await read_body(request, self.cfg.max_body_bytes)
                req = parse_request(body, default_threshold=self.cfg.default_threshold,
                                    max_labels=self.cfg.max_labels)
            except RequestError as e:
                return error(e.status, e.message)
            result = await self.predict_batch(req)
            if isinstance(result, Exception):
                return error(500, f"prediction failed: {type(result).__name__}: {result}")
            return {"entities": result}

    return GLiNERDeployment.bind(config)

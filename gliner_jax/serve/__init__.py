"""`python -m gliner_jax.serve`: GLiNER as an HTTP service on Ray Serve, speaking the reference's
protocol (`gliner.serve.GLiNERClient` works against it unchanged).

Only `deployment.py` and `__main__.py` import Ray; `config`, `protocol` and `engine` are plain
Python + JAX, so a predict-only install never imports Ray or the web stack.
"""

from gliner_jax.serve.config import ServeConfig

__all__ = ["ServeConfig"]

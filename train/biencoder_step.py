"""Bi-encoder training pieces: the loss of one batch and the optimizer with the labels encoder in
its own group.

A bi-encoder batch (reference `BiEncoderSpanDataCollator`) carries the text inputs, the batch's
distinct labels once (`labels_input_ids` / `labels_attention_mask` [U, T]) and, when the rows'
label sets differ, `labels_gather_indices` [B, C] into them with `prompts_embedding_mask`
[B, C]. The loss is the uni-encoder's `span_loss` (gliner 0.2.29 `BiEncoderSpanModel.loss` calls
the same `_loss`, but positionally: its label_smoothing lands in `_loss`'s prob_margin slot and
no label smoothing is applied; `biencoder_loss_config` reproduces that, for parity).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from train.config import LossConfig, OptimConfig
from train.step import reseed, schedule, span_loss

# the labels encoder and its projection: their own optimizer group
LABELS_PARAMS = ("labels_encoder", "labels_projection")


def biencoder_loss_config(cfg: LossConfig) -> LossConfig:
    """gliner 0.2.29 BiEncoderSpanModel.loss calls `self._loss(scores, labels, alpha, gamma,
    label_smoothing, ...)` against `_loss(logits, labels, alpha, gamma, prob_margin,
    label_smoothing, ...)`: the label smoothing acts as a probability margin, and its own
    prob_margin is never passed."""
    return dataclasses.replace(cfg, prob_margin=cfg.label_smoothing, label_smoothing=0.0)


def biencoder_batch_loss(params, graphdef, rest, batch, loss_cfg: LossConfig, key=None,
                         encoder_tables=None):
    """Loss of one bi-encoder batch. `key`: dropout / masking key, None when dropout is off.
    `encoder_tables`: optional text-encoder tables (ModernBERT rotary tables in a test)."""
    model = nnx.merge(graphdef, params, rest)
    if key is not None:
        reseed(model, jax.random.fold_in(key, 0))
    _, w, _, c = batch["labels"].shape
    vectors = model.encode_labels(batch["labels_input_ids"], batch["labels_attention_mask"])
    mask = batch.get("prompts_embedding_mask")
    if "labels_gather_indices" in batch:
        vectors = vectors[batch["labels_gather_indices"]]                # [B, C, D]
    if mask is None:
        mask = jnp.ones((batch["input_ids"].shape[0], c), bool)
    logits = model(batch["input_ids"], batch["attention_mask"], batch["words_mask"],
                   batch["text_lengths"], vectors, mask, num_words=w,
                   encoder_tables=encoder_tables)
    dt = jnp.promote_types(logits.dtype, jnp.float32)
    mask_key = None if key is None else jax.random.fold_in(key, 1)
    return span_loss(logits.astype(dt), batch["labels"], mask, batch["span_mask"],
                     biencoder_loss_config(loss_cfg), mask_key)


def biencoder_param_groups(model: nnx.Module) -> tuple[dict, dict]:
    """(group labels, weight-decay mask): "labels_encoder" (token_rep_layer.labels_encoder and
    labels_projection), "encoder" (the rest of token_rep_layer), "others"; no decay on biases and
    LayerNorm parameters (the reference's rule)."""
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


def make_biencoder_optimizer(cfg: OptimConfig, model: nnx.Module, num_steps: int,
                             lr_labels: float | None = None, wd_labels: float | None = None):
    """AdamW per group. The labels encoder defaults to the encoder's learning rate and weight
    decay (the reference puts it in its encoder group); `lr_labels` / `wd_labels` set its own."""
    warmup = int(cfg.warmup_ratio * num_steps)
    peaks = {"encoder": cfg.lr_encoder, "others": cfg.lr_others,
             "labels_encoder": cfg.lr_encoder if lr_labels is None else lr_labels}
    wd = {"encoder": cfg.wd_encoder, "others": cfg.wd_others,
          "labels_encoder": cfg.wd_encoder if wd_labels is None else wd_labels}
    scheds = {g: schedule(lr, warmup, num_steps, cfg.schedule) for g, lr in peaks.items()}
    labels, decay = biencoder_param_groups(model)
    groups = {g: optax.adamw(scheds[g], cfg.b1, cfg.b2, cfg.eps, weight_decay=wd[g], mask=decay)
              for g in scheds}
    parts = [optax.clip_by_global_norm(cfg.max_grad_norm)] if cfg.max_grad_norm > 0 else []
    return optax.chain(*parts, optax.partition(groups, labels)), scheds

"""The relation-extraction loss (gliner 0.2.29 `UniEncoderSpanRelexModel.forward` with labels,
`adj_loss`, `rel_loss`) and its host-side targets.

    loss = span_loss * span_loss_coef + adj_loss * adjacency_loss_coef
           + rel_loss * relation_loss_coef
(no adjacency term for relations_layer "none"; the plain span loss when the batch has no
relation type, as the reference). The entities are the gold spans (any label 1), in flat
(start, width) order; adj_loss scores the adjacency layer's probabilities (the reference feeds
them to its focal loss with normalize_prob=False) against the gold adjacency over valid entity
pairs; rel_loss scores the relation logits of the gold adjacency's pairs (i != j, row-major).

Batch arrays beyond the span head's (`relex_targets` builds them, numpy):
    ent_idx [B,E] int32, ent_mask [B,E]     the gold spans, as flat indices start * K + width
    adj [B,E,E]                             gold adjacency (1 = a pair the loss scores)
    pair_idx [B,N,2] int32, pair_mask [B,N] the pairs of `adj`, row-major
    rel_labels [B,N,R]                      multi-hot relation types per pair
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from train.config import LossConfig

RELEX_BATCH_RANKS = {"ent_idx": 3, "ent_mask": 3, "adj": 4, "pair_idx": 4, "pair_mask": 3,
                     "rel_labels": 4}


def relex_targets(labels: np.ndarray, adj_matrix: np.ndarray, rel_matrix: np.ndarray,
                  threshold: float = 0.5) -> dict[str, np.ndarray]:
    """The relex batch arrays from the reference's targets: span labels [B,W,K,C], its
    `adj_matrix` [B,E,E] and `rel_matrix` [B,N,R] (`create_relation_labels`)."""
    b, w, k, _ = labels.shape
    gold = [np.flatnonzero(labels[i].max(-1).reshape(-1) == 1) for i in range(b)]
    e = max(max((len(g) for g in gold), default=0), adj_matrix.shape[1], 1)
    ent_idx = np.zeros((b, e), np.int32)
    ent_mask = np.zeros((b, e), bool)
    adj = np.zeros((b, e, e), np.float32)
    adj[:, :adj_matrix.shape[1], :adj_matrix.shape[2]] = adj_matrix
    pairs = []
    for i, g in enumerate(gold):
        ent_idx[i, :len(g)] = g
        ent_mask[i, :len(g)] = True
        off = (adj[i] > threshold) & ~np.eye(e, dtype=bool)   # build_entity_pairs
        pairs.append(np.argwhere(off))
    n = max(max((len(p) for p in pairs), default=0), 1)
    pair_idx = np.zeros((b, n, 2), np.int32)
    pair_mask = np.zeros((b, n), bool)
    rel = np.zeros((b, n, rel_matrix.shape[2]), np.float32)
    m = min(n, rel_matrix.shape[1])          # the reference pads / cuts rel_matrix to N pairs
    rel[:, :m] = rel_matrix[:, :m]
    for i, p in enumerate(pairs):
        pair_idx[i, :len(p)] = p
        pair_mask[i, :len(p)] = True
    return {"ent_idx": ent_idx, "ent_mask": ent_mask, "adj": adj, "pair_idx": pair_idx,
            "pair_mask": pair_mask, "rel_labels": rel}


def _reduce(loss, mask, cfg: LossConfig):
    total = jnp.sum(loss * mask)
    if cfg.reduction == "mean":
        n = jnp.sum(mask)
        return jnp.where(n > 0, total / jnp.maximum(n, 1), 0.0)
    return total


def relex_loss(model, batch, cfg: LossConfig, key=None):
    """The relex model's training loss of one (micro-)batch (see the module docstring)."""
    from train.step import focal_from_probs, focal_terms, span_loss

    if cfg.masking != "none" and cfg.negatives < 1:
        raise ValueError("negative sampling (masking with negatives < 1) is not implemented "
                         "for the relation losses")
    _, w, _, c = batch["labels"].shape
    r = batch["rel_labels"].shape[-1]
    logits, prompt_mask, words, rel, rel_mask = model.relex_forward(
        batch["input_ids"], batch["attention_mask"], batch["words_mask"],
        batch["text_lengths"], num_words=w, num_classes=c, num_relations=r)
    dt = jnp.promote_types(logits.dtype, jnp.float32)
    span = span_loss(logits.astype(dt), batch["labels"], prompt_mask, batch["span_mask"], cfg,
                     key)
    s = model.relex
    x = model.entity_vectors(words, batch["text_lengths"], batch["ent_idx"])
    b = jnp.arange(x.shape[0])[:, None]
    pair_logits = model.pair_logits(x[b, batch["pair_idx"][..., 0]],
                                    x[b, batch["pair_idx"][..., 1]], rel).astype(dt)
    rel_terms = focal_terms(pair_logits, batch["rel_labels"].astype(dt), cfg)
    pair_mask = batch["pair_mask"][:, :, None].astype(dt) * rel_mask[:, None, :].astype(dt)
    total = span * s.span_loss_coef + _reduce(rel_terms, pair_mask, cfg) * s.relation_loss_coef
    adj = model.adjacency(x, batch["ent_mask"])
    if adj is not None:
        em = batch["ent_mask"].astype(dt)
        adj_terms = focal_from_probs(adj.astype(dt), batch["adj"].astype(dt), cfg)
        total = total + _reduce(adj_terms, em[:, :, None] * em[:, None, :], cfg) * \
            s.adjacency_loss_coef
    return jnp.where(rel_mask.any(), total, span)   # no relation type: the span loss alone

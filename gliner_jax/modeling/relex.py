"""Relation extraction: gliner 0.2.29 `UniEncoderSpanRelexModel` (config `relations_layer`).

The entity side is the span model unchanged. Relations (reference `forward`):
    1. entities: the spans whose best type probability is > threshold (inference) or that carry
       a gold label (training), in flat (start, width) order -> their span vectors X [B,E,D]
       (the span mode's `span_vectors`: the reference's span_rep at those spans);
    2. adjacency A [B,E,E] = relations_rep_layer(X) (a probability: a sigmoid, or attention
       weights), masked to valid pairs; head/tail pairs (i != j) with A[i,j] > the
       adjacency threshold, row-major; relations_layer "none": every pair;
    3. pair logits [pair, r] = pair_rep_layer([X_i; X_j]) . R_r, with R the raw hidden states
       at the <<REL>> tokens (no prompt MLP).
Which spans and pairs are kept is data-dependent; that selection runs on the host (numpy,
`gliner_jax.relations`), and the model gives the jitted pieces: `relex_forward` (entity logits,
words and relation prompts of one encoder pass) and `relation_scores` (adjacency and the logits
of *every* (head, tail) pair of the selected entities; pair_rep_layer's first Linear splits over
the concatenation, so that costs one [E,4D] product per side, and its last Linear folds into
the relation prompts).

Adjacency layers (`relations_rep_layer.relation_rep_layer.*`): every one of the reference's,
dot, mlp, bilinear, gcn, attention / attn, gat (`modeling/adjacency.py`). The reference's
`triples_layer` scorers are recognised and refused with one line.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from gliner_jax.config import ConfigError, GlinerConfig
from gliner_jax.layers import Precision
from gliner_jax.modeling.adjacency import ADJACENCY, MULTIHEAD, NHEAD
from gliner_jax.modeling.gliner import SpanModel, gather_prompts
from gliner_jax.modeling.span_rep import MLP


@dataclasses.dataclass(frozen=True)
class RelexSettings:
    """The relex keys of a config (reference UniEncoderRelexConfig defaults)."""

    relations_layer: str
    rel_token: str = "<<REL>>"
    rel_token_index: int = -1
    embed_rel_token: bool = True
    span_loss_coef: float = 1.0
    adjacency_loss_coef: float = 1.0
    relation_loss_coef: float = 1.0


def relex_settings(cfg: GlinerConfig) -> RelexSettings:
    """The config's RelexSettings, or a ConfigError naming what is not supported."""
    raw = cfg.raw
    layer = str(raw.get("relations_layer")).lower()
    if layer not in ADJACENCY:
        raise ConfigError(f"relations_layer {raw.get('relations_layer')!r} is not supported; "
                          f"supported: {', '.join(ADJACENCY)}")
    if layer in MULTIHEAD and cfg.hidden_size % NHEAD:
        raise ConfigError(f"relations_layer {layer!r} needs hidden_size divisible by its "
                          f"{NHEAD} attention heads, got {cfg.hidden_size}")
    if raw.get("triples_layer") is not None:
        raise ConfigError(f"triples_layer {raw['triples_layer']!r} is not supported (only "
                          "pair_rep_layer scoring, triples_layer null)")
    from gliner_jax.modeling.families import span_mode

    if not hasattr(span_mode(cfg.span_mode).module, "span_vectors"):
        raise ConfigError(f"relation extraction with span_mode {cfg.span_mode!r} is not "
                          "supported; supported: marker, markerV0, markerV1, markerV2")
    defaults = RelexSettings(layer)
    get = lambda k: raw.get(k) if raw.get(k) is not None else getattr(defaults, k)  # noqa: E731
    return RelexSettings(
        layer, rel_token=str(get("rel_token")), rel_token_index=int(get("rel_token_index")),
        embed_rel_token=bool(get("embed_rel_token")),
        span_loss_coef=float(get("span_loss_coef")),
        adjacency_loss_coef=float(get("adjacency_loss_coef")),
        relation_loss_coef=float(get("relation_loss_coef")))


class RelationsRepLayer(nnx.Module):
    """torch `relations_rep_layer`: holds the adjacency module as `relation_rep_layer`."""

    def __init__(self, layer_cls, d: int, prec: Precision, *, rngs: nnx.Rngs):
        self.relation_rep_layer = layer_cls(d, prec, rngs=rngs)


class RelexModel(SpanModel):
    """UniEncoderSpanRelexModel: the span model plus relations_rep_layer (absent for
    relations_layer "none") and pair_rep_layer."""

    def __init__(self, cfg: GlinerConfig, prec: Precision = Precision(), *, rngs: nnx.Rngs):
        super().__init__(cfg, prec, rngs=rngs)
        self.relex = relex_settings(cfg)
        if self.relex.rel_token_index < 0:
            raise ValueError("a relex model needs a resolved rel_token_index (id of <<REL>>)")
        layer = ADJACENCY[self.relex.relations_layer]
        self.relations_rep_layer = (None if layer is None else
                                    RelationsRepLayer(layer, cfg.hidden_size, prec, rngs=rngs))
        self.pair_rep_layer = MLP(2 * cfg.hidden_size, cfg.hidden_size, cfg.dropout, prec,
                                  rngs=rngs)

    def relex_forward(self, input_ids, attention_mask, words_mask, text_lengths, *,
                      num_words: int, num_classes: int, num_relations: int,
                      encoder_tables=None):
        """(entity logits [B,W,K,C], prompt mask [B,C], words [B,W,D], relation prompts
        [B,R,D], their mask [B,R]) from one encoder pass."""
        h = self.token_rep_layer(input_ids, attention_mask, encoder_tables)
        words, prompts, prompt_mask = self.words_and_prompts_from(
            h, input_ids, attention_mask, words_mask, text_lengths, num_words=num_words,
            num_classes=num_classes)
        logits = self.span_rep_layer.span_rep_layer(words, self.prompt_rep_layer(prompts),
                                                    text_lengths)
        rel, rel_mask = gather_prompts(h, input_ids, attention_mask, self.relex.rel_token_index,
                                       num_relations, self.relex.embed_rel_token)
        return logits, prompt_mask, words, rel, rel_mask

    def entity_vectors(self, words, text_lengths, ent_idx):
        """Span vectors [B,E,D] of flat span indices ent_idx [B,E] (start * K + width)."""
        k = self.config.max_width
        starts = ent_idx // k
        ends = jnp.minimum(starts + ent_idx % k, words.shape[1] - 1)
        return self.span_rep_layer.span_rep_layer.span_vectors(words, text_lengths, starts, ends)

    def adjacency(self, x, ent_mask):
        """[B,E,E] adjacency probabilities, or None (relations_layer "none")."""
        if self.relations_rep_layer is None:
            return None
        return self.relations_rep_layer.relation_rep_layer(x, ent_mask)

    def pair_logits(self, heads, tails, rel):
        """Relation logits of (head, tail) vectors [B,*,D] x [B,*,D] (broadcast against each
        other) and relation prompts [B,R,D] -> [B,*,R]."""
        d = heads.shape[-1]
        lin, out = self.pair_rep_layer.in_proj, self.pair_rep_layer.out_proj
        dt = lin.dtype or heads.dtype
        w1 = lin.kernel[...].astype(dt)
        h = heads.astype(dt) @ w1[:d] + lin.bias[...].astype(dt)
        t = tails.astype(dt) @ w1[d:]
        hidden = self.pair_rep_layer.dropout(jax.nn.relu(h + t))             # [B,*,4D]
        q = jnp.einsum("BRD,FD->BRF", rel.astype(dt), out.kernel[...].astype(dt))
        q0 = rel.astype(dt) @ out.bias[...].astype(dt)                        # [B,R]
        flat = hidden.reshape(hidden.shape[0], -1, hidden.shape[-1])
        logits = jnp.einsum("BNF,BRF->BNR", flat, q) + q0[:, None]
        return logits.reshape(*hidden.shape[:-1], rel.shape[1])

    def relation_scores(self, words, text_lengths, rel, ent_idx, ent_mask):
        """(adjacency [B,E,E] or None, relation logits of every (head i, tail j) pair
        [B,E,E,R]) for the entities ent_idx [B,E] (flat span indices; ent_mask [B,E])."""
        x = self.entity_vectors(words, text_lengths, ent_idx)
        return self.adjacency(x, ent_mask), self.pair_logits(x[:, :, None], x[:, None], rel)

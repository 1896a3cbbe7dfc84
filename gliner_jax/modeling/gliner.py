"""The uni-encoder span GLiNER (markerV0), module names as the reference's state dict:

    token_rep_layer.bert_layer.model.*   encoder          token_rep_layer.projection  (He != D)
    rnn.lstm.*                           BiLSTM           span_rep_layer.span_rep_layer.*
    prompt_rep_layer.{0,3}.*             type MLP
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from gliner_jax.config import GlinerConfig
from gliner_jax.encoders import build_encoder
from gliner_jax.layers import Precision, torch_dense
from gliner_jax.modeling.lstm import BiLSTM
from gliner_jax.modeling.span_rep import MLP, SpanMarkerV0


class BertLayer(nnx.Module):
    def __init__(self, model: nnx.Module):
        self.model = model


class TokenRepLayer(nnx.Module):
    """Encoder plus the optional projection to the head width D."""

    def __init__(self, cfg: GlinerConfig, prec: Precision, *, rngs: nnx.Rngs):
        self.bert_layer = BertLayer(build_encoder(cfg.encoder, prec, rngs=rngs,
                                                  add_pooling_layer=True))
        if cfg.has_projection:
            self.projection = torch_dense(cfg.encoder.hidden_size, cfg.hidden_size,
                                          ("embed", "embed"), prec, rngs)

    def __call__(self, input_ids, attention_mask, encoder_tables=None):
        kw = {} if encoder_tables is None else {"rel_tables": encoder_tables}
        h = self.bert_layer.model(input_ids, attention_mask, **kw)
        if hasattr(self, "projection"):
            h = self.projection(h)
        return h


class Rnn(nnx.Module):
    def __init__(self, d: int, prec: Precision, *, rngs: nnx.Rngs):
        self.lstm = BiLSTM(d, d // 2, prec, rngs=rngs)


class SpanRepLayer(nnx.Module):
    def __init__(self, cfg: GlinerConfig, prec: Precision, *, rngs: nnx.Rngs):
        self.span_rep_layer = SpanMarkerV0(cfg.hidden_size, cfg.max_width, cfg.dropout, prec,
                                           rngs=rngs)


def gather_prompts(h, input_ids, attention_mask, class_token_index: int, num_classes: int,
                   embed_ent_token: bool = True):
    """Hidden state at each <<ENT>> token, in order: [B,C,D] and its mask [B,C]."""
    is_cls = (input_ids == class_token_index) & (attention_mask > 0)
    rank = jnp.cumsum(is_cls, axis=1) - 1
    slot = jnp.where(is_cls, rank, num_classes)                          # overflow -> dropped
    src = h if embed_ent_token else jnp.pad(h[:, 1:], ((0, 0), (0, 1), (0, 0)))
    b = jnp.arange(h.shape[0])[:, None]
    out = jnp.zeros((h.shape[0], num_classes + 1, h.shape[-1]), h.dtype).at[b, slot].set(src)
    count = is_cls.sum(axis=1)
    return out[:, :num_classes], jnp.arange(num_classes)[None] < count[:, None]


def gather_words(h, words_mask, num_words: int):
    """First sub-token of each word (words_mask holds 1-based word indices): [B,L,D]."""
    slot = jnp.where(words_mask > 0, words_mask - 1, num_words)
    b = jnp.arange(h.shape[0])[:, None]
    out = jnp.zeros((h.shape[0], num_words + 1, h.shape[-1]), h.dtype).at[b, slot].set(h)
    return out[:, :num_words]


class GlinerModel(nnx.Module):
    def __init__(self, cfg: GlinerConfig, prec: Precision = Precision(), *, rngs: nnx.Rngs):
        cfg.validate()
        if cfg.labels_encoder:
            raise ValueError("a config with labels_encoder is a bi-encoder: build "
                             "gliner_jax.modeling.biencoder.BiEncoderSpanModel")
        if cfg.class_token_index < 0:
            raise ValueError("GlinerModel needs a resolved class_token_index (id of <<ENT>>)")
        self.config = cfg
        d = cfg.hidden_size
        self.token_rep_layer = TokenRepLayer(cfg, prec, rngs=rngs)
        self.rnn = Rnn(d, prec, rngs=rngs)
        self.span_rep_layer = SpanRepLayer(cfg, prec, rngs=rngs)
        self.prompt_rep_layer = MLP(d, d, cfg.dropout, prec, rngs=rngs)

    def encoder_tables(self):
        """Input-independent encoder tensors that inference computes once and passes to every
        call (DeBERTa: the relative-position rows through each layer's projections), or None."""
        enc = self.token_rep_layer.bert_layer.model
        inner = getattr(enc, "encoder", None)  # ModernBERT has none: its RoPE tables are constants
        return inner.relative_tables() if hasattr(inner, "relative_tables") else None

    def __call__(self, input_ids, attention_mask, words_mask, text_lengths, *, num_words: int,
                 num_classes: int, encoder_tables=None):
        """Span x type logits [B, L=num_words, K, C=num_classes] and the prompt mask [B, C].

        Logits of spans past a text's end (s + k >= n) and of padded types are not meaningful;
        `span_mask` gives the valid spans. encoder_tables: `self.encoder_tables()` of these
        weights (inference), or None to compute them in the call (training).
        """
        cfg = self.config
        h = self.token_rep_layer(input_ids, attention_mask, encoder_tables)
        prompts, prompt_mask = gather_prompts(h, input_ids, attention_mask,
                                              cfg.class_token_index, num_classes,
                                              cfg.embed_ent_token)
        words = gather_words(h, words_mask, num_words)
        words = self.rnn.lstm(words, text_lengths)
        prompts = self.prompt_rep_layer(prompts)
        logits = self.span_rep_layer.span_rep_layer(words, prompts)
        return logits, prompt_mask


def span_mask(text_lengths, num_words: int, max_width: int):
    """[B,L,K] True where the span (s, s+k) ends inside the text."""
    s = jnp.arange(num_words)[:, None]
    k = jnp.arange(max_width)[None]
    return (s + k)[None] < jnp.asarray(text_lengths)[:, None, None]

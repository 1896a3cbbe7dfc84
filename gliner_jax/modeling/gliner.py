"""The uni-encoder GLiNER families, module names as the reference's state dict:

    token_rep_layer.bert_layer.model.*   encoder          token_rep_layer.projection  (He != D)
    rnn.lstm.*                           BiLSTM
    span:  span_rep_layer.span_rep_layer.* (the span mode)   prompt_rep_layer.{0,3}.* (type MLP)
    token: scorer.{proj_token, proj_label, out_mlp.{0,3}}
Which family a config builds is decided in `families.py` (one table).
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from gliner_jax.config import GlinerConfig
from gliner_jax.encoders import build_encoder
from gliner_jax.layers import Precision, torch_dense
from gliner_jax.modeling.lstm import BiLSTM
from gliner_jax.modeling.span_rep import MLP
from gliner_jax.modeling.token_scorer import Scorer


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


class UniEncoder(nnx.Module):
    """What every uni-encoder family shares: the encoder (+ projection), the <<ENT>> prompt
    vectors, the first-sub-token word vectors and the BiLSTM."""

    def __init__(self, cfg: GlinerConfig, prec: Precision, *, rngs: nnx.Rngs):
        cfg.validate()
        if cfg.labels_encoder:
            raise ValueError("a config with labels_encoder is a bi-encoder: build it with "
                             "gliner_jax.modeling.build_model (modeling/biencoder.py)")
        if cfg.class_token_index < 0:
            raise ValueError("a GLiNER model needs a resolved class_token_index (id of <<ENT>>)")
        self.config = cfg
        self.token_rep_layer = TokenRepLayer(cfg, prec, rngs=rngs)
        self.rnn = Rnn(cfg.hidden_size, prec, rngs=rngs)

    def encoder_tables(self):
        """Input-independent encoder tensors that inference computes once and passes to every
        call (DeBERTa: the relative-position rows through each layer's projections), or None."""
        enc = self.token_rep_layer.bert_layer.model
        inner = getattr(enc, "encoder", None)  # ModernBERT has none: its RoPE tables are constants
        return inner.relative_tables() if hasattr(inner, "relative_tables") else None

    def words_and_prompts(self, input_ids, attention_mask, words_mask, text_lengths, *,
                          num_words: int, num_classes: int, encoder_tables=None):
        """(words [B,W,D] after the BiLSTM, raw prompt vectors [B,C,D], prompt mask [B,C])."""
        h = self.token_rep_layer(input_ids, attention_mask, encoder_tables)
        return self.words_and_prompts_from(h, input_ids, attention_mask, words_mask,
                                           text_lengths, num_words=num_words,
                                           num_classes=num_classes)

    def words_and_prompts_from(self, h, input_ids, attention_mask, words_mask, text_lengths, *,
                               num_words: int, num_classes: int):
        """words_and_prompts from the encoder's hidden states h [B,T,D]."""
        cfg = self.config
        prompts, prompt_mask = gather_prompts(h, input_ids, attention_mask,
                                              cfg.class_token_index, num_classes,
                                              cfg.embed_ent_token)
        words = gather_words(h, words_mask, num_words)
        words = self.rnn.lstm(words, text_lengths)
        return words, prompts, prompt_mask


class SpanRepLayer(nnx.Module):
    """torch `span_rep_layer.span_rep_layer`: the span mode's module (families.SPAN_MODES)."""

    def __init__(self, mode_cls, cfg: GlinerConfig, prec: Precision, *, rngs: nnx.Rngs):
        self.span_rep_layer = mode_cls(cfg.hidden_size, cfg.max_width, cfg.dropout, prec,
                                       rngs=rngs)


class SpanModel(UniEncoder):
    """UniEncoderSpanModel: span x type logits [B, W, K, C] through the config's span mode."""

    def __init__(self, cfg: GlinerConfig, prec: Precision = Precision(), *, rngs: nnx.Rngs):
        from gliner_jax.modeling.families import span_mode

        super().__init__(cfg, prec, rngs=rngs)
        self.span_rep_layer = SpanRepLayer(span_mode(cfg.span_mode).module, cfg, prec,
                                           rngs=rngs)
        self.prompt_rep_layer = MLP(cfg.hidden_size, cfg.hidden_size, cfg.dropout, prec,
                                    rngs=rngs)

    def __call__(self, input_ids, attention_mask, words_mask, text_lengths, *, num_words: int,
                 num_classes: int, encoder_tables=None):
        """Span x type logits [B, L=num_words, K, C=num_classes] and the prompt mask [B, C].

        Logits of spans past a text's end (s + k >= n) and of padded types are not meaningful;
        `span_mask` gives the valid spans. encoder_tables: `self.encoder_tables()` of these
        weights (inference), or None to compute them in the call (training).
        """
        words, prompts, prompt_mask = self.words_and_prompts(
            input_ids, attention_mask, words_mask, text_lengths, num_words=num_words,
            num_classes=num_classes, encoder_tables=encoder_tables)
        prompts = self.prompt_rep_layer(prompts)
        logits = self.span_rep_layer.span_rep_layer(words, prompts, text_lengths)
        return logits, prompt_mask


GlinerModel = SpanModel  # the name before the family table (code written against it keeps working)


class TokenModel(UniEncoder):
    """UniEncoderTokenModel (span_mode token_level): per word and type, (start, end, inside)
    logits [B, W, C, 3]. No prompt MLP: the scorer projects the raw prompt vectors."""

    def __init__(self, cfg: GlinerConfig, prec: Precision = Precision(), *, rngs: nnx.Rngs):
        super().__init__(cfg, prec, rngs=rngs)
        self.scorer = Scorer(cfg.hidden_size, cfg.dropout, prec, rngs=rngs)

    def __call__(self, input_ids, attention_mask, words_mask, text_lengths, *, num_words: int,
                 num_classes: int, encoder_tables=None):
        words, prompts, prompt_mask = self.words_and_prompts(
            input_ids, attention_mask, words_mask, text_lengths, num_words=num_words,
            num_classes=num_classes, encoder_tables=encoder_tables)
        return self.scorer(words, prompts, text_lengths), prompt_mask


def span_mask(text_lengths, num_words: int, max_width: int):
    """[B,L,K] True where the span (s, s+k) ends inside the text."""
    s = jnp.arange(num_words)[:, None]
    k = jnp.arange(max_width)[None]
    return (s + k)[None] < jnp.asarray(text_lengths)[:, None, None]

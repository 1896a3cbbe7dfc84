"""The bi-encoder GLiNERs (gliner 0.2.29 `BiEncoderSpanModel`, `BiEncoderTokenModel`), module
names as their state dicts:

    token_rep_layer.bert_layer.model.*       text encoder     token_rep_layer.projection
    token_rep_layer.labels_encoder.model.*   labels encoder   token_rep_layer.labels_projection
    rnn.lstm.*         built by the reference when num_rnn_layers > 0 but never called: kept so
                       checkpoints round-trip, unused here too
    span:  span_rep_layer.span_rep_layer.*   markerV0         prompt_rep_layer.{0,3}.*
    token: scorer.{proj_token, proj_label, out_mlp.{0,3}}     (token_scorer.Scorer)

The text goes through its encoder alone (no label prompt). Each label goes through the labels
encoder alone; its vector is the mean of its token states over the attention mask (after
`labels_projection`), as the reference's `BiEncoder.mean_pooling`. Label vectors do not depend
on the text, so inference computes them once (`encode_labels`) and reuses them; so are their
projections through `prompt_rep_layer` and markerV0's last layer, or through the token scorer's
label side (`label_terms`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gliner_jax.config import ConfigError, GlinerConfig
from gliner_jax.encoders import build_encoder
from gliner_jax.layers import Precision, torch_dense
from gliner_jax.modeling.gliner import BertLayer, Rnn, SpanRepLayer, gather_words
from gliner_jax.modeling.span_rep import MLP, SpanMarkerV0, span_kernel
from gliner_jax.modeling.token_scorer import Scorer

# Labels scored per step of the many-label kernel: bounds the [L, F] x [F, chunk] products and
# the folded label terms held at once.
LABEL_CHUNK = 1024
# Elements of the token scorer's [B, L, chunk, 4D] hidden layer per step of its many-label
# kernel (256 MB in float32).
TOKEN_HIDDEN_BUDGET = 1 << 26


def mean_pool(h, mask):
    """gliner BiEncoder.mean_pooling: sum over unmasked tokens / max(count, 1e-9)."""
    m = mask.astype(h.dtype)[..., None]
    return (h * m).sum(axis=1) / jnp.maximum(m.sum(axis=1), 1e-9)


class BiEncoderTokenRep(nnx.Module):
    """gliner `BiEncoder`: text encoder (+ projection) and labels encoder (+ projection)."""

    def __init__(self, cfg: GlinerConfig, prec: Precision, *, rngs: nnx.Rngs):
        lab = cfg.labels_encoder_config
        self.bert_layer = BertLayer(build_encoder(cfg.encoder, prec, rngs=rngs,
                                                  add_pooling_layer=True))
        if cfg.encoder.hidden_size != cfg.hidden_size:
            self.projection = torch_dense(cfg.encoder.hidden_size, cfg.hidden_size,
                                          ("embed", "embed"), prec, rngs)
        self.labels_encoder = BertLayer(build_encoder(lab, prec, rngs=rngs,
                                                      add_pooling_layer=True))
        if lab.hidden_size != cfg.hidden_size:
            self.labels_projection = torch_dense(lab.hidden_size, cfg.hidden_size,
                                                 ("embed", "embed"), prec, rngs)

    def encode_text(self, input_ids, attention_mask, encoder_tables=None):
        kw = {} if encoder_tables is None else {"rel_tables": encoder_tables}
        h = self.bert_layer.model(input_ids, attention_mask, **kw)
        return self.projection(h) if hasattr(self, "projection") else h

    def encode_labels(self, input_ids, attention_mask):
        """Label token ids [C, T] -> label vectors [C, D]."""
        h = self.labels_encoder.model(input_ids, attention_mask)
        if hasattr(self, "labels_projection"):
            h = self.labels_projection(h)
        return mean_pool(h, attention_mask)


class BiEncoder(nnx.Module):
    """What the bi-encoder families share (gliner `BaseBiEncoderModel`): the two encoders, the
    unused BiLSTM, label vectors, first-sub-token word vectors, and the label layout of a row."""

    def __init__(self, cfg: GlinerConfig, prec: Precision, *, rngs: nnx.Rngs):
        cfg.validate()
        if not cfg.labels_encoder:
            raise ValueError(f"{type(self).__name__} needs a config with labels_encoder")
        self.config = cfg
        self.token_rep_layer = BiEncoderTokenRep(cfg, prec, rngs=rngs)
        if cfg.num_rnn_layers:
            self.rnn = Rnn(cfg.hidden_size, prec, rngs=rngs)

    def encoder_tables(self):
        """Input-independent text-encoder tensors computed once for inference (DeBERTa's
        projected relative rows), or None."""
        enc = self.token_rep_layer.bert_layer.model
        return enc.encoder.relative_tables() if hasattr(
            getattr(enc, "encoder", None), "relative_tables") else None

    def encode_labels(self, labels_input_ids, labels_attention_mask):
        """Label vectors [C, D]: what the reference's `encode_labels` returns."""
        return self.token_rep_layer.encode_labels(labels_input_ids, labels_attention_mask)

    def words(self, input_ids, attention_mask, words_mask, *, num_words: int,
              encoder_tables=None):
        """Word vectors [B, L, D]: first sub-token of each word (no BiLSTM: the reference's
        bi-encoder never calls it)."""
        h = self.token_rep_layer.encode_text(input_ids, attention_mask, encoder_tables)
        return gather_words(h, words_mask, num_words)

    @staticmethod
    def row_labels(label_vectors, label_mask, words):
        """Label vectors per row [B, C, D] in the words' dtype: [C, D] is shared by every row;
        padded labels (label_mask [B, C] false) are zeroed, as the reference's
        `get_representations` does."""
        if label_vectors.ndim == 2:
            label_vectors = jnp.broadcast_to(label_vectors[None],
                                             (words.shape[0],) + label_vectors.shape)
        label_vectors = label_vectors.astype(words.dtype)
        if label_mask is not None:
            label_vectors = label_vectors * label_mask[..., None].astype(words.dtype)
        return label_vectors


class BiEncoderSpanModel(BiEncoder):
    def __init__(self, cfg: GlinerConfig, prec: Precision = Precision(), *, rngs: nnx.Rngs):
        super().__init__(cfg, prec, rngs=rngs)
        if cfg.span_mode != "markerV0":  # the label-cache kernels below fold markerV0's layers
            raise ConfigError(f"bi-encoder span_mode {cfg.span_mode!r} is not supported "
                              "(only 'markerV0')")
        d = cfg.hidden_size
        self.span_rep_layer = SpanRepLayer(SpanMarkerV0, cfg, prec, rngs=rngs)
        self.prompt_rep_layer = MLP(d, d, cfg.dropout, prec, rngs=rngs)

    def __call__(self, input_ids, attention_mask, words_mask, text_lengths, label_vectors,
                 label_mask=None, *, num_words: int, encoder_tables=None):
        """Span x label logits [B, L, K, C].

        label_vectors: [C, D] shared by every row or [B, C, D] per row (from `encode_labels`);
        label_mask [B, C]: valid labels per row (reference: prompts_embedding_mask; padded labels
        are zeroed before `prompt_rep_layer`, as it does). text_lengths: as the uni-encoder's
        (markerV0 reads no per-text context from it).
        """
        words = self.words(input_ids, attention_mask, words_mask, num_words=num_words,
                           encoder_tables=encoder_tables)
        prompts = self.prompt_rep_layer(self.row_labels(label_vectors, label_mask, words))
        return self.span_rep_layer.span_rep_layer(words, prompts, text_lengths)

    # -- inference with label vectors computed once --------------------------------------

    def label_terms(self, label_vectors):
        """Label vectors [C, D] -> what the span kernel reads of them, computed once per label
        set: prompts P = prompt_rep_layer(v) [C, D], and markerV0's last layer folded into them
        (q [C, 4D], q0 [C]). Dropout is off (inference)."""
        prompts = self.prompt_rep_layer(label_vectors)
        q, q0 = self.span_rep_layer.span_rep_layer.type_terms(prompts[None])
        return {"prompts": prompts, "q": q[0], "q0": q0[0]}

    def span_logits_shared(self, words, terms, *, folded: bool, chunk: int = LABEL_CHUNK):
        """Logits [B, L, K, C] of every span against labels shared by all rows.

        folded: score h[s,k] (4D wide) against the folded q (few labels: no per-span D x 4D
        matmul); otherwise project each span to D once and score it against P (many labels:
        4x fewer flops per label). Labels go through in chunks of `chunk` (lax.map), so the
        per-step products stay [L, 4D] x [4D, chunk] whatever C is.
        """
        marker = self.span_rep_layer.span_rep_layer
        K = marker.max_width
        a, e = marker.word_terms(words, None)                             # [B, L, F]
        c = terms["prompts"].shape[0]
        n = -(-c // chunk) if c > chunk else 1
        size = -(-c // n)
        pad = n * size - c

        def chunks(x):
            x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
            return x.reshape((n, size) + x.shape[1:])

        if folded:
            q, q0 = chunks(terms["q"].astype(a.dtype)), chunks(terms["q0"].astype(a.dtype))

            def one(args):
                q_, q0_ = args
                return jax.vmap(lambda a_, e_: span_kernel(a_, e_, q_, q0_, K))(a, e)
            out = jax.lax.map(one, (q, q0))                               # [n, B, L, K, size]
        else:
            spans = marker_spans(marker, a, e)                            # [B, L, K, D]
            p = chunks(terms["prompts"].astype(spans.dtype))
            out = jax.lax.map(lambda p_: jnp.einsum("BLKD,CD->BLKC", spans, p_), p)
        out = jnp.moveaxis(out, 0, -2)                                    # [B, L, K, n, size]
        return out.reshape(out.shape[:3] + (n * size,))[..., :c]


def marker_spans(marker, a, e):
    """markerV0 span vectors [B, L, K, D] from the per-word terms (inference: no dropout):
    out_project's second layer applied to relu(a[s] + e[s+k])."""
    K = marker.max_width
    L = a.shape[1]
    e = jnp.pad(e, ((0, 0), (0, K - 1), (0, 0)))
    h = jnp.stack([jax.nn.relu(a + e[:, k:k + L]) for k in range(K)], axis=2)  # [B, L, K, F]
    return marker.out_project.out_proj(h.astype(a.dtype))


class BiEncoderTokenModel(BiEncoder):
    """gliner `BiEncoderTokenModel` (span_mode token_level): per word and label, (start, end,
    inside) logits [B, W, C, 3] from the token-level scorer (`token_scorer.Scorer`) on the
    label vectors themselves (no prompt MLP, as the uni-encoder token model)."""

    def __init__(self, cfg: GlinerConfig, prec: Precision = Precision(), *, rngs: nnx.Rngs):
        super().__init__(cfg, prec, rngs=rngs)
        self.scorer = Scorer(cfg.hidden_size, cfg.dropout, prec, rngs=rngs)

    def __call__(self, input_ids, attention_mask, words_mask, text_lengths, label_vectors,
                 label_mask=None, *, num_words: int, encoder_tables=None):
        """Word x label logits [B, L, C, 3]; arguments as `BiEncoderSpanModel.__call__`."""
        words = self.words(input_ids, attention_mask, words_mask, num_words=num_words,
                           encoder_tables=encoder_tables)
        return self.scorer(words, self.row_labels(label_vectors, label_mask, words))

    # -- inference with label vectors computed once --------------------------------------

    def label_terms(self, label_vectors):
        """Label vectors [C, D] -> the scorer's per-label terms, once per label set."""
        lw, l2 = self.scorer.label_terms(label_vectors)
        return {"lw": lw, "l2": l2}

    def token_logits_shared(self, words, terms, *, chunk: int | None = None):
        """Logits [B, L, C, 3] of every word against labels shared by all rows, the labels in
        chunks (lax.map) of `chunk`, default as many as keep the [B, L, chunk, 4D] hidden layer
        within TOKEN_HIDDEN_BUDGET elements."""
        lw, l2 = terms["lw"].astype(words.dtype), terms["l2"].astype(words.dtype)
        c = lw.shape[0]
        if chunk is None:
            chunk = max(1, TOKEN_HIDDEN_BUDGET // (words.shape[0] * words.shape[1] * lw.shape[1]))
        n = -(-c // chunk) if c > chunk else 1
        size = -(-c // n)

        def chunks(x):
            x = jnp.pad(x, ((0, n * size - c), (0, 0)))
            return x.reshape(n, size, x.shape[-1])

        out = jax.lax.map(lambda a: self.scorer.score(words, *a), (chunks(lw), chunks(l2)))
        out = jnp.moveaxis(out, 0, 2)                                     # [B, L, n, size, 3]
        return out.reshape(out.shape[:2] + (n * size, 3))[:, :, :c]

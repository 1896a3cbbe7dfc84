"""Marker span modes (marker, markerV0, markerV1, markerV2) and the all-spans scoring kernel.

Every mode here scores a span (s, k) (start word s, width k+1 <= K) against a type vector q_c as
    logit[s,k,c] = out_project(relu([S[s]; E[s+k]; X])) . q_c
with S = project_start(w), E = project_end(w) per word and X an optional per-text context vector
(markerV1: the mean word, markerV2: project_context of the last word). out_project's first layer
acts on a concatenation, so it splits into per-word (and per-text) projections added per span;
its last layer is linear, so it folds into the type vectors. For markerV0/V1/V2 (out_project an
MLP 2D|3D -> 4D -> D):
    h[s,k]       = relu(relu(S[s]) @ W1s + relu(E[s+k]) @ W1e + relu(X) @ W1x + b1)    # [L,K,4D]
    logit[s,k,c] = h[s,k] . (W2^T q_c) + b2 . q_c
and for `marker` (out_project one Linear) the span term is purely additive:
    logit[s,k,c] = relu(S[s]) @ Ws q_c + relu(E[s+k]) @ We q_c + b . q_c
No per-span D x 4D matmul is left in any of them. Dropout sits on h (elementwise), so training
keeps the form.

markerV1 and markerV2 read a per-text context from the reference's padded word axis, whose
length is the longest text of the *batch* (`mean(h, dim=1)`; `h[:, L-1]`): a text's scores depend
on the other texts of its batch there. We reproduce that with L = max(text_lengths) of the call.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gliner_jax.layers import Precision, torch_dense


class MLP(nnx.Module):
    """gliner's create_projection_layer: Linear(in, 4*out) -> ReLU -> Dropout -> Linear(4*out, out)
    (`hidden` overrides 4*out: SpanMarker's Linear(D, 2D) stacks). torch keys `.0` / `.3` (see
    weights.MODULE_RENAMES)."""

    def __init__(self, d_in: int, d_out: int, dropout: float, prec: Precision, *,
                 rngs: nnx.Rngs, hidden: int | None = None):
        hidden = hidden or 4 * d_out
        self.in_proj = torch_dense(d_in, hidden, ("embed", "mlp"), prec, rngs)
        self.out_proj = torch_dense(hidden, d_out, ("mlp", "embed"), prec, rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def hidden(self, x):
        return self.dropout(jax.nn.relu(self.in_proj(x)))

    def __call__(self, x):
        return self.out_proj(self.hidden(x))


def batch_length(text_lengths, num_words: int):
    """The reference's padded word-axis length L: the longest text of the batch (>= 1)."""
    return jnp.clip(jnp.max(text_lengths), 1, num_words)


class _MarkerMLP(nnx.Module):
    """markerV0 and its context variants: out_project = MLP(n*D -> 4D -> D), factorised."""

    context_name: str | None = None   # attribute of the per-text context MLP (V1, V2)

    def __init__(self, d: int, max_width: int, dropout: float, prec: Precision, *,
                 rngs: nnx.Rngs):
        self.max_width = max_width
        self.project_start = MLP(d, d, dropout, prec, rngs=rngs)
        self.project_end = MLP(d, d, dropout, prec, rngs=rngs)
        if self.context_name:
            setattr(self, self.context_name, MLP(d, d, dropout, prec, rngs=rngs))
        parts = 3 if self.context_name else 2
        self.out_project = MLP(parts * d, d, dropout, prec, rngs=rngs)

    def context(self, words, text_lengths):
        """Per-text context vector X [B,D] before the relu, or None."""
        return None

    def word_terms(self, words, text_lengths):
        """Per-word parts of out_project's first layer: start [B,L,4D] (bias and context
        included), end [B,L,4D]."""
        d = words.shape[-1]
        w1 = self.out_project.in_proj.kernel[...]                          # [nD, 4D]
        dt = self.out_project.in_proj.dtype or words.dtype
        s = jax.nn.relu(self.project_start(words)).astype(dt)
        e = jax.nn.relu(self.project_end(words)).astype(dt)
        a = s @ w1[:d].astype(dt) + self.out_project.in_proj.bias[...].astype(dt)
        x = self.context(words, text_lengths)
        if x is not None:
            a = a + (jax.nn.relu(x).astype(dt) @ w1[2 * d:].astype(dt))[:, None]
        return a, e @ w1[d:2 * d].astype(dt)

    def type_terms(self, prompts):
        """Prompt vectors folded through out_project's last layer: [B,C,4D] and [B,C]."""
        w2 = self.out_project.out_proj.kernel[...]                         # [4D, D]
        b2 = self.out_project.out_proj.bias[...]
        dt = prompts.dtype
        return jnp.einsum("BCD,FD->BCF", prompts, w2.astype(dt)), prompts @ b2.astype(dt)

    def __call__(self, words, prompts, text_lengths):
        """words [B,L,D] (after the LSTM), prompts [B,C,D] (after MLP_prompt) -> [B,L,K,C]."""
        a, e = self.word_terms(words, text_lengths)
        q, q0 = self.type_terms(prompts)
        q, q0 = q.astype(a.dtype), q0.astype(a.dtype)
        K, drop = self.max_width, self.out_project.dropout
        if drop.deterministic or drop.rate == 0:
            return jax.vmap(lambda a_, e_, q_, q0_: span_kernel(a_, e_, q_, q0_, K))(a, e, q, q0)
        keep = drop(jnp.ones(a.shape[:2] + (K, a.shape[-1]), a.dtype))     # scaled keep mask
        return jax.vmap(lambda a_, e_, q_, q0_, m_: span_kernel(a_, e_, q_, q0_, K, m_))(
            a, e, q, q0, keep)


    def span_vectors(self, words, text_lengths, starts, ends):
        """The reference's span representations out_project(relu([S[s]; E[e]; X])) of the
        given spans only: starts / ends [B,E] word indices (end inclusive) -> [B,E,D]. Relation
        extraction needs the vectors themselves, not their scores."""
        b = jnp.arange(words.shape[0])[:, None]
        parts = [self.project_start(words)[b, starts], self.project_end(words)[b, ends]]
        x = self.context(words, text_lengths)
        if x is not None:
            parts.append(jnp.broadcast_to(x[:, None], parts[0].shape))
        return self.out_project(jax.nn.relu(jnp.concatenate(parts, axis=-1)))


class SpanMarkerV0(_MarkerMLP):
    """span_mode markerV0 (the released GLiNER v2.x models)."""


class SpanMarkerV1(_MarkerMLP):
    """span_mode markerV1: adds the mean word of the batch's padded word axis. The reference
    builds `project_first` but never calls it (its forward uses the raw mean): the parameters
    are kept for the round trip and get zero gradient, as there."""

    context_name = "project_first"

    def context(self, words, text_lengths):
        n = batch_length(text_lengths, words.shape[1])
        return words.sum(axis=1) / n.astype(words.dtype)     # padded words are exactly 0


class SpanMarkerV2(_MarkerMLP):
    """span_mode markerV2: adds project_context of the batch's last word position."""

    context_name = "project_context"

    def context(self, words, text_lengths):
        last = batch_length(text_lengths, words.shape[1]) - 1
        return self.project_context(jax.lax.dynamic_index_in_dim(words, last, 1, False))


class SpanMarker(nnx.Module):
    """span_mode marker (NuNER Zero): project_start/end are Linear(D,2D)-ReLU-Dropout-Linear(2D,D)
    and out_project one Linear(2D, D), so the logit is a sum of a start and an end term."""

    def __init__(self, d: int, max_width: int, dropout: float, prec: Precision, *,
                 rngs: nnx.Rngs):
        self.max_width = max_width
        self.project_start = MLP(d, d, dropout, prec, rngs=rngs, hidden=2 * d)
        self.project_end = MLP(d, d, dropout, prec, rngs=rngs, hidden=2 * d)
        self.out_project = torch_dense(2 * d, d, ("mlp", "embed"), prec, rngs)

    def __call__(self, words, prompts, text_lengths):
        d = words.shape[-1]
        w = self.out_project.kernel[...]                                    # [2D, D]
        dt = self.out_project.dtype or words.dtype
        p = prompts.astype(dt)
        s = jax.nn.relu(self.project_start(words)).astype(dt)
        e = jax.nn.relu(self.project_end(words)).astype(dt)
        qs = jnp.einsum("BCD,FD->BCF", p, w[:d].astype(dt))                 # start half . q
        qe = jnp.einsum("BCD,FD->BCF", p, w[d:].astype(dt))
        a = jnp.einsum("BLF,BCF->BLC", s, qs) + (p @ self.out_project.bias[...].astype(dt))[
            :, None]
        b = jnp.einsum("BLF,BCF->BLC", e, qe)
        L, K = a.shape[1], self.max_width
        b = jnp.pad(b, ((0, 0), (0, K - 1), (0, 0)))
        return jnp.stack([a + b[:, k:k + L] for k in range(K)], axis=2)


    def span_vectors(self, words, text_lengths, starts, ends):
        """out_project(relu([S[s]; E[e]])) of the given spans: [B,E] indices -> [B,E,D]."""
        b = jnp.arange(words.shape[0])[:, None]
        cat = jnp.concatenate([self.project_start(words)[b, starts],
                               self.project_end(words)[b, ends]], axis=-1)
        return self.out_project(jax.nn.relu(cat))


def span_kernel(a, e, q, q0, max_width: int, keep=None):
    """Scores every span of one text against every type.

    a [L,F] start terms (bias included), e [L,F] end terms, q [C,F] folded types, q0 [C];
    keep: optional dropout mask [L,K,F]. Returns [L,K,C]. Spans running past the last word read
    a zero end row; their scores are garbage the caller masks (the reference remaps them to the
    span (0,0), equally masked).
    """
    L = a.shape[0]
    e = jnp.pad(e, ((0, max_width - 1), (0, 0)))
    # one [L,F] x [F,C] product per width: never materialises all [L,K,F] spans at once
    # (measured ~1.7x faster than one einsum over a stacked [L,K,F] on CPU)
    out = []
    for k in range(max_width):
        h = jax.nn.relu(a + e[k:k + L])
        if keep is not None:
            h = h * keep[:, k]
        out.append(h @ q.T)
    return jnp.stack(out, axis=1) + q0

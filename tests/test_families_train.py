"""Training parity of every span mode and the token-level model with gliner 0.2.29, float64,
dropout off.

Whole model (loss and the gradient of every parameter, the same pre-sampled types on both sides,
through our one train-step loss `train.step.batch_loss` on a bucketed batch): the token-level
model and two span modes. The encoder and the BiLSTM are shared by every mode, so for each span
mode the head alone is compared too: from the same word and prompt vectors, the span loss and
its gradients with respect to the words, the prompts and every head parameter (that compiles
in seconds, where the whole model takes a minute per mode).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from reference_models import cached_reference_gliner, jax_loss_and_grads, reference_loss_and_grads

from gliner_jax.convert import load_gliner
from gliner_jax.layers import Precision
from gliner_jax.modeling import SPAN_MODES
from gliner_jax.processing import Processor
from gliner_jax.weights import export_state
from train.config import DataConfig, LossConfig
from train.data import Batcher
from train.step import span_loss

TINY = dict(hidden_size=16, enc_hidden=32, num_layers=1, heads=2, max_width=4,
            weight_scale=1.0, seed=11)
EXAMPLES = [
    {"tokenized_text": "John Smith works at Google in Paris , said Alice .".split(),
     "ner": [[0, 1, "person"], [4, 4, "organization"], [6, 6, "location"], [9, 9, "person"]]},
    {"tokenized_text": "Barack Obama was born in Hawaii".split(),
     "ner": [[0, 1, "person"], [5, 5, "location"], [0, 5, "event"]]},   # wider than K = 4
    {"tokenized_text": ["Berlin"], "ner": [[0, 0, "city"], [0, 0, "location"]]},
    {"tokenized_text": "nothing to see here".split(), "ner": []},
]
TYPES = [["location", "person", "organization", "date"], ["event", "person", "location"],
         ["city", "location", "person"], [""]]
MODES = [*SPAN_MODES, "token_level"]


def _reference(ref_model, cfg: LossConfig):
    collator = ref_model._create_data_collator()
    tb = {k: v for k, v in collator(EXAMPLES, entity_types=TYPES).items()
          if isinstance(v, torch.Tensor)}
    tb["labels"] = tb["labels"].double()
    return reference_loss_and_grads(ref_model, tb, cfg)


def _ours(saved, cfg: LossConfig):
    with jax.enable_x64(True):
        model, tok = load_gliner(saved, Precision(param_dtype=jnp.float64))
        processor = Processor.from_config(tok, model.config.class_token_index, model.config)
        arrays, _ = Batcher(processor, DataConfig(batch_size=len(EXAMPLES), max_types=4), 1)(
            EXAMPLES, TYPES)
        batch = {k: v[0] for k, v in arrays.items()}
        return jax_loss_and_grads(model, batch, cfg)


@pytest.mark.parametrize("mode", ["token_level", "markerV2", "conv_share"])
def test_loss_and_gradients_match_reference_float64(mode):
    ref_model, saved = cached_reference_gliner(**TINY, gliner_overrides={"span_mode": mode})
    cfg = LossConfig(alpha=0.75, gamma=2.0, label_smoothing=0.1, reduction="mean",
                     prob_margin=0.05)
    want_loss, want = _reference(ref_model, cfg)
    got_loss, got = _ours(saved, cfg)
    assert abs(got_loss - want_loss) <= 1e-12 * abs(want_loss), (got_loss, want_loss)
    assert sorted(got) == sorted(want)
    scale = max(np.linalg.norm(g) for g in want.values())
    for k, g in want.items():
        # relative per parameter; parameters the reference never uses (markerV1's
        # project_first) have zero gradient on both sides
        err = np.linalg.norm(got[k] - g)
        assert err <= 1e-9 * max(np.linalg.norm(g), 1e-6 * scale), (k, err, np.linalg.norm(g))


def _head_inputs(d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = np.array([7, 3, 1])
    # W is the longest text, as in the reference's forward (markerV1/V2 read that axis)
    b, w, c, k = len(lengths), int(lengths.max()), 4, TINY["max_width"]
    words = rng.normal(0, 1, (b, w, d)) * (np.arange(w)[None, :, None] < lengths[:, None, None])
    prompts = rng.normal(0, 1, (b, c, d))
    prompt_mask = np.arange(c)[None] < np.array([4, 2, 3])[:, None]
    s_, k_ = np.arange(w)[:, None], np.arange(k)[None]
    span_mask = (s_ + k_)[None] < lengths[:, None, None]
    labels = (rng.random((b, w, k, c)) < 0.2) * span_mask[..., None]
    return words, prompts, lengths, prompt_mask, span_mask, labels.astype(np.float64)


@pytest.mark.parametrize("mode", list(SPAN_MODES))
def test_span_head_loss_and_gradients_match_reference_float64(mode):
    ref_model, saved = cached_reference_gliner(**TINY, gliner_overrides={"span_mode": mode})
    cfg = LossConfig(alpha=0.75, gamma=2.0, label_smoothing=0.1, reduction="mean")
    d = TINY["hidden_size"]
    words, prompts, lengths, prompt_mask, span_mask, labels = _head_inputs(d)
    b, w, k, _ = labels.shape
    # the reference: span_idx as its processor builds it, remapped by span_mask in forward
    starts = np.repeat(np.arange(w), k)
    idx = np.stack([starts, starts + np.tile(np.arange(k), w)], -1)[None].repeat(b, 0)
    idx = idx * span_mask.reshape(b, -1, 1)
    ref = ref_model.model.double().eval()
    ref.zero_grad()
    tw = torch.tensor(words, requires_grad=True)
    tp = torch.tensor(prompts, requires_grad=True)
    reps = ref.span_rep_layer(tw, torch.tensor(idx))
    scores = torch.einsum("BLKD,BCD->BLKC", reps, ref.prompt_rep_layer(tp))
    want = ref.loss(scores, torch.tensor(labels), torch.tensor(prompt_mask),
                    torch.tensor(span_mask), alpha=cfg.alpha, gamma=cfg.gamma,
                    label_smoothing=cfg.label_smoothing, reduction=cfg.reduction)
    want.backward()
    want_grads = {n: p.grad.numpy().copy() for n, p in ref.named_parameters()
                  if n.startswith(("span_rep_layer.", "prompt_rep_layer.")) and p.grad is not None}
    ref.float()
    with jax.enable_x64(True):
        model, _ = load_gliner(saved, Precision(param_dtype=jnp.float64))
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)

        def loss(params, words, prompts):
            m = nnx.merge(graphdef, params, rest)
            logits = m.span_rep_layer.span_rep_layer(words, m.prompt_rep_layer(prompts),
                                                     jnp.asarray(lengths))
            return span_loss(logits, jnp.asarray(labels), jnp.asarray(prompt_mask),
                             jnp.asarray(span_mask), cfg)

        got, (gp, gw, gq) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(
            params, jnp.asarray(words), jnp.asarray(prompts))
        named = export_state(nnx.merge(graphdef, gp, rest))
    assert abs(float(got) - want.item()) <= 1e-12 * abs(want.item())
    for name, g, t in (("words", gw, tw), ("prompts", gq, tp)):
        np.testing.assert_allclose(np.asarray(g), t.grad.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=name)
    scale = max(np.linalg.norm(g) for g in want_grads.values())
    for n, g in want_grads.items():
        err = np.linalg.norm(named[n] - g)
        assert err <= 1e-9 * max(np.linalg.norm(g), 1e-6 * scale), (n, err, np.linalg.norm(g))
    # the head parameters the reference never touches get no gradient here either
    unused = {n for n in named if n.startswith("span_rep_layer.")} - set(want_grads)
    assert all(not np.any(named[n]) for n in unused), unused

"""Training parity with the reference (gliner 0.2.29): the span loss formula, and loss + gradients
of the whole model on one collated batch.

float64 (jax x64, torch .double()), dropout off, the same pre-sampled types on both sides: the
loss agrees to 1e-12 relative, every parameter's gradient to 1e-9 relative (Frobenius norm).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from gliner.data_processing.collator import SpanDataCollator
from reference_models import cached_reference_gliner

from gliner_jax.convert import load_gliner
from gliner_jax.layers import Precision
from gliner_jax.processing import Processor
from gliner_jax.weights import export_state
from train.config import DataConfig, LossConfig
from train.data import Batcher
from train.step import batch_loss, span_loss

REF = dict(backbone="deberta", hidden_size=48, enc_hidden=64, weight_scale=1.0, seed=5)

EXAMPLES = [
    {"tokenized_text": "John Smith works at Google in Paris , said Alice .".split(),
     "ner": [[0, 1, "person"], [4, 4, "organization"], [6, 6, "location"], [9, 9, "person"]]},
    {"tokenized_text": "Barack Obama was born in Hawaii".split(),
     "ner": [[0, 1, "person"], [5, 5, "location"], [0, 5, "event"]]},
    {"tokenized_text": ["Berlin"], "ner": [[0, 0, "city"], [0, 0, "location"]]},  # multi-label
    {"tokenized_text": ("the river of the mountain city Zürich and 東京 flows " * 3).split(),
     "ner": [[6, 6, "city"], [0, 19, "event"], [27, 28, "event"]]},  # one span wider than K
    {"tokenized_text": "nothing to see here".split(), "ner": []},  # all negative
]
# pre-sampled types (the reference draws them with python `random`), negatives included
TYPES = [["location", "person", "organization", "date"], ["event", "person", "location"],
         ["city", "location", "person"], ["city", "event", "company", "river", "person"],
         [""]]  # the reference's single empty type for an example without entities


@pytest.fixture(scope="module")
def ref():
    return cached_reference_gliner(**REF)


def _reference(ref_model, loss_cfg: LossConfig):
    """The reference's loss and named gradients (float64, dropout off)."""
    collator = SpanDataCollator(ref_model.config, data_processor=ref_model.data_processor,
                                prepare_labels=True)
    tb = {k: v for k, v in collator(EXAMPLES, entity_types=TYPES).items()
          if isinstance(v, torch.Tensor)}
    tb["labels"] = tb["labels"].double()  # label smoothing in float64, not float32
    model = ref_model.model.double().eval()
    model.zero_grad()
    loss = model(**tb, alpha=loss_cfg.alpha, gamma=loss_cfg.gamma,
                 label_smoothing=loss_cfg.label_smoothing, reduction=loss_cfg.reduction,
                 prob_margin=loss_cfg.prob_margin).loss
    loss.backward()
    grads = {k: p.grad.numpy().copy() for k, p in model.named_parameters()}
    model.float()
    return loss.item(), grads


def _ours(saved, loss_cfg: LossConfig):
    with jax.enable_x64(True):
        model, tok = load_gliner(saved, Precision(param_dtype=jnp.float64))
        processor = Processor.from_config(tok, model.config.class_token_index, model.config)
        batcher = Batcher(processor, DataConfig(batch_size=len(EXAMPLES), max_types=4), 1)
        arrays, _ = batcher(EXAMPLES, TYPES)      # bucketed: padded rows / words / classes
        batch = {k: v[0] for k, v in arrays.items()}
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        params, rest = nnx.to_pure_dict(params), nnx.to_pure_dict(rest)
        fn = jax.jit(jax.value_and_grad(lambda p, b: batch_loss(p, graphdef, rest, b, loss_cfg)))
        loss, grads = fn(params, batch)
        named = export_state(nnx.merge(graphdef, grads, rest))  # torch names and layouts
        assert batch["labels"].shape[-1] > max(map(len, TYPES))  # C was padded
        return float(loss), named


def test_loss_and_gradients_match_reference_float64(ref):
    ref_model, saved = ref
    loss_cfg = LossConfig(alpha=0.75, gamma=2.0, label_smoothing=0.1, reduction="mean",
                          prob_margin=0.05)
    want_loss, want = _reference(ref_model, loss_cfg)
    got_loss, got = _ours(saved, loss_cfg)
    assert abs(got_loss - want_loss) <= 1e-12 * abs(want_loss), (got_loss, want_loss)
    assert sorted(got) == sorted(want)
    errors = {}
    for k, g in want.items():
        norm = np.linalg.norm(g)
        assert norm > 0 or k.endswith(("LayerNorm.bias",)), k  # every parameter gets a gradient
        errors[k] = np.linalg.norm(got[k] - g) / max(norm, 1e-300)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1e-9, (worst, errors[worst])


# ---------------------------------------------------------------------------------------------
# the loss formula alone, table-driven against the reference's UniEncoderSpanModel.loss

LOSS_CASES = {
    "bce_sum": LossConfig(),
    "alpha_sum": LossConfig(alpha=0.75),
    "focal_mean": LossConfig(alpha=0.75, gamma=2.0, reduction="mean"),
    "focal_smooth": LossConfig(alpha=0.25, gamma=1.5, label_smoothing=0.1),
    "gamma_only_mean": LossConfig(gamma=2.0, label_smoothing=0.2, reduction="mean"),
    "prob_margin": LossConfig(alpha=0.5, prob_margin=0.1),
    "width_weight": LossConfig(alpha=0.75, use_span_width_weight=True),
    "global_mask_keep_all": LossConfig(masking="global", negatives=1.0),
}


def _random_scores(seed=0, b=3, w=7, k=4, c=5):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 8, (b, w, k, c))             # wide: reaches the 1e-6 clamps
    labels = (rng.random((b, w, k, c)) < 0.15).astype(np.float64)
    prompt_mask = np.arange(c)[None] < np.array([5, 3, 1])[:, None]
    span_mask = rng.random((b, w, k)) < 0.8
    span_mask[2] = False                                # a padded row
    return logits, labels, prompt_mask, span_mask


@pytest.mark.parametrize("name", sorted(LOSS_CASES))
def test_loss_formula_matches_reference(ref, name):
    cfg = LOSS_CASES[name]
    logits, labels, prompt_mask, span_mask = _random_scores()
    model = ref[0].model
    t_logits = torch.tensor(logits, requires_grad=True)
    want = model.loss(t_logits, torch.tensor(labels), torch.tensor(prompt_mask),
                      torch.tensor(span_mask), **{f.name: getattr(cfg, f.name)
                                                   for f in dataclasses.fields(cfg)})
    want.backward()
    with jax.enable_x64(True):
        got, grad = jax.value_and_grad(span_loss)(
            jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(prompt_mask),
            jnp.asarray(span_mask), cfg, jax.random.key(0))
        got, grad = float(got), np.asarray(grad)
    assert abs(got - float(want)) <= 1e-12 * abs(float(want)), (got, float(want))
    np.testing.assert_allclose(grad, t_logits.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_mean_reduction_of_no_valid_span_is_zero():
    logits, labels, prompt_mask, span_mask = _random_scores()
    got = span_loss(jnp.asarray(logits, jnp.float32), jnp.asarray(labels),
                    jnp.asarray(prompt_mask), jnp.zeros_like(jnp.asarray(span_mask)),
                    LossConfig(reduction="mean"))
    assert float(got) == 0.0


def test_negative_masking_drops_about_the_right_share():
    logits, labels, prompt_mask, span_mask = _random_scores(b=3, w=40, k=8, c=5)
    args = [jnp.asarray(x) for x in (logits, labels, prompt_mask, span_mask)]
    full = span_loss(*args, LossConfig(alpha=0.0))          # negatives only
    half = span_loss(*args, LossConfig(alpha=0.0, masking="global", negatives=0.5),
                     jax.random.key(1))
    assert 0.4 < float(half) / float(full) < 0.6

"""Training parity of every span mode and the token-level model with gliner 0.2.29: loss and the
gradient of every parameter, float64, dropout off, the same pre-sampled types on both sides,
through our one train-step loss (`train.step.batch_loss`) on a bucketed batch.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from reference_models import cached_reference_gliner

from gliner_jax.convert import load_gliner
from gliner_jax.layers import Precision
from gliner_jax.modeling import SPAN_MODES
from gliner_jax.processing import Processor
from gliner_jax.weights import export_state
from train.config import DataConfig, LossConfig
from train.data import Batcher
from train.step import batch_loss

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
    model = ref_model.model.double().eval()
    model.zero_grad()
    loss = model(**tb, alpha=cfg.alpha, gamma=cfg.gamma, label_smoothing=cfg.label_smoothing,
                 reduction=cfg.reduction, prob_margin=cfg.prob_margin).loss
    loss.backward()
    grads = {k: (np.zeros(p.shape) if p.grad is None else p.grad.numpy().copy())
             for k, p in model.named_parameters()}
    model.float()
    return loss.item(), grads


def _ours(saved, cfg: LossConfig):
    with jax.enable_x64(True):
        model, tok = load_gliner(saved, Precision(param_dtype=jnp.float64))
        processor = Processor.from_config(tok, model.config.class_token_index, model.config)
        arrays, _ = Batcher(processor, DataConfig(batch_size=len(EXAMPLES), max_types=4), 1)(
            EXAMPLES, TYPES)
        batch = {k: v[0] for k, v in arrays.items()}
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        params, rest = nnx.to_pure_dict(params), nnx.to_pure_dict(rest)
        fn = jax.jit(jax.value_and_grad(lambda p, b: batch_loss(p, graphdef, rest, b, cfg)))
        loss, grads = fn(params, batch)
        return float(loss), export_state(nnx.merge(graphdef, grads, rest))


@pytest.mark.parametrize("mode", MODES)
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

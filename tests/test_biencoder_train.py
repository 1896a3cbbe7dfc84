"""Bi-encoder training parity with the reference (gliner 0.2.29 BiEncoderSpanModel and
BiEncoderTokenModel, each with its own loss): loss and every parameter's gradient on one
collated batch, float64, dropout off. Parameters the reference never uses (the BiLSTM, the
labels encoder's pooler) get no gradient there and exactly zero here. And the optimizer puts the
labels encoder in its own group.

DeBERTa + BERT: every gradient to 1e-9 relative. ModernBERT + BERT (given transformers' rotary
tables, see test_modernbert.py): transformers rotates q and k in float32 even in a float64
model, so the cotangents flowing back through the rotation are rounded to float32 on both sides;
where those roundings land differs at float64 noise, so the text encoder's parameters below the
last rotation agree to float32 rounding (1e-6), everything else to 1e-9.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from gliner.data_processing.collator import BiEncoderSpanDataCollator, TokenDataCollator
from reference_biencoder import build_reference_biencoder
from reference_models import torch_rope

from gliner_jax.biencoder_io import load_biencoder
from gliner_jax.layers import Precision
from gliner_jax.weights import export_state
from train.config import LossConfig, OptimConfig
from train.step import batch_loss, make_optimizer, param_groups

EXAMPLES = [
    {"tokenized_text": "John Smith works at Google in Paris , said Alice .".split(),
     "ner": [[0, 1, "person"], [4, 4, "organization"], [6, 6, "location"], [9, 9, "person"]]},
    {"tokenized_text": "Barack Obama was born in Hawaii".split(),
     "ner": [[0, 1, "person"], [5, 5, "location"], [0, 5, "event"]]},
    {"tokenized_text": ("the river of the mountain city Zürich and Berlin flows " * 2).split(),
     "ner": [[6, 6, "city"], [8, 8, "city"], [0, 19, "event"]]},
]
TYPES = [["location", "person", "organization", "date"], ["event", "person", "location"],
         ["city", "event", "company", "river"]]
LOSS = LossConfig(alpha=0.75, gamma=2.0, label_smoothing=0.1, reduction="mean")


MODELS = {"modernbert_bert": dict(backbone="modernbert"),
          "deberta_bert": dict(backbone="deberta", hidden_size=48, enc_hidden=48,
                               labels_hidden=48, num_layers=2),
          "modernbert_bert_token": dict(backbone="modernbert", hidden_size=32, labels_hidden=24,
                                        num_layers=2, span_mode="token_level"),
          "deberta_bert_token": dict(backbone="deberta", hidden_size=32, enc_hidden=32,
                                     labels_hidden=32, num_layers=1, span_mode="token_level")}


@pytest.fixture(scope="module", params=sorted(MODELS))
def ref(request, tmp_path_factory):
    return build_reference_biencoder(tmp_path_factory.mktemp(request.param), weight_scale=1.0,
                                     max_width=6, seed=3, **MODELS[request.param])


def test_loss_and_gradients_match_reference_float64(ref):
    ref_model, saved = ref
    collator = ref_model._create_data_collator()  # the family's training collator
    token = ref_model.config.span_mode == "token_level"
    assert isinstance(collator, TokenDataCollator if token else BiEncoderSpanDataCollator)
    tb = {k: v for k, v in collator(EXAMPLES, entity_types=TYPES).items()
          if isinstance(v, torch.Tensor)}
    assert "labels_gather_indices" in tb  # the rows' label sets differ: union + gather
    tb["labels"] = tb["labels"].double()
    model = ref_model.model.double().eval()
    model.zero_grad()
    out = model(**tb, alpha=LOSS.alpha, gamma=LOSS.gamma, label_smoothing=LOSS.label_smoothing,
                reduction=LOSS.reduction)
    out.loss.backward()
    want = {k: p.grad.numpy().copy() for k, p in model.named_parameters() if p.grad is not None}
    unused = {k for k, p in model.named_parameters() if p.grad is None}
    assert any(k.startswith("rnn.") for k in unused)
    want_loss = out.loss.item()
    length = tb["input_ids"].shape[1]
    text_encoder = model.token_rep_layer.bert_layer.model
    tables = torch_rope(ref_model, length)
    model.float()

    batch = {k: jnp.asarray(v.numpy()) for k, v in tb.items() if k not in ("span_idx",)}
    batch["text_lengths"] = batch["text_lengths"][:, 0]
    k = ref_model.config.max_width
    if token:  # labels [B, W, C, 3] -> ours [B, W, 3, C]; the word mask as the width-1 column
        batch["labels"] = jnp.swapaxes(batch["labels"], 2, 3)
        w = batch["labels"].shape[1]
        words = jnp.arange(w)[None] < batch["text_lengths"][:, None]
        batch["span_mask"] = jnp.broadcast_to(words[..., None], words.shape + (k,))
    else:
        b, spans, c = batch["labels"].shape              # the reference flattens (W, K)
        batch["labels"] = batch["labels"].reshape(b, spans // k, k, c)
        batch["span_mask"] = batch["span_mask"].reshape(b, spans // k, k)
    with jax.enable_x64(True):
        ours, _, _ = load_biencoder(saved, Precision(param_dtype=jnp.float64))
        graphdef, params, rest = nnx.split(ours, nnx.Param, ...)
        params, rest = nnx.to_pure_dict(params), nnx.to_pure_dict(rest)
        loss, grads = jax.value_and_grad(
            lambda p: batch_loss(p, graphdef, rest, batch, LOSS, encoder_tables=tables))(params)
        named = export_state(nnx.merge(graphdef, grads, rest))
    assert abs(float(loss) - want_loss) <= 1e-12 * abs(want_loss), (float(loss), want_loss)
    assert set(named) == set(want) | unused
    for k in unused:
        assert not np.any(named[k]), k
    # BERT's key biases get an exactly-zero gradient in exact arithmetic (softmax ignores a
    # shift shared by all keys): both sides hold rounding noise there, tiny against the rest
    gmax = max(np.linalg.norm(g) for g in want.values())
    zero = {k for k in want if k.endswith("attention.self.key.bias")}
    assert zero
    for k in zero:
        assert np.linalg.norm(want[k]) < 1e-9 * gmax and np.linalg.norm(named[k]) < 1e-9 * gmax
    n_layers = len(getattr(text_encoder, "layers", []))
    last = f"token_rep_layer.bert_layer.model.layers.{n_layers - 1}."

    def tolerance(k):
        below_rotation = (tables is not None and k.startswith("token_rep_layer.bert_layer.")
                          and not k.startswith((last + "attn.Wo", last + "mlp",
                                                "token_rep_layer.bert_layer.model.final_norm")))
        return 1e-6 if below_rotation else 1e-9

    errors = {k: np.linalg.norm(named[k] - g) / np.linalg.norm(g) / tolerance(k)
              for k, g in want.items() if k not in zero}
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1.0, (worst, errors[worst] * tolerance(worst))


# the groups are read off parameter paths shared by both bi-encoder families: span models only
@pytest.mark.parametrize("ref", ["deberta_bert", "modernbert_bert"], indirect=True)
def test_labels_encoder_has_its_own_optimizer_group(ref):
    _, saved = ref
    model, _, _ = load_biencoder(saved)
    groups, decay = param_groups(model)
    flat = {tuple(map(str, p)): g for p, g in nnx.to_flat_state(nnx.State(groups))}
    assert {g for p, g in flat.items() if p[1] in ("labels_encoder", "labels_projection")} == {
        "labels_encoder"}
    assert {g for p, g in flat.items() if p[1] in ("bert_layer", "projection")} == {"encoder"}
    assert {g for p, g in flat.items() if p[0] != "token_rep_layer"} == {"others"}
    lrs = {"encoder": 1e-5, "others": 5e-5, "labels_encoder": 3e-4}
    tx, scheds = make_optimizer(OptimConfig(lr_encoder=1e-5, lr_others=5e-5, lr_labels=3e-4,
                                            warmup_ratio=0.0, schedule="constant"), model, 10)
    assert float(scheds["labels_encoder"](5)) == pytest.approx(3e-4)
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
    # first AdamW step on parameters without weight decay: |update| = the group's rate
    moved = {}
    for (_path, g), (_, u), (_, d) in zip(
            nnx.to_flat_state(nnx.State(groups)), nnx.to_flat_state(nnx.State(updates)),
            nnx.to_flat_state(nnx.State(decay)), strict=True):
        if not d:
            moved.setdefault(g, set()).add(round(float(jnp.abs(u).max()) / lrs[g], 4))
    assert moved == {g: {1.0} for g in lrs}

"""Bi-encoder training through `python -m train` (the one train step of every family), on a tiny
random reference bi-encoder (ModernBERT text encoder + BERT labels encoder) fine-tuned on
synthetic data over the test mesh (8 CPU devices: rows split over the data axis, the batch's
labels replicated):

- the loss falls; the labels encoder is its own optimizer group with its own rate;
- a run preempted by SIGTERM and resumed ends where the uninterrupted one does;
- the exported directory is a bi-encoder again (labels tokenizer included) that gliner_jax loads
  and predicts with; the final dev F1 is computed (the evaluator runs the family too);
- the token-level bi-encoder (BiEncoderTokenModel) trains through the same step and exports.
"""


import numpy as np
import pytest
from reference_biencoder import build_reference_biencoder
from train_setup import (
    full_and_preempted_runs,
    metrics,
    synthetic_examples,
    tiny_config,
    write_jsonl,
)

from gliner_jax import GLiNER
from gliner_jax.biencoder import BiEncoderGLiNER, BiEncoderTokenGLiNER
from gliner_jax.weights import read_safetensors
from train import config as C
from train.train import run

N = 4  # the full run has 2N steps; the interrupted one stops after N - 1


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bi_loop")
    _, saved = build_reference_biencoder(d / "ref", hidden_size=32, enc_hidden=32,
                                         labels_hidden=32, num_layers=2, max_width=4,
                                         weight_scale=None)
    # short sentences: one (tokens, words) bucket, so each run compiles the step about once
    train = write_jsonl(d / "train.jsonl", synthetic_examples(32, seed=1, max_words=10))
    dev = write_jsonl(d / "dev.jsonl", synthetic_examples(4, seed=2, max_words=10))
    cfg = tiny_config(train, dev, num_steps=2 * N, checkpoint_every=N, eval_every=0,
                      export=True, log_every=1)
    cfg.model = C.ModelConfig(init="gliner", path=str(saved), dropout=0.1, max_len=48)
    cfg.optim.lr_labels = 2e-3
    full_dir, part_dir = d / "full", d / "part"
    # N - 1 is not a checkpoint step: the SIGTERM handler saves it
    full, _, resumed = full_and_preempted_runs(cfg, full_dir, part_dir, N - 1)
    return full_dir, full, part_dir, resumed


def test_loss_falls_and_labels_encoder_has_its_rate(runs):
    full_dir, full, _, _ = runs
    assert full.status == "done"
    steps = [m for m in metrics(full_dir) if "loss" in m]
    assert len(steps) == 2 * N
    losses = [m["loss"] for m in steps]
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses
    peak = max(steps, key=lambda m: m["lr_labels_encoder"])
    assert peak["lr_labels_encoder"] == pytest.approx(2e-3, rel=0.05)
    assert peak["lr_encoder"] == pytest.approx(1e-3, rel=0.05)
    assert any("dev_f1" in m for m in metrics(full_dir))


def test_resume_equals_uninterrupted(runs):
    full_dir, full, part_dir, resumed = runs
    assert (resumed.status, resumed.step) == ("done", 2 * N)
    a = read_safetensors(full_dir / "model" / "model.safetensors")
    b = read_safetensors(part_dir / "model" / "model.safetensors")
    assert sorted(a) == sorted(b)
    assert any(k.startswith("token_rep_layer.labels_encoder.") for k in a)
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-6, atol=1e-7, err_msg=k)


def test_export_is_a_biencoder(runs):
    full_dir, *_ = runs
    model = GLiNER.from_pretrained(full_dir / "model")
    assert isinstance(model, BiEncoderGLiNER)
    assert (full_dir / "model" / "labels_tokenizer" / "tokenizer_config.json").is_file()
    text = "john smith went to paris with alice"
    labels = ["person", "location", "organization"]
    plain = model.predict_entities(text, labels, threshold=0.0)
    cached = model.predict_with_embeds(text, model.encode_labels(labels), labels, threshold=0.0)
    assert plain and plain == cached


def test_token_level_biencoder_trains_and_exports(tmp_path):
    _, saved = build_reference_biencoder(tmp_path / "ref", hidden_size=32, enc_hidden=32,
                                         labels_hidden=32, num_layers=2, max_width=4,
                                         weight_scale=None, span_mode="token_level")
    train = write_jsonl(tmp_path / "train.jsonl", synthetic_examples(16, seed=1, max_words=10))
    dev = write_jsonl(tmp_path / "dev.jsonl", synthetic_examples(4, seed=2, max_words=10))
    cfg = tiny_config(train, dev, num_steps=N, checkpoint_every=N, eval_every=0, export=True,
                      log_every=1)
    cfg.model = C.ModelConfig(init="gliner", path=str(saved), dropout=0.1, max_len=48)
    cfg.optim.lr_labels = 2e-3
    result = run(cfg, tmp_path / "run", progress=False)
    assert (result.status, result.step) == ("done", N)
    steps = [m for m in metrics(tmp_path / "run") if "loss" in m]
    assert len(steps) == N and all(np.isfinite(m["loss"]) and m["loss"] > 0 for m in steps)
    assert any("dev_f1" in m for m in metrics(tmp_path / "run"))
    before = read_safetensors(saved / "model.safetensors")
    after = read_safetensors(tmp_path / "run" / "model" / "model.safetensors")
    assert sorted(before) == sorted(after)
    for prefix in ("token_rep_layer.labels_encoder.", "token_rep_layer.bert_layer.", "scorer."):
        assert any(k.startswith(prefix) and not np.array_equal(before[k], after[k])
                   for k in before), prefix  # every part trained
    model = GLiNER.from_pretrained(tmp_path / "run" / "model")
    assert type(model) is BiEncoderTokenGLiNER
    labels = ["person", "location", "organization"]
    text = "john smith went to paris with alice"
    plain = model.predict_entities(text, labels, threshold=0.0)
    assert plain and plain == model.predict_with_embeds(text, model.encode_labels(labels),
                                                        labels, threshold=0.0)

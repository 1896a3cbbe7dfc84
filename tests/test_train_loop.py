"""The training loop end to end on a tiny random model and synthetic data.

- resume: N steps, SIGTERM (preemption save), rerun of the same command for N more == 2N steps
  uninterrupted (parameters to 1e-6, logged losses equal);
- the step compiles once per length bucket, and the buckets are few;
- the loss falls; the exported directory loads in gliner_jax and in the PyTorch gliner package;
- a non-finite loss stops the run and leaves the last good checkpoint;
- gradient accumulation: two micro-batches make the step of one batch.
"""


import jax
import numpy as np
import pytest
import torch
from reference_models import cached_reference_gliner
from train_setup import (
    full_and_preempted_runs,
    metrics,
    synthetic_examples,
    tiny_config,
    write_jsonl,
)

from gliner_jax import GLiNER
from gliner_jax.processing import Processor
from gliner_jax.sharding import make_mesh
from gliner_jax.weights import read_safetensors
from train.build import build_model
from train.data import Batcher, Mixture, load_dataset, sample_types
from train.train import Evaluator, NonFiniteLoss, device_batch, init_state, make_trainer, run

N = 6  # steps before the interruption; the full run has 2N


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("loop")
    # 3..40 words: several word and token buckets
    return (write_jsonl(d / "train.jsonl", synthetic_examples(64, seed=1)),
            write_jsonl(d / "dev.jsonl", synthetic_examples(8, seed=2)))


@pytest.fixture(scope="module")
def runs(files, tmp_path_factory):
    """(config, uninterrupted workdir, its result, interrupted-then-resumed workdir, result)."""
    cfg = tiny_config(*files, num_steps=2 * N, checkpoint_every=4, eval_every=N, export=True)
    full_dir, part_dir = tmp_path_factory.mktemp("full"), tmp_path_factory.mktemp("part")
    def saved(d):  # N - 1 is not a checkpoint step: the SIGTERM handler saved it
        assert sorted(int(p.name) for p in (d / "checkpoints").iterdir()
                      if p.name.isdigit()) == [4, N - 1]

    full, _, resumed = full_and_preempted_runs(cfg, full_dir, part_dir, N - 1, saved)
    return cfg, full_dir, full, part_dir, resumed


def test_resume_equals_uninterrupted(runs):
    _, full_dir, full, part_dir, resumed = runs
    assert (full.status, full.step, resumed.status, resumed.step) == ("done", 2 * N, "done", 2 * N)
    for d in (full_dir, part_dir):  # keep_checkpoints=2: the last two of 4, 8, 12 (and 5)
        assert sorted(int(p.name) for p in (d / "checkpoints").iterdir() if p.name.isdigit()) \
            == [8, 12]
    a = read_safetensors(full_dir / "model" / "model.safetensors")
    b = read_safetensors(part_dir / "model" / "model.safetensors")
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-6, atol=1e-7, err_msg=k)
    losses = {m["step"]: m["loss"] for m in metrics(full_dir) if "loss" in m}
    for m in metrics(part_dir):
        if "loss" in m and m["step"] >= N + 2:   # whole logging intervals after the restart
            assert m["loss"] == pytest.approx(losses[m["step"]], rel=1e-6)


def test_step_compiles_once_per_bucket(runs, files):
    cfg, full_dir, *_ = runs
    model, tok, _ = build_model(cfg.model, cfg.data, cfg.seed)
    batcher = Batcher(Processor.from_config(tok, model.config.class_token_index, model.config),
                      cfg.data, 1)
    mixture = Mixture([load_dataset(cfg.data.train[0], False)], cfg.seed)
    shapes = set()
    for s in range(cfg.num_steps):  # replay the run's batches
        ex = mixture.read(mixture.take(s, cfg.data.batch_size))
        types = sample_types(ex, np.random.default_rng([cfg.seed, s, 1]), max_types=4,
                             max_neg_type_ratio=1)
        arrays, _ = batcher(ex, types)
        shapes.add((arrays["input_ids"].shape, arrays["labels"].shape))
    compiles = metrics(full_dir)[-2]["compiles"]
    assert 2 <= len(shapes) <= 4  # lengths vary, buckets are few
    assert compiles == len(shapes)


def test_loss_falls_and_dev_f1_is_logged(runs):
    _, full_dir, full, *_ = runs
    losses = [m["loss"] for m in metrics(full_dir) if "loss" in m]
    assert losses[-1] < 0.5 * losses[0], losses
    rec = metrics(full_dir)[-2]
    for key in ("lr_encoder", "lr_others", "grad_norm", "examples_per_s", "tokens_per_s"):
        assert rec[key] > 0 or key.startswith("lr"), key
    dev_steps = [m["step"] for m in metrics(full_dir) if "dev_f1" in m]
    assert dev_steps == [N, 2 * N] and "dev_f1" in full.metrics  # eval_every=N, and at the end


def test_export_loads_in_gliner_jax_and_pytorch(runs):
    from gliner import GLiNER as TorchGLiNER

    _, full_dir, *_ = runs
    text, labels = "alice and bob flew from paris to google in berlin", ["person", "location"]
    ours = GLiNER.from_pretrained(full_dir / "model")
    theirs = TorchGLiNER.from_pretrained(str(full_dir / "model"), local_files_only=True)
    batch = ours.processor.encode_texts([text], labels)
    probs = ours.span_probs(batch)
    tb = theirs.prepare_batch([text], labels)
    tb = theirs.collate_batch(tb["input_x"], tb["entity_types"], theirs.create_collator(),
                              tb["label_names"])
    with torch.no_grad():
        logits = theirs.model(**{k: v for k, v in tb.items() if isinstance(v, torch.Tensor)})
    want = torch.sigmoid(logits.logits).numpy()
    n = int(batch.text_lengths[0])
    valid = np.arange(n)[:, None] + np.arange(want.shape[2])[None] < n
    np.testing.assert_allclose(probs[0, :n][valid][:, :2], want[0, :n][valid], atol=1e-5)


def test_dev_f1_equals_reference_evaluate(tmp_path):
    """The in-training dev F1 is the reference's `evaluate(flat_ner=True)` on the same model."""
    ref, saved = cached_reference_gliner(backbone="deberta", hidden_size=48, enc_hidden=64,
                                         weight_scale=1.0, seed=5)  # as test_train_parity
    cfg = tiny_config(tmp_path / "unused.jsonl",
                      write_jsonl(tmp_path / "dev.jsonl", synthetic_examples(48, seed=11)))
    ours = GLiNER.from_pretrained(saved)
    dev = load_dataset(cfg.data.dev, False)
    mesh = make_mesh((1, 1, 1), jax.devices()[:1])
    tr, params = make_trainer(ours.model, cfg, mesh)
    evaluator = Evaluator(tr.eval_graphdef, tr.rest, ours.processor,
                          Batcher(ours.processor, cfg.data, 1), dev, cfg, mesh)
    scores = {}
    for threshold in (0.3, 0.5, 0.7):
        cfg.data.eval_threshold = threshold  # read by the evaluator at each call
        got = evaluator(params)["dev_f1"]
        _, want = ref.evaluate(dev.examples, flat_ner=True, threshold=threshold, batch_size=8,
                               entity_types=dev.labels)
        assert got == pytest.approx(float(want), abs=1e-12), threshold
        scores[threshold] = got
    assert max(scores.values()) > 0, scores  # some predictions are right


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(files, tmp_path):
    cfg = tiny_config(*files, num_steps=6, checkpoint_every=1, log_every=1)
    cfg.data.dev = None
    cfg.optim.lr_others, cfg.optim.max_grad_norm = 1e30, 0.0  # blows up after the first update
    with pytest.raises(NonFiniteLoss, match="non-finite loss at step 2.*last good checkpoint is "
                                            "step 1"):
        run(cfg, tmp_path, progress=False)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == \
        ["1"]


def test_gradient_accumulation_matches_one_batch(files):
    cfg = tiny_config(*files)
    cfg.model.dropout, cfg.optim.eps = 0.0, 1e-20   # Adam is then invariant to the grad scale
    cfg.model.encoder = {**cfg.model.encoder, "hidden_dropout_prob": 0.0,
                         "attention_probs_dropout_prob": 0.0}
    model, tok, _ = build_model(cfg.model, cfg.data, cfg.seed)
    processor = Processor.from_config(tok, model.config.class_token_index, model.config)
    ex = synthetic_examples(8, seed=7)
    types = sample_types(ex, np.random.default_rng(0), max_types=4, max_neg_type_ratio=1)
    mesh = make_mesh((1, 1, 1), jax.devices()[:1])
    out = {}
    for accum in (1, 2):
        cfg.optim.grad_accum = accum
        tr, params = make_trainer(model, cfg, mesh)
        arrays, _ = Batcher(processor, cfg.data, accum)(ex, types)
        state, m = tr.step_fn(init_state(tr, params), tr.rest, device_batch(arrays, tr.batch_sh))
        out[accum] = float(m["loss"]), float(m["grad_norm"]), jax.device_get(state["params"])
    # HF semantics: each micro-batch loss / accumulation steps ("sum" reduction: half the sum)
    assert out[2][0] == pytest.approx(out[1][0] / 2, rel=1e-5)
    assert out[2][1] == pytest.approx(out[1][1] / 2, rel=1e-5)
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(out[1][2])[0],
                            jax.tree.leaves(out[2][2]), strict=True):
        name = jax.tree_util.keystr(path)
        if "['key']['bias']" in name:  # zero gradient in exact arithmetic: Adam moves it by noise
            continue
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6, err_msg=name)


def test_export_step_equals_the_runs_export(runs, tmp_path):
    """`python -m train.export_step` rebuilds the final step's model from its checkpoint: the
    same tensors as the run's own export; a missing step is one clear line."""
    from gliner_jax.weights import read_safetensors
    from train.export_step import main as export_main

    cfg, full_dir, *_ = runs
    assert export_main([str(full_dir), "--step", str(cfg.num_steps),
                        "--out", str(tmp_path / "m")]) == 0
    want = read_safetensors(full_dir / "model" / "model.safetensors")
    got = read_safetensors(tmp_path / "m" / "model.safetensors")
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    assert export_main([str(full_dir), "--step", "999", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()

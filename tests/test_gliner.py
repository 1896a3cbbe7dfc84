"""GLiNER parity with the reference (gliner 0.2.29) on random models built offline.

Logits: float64 to ~1e-10 (relative to the logit scale), float32 to 1e-4; decoded entities
identical (scores within 1e-5) for flat, nested and multi-label at several thresholds; round
trips in both directions; the converter's key checks; batch invariance; bounded compilation.
"""

import json
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from reference_models import (
    assert_same_safetensors,
    build_reference_gliner,
    entity_tuples,
    reference_batch,
)

from gliner_jax import GLiNER
from gliner_jax.convert import ModelLoadError, load_gliner
from gliner_jax.layers import Precision
from gliner_jax.model import _span_probs
from gliner_jax.weights import WeightsError, read_safetensors, write_safetensors

TEXTS = [
    "John Smith works at Google in Paris , and Alice moved to New York .",
    "Barack Obama was born in Hawaii .",
    "Zoë Müller-Lüdenscheidt flew from Zürich to 東京 on 3.4.2021 !!! ... ?!",
    "",
    "Berlin",
    "the river of the mountain city " * 25,   # > 128 tokens: log buckets of the rel. positions
    "Apple , Microsoft and Google are companies in the United States of America .",
]
LABELS = ["person", "organization", "location", "city of birth", "company"]

# name -> build_reference_gliner kwargs
MODELS = {
    "deberta_proj": dict(backbone="deberta", hidden_size=48, enc_hidden=64, weight_scale=2.0),
    "deberta_noproj_k5": dict(backbone="deberta", hidden_size=64, enc_hidden=64, max_width=5,
                              weight_scale=2.0, seed=1),
    "bert": dict(backbone="bert", hidden_size=32, enc_hidden=64, weight_scale=2.0, seed=2),
    "deberta_maxlen": dict(backbone="deberta", hidden_size=48, enc_hidden=64, max_len=12,
                           weight_scale=2.0, seed=3),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def ref_model(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    ref, saved = build_reference_gliner(out, **MODELS[request.param])
    return ref, saved


def _ours(model, tb, labels):
    args = [tb[k].numpy() for k in ("input_ids", "attention_mask", "words_mask")]
    lengths = tb["text_lengths"].numpy()[:, 0]
    L = int(lengths.max())
    logits, _ = model(*[jnp.asarray(a) for a in args], jnp.asarray(lengths), num_words=L,
                      num_classes=len(labels))
    return np.asarray(logits)


def _valid(tb, K, C):
    lengths = tb["text_lengths"].numpy()[:, 0]
    L = int(lengths.max())
    s, k = np.arange(L)[:, None], np.arange(K)[None]
    return np.broadcast_to(((s + k)[None] < lengths[:, None, None])[..., None],
                           (len(lengths), L, K, C))


def test_logits_float64_and_float32(ref_model):
    ref, saved = ref_model
    tb = reference_batch(ref, TEXTS, LABELS)
    K = ref.config.max_width
    valid = _valid(tb, K, len(LABELS))
    with torch.no_grad():
        want64 = ref.model.double()(**tb).logits.numpy()
        want32 = ref.model.float()(**tb).logits.numpy()
    scale = np.abs(want64[valid]).max()
    assert scale > 1.0  # the weights are scaled so the logits are not all ~0
    with jax.enable_x64(True):
        model64, _ = load_gliner(saved, Precision(param_dtype=jnp.float64))
        got64 = _ours(model64, tb, LABELS)
    assert got64.dtype == np.float64
    err64 = np.abs(got64 - want64)[valid].max()
    assert err64 <= 1e-10 * scale, (err64, scale)

    model32, _ = load_gliner(saved)
    with jax.default_matmul_precision("highest"):
        got32 = _ours(model32, tb, LABELS)
    err32 = np.abs(got32 - want32)[valid].max()
    assert err32 <= 1e-4 * scale, (err32, scale)


@pytest.mark.parametrize("flat_ner,multi_label", [(True, False), (False, False), (True, True),
                                                  (False, True)])
def test_decoded_entities_identical(ref_model, flat_ner, multi_label):
    ref, saved = ref_model
    ours = GLiNER.from_pretrained(saved)
    n_found = 0
    for threshold in (0.3, 0.5, 0.7):
        kw = dict(threshold=threshold, flat_ner=flat_ner, multi_label=multi_label)
        want = ref.inference(TEXTS, LABELS, **kw)
        with pytest.warns(UserWarning) if ref.config.max_len < 30 else _nullcontext():
            got = ours.inference(TEXTS, LABELS, truncate=True, **kw)
        assert entity_tuples(got) == entity_tuples(want)
        for rg, rw in zip(got, want, strict=True):
            for eg, ew in zip(rg, rw, strict=True):
                assert abs(eg["score"] - ew["score"]) < 1e-5
        n_found += sum(map(len, want))
        # the single-text API agrees with inference
        assert entity_tuples([ours.predict_entities(TEXTS[0], LABELS, truncate=True, **kw)]) == \
            entity_tuples(want[:1])
    assert n_found > 0


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_dict_labels_and_empty_texts(ref_model):
    ref, saved = ref_model
    ours = GLiNER.from_pretrained(saved)
    labels = {"PER": "person", "ORG": "organization", "LOC": "location"}
    want = ref.inference(TEXTS[:3], labels, threshold=0.3)
    got = ours.inference(TEXTS[:3], labels, threshold=0.3, truncate=True)
    assert entity_tuples(got) == entity_tuples(want)
    assert ours.inference(["", "   "], LABELS) == [[], []]
    with pytest.raises(ValueError, match="label"):
        ours.inference(TEXTS[:1], [])


def test_batch_invariance(ref_model):
    _, saved = ref_model
    ours = GLiNER.from_pretrained(saved)
    together = ours.inference(TEXTS, LABELS, threshold=0.3, batch_size=4, truncate=True)
    for i, text in enumerate(TEXTS):
        alone = ours.inference([text], LABELS, threshold=0.3, truncate=True)[0]
        assert entity_tuples([alone]) == entity_tuples([together[i]])
        # other rows change only the padded shape, hence float32 summation order: noise
        for a, b in zip(alone, together[i], strict=True):
            assert abs(a["score"] - b["score"]) < 1e-5


def test_round_trip_to_reference_and_back(ref_model, tmp_path):
    from gliner import GLiNER as RefGLiNER

    ref, saved = ref_model
    ours = GLiNER.from_pretrained(saved)
    out = ours.save_pretrained(tmp_path / "exported")
    cfg = json.loads((out / "gliner_config.json").read_text())
    assert cfg["encoder_config"] and cfg["class_token_index"] >= 0 and cfg["vocab_size"] > 0
    assert_same_safetensors(saved, out)   # the tensors come back bit-identical
    # the reference loads our directory with nothing else and predicts identically
    back = RefGLiNER.from_pretrained(str(out), local_files_only=True)
    back.eval()
    kw = dict(threshold=0.3)
    assert entity_tuples(back.inference(TEXTS, LABELS, **kw)) == \
        entity_tuples(ref.inference(TEXTS, LABELS, **kw))
    # and we load it again
    again = GLiNER.from_pretrained(out)
    assert entity_tuples(again.inference(TEXTS[:2], LABELS, **kw)) == \
        entity_tuples(ours.inference(TEXTS[:2], LABELS, **kw))


def test_bin_and_legacy_layouts(tmp_path):
    ref, saved = build_reference_gliner(tmp_path / "m", weight_scale=2.0, seed=5)
    want = ref.inference(TEXTS[:2], LABELS, threshold=0.3)
    # pytorch_model.bin, as the reference writes by default
    bin_dir = tmp_path / "bin"
    ref.save_pretrained(bin_dir)
    assert (bin_dir / "pytorch_model.bin").is_file()
    got = GLiNER.from_pretrained(bin_dir).inference(TEXTS[:2], LABELS, threshold=0.3)
    assert entity_tuples(got) == entity_tuples(want)
    # legacy v2.1 layout: training-style config, no encoder_config / class_token_index /
    # vocab_size, no tokenizer files: tokenizer and encoder config come from model_name
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    shutil.copy(bin_dir / "pytorch_model.bin", legacy / "pytorch_model.bin")
    full = json.loads((saved / "gliner_config.json").read_text())
    keep = ("model_name", "max_width", "hidden_size", "dropout", "span_mode", "max_len",
            "subtoken_pooling", "max_types", "max_neg_type_ratio")
    cfg = {k: full[k] for k in keep}
    cfg.update({"name": "correct lr", "num_steps": 30000, "lr_encoder": "1e-5",
                "shuffle_types": True, "random_drop": True, "log_dir": "logs"})
    (legacy / "gliner_config.json").write_text(json.dumps(cfg))
    got = GLiNER.from_pretrained(legacy).inference(TEXTS[:2], LABELS, threshold=0.3)
    assert entity_tuples(got) == entity_tuples(want)


def _tamper(saved, tmp_path, edit):
    bad = tmp_path / "bad"
    shutil.copytree(saved, bad)
    sd = read_safetensors(bad / "model.safetensors")
    edit(sd)
    write_safetensors(bad / "model.safetensors", sd)
    return bad


@pytest.mark.parametrize("edit,needle", [
    (lambda sd: sd.pop("rnn.lstm.weight_hh_l0"), "missing keys (1): rnn.lstm.weight_hh_l0"),
    (lambda sd: sd.__setitem__("span_rep_layer.extra.weight", np.zeros(2, np.float32)),
     "unexpected keys (1): span_rep_layer.extra.weight"),
    (lambda sd: sd.__setitem__("prompt_rep_layer.3.bias", np.zeros(7, np.float32)),
     "prompt_rep_layer.3.bias: checkpoint (7,) != model (48,)"),
])
def test_converter_names_bad_keys(tmp_path, edit, needle):
    _, saved = build_reference_gliner(tmp_path / "m", seed=6)
    bad = _tamper(saved, tmp_path, edit)
    with pytest.raises(WeightsError) as e:
        GLiNER.from_pretrained(bad)
    assert needle in str(e.value)
    # the CLI says the same in one line, exit code 2, no traceback
    r = subprocess.run([sys.executable, "-m", "gliner_jax.convert", str(bad),
                        str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr


def test_convert_cli_and_load_errors(tmp_path):
    _, saved = build_reference_gliner(tmp_path / "m", seed=7)
    r = subprocess.run([sys.executable, "-m", "gliner_jax.convert", str(saved),
                        str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert_same_safetensors(saved, tmp_path / "out")
    with pytest.raises(ModelLoadError, match="does not exist"):
        GLiNER.from_pretrained(tmp_path / "nope")
    with pytest.raises(ModelLoadError, match="not a GLiNER model directory"):
        GLiNER.from_pretrained(tmp_path / "m" / "encoder")
    with pytest.raises(ModelLoadError, match="offline"):
        GLiNER.from_pretrained("urchade/gliner_small-v2.1", local_files_only=True)


def test_bounded_compilation(tmp_path):
    _, saved = build_reference_gliner(tmp_path / "m", seed=8)
    ours = GLiNER.from_pretrained(saved)
    rng = np.random.default_rng(0)
    words = "alpha beta gamma delta John Smith Paris London river city".split()
    before = _span_probs._cache_size()
    for _ in range(30):
        texts = [" ".join(rng.choice(words, rng.integers(1, 60))) for _ in range(
            rng.integers(1, 9))]
        labels = list(rng.choice(LABELS, rng.integers(1, 6), replace=False))
        ours.inference(texts, labels, batch_size=8)
    compiled = _span_probs._cache_size() - before
    # buckets: B in {1,2,4,8}, W in {16,24,32,48,64}, C in {4,6}, T a few: far below 30 batches
    # of arbitrary shapes, and bounded by the bucket grid
    assert 0 < compiled <= 20, compiled

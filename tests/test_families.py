"""Every uni-encoder family and span mode of gliner 0.2.29 at parity, on tiny random models.

For each span mode, the token-level model, and configs shaped like NuNER Zero (marker, K=1)
and gliner-multitask (token_level, max_len 768): logits float64 to 1e-10 (relative to the
logit scale) and float32 to 1e-4; decoded entities identical (scores within 1e-5) for flat,
nested and multi-label at three thresholds; the round trip reference -> ours -> reference
bit-identical, and the reference predicts the same from our directory. Unknown modes and
families fail with one line naming them.
"""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from reference_models import build_reference_gliner

from gliner_jax import GLiNER
from gliner_jax.convert import ModelLoadError, load_gliner
from gliner_jax.layers import Precision
from gliner_jax.modeling import SPAN_MODES
from gliner_jax.weights import read_safetensors

TEXTS = [
    "John Smith works at Google in Paris , and Alice moved to New York .",
    "Barack Obama was born in Hawaii .",
    "",
    "Zoë Müller flew from Zürich to 東京 on 3.4.2021 !",
    "Berlin",
    "Apple , Microsoft and Google are companies in the United States of America .",
]
LABELS = ["person", "organization", "location", "company"]
TINY = dict(hidden_size=16, enc_hidden=32, num_layers=1, heads=2, max_width=4, weight_scale=2.0)

# name -> gliner_config overrides (plus build kwargs under "build")
MODELS = {mode: {"span_mode": mode} for mode in SPAN_MODES}
MODELS["token_level"] = {"span_mode": "token_level"}
MODELS["nuner_zero_like"] = {"span_mode": "marker", "build": {"max_width": 1}}
MODELS["multitask_like"] = {"span_mode": "token_level", "build": {"max_len": 768}}


@pytest.fixture(scope="module", params=sorted(MODELS))
def ref_model(request, tmp_path_factory):
    spec = dict(MODELS[request.param])
    build = dict(TINY, seed=len(request.param), **spec.pop("build", {}))
    ref, saved = build_reference_gliner(tmp_path_factory.mktemp(request.param),
                                        gliner_overrides=spec, **build)
    return ref, saved


def _is_token(ref) -> bool:
    return ref.config.span_mode == "token_level"


def _batch(ref):
    tokens, _, _ = ref.prepare_inputs([t for t in TEXTS if t.strip()])
    batch = ref.create_collator()([{"tokenized_text": t, "ner": None} for t in tokens],
                                  entity_types=LABELS)
    return {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}


def _ours(model, tb):
    args = [jnp.asarray(tb[k].numpy()) for k in ("input_ids", "attention_mask", "words_mask")]
    lengths = tb["text_lengths"].numpy()[:, 0]
    logits, _ = model(*args, jnp.asarray(lengths), num_words=int(lengths.max()),
                      num_classes=len(LABELS))
    return np.asarray(logits)


def _valid(ref, tb, shape):
    """Logits that mean something: spans inside the text (span) / words of the text (token)."""
    n = tb["text_lengths"].numpy()[:, 0][:, None, None]
    s = np.arange(shape[1])[None, :, None]
    if _is_token(ref):
        return np.broadcast_to((s < n)[..., None], shape)
    k = np.arange(shape[2])[None, None, :]
    return np.broadcast_to(((s + k) < n)[..., None], shape)


def test_logits_float64_and_float32(ref_model):
    ref, saved = ref_model
    tb = _batch(ref)
    with torch.no_grad():
        want64 = ref.model.double()(**tb).logits.numpy()
        want32 = ref.model.float()(**tb).logits.numpy()
    valid = _valid(ref, tb, want64.shape)
    scale = np.abs(want64[valid]).max()
    assert scale > 1.0
    with jax.enable_x64(True):
        model64, _ = load_gliner(saved, Precision(param_dtype=jnp.float64))
        got64 = _ours(model64, tb)
    assert got64.dtype == np.float64 and got64.shape == want64.shape
    err64 = np.abs(got64 - want64)[valid].max()
    assert err64 <= 1e-10 * scale, (err64, scale)
    model32, _ = load_gliner(saved)
    with jax.default_matmul_precision("highest"):
        got32 = _ours(model32, tb)
    err32 = np.abs(got32 - want32)[valid].max()
    assert err32 <= 1e-4 * scale, (err32, scale)


def _ents(rows):
    return [[(e["start"], e["end"], e["text"], e["label"]) for e in r] for r in rows]


def test_decoded_entities_identical(ref_model):
    ref, saved = ref_model
    ours = GLiNER.from_pretrained(saved)
    found = 0
    for flat_ner, multi_label in ((True, False), (False, False), (True, True), (False, True)):
        for threshold in (0.3, 0.5, 0.7):
            kw = dict(threshold=threshold, flat_ner=flat_ner, multi_label=multi_label)
            want = ref.inference(TEXTS, LABELS, batch_size=4, **kw)
            got = ours.inference(TEXTS, LABELS, batch_size=4, **kw)
            assert _ents(got) == _ents(want), kw
            for rg, rw in zip(got, want, strict=True):
                for eg, ew in zip(rg, rw, strict=True):
                    assert abs(eg["score"] - ew["score"]) < 1e-5
            found += sum(map(len, want))
    assert found > 0


def test_round_trip_to_reference_and_back(ref_model, tmp_path):
    from gliner import GLiNER as RefGLiNER

    ref, saved = ref_model
    ours = GLiNER.from_pretrained(saved)
    out = ours.save_pretrained(tmp_path / "exported")
    assert json.loads((out / "gliner_config.json").read_text())["span_mode"] == \
        ref.config.span_mode
    a = read_safetensors(saved / "model.safetensors")
    b = read_safetensors(out / "model.safetensors")
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    back = RefGLiNER.from_pretrained(str(out), local_files_only=True)
    back.eval()
    assert type(back.model) is type(ref.model)
    kw = dict(threshold=0.3)
    assert _ents(back.inference(TEXTS, LABELS, **kw)) == _ents(ref.inference(TEXTS, LABELS, **kw))


@pytest.mark.parametrize("edit,needle", [
    ({"span_mode": "spiral"}, "unknown span_mode 'spiral'"),
    ({"relations_layer": "biaffine"}, "model family 'gliner_uni_encoder_span_relex'"),
    ({"labels_decoder": "gpt2"}, "model family 'gliner_uni_encoder_span_decoder'"),
    ({"span_mode": "token_level", "represent_spans": True}, "represent_spans = True"),
])
def test_unknown_mode_or_family_is_one_line(tmp_path, edit, needle):
    _, saved = build_reference_gliner(tmp_path / "m", **dict(TINY, weight_scale=None))
    bad = tmp_path / "bad"
    shutil.copytree(saved, bad)
    cfg = json.loads((bad / "gliner_config.json").read_text())
    cfg.update(edit)
    (bad / "gliner_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError) as e:
        GLiNER.from_pretrained(bad)
    assert needle in str(e.value) and "\n" not in str(e.value)

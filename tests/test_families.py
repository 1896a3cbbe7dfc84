"""Every uni-encoder family and span mode of gliner 0.2.29 at parity, on tiny random models.

For each span mode, the token-level model, configs shaped like NuNER Zero (marker, K=1)
and gliner-multitask (token_level, max_len 768), and a ModernBERT encoder (markerV0): logits
float64 to 1e-10 (relative to the logit scale; ModernBERT given transformers' rotary tables)
and float32 to 1e-4; decoded entities identical (scores within 1e-5) for flat, nested and
multi-label at two thresholds; the round trip reference -> ours -> reference
bit-identical, and the reference predicts the same from our directory. Unknown modes and
families fail with one line naming them.
"""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from reference_models import (
    assert_same_safetensors,
    build_reference_gliner,
    cached_reference_gliner,
    edited_copy,
    entity_tuples,
    load_error,
    reference_batch,
    torch_rope,
)

from gliner_jax import GLiNER
from gliner_jax.convert import load_gliner
from gliner_jax.layers import Precision
from gliner_jax.modeling import SPAN_MODES

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
# a ModernBERT encoder (global + sliding-window layers; prompts longer than the window)
MODELS["modernbert"] = {"build": {"backbone": "modernbert", "num_layers": 2}}


def _build(name):
    """(reference model, its saved directory), built once per process."""
    spec = dict(MODELS[name])
    build = dict(TINY, seed=len(name), **spec.pop("build", {}))
    return cached_reference_gliner(gliner_overrides=spec, **build)


@functools.cache
def _api(name) -> GLiNER:
    """Our model of `name`, loaded once: its compiled shapes are shared by the tests."""
    return GLiNER.from_pretrained(_build(name)[1])


@pytest.fixture(scope="module", params=sorted(MODELS))
def model_name(request):
    return request.param


@pytest.fixture(scope="module")
def ref_model(model_name):
    return _build(model_name)


@pytest.fixture(scope="module")
def ours(model_name):
    return _api(model_name)


def _is_token(ref) -> bool:
    return ref.config.span_mode == "token_level"


def _ours(model, tb, tables=None):
    args = [jnp.asarray(tb[k].numpy()) for k in ("input_ids", "attention_mask", "words_mask")]
    lengths = tb["text_lengths"].numpy()[:, 0]
    logits, _ = model(*args, jnp.asarray(lengths), num_words=int(lengths.max()),
                      num_classes=len(LABELS), encoder_tables=tables)
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
    tb = reference_batch(ref, TEXTS, LABELS)
    with torch.no_grad():
        want64 = ref.model.double()(**tb).logits.numpy()
        want32 = ref.model.float()(**tb).logits.numpy()
    valid = _valid(ref, tb, want64.shape)
    scale = np.abs(want64[valid]).max()
    assert scale > 1.0
    with jax.enable_x64(True):
        model64, _ = load_gliner(saved, Precision(param_dtype=jnp.float64))
        got64 = _ours(model64, tb, torch_rope(ref, tb["input_ids"].shape[1]))
    assert got64.dtype == np.float64 and got64.shape == want64.shape
    err64 = np.abs(got64 - want64)[valid].max()
    assert err64 <= 1e-10 * scale, (err64, scale)
    model32, _ = load_gliner(saved)
    with jax.default_matmul_precision("highest"):
        got32 = _ours(model32, tb)
    err32 = np.abs(got32 - want32)[valid].max()
    assert err32 <= 1e-4 * scale, (err32, scale)


# Decoding depends on the head (span / token) and on batch coupling, not on a mode's maths:
# these run every (flat, nested) x (single, multi-label) x threshold combination; the other
# modes run two combinations that still cover flat, nested and multi-label (CI time).
FULL_DECODE = {"markerV0", "markerV1", "token_level", "nuner_zero_like", "multitask_like"}
ALL_COMBOS = [(f, m, t) for f, m in ((True, False), (False, False), (True, True), (False, True))
              for t in (0.3, 0.6)]


def test_decoded_entities_identical(ref_model, ours, model_name):
    ref, saved = ref_model
    found = 0
    combos = ALL_COMBOS if model_name in FULL_DECODE else [(True, False, 0.3), (False, True, 0.6)]
    for flat_ner, multi_label, threshold in combos:
        kw = dict(threshold=threshold, flat_ner=flat_ner, multi_label=multi_label)
        want = ref.inference(TEXTS, LABELS, batch_size=4, **kw)
        got = ours.inference(TEXTS, LABELS, batch_size=4, **kw)
        assert entity_tuples(got) == entity_tuples(want), kw
        for rg, rw in zip(got, want, strict=True):
            for eg, ew in zip(rg, rw, strict=True):
                assert abs(eg["score"] - ew["score"]) < 1e-5
        found += sum(map(len, want))
    assert found > 0


def test_round_trip_to_reference_and_back(ref_model, ours, tmp_path):
    from gliner import GLiNER as RefGLiNER

    ref, saved = ref_model
    out = ours.save_pretrained(tmp_path / "exported")
    assert json.loads((out / "gliner_config.json").read_text())["span_mode"] == \
        ref.config.span_mode
    assert_same_safetensors(saved, out)
    back = RefGLiNER.from_pretrained(str(out), local_files_only=True)
    back.eval()
    assert type(back.model) is type(ref.model)
    kw = dict(threshold=0.3)
    assert entity_tuples(back.inference(TEXTS, LABELS, **kw)) == \
        entity_tuples(ref.inference(TEXTS, LABELS, **kw))


@pytest.mark.parametrize("edit,needle", [
    ({"span_mode": "spiral"}, "unknown span_mode 'spiral'"),
    ({"relations_layer": "biaffine"}, "relations_layer 'biaffine' is not supported"),
    ({"labels_decoder": "gpt2"}, "model family 'gliner_uni_encoder_span_decoder'"),
    ({"span_mode": "token_level", "represent_spans": True}, "represent_spans = True"),
])
def test_unknown_mode_or_family_is_one_line(tmp_path, edit, needle):
    _, saved = build_reference_gliner(tmp_path / "m", **dict(TINY, weight_scale=None))
    assert needle in load_error(edited_copy(saved, tmp_path / "bad", **edit))


# Stitching depends on the head (span / token) and on batch coupling, not on a mode's maths:
# one model of each kind (and the two shaped like released ones).
WINDOW_MODELS = ["markerV0", "markerV1", "conv_share", "token_level", "nuner_zero_like",
                 "multitask_like"]


@pytest.mark.parametrize("name", WINDOW_MODELS)
def test_long_text_windows(name):
    """A text longer than the window, in windows of 8 words every 5: the result is the greedy
    decoding of the candidates of every window predicted alone, merged by max score (token
    level: of the windows' word scores stitched, `decoding.stitch_windows`)."""
    from gliner_jax import decoding
    from gliner_jax.model import plan_windows
    from gliner_jax.processing import split_words

    ref, _ = _build(name)
    ours = _api(name)
    text = " ".join(TEXTS[0].split() * 2 + TEXTS[5].split())
    words = split_words(text)
    size, stride = 8, 5
    windows = plan_windows(len(words), size, stride, ref.config.max_width - 1)
    assert len(windows) > 4 and all(e - s == size for s, e in windows)
    alone = []
    for s, e in windows:
        batch = ours.processor.encode([[w for w, _, _ in words[s:e]]], [LABELS], pad=True)
        alone.append((s, batch, ours.probs(batch)))
    # the first threshold that leaves candidates, whatever the random model's score range
    scores = np.concatenate([p[0, :size, ..., :len(LABELS)].ravel() for _, _, p in alone])
    for thr in (0.5, *np.quantile(scores, [0.8, 0.6, 0.4]).tolist()):
        if ours.head.stitched:   # token level: the windows' word scores stitched, then decoded
            word_probs = decoding.stitch_windows([(s, p[0, :size]) for s, _, p in alone])
            cands = ours.head.candidates(word_probs[None], [len(words)], [LABELS],
                                         threshold=thr)[0]
        else:
            cands = [sp._replace(start=sp.start + s, end=sp.end + s) for s, batch, probs in alone
                     for sp in ours.head.candidates(probs, batch.text_lengths, [LABELS],
                                                    threshold=thr)[0]]
        if cands:
            break
    assert cands
    merged = decoding.merge_candidates(cands, LABELS, ours.head_name)
    for flat in (True, False):
        spans = decoding.greedy_search(merged, flat_ner=flat, presorted=True)
        want = decoding.spans_to_entities(spans, text, [(a, b) for _, a, b in words])
        got = ours.inference([text], LABELS, batch_size=3, flat_ner=flat, window_size=size,
                             window_stride=stride, threshold=thr)[0]
        assert [(e["start"], e["end"], e["label"]) for e in got] == \
            [(e["start"], e["end"], e["label"]) for e in want]
        np.testing.assert_allclose([e["score"] for e in got], [e["score"] for e in want],
                                   rtol=1e-5)


def test_merge_entities_option(capsys):
    """NuNER Zero's merge_entities (opt-in): the API and `predict --merge-entities` give the
    model card's function applied to the plain result."""
    import copy

    from test_decoding import _model_card_merge

    from gliner_jax import predict

    ours = _api("nuner_zero_like")
    for thr in (0.5, 0.3, 0.2, 0.1, 0.05):
        plain = ours.inference(TEXTS, LABELS, threshold=thr)
        merged = ours.inference(TEXTS, LABELS, threshold=thr, merge_entities=True)
        if sum(map(len, merged)) < sum(map(len, plain)):
            break
    assert sum(map(len, merged)) < sum(map(len, plain))       # something was merged
    assert merged == [_model_card_merge(copy.deepcopy(p), t)
                      for p, t in zip(plain, TEXTS, strict=True)]
    texts = [t for t in TEXTS if t.strip()]
    args = ["-m", str(_build("nuner_zero_like")[1]), "-l", ",".join(LABELS), "-t", str(thr),
            "--merge-entities", "--cache-dir", "none", "-q", *texts]
    assert predict.main(args) == 0
    lines = [json.loads(x)["entities"] for x in capsys.readouterr().out.splitlines()]
    want = json.loads(json.dumps([m for m, t in zip(merged, TEXTS, strict=True) if t.strip()]))
    # the CLI batches the non-empty texts in its own chunks: float32 rounding of the scores
    # may differ from the API's batches, the entities may not
    assert [[{k: v for k, v in e.items() if k != "score"} for e in r] for r in lines] == \
        [[{k: v for k, v in e.items() if k != "score"} for e in r] for r in want]
    np.testing.assert_allclose([e["score"] for r in lines for e in r],
                               [e["score"] for r in want for e in r], rtol=1e-5)


def test_token_level_entity_longer_than_the_window_overlap():
    """Windows of 8 words every 5 (overlap 3): a 10-word entity lies whole in no window, yet the
    token-level model finds it from the stitched word scores. The model's scores are replaced by
    ones read off the words (B: start, I: inside, E: end), through the whole windowed API."""
    ours = _api("token_level")
    words = "x x x B I I I I I I I I E x x x x x x B E x".split()   # entities 3-12 and 19-20
    text = " ".join(words)

    def probs(batch):
        out = np.full(ours.head.probs_shape(*batch.span_mask.shape, batch.prompt_mask.shape[1]),
                      0.01, np.float32)
        for b, row in enumerate(batch.words):
            for w, word in enumerate(row):
                out[b, w, 1] = [0.01, 0.01, 0.01]
                if word in "BIE":
                    out[b, w, 1] = [0.9 if word == "B" else 0.01, 0.9 if word == "E" else 0.01,
                                    0.8]
        return out

    ours.probs = probs
    try:
        got = ours.inference([text], LABELS, window_size=8, window_stride=5, threshold=0.5)[0]
        whole = ours.inference([text], LABELS, threshold=0.5)[0]   # one window: the reference
    finally:
        del ours.probs
    want = [(text.index("B"), text.index("E") + 1, LABELS[1]),
            (text.rindex("B"), text.rindex("E") + 1, LABELS[1])]
    assert [(e["start"], e["end"], e["label"]) for e in whole] == want
    assert [(e["start"], e["end"], e["label"]) for e in got] == want
    assert got[0]["text"].split() == words[3:13]
    np.testing.assert_allclose([e["score"] for e in got], [0.8, 0.8], rtol=1e-6)

"""Bi-encoder GLiNER parity with the reference (gliner 0.2.29 BiEncoderSpanGLiNER and
BiEncoderTokenGLiNER), random models built offline: ModernBERT text + BERT labels encoder, and
DeBERTa-v3 text + BERT labels encoder, each as a span (markerV0) and a token-level model.

float64 logits to 1e-10 of the logit scale (ModernBERT: given transformers' own rotary tables,
see test_modernbert.py; with ours, float32 rounding of cos/sin, 1e-6 of the scale); float32 to
1e-4; decoded entities identical with scores within 1e-4; label vectors equal to the reference's
`encode_labels`; cached inference (`label_embeddings`, `predict_with_embeds`) equal to plain
inference; save_pretrained bit-identical both ways; the many-label kernels (span and token)
equal to the direct scoring.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from reference_biencoder import build_reference_biencoder
from reference_models import torch_rope

from gliner_jax import GLiNER
from gliner_jax.biencoder import BiEncoderGLiNER, BiEncoderTokenGLiNER
from gliner_jax.biencoder_io import load_biencoder, read_label_cache
from gliner_jax.layers import Precision
from gliner_jax.weights import read_safetensors

TEXTS = [
    "John Smith works at Google in Paris , and Alice moved to New York .",
    "Barack Obama was born in Hawaii .",
    "",
    "Berlin",
    "the river of the mountain city of London " * 6,   # longer than the local window
    "Apple , Microsoft and Google are companies in the United States .",
]
LABELS = ["person", "organization", "location", "city of birth", "company"]

MODELS = {
    # text 48 -> D 40 (projection), labels 32 -> 40 (labels_projection), window 8
    "modernbert_bert": dict(backbone="modernbert"),
    # no text projection, no rnn; labels 48 = D: no labels_projection
    "deberta_bert": dict(backbone="deberta", hidden_size=48, enc_hidden=48, labels_hidden=48,
                         num_layers=2, num_rnn_layers=0, max_width=6, seed=1),
    # token level (BiEncoderTokenModel): smaller, the same two layouts of projections
    "modernbert_bert_token": dict(backbone="modernbert", hidden_size=32, labels_hidden=24,
                                  num_layers=2, span_mode="token_level", seed=2),
    "deberta_bert_token": dict(backbone="deberta", hidden_size=32, enc_hidden=32,
                               labels_hidden=32, num_layers=1, num_rnn_layers=0,
                               span_mode="token_level", seed=3),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def ref_model(request, tmp_path_factory):
    return build_reference_biencoder(tmp_path_factory.mktemp(request.param),
                                     **MODELS[request.param])


def _ref_batch(ref, texts, labels):
    tokens, _, _ = ref.prepare_inputs([t for t in texts if t.strip()])
    batch = ref.create_collator()([{"tokenized_text": t, "ner": None} for t in tokens],
                                  entity_types=labels)
    return {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}


def _ours(model, tb, tables=None):
    args = [jnp.asarray(tb[k].numpy()) for k in ("input_ids", "attention_mask", "words_mask")]
    lengths = tb["text_lengths"].numpy()[:, 0]
    vectors = model.encode_labels(jnp.asarray(tb["labels_input_ids"].numpy()),
                                  jnp.asarray(tb["labels_attention_mask"].numpy()))
    return np.asarray(model(*args, jnp.asarray(lengths), vectors, num_words=int(lengths.max()),
                            encoder_tables=tables))


def _valid(tb, shape, token: bool):
    """Logits that mean something: spans inside the text [B, W, K, C], or words of the text
    [B, W, C, 3] (token level)."""
    lengths = tb["text_lengths"].numpy()[:, 0]
    s = np.arange(shape[1])[:, None]
    ends = s if token else s + np.arange(shape[2])[None]
    return np.broadcast_to((ends[None] < lengths[:, None, None])[..., None], shape)


def _is_token(ref) -> bool:
    return ref.config.span_mode == "token_level"


def test_logits_float64_and_float32(ref_model):
    ref, saved = ref_model
    tb = _ref_batch(ref, TEXTS, LABELS)
    with torch.no_grad():
        want64 = ref.model.double()(**tb).logits.numpy()
        want32 = ref.model.float()(**tb).logits.numpy()
    valid = _valid(tb, want64.shape, _is_token(ref))
    scale = np.abs(want64[valid]).max()
    assert scale > 1.0
    tables = torch_rope(ref, tb["input_ids"].shape[1])
    with jax.enable_x64(True):
        model64, _, _ = load_biencoder(saved, Precision(param_dtype=jnp.float64))
        got64 = _ours(model64, tb, tables)
        own64 = _ours(model64, tb) if tables else got64
    assert got64.dtype == np.float64 and got64.shape == want64.shape
    err64 = np.abs(got64 - want64)[valid].max()
    assert err64 <= 1e-10 * scale, (err64, scale)
    err_own = np.abs(own64 - want64)[valid].max()
    assert err_own <= 1e-6 * scale, (err_own, scale)

    model32, _, _ = load_biencoder(saved)
    with jax.default_matmul_precision("highest"):
        got32 = _ours(model32, tb)
    err32 = np.abs(got32 - want32)[valid].max()
    assert err32 <= 1e-4 * scale, (err32, scale)


def _ents(rows):
    return [[(e["start"], e["end"], e["text"], e["label"]) for e in r] for r in rows]


def _same(got, want, tol=1e-4):
    assert _ents(got) == _ents(want)
    for rg, rw in zip(got, want, strict=True):
        for eg, ew in zip(rg, rw, strict=True):
            assert abs(eg["score"] - ew["score"]) < tol


@pytest.fixture(scope="module")
def ours(ref_model):
    """One float32 gliner_jax bi-encoder per reference model (compiles once per module)."""
    model = GLiNER.from_pretrained(ref_model[1])
    assert type(model) is (BiEncoderTokenGLiNER if _is_token(ref_model[0]) else BiEncoderGLiNER)
    return model


def _forget_labels(model):
    model._vectors.clear()
    model._terms.clear()


def test_decoded_entities_identical(ref_model, ours):
    ref, _ = ref_model
    ref.model.float()
    n_found = 0
    for flat_ner in (True, False):
        for threshold in (0.3, 0.6):
            kw = dict(threshold=threshold, flat_ner=flat_ner)
            want = ref.inference(TEXTS, LABELS, **kw)
            _same(ours.inference(TEXTS, LABELS, **kw), want)
            n_found += sum(map(len, want))
    assert n_found > 0
    # one label set per text: the reference encodes their union once and gathers per row
    per_text = [LABELS[:2], LABELS[1:], ["person"], LABELS, ["company", "location"], LABELS[::2]]
    _same(ours.inference(TEXTS, per_text, threshold=0.3),
          ref.inference(TEXTS, per_text, threshold=0.3))


def test_label_cache_equals_plain_and_reference(ref_model, ours):
    ref, _ = ref_model
    ref.model.float()
    _forget_labels(ours)
    plain = ours.inference(TEXTS, LABELS, threshold=0.3)  # encodes its labels inside
    # one text alone: a batch of another shape, whose float32 rounding may differ in the last
    # bit from the same row in a larger batch (the token scorer's [B, W, C, 4D] products)
    plain_one = ours.inference(TEXTS[1:2], LABELS, threshold=0.3)[0]
    _forget_labels(ours)
    vecs = ours.encode_labels(LABELS)
    want_vecs = ref.encode_labels(LABELS).numpy()
    assert vecs.shape == want_vecs.shape
    np.testing.assert_allclose(vecs, want_vecs, rtol=1e-5, atol=1e-5)

    _forget_labels(ours)  # nothing cached: only the given vectors can be used
    assert ours.inference(TEXTS, LABELS, threshold=0.3, label_embeddings=vecs) == plain
    assert not ours._vectors and not ours._terms  # given vectors are not kept
    assert ours.batch_predict_with_embeds(TEXTS, vecs, LABELS, threshold=0.3) == plain
    assert ours.predict_with_embeds(TEXTS[1], vecs, LABELS, threshold=0.3) == plain_one
    _same([plain_one], [plain[1]], 1e-6)
    _same(plain, ref.batch_predict_with_embeds(TEXTS, ref.encode_labels(LABELS), LABELS,
                                               threshold=0.3))
    # the given vectors are the ones used: label i scored with label -1-i's vector is plain
    # inference with label i's prompt replaced by label -1-i
    swapped = ours.inference(TEXTS, LABELS, threshold=0.3, label_embeddings=vecs[::-1])
    renamed = dict(zip(LABELS, LABELS[::-1], strict=True))
    assert swapped == ours.inference(TEXTS, renamed, threshold=0.3)
    assert swapped != plain
    with pytest.raises(ValueError, match="label_embeddings must be"):
        ours.inference(TEXTS, LABELS, label_embeddings=vecs[:2])


def test_label_cache_file(ours, tmp_path):
    path = ours.save_label_cache(tmp_path / "labels.cache", LABELS)
    vecs = ours.encode_labels(LABELS)
    _forget_labels(ours)
    assert ours.load_label_cache(path) == len(LABELS)
    assert set(ours._vectors) == set(LABELS)  # read, not recomputed
    np.testing.assert_array_equal(ours.encode_labels(LABELS), vecs)
    with pytest.raises(ValueError, match="other labels-encoder weights"):
        read_label_cache(path, "0" * 64)
    (tmp_path / "junk").write_text("not a cache")
    with pytest.raises(ValueError, match="not a label cache file"):
        ours.load_label_cache(tmp_path / "junk")


def test_save_pretrained_round_trip(ref_model, ours, tmp_path):
    ref, saved = ref_model
    out = ours.save_pretrained(tmp_path / "ours")
    a = read_safetensors(saved / "model.safetensors")
    b = read_safetensors(out / "model.safetensors")
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    assert (out / "labels_tokenizer" / "tokenizer_config.json").is_file()
    # the reference loads our directory and predicts what it predicted before
    from gliner import GLiNER as RefGLiNER
    back = RefGLiNER.from_pretrained(str(out), local_files_only=True)
    back.eval()
    assert type(back.model) is type(ref.model)
    ref.model.float()
    _same(back.inference(TEXTS, LABELS, threshold=0.3), ref.inference(TEXTS, LABELS,
                                                                      threshold=0.3), 1e-6)
    # and ours reads back the same weights
    again, _, _ = load_biencoder(out)
    for (pa, va), (pb, vb) in zip(nnx.to_flat_state(nnx.state(again, nnx.Param)),
                                  nnx.to_flat_state(nnx.state(ours.model, nnx.Param)),
                                  strict=True):
        assert pa == pb and np.array_equal(np.asarray(va[...]), np.asarray(vb[...]))


def test_many_label_kernel_matches_direct(ref_model):
    """span_logits_shared (folded and projected forms, labels in chunks) or token_logits_shared
    (labels in chunks) == the model's own scoring of the same words and label vectors
    (float64)."""
    _, saved = ref_model
    with jax.enable_x64(True):
        model, _, _ = load_biencoder(saved, Precision(param_dtype=jnp.float64))
        rng = np.random.default_rng(0)
        d = model.config.hidden_size
        words = jnp.asarray(rng.normal(size=(2, 7, d)))
        vecs = jnp.asarray(rng.normal(size=(23, d)))
        if _is_token(ref_model[0]):
            want = np.asarray(model.scorer(words, jnp.broadcast_to(vecs[None], (2, 23, d))))
            terms = model.label_terms(vecs)
            for chunk in (5, 23, 1024, None):
                got = np.asarray(model.token_logits_shared(words, terms, chunk=chunk))
                assert got.shape == want.shape == (2, 7, 23, 3)
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-10)
            return
        prompts = model.prompt_rep_layer(jnp.broadcast_to(vecs[None], (2, 23, d)))
        want = np.asarray(model.span_rep_layer.span_rep_layer(words, prompts, None))
        terms = model.label_terms(vecs)
        for folded, chunk in ((True, 5), (False, 5), (True, 1024), (False, 23)):
            got = np.asarray(model.span_logits_shared(words, terms, folded=folded, chunk=chunk))
            assert got.shape == want.shape == (2, 7, model.config.max_width, 23)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-10)


def test_predict_cli_encodes_labels_once_and_reuses_cache_file(ref_model, ours, tmp_path,
                                                               monkeypatch, capsys):
    """`python -m gliner_jax.predict --labels @FILE --label-cache FILE`: each label goes through
    the labels encoder once per run (several chunks of texts), none on a run with the file."""
    import json

    from gliner_jax import biencoder, predict

    _, saved = ref_model
    labels = [f"type {i}" for i in range(40)] + LABELS
    (tmp_path / "labels.txt").write_text("\n".join(labels) + "\n")
    (tmp_path / "texts.txt").write_text("\n".join([t for t in TEXTS if t] * 4) + "\n")
    encoded = []
    real = biencoder._encode_labels

    def counting(graphdef, state, ids, mask):
        encoded.append(int((np.asarray(mask).sum(1) > 0).sum()))
        return real(graphdef, state, ids, mask)

    monkeypatch.setattr(biencoder, "_encode_labels", counting)
    monkeypatch.setattr(predict, "_load_model", lambda args: ours)
    cache = tmp_path / "labels.cache"
    argv = ["--model", str(saved), "--labels", f"@{tmp_path / 'labels.txt'}", "--input",
            str(tmp_path / "texts.txt"), "--label-cache", str(cache), "-b", "2", "-q",
            "-t", "0.3"]
    _forget_labels(ours)
    assert predict.main(argv) == 0
    first = capsys.readouterr().out
    assert sum(encoded) == len(labels) and cache.is_file()
    assert len(first.splitlines()) == 20

    _forget_labels(ours)
    encoded.clear()
    assert predict.main(argv) == 0
    assert capsys.readouterr().out == first and sum(encoded) == 0  # all read from the file
    rows = [json.loads(x) for x in first.splitlines()]
    want = ours.inference([t for t in TEXTS if t] * 4, labels, threshold=0.3, batch_size=2)
    _same([r["entities"] for r in rows], want, 1e-5)  # chunks pad differently: float32 noise

    cache.write_bytes(b"junk")
    assert predict.main(argv) == predict.EXIT_USAGE
    assert "not a label cache file" in capsys.readouterr().err

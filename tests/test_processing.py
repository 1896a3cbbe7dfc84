"""Processing parity: our numpy batches equal the reference (gliner 0.2.29) processor + collator."""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings

import numpy as np
import pytest
import torch
from gliner.data_processing.tokenizer import WhitespaceTokenSplitter
from gliner.modeling.utils import extract_prompt_features
from reference_models import cached_reference_gliner

from gliner_jax import processing as P
from gliner_jax.config import EncoderConfig, GlinerConfig

LONG_WORDS = [f"w{i}" for i in range(300)]  # w123 tokenizes into several pieces

TEXTS = {
    "ascii": "John Smith works at Google in Paris, and Alice moved to New York.",
    "unicode": "Zürich and São Paulo: café naïve résumé — 東京 北京 😀 ok",
    "punct": "Wait... what?!?! (yes) -- U.S.A. e-mail state-of-the-art foo_bar $100.00 #x @y",
    "single": "Obama",
    "zero_width": "hello \u200b world \u200d again",  # BERT drops \u200b / \u200d: no sub-token
    "whitespace": "  lots\tof \n whitespace   here  ",
    "empty": "",
    "blank": "   \n ",
    "long": " ".join(LONG_WORDS),  # > 256 tokens
}
LABELS = {
    "plain": ["person", "organization", "location"],
    "duplicates": ["person", "city", "person", "city", "date"],
    "spaces": ["new york city", "date of birth", "e-mail address"],
    "dict": {"per": "a person name", "loc": "a location", "org": "an organization"},
    "str": "person",
    "unicode": ["ville française", "東京 place"],
}


@pytest.fixture(scope="module", params=["deberta", "bert"])
def ref(request):
    """(reference GLiNER, our Processor) for one backbone, built once per test session."""
    model, saved = cached_reference_gliner(backbone=request.param)
    cfg = GlinerConfig.from_dict(json.loads((saved / "gliner_config.json").read_text()))
    tok, cls_index = P.load_tokenizer(saved, cfg)
    return model, P.Processor.from_config(tok, cls_index, cfg)


def reference_batch(model, texts, labels):
    """The reference's own inference pipeline up to the collated batch."""
    prepared = model.prepare_batch(texts, labels)
    batch = model.collate_batch(prepared["input_x"], prepared["entity_types"],
                                model.create_collator(), prepared["label_names"])
    return prepared, batch


def assert_matches_reference(model, ours: P.Batch, prepared, ref):
    b = len(prepared["input_x"])
    assert ours.num_rows == b
    np.testing.assert_array_equal(ours.input_ids, ref["input_ids"].numpy())
    np.testing.assert_array_equal(ours.attention_mask, ref["attention_mask"].numpy())
    np.testing.assert_array_equal(ours.words_mask, ref["words_mask"].numpy())
    np.testing.assert_array_equal(ours.text_lengths, ref["text_lengths"].view(-1).numpy())
    np.testing.assert_array_equal(ours.span_mask.reshape(b, -1), ref["span_mask"].numpy())
    assert ours.words == ref["tokens"]
    id_to_classes = ref["id_to_classes"]
    for i in range(b):
        mapping = id_to_classes[i] if isinstance(id_to_classes, list) else id_to_classes
        assert ours.label_names[i] == [mapping[c] for c in sorted(mapping)]
    assert ours.text_index == prepared["valid_to_orig_idx"]
    assert ours.offsets == [list(zip(s, e, strict=True)) for s, e in
                            zip(prepared["start_token_map"], prepared["end_token_map"],
                                strict=True)]
    t = ref["input_ids"].shape[1]
    _, p_mask = extract_prompt_features(model.config.class_token_index, torch.zeros(b, t, 2),
                                        ref["input_ids"], ref["attention_mask"], b, 2)
    np.testing.assert_array_equal(ours.prompt_mask, p_mask.bool().numpy())


@pytest.mark.parametrize("text", TEXTS, ids=str)
def test_split_words_matches_reference(text):
    ref = list(WhitespaceTokenSplitter()(TEXTS[text]))
    assert P.split_words(TEXTS[text]) == ref


@pytest.mark.filterwarnings("ignore::gliner_jax.processing.TruncationWarning")  # BERT, "long"
@pytest.mark.parametrize("labels", LABELS, ids=str)
def test_batch_matches_reference(ref, labels):
    model, proc = ref
    texts = list(TEXTS.values())
    prepared, batch = reference_batch(model, texts, LABELS[labels])
    ours = proc.encode_texts(texts, LABELS[labels], pad=False)
    assert ours.text_index == [0, 1, 2, 3, 4, 5, 8]  # empty and blank texts left out
    assert_matches_reference(model, ours, prepared, batch)


@pytest.mark.parametrize("text", ["ascii", "unicode", "punct", "single", "zero_width"])
def test_single_text_matches_reference(ref, text):
    model, proc = ref
    prepared, batch = reference_batch(model, [TEXTS[text]], LABELS["plain"])
    assert_matches_reference(model, proc.encode_texts(TEXTS[text], LABELS["plain"]),
                             prepared, batch)


def test_per_text_labels_match_reference(ref):
    model, proc = ref
    texts = [TEXTS["ascii"], TEXTS["unicode"], TEXTS["single"]]
    labels = [["person"], {"loc": "a place", "per": "someone"}, ["a", "b", "c", "a", "d"]]
    prepared, batch = reference_batch(model, texts, labels)
    ours = proc.encode_texts(texts, labels)
    assert_matches_reference(model, ours, prepared, batch)
    assert ours.prompts == [["person"], ["a place", "someone"], ["a", "b", "c", "d"]]
    assert ours.label_names[1] == ["loc", "per"]
    np.testing.assert_array_equal(ours.prompt_mask.sum(1), [1, 2, 4])


def test_zero_subtoken_word_quirk():
    """BERT drops \\u200b: later words shift left by one and the last word gets no mark."""
    model, saved = cached_reference_gliner(backbone="bert")
    cfg = GlinerConfig.from_dict(json.loads((saved / "gliner_config.json").read_text()))
    proc = P.Processor.from_config(*P.load_tokenizer(saved, cfg), cfg)
    ours = proc.encode_texts(TEXTS["zero_width"], ["x"])  # hello \u200b world \u200d again
    assert ours.words == [["hello", "\u200b", "world", "\u200d", "again"]]
    assert int(ours.text_lengths[0]) == 5
    assert sorted(set(ours.words_mask[0].tolist())) == [0, 1, 2, 3]  # 5 words, 3 marks
    prepared, batch = reference_batch(model, [TEXTS["zero_width"]], ["x"])
    np.testing.assert_array_equal(ours.words_mask, batch["words_mask"].numpy())


def test_max_len_truncation_warns_and_matches(ref):
    model, proc = ref
    n = model.config.max_len + 17
    text = " ".join(f"w{i}" for i in range(n))
    with pytest.warns(P.TruncationWarning) as record:  # BERT also warns at 512 tokens
        ours = proc.encode_texts([TEXTS["ascii"], text], LABELS["plain"])
    assert any("text 1 has 401 words" in str(w.message) and "the last 17 words are cut"
               in str(w.message) for w in record)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared, batch = reference_batch(model, [TEXTS["ascii"], text], LABELS["plain"])
    assert int(ours.text_lengths[1]) == model.config.max_len
    assert_matches_reference(model, ours, prepared, batch)


def test_tokenizer_truncation_warns_and_matches():
    """BERT's model_max_length=512 cuts sub-words: words past it get no words_mask entry."""
    model, saved = cached_reference_gliner(backbone="bert")
    cfg = GlinerConfig.from_dict(json.loads((saved / "gliner_config.json").read_text()))
    proc = P.Processor.from_config(*P.load_tokenizer(saved, cfg), cfg)
    text = " ".join(f"word{i}x" for i in range(200))  # ~4 pieces per word
    with pytest.warns(P.TruncationWarning, match="model_max_length=512"):
        ours = proc.encode_texts(text, LABELS["plain"])
    prepared, batch = reference_batch(model, [text], LABELS["plain"])
    assert ours.input_ids.shape[1] == 512
    assert int(ours.text_lengths[0]) == 200 > int(ours.words_mask.max())
    assert_matches_reference(model, ours, prepared, batch)


@pytest.mark.parametrize("labels, error", [
    ([], ValueError), ("", ValueError), ("  ", ValueError), (["a", ""], ValueError),
    ({"a": ""}, ValueError), ({"": "x"}, ValueError), ({"a": "x", "b": "x"}, ValueError),
    (["a", 3], TypeError),
])
def test_bad_labels_raise(labels, error):
    with pytest.raises(error, match="label"):
        P.normalize_labels(labels)


@pytest.mark.parametrize("labels, expected", [
    ("person", (["person"], ["person"])),
    (["b", "a", "b", "c", "a"], (["b", "a", "c"], ["b", "a", "c"])),
    ({"per": "a person", "loc": "a place"}, (["a person", "a place"], ["per", "loc"])),
])
def test_normalize_labels(labels, expected):
    assert P.normalize_labels(labels) == expected


def test_all_texts_empty_gives_none(ref):
    _, proc = ref
    assert proc.encode_texts(["", "  "], ["person"]) is None


# -- training targets ------------------------------------------------------------------------

TRAIN_EXAMPLES = [
    # (words, types, ner)
    ("John Smith works at Google in New York City .".split(), ["person", "org", "loc", "city"],
     [[0, 1, "person"], [4, 4, "org"], [6, 8, "loc"], [6, 8, "city"],  # multi-label span
      [6, 7, "loc"], [0, 9, "person"],       # nested; wider than K=3 -> ignored
      [2, 2, "misc"], [8, 12, "loc"]]),      # unknown label; ends past the text -> ignored
    ("a b".split(), ["x"], [[1, 1, "x"], [1, 2, "x"]]),
    ([], [""], []),                          # empty example: one empty prompt, all negative
]


def test_span_labels_match_reference():
    model, saved = cached_reference_gliner(backbone="deberta", max_width=3)
    collator = model.data_collator_class(model.config, data_processor=model.data_processor,
                                         return_tokens=True, prepare_labels=True)
    input_x = [{"tokenized_text": w, "ner": ner} for w, _, ner in TRAIN_EXAMPLES]
    types = [t for _, t, _ in TRAIN_EXAMPLES]
    ref = collator(input_x, entity_types=types)

    cfg = GlinerConfig.from_dict(json.loads((saved / "gliner_config.json").read_text()))
    proc = P.Processor.from_config(*P.load_tokenizer(saved, cfg), cfg)
    ours = proc.encode([w for w, _, _ in TRAIN_EXAMPLES], types,
                       ner=[ner for _, _, ner in TRAIN_EXAMPLES])
    b, w, k, c = ours.labels.shape
    assert (k, c) == (3, 4)
    ref_labels = ref["labels"].numpy()
    np.testing.assert_array_equal(ours.labels.reshape(b, w * k, c), ref_labels)
    np.testing.assert_array_equal(ours.span_mask.reshape(b, -1), ref["span_mask"].numpy())
    np.testing.assert_array_equal(ours.input_ids, ref["input_ids"].numpy())
    np.testing.assert_array_equal(ours.words_mask, ref["words_mask"].numpy())
    assert ours.labels.sum() == 6  # the 6 learnable (span, label) pairs
    assert ours.labels[0, 6, 2, 2] == ours.labels[0, 6, 2, 3] == 1.0  # both labels of one span


@pytest.mark.parametrize("n, k, L, expected_valid", [(3, 2, 4, 5), (0, 3, 2, 0), (5, 12, 5, 15)])
def test_span_mask(n, k, L, expected_valid):
    m = P.make_span_mask(n, k, L)
    assert m.shape == (L, k) and int(m.sum()) == expected_valid
    s, w = np.nonzero(m)
    assert np.all(s + w < n)


# -- buckets and padding ---------------------------------------------------------------------

@pytest.mark.parametrize("n, minimum, half, expected", [
    (1, 32, True, 32), (33, 32, True, 48), (49, 32, True, 64), (97, 32, True, 128),
    (129, 32, True, 160), (193, 32, True, 224), (600, 32, True, 640),
    (97, 32, False, 128), (5, 1, False, 8), (8, 1, False, 8), (3, 4, True, 4), (7, 4, True, 8),
    (13, 4, True, 16), (300, 16, True, 320),
])
def test_bucket_values(n, minimum, half, expected):
    assert P.bucket(n, minimum, half) == expected


def test_padding_is_inert_and_bounded(ref):
    model, proc = ref
    rng = np.random.default_rng(0)
    pool = TEXTS["ascii"].split() + TEXTS["unicode"].split() + LONG_WORDS[:40]
    shapes = set()
    for _ in range(25):
        n_texts = int(rng.integers(1, 6))
        texts = [" ".join(rng.choice(pool, int(rng.integers(1, 60)))) for _ in range(n_texts)]
        labels = list(rng.choice(["a", "b c", "d", "e", "f", "g", "h"], int(rng.integers(1, 8))))
        exact = proc.encode_texts(texts, labels, pad=False)
        padded = proc.pad(exact)
        shapes.add(tuple(padded.shape.values()))
        s, p = exact.shape, padded.shape
        assert p["B"] in (1, 2, 4, 8) and p["T"] % 16 == 0 and p["W"] >= s["W"]
        b, t, w, c = s["B"], s["T"], s["W"], s["C"]
        np.testing.assert_array_equal(padded.input_ids[:b, :t], exact.input_ids)
        np.testing.assert_array_equal(padded.words_mask[:b, :t], exact.words_mask)
        np.testing.assert_array_equal(padded.span_mask[:b, :w], exact.span_mask)
        np.testing.assert_array_equal(padded.prompt_mask[:b, :c], exact.prompt_mask)
        assert (padded.input_ids[:, t:] == proc.pad_token_id).all()
        assert (padded.input_ids[b:] == proc.pad_token_id).all()
        assert padded.attention_mask.sum() == exact.attention_mask.sum()
        assert padded.words_mask.sum() == exact.words_mask.sum()
        assert padded.span_mask.sum() == exact.span_mask.sum()
        assert padded.prompt_mask.sum() == exact.prompt_mask.sum()
        assert (padded.text_lengths[b:] == 0).all()
        assert padded.words == exact.words
    # every padded size is a bucket value, and each axis only takes a few of them
    for axis, (minimum, half) in enumerate([(1, False), (32, True), (16, True), (12, False),
                                            (4, True)]):
        values = {shape[axis] for shape in shapes}
        assert all(P.bucket(v, minimum, half) == v for v in values), (axis, values)
        assert len(values) <= 6, (axis, values)


def test_padding_labels():
    batch = P.Batch(
        input_ids=np.ones((1, 3), np.int32), attention_mask=np.ones((1, 3), np.int32),
        words_mask=np.array([[0, 1, 0]], np.int32), text_lengths=np.array([1], np.int32),
        span_mask=np.ones((1, 1, 2), bool), prompt_mask=np.ones((1, 1), bool),
        labels=np.ones((1, 1, 2, 1), np.float32), words=[["x"]], prompts=[["p"]],
        label_names=[["p"]])
    out = P.pad_batch(batch, B=2, T=5, W=4, C=3, pad_token_id=7, padding_side="left")
    assert out.labels.shape == (2, 4, 2, 3) and out.labels.sum() == 2
    np.testing.assert_array_equal(out.input_ids[0], [7, 7, 1, 1, 1])
    np.testing.assert_array_equal(out.words_mask[0], [0, 0, 0, 1, 0])
    with pytest.raises(ValueError, match="cannot pad"):
        P.pad_batch(batch, B=1, T=2, W=1, C=1, pad_token_id=0)


# -- tokenizer loading -----------------------------------------------------------------------

def test_load_tokenizer_saved_and_legacy(tmp_path):
    model, saved = cached_reference_gliner(backbone="deberta")
    ref_tok = model.data_processor.transformer_tokenizer
    words = ["<<ENT>>", "person", "<<SEP>>", "Barack", "Obama", "[FLERT]", "."]

    cfg = GlinerConfig.from_dict(json.loads((saved / "gliner_config.json").read_text()))
    tok, idx = P.load_tokenizer(saved, cfg)
    assert idx == model.config.class_token_index == len(ref_tok) - 2 == len(tok) - 2
    assert tok.convert_tokens_to_ids(["[FLERT]", "<<ENT>>", "<<SEP>>"]) == [idx - 1, idx, idx + 1]
    assert (tok(words, is_split_into_words=True)["input_ids"]
            == ref_tok(words, is_split_into_words=True)["input_ids"])

    # legacy v2.1 layout: no tokenizer files, no class_token_index / vocab_size in the config
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    shutil.copy(saved / "model.safetensors", legacy / "model.safetensors")
    enc_dir = saved.parent / "encoder"
    legacy_cfg = {"model_name": str(enc_dir), "max_width": 12, "hidden_size": 48,
                  "span_mode": "markerV0", "max_len": 384, "dropout": 0.4}
    (legacy / "gliner_config.json").write_text(json.dumps(legacy_cfg))
    gcfg = GlinerConfig.from_dict(legacy_cfg, encoder=EncoderConfig.from_json_file(
        enc_dir / "config.json"))
    tok2, idx2 = P.load_tokenizer(legacy, gcfg)
    assert idx2 == idx and len(tok2) == len(tok)
    assert (tok2(words, is_split_into_words=True)["input_ids"]
            == ref_tok(words, is_split_into_words=True)["input_ids"])

    gcfg = dataclasses.replace(gcfg, model_name=str(tmp_path / "does-not-exist"))
    with pytest.raises(FileNotFoundError, match="no tokenizer found"):
        P.load_tokenizer(legacy, gcfg)


def test_load_tokenizer_validates_explicit_index():
    _, saved = cached_reference_gliner(backbone="deberta")
    cfg = GlinerConfig.from_dict(json.loads((saved / "gliner_config.json").read_text()))
    cfg = dataclasses.replace(cfg, class_token_index=10_000)
    with pytest.raises(ValueError, match="out of range"):
        P.load_tokenizer(saved, cfg)

"""Relation extraction (gliner 0.2.29 UniEncoderSpanRelexModel) at parity, on tiny random models.

For each adjacency layer (dot, mlp, bilinear, gcn, attention, gat, none; on markerV0, marker
and markerV1):
entity logits, the selected entities, the adjacency's pairs and their relation logits float64
to 1e-10 (relative to the logit scale) and float32 to 1e-4; decoded entities and relations
identical (scores within 1e-5) at several entity / adjacency / relation thresholds, flat,
nested and multi-label; the round trip reference -> ours -> reference bit-identical; the loss
and every gradient float64 (through the one train-step loss). Long texts: the relations whose
two ends share a window are found as if each window were predicted alone.
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
    cached_reference_gliner,
    edited_copy,
    entity_tuples,
    jax_loss_and_grads,
    load_error,
    reference_batch,
    reference_loss_and_grads,
)

from gliner_jax import GLiNER
from gliner_jax import relations as relex
from gliner_jax.convert import load_gliner
from gliner_jax.layers import Precision

TEXTS = [
    "John Smith works at Google in Paris , and Alice moved to New York .",
    "Barack Obama was born in Hawaii .",
    "",
    "Apple , Microsoft and Google are companies in the United States of America .",
]
LABELS = ["person", "organization", "location"]
RELATIONS = ["works at", "lives in", "founded"]
TINY = dict(hidden_size=16, enc_hidden=32, num_layers=1, heads=2, max_width=4, weight_scale=2.0)
# name -> (gliner_config overrides, seed: one whose random weights find relations)
MODELS = {
    "dot": ({"relations_layer": "dot"}, 2),
    "mlp": ({"relations_layer": "mlp"}, 2),
    "bilinear": ({"relations_layer": "bilinear", "span_mode": "marker"}, 4),
    "gcn": ({"relations_layer": "gcn", "span_mode": "markerV1"}, 3),
    "none": ({"relations_layer": "none"}, 2),
    "attention": ({"relations_layer": "attention"}, 2),
    "gat": ({"relations_layer": "gat", "span_mode": "marker"}, 2),
}
# The attention adjacency is softmax weights (each row sums to 1 over its E entities), not a
# sigmoid around 0.5: its tests use these adjacency thresholds instead (per COMBOS row; the
# first also in the logits test).
ATTENTION_ADJACENCY = (0.1, 0.075, 0.15, 0.1)


def _adjacency_thresholds(name):
    if name == "attention":
        return ATTENTION_ADJACENCY
    return tuple(c[3] for c in COMBOS)


def _build(name):
    overrides, seed = MODELS[name]
    return cached_reference_gliner(gliner_overrides=overrides, seed=seed, **TINY)


@functools.cache
def _api(name) -> GLiNER:
    return GLiNER.from_pretrained(_build(name)[1])


@pytest.fixture(scope="module", params=sorted(MODELS))
def name(request):
    return request.param


def _ours(model, tb, threshold, adjacency_threshold):
    """Our entity logits, entity spans, pairs and their relation logits, as the reference's;
    then the adjacency, entity vectors and their mask (for `_adjacency_error`)."""
    args = [jnp.asarray(tb[k].numpy()) for k in ("input_ids", "attention_mask", "words_mask")]
    lengths = tb["text_lengths"].numpy()[:, 0]
    logits, _, words, rel, _ = model.relex_forward(
        *args, jnp.asarray(lengths), num_words=int(lengths.max()), num_classes=len(LABELS),
        num_relations=len(RELATIONS))
    probs = np.asarray(jax.nn.sigmoid(logits))
    selected = relex.select_entities(probs, lengths, [len(LABELS)] * len(lengths),
                                     [threshold] * len(lengths))
    idx, mask = relex.pad_entities(selected, len(lengths))
    adj, pair = model.relation_scores(words, jnp.asarray(lengths), rel, jnp.asarray(idx),
                                      jnp.asarray(mask))
    k = model.config.max_width
    spans = [[(f // k, f // k + f % k) for f in s.tolist()] for s in selected]
    pairs = []
    for b, s in enumerate(selected):
        n = len(s)
        off = ~np.eye(n, dtype=bool)
        if adj is not None:
            off &= np.asarray(adj)[b, :n, :n] > adjacency_threshold
        pairs.append([(int(i), int(j)) for i, j in zip(*np.nonzero(off), strict=True)])
    x = model.entity_vectors(words, jnp.asarray(lengths), jnp.asarray(idx))
    return (np.asarray(logits), spans, pairs, np.asarray(pair),
            None if adj is None else np.asarray(adj), np.asarray(x), mask)


def _adjacency_error(ref, got):
    """Max |ours - reference| of the adjacency over valid pairs: the reference's
    relations_rep_layer on our entity vectors (whose parity the relation logits prove)."""
    adj, x, mask = got[4:]
    if adj is None:
        return 0.0
    with torch.no_grad():
        want = ref.model.relations_rep_layer(torch.tensor(x), torch.tensor(mask))
    valid = mask[:, :, None] & mask[:, None, :]
    assert valid.sum() > len(mask)                            # some pair of two entities
    return np.abs(adj - want.numpy())[valid].max()


def _compare(ref_out, got, scale_tol):
    logits, spans, pairs, pair = got[:4]
    want = ref_out.logits.numpy()
    n_rows = want.shape[0]
    ent = ref_out.entity_spans.numpy()
    rel_idx, rel_mask = ref_out.rel_idx.numpy(), ref_out.rel_mask.numpy()
    rel_logits = ref_out.rel_logits.numpy()
    assert ent.shape[1] == max(max(len(s) for s in spans), 1)
    for b in range(n_rows):
        assert [tuple(x) for x in ent[b, :len(spans[b])].tolist()] == spans[b]
        assert [tuple(x) for x in rel_idx[b][rel_mask[b]].tolist()] == pairs[b]
    got_rel = np.stack([np.stack([pair[b, i, j] for i, j in pairs[b]]
                                 + [np.zeros(pair.shape[-1])] * (rel_idx.shape[1] - len(pairs[b])))
                        for b in range(n_rows)])
    rel_err = np.abs(got_rel - rel_logits)[rel_mask].max(initial=0.0)
    return logits, want, rel_err, np.abs(rel_logits[rel_mask]).max(initial=1.0)


def test_logits_float64_and_float32(name):
    ref, saved = _build(name)
    tb = reference_batch(ref, TEXTS, LABELS, RELATIONS)
    thr = 0.5
    adj_thr = _adjacency_thresholds(name)[0] or thr
    with torch.no_grad():
        out64 = ref.model.double()(**tb, threshold=thr, adjacency_threshold=adj_thr)
        out32 = ref.model.float()(**tb, threshold=thr, adjacency_threshold=adj_thr)
    assert out64.rel_mask.any()
    lengths = tb["text_lengths"].numpy()[:, 0]
    valid = (np.arange(out64.logits.shape[1])[None, :, None]
             + np.arange(out64.logits.shape[2])[None, None, :]) < lengths[:, None, None]
    valid = np.broadcast_to(valid[..., None], out64.logits.shape)
    with jax.enable_x64(True):
        model64, _ = load_gliner(saved, Precision(param_dtype=jnp.float64))
        ours64 = _ours(model64, tb, thr, adj_thr)
        got, want, rel_err, rel_scale = _compare(out64, ours64, 1e-10)
    scale = np.abs(want[valid]).max()
    assert scale > 1.0
    assert np.abs(got - want)[valid].max() <= 1e-10 * scale
    assert rel_err <= 1e-10 * rel_scale, (rel_err, rel_scale)
    ref.model.double()
    assert _adjacency_error(ref, ours64) <= 1e-10      # probabilities / attention weights
    ref.model.float()
    model32, _ = load_gliner(saved)
    with jax.default_matmul_precision("highest"):
        ours32 = _ours(model32, tb, thr, adj_thr)
        got, want, rel_err, rel_scale = _compare(out32, ours32, 1e-4)
    assert np.abs(got - want)[valid].max() <= 1e-4 * scale
    assert rel_err <= 1e-4 * rel_scale, (rel_err, rel_scale)
    assert _adjacency_error(ref, ours32) <= 1e-4


def _rels(rows):
    return [[(r["head"], r["tail"], r["relation"]) for r in row] for row in rows]


COMBOS = [  # (flat_ner, multi_label, threshold, adjacency_threshold, relation_threshold)
    (True, False, 0.3, None, None), (False, False, 0.5, 0.3, 0.7), (True, True, 0.4, 0.6, 0.5),
    (False, True, 0.6, None, 0.3),
]


def test_decoded_entities_and_relations_identical(name):
    ref, _ = _build(name)
    ours = _api(name)
    found = 0
    for (flat_ner, multi_label, thr, _, rel_thr), adj_thr in zip(
            COMBOS, _adjacency_thresholds(name), strict=True):
        kw = dict(threshold=thr, flat_ner=flat_ner, multi_label=multi_label,
                  adjacency_threshold=adj_thr, relation_threshold=rel_thr)
        want_e, want_r = ref.inference(TEXTS, LABELS, relations=RELATIONS, batch_size=4, **kw)
        got_e, got_r = ours.inference(TEXTS, LABELS, relations=RELATIONS, batch_size=4, **kw)
        assert entity_tuples(got_e) == entity_tuples(want_e), kw
        assert _rels(got_r) == _rels(want_r), kw
        for rg, rw in zip(got_r, want_r, strict=True):
            for a, b in zip(rg, rw, strict=True):
                assert abs(a["score"] - b["score"]) < 1e-5
        found += sum(map(len, want_r))
    assert found > 0
    # predict_relations / predict_entities: the reference's single-text forms
    kw = dict(threshold=0.3)
    assert ours.predict_relations(TEXTS[0], LABELS, RELATIONS, **kw)[1] == \
        ours.inference(TEXTS[:1], LABELS, relations=RELATIONS, **kw)[1][0]
    assert entity_tuples([ours.predict_entities(TEXTS[0], LABELS, **kw)]) == \
        entity_tuples([ref.predict_entities(TEXTS[0], LABELS, **kw)])


def test_round_trip_to_reference_and_back(name, tmp_path):
    from gliner import GLiNER as RefGLiNER

    ref, saved = _build(name)
    out = _api(name).save_pretrained(tmp_path / "exported")
    cfg = json.loads((out / "gliner_config.json").read_text())
    assert cfg["relations_layer"] == MODELS[name][0]["relations_layer"]
    assert_same_safetensors(saved, out)
    back = RefGLiNER.from_pretrained(str(out), local_files_only=True)
    back.eval()
    assert type(back.model) is type(ref.model)
    kw = dict(threshold=0.3, relations=RELATIONS)
    assert back.inference(TEXTS, LABELS, **kw) == ref.inference(TEXTS, LABELS, **kw)


EXAMPLES = [
    {"tokenized_text": "John Smith works at Google in Paris , said Alice .".split(),
     "ner": [[0, 1, "person"], [4, 4, "organization"], [6, 6, "location"], [9, 9, "person"]],
     "relations": [[0, 1, "works at"], [0, 2, "lives in"], [3, 2, "lives in"]]},
    {"tokenized_text": "Barack Obama was born in Hawaii".split(),
     "ner": [[0, 1, "person"], [5, 5, "location"]], "relations": [[0, 1, "born in"]]},
    {"tokenized_text": "nothing to see here".split(), "ner": [], "relations": []},
]
TYPES = [["location", "person", "organization"], ["person", "location"], [""]]
REL_TYPES = [["works at", "lives in"], ["born in"], []]


@pytest.mark.parametrize("model_name", ["mlp", "none", "attention", "gat"])
def test_loss_and_gradients_match_reference_float64(model_name):
    """The reference's relex loss (gold entities, its sampled negative pairs) and every
    gradient, against ours through train.step.batch_loss on the same targets. The attention
    layers train on the rows that have entities: torch's attention over a row without any
    entity is NaN, and so is the reference's loss (ours scores no pair there)."""
    import random

    from train.config import LossConfig
    from train.relex_loss import relex_targets

    ref, saved = _build(model_name)
    random.seed(0)
    collator = ref.create_collator()
    collator.prepare_labels = True
    n = 2 if model_name in ("attention", "gat") else len(EXAMPLES)
    raw = collator(EXAMPLES[:n], entity_types=TYPES[:n], relation_types=REL_TYPES[:n])
    tb = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    for k in ("labels", "adj_matrix", "rel_matrix"):
        if tb.get(k) is not None:
            tb[k] = tb[k].double()
    cfg = LossConfig()
    want, want_grads = reference_loss_and_grads(ref, tb, cfg)
    k = ref.config.max_width
    labels = tb["labels"].numpy()
    labels = labels.reshape(labels.shape[0], -1, k, labels.shape[-1])
    if tb.get("adj_matrix") is not None:
        adj = tb["adj_matrix"].numpy()
    else:   # relations_layer "none": every pair (i != j) of the gold entities
        counts = (labels.max(-1) == 1).reshape(len(labels), -1).sum(1)
        valid = np.arange(counts.max())[None] < counts[:, None]
        adj = (valid[:, :, None] & valid[:, None, :]).astype(np.float64)
    batch = {k: tb[k].numpy() for k in ("input_ids", "attention_mask", "words_mask")}
    batch["text_lengths"] = tb["text_lengths"].numpy()[:, 0]
    batch["span_mask"] = tb["span_mask"].numpy().reshape(labels.shape[:3])
    batch["labels"] = labels
    batch.update(relex_targets(labels, adj, tb["rel_matrix"].numpy()))
    with jax.enable_x64(True):
        ours, _ = load_gliner(saved, Precision(param_dtype=jnp.float64))
        loss, got_grads = jax_loss_and_grads(ours, batch, cfg)
    assert abs(loss - want) <= 1e-10 * abs(want)
    assert sorted(got_grads) == sorted(want_grads)
    for k, g in want_grads.items():
        scale = max(np.abs(g).max(), 1e-3)
        assert np.abs(got_grads[k] - g).max() <= 1e-8 * scale, k
    assert np.abs(want_grads["pair_rep_layer.0.weight"]).max() > 0      # the relation term
    adjacency_weight = {"mlp": "mlp.0.weight", "attention": "attn.in_proj_weight",
                        "gat": "linear.weight"}.get(model_name)
    if adjacency_weight:                                                   # the adjacency term
        key = "relations_rep_layer.relation_rep_layer." + adjacency_weight
        assert np.abs(want_grads[key]).max() > 0


def test_long_text_windows():
    """A text longer than the window: the relations are those of every window predicted alone
    (both ends inside it), merged by max score, kept when both ends are decoded entities."""
    from gliner_jax import decoding
    from gliner_jax.model import _Row, plan_windows
    from gliner_jax.processing import split_words

    ours = _api("dot")
    text = " ".join(TEXTS[0].split() * 2 + TEXTS[3].split())
    words = split_words(text)
    size, stride, thr = 8, 5, 0.3
    windows = plan_windows(len(words), size, stride, ours.config.max_width - 1)
    assert len(windows) > 4 and all(e - s == size for s, e in windows)
    cands = []
    for s, e in windows:
        row = _Row(0, s, [w for w, _, _ in words[s:e]], (LABELS, LABELS), RELATIONS)
        batch = ours.processor.encode([row.words], [LABELS], relations=[RELATIONS], pad=True)
        _, rels = relex.relex_rows(ours, batch, [row], {k: [thr] for k in
                                                        ("entity", "adjacency", "relation")})
        cands += [r.shifted(s) for r in rels[0]]
    assert cands
    got_e, got_r = ours.inference([text], LABELS, relations=RELATIONS, threshold=thr,
                                  window_size=size, window_stride=stride, batch_size=3)
    spans = [decoding.Span(next(i for i, w in enumerate(words) if w[1] == e["start"]),
                           next(i for i, w in enumerate(words) if w[2] == e["end"]),
                           e["label"], e["score"]) for e in got_e[0]]
    want = relex.relations_to_dicts(relex.merge_relations(cands), got_e[0], spans)
    assert want and _rels(got_r) == _rels([want])   # scores: float32, other padding
    np.testing.assert_allclose([r["score"] for r in got_r[0]], [r["score"] for r in want],
                               rtol=1e-5)
    heads = {(r["head"]["start"], r["tail"]["start"]) for r in want}
    assert len(heads) > 1


def test_relations_need_a_relex_model():
    _, saved = cached_reference_gliner(**dict(TINY, weight_scale=None))
    model = GLiNER.from_pretrained(saved)
    with pytest.raises(ValueError, match="does not extract relations"):
        model.inference(TEXTS, LABELS, relations=RELATIONS)


def test_predict_command_relations(capsys, tmp_path):
    """`python -m gliner_jax.predict --relations`: the API's relations per text; a model that
    does not extract relations is one usage line."""
    from gliner_jax import predict

    saved = _build("dot")[1]
    texts = [TEXTS[0], TEXTS[3]]
    args = ["-m", str(saved), "-l", ",".join(LABELS), "-r", ",".join(RELATIONS), "-t", "0.3",
            "--relation-threshold", "0.6", "--cache-dir", "none", "-q", *texts]
    assert predict.main(args) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    ents, rels = _api("dot").inference(texts, LABELS, relations=RELATIONS, threshold=0.3,
                                       relation_threshold=0.6)
    assert [x["relations"] for x in lines] == json.loads(json.dumps(rels))
    assert [x["entities"] for x in lines] == json.loads(json.dumps(ents))
    assert sum(map(len, rels)) > 0
    _, plain = cached_reference_gliner(**dict(TINY, weight_scale=None))
    assert predict.main(["-m", str(plain), "-l", "person", "-r", "works at", "--cache-dir",
                         "none", "-q", "John works at Google ."]) == predict.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --relations needs a relation-extraction model") and \
        "\n" not in err


def test_attention_alias_and_head_width(tmp_path):
    """relations_layer "attn" is the reference's alias of "attention" (same keys, same
    adjacency); the attention layers' 8 heads must split the hidden width, or one line says so."""
    saved = _build("attention")[1]
    alias = edited_copy(saved, tmp_path / "attn", relations_layer="attn")
    kw = dict(threshold=0.5, adjacency_threshold=ATTENTION_ADJACENCY[0], relations=RELATIONS)
    got = GLiNER.from_pretrained(alias).inference(TEXTS, LABELS, **kw)
    assert got == _api("attention").inference(TEXTS, LABELS, **kw) and sum(map(len, got[1]))
    bad = edited_copy(saved, tmp_path / "narrow", relations_layer="gat", hidden_size=12)
    assert "needs hidden_size divisible by its 8 attention heads, got 12" in load_error(bad)


def test_spacy_and_server_give_a_relex_models_entities():
    """The spaCy component and the server's engine predict entities only: given a relex model
    they give its entities (the API's without relations); a request that asks the server for
    relations is refused with one line."""
    spacy = pytest.importorskip("spacy")
    from gliner_jax import spacy_component  # noqa: F401  (registers the factory)
    from gliner_jax.serve.config import ServeConfig
    from gliner_jax.serve.engine import Engine
    from gliner_jax.serve.protocol import PredictRequest, RequestError, parse_request

    saved, ours = str(_build("dot")[1]), _api("dot")
    texts = [t for t in TEXTS if t]
    want = ours.inference(texts, LABELS, threshold=0.3, return_relations=False)
    assert sum(map(len, want)) > 3
    nlp = spacy.blank("en")
    nlp.add_pipe("gliner_jax", config={"model": saved, "labels": LABELS, "threshold": 0.3})
    for text, ents in zip(texts, want, strict=True):
        doc = nlp(text)
        assert [(s.start_char, s.end_char, s.label_) for s in doc.ents] == \
            [(e["start"], e["end"], e["label"]) for e in ents]
    eng = Engine(ServeConfig(model=saved, max_batch_size=4, cache_dir="none"))
    got = eng.predict([PredictRequest(t, LABELS, 0.3) for t in texts])
    assert [[(e["start"], e["end"], e["label"]) for e in g] for g in got] == \
        [[(e["start"], e["end"], e["label"]) for e in w] for w in want]
    with pytest.raises(RequestError) as e:
        parse_request(json.dumps({"text": texts[0], "labels": LABELS,
                                  "relations": RELATIONS}).encode())
    assert "does no relation extraction" in e.value.message and "\n" not in e.value.message


def test_token_relex_is_refused_in_one_line(tmp_path):
    """The token-level relex family (UniEncoderTokenRelexModel) is not built: one line names it."""
    bad = edited_copy(_build("dot")[1], tmp_path / "token_relex", span_mode="token_level")
    assert "model family 'gliner_uni_encoder_token_relex' is not supported" in load_error(bad)

"""train.prepare_data / train.wordnet_labels: the generated training data for the shipped model.

Needs WordNet (../shared/data/nltk_data, or $GLINER_NLTK_DATA); the corpora are built here as a
tiny BIO dataset so that the checks are exact."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from train import prepare_data, temporal
from train.wordnet_labels import WordNet

REPO = Path(__file__).resolve().parents[1]
NLTK = Path(os.environ.get("GLINER_NLTK_DATA") or REPO.parent / "shared" / "data" / "nltk_data")
needs_wordnet = pytest.mark.skipif(not (NLTK / "corpora" / "wordnet").is_dir(),
                                   reason=f"WordNet not found at {NLTK}")


@pytest.fixture(scope="module")
def wn():
    return WordNet(NLTK)


def test_units_cover_every_sentence_in_order():
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(5, 40, size=300)]
    units = prepare_data.make_units(300, rng, lengths, 0.3, 50, 120)
    assert [i for u in units for i in u] == list(range(300))
    passages = [u for u in units if len(u) > 1]
    assert passages and len(passages) < len(units)
    assert all(sum(lengths[i] for i in u) <= 120 for u in passages)
    assert prepare_data.make_units(300, np.random.default_rng(0), lengths, 0, 50, 120) == \
        [[i] for i in range(300)]


def test_join_shifts_spans():
    ex = prepare_data.join([{"tokenized_text": ["A", "b"], "ner": [[0, 0, "x"]]},
                            {"tokenized_text": ["c", "D", "E"], "ner": [[1, 2, "y"]]}])
    assert ex == {"tokenized_text": ["A", "b", "c", "D", "E"],
                  "ner": [[0, 0, "x"], [3, 4, "y"]]}


@needs_wordnet
@pytest.mark.parametrize("a,b,related", [
    ("politician", "person", True), ("person", "writer", True), ("sports team", "organization",
                                                                 True),
    ("company", "organization", True), ("musical artist", "artist", True),
    ("individual", "politician", True),          # a curated paraphrase of person
    ("city", "country", False), ("disease", "drug", False), ("album", "band", False),
    ("river", "person", False), ("geopolitical entity", "award", False)])
def test_related(wn, a, b, related):
    assert wn.related(a, b) is related and wn.related(b, a) is related


@needs_wordnet
def test_fine_types(wn):
    chains = wn.fine_types("Einstein", "person")
    assert chains and chains[0][0] == "physicist" and "scientist" in chains[0]
    assert wn.fine_types("Einstein", "location") == []
    assert wn.fine_types("not an instance at all", "person") == []
    assert "city" in wn.classes() and "object" not in wn.classes() and len(wn.classes()) > 300


def _bio(folder: Path, sentences, labels):
    folder.mkdir(parents=True)
    (folder / "labels.json").write_text(json.dumps(labels))
    lines = []
    for words in sentences:
        lines += [f"{w}\t{t}" for w, t in words] + [""]
    (folder / "train.txt").write_text("\n".join(lines) + "\n")


@needs_wordnet
def test_prepare_is_reproducible_and_negatives_never_contradict(tmp_path, wn):
    sents = [[("Einstein", "B-PER"), ("met", "O"), ("Bohr", "B-PER"), ("in", "O"),
              ("Paris", "B-LOC"), (".", "O")],
             [("Acme", "B-ORG"), ("Corp", "I-ORG"), ("hired", "O"), ("Marie", "B-PER"),
              ("Smith", "I-PER"), (".", "O")],
             [("Nothing", "O"), ("here", "O"), (".", "O")]] * 40
    _bio(tmp_path / "data" / "supervised" / "toy", sents,
         {"PER": "person", "LOC": "location", "ORG": "organization"})
    argv = ["--data", str(tmp_path / "data"), "--wordnet", str(NLTK), "--datasets", "toy",
            "--passage-rate", "0.3", "--fine-rate", "1.0", "--paraphrase-rate", "0.3"]
    assert prepare_data.main(argv + ["--out", str(tmp_path / "a")]) == 0
    assert prepare_data.main(argv + ["--out", str(tmp_path / "b")]) == 0
    a = (tmp_path / "a" / "toy.jsonl").read_text()
    assert a == (tmp_path / "b" / "toy.jsonl").read_text()
    exs = [json.loads(line) for line in a.splitlines()]
    words = [w for ex in exs for w in ex["tokenized_text"]]
    assert words == [w for s in sents for w, _ in s]  # every sentence once, in order
    assert any(len(ex["tokenized_text"]) > 6 for ex in exs)  # passages
    gold = [s[2] for ex in exs for s in ex["ner"]]
    assert {"physicist", "scientist"} & set(gold)  # Einstein and Bohr re-typed
    assert any(g not in ("person", "location", "organization") for g in gold)
    for ex in exs:
        labels = {s[2] for s in ex["ner"]}
        assert len(labels) + len(ex["ner_negatives"]) <= prepare_data.MAX_TYPES
        for neg in ex["ner_negatives"]:
            assert all(not wn.related(neg, g) for g in labels), (neg, labels)
        if not ex["ner"]:
            assert ex["ner_negatives"]  # texts without entities still teach "none here"
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["datasets"]["toy"]["sentences"] == 120


def test_zero_shot_domains_are_refused(tmp_path, capsys):
    assert prepare_data.main(["--out", str(tmp_path), "--datasets", "mit_movie"]) == 2
    assert "zero-shot" in capsys.readouterr().err


@pytest.mark.parametrize("text, want", [
    ("Apple unveiled Vision Pro on June 5 , 2023 in Cupertino .", [("June 5 , 2023", "date")]),
    ("He left on Tuesday , June 5 , 2023 at 10 pm .",
     [("Tuesday , June 5 , 2023", "date"), ("10 pm", "time")]),
    ("In 1997 , 1500 troops arrived ( 1998 ) in the 1990s and the 19th century .",
     [("1997", "year"), ("1998", "year"), ("1990s", "year"), ("19th century", "date")]),
    ("You may go in March 2001 or on 5 May .", [("March 2001", "date"), ("5 May", "date")]),
    ("The meeting is at 10:30 a.m. today .", [("10:30 a.m.", "time"), ("today", "date")]),
    ("March on , they said in May ; shares rose 0.19 to 1.09 , 1500 in all .", []),
])
def test_temporal_patterns(text, want):
    words = text.split()
    got = [(" ".join(words[s:e + 1]), kind) for s, e, kind in temporal.find(words)]
    assert got == want


def test_temporal_spans_never_overlap_gold_and_unlabeled_dates_are_no_negatives(tmp_path):
    sents = [[("Born", "O"), ("on", "O"), ("June", "O"), ("5", "O"), (",", "O"), ("1950", "O"),
              ("in", "O"), ("Paris", "B-LOC"), (".", "O")],
             [("The", "O"), ("2008", "B-EVT"), ("Olympics", "I-EVT"), ("ended", "O"),
              ("on", "O"), ("Sunday", "O"), (".", "O")],
             [("The", "O"), ("1998", "B-EVT"), ("Cup", "I-EVT"), ("was", "O"), ("won", "O"),
              (".", "O")],
             [("Nothing", "O"), ("here", "O"), (".", "O")]] * 30
    _bio(tmp_path / "data" / "supervised" / "toy", sents, {"LOC": "location", "EVT": "event"})
    argv = ["--data", str(tmp_path / "data"), "--wordnet", str(NLTK), "--datasets", "toy",
            "--out", str(tmp_path / "o"), "--fine-rate", "0", "--paraphrase-rate", "0",
            "--passage-rate", "0"]
    assert prepare_data.main(argv + ["--temporal-rate", "1.0"]) == 0
    exs = [json.loads(x) for x in (tmp_path / "o" / "toy.jsonl").read_text().splitlines()]
    for ex in exs:
        w, spans = ex["tokenized_text"], ex["ner"]
        got = {(" ".join(w[s:e + 1]), lab) for s, e, lab in spans}
        for i, (s, e, _) in enumerate(spans):  # flat: no two spans overlap
            assert all(e2 < s or s2 > e for s2, e2, _ in spans[i + 1:])
        if w[0] == "Born":
            assert got == {("June 5 , 1950", "date"), ("Paris", "location")}
        if w[1] == "2008":
            assert got == {("2008 Olympics", "event"), ("Sunday", "date")}
        if w[1] == "1998":  # the year inside the event stays unlabeled: no temporal negatives
            assert got == {("1998 Cup", "event")}
            assert not set(temporal.LABELS) & set(ex["ner_negatives"])
    pool_on = json.loads((tmp_path / "o" / "manifest.json").read_text())["pool_size"]
    # the lever off: not one temporal span, and still no temporal negative where a date is
    # ("date" is also a WordNet class, so it is in the pool either way)
    assert prepare_data.main(argv + ["--temporal-rate", "0"]) == 0
    off = [json.loads(x) for x in (tmp_path / "o" / "toy.jsonl").read_text().splitlines()]
    assert not {s[2] for ex in off for s in ex["ner"]} & set(temporal.LABELS)
    for ex in off:
        if temporal.find(ex["tokenized_text"]):
            assert not set(temporal.LABELS) & set(ex["ner_negatives"]), ex
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["pool_size"] < pool_on


@needs_wordnet
@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_a_text_with_an_unlabeled_date_never_gets_a_temporal_negative(wn, rate):
    aug = prepare_data.Augmenter(wn, list(temporal.LABELS), fine_rate=0, paraphrase_rate=0,
                                 temporal_rate=rate)
    rng = np.random.default_rng(0)
    for words, ner, expect_negatives in [
        ("The 1998 Cup was won .".split(), [[1, 2, "event"]], False),  # the date is inside gold
        ("Nothing happened here .".split(), [], True),
    ]:
        ex = {"tokenized_text": words, "ner": [list(s) for s in ner]}
        unlabeled = aug.temporal(ex, rng, own=False)
        negs = aug.negatives(ex, [], rng, outside=True, unannotated=unlabeled)
        assert bool(set(negs) & set(temporal.LABELS)) == expect_negatives, (words, negs)

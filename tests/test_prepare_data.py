"""train.prepare_data / train.wordnet_labels: the generated training data for the shipped model.

Needs WordNet (../shared/data/nltk_data, or $GLINER_NLTK_DATA); the corpora are built here as a
tiny BIO dataset so that the checks are exact."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from train import prepare_data
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

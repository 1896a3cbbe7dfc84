"""eval/: our F1 equals the reference evaluator's to the last digit, and the CLIs run end to end.

A random reference GLiNER (tests/reference_models.py; max_width 2 and max_len 32, so that some
gold spans are wider than K or lie past max_len) is scored by gliner 0.2.29's own evaluator
(`GLiNER.evaluate`, `evaluate_ner.get_for_one_path`) and, loaded from the same saved directory,
by eval/ner_eval.py, on real sentences from ../shared/data/ner (or $GLINER_DATA): the first
CoNLL-2003 test sentences (dense in entities, 4 labels, two longer than 32 words). At threshold
0.5 this model predicts a few hundred spans and gets a few right, and no probability is within
1e-5 of the threshold or of another label's on the same span, so float32 noise flips nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest
from reference_models import cached_reference_gliner

from eval import ner_eval, supervised, zero_shot

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GLINER_DATA") or REPO.parent / "shared" / "data" / "ner")
CONLL = DATA / "supervised" / "conll2003"
AI = DATA / "zeroshot" / "crossner_ai"
# weight_scale 1.8, seed 0: labels well separated (smaller scales give near-identical prompt
# embeddings, so labels tie to the last float32 bit and torch / JAX rounding picks either)
REF_ARGS = dict(weight_scale=1.8, max_width=2, max_len=32)
LIMIT = 32

# the reference warns once per sentence it cuts at max_len
pytestmark = pytest.mark.filterwarnings("ignore:Sentence of length:UserWarning")
needs_data = pytest.mark.skipif(not (CONLL.is_dir() and AI.is_dir()),
                                reason=f"NER data not found at {DATA}")


@pytest.fixture(scope="module")
def reference():
    return cached_reference_gliner(**REF_ARGS)  # (gliner.GLiNER in eval mode, saved dir)


@pytest.fixture(scope="module")
def ours(reference):
    return ner_eval.load_model(reference[1])


def reference_predictions(ref, examples, labels, threshold, flat_ner):
    """The spans GLiNER.evaluate scores: its own loader, collator and _process_batches."""
    import torch

    collator = ref.create_collator()
    loader = torch.utils.data.DataLoader(
        examples, batch_size=12, shuffle=False,
        collate_fn=lambda b: ref.collate_batch(b, labels, collator))
    with torch.no_grad():
        rows = ref._process_batches(loader, threshold, flat_ner, False)
    return [[(s.start, s.end, s.entity_type, s.score) for s in row] for row in rows]


def _margins(model, examples, labels, threshold):
    """Smallest distance of a span probability to the threshold, or between the two best labels
    of a span above it: below ~1e-6, torch and JAX rounding could decide differently."""
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sentences cut at max_len
        batch = model.processor.encode([ex["tokenized_text"] for ex in examples], labels)
    probs = model.span_probs(batch)[..., :len(labels)][batch.span_mask]  # [spans, C]
    top2 = np.sort(probs, axis=1)[:, -2:]
    gaps = (top2[:, 1] - top2[:, 0])[top2[:, 0] > threshold]
    return float(min(np.abs(probs - threshold).min(), gaps.min(initial=1.0)))


@pytest.mark.parametrize("name,flat", [
    ("crossner_ai", True), ("mit_movie", True), ("AI_Corpus", False), ("GENIA", False),
    ("ACE 2005", False), ("genia", True), ("sample_ACE", False)])
def test_flat_ner_rule(name, flat):
    assert ner_eval.is_flat_ner(name) is flat


@needs_data
@pytest.mark.parametrize("flat_ner", [True, False])
def test_f1_equals_reference_evaluate(reference, ours, flat_ner):
    ref, _ = reference
    ds = ner_eval.load_dataset("conll2003", CONLL, "test", limit=LIMIT)
    examples = ds.examples
    # the subset must exercise the miss rules: sentences cut at max_len, gold spans wider than K
    assert any(len(ex["tokenized_text"]) > REF_ARGS["max_len"] for ex in examples)
    assert any(e - s + 1 > REF_ARGS["max_width"] for ex in examples for s, e, _ in ex["ner"])

    assert _margins(ours, examples, ds.labels, 0.5) > 1e-5  # well conditioned
    ref_line, ref_f1 = ref.evaluate(examples, flat_ner=flat_ner, threshold=0.5, batch_size=12,
                                    entity_types=ds.labels)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores, pred = ner_eval.evaluate_examples(ours, examples, ds.labels, threshold=0.5,
                                                  flat_ner=flat_ner)
    assert not [w for w in caught if "max_len" in str(w.message)]  # counted, not warned
    assert 50 < scores.micro.n_pred < 2000 and scores.micro.tp > 0  # a meaningful comparison
    assert scores.f1 == ref_f1  # bit-identical float64
    assert scores.micro.line() == ref_line

    ref_pred = reference_predictions(ref, examples, ds.labels, 0.5, flat_ner)
    assert [[sp[:3] for sp in row] for row in ref_pred] == [
        [(sp.start, sp.end, sp.label) for sp in row] for row in pred]
    for ref_row, row in zip(ref_pred, pred, strict=True):
        for r, sp in zip(ref_row, row, strict=True):
            assert sp.score == pytest.approx(r[3], rel=1e-4, abs=1e-6)


def _write_eval_layout(folder: Path, examples: list[dict], labels: list[str]) -> None:
    """The reference's evaluation bundle: {"sentence", "entities": [{"pos", "type"}]} samples."""
    samples = []
    for ex in examples:
        words = ex["tokenized_text"]
        starts = [sum(len(w) + 1 for w in words[:i]) for i in range(len(words))]
        ents = [{"pos": [starts[s], starts[e] + len(words[e])], "type": label.upper()}
                for s, e, label in ex["ner"]]
        samples.append({"sentence": " ".join(words), "entities": ents})
    samples.append({"sentence": "", "entities": []})  # -> the single word "[PAD]"
    # a double space misaligns the reference's char -> word conversion: a None index, a miss
    samples.append({"sentence": "Alan  Turing worked in Manchester .",
                    "entities": [{"pos": [6, 12], "type": "PERSON"},
                                 {"pos": [23, 33], "type": "location"}]})
    folder.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        (folder / f"{split}.json").write_text(json.dumps(samples), encoding="utf-8")
    (folder / "labels.json").write_text(json.dumps([x.title() for x in labels]))


@pytest.fixture
def plain_tmp():
    """A temp dir whose path names no split: evaluate_ner.open_content matches train/dev/test/
    labels anywhere in a file's full path (pytest's tmp_path holds the word 'test')."""
    while True:
        with tempfile.TemporaryDirectory(prefix="gjx_") as d:
            if not any(w in d for w in ("train", "dev", "test", "labels")):
                yield Path(d)
                return


@needs_data
def test_eval_layout_equals_get_for_one_path(reference, ours, plain_tmp):
    """evaluate_ner.get_for_one_path itself: its reader, its flat_ner rule, its evaluate call."""
    from gliner.evaluation.evaluate_ner import get_for_one_path

    ref, _ = reference
    tmp_path = plain_tmp
    ds = ner_eval.load_dataset("conll2003", CONLL, "test", limit=16)
    for name in ("conll_bundle", "CoNLL_Corpus"):  # flat, nested
        _write_eval_layout(tmp_path / name, ds.examples, ds.labels)
    found, skipped = ner_eval.find_split_datasets(tmp_path, "test")
    assert [n for n, _ in found] == ["CoNLL_Corpus", "conll_bundle"] and not skipped
    for name, folder in found:
        ref_name, ref_line, ref_f1 = get_for_one_path(str(folder), ref)
        result = ner_eval.evaluate_dataset(ours, ner_eval.load_dataset(name, folder, "test"),
                                           "test")
        assert ref_name == result.name
        assert result.flat_ner is (name == "conll_bundle")
        assert result.sentences == 18 and result.scores.micro.n_pred > 10
        assert result.f1 == ref_f1
        assert result.scores.micro.line() == ref_line


def _copy_datasets(root: Path, names: list[str]) -> Path:
    root.mkdir()
    for name in names:  # copies: corpora.find_datasets does not follow symlinks
        shutil.copytree(DATA / name, root / Path(name).name)
    return root


@needs_data
def test_zero_shot_cli_subprocess(reference, ours, tmp_path):
    data = _copy_datasets(tmp_path / "data", ["zeroshot/crossner_ai", "zeroshot/mit_movie"])
    out = tmp_path / "res" / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "eval.zero_shot", "--model", str(reference[1]), "--data",
         str(data), "--split", "dev", "--limit", "5", "--output", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "skipping mit_movie: no dev split" in proc.stderr
    assert "Traceback" not in proc.stderr
    res = json.loads(out.read_text())
    assert [d["name"] for d in res["datasets"]] == ["crossner_ai"]
    assert res["split"] == "dev" and res["datasets"][0]["sentences"] == 5

    expected = ner_eval.evaluate_dataset(
        ours, ner_eval.load_dataset("crossner_ai", data / "crossner_ai", "dev", limit=5), "dev")
    got = res["datasets"][0]
    assert (got["f1"], got["tp"], got["n_pred"], got["n_true"]) == (
        expected.f1, expected.scores.micro.tp, expected.scores.micro.n_pred,
        expected.scores.micro.n_true)
    assert res["average_f1"] == expected.f1
    table = proc.stdout.splitlines()
    assert table[1].split() == ["Model", "|", "AI", "|", "Average"]
    assert table[3].split()[-1] == f"{100 * expected.f1:.1f}"


@needs_data
def test_supervised_cli_skips_datasets_without_test(reference, tmp_path, capsys):
    data = _copy_datasets(tmp_path / "data", ["supervised/sec_filings", "supervised/wikigold"])
    out = tmp_path / "sup.json"
    rc = supervised.main(["--model", str(reference[1]), "--data", str(data), "--limit", "3",
                          "--output", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "skipping wikigold: no test split" in captured.err
    res = json.loads(out.read_text())
    assert [d["name"] for d in res["datasets"]] == ["sec_filings"]
    assert res["skipped"] == ["wikigold: no test split"]
    assert "sec_filings" in captured.out and "Average" in captured.out


@pytest.mark.parametrize("case", ["missing_data", "no_datasets", "bad_model", "no_split"])
def test_cli_errors_are_one_line(case, tmp_path, capsys):
    data = tmp_path / "data"
    model = tmp_path / "model"
    model.mkdir()  # a directory without gliner_config.json
    if case != "missing_data":
        data.mkdir()
    if case in ("bad_model", "no_split"):
        ds = data / "tiny"
        ds.mkdir()
        (ds / "labels.json").write_text('{"PER": "person"}')
        (ds / ("test.txt" if case == "bad_model" else "train.txt")).write_text(
            "Alan\tB-PER\nTuring\tI-PER\nspoke\tO\n")
    rc = zero_shot.main(["--model", str(model), "--data", str(data)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    message = {"missing_data": "does not exist", "no_datasets": "no datasets found",
               "bad_model": "cannot load model", "no_split": "has a test split"}[case]
    assert err[-1].startswith("python -m eval.zero_shot: error:") and message in err[-1]
    assert not any("Traceback" in line for line in err)


def test_join_passages_keeps_order_and_spans():
    exs = [{"tokenized_text": ["a"] * 4, "ner": [[0, 1, "x"]]},
           {"tokenized_text": ["b"] * 3, "ner": [[2, 2, "y"]]},
           {"tokenized_text": ["c"] * 9, "ner": [[8, 8, "z"]]},
           {"tokenized_text": ["d"] * 2, "ner": []}]
    out = ner_eval.join_passages(exs, words=8)
    assert [len(p["tokenized_text"]) for p in out] == [7, 9, 2]  # the 9-word one stays alone
    assert out[0]["ner"] == [[0, 1, "x"], [6, 6, "y"]]
    assert out[1]["ner"] == [[8, 8, "z"]] and out[2]["ner"] == []
    assert exs[1]["ner"] == [[2, 2, "y"]]  # inputs untouched


@needs_data
def test_passage_mode_equals_sentences_when_passages_are_single(reference, ours):
    """With passages of one sentence, windows see exactly the evaluator's input: same spans.
    Joined into passages, the same gold spans are scored (counts add up) through windows."""
    ds = ner_eval.load_dataset("conll2003", CONLL, "test", LIMIT)
    short = [ex for ex in ds.examples if len(ex["tokenized_text"]) <= 32]
    _, plain = ner_eval.evaluate_examples(ours, short, ds.labels, batch_size=4)
    _, windowed = ner_eval.evaluate_examples(ours, short, ds.labels, batch_size=4, windows=True)
    assert [[(s.start, s.end, s.label) for s in r] for r in windowed] == \
        [[(s.start, s.end, s.label) for s in r] for r in plain]
    assert sum(map(len, plain)) > 0
    joined = ner_eval.join_passages(short, 100)
    assert len(joined) < len(short)
    scores, pred = ner_eval.evaluate_examples(ours, joined, ds.labels, windows=True)
    assert scores.micro.n_true == sum(len(ex["ner"]) for ex in short)
    assert all(s.end < len(ex["tokenized_text"]) for ex, r in zip(joined, pred, strict=True)
               for s in r)


def test_date_probe_scores_only_temporal_spans_as_the_label(reference, ours, tmp_path, capsys):
    from eval import date_probe

    re3d = tmp_path / "data" / "supervised" / "re3d"
    re3d.mkdir(parents=True)
    (re3d / "labels.json").write_text(json.dumps({"Person": "person", "Temporal": "temporal"}))
    (re3d / "test.txt").write_text(
        "Smith\tB-Person\nleft\tO\non\tO\nJuly\tB-Temporal\n21\tI-Temporal\n.\tO\n\n"
        "Jones\tB-Person\ncame\tO\nyesterday\tB-Temporal\n.\tO\n\n")
    out = tmp_path / "probe.json"
    assert date_probe.main(["--model", str(reference[1]), "--data", str(tmp_path / "data"),
                            "--label", "day", "--threshold", "0.3", "--output", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n_true"] == 2 and res["label"] == "day"  # persons dropped, never asked
    examples = [{"tokenized_text": "Smith left on July 21 .".split(), "ner": [(3, 4, "day")]},
                {"tokenized_text": "Jones came yesterday .".split(), "ner": [(2, 2, "day")]}]
    scores, _ = ner_eval.evaluate_examples(ours, examples, ["day"], threshold=0.3, flat_ner=True)
    assert (res["tp"], res["n_pred"]) == (scores.micro.tp, scores.micro.n_pred)
    assert f"F1 {100 * scores.f1:.1f}" in capsys.readouterr().out
    assert date_probe.main(["--model", str(reference[1]), "--data", str(tmp_path / "x")]) == 1
    assert "error: no re3d test split" in capsys.readouterr().err

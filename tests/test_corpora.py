"""gliner_jax.corpora: BIO folders, gliner JSON/JSONL, the reference's eval bundle, real data."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gliner_jax.corpora import (
    CorpusError,
    CorpusWarning,
    char_span_to_words,
    dataset_labels,
    detect_layout,
    find_datasets,
    main,
    read_bio_folder,
    read_eval_layout,
    read_eval_split,
    read_gliner_json,
    read_split,
    write_gliner_jsonl,
)

REPO = Path(__file__).resolve().parents[1]
LABELS = {"PER": "person", "LOC": "location", "MISC": None, "ORG": "organization"}


def bio_folder(tmp_path, text, split="train", labels=LABELS):
    folder = tmp_path / "ds"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
    (folder / f"{split}.txt").write_text(text, encoding="utf-8", newline="")
    return folder


def bio(*sentences):
    """BIO text from sentences written as 'word/TAG word/TAG ...'."""
    blocks = ["\n".join(w.replace("/", "\t") for w in s.split()) for s in sentences]
    return "\n\n".join(blocks) + "\n"


# --------------------------------------------------------------------------------------------
# BIO

# sentences -> (expected ner per sentence, orphan I- count, dropped spans)
BIO_CASES = {
    "begin_inside": (
        ["Ann/B-PER Lee/I-PER lives/O in/O Rome/B-LOC"],
        [[[0, 1, "person"], [4, 4, "location"]]],
        0,
        0,
    ),
    "adjacent_same_type": (["Ann/B-PER Bob/B-PER"], [[[0, 0, "person"], [1, 1, "person"]]], 0, 0),
    "adjacent_multiword": (
        ["A/B-PER B/I-PER C/B-PER D/I-PER"],
        [[[0, 1, "person"], [2, 3, "person"]]],
        0,
        0,
    ),
    "inside_after_O": (["the/O Ann/I-PER Lee/I-PER"], [[[1, 2, "person"]]], 1, 0),
    "inside_at_start": (["Ann/I-PER left/O"], [[[0, 0, "person"]]], 1, 0),
    "inside_of_other_type": (
        ["Ann/B-PER Rome/I-LOC"],
        [[[0, 0, "person"], [1, 1, "location"]]],
        1,
        0,
    ),
    "entity_ends_sentence": (
        ["in/O Rome/B-LOC", "Italy/I-LOC is/O"],
        [[[1, 1, "location"]], [[0, 0, "location"]]],
        1,
        0,
    ),
    "null_type_dropped": (
        ["a/B-MISC b/I-MISC c/O Ann/B-PER"],
        [[[3, 3, "person"]]],
        0,
        1,
    ),
    "inside_after_dropped_type": (["a/B-MISC Ann/I-PER"], [[[1, 1, "person"]]], 1, 1),
    "all_outside": (["nothing/O here/O"], [[]], 0, 0),
}


@pytest.mark.parametrize("case", BIO_CASES.values(), ids=BIO_CASES.keys())
def test_bio_spans(tmp_path, case):
    sentences, ner, orphans, dropped = case
    examples, labels = read_bio_folder(bio_folder(tmp_path, bio(*sentences)), "train")
    assert [ex["ner"] for ex in examples] == ner
    assert [ex["tokenized_text"] for ex in examples] == [
        [w.split("/")[0] for w in s.split()] for s in sentences
    ]
    assert examples.stats.orphan_inside == orphans
    assert sum(examples.stats.dropped.values()) == dropped
    assert examples.stats.entities == sum(map(len, ner))
    assert examples.stats.entities_total == sum(map(len, ner)) + dropped
    assert labels == ["person", "location", "organization"]  # labels.json order, nulls left out


def test_bio_blank_lines_crlf_and_no_final_newline(tmp_path):
    text = "\r\n\r\nAnn\tB-PER\r\nsaid\tO\r\n\r\n\r\n  \r\nRome\tB-LOC\r\nwins\tO"
    examples, _ = read_bio_folder(bio_folder(tmp_path, text), "train")
    assert examples == [
        {"tokenized_text": ["Ann", "said"], "ner": [[0, 0, "person"]]},
        {"tokenized_text": ["Rome", "wins"], "ner": [[0, 0, "location"]]},
    ]
    assert examples.stats.sentences == 2


def test_bio_duplicate_natural_labels_listed_once(tmp_path):
    labels = {"PER": "person", "PERSON": "person", "LOC": "location"}
    folder = bio_folder(tmp_path, bio("Ann/B-PERSON Bob/B-PER"), labels=labels)
    examples, names = read_bio_folder(folder, "train")
    assert names == ["person", "location"]
    assert examples[0]["ner"] == [[0, 0, "person"], [1, 1, "person"]]


# (third line of the file, expected message fragment)
MALFORMED = {
    "one_column": ("Lee", "expected 2 tab-separated columns"),
    "space_separated": ("Lee I-PER", "expected 2 tab-separated columns"),
    "three_columns": ("Lee\tI-PER\tNNP", "found 3"),
    "bad_prefix": ("Lee\tX-PER", "bad tag 'X-PER'"),
    "iobes": ("Lee\tE-PER", "bad tag 'E-PER'"),
    "lowercase_prefix": ("Lee\ti-PER", "bad tag 'i-PER'"),
    "no_type": ("Lee\tB-", "bad tag 'B-'"),
    "empty_tag": ("Lee\t", "bad tag ''"),
    "empty_token": ("\tO", "empty token"),
}


@pytest.mark.parametrize("case", MALFORMED.values(), ids=MALFORMED.keys())
def test_bio_malformed_line_names_file_and_line(tmp_path, case):
    bad_line, fragment = case
    text = f"x\tO\n\nAnn\tB-PER\n{bad_line}\nsaid\tO\n"
    folder = bio_folder(tmp_path, text)
    with pytest.raises(CorpusError, match=re.escape(f"{folder / 'train.txt'}:4: ")) as err:
        read_bio_folder(folder, "train")
    assert fragment in str(err.value)

    with pytest.warns(CorpusWarning, match="skipped 1 malformed"):
        examples, _ = read_bio_folder(folder, "train", skip_errors=True)
    assert len(examples.stats.skipped) == 1
    assert examples.stats.skipped[0].startswith(f"{folder / 'train.txt'}:4: ")
    # the bad line is left out, the rest of its sentence is kept
    assert examples[1] == {"tokenized_text": ["Ann", "said"], "ner": [[0, 0, "person"]]}


def test_bio_unknown_type_is_an_error_even_when_skipping(tmp_path):
    folder = bio_folder(tmp_path, "Ann\tB-PER\nIBM\tB-COMPANY\n")
    for skip in (False, True):
        with pytest.raises(CorpusError, match=r"train\.txt:2: entity type 'COMPANY' is not in"):
            read_bio_folder(folder, "train", skip_errors=skip)


def test_bio_missing_files(tmp_path):
    folder = bio_folder(tmp_path, "Ann\tB-PER\n")
    with pytest.raises(CorpusError, match=r"test\.txt: no such file"):
        read_bio_folder(folder, "test")
    (folder / "labels.json").unlink()
    with pytest.raises(CorpusError, match=r"labels\.json: no such file"):
        read_bio_folder(folder, "train")


@pytest.mark.parametrize(
    "labels_text", ['{"PER": 3}', '["person"]', '{"PER": ""}', '{"PER": "person",}']
)
def test_bio_bad_labels_json(tmp_path, labels_text):
    folder = bio_folder(tmp_path, "Ann\tB-PER\n")
    (folder / "labels.json").write_text(labels_text)
    with pytest.raises(CorpusError, match="labels.json"):
        read_bio_folder(folder, "train")


# --------------------------------------------------------------------------------------------
# gliner JSON / JSONL

GOOD = {"tokenized_text": ["Ann", "Lee", "ran"], "ner": [[0, 1, "person"]]}

# an invalid example -> message fragment
INVALID = {
    "end_out_of_range": ({"tokenized_text": ["a", "b"], "ner": [[1, 2, "x"]]}, "out of range"),
    "negative_start": ({"tokenized_text": ["a", "b"], "ner": [[-1, 0, "x"]]}, "out of range"),
    "start_after_end": ({"tokenized_text": ["a", "b"], "ner": [[1, 0, "x"]]}, "start > end"),
    "label_not_string": ({"tokenized_text": ["a"], "ner": [[0, 0, 7]]}, "label must be"),
    "empty_label": ({"tokenized_text": ["a"], "ner": [[0, 0, ""]]}, "label must be"),
    "float_index": ({"tokenized_text": ["a"], "ner": [[0.0, 0, "x"]]}, "must be integers"),
    "bool_index": ({"tokenized_text": ["a"], "ner": [[False, 0, "x"]]}, "must be integers"),
    "null_index": ({"tokenized_text": ["a"], "ner": [[None, 0, "x"]]}, "must be integers"),
    "two_elements": ({"tokenized_text": ["a"], "ner": [[0, 0]]}, "expected [start, end, label]"),
    "missing_ner": ({"tokenized_text": ["a"]}, "missing key 'ner'"),
    "words_not_strings": ({"tokenized_text": ["a", 1], "ner": []}, "list of strings"),
    "text_is_a_string": ({"tokenized_text": "a b", "ner": []}, "list of strings"),
    "not_an_object": ([["a"], []], "expected an object"),
}


@pytest.mark.parametrize("case", INVALID.values(), ids=INVALID.keys())
def test_jsonl_validation_names_line(tmp_path, case):
    bad, fragment = case
    path = tmp_path / "data.jsonl"
    # line 1 good, line 2 blank, line 3 bad, line 4 good
    path.write_text(f"{json.dumps(GOOD)}\n\n{json.dumps(bad)}\n{json.dumps(GOOD)}\n")
    with pytest.raises(CorpusError, match=re.escape(f"{path}:3: ")) as err:
        read_gliner_json(path)
    assert fragment in str(err.value)
    with pytest.warns(CorpusWarning):
        examples = read_gliner_json(path, skip_errors=True)
    assert examples == [GOOD, GOOD]
    assert len(examples.stats.skipped) == 1 and fragment in examples.stats.skipped[0]


@pytest.mark.parametrize("case", INVALID.values(), ids=INVALID.keys())
def test_json_list_validation_names_index(tmp_path, case):
    bad, fragment = case
    path = tmp_path / "data.json"
    path.write_text(json.dumps([GOOD, GOOD, bad], indent=1))
    with pytest.raises(CorpusError, match=re.escape(f"{path}[2]: ")) as err:
        read_gliner_json(path)
    assert fragment in str(err.value)
    with pytest.warns(CorpusWarning):
        assert read_gliner_json(path, skip_errors=True) == [GOOD, GOOD]


def test_jsonl_malformed_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + '{"tokenized_text": ["a"], "ner": [}\n')
    with pytest.raises(CorpusError, match=re.escape(f"{path}:2: malformed JSON line")):
        read_gliner_json(path)
    with pytest.warns(CorpusWarning):
        examples = read_gliner_json(path, skip_errors=True)
    assert examples == [GOOD] and len(examples.stats.skipped) == 1


def test_json_list_syntax_error_is_never_skipped(tmp_path):
    path = tmp_path / "data.json"
    path.write_text('[\n{"tokenized_text": ["a"],\n "ner": [}\n]')
    with pytest.raises(CorpusError, match=re.escape(f"{path}:3:")):
        read_gliner_json(path, skip_errors=True)


def test_json_keeps_extra_keys_and_reads_empty_files(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps([{**GOOD, "label": ["person", "city"]}]))
    assert read_gliner_json(path)[0]["label"] == ["person", "city"]
    (tmp_path / "empty.jsonl").write_text("")
    assert read_gliner_json(tmp_path / "empty.jsonl") == []


def test_bio_to_jsonl_round_trip(tmp_path):
    text = bio("Zoë/B-PER Ünal/I-PER visited/O São/B-LOC Paulo/I-LOC", "x/B-MISC y/O z/B-ORG")
    examples, labels = read_bio_folder(bio_folder(tmp_path, text), "train")
    out = tmp_path / "out.jsonl"
    assert write_gliner_jsonl(examples, out) == 2
    assert "Zoë" in out.read_text(encoding="utf-8")  # written as UTF-8, not \u escapes
    back = read_gliner_json(out)
    assert back == examples
    assert back[1] == {"tokenized_text": ["x", "y", "z"], "ner": [[2, 2, "organization"]]}
    assert dataset_labels(back) == ["location", "organization", "person"]


def test_write_refuses_invalid_examples(tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(CorpusError, match="example 1: ner.0. = .None, 1, 'x'.: start and end"):
        write_gliner_jsonl([GOOD, {"tokenized_text": ["a", "b"], "ner": [[None, 1, "x"]]}], out)
    assert not out.exists()


def test_cli_convert(tmp_path, capsys):
    folder = bio_folder(tmp_path, bio("Ann/B-PER x/B-MISC", "Rome/B-LOC"), split="test")
    out = tmp_path / "test.jsonl"
    assert main(["convert", str(folder), "test", str(out)]) == 0
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"tokenized_text": ["Ann", "x"], "ner": [[0, 0, "person"]]},
        {"tokenized_text": ["Rome"], "ner": [[0, 0, "location"]]},
    ]
    err = capsys.readouterr().err
    assert "2 sentences, 2 entities (3 before dropping; dropped MISC: 1)" in err
    assert main(["convert", str(folder), "dev", str(tmp_path / "dev.jsonl")]) == 1
    assert "dev.txt: no such file" in capsys.readouterr().err


def test_cli_module_entry_point(tmp_path):
    folder = bio_folder(tmp_path, bio("Ann/B-PER"), split="dev")
    out = tmp_path / "dev.jsonl"
    cmd = [sys.executable, "-m", "gliner_jax.corpora", "convert", str(folder), "dev", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == {"tokenized_text": ["Ann"], "ner": [[0, 0, "person"]]}


# --------------------------------------------------------------------------------------------
# The reference's evaluation bundle

SENTENCE = "Alan Turing was born in London ."
# char span -> expected (start_word, end_word) as gliner's evaluate_ner.process computes it
CHAR_SPANS = {
    "two_words": ((0, 11), (0, 1)),
    "one_word": ((24, 30), (5, 5)),
    "last_token": ((31, 32), (6, 6)),
    "whole_sentence": ((0, 32), (0, 6)),
    "start_mid_word": ((2, 11), (None, 1)),
    "end_mid_word": ((0, 9), (0, None)),
    "end_includes_space": ((0, 12), (0, None)),
    "start_after_end": ((24, 11), (None, 1)),
    "beyond_sentence": ((40, 45), (None, None)),
}


@pytest.mark.parametrize("case", CHAR_SPANS.values(), ids=CHAR_SPANS.keys())
def test_char_span_to_words_matches_reference(case):
    (start, end), expected = case
    assert char_span_to_words(SENTENCE.split(), start, end) == expected
    ref = pytest.importorskip("gliner.evaluation.evaluate_ner")
    sample = {"sentence": SENTENCE, "entities": [{"pos": [start, end], "type": "X"}]}
    assert ref.process(sample)["ner"] == [(*expected, "x")]


def test_char_spans_with_double_spaces_match_reference():
    """The reference assumes single spaces: after a double space offsets no longer line up."""
    ref = pytest.importorskip("gliner.evaluation.evaluate_ner")
    sentence = " Ann  Lee lives in  Rome"
    for start in range(len(sentence) + 1):
        for end in range(len(sentence) + 2):
            sample = {"sentence": sentence, "entities": [{"pos": [start, end], "type": "T"}]}
            expected = ref.process(sample)["ner"][0][:2]
            assert char_span_to_words(sentence.split(), start, end) == expected


def eval_bundle(root, name="CrossNER_AI"):
    folder = root / name
    folder.mkdir(parents=True)
    test = [
        {
            "sentence": SENTENCE,
            "entities": [{"pos": [0, 11], "type": "Person"}, {"pos": [24, 30], "type": "LOCATION"}],
        },
        {"sentence": "Nothing here", "entities": []},
        {"sentence": "Bad offsets here", "entities": [{"pos": [1, 7], "type": "misc"}]},
    ]
    dev = [{"sentence": "Rome", "entities": [{"pos": [0, 4], "type": "Location"}]}]
    (folder / f"{name.lower()}_test.json").write_text(json.dumps(test))
    (folder / "dev.json").write_text(json.dumps(dev))
    (folder / "labels.json").write_text(json.dumps(["Person", "Location", "Misc"]))
    return folder


def test_eval_layout_reads_like_reference(tmp_path):
    folder = eval_bundle(tmp_path / "test_dir_named_test")  # role words in the path do not matter
    splits, labels = read_eval_layout(folder)
    assert labels == ["person", "location", "misc"]
    assert sorted(splits) == ["dev", "test"]
    assert splits["dev"] == [{"tokenized_text": ["Rome"], "ner": [[0, 0, "location"]]}]
    test = splits["test"]
    assert test[0] == {
        "tokenized_text": SENTENCE.split(),
        "ner": [[0, 1, "person"], [5, 5, "location"]],
    }
    assert test[1] == {"tokenized_text": ["Nothing", "here"], "ner": []}
    # misaligned: kept with its None index, as the reference does, and counted
    assert test[2]["ner"] == [[None, None, "misc"]]
    assert test.stats.misaligned == 1 and test.stats.entities == 3
    ref = pytest.importorskip("gliner.evaluation.evaluate_ner")
    raw = json.loads((folder / "crossner_ai_test.json").read_text())
    assert [ex["ner"] for ex in test] == [[list(t) for t in ref.process(s)["ner"]] for s in raw]


def test_eval_layout_misaligned_modes(tmp_path):
    folder = eval_bundle(tmp_path)
    examples, _ = read_eval_split(folder, "test", misaligned="drop")
    assert examples[2]["ner"] == [] and examples.stats.misaligned == 1
    assert examples.stats.entities == 2
    with pytest.raises(CorpusError, match=r"crossner_ai_test\.json\[2\]: entity .* word bound"):
        read_eval_split(folder, "test", misaligned="raise")


def test_eval_layout_errors(tmp_path):
    folder = eval_bundle(tmp_path)
    with pytest.raises(CorpusError, match=r"no \*train\*\.json"):
        read_eval_split(folder, "train")
    (folder / "train.json").write_text(json.dumps([{"sentence": "a", "entities": [{"pos": [0]}]}]))
    with pytest.raises(CorpusError, match=r"train\.json\[0\]: entities\[0\]: expected"):
        read_eval_split(folder, "train")
    with pytest.warns(CorpusWarning):
        examples, _ = read_eval_split(folder, "train", skip_errors=True)
    assert examples == [] and len(examples.stats.skipped) == 1
    (folder / "other_test.json").write_text("[]")
    with pytest.raises(CorpusError, match="two files for 'test'"):
        read_eval_layout(folder)
    (folder / "other_test.json").unlink()
    (folder / "labels.json").unlink()
    with pytest.raises(CorpusError, match=r"no \*labels\*\.json"):
        read_eval_layout(folder)


def test_find_datasets_and_read_split(tmp_path):
    bio_dir = bio_folder(tmp_path / "group" / "b", bio("Ann/B-PER"), split="dev")
    eval_dir = eval_bundle(tmp_path, "a_bundle")
    (tmp_path / "empty").mkdir()
    (tmp_path / "only_labels").mkdir()
    (tmp_path / "only_labels" / "labels.json").write_text("{}")
    assert find_datasets(tmp_path) == [eval_dir, bio_dir]
    assert (detect_layout(bio_dir), detect_layout(eval_dir)) == ("bio", "eval")
    assert detect_layout(tmp_path / "empty") is None
    assert read_split(bio_dir, "dev")[0] == [{"tokenized_text": ["Ann"], "ner": [[0, 0, "person"]]}]
    examples, labels = read_split(eval_dir, "dev")
    assert labels == ["person", "location", "misc"] and examples[0]["ner"] == [[0, 0, "location"]]
    with pytest.raises(CorpusError, match="not a dataset folder"):
        read_split(tmp_path / "empty", "test")
    with pytest.raises(CorpusError, match="no such folder"):
        find_datasets(tmp_path / "missing")
    # role words are matched as the reference does: train before labels
    (tmp_path / "empty" / "train_labels.json").write_text("[]")
    assert detect_layout(tmp_path / "empty") is None


# --------------------------------------------------------------------------------------------
# Real data (/work/shared/data/ner beside the repo, or $GLINER_DATA)

DATA = Path(os.environ.get("GLINER_DATA", REPO.parent / "shared" / "data" / "ner"))
needs_data = pytest.mark.skipif(
    not (DATA / "README.md").is_file(),
    reason=f"NER corpora not found at {DATA} (set GLINER_DATA to the folder with README.md)",
)


def readme_table():
    """(dataset, split) -> (sentences, entities incl. dropped types, label count, label text)."""
    table = {}
    text = (DATA / "README.md").read_text(encoding="utf-8")
    for name, counts, n, names in re.findall(
        r"^\| ((?:zeroshot|supervised)/\w+) \| ([^|]+) \| (\d+): ([^|(]+)", text, re.M
    ):
        for split, s, e in re.findall(r"(train|dev|test) (\d+)/(\d+)", counts):
            table[name, split] = (int(s), int(e), int(n), names.strip())
    return table


@needs_data
def test_real_crossner_ai_test():
    examples, labels = read_bio_folder(DATA / "zeroshot" / "crossner_ai", "test")
    st = examples.stats
    assert (st.sentences, st.entities_total, st.entities) == (431, 1809, 1628)
    assert dict(st.dropped) == {"misc": 181}
    assert st.orphan_inside == 0 and st.skipped == []
    assert len(labels) == 13 and "programming language" in labels and "misc" not in labels
    assert examples[0]["ner"] == [[5, 7, "algorithm"], [10, 12, "algorithm"], [15, 16, "algorithm"]]
    assert " ".join(examples[0]["tokenized_text"][5:8]) == "naive Bayes classifier"


SOME_SPLITS = [
    ("zeroshot/crossner_politics", "dev"),
    ("zeroshot/mit_restaurant", "test"),
    ("supervised/conll2003", "test"),
    ("supervised/wnut16", "train"),
    ("supervised/scierc", "dev"),
    ("supervised/harveyner", "test"),
]


def check_against_readme(name, split, table):
    sentences, entities, n_labels, label_text = table[name, split]
    examples, labels = read_bio_folder(DATA / name, split)
    assert (examples.stats.sentences, examples.stats.entities_total) == (sentences, entities)
    # the README lists the labels sorted, comma-separated (one label holds a comma itself)
    assert (len(labels), ", ".join(sorted(labels))) == (n_labels, label_text)
    assert examples.stats.skipped == []
    assert set(dataset_labels(examples)) <= set(labels)


@needs_data
@pytest.mark.parametrize("name,split", SOME_SPLITS)
def test_real_counts_match_readme(name, split):
    check_against_readme(name, split, readme_table())


@needs_data
def test_real_readme_table_and_folders():
    table = readme_table()
    assert len({name for name, _ in table}) == 31
    found = find_datasets(DATA)
    assert [str(p.relative_to(DATA)) for p in found] == sorted({name for name, _ in table})
    assert all(detect_layout(p) == "bio" for p in found)


@needs_data
@pytest.mark.slow
def test_real_every_split_matches_readme():
    table = readme_table()
    for name, split in table:
        check_against_readme(name, split, table)

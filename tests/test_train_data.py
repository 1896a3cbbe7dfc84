"""Training data and configs: bad lines stop (file and line) or are skipped and counted; type
sampling follows the reference's rules (GLINER_SPEC 5.2) reproducibly; the mixture honours its
weights and resumes where it stopped; batches fall in few shapes; config files and overrides."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from train_setup import minilm_dir, synthetic_examples, tiny_config

from gliner_jax.corpora import CorpusError, CorpusWarning
from gliner_jax.processing import Processor, load_tokenizer
from train import __main__ as cli
from train.config import DatasetConfig, apply_override, from_dict, load_config_file, to_dict
from train.data import (
    Batcher,
    Dataset,
    Mixture,
    TypeIndex,
    TypeInfo,
    data_report,
    load_dataset,
    sample_types,
)

GOOD = {"tokenized_text": ["Alice", "lives", "in", "Paris"], "ner": [[0, 0, "person"]]}


def _lines(tmp_path, *lines):
    return write_lines(tmp_path / "data.jsonl", lines)


def write_lines(path, lines):
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


@pytest.mark.parametrize("bad,problem", [
    ('{"tokenized_text": ["a"], "ner": [', "malformed JSON line"),
    ({"tokenized_text": ["a", "b"], "ner": [[0, 2, "x"]]}, "out of range for 2 words"),
    ({"tokenized_text": ["a", "b"], "ner": [[1, 0, "x"]]}, "start > end"),
    ({"tokenized_text": ["a"]}, "missing key 'ner'"),
])
def test_bad_line_stops_with_file_and_line(tmp_path, bad, problem):
    path = _lines(tmp_path, GOOD, GOOD, bad, GOOD)
    with pytest.raises(CorpusError, match=rf"{path}:3: .*{problem}"):
        load_dataset(DatasetConfig(str(path)), skip_errors=False)
    with pytest.warns(CorpusWarning, match="skipped 1"):
        ds = load_dataset(DatasetConfig(str(path)), skip_errors=True)
    assert len(ds.examples) == 3
    report = data_report([ds], max_width=12, max_len=384)[ds.name]
    assert report["skipped_lines"] == 1 and f"{path}:3" in report["first_skipped"][0]


def test_cli_stops_on_bad_data_before_building_the_model(tmp_path, capsys):
    path = _lines(tmp_path, GOOD, {"tokenized_text": ["a"], "ner": [[0, 5, "x"]]})
    code = cli.main(["--config", "train/configs/tiny.py", "--workdir", str(tmp_path / "w"),
                     f"--config.data.train.0.path={path}", "--config.data.dev=none"])
    assert code == 2
    assert f"{path}:2" in capsys.readouterr().err


def test_bio_folder_and_report(tmp_path):
    folder = tmp_path / "bio"
    folder.mkdir()
    (folder / "labels.json").write_text(json.dumps({"PER": "person", "MISC": None}))
    (folder / "train.txt").write_text(
        "Alice\tB-PER\nSmith\tI-PER\nsaw\tO\nX\tB-MISC\n\n"
        + "".join(f"w{i}\t{'B-PER' if i == 0 else 'I-PER'}\n" for i in range(15)))
    ds = load_dataset(DatasetConfig(str(folder), "train"), skip_errors=False)
    assert ds.labels == ["person"]
    assert ds.examples[0]["ner"] == [[0, 1, "person"]]
    report = data_report([ds], max_width=12, max_len=10)[ds.name]
    assert report["spans_wider_than_max_width"] == 1    # the 15-word entity: never learned
    assert report["spans_past_max_len"] == 1 and report["texts_cut_at_max_len"] == 1
    assert ds.stats.dropped == {"MISC": 1}


# ---------------------------------------------------------------------------------------------
# type sampling

BATCH = [
    {"tokenized_text": list("abcd"), "ner": [[0, 0, "person"], [1, 1, "city"]]},
    {"tokenized_text": list("ab"), "ner": [[0, 1, "date"]]},
    {"tokenized_text": list("abc"), "ner": []},
    {"tokenized_text": list("abc"), "ner": [[0, 0, "x"]], "ner_labels": ["x", "y"]},
    {"tokenized_text": list("abc"), "ner": [[0, 0, "city"]], "ner_negatives": ["zz"]},
]


@pytest.mark.parametrize("ratio", [0, 1, 3])
def test_sample_types_rules(ratio):
    pool = {s[2] for ex in BATCH for s in ex["ner"]}
    for seed in range(20):
        types = sample_types(BATCH, np.random.default_rng(seed), max_types=25,
                             max_neg_type_ratio=ratio)
        gold = [{s[2] for s in ex["ner"]} for ex in BATCH]
        assert gold[0] <= set(types[0]) and gold[1] <= set(types[1])
        for i in (0, 1):
            negs = set(types[i]) - gold[i]
            assert negs <= pool and len(negs) <= len(BATCH[i]["ner"]) * ratio
            assert len(types[i]) == len(set(types[i]))
        assert types[2] == [""]                     # no entity, no negative: one empty prompt
        assert types[3] == ["x", "y"]               # ner_labels: given as is
        assert set(types[4]) == {"city", "zz"}      # ner_negatives replace in-batch negatives
    again = sample_types(BATCH, np.random.default_rng(19), max_types=25, max_neg_type_ratio=ratio)
    assert again == types                           # reproducible


def test_sample_types_shuffles_and_cuts_at_max_types():
    ex = [{"tokenized_text": ["w"] * 30, "ner": [[i, i, f"t{i}"] for i in range(30)]}]
    orders = {tuple(sample_types(ex, np.random.default_rng(s), max_types=5,
                                 max_neg_type_ratio=1)[0]) for s in range(10)}
    assert all(len(o) == 5 for o in orders) and len(orders) == 10


def test_type_index_holds_what_sampling_and_the_report_need():
    index = TypeIndex.of(BATCH)
    assert [index[j] for j in range(len(BATCH))] == [TypeInfo.of(ex) for ex in BATCH]
    assert index[2] == TypeInfo((), None, None) and index[3].labels == ("x", "y")
    assert index[4].negatives == ("zz",) and index[-1] == index[4]
    with pytest.raises(IndexError):
        index[len(BATCH)]
    again = TypeIndex.from_arrays(json.loads(json.dumps(
        {k: v.tolist() for k, v in index.arrays().items()})))  # any array round trip
    assert [again[j] for j in range(len(BATCH))] == [index[j] for j in range(len(BATCH))]
    head = index.head(2)
    assert len(head) == 2 and [head[j] for j in range(2)] == [TypeInfo.of(ex) for ex in BATCH[:2]]
    assert head.arrays().keys() == index.arrays().keys() and len(head.span_start) == 3
    assert index.span_types() == ["city", "date", "person", "x"]
    for seed in range(5):  # the same types from the index as from the examples
        kw = dict(max_types=25, max_neg_type_ratio=2)
        assert sample_types([index[j] for j in range(len(BATCH))],
                            np.random.default_rng(seed), **kw) == \
            sample_types(BATCH, np.random.default_rng(seed), **kw)


# ---------------------------------------------------------------------------------------------
# mixture and batches


def _ds(name, n, weight):
    return Dataset(name, [{"tokenized_text": [name, str(i)], "ner": []} for i in range(n)],
                   [], None, weight)


def test_mixture_weights_epochs_and_resume():
    sets = [_ds("a", 10, 3.0), _ds("b", 7, 1.0)]
    mix = Mixture(sets, seed=0)
    seen = [ex["tokenized_text"][0] for s in range(100) for ex in mix.read(mix.take(s, 8))]
    share = Counter(seen)["a"] / len(seen)
    assert 0.7 < share < 0.8
    one = Mixture([sets[0]], 1)
    first_epoch = [ex["tokenized_text"][1] for ex in one.read(one.take(0, 10))]
    assert sorted(first_epoch, key=int) == [str(i) for i in range(10)]  # a permutation

    refs = Mixture(sets, seed=2).take(0, 8)  # references; the types come from memory
    assert all(isinstance(d, int) and isinstance(i, int) for d, i in refs)
    assert Mixture(sets, 2).types(refs) == [TypeInfo.of(ex) for ex in Mixture(sets, 2).read(refs)]

    a, b = Mixture(sets, seed=5), Mixture(sets, seed=5)
    for s in range(7):
        a.take(s, 8)
    pos = json.loads(json.dumps(a.position()))      # through a checkpoint's JSON
    b.restore(pos)
    assert [a.take(s, 8) for s in range(7, 12)] == [b.take(s, 8) for s in range(7, 12)]
    with pytest.raises(ValueError, match="differ"):
        Mixture([sets[0]], 5).restore(pos)


def test_batches_fall_in_few_shapes(tmp_path):
    cfg = tiny_config(tmp_path / "unused.jsonl")
    tok, cls_index = load_tokenizer(minilm_dir(), _gliner_cfg())
    processor = Processor(tok, cls_index, max_width=4, max_len=48)
    batcher = Batcher(processor, cfg.data, 2)
    examples = synthetic_examples(400, seed=9, min_words=1, max_words=60)
    rng = np.random.default_rng(0)
    shapes = set()
    for lo in range(0, 400, 8):
        chunk = examples[lo:lo + 8]
        arrays, info = batcher(chunk, sample_types(chunk, rng, max_types=4, max_neg_type_ratio=1))
        assert arrays["labels"].shape[:2] == (2, 4) and arrays["labels"].shape[-1] == 4
        assert info["tokens"] == int(arrays["attention_mask"].sum())
        shapes.add((arrays["input_ids"].shape[-1], arrays["labels"].shape[2]))
    # T in {32, 64, 128}, W in {16, 32, 48 (max_len)}: at most 9, here far fewer
    assert len(shapes) <= 5, shapes
    assert batcher.truncated > 0  # texts over max_len words are counted


def _gliner_cfg():
    from gliner_jax.config import EncoderConfig, GlinerConfig
    return GlinerConfig(encoder=EncoderConfig(model_type="bert"), model_name=minilm_dir())


# ---------------------------------------------------------------------------------------------
# configs


@pytest.mark.parametrize("name", ["tiny", "minilm", "deberta_v3_small", "deberta_v3_base",
                                  "deberta_v3_large"])
def test_config_files_load(name):
    cfg = load_config_file(Path("train/configs") / f"{name}.py")
    if name.startswith("deberta"):
        with pytest.raises(ValueError, match="needs --config.model.path"):
            cfg.validate()
        apply_override(cfg, "model.path", "/models/deberta")
    cfg.validate()
    assert from_dict(json.loads(json.dumps(to_dict(cfg)))) == cfg


@pytest.mark.parametrize("key,text,want", [
    ("num_steps", "20", 20),
    ("optim.lr_encoder", "3e-5", 3e-5),
    ("data.batch_size", "1e2", 100),
    ("export", "false", False),
    ("mesh", "(2, 2, 2)", (2, 2, 2)),
    ("model.hidden_size", "256", 256),          # default None
    ("model.dropout", "none", None),
    ("model.encoder.num_hidden_layers", "3", 3),  # dict entry
    ("data.train.0.weight", "2", 2.0),          # list item
    ("data.dev", "/data/dev_folder", DatasetConfig("/data/dev_folder", "dev")),
    ("xla_options", "{'xla_backend_optimization_level': 0}",
     {"xla_backend_optimization_level": 0}),
])
def test_overrides(key, text, want):
    cfg = load_config_file("train/configs/tiny.py")
    apply_override(cfg, key, text)
    node = cfg
    for part in key.split("."):
        node = node[int(part)] if isinstance(node, list) else (
            node[part] if isinstance(node, dict) else getattr(node, part))
    assert node == want and type(node) is type(want)


@pytest.mark.parametrize("key", ["nope", "optim.nope", "data.train.5.path"])
def test_unknown_override_is_an_error(key):
    with pytest.raises(KeyError):
        apply_override(load_config_file("train/configs/tiny.py"), key, "1")


def test_cli_override_parsing():
    assert cli.parse_overrides(["--config.a.b=1", "--config.c", "x=y"]) == [("a.b", "1"),
                                                                          ("c", "x=y")]
    with pytest.raises(SystemExit):
        cli.parse_overrides(["--nope"])

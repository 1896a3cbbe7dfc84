"""TFDS input (train/tfds_data.py): GLiNER JSONL and BIO folders prepared as array_record shards
read back unchanged; a "tfds:" dataset loads without reading its records (types from the index
written beside the shards) and reads one record per example asked for; the trainer trains on it
exactly as on its source file; per-host reading order is disjoint, complete, deterministic and
resumable."""

import json
import shutil

import pytest
from train_setup import synthetic_examples, tiny_config, write_jsonl

pytest.importorskip("tensorflow_datasets",
                    reason="TFDS input is the optional extra: pip install -r requirements-pod.txt")

from train import tfds_data  # noqa: E402
from train.config import DatasetConfig  # noqa: E402
from train.data import TypeIndex, data_report, load_dataset  # noqa: E402
from train.train import run  # noqa: E402


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    d = tmp_path_factory.mktemp("tfds")
    examples = synthetic_examples(40, seed=3)
    write_jsonl(d / "train.jsonl", examples)
    out = tfds_data.prepare(d / "train.jsonl", "toy", str(d / "data"))
    return d, examples, out


def test_jsonl_round_trip(prepared):
    d, examples, out = prepared
    assert out.endswith("gliner_ner/toy/1.0.0")
    assert any(p.name.startswith("gliner_ner-train.array_record") for p in
               (d / "data" / "gliner_ner" / "toy" / "1.0.0").iterdir())
    src = tfds_data.Source("toy", str(d / "data"))
    assert len(src) == len(examples)
    by_id = {src[i]["id"]: src[i] for i in range(len(src))}
    assert sorted(by_id) == list(range(len(examples)))
    for i, ex in enumerate(examples):
        assert by_id[i]["tokenized_text"] == ex["tokenized_text"]
        assert by_id[i]["ner"] == ex["ner"]
    from_tfds = load_dataset(DatasetConfig("tfds:gliner_ner/toy", data_dir=str(d / "data")),
                             False)
    from_file = load_dataset(DatasetConfig(str(d / "train.jsonl")), False)
    assert list(from_tfds.examples) == from_file.examples  # source order, ids removed
    assert from_tfds.labels == from_file.labels
    assert from_tfds.name == "gliner_ner/toy/train"


@pytest.fixture
def reads(monkeypatch):
    """The record indices read through tfds_data.Source, in order."""
    log = []
    get = tfds_data.Source.__getitem__

    def counted(self, i):
        log.append(int(i))
        return get(self, i)
    monkeypatch.setattr(tfds_data.Source, "__getitem__", counted)
    return log


def test_loading_reads_no_record(prepared, reads):
    d, examples, out = prepared
    assert (d / "data" / "gliner_ner" / "toy" / "1.0.0" / "gliner_index-train.npz").is_file()
    ds = load_dataset(DatasetConfig("tfds:gliner_ner/toy", data_dir=str(d / "data")), False)
    whole = TypeIndex.of(examples)
    assert [ds.types[j] for j in range(len(examples))] == [whole[j] for j in range(len(examples))]
    report = data_report([ds], max_width=1, max_len=20)["gliner_ner/toy/train"]
    assert report == data_report([load_dataset(DatasetConfig(str(d / "train.jsonl")), False)],
                                 max_width=1, max_len=20)["train.jsonl"]
    assert report["spans_wider_than_max_width"] > 0 and report["texts_cut_at_max_len"] > 0
    assert reads == []                       # lengths, types and report: no record read
    assert ds.examples[7] == examples[7] and ds.examples[-1] == examples[-1]
    assert len(reads) == 2                   # one record per example asked for
    head = load_dataset(DatasetConfig("tfds:gliner_ner/toy", data_dir=str(d / "data"),
                                      max_examples=5), False)
    assert len(head.examples) == len(head.types) == 5 and len(reads) == 2
    assert list(head.examples) == examples[:5]


def test_dataset_without_index_is_indexed_by_reading_it(prepared, tmp_path, reads):
    d, examples, _ = prepared
    shutil.copytree(d / "data", tmp_path / "data")
    (tmp_path / "data" / "gliner_ner" / "toy" / "1.0.0" / "gliner_index-train.npz").unlink()
    with pytest.warns(UserWarning, match="reading all 40 records"):
        ds = load_dataset(DatasetConfig("tfds:gliner_ner/toy", data_dir=str(tmp_path / "data")),
                          False)
    assert sorted(reads) == list(range(40))
    assert list(ds.examples) == examples
    assert [ds.types[j] for j in range(40)] == [TypeIndex.of(examples)[j] for j in range(40)]


def test_bio_folder_with_labels_json(tmp_path):
    folder = tmp_path / "bio"
    folder.mkdir()
    (folder / "labels.json").write_text(json.dumps({"PER": "person", "LOC": "location",
                                                    "ORG": "organization", "MISC": None}))
    (folder / "train.txt").write_text("John\tB-PER\nSmith\tI-PER\nin\tO\nParis\tB-LOC\n\n"
                                      "Apple\tB-ORG\nrocks\tO\nEU\tB-MISC\n")
    (folder / "dev.txt").write_text("Bob\tB-PER\n")
    tfds_data.main(["--source", str(folder), "--name", "bio", "--data_dir",
                    str(tmp_path / "data")])
    train = load_dataset(DatasetConfig("tfds:gliner_ner/bio", data_dir=str(tmp_path / "data")),
                         False)
    assert [ex["tokenized_text"] for ex in train.examples] == [
        ["John", "Smith", "in", "Paris"], ["Apple", "rocks", "EU"]]
    assert [ex["ner"] for ex in train.examples] == [
        [[0, 1, "person"], [3, 3, "location"]], [[0, 0, "organization"]]]
    assert train.labels == ["person", "location", "organization"]  # labels.json order
    dev = load_dataset(DatasetConfig("tfds:gliner_ner/bio", split="dev",
                                     data_dir=str(tmp_path / "data")), False)
    assert [ex["ner"] for ex in dev.examples] == [[[0, 0, "person"]]]


def test_trainer_reads_tfds_like_the_file(prepared, tmp_path):
    d, _, _ = prepared
    losses = []
    for name, dc in [("file", DatasetConfig(str(d / "train.jsonl"))),
                     ("tfds", DatasetConfig("tfds:gliner_ner/toy", data_dir=str(d / "data")))]:
        cfg = tiny_config(d / "train.jsonl", num_steps=2, log_every=1, checkpoint_every=2)
        cfg.data.train = [dc]
        run(cfg, tmp_path / name, progress=False)
        recs = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().split("\n")
                if x]
        losses.append([r["loss"] for r in recs if "loss" in r])
    assert len(losses[0]) == 2 and losses[0] == losses[1]

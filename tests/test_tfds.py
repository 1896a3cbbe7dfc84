"""TFDS input (train/tfds_data.py): GLiNER JSONL and BIO folders prepared as array_record shards
read back unchanged; the trainer trains on a "tfds:" dataset exactly as on its source file;
per-host reading order is disjoint, complete, deterministic and resumable."""

import json

import numpy as np
import pytest
from train_setup import synthetic_examples, tiny_config, write_jsonl

pytest.importorskip("tensorflow_datasets",
                    reason="TFDS input is the optional extra: pip install -r requirements-pod.txt")

from train import tfds_data  # noqa: E402
from train.config import DatasetConfig  # noqa: E402
from train.data import load_dataset  # noqa: E402
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
    assert from_tfds.examples == from_file.examples  # source order, ids removed
    assert from_tfds.labels == from_file.labels
    assert from_tfds.name == "gliner_ner/toy/train"


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


@pytest.mark.parametrize("processes", [1, 2, 4])
def test_host_indices_shard_the_global_order(processes):
    n, batch = 37, 8  # batches straddle epochs
    for step in range(12):
        whole = tfds_data.host_indices(n, 5, step, batch, 0, 1)
        parts = [tfds_data.host_indices(n, 5, step, batch, i, processes)
                 for i in range(processes)]
        assert np.concatenate(parts).tolist() == whole.tolist()
    # every epoch reads each example once, in a seeded order that differs between epochs
    first = np.concatenate([tfds_data.host_indices(n, 5, s, 1, 0, 1) for s in range(2 * n)])
    assert sorted(first[:n]) == sorted(first[n:]) == list(range(n))
    assert first[:n].tolist() != first[n:].tolist()
    assert tfds_data.host_indices(n, 6, 0, batch, 0, 1).tolist() != \
        tfds_data.host_indices(n, 5, 0, batch, 0, 1).tolist()
    with pytest.raises(ValueError, match="does not split"):
        tfds_data.host_indices(n, 5, 0, 6, 0, 4)


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

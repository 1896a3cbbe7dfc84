"""GLiNER-format data as a TFDS dataset (array_record shards): prepare once, read on every host.

    python -m train.tfds_data --source DATA --name NAME --data_dir DATA_DIR [--split ...]

writes DATA_DIR/gliner_ner/NAME/1.0.0/ from a gliner JSON / JSONL file (split "train") or a BIO /
evaluation-bundle folder (each of --split, default train dev test where present). The trainer
reads it with `--config.data.train.0.path=tfds:gliner_ner/NAME --config.data.train.0.data_dir=
DATA_DIR`. DATA_DIR is a local or mounted path (gcsfuse on a pod): the open-source array_record
does not open gs:// URLs. A record is {"id": position in the source, "example": the example as
gliner JSON}; the dataset's label set (labels.json order) is in the metadata.

Beside the shards, `gliner_index-SPLIT.npz` holds per example what the trainer needs without
reading the record (train.data.TypeIndex: its gold types, `ner_negatives` / `ner_labels`, word
count and span bounds for the data report) and `record`, where the example of each source
position lies in the (shuffled) array_record split. A host then reads only the records of its
own rows. It is a separate numpy file rather than TFDS metadata: flat integer columns are a few
bytes per entity and load in milliseconds, whereas metadata.json is JSON that every
`tfds.builder` call parses. A dataset prepared without it (older versions) still trains: every
host then reads all records once at start to rebuild it (a warning says so).

tensorflow-datasets and array_record are an optional extra (requirements-pod.txt) and imported
here only, lazily: prediction and file-based training never need them; TensorFlow itself is
never needed (array_record is read with the builder's `as_data_source`).
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gliner_jax import corpora
from train.data import TypeIndex

BUILDER = "gliner_ner"
VERSION = "1.0.0"


def _tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("TFDS input needs the optional extra: "
                          "pip install -r requirements-pod.txt") from e
    return tfds


def _read(source: Path, split: str) -> tuple[list[dict], list[str]]:
    if source.is_dir():
        examples, labels = corpora.read_split(source, split, misaligned="drop")
    else:
        examples = corpora.read_gliner_json(source)
        labels = corpora.dataset_labels(examples)
    return list(examples), labels


def make_builder(source: str | Path, name: str, data_dir: str, splits=("train",)):
    """A TFDS builder of `source` whose config is `name` (not registered: a reader needs only
    the prepared files, `tfds.data_source("gliner_ner/NAME", data_dir=...)`)."""
    tfds = _tfds()
    source = Path(source)
    read = {s: _read(source, s) for s in splits}
    labels = next(iter(read.values()))[1]

    class GlinerNer(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version(globals()["VERSION"])
        BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=name, description=str(source))]

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self, description=f"GLiNER-format NER data from {source}",
                features=tfds.features.FeaturesDict({"id": np.int64,
                                                     "example": tfds.features.Text()}),
                metadata=tfds.core.MetadataDict(labels=labels))

        def _split_generators(self, dl_manager):
            return {s: self._generate_examples(s) for s in splits}

        def _generate_examples(self, split):
            for i, ex in enumerate(read[split][0]):
                yield i, {"id": i, "example": json.dumps(ex)}

    GlinerNer.name = BUILDER
    return GlinerNer(config=name, data_dir=data_dir, file_format="array_record")


def prepare(source: str | Path, name: str, data_dir: str, splits=("train",)) -> str:
    """Write the array_record shards and each split's type index; returns the dataset's
    directory."""
    builder = make_builder(source, name, data_dir, splits)
    builder.download_and_prepare()
    for split in splits:
        types, record = index_split(Source(name, data_dir, split))
        path = index_path(builder.data_dir, split)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, record=record, **types.arrays())
        os.replace(tmp, path)
    return str(builder.data_dir)


def index_path(dataset_dir, split: str) -> Path:
    return Path(os.fspath(dataset_dir)) / f"gliner_index-{split}.npz"


class Source:
    """Random access to one prepared split: `len`, `[i]` -> gliner example (with "id", its
    position in the source), `.labels`. `[i]` reads record i of the array_record split."""

    def __init__(self, name: str, data_dir: str, split: str = "train"):
        tfds = _tfds()
        full = name if "/" in name else f"{BUILDER}/{name}"
        builder = tfds.builder(full, data_dir=data_dir)
        self.name, self.split, self.dir = f"{full}/{split}", split, builder.data_dir
        self.ds = builder.as_data_source(split=split)
        self.labels = list(builder.info.metadata.get("labels", []))

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        rec = self.ds[int(i)]
        text = rec["example"]
        ex = json.loads(text.decode() if isinstance(text, bytes) else text)
        ex["id"] = int(rec["id"])
        return ex


class Examples(Sequence):
    """The examples of a split in source order, read on `[j]` (one record each); slices are
    views. `positions` are source positions, `record[p]` the record holding position p."""

    def __init__(self, src: Source, record: np.ndarray, positions: np.ndarray | None = None):
        self.src, self.record = src, record
        self.positions = np.arange(len(record)) if positions is None else positions

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, j):
        if isinstance(j, slice):
            return Examples(self.src, self.record, self.positions[j])
        p = int(self.positions[j])
        ex = self.src[self.record[p]]
        if ex.pop("id") != p:
            raise ValueError(f"{self.src.name}: record {self.record[p]} is not example {p}: "
                             f"its {index_path(self.src.dir, self.src.split).name} is stale")
        return ex


def index_split(src: Source) -> tuple[TypeIndex, np.ndarray]:
    """(type index in source order, record of each source position), from reading every
    record once."""
    examples: list = [None] * len(src)
    record = np.full(len(src), -1, np.int64)
    for i in range(len(src)):
        ex = src[i]
        record[ex["id"]] = i
        examples[ex.pop("id")] = ex
    if (record < 0).any():
        raise ValueError(f"{src.name}: the records' ids are not the positions 0..{len(src) - 1}")
    return TypeIndex.of(examples), record


def load_split(name: str, data_dir: str, split: str,
               ) -> tuple[str, Examples, TypeIndex, list[str]]:
    """(name, the split's examples in source order (lazy), their type index, label set): the
    trainer's Dataset, so a TFDS source trains exactly as the file it was prepared from, while
    a host reads only the records it encodes."""
    src = Source(name, data_dir, split)
    path = index_path(src.dir, split)
    if path.is_file():
        with np.load(path) as f:
            types, record = TypeIndex.from_arrays(f), f["record"]
    else:
        warnings.warn(f"{src.name}: no {path.name} (prepared by an older version): reading "
                      f"all {len(src)} records to index them; prepare it again to skip this",
                      stacklevel=2)
        types, record = index_split(src)
    if len(record) != len(src):
        raise ValueError(f"{path} indexes {len(record)} examples, the split has {len(src)}")
    return src.name, Examples(src, record), types, src.labels or types.span_types()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True, help="gliner .json/.jsonl file or dataset folder")
    ap.add_argument("--name", required=True, help="config name: DATA_DIR/gliner_ner/NAME")
    ap.add_argument("--data_dir", required=True, help="local or mounted folder")
    ap.add_argument("--split", nargs="*", help="folder splits (default: train dev test present)")
    args = ap.parse_args(argv)
    splits = args.split
    if not splits:
        splits = ["train"]
        if Path(args.source).is_dir():
            splits = [s for s in ("train", "dev", "test") if _has_split(Path(args.source), s)]
    print(prepare(args.source, args.name, args.data_dir, tuple(splits)))
    return 0


def _has_split(folder: Path, split: str) -> bool:
    try:
        corpora.read_split(folder, split, misaligned="drop")
    except (corpora.CorpusError, FileNotFoundError):
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())

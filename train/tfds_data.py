"""GLiNER-format data as a TFDS dataset (array_record shards): prepare once, read on every host.

    python -m train.tfds_data --source DATA --name NAME --data_dir DATA_DIR [--split ...]

writes DATA_DIR/gliner_ner/NAME/1.0.0/ from a gliner JSON / JSONL file (split "train") or a BIO /
evaluation-bundle folder (each of --split, default train dev test where present). The trainer
reads it with `--config.data.train.0.path=tfds:gliner_ner/NAME --config.data.train.0.data_dir=
DATA_DIR`. DATA_DIR is a local or mounted path (gcsfuse on a pod): the open-source array_record
does not open gs:// URLs. A record is {"id": position in the source, "example": the example as
gliner JSON}; the dataset's label set (labels.json order) is in the metadata.

tensorflow-datasets and array_record are an optional extra (requirements-pod.txt) and imported
here only, lazily: prediction and file-based training never need them; TensorFlow itself is
never needed (array_record is read with the builder's `as_data_source`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from gliner_jax import corpora

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
    """Write the array_record shards; returns the dataset's directory."""
    builder = make_builder(source, name, data_dir, splits)
    builder.download_and_prepare()
    return str(builder.data_dir)


class Source:
    """Random access to one prepared split: `len`, `[i]` -> gliner example, `.labels`."""

    def __init__(self, name: str, data_dir: str, split: str = "train"):
        tfds = _tfds()
        full = name if "/" in name else f"{BUILDER}/{name}"
        builder = tfds.builder(full, data_dir=data_dir)
        self.name = f"{full}/{split}"
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


def load_examples(name: str, data_dir: str, split: str) -> tuple[str, list[dict], list[str]]:
    """(name, all examples of a split in source order, label set): the trainer's in-memory
    Dataset, so a TFDS source trains exactly as the file it was prepared from."""
    src = Source(name, data_dir, split)
    examples = sorted((src[i] for i in range(len(src))), key=lambda ex: ex["id"])
    for ex in examples:
        del ex["id"]
    return src.name, examples, src.labels or corpora.dataset_labels(examples)


def host_indices(n: int, seed: int, step: int, batch_size: int, process_index: int,
                 process_count: int) -> np.ndarray:
    """The example indices that process `process_index` reads for global batch `step`.

    The global order is a fresh seeded permutation of the n examples per epoch; global batch s
    is positions [s*B, (s+1)*B) of it, and process i reads its contiguous B/P rows (those its
    devices hold). A pure function of (seed, step): resuming at step s needs no state."""
    if batch_size % process_count:
        raise ValueError(f"batch {batch_size} does not split over {process_count} processes")
    per = batch_size // process_count
    pos = step * batch_size + process_index * per + np.arange(per)
    epoch, within = np.divmod(pos, n)
    out = np.empty(per, np.int64)
    for e in np.unique(epoch):
        perm = np.random.default_rng([seed, int(e)]).permutation(n)
        out[epoch == e] = perm[within[epoch == e]]
    return out


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

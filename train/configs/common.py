"""Pieces shared by the real configs: the supervised training mixture and the dev set.

Paths are relative to the repository root (the data lives beside the project); set GLINER_DATA
to read it elsewhere. Zero-shot test domains (MIT movie / restaurant) stay out of the mixture.
"""

import os

from train.config import DatasetConfig

DATA = os.environ.get("GLINER_DATA", "../shared/data/ner")

# (folder under supervised/, weight): weights favour the corpora with many entity types
MIXTURE = (("fewnerd", 3.0), ("multiconer2_en", 2.0), ("conll2003", 1.0), ("wikiann_en", 1.0),
           ("bc5cdr", 0.5), ("ncbi_disease", 0.5), ("bionlp13cg", 0.5),
           ("wnut17", 0.5), ("scierc", 0.5), ("re3d", 0.25), ("harveyner", 0.25))


def train_mixture() -> list[DatasetConfig]:
    return [DatasetConfig(f"{DATA}/supervised/{name}", "train", weight=w) for name, w in MIXTURE]


def dev_set(max_examples: int = 200) -> DatasetConfig:
    """CrossNER AI dev: out of domain, allowed for picking a checkpoint (data README)."""
    return DatasetConfig(f"{DATA}/zeroshot/crossner_ai", "dev", max_examples=max_examples)

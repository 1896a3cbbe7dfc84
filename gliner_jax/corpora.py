"""NER corpora -> one in-memory form: the reference's training examples.

An example is ``{"tokenized_text": [word, ...], "ner": [[start_word, end_word, label], ...]}``
with inclusive word indices (gliner's training JSON). Three inputs are read into it:

* a BIO folder: ``train.txt`` / ``dev.txt`` / ``test.txt`` in two tab-separated columns
  (``token<TAB>IOB2 tag``) plus ``labels.json`` mapping raw type -> natural-language label,
  ``null`` dropping the type (its spans are removed and counted);
* gliner JSON / JSONL files of examples, validated;
* the reference's evaluation bundle (``*train*.json`` ... of ``{"sentence", "entities"}``),
  converted as gliner 0.2.29 ``evaluation/evaluate_ner.py::process`` does.

Every reader returns :class:`Examples`, a list that carries a :class:`CorpusStats` in ``.stats``:
with ``skip_errors=True`` a malformed line or example is skipped, counted and described there (and
one warning is raised per file); otherwise it stops the read with a :class:`CorpusError` that names
the file and the line (or list index). Nothing is dropped without a count.

CLI: ``python -m gliner_jax.corpora convert FOLDER SPLIT OUT.jsonl`` writes a split as gliner JSONL.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

SPLITS = ("train", "dev", "test")
Misaligned = Literal["keep", "drop", "raise"]


class CorpusError(ValueError):
    """A corpus file is malformed; the message names the file and the line or index."""


class CorpusWarning(UserWarning):
    """Something was skipped while reading with ``skip_errors=True`` (see ``Examples.stats``)."""


@dataclasses.dataclass
class CorpusStats:
    """What a read kept, dropped and skipped."""

    source: str = ""
    sentences: int = 0
    entities: int = 0  # spans kept in the examples
    # spans removed because labels.json maps their raw type to null, by raw type
    dropped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    orphan_inside: int = 0  # I-X tags continuing no X entity: each starts a new entity (lenient)
    misaligned: int = 0  # eval layout: char offsets not on word boundaries (reference gives None)
    skipped: list[str] = dataclasses.field(default_factory=list)  # one message per skipped item

    @property
    def entities_total(self) -> int:
        """Spans in the source, dropped types included (the README's entity counts)."""
        return self.entities + sum(self.dropped.values())

    def summary(self) -> str:
        dropped = ", ".join(f"{t}: {n}" for t, n in sorted(self.dropped.items())) or "none"
        return (
            f"{self.source}: {self.sentences} sentences, {self.entities} entities "
            f"({self.entities_total} before dropping; dropped {dropped}), "
            f"{self.orphan_inside} orphan I- tags, {self.misaligned} misaligned, "
            f"{len(self.skipped)} skipped"
        )


class Examples(list):
    """A list of examples carrying the :class:`CorpusStats` of how it was read."""

    def __init__(self, items: Iterable[dict] = (), stats: CorpusStats | None = None):
        super().__init__(items)
        self.stats = stats if stats is not None else CorpusStats()


def _reject(stats: CorpusStats, where: str, problem: str, skip_errors: bool) -> None:
    """Raise, or (skip_errors) record the skipped item."""
    if not skip_errors:
        raise CorpusError(f"{where}: {problem}")
    stats.skipped.append(f"{where}: {problem}")


def _warn_if_skipped(stats: CorpusStats) -> None:
    if stats.skipped:
        warnings.warn(
            f"{stats.source}: skipped {len(stats.skipped)} malformed item(s), first: "
            f"{stats.skipped[0]} (all in .stats.skipped)",
            CorpusWarning,
            stacklevel=3,
        )


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except json.JSONDecodeError as e:
        raise CorpusError(f"{path}:{e.lineno}:{e.colno}: malformed JSON: {e.msg}") from None


def dataset_labels(examples: Iterable[dict]) -> list[str]:
    """The sorted distinct labels of a list of examples."""
    return sorted({span[2] for ex in examples for span in ex["ner"]})


# ---------------------------------------------------------------------------------------------
# BIO folders


def read_labels_json(path: str | os.PathLike) -> dict[str, str | None]:
    """A BIO folder's ``labels.json``: raw type -> natural-language label, or None (dropped)."""
    path = Path(path)
    mapping = _load_json(path)
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and (v is None or (isinstance(v, str) and v)) for k, v in mapping.items()
    ):
        raise CorpusError(f"{path}: expected an object of raw type -> label string or null")
    return mapping


def natural_labels(mapping: dict[str, str | None]) -> list[str]:
    """Non-null labels of a labels.json mapping, in file order, each once."""
    return list(dict.fromkeys(v for v in mapping.values() if v is not None))


def read_bio_file(
    path: str | os.PathLike, type_to_label: dict[str, str | None], *, skip_errors: bool = False
) -> Examples:
    """Read one two-column IOB2 file; raw types are mapped through ``type_to_label``."""
    path = Path(path)
    stats = CorpusStats(source=str(path))
    examples = Examples(stats=stats)
    tokens: list[str] = []
    spans: list[list[Any]] = []  # [start, end, raw_type], in order of appearance
    current: list[Any] | None = None  # the span an I- tag may continue

    def end_sentence() -> None:
        nonlocal current
        if tokens:
            ner = []
            for s, e, raw in spans:
                label = type_to_label[raw]
                if label is None:
                    stats.dropped[raw] += 1
                else:
                    ner.append([s, e, label])
            examples.append({"tokenized_text": list(tokens), "ner": ner})
            stats.entities += len(ner)
        tokens.clear()
        spans.clear()
        current = None

    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                end_sentence()
                continue
            where = f"{path}:{lineno}"
            cols = line.split("\t")
            token, tag = cols if len(cols) == 2 else (None, None)
            if token is None:
                problem = f"expected 2 tab-separated columns (token, tag), found {len(cols)}"
            elif not token.strip():
                problem = "empty token"
            elif tag != "O" and (tag[:2] not in ("B-", "I-") or len(tag) == 2):
                problem = f"bad tag {tag!r} (expected O, B-<type> or I-<type>)"
            else:
                problem = None
            if problem:
                _reject(stats, where, f"{problem}: {line!r}", skip_errors)
                continue
            i = len(tokens)
            tokens.append(token)
            if tag == "O":
                current = None
                continue
            raw = tag[2:]
            if raw not in type_to_label:
                # a wrong labels.json is not a stray line: never skipped
                raise CorpusError(
                    f"{where}: entity type {raw!r} is not in labels.json "
                    f"(known: {', '.join(sorted(type_to_label))})"
                )
            if tag[0] == "I" and current is not None and current[2] == raw:
                current[1] = i
                continue
            if tag[0] == "I":
                stats.orphan_inside += 1  # seqeval lenient: I-X after O or Y begins an X entity
            current = [i, i, raw]
            spans.append(current)
    end_sentence()
    stats.sentences = len(examples)
    _warn_if_skipped(stats)
    return examples


def read_bio_folder(
    folder: str | os.PathLike, split: str, *, skip_errors: bool = False
) -> tuple[Examples, list[str]]:
    """Read ``FOLDER/SPLIT.txt`` with ``FOLDER/labels.json``: (examples, natural labels)."""
    folder = Path(folder)
    mapping = read_labels_json(folder / "labels.json")
    examples = read_bio_file(folder / f"{split}.txt", mapping, skip_errors=skip_errors)
    return examples, natural_labels(mapping)


# ---------------------------------------------------------------------------------------------
# gliner JSON / JSONL


def _is_index(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_example(obj: Any) -> dict:
    """A validated copy of one gliner example (extra keys kept); ValueError says what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected an object, got {type(obj).__name__}")
    for key in ("tokenized_text", "ner"):
        if key not in obj:
            raise ValueError(f"missing key {key!r}")
    words, ner = obj["tokenized_text"], obj["ner"]
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise ValueError("'tokenized_text' must be a list of strings")
    if not isinstance(ner, list):
        raise ValueError("'ner' must be a list of [start, end, label]")
    spans = []
    for k, span in enumerate(ner):
        if not isinstance(span, list | tuple) or len(span) != 3:
            raise ValueError(f"ner[{k}] = {span!r}: expected [start, end, label]")
        s, e, label = span
        if not (_is_index(s) and _is_index(e)):
            raise ValueError(f"ner[{k}] = {span!r}: start and end must be integers")
        if not isinstance(label, str) or not label:
            raise ValueError(f"ner[{k}] = {span!r}: label must be a non-empty string")
        if s > e:
            raise ValueError(f"ner[{k}] = {span!r}: start > end")
        if s < 0 or e >= len(words):
            raise ValueError(f"ner[{k}] = {span!r}: out of range for {len(words)} words")
        spans.append([s, e, label])
    return {**obj, "tokenized_text": list(words), "ner": spans}


def read_gliner_json(path: str | os.PathLike, *, skip_errors: bool = False) -> Examples:
    """Read a JSON list or JSONL file of gliner examples, validating each one."""
    path = Path(path)
    stats = CorpusStats(source=str(path))
    examples = Examples(stats=stats)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    items: list[tuple[str, Any]] = []  # (where, decoded object)
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:  # one broken list loses the whole file: never skipped
            raise CorpusError(f"{path}:{e.lineno}:{e.colno}: malformed JSON: {e.msg}") from None
        items = [(f"{path}[{i}]", obj) for i, obj in enumerate(data)]
    else:
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append((f"{path}:{lineno}", json.loads(line)))
            except json.JSONDecodeError as e:
                _reject(stats, f"{path}:{lineno}", f"malformed JSON line: {e.msg}", skip_errors)
    for where, obj in items:
        try:
            example = check_example(obj)
        except ValueError as e:
            _reject(stats, where, str(e), skip_errors)
            continue
        examples.append(example)
        stats.entities += len(example["ner"])
    stats.sentences = len(examples)
    _warn_if_skipped(stats)
    return examples


def write_gliner_jsonl(examples: Iterable[dict], path: str | os.PathLike) -> int:
    """Write examples as gliner JSONL (validated first); returns the number written."""
    lines = []
    for i, ex in enumerate(examples):
        try:
            ex = check_example(ex)
        except ValueError as e:
            raise CorpusError(f"example {i}: {e}; not writing {path}") from None
        ex = {"tokenized_text": ex["tokenized_text"], "ner": ex["ner"], **ex}
        lines.append(json.dumps(ex, ensure_ascii=False) + "\n")
    Path(path).write_text("".join(lines), encoding="utf-8")
    return len(lines)


# ---------------------------------------------------------------------------------------------
# The reference's evaluation bundle (NER_datasets): *train*.json, *dev*.json, *test*.json, *labels*


def _eval_role(name: str) -> str | None:
    return next((r for r in (*SPLITS, "labels") if r in name), None)


def _eval_layout_files(folder: Path) -> dict[str, Path]:
    """Role -> file. Roles are matched by substring like ``evaluate_ner.open_content`` (train, then
    dev, test, labels), but on the file name only (the reference tests the whole path, so a folder
    named like a role captures every file), and two files for one role are an error (the reference
    keeps whichever glob lists last)."""
    files: dict[str, Path] = {}
    for p in sorted(folder.glob("*.json")):
        role = _eval_role(p.name)
        if role is None:
            continue
        if role in files:
            raise CorpusError(f"{folder}: two files for {role!r}: {files[role].name}, {p.name}")
        files[role] = p
    return files


def _read_eval_labels(folder: Path, files: dict[str, Path]) -> list[str]:
    """The bundle's label list, lowercased as ``evaluate_ner.create_dataset`` does."""
    if "labels" not in files:
        raise CorpusError(f"{folder}: no *labels*.json")
    labels = _load_json(files["labels"])
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise CorpusError(f"{files['labels']}: expected a list of label strings")
    return [label.lower() for label in labels]


def char_span_to_words(words: list[str], start_char: int, end_char: int):
    """(start_word, end_word) of a char span [start_char, end_char), exactly as the reference's
    ``process``: offsets are counted assuming one space between words; an end that is not a word
    end gives end None, a start that is not a word start (before the end word) gives start None."""
    start_word = end_word = None
    char_count = 0
    for i, word in enumerate(words):
        if char_count == start_char:
            start_word = i
        if char_count + len(word) == end_char:
            end_word = i
            break
        char_count += len(word) + 1
    return start_word, end_word


def _eval_sample_to_example(sample: Any) -> tuple[list[str], list[list[Any]]]:
    if not isinstance(sample, dict) or not isinstance(sample.get("sentence"), str):
        raise ValueError("expected an object with a 'sentence' string")
    entities = sample.get("entities")
    if not isinstance(entities, list):
        raise ValueError("'entities' must be a list")
    words = sample["sentence"].split()
    ner = []
    for k, ent in enumerate(entities):
        pos = ent.get("pos") if isinstance(ent, dict) else None
        if not (isinstance(pos, list | tuple) and len(pos) == 2 and all(map(_is_index, pos))):
            raise ValueError(f"entities[{k}]: expected {{'pos': [start, end], 'type': str}}")
        if not isinstance(ent.get("type"), str):
            raise ValueError(f"entities[{k}]: 'type' must be a string")
        ner.append([*char_span_to_words(words, *pos), ent["type"].lower()])
    return words, ner


def read_eval_split(
    folder: str | os.PathLike,
    split: str,
    *,
    misaligned: Misaligned = "keep",
    skip_errors: bool = False,
) -> tuple[Examples, list[str]]:
    """One split of an evaluation-bundle folder: (examples, lowercased labels).

    ``misaligned`` says what to do with an entity whose char offsets are not on word boundaries:
    "keep" it with a None index as the reference does (it is then a gold entity no prediction can
    match), "drop" it, or "raise". Either way it is counted in ``stats.misaligned``.
    """
    folder = Path(folder)
    files = _eval_layout_files(folder)
    labels = _read_eval_labels(folder, files)
    if split not in files:
        raise CorpusError(f"{folder}: no *{split}*.json")
    path = files[split]
    stats = CorpusStats(source=str(path))
    examples = Examples(stats=stats)
    data = _load_json(path)
    if not isinstance(data, list):
        raise CorpusError(f"{path}: expected a list of samples")
    for i, sample in enumerate(data):
        try:
            words, ner = _eval_sample_to_example(sample)
        except ValueError as e:
            _reject(stats, f"{path}[{i}]", str(e), skip_errors)
            continue
        kept = []
        for span in ner:
            if span[0] is None or span[1] is None:
                stats.misaligned += 1
                if misaligned == "raise":
                    raise CorpusError(f"{path}[{i}]: entity {span} not on word boundaries")
                if misaligned == "drop":
                    continue
            kept.append(span)
        examples.append({"tokenized_text": words, "ner": kept})
        stats.entities += len(kept)
    stats.sentences = len(examples)
    _warn_if_skipped(stats)
    return examples, labels


def read_eval_layout(
    folder: str | os.PathLike, *, misaligned: Misaligned = "keep", skip_errors: bool = False
) -> tuple[dict[str, Examples], list[str]]:
    """Every split present in an evaluation-bundle folder: ({split: examples}, labels)."""
    folder = Path(folder)
    files = _eval_layout_files(folder)
    labels = _read_eval_labels(folder, files)
    splits = {
        split: read_eval_split(folder, split, misaligned=misaligned, skip_errors=skip_errors)[0]
        for split in SPLITS
        if split in files
    }
    return splits, labels


# ---------------------------------------------------------------------------------------------
# Folders of datasets


def detect_layout(folder: str | os.PathLike) -> Literal["bio", "eval"] | None:
    """The folder's layout: "bio" (labels.json + split .txt), "eval" (*labels*.json + split
    .json), or None."""
    folder = Path(folder)
    if (folder / "labels.json").is_file() and any((folder / f"{s}.txt").is_file() for s in SPLITS):
        return "bio"
    roles = {_eval_role(p.name) for p in folder.glob("*.json")}
    if "labels" in roles and roles & set(SPLITS):
        return "eval"
    return None


def find_datasets(root: str | os.PathLike) -> list[Path]:
    """Every dataset folder (either layout) at or below ``root``, sorted by path."""
    if not Path(root).is_dir():
        raise CorpusError(f"{root}: no such folder")
    found = []
    for dirpath, _, _ in os.walk(root, followlinks=True):
        if detect_layout(dirpath) is not None:
            found.append(Path(dirpath))
    return sorted(found)


def read_split(
    folder: str | os.PathLike,
    split: str,
    *,
    skip_errors: bool = False,
    misaligned: Misaligned = "keep",
) -> tuple[Examples, list[str]]:
    """(examples, labels) of one split of a dataset folder of either layout."""
    layout = detect_layout(folder)
    if layout == "bio":
        return read_bio_folder(folder, split, skip_errors=skip_errors)
    if layout == "eval":
        return read_eval_split(folder, split, misaligned=misaligned, skip_errors=skip_errors)
    raise CorpusError(f"{folder}: not a dataset folder (no labels.json + split files)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gliner_jax.corpora")
    sub = parser.add_subparsers(dest="command", required=True)
    convert = sub.add_parser("convert", help="write one split of a dataset folder as gliner JSONL")
    convert.add_argument("folder")
    convert.add_argument("split")
    convert.add_argument("out")
    convert.add_argument("--skip-errors", action="store_true", help="skip and count bad lines")
    args = parser.parse_args(argv)
    try:
        # JSONL cannot hold a None index: misaligned eval-layout entities are dropped (and counted)
        examples, labels = read_split(
            args.folder, args.split, skip_errors=args.skip_errors, misaligned="drop"
        )
        n = write_gliner_jsonl(examples, args.out)
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(examples.stats.summary(), file=sys.stderr)
    for message in examples.stats.skipped:
        print(f"skipped {message}", file=sys.stderr)
    print(f"wrote {n} examples, labels: {', '.join(labels)} -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Inputs and outputs of `python -m gliner_jax.predict`: label lists, text / JSONL readers with
file:line error messages, and the jsonl / json / inline-text formatters. No JAX here, so that bad
input is reported before the model is loaded.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from gliner_jax.processing import normalize_labels


class InputError(ValueError):
    """Bad input (labels, files, lines): the message is one line and names the place."""


@dataclasses.dataclass
class Record:
    id: Any                      # the JSONL "id", else the 0-based line / argument index
    text: str
    labels: list[str] | dict[str, str] | None = None  # per-record labels (JSONL) or None
    where: str = ""              # "FILE:LINE", for messages


class ErrorPolicy:
    """Stop at the first bad input line, or (`skip`) count it and go on."""

    def __init__(self, skip: bool):
        self.skip = skip
        self.skipped: list[str] = []

    def bad(self, message: str) -> None:
        if not self.skip:
            raise InputError(message)
        self.skipped.append(message)


# ------------------------------------------------------------------------------------------------
# labels


def parse_labels(spec: str) -> list[str]:
    """`--labels`: "person,organization" or "@FILE" (one label per line, blank lines ignored)."""
    if spec.startswith("@"):
        name = spec[1:]
        data = _read_bytes(name)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise InputError(f"--labels {spec}: not valid UTF-8 (byte {e.start + 1})") from None
        labels = [x.strip() for x in text.splitlines() if x.strip()]
        if not labels:
            raise InputError(f"--labels {spec}: the file holds no labels")
    else:
        labels = [x.strip() for x in spec.split(",")]
        for i, x in enumerate(labels):
            if not x:
                raise InputError(f"--labels {spec!r}: label {i + 1} is empty")
    return list(dict.fromkeys(labels))


def check_labels(labels: Any, where: str) -> list[str] | dict[str, str]:
    """A JSONL line's "labels": a list of names or {name: description}, none empty."""
    if not isinstance(labels, list | Mapping) or isinstance(labels, str):
        raise InputError(f"{where}: \"labels\" must be a list of strings, "
                         f"got {type(labels).__name__}")
    try:
        normalize_labels(labels)
    except (TypeError, ValueError) as e:
        raise InputError(f"{where}: {e}") from None
    return labels


# ------------------------------------------------------------------------------------------------
# readers


def _read_bytes(name: str | Path, stream: BinaryIO | None = None) -> bytes:
    if stream is not None:
        return stream.read()
    try:
        return Path(name).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a directory, not a file") from None
    except PermissionError:
        raise InputError(f"{name}: permission denied") from None
    except OSError as e:
        raise InputError(f"{name}: cannot read ({e.strerror or e})") from None


def read_units(name: str, *, fmt: str, document: bool,
               stream: BinaryIO | None = None) -> list[bytes]:
    """The raw input units of a file (or of `stream`), not yet decoded: its lines (fmt "txt" or
    "jsonl"), or with `document` the whole input as one unit. Unit i is line i + 1, so that a
    process of a multi-host run parses only the units of its own chunks (`parse_units`)."""
    data = _read_bytes(name, stream)
    if document and fmt == "txt":
        return [data]
    return data.splitlines()


def parse_units(units: Sequence[bytes], first: int, name: str, *, fmt: str, document: bool,
                policy: ErrorPolicy) -> list[Record]:
    """Records of units[...] numbered from `first` (0-based) in the input `name`.

    fmt "txt": one text per line (ids are 0-based line numbers; empty lines are empty texts),
    or with `document` the whole input as one text. fmt "jsonl": one object per line,
    {"id": ..., "text": ..., "labels": [...]}, "id" and "labels" optional, blank lines ignored.
    """
    if document and fmt == "txt":
        data = units[0]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            policy.bad(f"{name}:{line}: not valid UTF-8 (byte {e.start + 1} of the file)")
            text = data.decode("utf-8", errors="replace")  # skip-errors: keep the rest
        return [Record(0, text.removeprefix("\ufeff"), where=name)]
    out = []
    for n, raw in enumerate(units, start=first + 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            policy.bad(f"{name}:{n}: not valid UTF-8 (byte {e.start + 1} of the line)")
            continue
        if n == 1:
            line = line.removeprefix("\ufeff")  # a UTF-8 byte order mark
        if fmt == "txt":
            out.append(Record(n - 1, line, where=f"{name}:{n}"))
        elif line.strip():
            out += _jsonl_record(line, f"{name}:{n}", n - 1, policy)
    return out


def read_records(name: str, *, fmt: str, document: bool, policy: ErrorPolicy,
                 stream: BinaryIO | None = None) -> list[Record]:
    """All records of a file (or of `stream`, named `name` in messages); see `parse_units`."""
    units = read_units(name, fmt=fmt, document=document, stream=stream)
    return parse_units(units, 0, name, fmt=fmt, document=document, policy=policy)


def _jsonl_record(line: str, where: str, index: int, policy: ErrorPolicy) -> list[Record]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        policy.bad(f"{where}: malformed JSON ({e.msg} at column {e.colno})")
        return []
    try:
        if not isinstance(obj, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        if not isinstance(obj.get("text"), str):
            raise InputError(f"{where}: \"text\" must be a string"
                             + ("" if "text" in obj else " (missing)"))
        labels = obj.get("labels")
        if labels is not None:
            labels = check_labels(labels, where)
    except InputError as e:
        policy.bad(str(e))
        return []
    return [Record(obj.get("id", index), obj["text"], labels, where)]


# ------------------------------------------------------------------------------------------------
# outputs


def result(record: Record, entities: list[dict[str, Any]],
           relations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out = {"id": record.id, "entities": entities}
    if relations is not None:  # relex models with --relations
        out["relations"] = relations
    return out


def to_json_line(record: Record, entities: list[dict[str, Any]],
                 relations: list[dict[str, Any]] | None = None) -> str:
    return json.dumps(result(record, entities, relations), ensure_ascii=False)


_COLORS = (36, 33, 35, 32, 34, 31)  # cyan, yellow, magenta, green, blue, red


def mark_inline(text: str, entities: Sequence[dict[str, Any]], *, color: bool = False,
                palette: dict[str, int] | None = None) -> str:
    """`text` with each entity as "[its text](label 0.93)"; nested entities nest their
    brackets, labels of the very same span (multi-label) share one tag."""
    spans: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for e in entities:
        spans.setdefault((e["start"], e["end"]), []).append(e)
    palette = {} if palette is None else palette
    events: list[tuple[int, int, int, str]] = []  # (position, order, tie-break, inserted text)
    for (s, e), group in spans.items():
        tag = ", ".join(f"{g['label']} {g['score']:.2f}" for g in group)
        if color:
            code = palette.setdefault(group[0]["label"], _COLORS[len(palette) % len(_COLORS)])
            tag = f"\x1b[{code}m{tag}\x1b[0m"
        # at one position: closing tags first, inner spans closed before outer ones, outer
        # spans opened before inner ones
        events.append((s, 1, -e, "["))
        events.append((e, 0, -s, f"]({tag})"))
    out, pos = [], 0
    for at, _, _, piece in sorted(events):
        out.append(text[pos:at])
        out.append(piece)
        pos = at
    out.append(text[pos:])
    return "".join(out)


def to_text(record: Record, entities: list[dict[str, Any]], *, color: bool = False,
            palette: dict[str, int] | None = None,
            relations: list[dict[str, Any]] | None = None) -> str:
    marked = mark_inline(record.text, entities, color=color, palette=palette)
    out = f"# {record.id}\n{marked}" if "\n" in record.text else f"{record.id}: {marked}"
    for r in relations or ():  # one line per relation: head --relation score--> tail
        out += (f"\n  {r['head']['text']} --{r['relation']} {r['score']:.2f}--> "
                f"{r['tail']['text']}")
    return out


class Output:
    """Where results go. A regular file is written under a temporary name beside it
    (`NAME.partial`) and renamed to NAME only when the run succeeds (`commit`): a failed or
    killed run never leaves a file that looks complete. Standard output and special files
    (/dev/null, pipes) are written directly."""

    def __init__(self, path: str | None):
        self.path = path
        self.temp = None
        if path is None:
            sys.stdout.reconfigure(encoding="utf-8")
            self.stream = sys.stdout
            return
        target = Path(path)
        special = target.exists() and not target.is_file()
        self.temp = None if special else target.with_name(target.name + ".partial")
        try:
            self.stream = open(self.temp or target, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as e:
            raise InputError(f"{path}: cannot write ({e.strerror or e})") from None

    def commit(self) -> None:
        if self.stream is sys.stdout:
            return
        self.stream.close()
        if self.temp is not None:
            self.temp.replace(self.path)

    def discard(self) -> None:
        if self.stream is sys.stdout:
            return
        self.stream.close()
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)


def use_color(stream) -> bool:
    import os

    return stream.isatty() and not os.environ.get("NO_COLOR") and sys.platform != "win32"

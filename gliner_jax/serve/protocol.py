"""The wire protocol (the reference's): POST `<prefix>` with a JSON object
`{"text": str, "labels": [str, ...] | {name: description}, "threshold"?: float,
"flat_ner"?: bool, "multi_label"?: bool}` answers `{"entities": [{"start", "end", "text",
"label", "score"}, ...]}`. Anything else answers 4xx with `{"error": "<one line naming the
problem>"}`. Plain Python: no Ray, no web framework."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping

from gliner_jax.processing import normalize_labels

FIELDS = ("text", "labels", "threshold", "flat_ner", "multi_label")
# sent by the reference client only when set; this server has no relation or adapter models
UNSUPPORTED = {"relations": "relation extraction", "relation_threshold": "relation extraction",
               "adapter_id": "PolyLoRA adapters"}


class RequestError(ValueError):
    """A bad request: HTTP `status` and a one-line message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclasses.dataclass(frozen=True)
class PredictRequest:
    text: str
    labels: list[str] | dict[str, str]
    threshold: float
    flat_ner: bool = True
    multi_label: bool = False


def parse_request(body: bytes, *, default_threshold: float = 0.5,
                  max_labels: int = -1) -> PredictRequest:
    """A request body -> PredictRequest, or RequestError(4xx) naming what is wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RequestError(400, f"request body is not UTF-8 (byte {e.start})") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as e:
        raise RequestError(400, f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}"
                           ) from None
    except RecursionError:
        raise RequestError(400, "malformed JSON: nested too deeply") from None
    if not isinstance(payload, dict):
        raise RequestError(422, f"request must be a JSON object, got {_kind(payload)}")
    for key, value in payload.items():
        if key in UNSUPPORTED and value is not None:
            raise RequestError(422, f"field {key!r} is not supported: this server does no "
                                    f"{UNSUPPORTED[key]}")
    unknown = sorted(set(payload) - set(FIELDS) - set(UNSUPPORTED))
    if unknown:
        raise RequestError(422, f"unknown field(s) {', '.join(map(repr, unknown))}; "
                                f"expected {', '.join(FIELDS)}")
    for key in ("text", "labels"):
        if key not in payload:
            raise RequestError(422, f"missing field {key!r}")
    text = payload["text"]
    if not isinstance(text, str):
        raise RequestError(422, f"field 'text' must be a string, got {_kind(text)}")
    labels = _labels(payload["labels"], max_labels)
    threshold = payload.get("threshold")
    if threshold is None:
        threshold = default_threshold
    elif isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise RequestError(422, f"field 'threshold' must be a number, got {_kind(threshold)}")
    elif not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise RequestError(422, f"field 'threshold' must be between 0 and 1, got {threshold}")
    flags = {}
    for key, default in (("flat_ner", True), ("multi_label", False)):
        value = payload.get(key, default)
        if not isinstance(value, bool):
            raise RequestError(422, f"field {key!r} must be true or false, got {_kind(value)}")
        flags[key] = value
    return PredictRequest(text, labels, float(threshold), **flags)


def _labels(labels, max_labels: int) -> list[str] | dict[str, str]:
    if isinstance(labels, Mapping):
        bad = [k for k, v in labels.items() if not isinstance(v, str)]
        if bad:
            raise RequestError(422, f"field 'labels': description of {bad[0]!r} must be a string")
        labels = dict(labels)
    elif isinstance(labels, list):
        bad = [i for i, x in enumerate(labels) if not isinstance(x, str)]
        if bad:
            raise RequestError(422, f"field 'labels': label #{bad[0]} must be a string, got "
                                    f"{_kind(labels[bad[0]])}")
    else:
        raise RequestError(422, "field 'labels' must be a list of strings or an object "
                                f"{{name: description}}, got {_kind(labels)}")
    try:
        prompts, _ = normalize_labels(labels)
    except (TypeError, ValueError) as e:
        raise RequestError(422, f"field 'labels': {e}") from None
    if max_labels >= 0 and len(prompts) > max_labels:
        raise RequestError(422, f"field 'labels': {len(prompts)} labels, at most {max_labels} "
                                "allowed")
    return labels


def _kind(value) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value),
                                                                        type(value).__name__)

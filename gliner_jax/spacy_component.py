"""The spaCy pipeline component "gliner_jax" (registered through spaCy's `spacy_factories` entry
point, so installing gliner_jax is enough):

    nlp = spacy.blank("en")
    nlp.add_pipe("gliner_jax", config={"labels": ["person", "city"], "threshold": 0.4})
    doc = nlp("Marie Curie was born in Warsaw.")      # doc.ents, each with span._.score
    docs = list(nlp.pipe(texts, batch_size=32))       # one batched inference call per batch

The options mirror the gliner-spacy package's: `model` (its `gliner_model`; default: the model
shipped with gliner_jax), `labels`, `threshold`, `style` ("ent": flat entities into `doc.ents`;
"span": nested entities into `doc.spans[spans_key]`), `chunk_size` (characters per chunk, cut at
whitespace, as gliner-spacy does; default None: whole documents, which gliner_jax windows
itself). Beyond it: `batch_size` (rows per forward pass), `multi_label`, `alignment_mode` and
`spans_key`.

Entities are character offsets; they become spaCy spans through `Doc.char_span` with
`alignment_mode` ("strict", gliner-spacy's behaviour, drops an entity whose ends fall inside a
spaCy token; "expand" / "contract" snap it outwards / inwards). In "ent" style, spans that
overlap after snapping are resolved by `spacy.util.filter_spans` (the longest wins). Like
gliner-spacy, the component replaces `doc.ents` (or `doc.spans[spans_key]`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from gliner_jax.shipped import default_model

STYLES = ("ent", "span")
ALIGNMENTS = ("strict", "contract", "expand")
DEFAULT_CONFIG: dict[str, Any] = {
    "model": None,             # None: the shipped model
    "labels": ["person", "organization", "location"],
    "threshold": 0.5,
    "style": "ent",
    "chunk_size": None,
    "batch_size": 8,
    "multi_label": False,
    "alignment_mode": "strict",
    "spans_key": "sc",
}

if not Span.has_extension("score"):  # gliner-spacy's name; it sets the same default
    Span.set_extension("score", default=0)

_MODELS: dict[str, Any] = {}  # model path or id -> GLiNER: several pipes share one


def _load(model: str | None):
    from gliner_jax.model import GLiNER

    source = str(model) if model else str(default_model())
    if source not in _MODELS:
        _MODELS[source] = GLiNER.from_pretrained(source)
    return _MODELS[source]


@Language.factory("gliner_jax", assigns=["doc.ents", "doc.spans"],
                  default_config=DEFAULT_CONFIG)
def make_gliner_jax(nlp: Language, name: str, model: str | None, labels: list[str],
                    threshold: float, style: str, chunk_size: int | None, batch_size: int,
                    multi_label: bool, alignment_mode: str, spans_key: str) -> GlinerJax:
    return GlinerJax(nlp, name, model=model, labels=labels, threshold=threshold, style=style,
                     chunk_size=chunk_size, batch_size=batch_size, multi_label=multi_label,
                     alignment_mode=alignment_mode, spans_key=spans_key)


class GlinerJax:
    """A spaCy component that adds GLiNER entities of the configured labels to each doc."""

    def __init__(self, nlp: Language, name: str = "gliner_jax", *, model: str | None = None,
                 labels: list[str] | dict[str, str] = ("person", "organization", "location"),
                 threshold: float = 0.5, style: str = "ent", chunk_size: int | None = None,
                 batch_size: int = 8, multi_label: bool = False,
                 alignment_mode: str = "strict", spans_key: str = "sc"):
        if style not in STYLES:
            raise ValueError(f"gliner_jax: style must be one of {STYLES}, got {style!r}")
        if alignment_mode not in ALIGNMENTS:
            raise ValueError(f"gliner_jax: alignment_mode must be one of {ALIGNMENTS}, "
                             f"got {alignment_mode!r}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"gliner_jax: threshold must be between 0 and 1, got {threshold}")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"gliner_jax: chunk_size must be a positive number of characters "
                             f"or null, got {chunk_size}")
        if batch_size < 1:
            raise ValueError(f"gliner_jax: batch_size must be positive, got {batch_size}")
        if isinstance(labels, str) or not labels:
            raise ValueError("gliner_jax: labels must be a non-empty list of entity types, "
                             f"got {labels!r}")
        self.name = name
        self.model = _load(model)
        self.labels = labels if isinstance(labels, dict) else list(labels)
        self.threshold = float(threshold)
        self.style = style
        self.chunk_size = chunk_size
        self.batch_size = batch_size
        self.multi_label = multi_label
        self.alignment_mode = alignment_mode
        self.spans_key = spans_key

    def __call__(self, doc: Doc) -> Doc:
        [doc] = self._annotate([doc])
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        """One inference call per `batch_size` docs (spaCy passes nlp.pipe's batch_size)."""
        it = iter(stream)
        while batch := list(itertools.islice(it, batch_size)):
            yield from self._annotate(batch)

    # ------------------------------------------------------------------------------------------

    def _chunks(self, text: str) -> list[tuple[int, str]]:
        """(offset, chunk): gliner-spacy's chunking (chunk_size characters, extended to the next
        space or newline), or the whole text."""
        if self.chunk_size is None:
            return [(0, text)]
        out, start = [], 0
        while start < len(text):
            end = min(start + self.chunk_size, len(text))
            while end < len(text) and text[end] not in (" ", "\n"):
                end += 1
            out.append((start, text[start:end]))
            start = end
        return out

    def _annotate(self, docs: list[Doc]) -> list[Doc]:
        pieces = [(i, off, chunk) for i, doc in enumerate(docs)
                  for off, chunk in self._chunks(doc.text)]
        results = self.model.inference(   # entities only, also from a relex model
            [chunk for _, _, chunk in pieces], self.labels, batch_size=self.batch_size,
            threshold=self.threshold, flat_ner=self.style == "ent",
            multi_label=self.multi_label, return_relations=False)
        found: list[list[dict]] = [[] for _ in docs]
        for (i, off, _), ents in zip(pieces, results, strict=True):
            found[i].extend({**e, "start": e["start"] + off, "end": e["end"] + off}
                            for e in ents)
        for doc, ents in zip(docs, found, strict=True):
            self._set_spans(doc, ents)
        return docs

    def _set_spans(self, doc: Doc, entities: list[dict]) -> None:
        scored: dict[tuple[int, int, str], tuple[Span, float]] = {}
        for e in entities:
            span = doc.char_span(e["start"], e["end"], label=e["label"],
                                 alignment_mode=self.alignment_mode)
            if span is None or len(span) == 0:  # misaligned (strict) or nothing left
                continue
            # spaCy keys span._ values by (start, end, label): spans that snapped to the same
            # tokens with the same label are one span, with the first (best-ranked) score
            scored.setdefault((span.start, span.end, span.label_), (span, e["score"]))
        spans = [sp for sp, _ in scored.values()]
        if self.style == "ent":
            spans = filter_spans(spans)
        for sp in spans:
            sp._.score = scored[sp.start, sp.end, sp.label_][1]
        if self.style == "span":
            doc.spans[self.spans_key] = spans
        else:
            doc.ents = spans

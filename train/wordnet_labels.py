"""WordNet 3.0 as a source of label diversity (NLTK reader; the database lives beside the project
in `../shared/data/nltk_data`, never downloaded):

- `fine_types(span_text, coarse)`: the WordNet classes of a named instance ("Einstein" ->
  physicist, scientist) that lie under a coarse corpus label ("person");
- `related(a, b)`: whether two label names can name the same thing (one is a hypernym of the
  other in WordNet, or they share a content word), so that a negative type never contradicts a
  gold one ("politician" is no negative for a sentence with a "person");
- `classes()`: the 945 classes that WordNet's named instances are typed into, a pool of
  negative types;
- `paraphrases(label)`: other names of a label (a short curated table).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

# curated paraphrases of the coarse labels of the training corpora (WordNet's synonyms for them
# are often odd: person -> "soul", "mortal")
CURATED = {
    "person": ("individual", "human", "person name", "people"),
    "organization": ("organisation", "institution", "organization name"),
    "location": ("place", "geographical location", "location name"),
    "disease": ("illness", "medical condition", "disorder"),
    "chemical": ("chemical substance", "chemical compound"),
    "gene": ("gene name",),
    "species": ("organism", "living thing species"),
    "product": ("commercial product",),
    "corporation": ("company", "business"),
    "creative work": ("work of art", "creative title"),
    "group": ("collective", "group of people"),
    "company": ("firm", "business"),
    "film": ("movie", "motion picture"),
    "software": ("computer program", "software product"),
    "written work": ("book or text", "publication"),
    "musical work": ("music piece", "composition"),
    "sports team": ("team", "sports club"),
    "politician": ("political figure",),
    "athlete": ("sportsperson", "sports player"),
    "human settlement": ("town or city", "settlement"),
}
_STOP = {"of", "or", "and", "the", "a", "an", "name", "other", "term", "entity"}
# head words too generic to stand for a label ("geopolitical entity" is no hyponym of everything)
_GENERIC_HEADS = {"entity", "thing", "object", "term", "name", "item", "work", "structure",
                  "part", "feature", "type", "expression", "reference", "component"}
# WordNet classes too generic (or too odd) to be a fine type
_GENERIC = {"physical entity", "object", "whole", "part", "structure", "area", "region",
            "thing", "center", "seat", "unit", "group", "land", "house", "point", "line",
            "artifact", "instrumentality", "container", "way", "device", "system", "body",
            "piece", "site", "tract", "geographical area", "administrative district",
            "district", "territorial division", "populated area", "urban area", "body part",
            "external body part", "bodily structure", "social group"}
_BASE = {p: base for base, ps in CURATED.items() for p in ps}  # paraphrase -> base label


class WordNet:
    def __init__(self, nltk_data: str | Path):
        import nltk

        root = str(Path(nltk_data).resolve())
        if not (Path(root) / "corpora" / "wordnet").is_dir():
            raise FileNotFoundError(f"{root}: no corpora/wordnet (WordNet 3.0 for NLTK) here")
        if root not in nltk.data.path:
            nltk.data.path.insert(0, root)  # NLTK refuses roots not on its path
        from nltk.corpus import wordnet

        self.wn = wordnet
        self._instances = None

    # -- synsets of label names ---------------------------------------------------------------

    @functools.cache  # noqa: B019 -- one WordNet per process
    def synsets(self, label: str) -> tuple:
        """Noun synsets a label name can mean: the whole name, else its head (last) word."""
        label = label.strip().lower()
        if label in _BASE:
            return self.synsets(_BASE[label])
        name = label.replace(" ", "_")
        found = self.wn.synsets(name, pos="n")
        head = name.rsplit("_", 1)[-1]
        if not found and "_" in name and head not in _GENERIC_HEADS:
            found = self.wn.synsets(head, pos="n")
        return tuple(found)

    @functools.cache  # noqa: B019
    def closure(self, label: str) -> frozenset:
        """Every synset of the label and all their (instance) hypernyms."""
        out = set()
        for s in self.synsets(label):
            out.add(s)
            out.update(s.closure(lambda x: x.hypernyms() + x.instance_hypernyms()))
        return frozenset(out)

    def related(self, a: str, b: str) -> bool:
        """True when a thing named by `a` could also be named by `b`: one label's synsets are
        among the other's hypernyms, or the names share a content word."""
        if a == b:
            return True
        wa = set(re.findall(r"\w+", a.lower())) - _STOP
        wb = set(re.findall(r"\w+", b.lower())) - _STOP
        if wa & wb:
            return True
        sa, sb = set(self.synsets(a)), set(self.synsets(b))
        return bool(sa & self.closure(b)) or bool(sb & self.closure(a))

    # -- named instances ----------------------------------------------------------------------

    def _instance_table(self) -> dict[str, list]:
        if self._instances is None:
            table: dict[str, list] = {}
            for s in self.wn.all_synsets("n"):
                if s.instance_hypernyms():
                    for lemma in s.lemma_names():
                        table.setdefault(lemma.replace("_", " ").lower(), []).append(s)
            self._instances = table
        return self._instances

    def fine_types(self, span_text: str, coarse: str) -> list[list[str]]:
        """For a span naming a WordNet instance, its class chains under `coarse`, most specific
        first (["physicist", "scientist"] for "Einstein" under "person"); one chain per class
        the instance has (Shakespeare: dramatist, poet; all true). Empty when the text is no
        instance, names none under `coarse`, or names several (Paris: the capital, or the
        town in Texas): an ambiguous name is never re-typed."""
        under = set(self.synsets(coarse))
        if not under:
            return []
        found = {}
        for inst in self._instance_table().get(span_text.lower(), ()):
            for cls in inst.instance_hypernyms():
                for path in cls.hypernym_paths():  # root ... cls
                    hit = [i for i, s in enumerate(path) if s in under]
                    if hit:
                        names = [_name(s) for s in reversed(path[hit[-1] + 1:])
                                 if s.min_depth() >= 4 and _name(s) not in _GENERIC]
                        chains = found.setdefault(inst, [])
                        if names and names not in chains:
                            chains.append(names)
        found = {k: v for k, v in found.items() if v}
        return next(iter(found.values())) if len(found) == 1 else []

    @functools.lru_cache(maxsize=1)  # noqa: B019
    def classes(self) -> tuple[str, ...]:
        """The classes WordNet's named instances are typed into (city, writer, river, ...)."""
        out = {_name(c) for insts in self._instance_table().values() for i in insts
               for c in i.instance_hypernyms()
               if c.min_depth() >= 4 and _name(c) not in _GENERIC}
        return tuple(sorted(out))

    @staticmethod
    def paraphrases(label: str) -> tuple[str, ...]:
        """Other names for a label, from the curated table (WordNet's own synonyms proved too
        odd: capital -> "working capital", airport -> "drome")."""
        return CURATED.get(label, ())


def _name(synset) -> str:
    return synset.lemma_names()[0].replace("_", " ").lower()

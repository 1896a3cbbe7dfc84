"""Silver temporal spans for the training data: no permissively licensed corpus here labels
dates, so the shipped model never learned "date" (issue 12: "June 5, 2023" and "Tuesday" were
never found). `find(words)` marks calendar dates, years, decades, centuries, weekdays and clock
times in a tokenized text with token-level patterns, precise rather than complete:

    June 5 , 2023 | 5 June 2023 | June 2023 | in June | Tuesday | yesterday     -> date
    in 1997 | ( 1997 ) | the 1990s | the 19th century                           -> date (or year)
    10:30 | 10 pm | 10:30 a.m.                                                   -> time

A bare four-digit number counts as a year only after a preposition (in, since, from, ...) or
between parentheses ("1500 troops" is no year); "May", "March", "August" and month
abbreviations count only next to a day or a year.
"""

from __future__ import annotations

import re

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
_ABBREV = {"jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"}
_AMBIGUOUS = {"may", "march", "august"}  # also a verb / an adjective / a name
WEEKDAYS = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
_DEICTIC = {"yesterday", "today", "tomorrow", "tonight"}
_YEAR_CUES = {"in", "since", "from", "until", "till", "by", "during", "of", "to", "and",
              "between", "early", "late", "mid", "circa", "before", "after", "around"}
_MERIDIEM = {"am", "pm", "a.m.", "p.m.", "a.m", "p.m"}

_YEAR = re.compile(r"^(1[0-9]|20)\d\d$")
_DECADE = re.compile(r"^(1[0-9]|20)\d0'?s$")
_DAY = re.compile(r"^([1-9]|[12]\d|3[01])(st|nd|rd|th)?$")
_ORDINAL_CENTURY = re.compile(r"^([1-9]|1\d|2[01])(st|nd|rd|th)$")
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):[0-5]\d$")
_HOUR_MERIDIEM = re.compile(r"^(1[0-2]|[1-9])(am|pm)$")
_HOUR = re.compile(r"^(1[0-2]|[1-9])$")


def _month(tok: str) -> tuple[bool, bool]:
    """(is a month name, is an ambiguous one that needs a day or a year beside it)."""
    t = tok.lower().rstrip(".")
    if t in MONTHS:
        return True, t in _AMBIGUOUS
    return t in _ABBREV, True


def _date_at(w: list[str], i: int) -> tuple[int, str] | None:
    """The longest temporal expression starting at token i: (end, inclusive; kind)."""
    low = [t.lower() for t in w]
    n = len(w)
    nxt = lambda k: low[k] if k < n else ""  # noqa: E731
    is_month, needs_number = _month(w[i])
    if is_month:
        # June 5 , 2023 | June 5 | June 2023 | June , 2023 | June
        if _DAY.match(nxt(i + 1)) and not _YEAR.match(nxt(i + 1)):
            if nxt(i + 2) == "," and _YEAR.match(nxt(i + 3)):
                return i + 3, "date"
            if _YEAR.match(nxt(i + 2)):
                return i + 2, "date"
            return i + 1, "date"
        if _YEAR.match(nxt(i + 1)):
            return i + 1, "date"
        if nxt(i + 1) == "," and _YEAR.match(nxt(i + 2)):
            return i + 2, "date"
        if not needs_number and w[i][:1].isupper():
            return i, "date"
        return None
    if _DAY.match(low[i]) and _month(nxt(i + 1))[0] and w[i + 1][:1].isupper():
        # 5 June 2023 | 5 June
        return (i + 2 if _YEAR.match(nxt(i + 2)) else i + 1), "date"
    if low[i] in WEEKDAYS and w[i][:1].isupper():
        # Tuesday | Tuesday , June 5 , 2023
        if nxt(i + 1) == "," and i + 2 < n:
            after = _date_at(w, i + 2)
            if after and _month(w[i + 2])[0]:
                return after[0], "date"
        return i, "date"
    if low[i] in _DEICTIC:
        return i, "date"
    if _DECADE.match(low[i]):
        return i, "year"
    if _ORDINAL_CENTURY.match(low[i]) and nxt(i + 1) in ("century", "centuries"):
        return i + 1, "date"
    if _YEAR.match(low[i]):
        prev = low[i - 1] if i else ""
        if prev in _YEAR_CUES or (prev == "(" and nxt(i + 1) == ")"):
            return i, "year"
        return None
    if _CLOCK.match(low[i]):
        return (i + 1 if nxt(i + 1) in _MERIDIEM else i), "time"
    if _HOUR_MERIDIEM.match(low[i]):
        return i, "time"
    if _HOUR.match(low[i]) and nxt(i + 1) in _MERIDIEM:
        return i + 1, "time"
    return None


def find(words: list[str]) -> list[tuple[int, int, str]]:
    """Temporal spans (start, end inclusive, kind) in `words`, left to right, never
    overlapping; kind is "date", "year" (a bare year or decade) or "time"."""
    out, i = [], 0
    while i < len(words):
        hit = _date_at(words, i)
        if hit:
            out.append((i, hit[0], hit[1]))
            i = hit[0] + 1
        else:
            i += 1
    return out


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _loose(tok: str) -> bool:
    """A token that may be part of a temporal expression (for guarding negatives, where
    recall matters: the "1998" of "the 1998 Cup" is no silver span, yet "date" must not be
    called absent there)."""
    t = tok.lower()
    return bool(_YEAR.match(t) or _DECADE.match(t) or _CLOCK.match(t) or t in WEEKDAYS
                or t in _DEICTIC or (_month(tok)[0] and tok[:1].isupper()))


def add_spans(ex: dict, rng, rate: float, year_rate: float = 0.3) -> tuple[int, bool]:
    """Add the temporal spans of `ex` that overlap no gold span, with probability `rate` per
    text. A text whose dates are all bare years calls them "year" with probability
    `year_rate`, else every date-like span is a "date"; clock times are "time".
    Returns (spans added, whether the text may hold a temporal expression left unlabeled:
    then temporal types must not be its negatives)."""
    words = ex["tokenized_text"]
    found = find(words)
    free = []
    if found and rng.random() < rate:
        gold = [(s, e) for s, e, _ in ex["ner"]]
        free = [f for f in found if not any(overlaps(f[:2], g) for g in gold)]
        dated = [f for f in free if f[2] != "time"]
        as_year = bool(dated) and all(k == "year" for *_, k in dated) \
            and rng.random() < year_rate
        for s, e, kind in free:
            label = "time" if kind == "time" else ("year" if as_year else "date")
            ex["ner"].append([s, e, label])
        ex["ner"].sort(key=lambda sp: (sp[0], sp[1]))
    covered = {i for s, e, _ in free for i in range(s, e + 1)}
    unlabeled = any(_loose(w) for i, w in enumerate(words) if i not in covered)
    return len(free), unlabeled


LABELS = ("date", "year", "time")

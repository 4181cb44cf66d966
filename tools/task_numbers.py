"""Numbers as people write them in a task description: digits, words, suffixes and approximations.

Split from `tools.task_text` so that the reader of each field shares one idea of a number:
"3.1k", "3,100", "12 000", "12.500", "1.2M", "2 million", "three thousand", "twenty-one",
"a dozen", "a few hundred" (approximate), and grade labels for ranges ("A0".."A4", "I".."IV").

Vague quantities are read as a round guess and marked approximate, so the caller can say so:
    a couple (of) = 2, a few = 3, several = 5, "hundreds of" = 500, "thousands of" = 5,000,
    "tens of thousands of" = 30,000.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_SCALES = {
    "hundred": 100, "thousand": 1e3, "million": 1e6, "billion": 1e9, "k": 1e3, "m": 1e6, "mn": 1e6, "mio": 1e6,
    "b": 1e9, "bn": 1e9, "dozen": 12,
}
# (words, value): the vague quantities; read as a round guess, always approximate.
_VAGUE = {"a couple of": 2, "a couple": 2, "couple of": 2, "couple": 2, "a few": 3, "few": 3, "several": 5,
          "a handful of": 5, "handful of": 5}
_PLURAL_SCALES = {"hundreds of": 500, "thousands of": 5000, "tens of thousands of": 30000, "millions of": 5e6}

_word = "|".join(sorted([*_UNITS, *_TENS], key=len, reverse=True))
_WORD_NUMBER = rf"(?:{_word})(?:[- ](?:{'|'.join(k for k in _UNITS if _UNITS[k] and _UNITS[k] < 10)}))?"
_SCALE_WORD = r"(?:hundred|thousand|million|billion)"
_DIGITS = r"\d{1,3}(?:,\d{3})+(?![\d,])|\d{1,3}(?:[ \u00a0]\d{3})+(?!\d)|\d{1,3}(?:\.\d{3})+(?![\d.])|\d+(?:[.,]\d+)?"
# A count, as a regex fragment without groups. It never starts inside a word or a number.
COUNT = (
    r"(?<![\w.,])(?:"
    rf"(?:tens of thousands|hundreds|thousands|millions) of"
    rf"|(?:(?:a\s+)?(?:couple of|couple|few|handful of)|several)\s+(?:{_SCALE_WORD}|dozen)s?"  # "a couple dozen"
    r"|\d+(?:\.\d+)?e\+?\d{1,2}(?![\w.])"  # "3e6", as a CLI's --max-params takes it
    rf"|(?:{_DIGITS})(?:\s*(?:k|m|mn|mio|bn|b\b(?!-\w))\b|\s+{_SCALE_WORD}s?\b(?:\s+{_SCALE_WORD}\b)?|(?![\w]))"
    rf"|(?:half|a\s+quarter(?:\s+of)?)\s+an?\s+{_SCALE_WORD}\b"  # "half a million", "a quarter of a million"
    rf"|(?:a\s+)?dozens?\b"
    # "three thousand two hundred (and fifty)", "a thousand and twelve"
    rf"|(?:a|{_WORD_NUMBER})\s+{_SCALE_WORD}\b(?:\s+(?:thousand|million|billion)\b)?"  # "two hundred thousand"
    rf"(?:\s+(?:and\s+)?{_WORD_NUMBER}\b(?:\s+hundred\b(?:\s+(?:and\s+)?{_WORD_NUMBER}\b)?)?)?"
    rf"(?:\s+(?:thousand|million|billion)\b)?"  # "two hundred and fifty thousand"
    rf"|{_WORD_NUMBER}\b"
    r")"
)
# Words before a count that make it approximate ("~3,100", "about 3k", "over 50k", "1500+").
APPROX = r"(?:~|\u2248|about|around|approx(?:\.|imately)?|roughly|circa|ca\.|some|nearly|almost|over|more than|" \
         r"environ|unas|unos|aproximadamente|etwa|ungef[äa]hr|circa|cerca de|quasi|" \
         r"at least|upwards of|up to|just under|just over|>|<)"


class Number(NamedTuple):
    """A number read from words: its value and whether the words were approximate."""

    value: float
    approximate: bool


def read_count(raw: str) -> Number:
    """The value of a `COUNT` match: "3.1k" -> 3100, "12 000" -> 12000, "a few hundred" -> 300 (approximate).

    Raises:
        ValueError: the words are not a number.
    """
    s = re.sub(r"\s+", " ", raw.strip().lower())
    if re.fullmatch(r"\d+(?:\.\d+)?e\+?\d{1,2}", s):
        return Number(float(s), False)
    for words, value in _PLURAL_SCALES.items():
        if s == words:
            return Number(float(value), True)
    if m := re.fullmatch(r"(half|a quarter(?: of)?) an? (\w+)", s):  # "half a million": a round guess
        return Number((0.5 if m.group(1) == "half" else 0.25) * _SCALES[m.group(2)], True)
    approximate = False
    for words, value in _VAGUE.items():
        if s.startswith(words + " "):
            s, approximate = f"{value} {s[len(words) + 1:]}", True
            break
    if s.startswith("a "):
        s = "1 " + s[2:]
    if s in ("dozen", "dozens"):
        return Number(12.0, s == "dozens")
    m = re.fullmatch(rf"({_DIGITS})\s*([a-z ]*)", s)
    if m and all(w.rstrip("s") in _SCALES or w in _SCALES for w in m.group(2).split()):  # ("a thousand and twelve": words)
        value = _digits(m.group(1), scaled=bool(m.group(2)))
        for scale in m.group(2).split():
            value *= _SCALES[scale.rstrip("s")] if scale.rstrip("s") in _SCALES else _SCALES[scale]
        return Number(value, approximate)
    return Number(_words(s), approximate)


def _digits(raw: str, scaled: bool) -> float:
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+", raw) or re.fullmatch(r"\d{1,3}(?:[ \u00a0]\d{3})+", raw):
        return float(re.sub(r"[, \u00a0]", "", raw))
    # "12.500 images" is twelve thousand five hundred (a European thousands dot); "1.500k" is a decimal.
    if not scaled and re.fullmatch(r"\d{1,3}(?:\.\d{3})+", raw):
        return float(raw.replace(".", ""))
    return float(raw.replace(",", "."))  # "1,5" with a decimal comma is 1.5


def _words(s: str) -> float:
    total, current, seen = 0.0, 0.0, False
    for token in re.split(r"[\s-]+", s.replace(" and ", " ")):
        if token in ("", "a"):
            current, seen = (current or 1.0), True
        elif token in _UNITS:
            current, seen = current + _UNITS[token], True
        elif token in _TENS:
            current, seen = current + _TENS[token], True
        elif token.rstrip("s") in ("dozen",):
            current, seen = (current or 1.0) * 12, True
        elif token.rstrip("s") == "hundred":
            current = (current or 1.0) * 100
        elif token.rstrip("s") in ("thousand", "million", "billion"):
            total, current = total + (current or 1.0) * _SCALES[token.rstrip("s")], 0.0
        elif re.fullmatch(r"\d+(?:\.\d+)?", token):
            current, seen = current + float(token), True
        else:
            raise ValueError(f"cannot read {s!r} as a number.")
    if not seen and total == 0 and current == 0:
        raise ValueError(f"cannot read {s!r} as a number.")
    return total + current


_ROMAN = {"i": 1, "v": 5, "x": 10, "l": 50}


def roman(raw: str) -> int | None:
    """The value of a roman numeral up to L ("iv" -> 4), or None when `raw` is not one."""
    s = raw.lower()
    if not s or not re.fullmatch(r"x{0,4}(?:ix|iv|v?i{0,3})|l", s):
        return None
    values = [_ROMAN[c] for c in s]
    return sum(-v if i + 1 < len(values) and v < values[i + 1] else v for i, v in enumerate(values))


def label_span(first: str, last: str) -> int | None:
    """How many grades lie from `first` to `last`: "0".."4" -> 5, "A0".."A4" -> 5, "I".."IV" -> 4, "A".."E" -> 5.

    Returns None when the two are not the ends of one scale (different prefixes, or not ordered).
    """
    a, b = first.lower().strip(), last.lower().strip()
    pa, pb = re.match(r"[a-z]*", a).group(0), re.match(r"[a-z]*", b).group(0)  # type: ignore[union-attr]
    if pa and a[len(pa):].isdigit() and (pb == pa or not pb) and b[len(pb):].isdigit():  # "A0".."A4", "KL0".."4"
        a, b = a[len(pa):], b[len(pb):]
    if a.isdigit() and b.isdigit():
        span = int(b) - int(a) + 1
    elif roman(a) is not None and roman(b) is not None:
        span = roman(b) - roman(a) + 1  # type: ignore[operator]
    elif len(a) == 1 == len(b) and a.isalpha() and b.isalpha():
        span = ord(b) - ord(a) + 1
    else:
        return None
    return span if span >= 2 else None


# ------------------------------------------------------------------------------ units
BYTES = {
    "b": 1, "byte": 1, "bytes": 1, "kb": 2**10, "kib": 2**10, "k": 2**10, "mb": 2**20, "mib": 2**20, "meg": 2**20,
    "megs": 2**20, "megabyte": 2**20, "megabytes": 2**20, "gb": 2**30, "gib": 2**30, "gig": 2**30, "gigs": 2**30,
    "gigabyte": 2**30, "gigabytes": 2**30, "g": 2**30, "tb": 2**40, "tib": 2**40, "terabyte": 2**40,
    "go": 2**30, "gigaoctet": 2**30, "gigaoctets": 2**30,  # French: "16 Go de RAM"
}
# A size in bytes as written: "20 MB", "50MB", "8 gigs", "12 GiB". Binary multiples (MiB, GiB): that is what
# the OS, nvidia-smi and torch report, and how a user reads "8 GB GPU".
SIZE_UNIT = r"(?:kib|kb|mib|mb|megs?|megabytes?|gib|gb|gigs?|gigabytes?|gigaoctets?|go|tib|tb|terabytes?)\b"


def to_bytes(value: float, unit: str) -> int:
    """`value` `unit` in bytes, binary multiples ("20", "MB" -> 20 * 2**20)."""
    return int(round(value * BYTES[unit.lower()]))





def anchors(pattern: str) -> tuple[str, ...] | None:
    """A piece of literal text from each alternative of `pattern`, one of which must occur for a match.

    None when an alternative holds a group (then no piece is sure to be required). Checking `in` for these
    first skips most of a table's regexes on most texts (a search for `\\b...` cannot skip ahead in `re`).
    """
    parts, depth, current, i = [], 0, "", 0
    while i < len(pattern):  # split at the top-level "|"
        c = pattern[i]
        step = 2 if c == "\\" else 1
        depth += (c in "([") - (c in ")]") if step == 1 else 0
        if c == "|" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += pattern[i:i + step]
        i += step
    parts.append(current)
    anchors = []
    for part in parts:
        if "(" in part:
            return None
        runs, run, i = [], "", 0
        while i < len(part):
            c, after = part[i], part[i + 1: i + 2]
            if c == "\\" or c == "[":  # an escape or a class: one unknown character
                end = i + 2 if c == "\\" else part.index("]", i) + 1
                runs.append(run)
                run, i = "", end + (1 if part[end: end + 1] in ("?", "*", "+") and part[end: end + 1] else 0)
                continue
            if after in ("?", "*", "{"):
                runs.append(run)
                run, i = "", i + 2
                continue
            run, i = (run + c, i + 1) if c.isalnum() or c in " &'-" else ("", i + 1)
            if not (c.isalnum() or c in " &'-"):
                runs.append(run)
        runs.append(run)
        best = max(runs, key=len)
        if not best:
            return None
        anchors.append(best)
    return tuple(anchors)


def mentions(low: str, *words: str) -> bool:
    """Whether any of `words` occurs in `low`: a cheap test that spares a costly regex most texts."""
    return any(w in low for w in words)


# ------------------------------------------------------------------------------ the text being read
_FOLD = str.maketrans({
    "\u00d7": "x", "\u2009": " ", "\u00a0": " ", "\u202f": " ", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u2264": "<", "\u2265": ">", "\u2019": "'", "\u2018": "'", "\u2248": "~",
    '"': " ", "\u201c": " ", "\u201d": " ",  # JSON-ish input: '"classes": 3' reads as 'classes : 3'
})


def fold(text: str) -> str:
    """`text` lower-cased with dashes, spaces and signs made plain, of exactly the same length (offsets agree)."""
    low = text.lower()
    if len(low) != len(text):  # a few characters lower-case to two ("\u0130"): keep the offsets the text's own
        low = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    return low.translate(_FOLD)


class Reading:
    """A task text being read: the text, a folded copy to match on, and the words each field was read from.

    A field's words are `said[field]` (the text's own characters, case kept) at `spans[field]`. What was
    taken is blanked out of `low`, so that "5M parameters" read as a limit is not read again as five minutes.
    """

    def __init__(self, text: str, said: dict[str, str], spans: dict[str, tuple[int, int]],
                 approximate: list[str], notes: list[str]) -> None:
        self.text, self.low = text, fold(text)
        self.said, self.spans, self.approximate, self.notes = said, spans, approximate, notes

    def words(self, start: int, end: int) -> tuple[int, int]:
        """The span without the blanks and punctuation around it."""
        while start < end and self.text[start] in " \t\r\n,;:(":
            start += 1
        while end > start and self.text[end - 1] in " \t\r\n,;:).":
            end -= 1
        if self.text[start:end].count("(") > self.text[start:end].count(")"):
            end = min(len(self.text), end + 1) if self.text[end:end + 1] == ")" else end
        return start, end

    def take(self, field: str, start: int, end: int, *, approximate: bool = False, blank: bool = True) -> str:
        """Record that `field` was read from text[start:end]; blank it out of `low` unless told not to."""
        start, end = self.words(start, end)
        self.said[field], self.spans[field] = self.text[start:end], (start, end)
        if approximate and field not in self.approximate:
            self.approximate.append(field)
        if blank:
            self.blank(start, end)
        return self.said[field]

    def blank(self, start: int, end: int) -> None:
        """Hide text[start:end] from the readers that come later."""
        self.low = self.low[:start] + " " * (end - start) + self.low[end:]


__all__ = ["APPROX", "BYTES", "COUNT", "SIZE_UNIT", "Number", "Reading", "anchors", "fold", "label_span", "mentions",
           "read_count", "roman", "to_bytes"]

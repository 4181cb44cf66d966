"""The shape of the free text the LLMs write: one sentence in the grammar, tidied after a cut.

`one_sentence` is the JSON-schema string a grammar holds a rationale or critique to;
`tidy_text` ends a text the grammar cut off at its last full sentence; `with_rationale` puts
the tidied rationale back into the model's own answer, for the judge's prompt.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agent.judge._grounding import quoted_accuracies


def one_sentence(limit: int, min_length: int = 20) -> dict[str, Any]:
    """A JSON-schema string that is one sentence: it ends at its first full stop, within `limit`.

    Small models do not know a maxLength: they write on, and the grammar stops them mid-word.
    Here a full stop (a period not followed by a digit: "0.93" goes on) may only end the
    string, so the model stops at its first one; a sentence still going at `limit` ends there
    without one, and `tidy_text` sees it was cut. No quote, backslash or newline: no escapes.
    """
    unit = r'([^."\\\n]|[.][0-9])'  # the converters to a grammar take "[.]", not "\."
    return {"type": "string", "pattern": f"^({unit}{{{min_length},{limit - 1}}}[.]|{unit}{{{limit}}})$"}


# Where a trailing comment starts: dropping it leaves a full sentence ("c1 is predicted 0.93 in
# 25 s, which fits the budget and ..." -> "c1 is predicted 0.93 in 25 s."). Not "because" or
# "but": what follows them is the reason or the other side.
_TRAILING_CLAUSE = re.compile(r",\s+(?:which|while|whereas|making|ensuring|allowing|providing)\b", re.I)
# Words that lead into what the cut took away ("compared to", "than", "and a", "within the").
_DANGLING = re.compile(r"to|than|compared|with|and|or|but|a|an|the|of|for|within|against|versus|vs\.?|its|their|at|in|"
                       r"on|by|from|over|under|which|while|whereas|as|is|are|has|have")
# An id ("c1", "r2", "o3", "t1"): the cut sentence must keep one, or an accuracy, to still say why.
_ANY_ID = re.compile(r"\b[a-z]\d{1,2}\b")


def names_evidence(text: str) -> bool:
    """Whether `text` still names an id or quotes an accuracy: what a cut rationale must keep to say why."""
    return bool(_ANY_ID.search(text) or quoted_accuracies(text))


def tidy_text(text: str, limit: int) -> str:
    """Collapse whitespace; a text cut off at `limit` by the grammar ends at its last full sentence.

    Small models do not know a maxLength and write until the grammar stops them mid-word;
    a judge then (rightly) marks the format down. Ending at the last sentence, else before the
    trailing comment the cut fell in (when what is left still names an id or an accuracy), else
    at the last word with an ellipsis, keeps what the model did say.
    """
    text = " ".join(str(text).split())
    units = len(text) - len(re.findall(r"\.\d", text))  # as `one_sentence` counts: "0.93" is 3
    if units < limit - 3 or (text.endswith((".", "!", "?")) and units <= limit):
        return text
    ends = [text.rfind(p, 0, limit) for p in (". ", "; ", "! ", "? ")]
    end = max(ends)
    if end >= limit // 3:
        return text[: end + 1]
    clauses = [m.start() for m in _TRAILING_CLAUSE.finditer(text, 0, limit) if m.start() >= limit // 3]
    if clauses and names_evidence(text[: clauses[-1]]):
        return text[: clauses[-1]] + "."
    words = text[:limit].rsplit(" ", 1)[0].rstrip(",;:").split(" ")
    while len(words) > 1 and _DANGLING.fullmatch(words[-1].lower()):  # "... 3x faster compared to": what it set
        words.pop()                                                      # against was cut off, so the words go too
    return " ".join(words).rstrip(",;:") + "..."


def with_rationale(text: str, rationale: str, tidied: str) -> str | None:
    """The model's answer `text` with its JSON string `rationale` replaced by `tidied`.

    The judge's prompt repeats the reasoner's answer. Written as the model wrote it, the
    answer is still in llama.cpp's KV cache up to where the tidied rationale departs from
    the raw one, so the judge re-reads only the tail; any other rendering (compact JSON of
    the completed draft) is re-read whole. None when the replacement is not exact (the raw
    string is not found once as JSON, or the result does not parse back to `tidied`).
    """
    raw = json.dumps(rationale, ensure_ascii=False)[1:-1]
    if not raw or text.count(raw) != 1:
        return None
    out = text.replace(raw, json.dumps(tidied, ensure_ascii=False)[1:-1])
    try:
        parsed = json.loads(out, strict=False)
    except ValueError:
        return None
    return out if isinstance(parsed, dict) and parsed.get("rationale") == tidied else None

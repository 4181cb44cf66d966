"""A rationale whose only fault is a clause it cannot back up, kept without that clause.

A 1.5B reasoner often writes a true, specific first clause and then a comment it cannot back up:
"c1 is predicted 2 points above c3 and takes 2.2x its time, which is a significant advantage"
(the spreads overlap), or "c1 is predicted 0.93 in 25 s, 3x faster than r1" (it was not). The
grounding check rightly refuses the whole sentence; a retry at a higher temperature, about 25 s on
two cores, often writes another one like it, and after the retries the answer fell back to the
meta-model's template. `trimmed` keeps the longest head of the sentence, ended where a clause
starts, that passes every check the draft was held to, so what stays is the model's own words and
every one of them is still checked. Only a cut that leaves an id or an accuracy is tried: a
rationale must still say why (the `specific` check holds it to that too).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from agent.judge._checks import Check
from agent.judge._draft import Draft
from agent.judge._text import names_evidence

# Where a clause starts inside a sentence, so that what comes before it reads as a sentence: a
# semicolon, a comma before a word that leads a clause, a comment or an appositive ("..., a
# significant advantage"), or a comma or a conjunction before another id ("c1 reaches 0.65, c2 ...";
# "... and r1 ..."). Not a bare "and" or "with": "accuracy and time", "with a learning rate of" are
# inside one claim; nor a comma before a number: "the best predicted accuracy, 0.97" is one claim.
_CLAUSE = re.compile(
    r"\s*;\s*|,\s+(?=(?:and|but|which|while|whereas|making|ensuring|allowing|providing|so|as|since|because|although|"
    r"though|yet|giving|offering|resulting|leading|thus|hence|compared|suggesting|indicating|meaning|despite|"
    r"unlike|outperforming|beating|reaching|achieving|a|an|the)\b)|,\s+(?=[a-z]\d{1,2}\b)|\s+(?:and|but|while|whereas)\s+(?=[a-z]\d{1,2}\b)",
    re.I)
# A head that is a subordinate clause says nothing alone ("Although c2 is more accurate.").
_SUBORDINATE = re.compile(r"\s*(?:although|though|while|whereas|since|because|if|unless|despite|as)\b", re.I)
MIN_HEAD = 20  # characters: shorter than `one_sentence`'s least, it is no rationale


def heads(rationale: str) -> list[str]:
    """The rationale cut before each clause it starts, longest first, each ended with a full stop."""
    text = rationale.strip()
    if _SUBORDINATE.match(text):
        return []
    out = []
    for m in _CLAUSE.finditer(text):
        head = text[: m.start()].rstrip(" ,;:-")
        if len(head) >= MIN_HEAD and names_evidence(head):
            out.append(head + ".")
    return list(dict.fromkeys(reversed(out)))


def trimmed(rationale: str, passes: Callable[[str], bool]) -> str | None:
    """The longest head of `rationale` (`heads`) that `passes` (every check the draft was held to,
    run on the draft with that rationale), or None when none does."""
    return next((head for head in heads(rationale) if passes(head)), None)


def dropped(rationale: str, head: str) -> str:
    """What `head` (one of `heads`) left out of `rationale`."""
    return rationale.strip()[len(head) - 1:].lstrip(" ,;:-")


def trim(draft: Draft, checks: Sequence[Check], check: Callable[[Draft], list[Check]]) -> tuple[Draft, list[Check], str] | None:
    """When the grounding check alone refused `draft` (its `checks`): the draft with the longest head of its
    rationale that passes every check (`check` runs them on a draft), those checks, and what was cut and why.
    None when another check failed too (a cut cannot mend a config or make a vague reason specific) or no
    head passes."""
    if {c.name for c in checks if not c.ok} != {"grounded"}:
        return None
    head = trimmed(draft.rationale, lambda r: all(c.ok for c in check(draft.model_copy(update={"rationale": r}))))
    if head is None:
        return None
    refused = next(c.message for c in checks if not c.ok)
    kept = draft.model_copy(update={"rationale": head})
    return kept, check(kept), f"the rationale was cut before {dropped(draft.rationale, head)!r}: {refused}"

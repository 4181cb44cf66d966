"""The grounding reader: what a rationale states (ids, accuracies, claims), held to the evidence.

It reads, in code, the ids a rationale names ("c1", "r2"; "o1", "t2" when tuning), the
accuracies it quotes, the superlatives ("c4 is the most accurate") and the comparisons ("c2
beats c1") it makes. `GROUNDING` adds, one rule each, the hyperparameter values it states for a
run (`_values`), the arithmetic of its comparisons and signed differences (`_arithmetic`), what
it says of tuning trials (`_trials`) and the budgets and limits it speaks of (`_stated`);
`unsupported` lists what of all that the evidence, or the user, does not bear out, and
`ungrounded` is the same for a rationale judged against candidates and past runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from agent.judge._arithmetic import wrong_arithmetic
from agent.judge._facts import Facts
from agent.judge._reading import (
    CLAUSE_END,
    COMPARING,
    PLUS_MINUS,
    RELATIVE,
    clauses,
    contrasted,
    id_pattern,
    phrase_bounds,
    uncertainty_at,
)
from agent.judge._settings import wrong_setting_comparisons
from agent.judge._speed import wrong_speed
from agent.judge._stated import unstated_limits
from agent.judge._strength import overclaimed_gap
from agent.judge._trials import wrong_best_epoch, wrong_best_trial
from agent.judge._values import wrong_values

# A quoted accuracy within this of a value the prompt showed counts as grounded (the prompt
# rounds to 2 decimals; a model may round again).
QUOTE_TOLERANCE = 0.011

_ACCURACY = re.compile(r"(?<![\w.])(0?\.\d+|1\.0+)(?![\d.]*\d)(?!\s*(?:s|min|h)\b)|(\d{1,3}(?:\.\d+)?)\s*%")


_id_pattern = id_pattern


def quoted_ids(text: str, prefixes: str = "cr") -> list[str]:
    """The candidate and run ids ("c1", "r2") a text names."""
    return list(dict.fromkeys(_id_pattern(prefixes).findall(text)))


# A number right after one of these is a hyperparameter or a difference, not an accuracy
# (whole words: "rate" is in "accurate", and "the most accurate at 0.99" quotes an accuracy).
_NOT_ACCURACY = re.compile(r"\b(?:lr|rate|decay|momentum|dropout|smoothing|wd|freeze|gains?|difference|improvement|"
                           r"margin|by)\b")


def _signed(text: str, start: int) -> bool:
    """Whether the number at `start` carries a sign ("+0.06", "-0.02"; not the dash of "0.65-1.00")."""
    before = text[:start]
    return before.endswith(("+", "\u2212")) or (before.endswith("-") and not _RANGE.search(before))


_RANGE = re.compile(r"(?<![\w.])\d*\.?\d+\s*-$")  # "0.65-", "93 -": a range's dash before the number


def quoted_accuracies(text: str) -> list[float]:
    """The accuracies a text quotes: decimals in 0.05-1 ("0.93", ".9") and percentages ("93%"),
    except numbers that follow a hyperparameter's name ("lr 0.3", "learning rate of 0.001") and
    differences ("+0.06", "a gain of 0.06", "ahead by 0.06") and uncertainties ("0.71 ±0.04")."""
    values = []
    for match in _ACCURACY.finditer(text):
        decimal, percent = match.groups()
        value = float(decimal) if decimal else float(percent) / 100
        # The words between the previous number (or clause) and this one.
        before = re.split(r"[\d,;:()]", text[max(0, match.start() - 20): match.start()].lower())[-1]
        # "drop=0.5", "freeze=0.9": a configuration's value, as the candidate lines write it.
        setting = text[: match.start()].endswith("=")
        if 0.05 <= value <= 1 and not setting and not _NOT_ACCURACY.search(before) and not _signed(text, match.start()) \
                and not uncertainty_at(text, match.start()):
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


_CLAUSES = CLAUSE_END
# An id right after "than" is what a claim compares with, not what it is about.
_AFTER_THAN = re.compile(r"\b(?:than|compared (?:to|with)|over|versus|vs)\s+(?:that of\s+)?$", re.I)
# "c4 is the most accurate", "the shortest training time": a claim about one candidate, checkable.
_MOST = re.compile(r"\b(most accurate|highest|best)\b", re.I)
_QUICKEST = re.compile(r"\b(fastest|quickest|shortest)\b", re.I)
_NOT_A_MEASURE = re.compile(r"\s*(?:balance|trade|compromise|choice|option|fit)", re.I)  # "the best balance of ..."
# "the run with the highest ...", "the highest validation accuracy": said of past runs or trials.
_OF_A_RUN = re.compile(r"\b(?:runs?|trials?|records?|experiments?)\b(?:\s+\w+){0,2}\s*$", re.I)
_VALIDATION = re.compile(r"\s*(?:\w+\s+)?val(?:idation)?\b", re.I)


def _subject(before: str, ids: re.Pattern[str], about: Sequence[str]) -> str | None:
    """What a claim is about: the last id before it in its clause that is not itself compared
    with ("c2 trains faster than c1 and is more accurate": c2) unless a relative clause follows
    it ("faster than c1, which is the most accurate": c1), else the choice the rationale is `about`."""
    subjects = [m.group(1) for m in ids.finditer(before)
                if not _AFTER_THAN.search(before[: m.start()]) or RELATIVE.match(before[m.end():])]
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


def _values_shown(facts: Facts) -> dict[str, list[float]]:
    """By id, the accuracies the prompt showed for it (its prediction and interval, or its result)."""
    return {i: [v for v in (r.get("accuracy"), r.get("low"), r.get("high"), r.get("test_accuracy")) if v is not None]
            for i, r in facts.runs.items()}


def _quoted_claims(rationale: str, facts: Facts) -> list[str]:
    """Unknown ids; accuracies never shown; an accuracy given to an id that is not that id's
    (the first number after "c3" must be c3's)."""
    problems = [f"it names {i}, which is not among the candidates or past runs"
                for i in quoted_ids(rationale, facts.prefixes) if i not in facts.known]
    for value in quoted_accuracies(rationale):
        if not any(abs(value - v) <= QUOTE_TOLERANCE for v in facts.shown):
            problems.append(f"it quotes {value:.2f}, which no candidate or past run shows")
    values = _values_shown(facts)
    for ident, segment in _segments(rationale, facts.prefixes):
        quoted = quoted_accuracies(segment)
        if ident in values and values[ident] and quoted and not any(
                abs(quoted[0] - v) <= QUOTE_TOLERANCE for v in values[ident]):
            problems.append(f"it gives {ident} {quoted[0]:.2f}, but {ident} shows {values[ident][0]:.2f}")
    return problems


def _ranking_claims(rationale: str, facts: Facts) -> list[str]:
    """A candidate called the most accurate (or fastest) that is not; an accuracy comparison
    between ids that their numbers contradict ("c2 is higher than c1", "c3 beats the other candidates")."""
    prefixes, about, candidates = facts.prefixes, facts.about, facts.candidates
    problems = []
    if candidates:
        top = max(candidates, key=lambda c: c["accuracy"])
        best = top["accuracy"]
        fastest = min(c["seconds"] for c in candidates)
        by_id = {c["id"]: c for c in candidates}
        for cid, kind in _superlatives(rationale, prefixes, about):
            if cid not in by_id:
                continue  # a past run's superlative: the segment check holds its numbers
            if kind == "accurate" and by_id[cid]["accuracy"] < best - 0.005:
                digits = 2 if f"{by_id[cid]['accuracy']:.2f}" != f"{best:.2f}" else 3  # a tie at 2 digits is not one
                problems.append(f"it calls {cid} the most accurate, but {cid} is predicted "
                                f"{by_id[cid]['accuracy']:.{digits}f} and {top['id']} {best:.{digits}f}")
            if kind == "fast" and by_id[cid]["seconds"] > fastest * 1.05 + 1:
                problems.append(f"it calls {cid} the fastest, but another candidate trains faster")
    values = _values_shown(facts)
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
    return problems


# "±0.08", "+/- 8 points": an uncertainty as written, and its unit (a percent or points: hundredths).
_SPREAD = re.compile(PLUS_MINUS + r"\s*(\d*\.\d+|\d+)\s*(%|points?\b|pp\b)?", re.I)


def _spreads(text: str) -> list[tuple[int, float]]:
    """(position, value) of each uncertainty a text states ("±0.08", "+/- 8 points": 0.08)."""
    return [(m.start(), float(m.group(1)) / (100 if m.group(2) else 1)) for m in _SPREAD.finditer(text)]


def _spread_claims(rationale: str, facts: Facts) -> list[str]:
    """An uncertainty no candidate shows, or one given to a candidate that shows another ("c2 ±0.04"
    when c2 is ±0.08). The prompt writes a candidate's spread after its accuracy (`candidate_line`);
    the first uncertainty after an id in its phrase is that id's, unless a comparing word comes first
    ("c1 is surer than c2 (±0.08 against ±0.04)", "c2 is above c1 but less certain (±0.08)": those
    are only held to the spreads shown)."""
    shown = {i: float(r["spread"]) for i, r in facts.runs.items() if r.get("spread")}
    problems = []
    for _, value in _spreads(rationale):
        if not any(abs(value - s) <= QUOTE_TOLERANCE for s in shown.values()):
            problems.append(f"it states an uncertainty of ±{value:.2f}, which no candidate shows"
                            + (f" (they show {', '.join(f'±{s:.2f}' for s in sorted(set(shown.values())))})" if shown else ""))
    for ident, segment in _segments(rationale, facts.prefixes):
        stated = [(at, v) for at, v in _spreads(segment) if at < phrase_bounds(segment, 0)[1]]
        if ident not in shown or not stated or COMPARING.search(segment, 0, stated[0][0]):
            continue
        if abs(stated[0][1] - shown[ident]) > QUOTE_TOLERANCE:
            problems.append(f"it gives {ident} ±{stated[0][1]:.2f}, but {ident} shows ±{shown[ident]:.2f}")
    return problems


# Numbers or ids run together ("c2.0.0178.01", "0.0178.01"): a slip of the decoder that reads as no value, so no
# rule below can hold it to its source.
_GARBLED = re.compile(r"(?<![\w.])(?:[a-z]\d{1,2}|\d*\.\d+)\.\d(?:[\d.]*\d)?", re.I)


def _garbled_claims(rationale: str, facts: Facts) -> list[str]:
    return [f"it writes '{m.group(0)}', which is no number or id (they run together); write each apart"
            for m in _GARBLED.finditer(rationale)]


# A result stated as measured ("c1 achieves 0.77", "it reached 0.93"): a candidate or a tuning option has
# not been trained, so its accuracy is a prediction. Past runs and trials were trained and may have reached it.
_MEASURED = re.compile(r"\b(?:achiev(?:es|ed|ing)?|reach(?:es|ed)?|scor(?:es|ed)|attain(?:s|ed)?|obtain(?:s|ed)|"
                       r"got|gets|yield(?:s|ed)|deliver(?:s|ed)?)\b", re.I)
_PREDICTED_AFTER = re.compile(r"(?:\s+\w+){0,3}?\s+(?:predicted|expected|estimated)\b", re.I)
_OF_RUNS = re.compile(r"\b(?:runs?|trials?|experiments?|records?)\b", re.I)
# Words before the verb that make it a prediction: "is predicted to reach", "should achieve".
_HEDGED = re.compile(r"predict|expect|estimat|forecast|project|\b(?:should|would|could|may|might|likely|will|can|to)\b",
                     re.I)


def _measured(rationale: str, facts: Facts) -> Iterator[tuple[int, re.Match[str], str]]:
    """(clause offset, verb, subject) for each verb that states a choice's predicted result as measured. The run a
    verb is about: the last id before it in its clause, else the first after it, else the choice the rationale is
    about."""
    ids = id_pattern(facts.prefixes)
    for offset, clause in clauses(rationale):
        for verb in _MEASURED.finditer(clause):
            before = list(ids.finditer(clause, 0, verb.start()))
            after = ids.search(clause, verb.end())
            subject = before[-1].group(1) if before else after.group(1) if after else next(iter(facts.about), None)
            start = before[-1].end() if before else 0
            if (subject is None or not subject.startswith(facts.prefixes[0]) or _HEDGED.search(clause, start, verb.start())
                    or _OF_RUNS.search(clause, start, verb.start())  # "c1 fits, as similar runs reached 0.81"
                    or _PREDICTED_AFTER.match(clause, verb.end())):  # "o1 gets the highest expected gain"
                continue
            yield offset, verb, subject


def _measured_claims(rationale: str, facts: Facts) -> list[str]:
    """A choice (candidate or option) said to have reached a result it is only predicted to (one per clause)."""
    problems, seen = [], set()
    for offset, verb, subject in _measured(rationale, facts):
        if offset not in seen:
            seen.add(offset)
            problems.append(f"it says {subject} {verb.group(0)} a result, but {subject} has not been trained: its "
                            f"accuracy is predicted (write 'is predicted')")
    return list(dict.fromkeys(problems))


# A choice said to have been trained already ("c1 was trained on HAM10000"): a candidate is a configuration for the
# user's data that nothing has trained yet; a past run was trained, on its own dataset.
_TRAINED = re.compile(r"\b(?:was|were|has been|have been|had been|is already|got)\s+(?:already\s+)?(?:trained|"
                      r"fine-?tuned|tested|evaluated|validated|run)\s+(?:on|with|using)\b", re.I)


def _trained_claims(rationale: str, facts: Facts) -> list[str]:
    """A choice (candidate or option) said to have been trained or tested already (one per clause)."""
    ids = id_pattern(facts.prefixes)
    problems = []
    for _, clause in clauses(rationale):
        for verb in _TRAINED.finditer(clause):
            before = list(ids.finditer(clause, 0, verb.start()))
            subject = before[-1].group(1) if before else next(iter(facts.about), None)
            start = before[-1].end() if before else 0
            if subject is None or not subject.startswith(facts.prefixes[0]) or _OF_RUNS.search(clause, start, verb.start()):
                continue
            problems.append(f"it says {subject} {verb.group(0).lower()} data, but {subject} has not been trained yet: it "
                            "is a configuration for this task (write what it would do, or name the past run that was)")
            break
    return list(dict.fromkeys(problems))


# The verb a measured claim is hedged with ("achieves" -> "is predicted to reach").
_BASE = {"achiev": "reach", "reach": "reach", "scor": "score", "attain": "reach", "obtain": "reach", "got": "reach",
         "gets": "reach", "yield": "yield", "deliver": "deliver"}
_AUXILIARY = re.compile(r"\b(?:has|have|had)\s+$", re.I)


def hedge_measured(rationale: str, choices: Sequence[str], about: str | None, prefixes: str = "cr") -> str:
    """`rationale` with each result it states as measured for a choice (`_measured`: "c1 achieves 0.77")
    written as the prediction it is ("c1 is predicted to reach 0.77"); the tense is the only change, so the
    claim that remains (the number, the comparison) is checked as before. The 1.5B wrote "achieves" for a
    candidate in 3 of 8 answers of a session's tries (2026-12-06), though its prompt says a candidate is
    predicted, and each such draft fell back."""
    facts = Facts(known=frozenset(choices), shown=(), runs={}, about=(about,) if about else (), prefixes=prefixes)
    out = rationale
    for offset, verb, _ in reversed(list(_measured(rationale, facts))):
        word = verb.group(0)
        base = next(b for stem, b in _BASE.items() if word.lower().startswith(stem))
        start, end = offset + verb.start(), offset + verb.end()
        if word.lower().endswith("ing"):
            phrase = f"predicted to {base}"
        elif m := _AUXILIARY.search(out, 0, start):  # "has achieved"
            start, phrase = m.start(), f"is predicted to {base}"
        else:
            phrase = f"is predicted to {base}"
        out = out[:start] + phrase + out[end:]
    return out


def _foreign_claims(rationale: str, facts: Facts) -> list[str]:
    """A model this tool cannot train ("ResNet-50", "ViT") said of a choice: no candidate or run is one. Named in a
    contrast it may stand ("instead of the ResNet-50 you named")."""
    from agent.intents import foreign_model_spans, norm

    q = norm(rationale).replace("-", " ")
    return list(dict.fromkeys(
        f"it names {name}, but no candidate or past run shown is a {name} (this tool cannot train one): name the "
        "backbone of the candidate you pick" for at, name in foreign_model_spans(rationale) if not contrasted(q, at)))


class Claim(NamedTuple):
    """A row of `GROUNDING`: what kind of statement a rule reads, and the rule."""

    name: str
    check: Callable[[str, Facts], list[str]]


# Every rule a rationale's statements are held to, in the order their findings are listed.
GROUNDING: tuple[Claim, ...] = (
    Claim("legible", _garbled_claims),          # numbers and ids written apart
    Claim("quoted", _quoted_claims),            # ids and accuracies
    Claim("measured", _measured_claims),        # a choice's predicted result stated as measured
    Claim("trained", _trained_claims),          # a choice said to have been trained already
    Claim("ranking", _ranking_claims),          # superlatives and comparisons of ids
    Claim("uncertainty", _spread_claims),       # a candidate's ± (the bootstrap models' spread)
    Claim("values", wrong_values),              # a hyperparameter value stated for a run
    Claim("models", _foreign_claims),           # a model this tool cannot train, said of a choice
    Claim("settings", wrong_setting_comparisons),  # a setting compared between runs ("fewer epochs than c2")
    Claim("arithmetic", wrong_arithmetic),      # comparisons and signed differences between numbers
    Claim("speed", wrong_speed),                # training times: "3x faster than c1", "c4 (13 s)"
    Claim("strength", overclaimed_gap),         # a lead called large within the candidates' spreads
    Claim("best trial", wrong_best_trial),      # tuning: the trial called best
    Claim("best epoch", wrong_best_epoch),      # tuning: the epoch a trial peaked at
    Claim("stated limits", unstated_limits),    # budgets and limits the user never stated
)


def unsupported(rationale: str, facts: Facts) -> list[str]:
    """What a rationale states that its evidence (or the user) does not bear out, by the rules of `GROUNDING`."""
    return [problem for claim in GROUNDING for problem in claim.check(rationale, facts)]


def ungrounded(rationale: str, known_ids: Sequence[str], shown: Sequence[float],
               candidates: Sequence[dict[str, Any]] = (), evidence: Sequence[dict[str, Any]] = (),
               about: Sequence[str] = (), prefixes: str = "cr") -> list[str]:
    """What a rationale states that the candidates and past runs shown do not (`unsupported`).

    `prefixes`: the id letters, the first being the choices' (candidates) and the second the
    past runs'; `about`: the choice the rationale is about (a claim naming no id is its).
    """
    runs = {c["id"]: c for c in candidates} | {e["alias"]: e for e in evidence}
    facts = Facts(known=frozenset(known_ids), shown=tuple(shown), runs=runs, candidates=candidates,
                  about=tuple(about), prefixes=prefixes)
    return unsupported(rationale, facts)


# A number that sets the pick against something: "3 points above", "4.4x its time".
_IN_NUMBERS = re.compile(r"\d+(?:\.\d+)?\s*(?:points?\b|x\s)", re.I)

# What a contrast that says why is about: the accuracy, the time, what runs reached.
_OUTCOME = re.compile(r"accura|\bpoints?\b|\bfaster|\bslower|\bquicker|\btime\b|\bminutes?\b|\bseconds?\b|"
                      r"\breach|\bscor|\bpredict|\bgains?\b|\bbetter\b|\bworse\b|\bbeats?\b|outperform", re.I)


def compares(rationale: str, pick: str) -> bool:
    """Whether `rationale` says why `pick` in contrast with something: a difference in numbers, or a
    clause that names another id or a comparing word (the judge's `COMPARING`: "than", "compared
    to", "against") together with an outcome (accuracy, time, what a run reached).
    "c1 is predicted 0.75, the highest among the candidates" does not: it restates the ranking, and
    the reader learns nothing about what the alternatives would give. Nor does "c1 uses a learning
    rate of 0.01, higher than the 0.00178 of c2": it compares settings the config already shows."""
    if _IN_NUMBERS.search(rationale):
        return True
    return any((set(quoted_ids(clause)) - {pick} or COMPARING.search(clause)) and _OUTCOME.search(clause)
               for _, clause in clauses(rationale))

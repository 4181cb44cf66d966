"""What a task text asks of the pick beyond the data: an objective, a worry, a comparison.

    goals = read_goals("knee MRI, 3 classes; compare resnet18 with efficientnet lite0, I worry about overfitting")
    goals.compare, goals.worries   # ["resnet18", "efficientnet_lite0"], {"overfitting": "worry about overfitting"}

Each is kept with the words it came from, and each changes what is recommended:

- objective "accuracy" ("maximise accuracy", "as accurate as possible") ranks the candidates by
  predicted accuracy less its spread, with no price on time; "speed" ("fastest that is good enough", "quick") puts the fastest
  within GOOD_ENOUGH of the most accurate first. Without one, the meta-model's ranking stands
  (accuracy with a small price on time).
- the worry "overfitting" regularises every candidate (`regularised`) and the answer says how; a worry about
  the labels ("labels maybe 10% wrong") gives every candidate label smoothing (`label_noise_note`).
- a comparison ("compare A with B", "A vs B", "A or B?") of backbones or modes gets a candidate
  for each side, shown side by side.
- one backbone the user means to use ("fine-tune a resnet18", "which lr for densenet121?") is the
  pick, in the mode named with it where it can run so; the meta-model's own best stays beside it.
- a measure other than accuracy ("not missing positives", "sensitivity", "F1") is answered with a
  note: the ranking is by test accuracy, and what the run reports instead.
- a limit on a setting ("no more than 20 epochs", "batch size must be 16") is kept by every
  candidate (shortened or set, then predicted again), and listed with the other limits.
- a model this tool cannot train ("ResNet-50", "ViT") is named in a note, with the backbones it
  recommends among instead and the nearest of the same family.

Deterministic patterns, like tools.task_text; the backbone and mode names come from agent.intents.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agent.intents import (
    BARE_EFFICIENTNET,
    backbone_spans,
    efficientnet_meant,
    find_backbones,
    find_mode,
    foreign_models,
    norm,
)
from knowledge.schema import TrainConfig
from tools.task_gloss import gloss

T = TypeVar("T")

GOOD_ENOUGH = 0.03  # "good enough": within this of the most accurate candidate (accuracy points)
# A similar past run that reached this much more than the pick is predicted to reach has its config shown beside
# the pick, predicted for this task: "r1 reached 0.98" next to a pick predicted 0.83 needs what is expected of
# r1's config here (agent.nodes_evidence `_past_run`, agent.recommendation `alternatives`).
PAST_RUN_MARGIN = 0.05
# What "worried about overfitting" does to a configuration: floors, never lowered.
REGULARISATION = {"dropout": 0.3, "weight_decay": 1e-4, "label_smoothing": 0.1}

_ACCURACY = re.compile(
    r"\bmaximi[sz](?:e|ing) (?:the )?(?:test |validation |classification )?(?:accuracy|acc|performance|auc)\b"
    r"|\b(?:best|highest|top|maximum|max) (?:possible )?(?:accuracy|acc|performance|auc)\b|\bas accurate as (?:possible|it gets)\b"
    r"|\bmost accurate\b|\baccuracy (?:is what matters|matters most|first|above all|over speed)\b"
    r"|\b(?:doesn'?t|does not|don'?t|do not) matter,?\s+(?:only\s+)?(?:the\s+)?accuracy (?:does|matters|is what matters)\b"
    r"|\bonly accuracy matters\b|\ball (?:that )?(?:matters|counts) is (?:the )?accuracy\b"
    r"|\baccuracy is (?:all that matters|the (?:top |only |main )?priority|the only thing)\b"
    r"|\baccuracy (?:matters|is|counts) (?:much )?more (?:important )?than (?:speed|time|training time)\b"
    r"|\b(?:don'?t|do not) care (?:about|how long)\b|\b(?:takes?|run|train)\s+(?:it\s+)?(?:as long as|however long)\s+"
    r"(?:it takes|needed|necessary|required)\b|\btime is no (?:issue|object|problem|constraint)\b", re.I)
_SPEED = re.compile(
    r"\bfastest\b|\bas (?:fast|quick(?:ly)?) as possible\b|\bgood enough\b|\bquick(?:ly|est)?\b(?!\s+question)"
    r"|\b(?:be|is|something|needs? to be|must be|keep it|make it)\s+fast\b|\bfast,?\s+(?:please|pls)\b|\bfast to train\b"
    r"|\bcheap(?:est|ly)?\b|\bin a hurry\b|\bminimi[sz](?:e|ing) (?:the )?(?:training )?time\b|\bspeed (?:matters|first|over)\b",
    re.I)
_OVERFIT = re.compile(r"\bover[- ]?fit\w*|\bmemori[sz]\w*\b|\b(?:doesn'?t|does not|won'?t|not) generali[sz]e\b"
                      # its symptom: validation loss rising while training loss falls, a train/validation gap
                      r"|\b(?:val(?:idation)?|test) (?:loss|error) (?:goes|went|going|keeps going) up\b|\b(?:val(?:idation)?|test) "
                      r"(?:loss|error) (?:increases|rises|increasing|rising)\b|\btrain(?:ing)? (?:accuracy|acc) (?:is )?(?:much |way |far )?"
                      r"higher than (?:the )?(?:val(?:idation)?|test)\b", re.I)
# Labels the user does not trust: label smoothing is the standard remedy (Lukasik et al., "Does label smoothing
# mitigate label noise?", ICML 2020).
_LABEL_NOISE = re.compile(
    r"\bnoisy (?:labels?|annotations?|ground truth)\b|\blabel(?:ling|ing)? (?:noise|errors?|mistakes?)\b|\bmis-?label\w*|"
    r"\b(?:wrong(?:ly)?|incorrect(?:ly)?) label\w*|\b(?:labels?|annotations?|ground truth)\b[^.;!?]{0,30}?\b(?:wrong|noisy|"
    r"unreliable|incorrect|inconsistent|error-prone|not (?:always )?(?:reliable|correct|accurate))\b|"
    r"\b(?:unreliable|inconsistent|weak|imperfect|uncertain) (?:labels?|annotations?)\b", re.I)
LABEL_NOISE_SMOOTHING = 0.1
# Words before a backbone's name that say the user means to train it (within a few words: "fine-tune a
# pretrained resnet18"); "tried resnet18" or "instead of resnet18" do not.
_USE = re.compile(r"\b(?:use|using|fine[ -]?tun\w*|finetun\w*|train\w*|start(?:ing)? from|stick(?:ing)? with|go with|"
                  r"prefer|deploy\w*|want|need|for|with)\b(?:\s+(?:a|an|the|my|our|pretrained|pre-trained|imagenet|"
                  r"small|standard|plain)){0,3}\s+$", re.I)
# A need at inference (speed, a device to deploy on): nothing here predicts or records inference.
_INFERENCE = re.compile(
    r"\binference\b|\breal[- ]?time\b|\blatency\b|\bfps\b|\bframes? (?:per|a) second\b|\bms (?:per|an?) (?:image|scan|frame)\b"
    r"|\b(?:run|runs|deploy\w*|on|for|onto)\s+(?:it\s+)?(?:on\s+)?(?:a|an|my|our|the)\s+(?:\w+\s+)?(?:phone|smartphone|mobile|tablet|"
    r"edge device|raspberry pi|microcontroller|jetson|embedded device)\b|\bedge devices?\b"
    # a model converted for deployment: quantised, exported to a runtime
    r"|\b(?:models?|weights|network|net|cnn)\b[^.;!?]{0,30}\bquanti[sz]\w*|\bquanti[sz]\w* (?:the |my |our |it )?(?:models?|"
    r"weights|network|net|cnn|it)\b|\bint8\b|\btf ?lite\b|\btensorflow lite\b|\bcore ?ml\b|\btensorrt\b", re.I)
# Limits on a setting, as written: (field, "max" or "eq", pattern with the number as group "n").
_AT_MOST = (r"(?:no more than|not more than|at most|max(?:imum)?(?:\s+of)?|up to|under|fewer than|less than|only|just|"
            # "don't use more than 20 epochs", "never exceed 20 epochs", "without going over 20 epochs"
            r"(?:do not|don'?t|never|must not|mustn'?t|should not|shouldn'?t|without)\s+(?:(?:use|using|train(?:ing)?|run(?:ning)?|"
            r"go(?:ing)?)\s+(?:for\s+)?(?:more than|over|beyond|past)|exceed(?:ing)?))")
# After a setting's number, a unit says it is not the setting's value: "epochs under 5 minutes each"
# is a time, "batch size under 64 MB" a memory, not at most 5 epochs or a batch of 64.
_NO_UNIT = r"(?![.,]\d)(?!\s*(?:%|percent\b|(?:min|mins|minutes?|s|secs?|seconds?|h|hrs?|hours?|ms|[kmgt]i?b|px|pixels?)\b))"
_SETTING_LIMITS: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("epochs", "max", re.compile(rf"\b{_AT_MOST}\s+(?P<n>\d{{1,4}})\s+(?:training\s+)?epochs?\b", re.I)),
    ("epochs", "max", re.compile(r"\b(?P<n>\d{1,4})\s+epochs?\s+(?:at most|max(?:imum)?|or (?:fewer|less))\b", re.I)),
    ("epochs", "max", re.compile(rf"\bepochs?\s*(?:must be|should be|of|=|:|is)?\s*{_AT_MOST}\s*(?P<n>\d{{1,4}})\b{_NO_UNIT}",
                                 re.I)),
    ("epochs", "eq", re.compile(rf"\bepochs?\s*(?:must be|has to be|fixed (?:at|to)|=|:)\s*(?P<n>\d{{1,4}})\b{_NO_UNIT}", re.I)),
    ("batch_size", "max", re.compile(rf"\bbatch(?:[- ]?size)?\s*(?:must be|should be|of|=|:|is)?\s*{_AT_MOST}\s*"
                                     rf"(?P<n>\d{{1,4}})\b{_NO_UNIT}", re.I)),
    ("batch_size", "max", re.compile(rf"\b{_AT_MOST}\s+(?P<n>\d{{1,4}})\s+(?:images\s+)?(?:per|a|in a)\s+batch\b", re.I)),
    ("batch_size", "eq", re.compile(rf"\bbatch(?:[- ]?size)?\s*(?:must be|has to be|fixed (?:at|to)|=|:)\s*(?P<n>\d{{1,4}})\b"
                                    rf"{_NO_UNIT}", re.I)),
    # a value asked for: "please use 500 epochs", "train it for 30 epochs", "use a learning rate of 0.5", "lr=3e-4"
    ("epochs", "eq", re.compile(r"\b(?:use|using|train(?:\s+(?:it|them|the model))?\s+for|run\s+(?:it\s+)?for|go\s+for)\s+"
                                r"(?:(?:[^.;,!?]|\.\d){0,40}?\band\s+)?(?:a\s+|about\s+)?(?P<n>\d{1,4})\s+(?:training\s+)?epochs?\b", re.I)),
    ("learning_rate", "eq", re.compile(rf"\b(?:(?:use|using|set|fix|with|want|keep)\s+(?:a\s+|the\s+|my\s+)?(?:learning[- ]rate|lr)"
                                       rf"\s*(?:of|=|:|at|to)?|(?:learning[- ]rate|lr)\s*(?:must be|has to be|fixed (?:at|to)|=|:))\s*"
                                       rf"(?P<n>\d*\.?\d+(?:e-?\d+)?)(?![\w.]){_NO_UNIT}", re.I)),
)
# A value asked for is no request after a negation ("I don't use 20 epochs", "never set the lr to 0.1").
# Nor after words of history ("I tried it with lr 0.1 and it diverged", "we trained for 50 epochs before").
_NOT_BEFORE = re.compile(r"(?:n't|\bnot|\bnever|\bno)\s*$|\b(?:tried|trained|used|got|had|was|were|previously|last time)\b"
                         r"[^.;!?]{0,30}$", re.I)
_SETTING_WORDS = {"epochs": "epochs", "batch_size": "batch size", "learning_rate": "learning rate"}
# A clause that speaks of a backbone already tried, or of avoiding it: not what the user means to train.
_NOT_USE = re.compile(r"\b(?:tried|results?|gave|got|scored|reached|poor|bad|worse|overfit\w*|failed|instead of|other "
                      r"than|besides|avoid\w*|not|without|except|than)\b|n't\b")
# A measure the user cares about that is not accuracy: the meta-model predicts accuracy only.
_METRIC = re.compile(
    r"\bsensitiv\w*|\brecall\b|\bcare (?:most |more )?about the (?:rare|minority|smallest|small) class(?:es)?\b|\bfalse[- ]negatives?\b|\bfalse[- ]positives?\b|\bspecificity\b|\bprecision\b(?!\s+(?:medicine|oncology|health))"
    r"|\b(?:not |never |without |avoid )?miss(?:ing|es|ed)?\s+(?:any\s+|a\s+|the\s+|true\s+)?(?:positives?|cases?|"
    r"tumou?rs?|cancers?|lesions?|diseases?|fractures?|patients?|findings?|nodules?|bleeds?)\b"
    r"|\bf1\b|\bf-score\b|\bauc\b|\broc\b|\bbalanced accuracy\b|\bkappa\b", re.I)
_COMPARE = re.compile(r"\bcompar(?:e|ed|ing)\b|\bcomparison\b|\bvs\.?\b|\bversus\b|\bor\b[^.?!]*\?|\bbetter\b", re.I)
# No pretrained weights may be used (a licence, a policy, a study design): every pick trains from scratch.
_NO_PRETRAINED = re.compile(
    r"\bno (?:pre-?trained|imagenet|transfer)\b[^.;!?]{0,20}?\b(?:weights|models?|backbones?|learning|allowed|permitted)\b"
    r"(?:\s+(?:are\s+|is\s+)?(?:allowed|permitted))?"
    r"|\b(?:pre-?trained|imagenet) (?:weights|models?|backbones?|initiali[sz]ation) (?:are |is )?(?:not (?:allowed|permitted|"
    r"an option|possible)|forbidden|prohibited|off[- ]limits|banned)\b"
    r"|\b(?:can ?not|can't|cannot|may not|must not|mustn't|not allowed to|aren't allowed to) use (?:any )?(?:pre-?trained|"
    r"imagenet|transfer learning)\b|\bwithout (?:any )?(?:pre-?trained|imagenet|transfer learning)\b"
    r"|\b(?:only|must|has to|have to|needs? to) (?:be )?(?:train(?:ed|ing)? )?from scratch\b", re.I)

# "there is no pretrained model for OCT" says what exists, not what is allowed: ImageNet weights still help.
_EXISTS_BEFORE = re.compile(r"\b(?:there(?:'s|\s+is|\s+are|\s+exists?)|(?:is|are|exists?)\s+)\s*$", re.I)
_EXISTS_AFTER = re.compile(r"\s*(?:exists?\b|(?:is |are )?(?:publicly |readily )?available\b)", re.I)


def _no_pretrained(text: str) -> re.Match[str] | None:
    """The first words that forbid pretrained weights; a statement that none exist is no limit."""
    for m in _NO_PRETRAINED.finditer(text):
        if m.group(0).lower().startswith("no ") and (
                _EXISTS_BEFORE.search(text[max(0, m.start() - 20):m.start()]) or _EXISTS_AFTER.match(text, m.end())):
            continue
        return m
    return None


@dataclass
class Goals:
    """What the text asks of the pick.

    Attributes:
        objective: "accuracy", "speed", or None (the meta-model's own trade-off).
        words: for each goal read ("objective", "overfitting", "compare"), the words it came from.
        worries: the worries stated ("overfitting"), with their words.
        compare: backbones (or modes) the user asked to compare, in the order named.
        compare_mode: the one mode a comparison of backbones names ("fine-tune resnet18 or lite2?"):
            each side is compared in it where it can run so; None when no mode or several are named.
        use: the one backbone the user means to train, when the text compares nothing; use_mode: the
            mode named in the same clause, if one.
        foreign: the image classifiers named that this tool cannot train ("resnet-50", "vit").
        metric: the words naming a measure other than accuracy that the user cares about, if any.
        inference: the words of a need at inference (speed, a phone or edge device), if any.
        settings: limits on a setting, by field: ["max" or "eq", the value, the words] ("epochs": ["max",
            20, "no more than 20 epochs"]).
        scratch_only: the words that allow no pretrained weights ("no pretrained weights allowed"), if any: every
            candidate then trains from scratch.
        avoid: backbones the text rules out ("don't use ResNet please"), with their words: none is a candidate.
        size_of: [backbone, strict, words] for a size limit set by a model ("nothing bigger than ResNet18"): no
            candidate has more parameters (with `strict`, "smaller than": fewer).
    """

    objective: str | None = None
    words: dict[str, str] = field(default_factory=dict)
    worries: dict[str, str] = field(default_factory=dict)
    compare: list[str] = field(default_factory=list)
    compare_mode: str | None = None
    use: str | None = None
    use_mode: str | None = None
    foreign: list[str] = field(default_factory=list)
    metric: str | None = None
    settings: dict[str, list[Any]] = field(default_factory=dict)
    inference: str | None = None
    scratch_only: str | None = None
    avoid: dict[str, str] = field(default_factory=dict)
    size_of: list[Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {"objective": self.objective, "words": dict(self.words), "worries": dict(self.worries),
                "compare": list(self.compare), "compare_mode": self.compare_mode, "use": self.use,
                "use_mode": self.use_mode, "foreign": list(self.foreign), "metric": self.metric,
                "settings": {k: list(v) for k, v in self.settings.items()}, "inference": self.inference,
                "scratch_only": self.scratch_only, "avoid": dict(self.avoid),
                "size_of": None if self.size_of is None else list(self.size_of)}


def read_goals(text: str) -> Goals:
    """The objective, worries and comparison a task text states (each with its words). A text in Chinese,
    Japanese or Korean is read in its English gloss (tools.task_gloss); the words shown are its own."""
    goals = Goals()
    if not text:
        return goals
    glossed = gloss(text)
    _read_goals(glossed.text, goals)
    if glossed.changed:
        for key, words in goals.words.items():  # (the readers' copies fold case, hyphens and runs of blanks)
            pattern = r"[\s-]+".join(re.escape(w) for w in re.split(r"[\s-]+", words.strip()) if w)
            if pattern and (m := re.search(pattern, glossed.text, re.I)):
                own = text[slice(*glossed.origin(*m.span()))].strip()
                goals.words[key] = own
                if goals.worries.get(key) == words:
                    goals.worries[key] = own
    return goals


def _read_goals(text: str, goals: Goals) -> None:
    found = [(m.start(), kind, m.group(0)) for kind, pattern in (("accuracy", _ACCURACY), ("speed", _SPEED))
             if (m := pattern.search(text))]
    if found:  # both named ("best accuracy, but quick"): the first one stated leads
        _, goals.objective, goals.words["objective"] = min(found)
    if m := _OVERFIT.search(text):
        goals.worries["overfitting"] = goals.words["overfitting"] = _sentence_around(text, *m.span())
    if m := _LABEL_NOISE.search(text):
        goals.worries["label_noise"] = goals.words["label_noise"] = _sentence_around(text, *m.span())
    if m := _comparison(text):
        q = norm(text)
        named = find_backbones(q)
        modes = [mode for mode in _MODES if find_mode(_only(q, mode))] if len(named) < 2 else []
        if len(named) >= 2 or len(modes) >= 2:
            goals.compare = named if len(named) >= 2 else modes
            goals.words["compare"] = _sentence_around(text, *m.span())
        if len(named) >= 2:
            clause = norm(_clause(text, *m.span()))
            said = [mode for mode in _MODES if find_mode(_only(clause, mode))]
            goals.compare_mode = said[0] if len(said) == 1 else None
    goals.foreign = foreign_models(text)
    if m := _METRIC.search(text):
        goals.metric = goals.words["metric"] = _sentence_around(text, *m.span())
    if m := _INFERENCE.search(text):
        goals.inference = goals.words["inference"] = _sentence_around(text, *m.span())
    if m := _no_pretrained(text):
        goals.scratch_only = goals.words["scratch_only"] = m.group(0)
    _read_avoid(text, goals)
    if not goals.compare:
        _read_use(text, goals)
    for name, op, pattern in _SETTING_LIMITS:
        if name in goals.settings:
            continue
        if m := next((m for m in pattern.finditer(text) if op == "max" or not _NOT_BEFORE.search(text, 0, m.start())),
                     None):
            number = float(m.group("n"))
            goals.settings[name] = [op, number if name == "learning_rate" else int(number), m.group(0).strip()]


def _comparison(text: str) -> re.Match[str] | None:
    """The comparing words of the clause that names what it compares: "thyroid ultrasound, benign vs malignant,
    ...; compare small_cnn with lite0" compares backbones in its last clause, not classes in its first (whose
    words were shown, and whose mode was read). Else the first comparing words (sides named apart from them:
    "I have resnet18 and lite0. Which is better?"). First of all two backbones either side of an "or"."""
    for m in re.finditer(r"\bor\b", text, re.I):  # "should I use resnet or efficientnet": two backbones either side
        before = norm(text[max(0, m.start() - 40): m.start()]).replace("-", " ").rstrip(" ,")
        after = norm(text[m.end(): m.end() + 40]).replace("-", " ")
        left, right = backbone_spans(before), backbone_spans(after)
        if left and right and left[-1][1] == len(before) and re.fullmatch(r"(?:an? |the )?", after[: right[0][0]]) \
                and left[-1][2] != right[0][2]:
            return m
    found = list(_COMPARE.finditer(text))
    for m in found:
        clause = norm(_clause(text, *m.span()))
        if len(find_backbones(clause)) >= 2 or sum(bool(find_mode(_only(clause, mode))) for mode in _MODES) >= 2:
            return m
    return found[0] if found else None


# "don't use ResNet", "no densenet please", "anything but mobilenet": a backbone ruled out (the words right before it).
_AVOID_BEFORE = re.compile(r"(?:\b(?:do not|don'?t|don t|never|no|avoid(?:ing)?|not|without|except|anything but|other than|"
                           r"exclude|excluding|skip|rather not use|rather not)\b(?:\s+(?:use|using|try|want|like|need|a|an|the|any)\b)*"
                           r"|\bnot\s+(?:a|an|the)\b)\s*$")
# "ResNet is not allowed", "resnet18: off the table", "densenet is out": ruled out by the words right after it.
_AVOID_AFTER = re.compile(r"\s*(?::|-|is|are|would be|will be)?\s*(?:not (?:allowed|permitted|an option|possible|ok|okay|"
                          r"wanted|welcome)|forbidden|banned|prohibited|excluded|ruled out|off the table|out of the question|"
                          r"a no go|no go|out)\b(?!\s+of\s+(?!the question))")
# "nothing bigger than ResNet18", "no larger than lite0", "smaller than resnet18": a size limit set by a model.
# ("a model bigger than ResNet18 is fine" allows more: a bigger-than cap needs a denial before it)
_SIZE_OF = re.compile(r"(?:\b(?P<strict>smaller|lighter|fewer parameters)|\b(?:nothing|no|not|never|none|avoid(?:ing)?|"
                      r"don t want|do not want)\s+(?:\w+\s+){0,2}?(?:bigger|larger|heavier|more parameters))\s+"
                      r"than\s+(?:an?\s+|the\s+)?$")
_AT_MOST_SIZE = re.compile(r"\b(?:the\s+size\s+of|as\s+(?:small|big|large)\s+as)\s+(?:an?\s+|the\s+)?$")


def _read_avoid(text: str, goals: Goals) -> None:
    """Backbones the text rules out (`Goals.avoid`) and a size limit set by a named model (`Goals.size_of`)."""
    q = norm(text).replace("-", " ")
    for at, end, name in backbone_spans(q):
        before = q[max(0, at - 40):at]
        if (m := _SIZE_OF.search(before)) or _AT_MOST_SIZE.search(before):
            if goals.size_of is None:
                goals.size_of = [name, bool(m and m.group("strict")), _sentence_around(q, at, end)]
                goals.words["size_of"] = goals.size_of[2]
        elif (_AVOID_BEFORE.search(before[-20:]) and not _COMPARE.search(before[-20:])) or _AVOID_AFTER.match(q, end):
            goals.avoid[name] = _sentence_around(q, at, end)
    if goals.avoid:
        goals.words["avoid"] = "; ".join(dict.fromkeys(goals.avoid.values()))


def _read_use(text: str, goals: Goals) -> None:
    """The one backbone the text means to train ("which lr to fine-tune a resnet18?"), and its mode; with no
    backbone named, the one way of training it means ("what should I fine-tune?", `_read_use_mode`)."""
    q = norm(text).replace("-", " ")
    spans = [s for s in backbone_spans(q) if s[2] not in goals.avoid]  # (a backbone ruled out is not meant)
    if not spans:
        return _read_use_mode(q, goals)
    if len({name for *_, name in spans}) != 1:
        return
    at, end, name = spans[0]  # the words that named it
    if not _USE.search(q, max(0, at - 60), at):
        return
    clause = _clause(q, at, end)
    if _NOT_USE.search(clause):  # "the results for resnet18 were poor", "something other than resnet18"
        return
    goals.use = name
    said = [mode for mode in _MODES if find_mode(_only(norm(clause), mode))]
    goals.use_mode = said[0] if len(said) == 1 else None
    goals.words["use"] = _sentence_around(q, at, end)


def _read_use_mode(q: str, goals: Goals) -> None:
    """The one way of training a text means when it names no backbone: a mode said as an intent ("what should
    I fine-tune?", "I want to train from scratch") sets `use_mode`; a mode said as history or a doubt ("fine-tuning
    overfit", "is fine-tuning worth it?") or beside another mode sets nothing."""
    said = [(m, mode) for mode, pattern in _MODE_INTENT.items() if (m := pattern.search(q))]
    if len(said) != 1:
        return
    m, mode = said[0]
    clause = _clause(q, *m.span())
    sentence = _clause(q, *m.span(), marks=".!?\n", keep_mark=True)  # its "?" tells a question
    if _NOT_USE.search(clause) or _NEGATED.search(q[max(0, m.start() - 30):m.start()]) or _DOUBT.search(sentence) \
            or not (_WANT.search(sentence) or sentence.endswith("?") or _IMPERATIVE.match(sentence)):
        return
    goals.use_mode = mode
    goals.words["use"] = _sentence_around(q, *m.span())


_MODES = ("frozen", "finetune", "scratch")
# How each mode is said in the answer ("fine-tuned"); agent.facts says it the same way.
MODE_WORDS = {"frozen": "as a frozen backbone", "finetune": "fine-tuned", "scratch": "from scratch"}
# A mode named as what to do, with no backbone named: narrower than agent.intents' mode words ("frozen sections"
# are pathology, "freeze 0.5" a setting).
_MODE_INTENT = {
    "finetune": re.compile(r"\bfine ?tun(?:e|ed|ing)\b"),
    "frozen": re.compile(r"\bfrozen (?:pretrained )?(?:backbone|features?|encoder|feature extractor)\b|\blinear prob\w*"
                         r"|\bas a feature extractor\b"),
    "scratch": re.compile(r"\bfrom scratch\b"),
}
_WANT = re.compile(r"\b(?:should|want|wanna|would like|like to|plan\w* to|going to|how to|how (?:do|can|should) (?:i|we)|"
                   r"what to|which|best way|help me|need to|can (?:i|we)|let me|i ll|we ll|i will|we will|trying to|"
                   r"recommend\w*|suggest\w*|settings? (?:to|for)|hyperparameters? (?:to|for)|plan)\b")
# A sentence that opens with the way of training, as an order or what is under way: "fine-tune on HAM10000 for
# triage", "Fine-tuning a CNN for skin lesions", "train from scratch on 5k CT slices", "we are fine-tuning ...".
_IMPERATIVE = re.compile(r"\W*(?:please\s+|(?:i am|i m|we are|we re|currently|now)\s+)?(?:fine ?tun(?:e|ing)\b|"
                         r"train(?:ing)?\b[^.;!?]{0,40}?\bfrom scratch\b|(?:use|using)\s+(?:a\s+)?frozen\b)")
# "I don't want to fine-tune", "no fine-tuning please": the words right before the mode deny it.
_NEGATED = re.compile(r"(?:\b(?:no|not|never|without|avoid\w*|skip\w*)|n't)\b(?:\s+\w+){0,3}\s*$")
_DOUBT = re.compile(r"\b(?:worth|whether|or not|versus|vs|compared?|instead|rather|better than|or (?:a |to )?(?:train|use|"
                    r"keep|freeze|fine|frozen)|necessary|needed)\b")


def comparison_notes(goals: dict[str, Any], found: list[Any], allowed_modes: list[str] | None = None) -> list[str]:
    """What the answer says of a compared (or used) backbone it could not show in the mode the text named
    (`compare_mode`, `use_mode`), and why: no pretrained weights for it at all, or none installed here; and of
    each model named that this tool cannot train (`foreign_note`). Empty when every side is shown in its
    mode, or the user's own mode limit leaves the mode out (the limits say so)."""
    from knowledge.space import BACKBONES
    from tools.weights import weights_available

    notes = [foreign_note(name) for name in goals.get("foreign") or ()]
    said = " ".join(goals.get("words", {}).get(key) or "" for key in ("compare", "use"))
    if BARE_EFFICIENTNET.search(norm(said).replace("-", " ")):
        name = efficientnet_meant()
        notes.append(f"'EfficientNet' names a family: it is read as {name}" + (
            " (EfficientNet-B0's pretrained weights are not installed here)" if name != "efficientnet_b0" else "")
            + "; name lite0, lite1, lite2 or b0 for another member")
    sides = [(name, goals.get("compare_mode"), "compare") for name in goals.get("compare") or ()]
    if goals.get("use"):
        sides.append((goals["use"], goals.get("use_mode"), "use"))
    elif (mode := goals.get("use_mode")) and not (allowed_modes and mode not in allowed_modes) \
            and not any(c.config.mode == mode for c in found):  # the way of training meant, with no backbone named
        shown = found[0].config.mode if found else None
        notes.append(f"you asked for a model {MODE_WORDS[mode]} ({goals['words']['use']!r}), but no configuration "
                     f"{MODE_WORDS[mode]} fits the other limits" + (f"; the pick is {MODE_WORDS[shown]} instead"
                                                                      if shown else ""))
    for name, mode, key in sides:
        if name not in BACKBONES:
            continue
        instead = "compared" if key == "compare" else "shown"
        shown = next((c.config.mode for c in found if c.config.backbone == name), None)
        if not mode:  # no mode named: a side that could start pretrained, shown from scratch for want of weights
            if BACKBONES[name]["pretrained_source"] is None or weights_available(name) or shown not in (None, "scratch") \
                    or (allowed_modes and not {"frozen", "finetune"} & set(allowed_modes)):
                continue
            notes.append(f"you asked about {name} ({goals['words'][key]!r}), but {_no_weights(name)}; "
                         + (f"it is {instead} from scratch" if shown else f"it is not {instead}"))
            continue
        if (allowed_modes and mode not in allowed_modes) or any(c.config.backbone == name and c.config.mode == mode
                                                                 for c in found):
            continue
        if mode != "scratch" and BACKBONES[name]["pretrained_source"] is None:
            why = f"{name} has no pretrained weights (it is built to train from scratch)"
        elif mode != "scratch" and not weights_available(name):
            why = _no_weights(name)
        else:
            why = f"no configuration of {name} {MODE_WORDS[mode]} fits the other limits"
        notes.append(f"you asked about {name} {MODE_WORDS[mode]} ({goals['words'][key]!r}), but {why}; "
                     + (f"it is {instead} {MODE_WORDS[shown]} instead" if shown else f"it is not {instead}"))
    return notes


def _no_weights(name: str) -> str:
    """Why `name` cannot start from pretrained weights here, and how to opt in."""
    from knowledge.space import BACKBONES

    why = f"{name}'s pretrained weights are not installed here"
    if BACKBONES[name]["pretrained_source"] == "torchvision-cache":
        from tools.weights import torchvision_weights_path

        why += (f" (torchvision's ImageNet file, read from {torchvision_weights_path(name)}: copy it there from a "
                "machine with internet)")
    return why


# The backbone here of the same family as a model people name ("resnet-50" -> resnet18).
_FAMILY = (("res", "resnet18"), ("wide", "resnet18"), ("se", "resnet18"), ("dense", "densenet121"),
           ("mobile", "mobilenet_v3_small"), ("efficient", "efficientnet_b0"), ("lite", "efficientnet_lite2"))


def foreign_note(name: str) -> str:
    """What the answer says of a model named that this tool cannot train ("resnet-50")."""
    from knowledge.space import BACKBONES

    near = next((b for prefix, b in _FAMILY if name.startswith(prefix)), None)
    return (f"you named {name}: this tool has no runs of it and cannot train it, so it recommends among the "
            f"backbones it has ({', '.join(BACKBONES)})" + (f"; the nearest of the same family is {near}" if near else ""))


def regularised(config: TrainConfig) -> TrainConfig:
    """`config` with the floors of REGULARISATION, and flip augmentation where the mode trains
    the backbone (a frozen head reads cached features: it cannot augment)."""
    data = config.model_dump()
    for name, floor in REGULARISATION.items():
        data[name] = max(float(data[name]), floor)
    if config.mode != "frozen" and config.augmentation == "none":
        data["augmentation"] = "flip"
    return TrainConfig.model_validate(data)


def _for_worries(config: TrainConfig, worries: dict[str, str]) -> TrainConfig:
    """`config` as the stated worries shape it: regularised for overfitting, smoothed labels for label noise."""
    if "overfitting" in worries:
        config = regularised(config)
    if "label_noise" in worries and config.label_smoothing < LABEL_NOISE_SMOOTHING:
        config = config.model_copy(update={"label_smoothing": LABEL_NOISE_SMOOTHING})
    return config


def metric_note(words: str) -> str:
    """What the answer says to a user who cares about a measure other than accuracy (`Goals.metric`)."""
    return (f"you said {words!r}: the candidates are predicted and ranked by test accuracy, the one measure every "
            "recorded run has comparably. A trained run reports its macro F1 and AUC too, but nothing here is tuned "
            "for one class (no class weights, no decision threshold): check the recall of the class you care about "
            "on your validation images before relying on the model.")


def inference_note(words: str, size_limited: bool) -> str:
    """What the answer says to a user with a need at inference (`Goals.inference`)."""
    from knowledge.space import BACKBONES

    small = ", ".join(f"{b} ({BACKBONES[b]['features'] / 1e6:.1f} M parameters)" for b in
                      sorted(BACKBONES, key=lambda b: BACKBONES[b]["features"])[:3])
    return (f"you said {words!r}: inference speed is neither predicted nor recorded here (runs record training "
            "time), so it did not shape the pick" + ("" if size_limited else
                                                      f"; to keep the model small, state a size limit ('under 10 MB', "
                                                      f"'under 2M parameters'): the smallest backbones are {small}"))


def label_noise_note(words: str) -> str:
    """What the answer says about labels the user does not trust."""
    return (f"you said {words!r}: every candidate has label smoothing at least {LABEL_NOISE_SMOOTHING:g}, which keeps "
            "the model from fitting a wrong label with full confidence (Lukasik et al., ICML 2020); check a sample of "
            "the labels the trained model disagrees with most, since they are often the wrong ones")


def regularisation_note(words: str) -> str:
    """What the answer says about a stated worry of overfitting."""
    floors = ", ".join(f"{k.replace('_', ' ')} at least {v:g}" for k, v in REGULARISATION.items())
    return (f"you said {words!r}: every candidate has {floors}, and flip augmentation where the backbone trains "
            "(a frozen head reads cached features and cannot augment); fewer epochs or a frozen backbone also "
            "limit overfitting on a small set")


def apply_goals(found: list[Any], goals: dict[str, Any], metamodel: Any, meta: Any, constraints: Any,
                open_fields: list[str]) -> list[Any]:
    """The meta-model's candidates shaped by the goals (`Goals.as_json()`): a candidate for each
    side of a comparison, regularised configs for a worry of overfitting, the order the
    objective asks for; ids renumbered c1, c2, ... in the new order.

    Args:
        found: tools.metamodel.Candidate objects, ranked.
        metamodel, meta, constraints, open_fields: what ranked them (to add and re-predict).
    """
    from dataclasses import replace

    out = list(found)
    mode = goals.get("compare_mode")
    if mode and constraints.modes and mode not in constraints.modes:
        mode = None  # the user's own limits leave the mode out; the limits say so
    for name in goals.get("compare") or ():
        side = {"modes": [name]} if name in _MODES else {"backbones": [name]}
        allowed = getattr(constraints, next(iter(side))) or []
        if allowed and name not in allowed:
            continue  # the user's own limits leave it out; the limits say so
        if mode and name not in _MODES:  # "fine-tune A or B?": each side fine-tuned where it can be
            if any(c.config.backbone == name and c.config.mode == mode for c in out):
                continue
            extra = metamodel.candidates(meta, replace(constraints, backbones=[name], modes=[mode]), n=1,
                                         open_fields=open_fields)
            if extra:
                out += [replace(c, origin="requested") for c in extra]
                continue
        if any(name in (c.config.backbone, c.config.mode) for c in out):
            continue
        extra = metamodel.candidates(meta, replace(constraints, **side), n=1, open_fields=open_fields)
        out += [replace(c, origin="requested") for c in extra]
    if goals.get("settings"):
        out = kept_settings(out, goals["settings"], metamodel, meta, constraints, open_fields)
    worries = goals.get("worries") or {}
    if "overfitting" in worries or "label_noise" in worries:
        configs, seen = [_for_worries(c.config, worries) for c in out], set()
        preds = metamodel.stated(meta, configs, device=constraints.device, open_fields=open_fields)
        spread = getattr(metamodel, "spread", None)
        spreads = spread(meta, configs) if callable(spread) else [c.spread for c in out]
        shaped = []
        for c, cfg, p, s in zip(out, configs, preds, spreads, strict=True):
            if cfg.key() not in seen:
                seen.add(cfg.key())
                shaped.append(replace(c, config=cfg, prediction=p, spread=s))
        out = shaped
    if goals.get("objective") == "accuracy":  # the price on time dropped; the doubt kept, as candidates rank
        from tools.metamodel_candidates import SPREAD_WEIGHT

        out.sort(key=lambda c: -(c.prediction.accuracy - SPREAD_WEIGHT * c.spread))
    elif goals.get("objective") == "speed":
        good = quick_first(out, lambda c: c.prediction.accuracy, lambda c: c.prediction.seconds)
        out = good + sorted((c for c in out if c not in good), key=lambda c: -c.prediction.accuracy)
    if goals.get("use") or goals.get("use_mode"):
        out = _used_first(out, goals, metamodel, meta, constraints, open_fields)
    elif sides := set(goals.get("compare") or ()):  # "compare A and B": the better of them is the pick, in the
        # order the objective gave; the model's own best, when it is neither, stays beside them
        out = [c for c in out if sides & {c.config.backbone, c.config.mode}] + [
            c for c in out if not sides & {c.config.backbone, c.config.mode}]
    return [replace(c, id=f"c{i}") for i, c in enumerate(out, start=1)]


def _used_first(out: list[Any], goals: dict[str, Any], metamodel: Any, meta: Any, constraints: Any,
                open_fields: list[str]) -> list[Any]:
    """The backbone the user means to train (`Goals.use`) first, in the mode named with it; when it cannot run in
    that mode, its best candidate in another mode stays beside the pick (`comparison_notes` says why). With no
    backbone named, the best candidate in the mode the user means (`use_mode` alone: "what should I fine-tune?")."""
    from dataclasses import replace

    name, mode = goals.get("use"), goals.get("use_mode")
    if (name and constraints.backbones and name not in constraints.backbones) or (
            mode and constraints.modes and mode not in constraints.modes):
        return out  # the user's own limits leave it out; the limits say so

    def best(mode: str | None) -> Any:
        have = next((c for c in out if name in (None, c.config.backbone) and mode in (None, c.config.mode)), None)
        if have is not None:
            return have
        extra = metamodel.candidates(meta, replace(constraints, backbones=[name] if name else constraints.backbones,
                                                   modes=[mode] if mode else constraints.modes), n=1,
                                     open_fields=open_fields)
        # over the time budget (nothing of it fits: the fastest come back) is not offered as fitting
        return replace(extra[0], origin="asked") if extra and not getattr(extra[0], "over_budget", False) else None

    pick = best(mode)
    if pick is not None:
        return [pick, *(c for c in out if c is not pick)]
    if not name:
        return out  # no candidate in that mode fits the other limits (`comparison_notes` says so)
    other = best(None)
    return out if other is None or other in out else [*out, other]


def kept_settings(found: list[Any], settings: dict[str, list[Any]], metamodel: Any, meta: Any, constraints: Any,
                  open_fields: list[str]) -> list[Any]:
    """The candidates kept to the user's limits on settings (`Goals.settings`): a config over a "max" is
    shortened to it, an "eq" set to it; the changed ones predicted again and duplicates dropped, in the order they
    had (as `regularised` candidates keep it: the meta-model's pick stays first, a past run's config last).

    Raises:
        TaskError: a limit outside the search space (the rule, the value and the way out).
    """
    from dataclasses import replace

    from agent.errors import TaskError
    from knowledge.space import RANGES

    for name, (_, value, words) in settings.items():
        r = RANGES[name]
        if not r.low <= value <= r.high:
            raise TaskError(f"{_SETTING_WORDS[name]} must lie in [{r.low:g}, {r.high:g}], but the text says {words!r}; "
                            "state a value in that range.")
    configs, changed = [], []
    for c in found:
        update = {name: value for name, (op, value, _) in settings.items()
                  if (op == "eq" and getattr(c.config, name) != value) or (op == "max" and getattr(c.config, name) > value)}
        configs.append(c.config.model_copy(update=update) if update else c.config)
        changed.append(bool(update))
    again = [cfg for cfg, ch in zip(configs, changed, strict=True) if ch]
    preds = iter(metamodel.stated(meta, again, device=constraints.device, open_fields=open_fields) if again else [])
    spread = getattr(metamodel, "spread", None)
    spreads = iter(spread(meta, again) if callable(spread) and again else [])
    out, seen = [], set()
    for c, cfg, ch in zip(found, configs, changed, strict=True):
        if ch:
            c = replace(c, config=cfg, prediction=next(preds), spread=float(next(spreads, c.spread)))
        if cfg.key() not in seen:
            seen.add(cfg.key())
            out.append(c)
    return out


def settings_limits(settings: dict[str, list[Any]]) -> list[str]:
    """The limits on settings as the recommendation lists them (profile.limits)."""
    return [f"{_SETTING_WORDS[name]} {'at most' if op == 'max' else 'set to'} {value} ({words!r}): every candidate "
            "keeps to it" for name, (op, value, words) in settings.items()]


def quick_first(items: Sequence[T], accuracy: Callable[[T], float], seconds: Callable[[T], float]) -> list[T]:
    """What "quick, good enough" means, in one place: the items predicted within GOOD_ENOUGH of the most accurate,
    fastest first (the objective's order, the judge's `objective` check and the benchmarks all read it here)."""
    best = max(accuracy(c) for c in items)
    return sorted((c for c in items if accuracy(c) >= best - GOOD_ENOUGH), key=seconds)


def _only(q: str, mode: str) -> str:
    """The parts of `q` that name `mode` (so find_mode sees each mode named, not only the first)."""
    words = {"frozen": r"froz\w*|freez\w*|linear prob\w*", "finetune": r"fine[ -]?tun\w*|unfreez\w*",
             "scratch": r"scratch|random(?:ly)? init\w*"}[mode]
    return " ".join(re.findall(words, q))


def _clause_bounds(text: str, at: int, end: int, marks: str = ".;,!?\n") -> tuple[int, int]:
    """Where the clause holding text[at:end] starts and where its closing mark is (len(text) when none)."""
    cuts = [i for i, ch in enumerate(text) if ch in marks  # not the comma of "2,000" nor the point of "0.5"
            and not (0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit())]
    return max([i for i in cuts if i < at], default=-1) + 1, min([i for i in cuts if i >= end], default=len(text))


def _clause(text: str, at: int, end: int, marks: str = ".;,!?\n", keep_mark: bool = False) -> str:
    """The clause holding the words text[at:end]: between the punctuation `marks` around them (".!?\n": the
    sentence), with the closing mark when `keep_mark`."""
    start, stop = _clause_bounds(text, at, end, marks)
    return text[start:stop + keep_mark if stop < len(text) else len(text)].strip()


def _sentence_around(text: str, at: int, end: int) -> str:
    """The words of the clause holding text[at:end]: all of it up to ~60 characters, else the words matched with
    up to four words of the clause on either side ("should I use resnet or efficientnet for 2,000 ...")."""
    clause = _clause(text, at, end)
    if len(clause) <= 60:
        return clause
    start, stop = _clause_bounds(text, at, end)
    left, right = text[start:at].split()[-4:], text[end:stop].split()[:4]
    return " ".join([*left, text[at:end].strip(), *right])


__all__ = ["GOOD_ENOUGH", "LABEL_NOISE_SMOOTHING", "MODE_WORDS", "PAST_RUN_MARGIN", "REGULARISATION", "Goals", "apply_goals", "comparison_notes", "foreign_note", "inference_note", "kept_settings", "label_noise_note",
           "metric_note",
           "quick_first",
           "read_goals", "regularisation_note", "regularised", "settings_limits"]

"""Reading a chat message: the configuration changes it asks for and the follow-up intent.

    parse_changes("what about resnet18 with lr=0.01?")  # {"backbone": "resnet18", "learning_rate": 0.01}
    read_intent("what if I only have 10 minutes?")      # Intent("what_if", budget_seconds=600.0)

Deterministic rules first (`detect_intent`, `parse_changes`); only when the rules find no
intent, and a chat model is given, the model maps the question onto one of the same intents
(JSON-constrained; it never writes an answer). agent.chat.router routes whole messages with
these readers; agent.followup answers the intents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from knowledge.space import OPTIMIZERS, RANGES
from tools.task_gloss import gloss

INTENTS = ("why", "what_if", "similar", "compare", "training", "summary", "unknown")
NUMERIC_PARAMS = ("learning_rate", "batch_size", "epochs", "weight_decay", "dropout", "input_size", "label_smoothing",
                  "freeze")
CHOICE_PARAMS = ("backbone", "mode", "optimizer", "scheduler", "augmentation")
PARAMS = NUMERIC_PARAMS + CHOICE_PARAMS

# How people name each hyperparameter, longest first when matched.
PARAM_ALIASES: dict[str, tuple[str, ...]] = {
    "learning_rate": ("learning rate", "learning-rate", "learningrate", "lr"),
    "batch_size": ("batch size", "batch-size", "batchsize", "batch", "bs"),
    "epochs": ("epochs", "epoch", "ep"),
    "weight_decay": ("weight decay", "weight-decay", "wd", "l2"),
    "dropout": ("dropout", "drop out"),
    "input_size": ("input size", "input resolution", "image size", "input-size", "resolution", "pixels", "px"),
    "label_smoothing": ("label smoothing", "label-smoothing", "smoothing"),
    # Bare "freeze" names the mode in "why freeze the backbone?": it means this field only with
    # a number after it ("freeze 0.5", "freeze 50%"; see `_VALUE_ALIASES`).
    "freeze": ("frozen share", "freeze share", "share frozen", "freeze ratio", "freeze fraction", "partial freezing",
               "pct to freeze"),
    "optimizer": ("optimizer", "optimiser"),
    "scheduler": ("scheduler", "lr schedule", "schedule"),
    "augmentation": ("augmentation", "augmentations", "augment", "data augmentation"),
    "backbone": ("backbone", "architecture", "network", "model"),
    "mode": ("mode", "freezing", "fine-tuning", "finetuning", "training mode"),
}
BACKBONE_ALIASES: dict[str, tuple[str, ...]] = {
    "efficientnet_lite0": ("efficientnet lite0", "efficientnet lite 0", "lite0", "lite 0"),
    "efficientnet_lite1": ("efficientnet lite1", "efficientnet lite 1", "lite1", "lite 1"),
    "efficientnet_lite2": ("efficientnet lite2", "efficientnet lite 2", "lite2", "lite 2"),
    "resnet18": ("resnet18", "resnet 18", "resnet"),
    "mobilenet_v3_small": ("mobilenet v3 small", "mobilenetv3", "mobilenet v3", "mobilenet"),
    "efficientnet_b0": ("efficientnet b0", "effnet b0", "b0"),
    "densenet121": ("densenet121", "densenet 121", "densenet"),
    "small_cnn": ("small cnn", "simple cnn", "plain cnn", "tiny cnn"),
}
_MODE_PATTERNS = (
    ("finetune", r"\bfine[ -]?tun(?:e|ed|ing)\b|\bunfreez(?:e|ing)\b|\bfull(?:y)? train"),
    ("frozen", r"\bfroz(?:en|e)\b|\bfreez(?:e|ing)\b|\blinear prob(?:e|ing)\b|\bfeature extract"),
    ("scratch", r"\bfrom scratch\b|\bscratch\b|\brandom(?:ly)? init"),
)
_NUMBER = r"(\d+(?:\.\d+)?(?:e[-+]?\d+)?|\.\d+(?:e[-+]?\d+)?)"
# Aliases that name a numeric field only when a number follows them ("freeze 0.5", never "0 frozen":
# a backbone's digit, "lite0 frozen", must not read as a value).
_VALUE_ALIASES: dict[str, tuple[str, ...]] = {"freeze": ("freezing", "freeze")}

@dataclass
class Intent:
    """What a follow-up question asks.

    Attributes:
        kind: one of INTENTS.
        param: the hyperparameter a "why" question is about (None: the whole recommendation).
        changes: configuration fields a what-if changes, e.g. {"backbone": "resnet18"}.
        budget_seconds: a what-if time budget.
        device: a what-if device ("cpu" or "cuda").
        candidates: candidate ids named by a compare question ("c1", "c3").
        source: "rules" or "llm".
    """

    kind: str
    param: str | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    budget_seconds: float | None = None
    device: str | None = None
    candidates: list[str] = field(default_factory=list)
    source: str = "rules"


# ------------------------------------------------------------------------ rules
def norm(text: str) -> str:
    return re.sub(r"[\s_]+", " ", text.lower()).strip()


def find_backbones(q: str) -> list[str]:
    """Backbones named in the (normalised) text, in order of appearance."""
    seen: list[str] = []
    for _, _, name in backbone_spans(q):
        if name not in seen:
            seen.append(name)
    return seen


def backbone_spans(q: str) -> list[tuple[int, int, str]]:
    """(start, end, backbone) for each name of a backbone in the (normalised) text, in order."""
    found: list[tuple[int, int, str]] = []
    taken: list[tuple[int, int]] = []
    pairs = sorted(((alias, name) for name, aliases in BACKBONE_ALIASES.items() for alias in (name, *aliases)),
                   key=lambda p: -len(p[0]))
    for alias, name in pairs:
        pattern = r"(?<![a-z0-9])" + re.escape(norm(alias).replace("-", " ")) + r"(?![a-z0-9])"
        if alias[-1].isalpha() or alias.endswith("v3"):  # a family's name ("resnet") is not "resnet 50" or "mobilenet v2"
            pattern += _ANOTHER_MEMBER
        _take(found, taken, re.finditer(pattern, q.replace("-", " ")), name)
    if bare := list(BARE_EFFICIENTNET.finditer(q.replace("-", " "))):  # after every named member: "efficientnet lite0"
        _take(found, taken, bare, efficientnet_meant())
    return sorted(found)


def _take(found: list[tuple[int, int, str]], taken: list[tuple[int, int]], matches: Any, name: str) -> None:
    for m in matches:
        if any(m.start() < e and s < m.end() for s, e in taken):
            continue
        taken.append((m.start(), m.end()))
        found.append((m.start(), m.end(), name))


# "EfficientNet" with no member named ("efficientnet or resnet?"): the family, read as one member of it here.
BARE_EFFICIENTNET = re.compile(r"(?<![a-z0-9])(?:efficient ?net|effnet)(?!\s?(?:lite|b\s?\d|v\d|\d|e\d))(?![a-z0-9])")


def efficientnet_meant() -> str:
    """The backbone a bare "EfficientNet" is read as: B0, the family's first member, where its pretrained weights are
    here; else Lite0, whose weights come with the project (B0 trains only from scratch without them)."""
    from tools.weights import weights_available

    return "efficientnet_b0" if weights_available("efficientnet_b0") else "efficientnet_lite0"


# After a family's name, what makes it another member of the family than the one built here.
_ANOTHER_MEMBER = r"(?!\s?(?:\d|v\d|large\b|x\d))"
# Image classifiers people name that the runner does not build (knowledge.space.BACKBONES), as a
# pattern on the normalised text (hyphens as spaces) each, with how to write the name back.
_FOREIGN_MODELS: tuple[tuple[str, str], ...] = (
    (r"resnet ?(?!18\b)(\d{2,3})\b", "ResNet-{}"),
    (r"resnext ?\d*\w*|wide ?resnet ?\d*\w*|se ?resnet ?\d*", "{}"),
    (r"densenet ?(?!121\b)(\d{3})\b", "DenseNet-{}"),
    (r"efficientnet ?(?:v2 ?\w?|b ?[1-7])\b|(?:efficientnet ?)?lite ?[34]\b", "{}"),
    (r"mobilenet ?(?:v1|v2|v3 ?large)\b", "{}"),
    (r"vgg ?\d*", "{}"),
    (r"vit(?! ?(?:b ?12|[cde])\b)(?: ?[bslh])?(?: ?/?\d+)?|vision ?transformers?|deit|beit|swin(?: ?transformer)?(?: ?v2)?|"
     r"maxvit|coatnet",
     "{}"),
    (r"convnext(?: ?v2)?(?: ?(?:tiny|small|base|large))?|regnet\w*|shufflenet\w*|squeezenet\w*|mnasnet\w*|ghostnet",
     "{}"),
    (r"inception ?(?:v\d|resnet\w*)|xception|googlenet|alexnet|nasnet\w*|dino ?v?2?", "{}"),  # not "since inception"
)
_FOREIGN = re.compile(r"(?<![a-z0-9])(?:" + "|".join(f"(?:{p})" for p, _ in _FOREIGN_MODELS) + r")(?![a-z0-9])")


def foreign_model_spans(text: str) -> list[tuple[int, str]]:
    """Image classifiers the text names that this tool neither trains nor has runs of ("ResNet-50", "ViT",
    "ConvNeXt"): (where in `norm(text)`, the name as written there)."""
    q = norm(text)
    return [(m.start(), q[m.start():m.end()]) for m in _FOREIGN.finditer(q.replace("-", " "))]


def foreign_models(text: str) -> list[str]:
    """`foreign_model_spans`' names, in order and once each."""
    out: list[str] = []
    for _, said in foreign_model_spans(text):
        if said not in out:
            out.append(said)
    return out


def find_mode(q: str) -> str | None:
    for mode, pattern in _MODE_PATTERNS:
        if re.search(pattern, q):
            return mode
    return None


def _to_number(raw: str) -> float:
    return float(raw)


# A value changed by a factor of itself ("double the epochs", "halve the learning rate", "10x lower lr", "increase the
# batch size by 50%"): written "*2" until the config it changes is known (`apply_changes`).
_FACTOR_VERBS = {"double": 2.0, "triple": 3.0, "quadruple": 4.0, "halve": 0.5, "half": 0.5}
_UP = r"(?:higher|larger|bigger|more|greater|longer)"
_DOWN = r"(?:lower|smaller|fewer|less|shorter)"
# "freeze half the backbone", "freeze the first three quarters": partial fine-tuning by a share in words
_FREEZE_SHARE = re.compile(r"\bfreez\w*\s+(?:only\s+)?(?:the\s+)?(?:first\s+|bottom\s+|lower\s+|early\s+)?"
                           r"(half|a quarter|one quarter|three quarters|a third|one third|two thirds)\b")
_FREEZE_WORDS = {"half": 0.5, "a quarter": 0.25, "one quarter": 0.25, "three quarters": 0.75, "a third": 0.33,
                 "one third": 0.33, "two thirds": 0.67}
_UNFREEZE_ALL = re.compile(r"\bunfreez\w*\s+(?:everything|all\b|it all|the (?:whole|entire|full) (?:backbone|network|model)|"
                           r"the backbone|the rest)")


def _relative(q: str, aliases: str) -> str | None:
    """How a sentence changes a field relative to its value (its aliases as a pattern): "*2" (by a factor) or "+10"
    (by a step, "-10" down), or None."""
    verbs = "|".join(_FACTOR_VERBS)
    if m := re.search(rf"\b({verbs})\s+(?:the\s+|my\s+|our\s+)?(?:{aliases})(?![a-z])", q):
        return f"*{_FACTOR_VERBS[m.group(1)]:g}"
    # a CJK text glossed: "epochs double", "epochs 를 double" (a particle left between)
    if m := re.search(rf"(?<![a-z])(?:{aliases})\s+(?:[^\x00-\x7f]{{1,2}}\s+)?(?:to\s+)?({verbs})\b", q):
        return f"*{_FACTOR_VERBS[m.group(1)]:g}"
    if m := re.search(rf"{_NUMBER}\s*(?:x|times)\s+({_UP}|{_DOWN})\s+(?:{aliases})(?![a-z])", q):
        f = _to_number(m.group(1))
        return None if f <= 0 else f"*{f:g}" if re.fullmatch(_UP, m.group(2)) else f"*{1 / f:g}"
    if m := re.search(rf"\b(increase|raise|bump|grow|decrease|lower|reduce|cut|drop)\s+(?:the\s+)?(?:{aliases})(?![a-z])\s+"
                      rf"by\s+(a\s+factor\s+of\s+)?{_NUMBER}\s*(%|x\b)?", q):
        up, n = m.group(1) in ("increase", "raise", "bump", "grow"), _to_number(m.group(3))
        if m.group(4) == "%":
            f = 1 + n / 100 if up else 1 - n / 100
            return f"*{f:g}" if f > 0 else None
        if m.group(2) or m.group(4):
            return f"*{n if up else 1 / n:g}" if n > 0 else None
        return f"+{n if up else -n:g}"  # "increase the epochs by 10": a step
    return None


def apply_changes(config: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`config` with `changes` on top, a relative change from `parse_changes` ("*2": by a factor, "+10": by a step)
    taken of the config's value (whole-number fields rounded)."""
    out = {**config}
    for name, value in changes.items():
        old = config.get(name)
        if isinstance(value, str) and value[:1] in "*+" and value[1:] and isinstance(old, int | float):
            try:
                number = float(value[1:])
            except ValueError:
                out[name] = value  # validation says what is wrong with it
                continue
            v = old * number if value[0] == "*" else old + number
            out[name] = max(1, round(v)) if isinstance(old, int) else float(f"{v:.3g}")
        else:
            out[name] = value
    return out


def parse_changes(text: str) -> dict[str, Any]:
    """Configuration fields a sentence sets: "lr=0.01", "batch size 32", "20 epochs", "resnet18",
    "fine-tune", "use sgd", "no augmentation" (or in Chinese, Japanese, Korean: "学习率改成0.01", tools.task_gloss).
    Values are not validated here."""
    q = norm(gloss(text).text)
    out: dict[str, Any] = {}
    backbones = find_backbones(q)
    if backbones:
        out["backbone"] = backbones[-1] if re.search(r"\binstead of\b", q) is None else backbones[0]
    mode = find_mode(q)
    if mode:
        out["mode"] = mode
    for name in NUMERIC_PARAMS:
        aliases = "|".join(re.escape(a) for a in sorted(PARAM_ALIASES[name], key=len, reverse=True))
        if name != "freeze" and (relative := _relative(q, aliases)) is not None:
            out[name] = relative
            continue
        for alias in sorted(PARAM_ALIASES[name] + _VALUE_ALIASES.get(name, ()), key=len, reverse=True):
            a = re.escape(alias)
            after = re.search(rf"(?<![a-z]){a}(?![a-z])\s*(?:of|=|to|:|at|is|as|be|with)?\s*(?:only\s+)?{_NUMBER}(\s*%)?",
                              q)
            before = None if alias in _VALUE_ALIASES.get(name, ()) else \
                re.search(rf"{_NUMBER}(\s*%)?\s*(?:x\s*)?(?<![a-z]){a}(?![a-z])", q)
            m = after or before
            if m:
                value = _to_number(m.group(1))
                if name == "freeze" and m.group(2):  # "freeze 50%": a share
                    value /= 100
                out[name] = int(value) if RANGES[name].integer and value == int(value) else value
                break
    if "freeze" not in out and (share := _FREEZE_SHARE.search(q)):
        out["freeze"] = _FREEZE_WORDS[share.group(1)]
    elif "freeze" not in out and _UNFREEZE_ALL.search(q):
        out["mode"], out["freeze"] = "finetune", 0.0
    if "freeze" in out and out.get("mode") == "frozen":
        # "freeze 0.5" names partial fine-tuning, not frozen mode: its word matched the mode's pattern
        out["mode"] = "finetune"
    for opt in sorted(OPTIMIZERS, key=len, reverse=True):
        if re.search(rf"(?<![a-z]){opt}(?![a-z])", q):
            out["optimizer"] = opt
            break
    sched = re.search(r"\b(warmup cosine|warmup|cosine|constant|step)\s*(?:lr\s*)?(?:schedule|scheduler|decay)\b"
                      r"|\b(?:schedule|scheduler)\s*(?:of|=|to|:)?\s*(warmup cosine|cosine|constant|step)\b", q)
    if sched:
        sched_name = (sched.group(1) or sched.group(2)).replace(" ", "_")
        out["scheduler"] = "warmup_cosine" if sched_name.startswith("warmup") else sched_name
    if re.search(r"\bno (?:data )?augment|\bwithout (?:any )?(?:data )?augment|\b(?:turn off|switch off|disable|drop|remove|skip)\s+"
                 r"(?:the\s+|all\s+|any\s+)?(?:data )?augment|\baugment\w*\s+(?:off|disabled)\b", q):
        out["augmentation"] = "none"
    elif re.search(r"\b(?:strong|stronger|heavier|heavy|more aggressive|aggressive)\s+(?:data\s+)?augment", q):
        out["augmentation"] = "strong"
    elif re.search(r"\b(?:lighter|milder|gentler)\s+(?:data\s+)?augment", q):
        out["augmentation"] = "light"
    else:
        aug = re.search(r"\b(flip|light|strong)\b\s*(?:data )?augment|\baugment\w*\s*(?:of|=|to|:)?\s*(none|flip|light|strong)\b",
                        q)
        if aug:
            out["augmentation"] = aug.group(1) or aug.group(2)
    return out


def param_named(q: str) -> str | None:
    """The hyperparameter a question names ("why this learning rate" -> learning_rate)."""
    best: tuple[int, int, str] | None = None
    for name, aliases in PARAM_ALIASES.items():
        for alias in aliases:
            m = re.search(rf"(?<![a-z]){re.escape(alias)}(?![a-z])", q)
            if m and (best is None or (m.start(), -len(alias)) < best[:2]):
                best = (m.start(), -len(alias), name)
    if best:
        return best[2]
    if find_backbones(q) or re.search(r"\befficientnet\b|\bthis (?:net|cnn)\b", q):
        return "backbone"
    if find_mode(q):
        return "mode"
    if any(re.search(rf"\b{o}\b", q) for o in OPTIMIZERS):
        return "optimizer"
    return None


def detect_intent(question: str) -> Intent:
    """Read a follow-up question with deterministic rules; kind "unknown" when none applies."""
    from tools.task_text import parse_task

    q = norm(question)
    budget, device = None, None
    try:
        told = parse_task(question)
        if "budget" in told.said:
            budget = told.budget_seconds
        if "device" in told.said and re.search(r"\bgpu\b|\bcuda\b|\bcpu\b|\blaptop\b", q):
            device = told.device_label
    except ValueError:
        pass
    changes = parse_changes(question)
    cands = re.findall(r"\bc(\d{1,2})\b", q)
    whatif_words = re.search(
        r"\bwhat if\b|\bwhat about\b|\bhow about\b|\binstead\b|\bif i\b|\bif we\b|\bwith only\b|\bonly have\b|"
        r"\bcould i\b|\bcan i\b|\bshould i\b|\bwould\b|\bwhat happens\b|\bpredict|\bswitch\b|\bwhy not\b|\btry\b", q)
    has_change = bool(changes or budget is not None or device is not None)

    if re.search(r"\bsimilar\b|\bpast (?:runs?|experiments?)\b|\bprevious (?:runs?|experiments?)\b|\bevidence\b|"
                 r"\bretrieved\b|\bnearest\b|\bneighbou?rs?\b|\bother datasets?\b", q):
        return Intent("similar")
    if re.search(r"\bcompare\b|\bvs\.?\b|\bversus\b|\balternatives?\b|\bother (?:options|candidates)\b|\bcandidates?\b|"
                 r"\b(?:second|next)[- ]best\b|\brunner[- ]up\b", q):
        if has_change:
            return Intent("what_if", changes=changes, budget_seconds=budget, device=device)
        return Intent("compare", candidates=[f"c{n}" for n in cands])
    if re.search(r"\bwhy not\b", q) and has_change:
        return Intent("what_if", changes=changes, budget_seconds=budget, device=device)
    if re.search(r"\bwhy\b|\bhow come\b|\bexplain\b|\bjustify\b|\breason(?:ing)? (?:for|behind)\b|\bwhat drives\b|\bshap\b|"
                 r"\bhow (?:confident|sure|certain|reliable)\b|\buncertain\w*|\b(?:the )?judge\b|\bverdict\b", q):
        return Intent("why", param=param_named(q))
    # "would a bigger batch help?", "is a lower learning rate better?": a value of one setting against others
    if not has_change and (param := param_named(q)) in NUMERIC_PARAMS and re.search(
            rf"\b(?:{_UP}|{_DOWN}|bigger|higher|shorter)\b", q) and re.search(
            r"\b(?:help|improve|better|worse|hurt|matter|work)\w*\b", q):
        return Intent("why", param=param)
    if has_change and (whatif_words or question.strip().endswith("?")):
        return Intent("what_if", changes=changes, budget_seconds=budget, device=device)
    if whatif_words and re.search(r"\bwhat if\b|\bwhat about\b|\bhow about\b", q):
        return Intent("what_if")  # a what-if without a change: the answer asks what should change
    if re.search(r"\btrain(?:ing|ed)?\b.*\b(?:go|went|result|accuracy|finish|done|end)|\bhow did\b|\bresults?\b|"
                 r"\bfinal (?:accuracy|metrics)\b|\bauc\b|\bf1\b|\bactual\b|\bmeasured\b|\brecord\b", q):
        return Intent("training")
    if re.search(r"\b(?:what|which) (?:did you|do you) recommend|\bsummar|\bremind\b|\bwhat (?:is|was) the "
                 r"(?:recommendation|config)|\bshow (?:me )?the (?:recommendation|config)", q):
        return Intent("summary")
    return Intent("unknown")


# ------------------------------------------------------------------------ LLM fallback
def llm_intent(llm: Any, question: str) -> Intent | None:
    """Map a question onto an intent with the chat model (JSON-constrained); None on failure."""
    from langchain_core.messages import HumanMessage, SystemMessage

    schema = {
        "title": "FollowupIntent",
        "type": "object",
        "properties": {
            "intent": {"type": "string", "enum": list(INTENTS)},
            "param": {"type": "string", "enum": ["", *PARAMS]},
            "value": {"type": "string", "maxLength": 40},
        },
        "required": ["intent", "param", "value"],
        "additionalProperties": False,
    }
    messages = [
        SystemMessage("Classify a user's follow-up question about a recommended deep-learning configuration. "
                      "intent: why (asks for a reason), what_if (asks about a change: budget, backbone, mode, device or "
                      "a hyperparameter value), similar (past experiments), compare (the candidates), training (the "
                      "result of a run), summary (restate the recommendation), unknown. param: the hyperparameter "
                      "concerned, or empty. value: the new value for what_if, or empty."),
        HumanMessage(question[:300]),
    ]
    try:
        raw = llm.with_structured_output(schema).with_config(run_name="followup_intent", tags=["nostream"]).invoke(messages)
    except Exception:  # the rules already failed; an LLM that fails too leaves the question unknown
        return None
    if hasattr(raw, "model_dump"):
        raw = raw.model_dump()
    if not isinstance(raw, dict) or raw.get("intent") not in INTENTS:
        return None
    kind, param, value = raw["intent"], raw.get("param") or None, str(raw.get("value") or "").strip()
    if param not in PARAMS:
        param = None
    intent = Intent(kind, param=param if kind == "why" else None, source="llm")
    if kind == "what_if":
        from_value = detect_intent(f"what if {param.replace('_', ' ') if param else ''} {value}".strip())
        intent.changes, intent.budget_seconds, intent.device = (from_value.changes, from_value.budget_seconds,
                                                                from_value.device)
    return intent



def read_intent(question: str, llm: Any | None = None) -> Intent:
    """The rules' intent; when they find none and `llm` is given, the model's (source "llm")."""
    intent = detect_intent(question)
    if intent.kind == "unknown" and llm is not None:
        intent = llm_intent(llm, question) or intent
    return intent


__all__ = [
    "BACKBONE_ALIASES", "CHOICE_PARAMS", "INTENTS", "Intent", "NUMERIC_PARAMS", "PARAMS", "PARAM_ALIASES", "detect_intent",
    "backbone_spans", "find_backbones", "find_mode", "foreign_model_spans", "foreign_models", "llm_intent", "norm", "param_named", "parse_changes", "read_intent",
]

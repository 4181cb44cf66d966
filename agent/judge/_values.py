"""Hyperparameter values a rationale states, held to the configuration of the run they are stated for.

"c1 uses a learning rate of 100" for a c1 with lr 0.001 is false whatever the user asked for.
A value belongs to the runs named before it in its clause (the last one first) or the one
named right after it, or, in a clause naming none, to the run named last before it or the
choice the rationale is about.
It holds when one of them has it at the precision written ("lr 0.0003" for 0.00025). A value
after a contrast ("rather than Adam", "from 0.001 to 0.0003") is not claimed for anyone. A value
later in a comparison that names no run ("2 points above the 0.68 of the small_cnn at 32 px") is
about what the choice is compared with, whichever run or candidate shown that is; one that no
shown run has is still refused. An id past a comparing word does not own a value before it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.judge._facts import Facts
from agent.judge._reading import COMPARING, NUMBER, clauses, contrasted, id_pattern, number, phrase_bounds
from knowledge.space import AUGMENTATIONS, BACKBONES, OPTIMIZERS

_N = rf"({NUMBER})(\s*%)?"
_FILL = r"(?:\s*[=:(~]|\s+(?:of|is|at|was|set\s+to|to|equal\s+to|around|about|approximately|just|only)\b)*\s*"
_FROM = rf"(?:from\s+{NUMBER}\s*%?\s+(?:to|->)\s+)?"


def _after(key: str, fill: str = _FILL) -> re.Pattern[str]:
    """A value written after its name: "learning rate of 0.001", "lr=1e-3", "dropout from 0.1 to 0.3"."""
    return re.compile(rf"\b(?:{key})\b{fill}{_FROM}{_N}", re.I)


def _before(key: str) -> re.Pattern[str]:
    """A value written before its name: "10 epochs", "128 px", "a 0.2 dropout"."""
    return re.compile(rf"(?<![\w.]){_N}[\s-]*(?:{key})\b", re.I)


# field -> (patterns, is an integer)
_NUMERIC: dict[str, tuple[tuple[re.Pattern[str], ...], bool]] = {
    "learning_rate": ((_after(r"learning[\s-]*rate|lr"), _before(r"learning[\s-]*rate")), False),
    "batch_size": ((_after(r"batch[\s-]*size|bs"), re.compile(rf"\bbatch(?:es)?\s+of\s+{_N}", re.I)), True),
    "epochs": ((_after(r"epochs|ep", r"(?:\s*[=:(]|\s+(?:of|to)\b)+\s*"), re.compile(rf"(?<![\w.]){_N}[\s-]*(?:training\s+)?epochs\b", re.I),
                re.compile(rf"(?<![\w.]){_N}-epoch\b", re.I)), True),
    "input_size": ((_after(r"input[\s-]*size|image[\s-]*size|resolution"), _before(r"px|pixels?"),
                    re.compile(rf"(?<![\w.]){_N}\s*[x\u00d7]\s*\d{{2,3}}\b", re.I)), True),
    "dropout": ((_after(r"dropout|drop(?=\s*=)"), _before(r"dropout")), False),
    "weight_decay": ((_after(r"weight[\s-]*decay|wd"), _before(r"weight[\s-]*decay")), False),
    "label_smoothing": ((_after(r"label[\s-]*smoothing"), _before(r"label[\s-]*smoothing")), False),
    "freeze": ((_after(r"freeze|freeze\s+share|frozen\s+share"),
                re.compile(rf"\b(?:freez\w*|keeps?)\s+{_N}\s*(?:of\s+)?(?:the\s+)?(?:backbone|blocks|layers)", re.I),
                re.compile(rf"(?<![\w.]){_N}\s*(?:of\s+(?:the\s+)?(?:backbone|blocks|layers)\s+)?frozen\b", re.I)),
               False),
}
# "half the blocks frozen", "50 % frozen": a freeze share, not the frozen mode.
_PARTLY = re.compile(r"(?:(?<![\w.])\d+(?:\.\d+)?\s*%?|\bhalf|\bpart\w*|\bshare|\bblocks|\blayers)(?:\s+\w+){0,2}\s*$",
                     re.I)
# A size said of the task's images, not of a run's input: "64px resolution", "64 px images", "images at 64 px".
_IMAGES = r"(?:images?|scans?|photos?|pictures?|slides?|radiographs?|x-rays?|data(?:set)?)"
_OF_IMAGES_AFTER = re.compile(rf"^\s*(?:px|pixels?)?(?:\s*[x\u00d7]\s*\d{{2,4}}\s*(?:px|pixels?)?)?[\s-]*"
                              rf"(?:(?!input)\w+\s+)?(?:resolution|{_IMAGES})\b", re.I)
_OF_IMAGES_BEFORE = re.compile(rf"\b{_IMAGES}\s+(?:(?:are|is|at|of|with|in)\s+)+(?:an?\s+|the\s+)?"
                               r"(?:(?:resolution|size)\s+(?:of\s+)?)?$", re.I)
# Counts of epochs that are about a run's log, not its setting: "after 3 epochs", "within 5 epochs".
_LOG_EPOCHS = re.compile(r"\b(?:after|within|first|last|by|until|only|over|in)\s+$", re.I)


def _compared_from(clause: str, start: int) -> int | None:
    """Where the comparison that a value at `start` belongs to begins (after its comparing word), if any."""
    lo, _ = phrase_bounds(clause, start)
    found = [m.end() for m in COMPARING.finditer(clause, lo, start)]
    return found[-1] if found else None


def _named(names: Sequence[str]) -> re.Pattern[str]:
    return re.compile(r"\b(" + "|".join(sorted(names, key=len, reverse=True)) + r")\b", re.I)


def _backbone_pattern(name: str) -> str:
    """"efficientnet_lite0" as written: "EfficientNet-Lite0", "efficientnet lite0", "efficientnetlite0"."""
    return r"[\s_-]*".join(re.escape(ch) for ch in name.replace("_", ""))


_CHOICES: dict[str, tuple[re.Pattern[str], Any]] = {
    "optimizer": (_named(OPTIMIZERS), str.lower),
    "augmentation": (re.compile(r"\b(?:aug(?:mentation)?\s*[=:]\s*|(?=\w+\s+augmentation))("
                                + "|".join(a for a in AUGMENTATIONS if a != "none") + r")\b", re.I), str.lower),
    "mode": (re.compile(r"\b(frozen|fine[\s-]*tun\w*|from\s+scratch)\b", re.I),
             lambda w: "frozen" if w.lower() == "frozen" else "scratch" if "scratch" in w.lower() else "finetune"),
    "backbone": (re.compile(r"(?<![\w])(" + "|".join(_backbone_pattern(b) for b in
                                                      sorted(BACKBONES, key=len, reverse=True)) + r")(?!\w)", re.I),
                 lambda w: next(b for b in BACKBONES if re.sub(r"[\s_-]+", "", w.lower()) == b.replace("_", ""))),
}
# "no augmentation", "without dropout": the value none/0 stated in words.
_NONE = {"augmentation": (re.compile(r"\b(?:no|without)\s+(?:data\s+)?augmentation\b", re.I), "none"),
         "dropout": (re.compile(r"\b(?:no|without)\s+dropout\b", re.I), 0.0),
         "weight_decay": (re.compile(r"\b(?:no|without)\s+weight[\s-]*decay\b", re.I), 0.0)}


@dataclass(frozen=True)
class Mention:
    """A hyperparameter value a clause states: the field, the value (a str or a Number), where."""

    name: str
    value: Any
    start: int


def mentions(clause: str) -> Iterator[Mention]:
    """The hyperparameter values a clause states, left out those after a contrast."""
    for name, (patterns, _) in _NUMERIC.items():
        for pattern in patterns:
            for m in pattern.finditer(clause):
                if contrasted(clause, m.start()) or (name == "epochs" and _LOG_EPOCHS.search(clause[: m.start()])):
                    continue
                yield Mention(name, number(m.group(1), percent=bool(m.group(2))), m.start(1))
    for name, (pattern, canonical) in _CHOICES.items():
        for m in pattern.finditer(clause):
            partly = name == "mode" and m.group(1).lower() == "frozen" and _PARTLY.search(clause[: m.start()])
            if not contrasted(clause, m.start()) and not partly:
                yield Mention(name, canonical(m.group(1)), m.start(1))
    for name, (pattern, value) in _NONE.items():
        for m in pattern.finditer(clause):
            yield Mention(name, value, m.start())


def _holds(mention: Mention, config: Mapping[str, Any]) -> bool | None:
    """Whether a configuration has the value stated (None: it does not show that field)."""
    actual = config.get(mention.name)
    if actual is None:
        return None
    if isinstance(mention.value, str):
        return mention.value == str(actual).lower()
    if isinstance(mention.value, float):
        return abs(mention.value - float(actual)) < 1e-12
    if _NUMERIC[mention.name][1] and mention.value.unit >= 1:
        return mention.value.value == float(actual)
    return mention.value.matches(float(actual))


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else f"{value.value:g}" if hasattr(value, "value") else f"{value:g}"


def _of_the_images(clause: str, mention: Mention, image_size: int | None) -> bool:
    """Whether an input size stated is the task's image size said of the images ("trained on 50k images
    with 64px resolution"), a fact of the data line the prompt showed rather than a run's setting."""
    if image_size is None or not hasattr(mention.value, "value") or mention.value.value != float(image_size):
        return False
    digits = re.match(r"\d+(?:\.\d+)?", clause[mention.start:])
    end = mention.start + (digits.end() if digits else 0)
    return bool(_OF_IMAGES_AFTER.match(clause[end:]) or _OF_IMAGES_BEFORE.search(clause[:mention.start]))


def wrong_values(rationale: str, facts: Facts) -> list[str]:
    """The hyperparameter values a rationale states that the runs it states them for do not have."""
    ids = id_pattern(facts.prefixes)
    problems: list[str] = []
    last: list[str] = []  # the run named last in the clauses before
    for _, clause in clauses(rationale):
        named = [(m.group(1), m.start()) for m in ids.finditer(clause)]
        for mention in mentions(clause):
            if mention.name == "input_size" and _of_the_images(clause, mention, facts.image_size):
                continue
            before = [i for i, at in named if at < mention.start]
            # "EfficientNet-Lite0 at 128 px (c1)"; not an id past a comparing word ("64 px, above c2")
            turn = COMPARING.search(clause, mention.start)
            after = [i for i, at in named if at > mention.start and (turn is None or at < turn.start())][:1]
            owners = [*before[::-1], *after] or [*last[-1:], *facts.about]
            compared = _compared_from(clause, mention.start)
            if compared is not None and not after and not any(compared <= at < mention.start for _, at in named):
                # about what the choice is compared with, named by its settings only: any run shown may own it
                shown = sorted(i for i in facts.runs if facts.config(i))
                if shown and not any(_holds(mention, facts.config(i) or {}) for i in shown):
                    problems.append(f"it says {mention.name.replace('_', ' ')} {_shown(mention.value)} for what "
                                    f"it compares with, but no candidate or run shown uses it")
                continue
            held = [_holds(mention, facts.config(o) or {}) for o in dict.fromkeys(owners)]
            if not any(held) and False in held:
                owner = next(o for o, h in zip(dict.fromkeys(owners), held, strict=True) if h is False)
                actual = (facts.config(owner) or {})[mention.name]
                problems.append(f"it says {mention.name.replace('_', ' ')} {_shown(mention.value)}, but {owner} uses "
                                f"{_shown(float(actual)) if isinstance(actual, (int, float)) else actual}")
        last += [i for i, _ in named]
    return list(dict.fromkeys(problems))

"""How many classes and images a task text states, and how uneven its classes are.

Read after the limits (which are blanked out of the text by then), in this order, each blanking its words:
    imbalance ratios   "1:10", "10:1 normal to abnormal", "ratio of 8", "a 12-fold imbalance", "1 in 20",
                       "90/10 split"; percentages ("only 3% are malignant") wait for the class count.
    class counts       digits and words ("eight tumour types", "a dozen conditions", "6-way"), "binary",
                       ranges of grades ("KL 0 to 4", "stages I-IV", "grades A0-A4"), lists of names
                       ("normal/benign/malignant", "benign vs malignant", "classify into a, b and c").
    class sizes        "300 benign and 60 malignant" (classes, images and imbalance at once);
                       "800 training and 200 test images" (a total).
    images             "3.1k", "~3,100", "about 3 thousand", "1.2M", "12 000", "a few hundred" (approximate),
                       "500 per class" (times the class count).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from tools.task_numbers import APPROX, COUNT, Number, Reading, fold, label_span, mentions, read_count

if TYPE_CHECKING:
    from tools.task_text import TaskProfile

MAX_CLASSES = 1000
MAX_IMAGES = 1_000_000_000
MAX_GRADES = 20  # a range wider than this is a score ("0 to 100"), not classes
HINTED_RATIO = 5.0  # "imbalanced", "rare class" without a number

CLASS_NOUNS = (r"(?:classes|class|clases|classses|clasess|classe|categories|category|catagories|categorys|labels|types|grades|kinds|species|"
               r"klassen|classi|categor[ií]as|kategorien|cat[ée]gories|befunde|diagn[oó]sticos|"  # de, it, es/pt, fr ("classes" is French too)
               r"conditions|diagnoses|diseases|disorders|outcomes|groups|findings|stages|levels|tiers|subtypes|"
               r"phenotypes|pathologies|stufen|stadien|estadios|etapas|stades|stadi|gradi|grados|graus)")  # stages, grades
IMAGE_NOUNS = (r"(?:images?|imgs?|pictures?|pics|photos?|photographs?|scans?|slides?|patches|patch|samples?|examples?|"
               r"radiographs?|x-?rays?|xrays?|crops?|tiles?|frames?|stills?|studies|cases|mammograms?|films?|slices?|"
               r"smears?|mris|cts|cxrs?|ultrasounds|dermoscopies|volumes|specimens|lesions|nodules|instances|data ?points|cells|"
               r"shots|exams?|examinations|rois|regions of interest|"
               r"im[áa]genes|imagens|immagini|radiographies|coupes|cortes|[a-z]*schnitte|fette|[a-z]*bilder|[a-z]*aufnahmen)")  # es, pt, it, fr, de ("images" is
# French too; German joins the noun to what it shows: "Hautbilder", "Röntgenaufnahmen")
# Words that are not a filler between a number and its noun, nor a class name.
_GLUE = (r"(?:of|per|in|on|at|for|from|with|and|or|to|by|the|a|an|each|every|than|vs|versus|are|is|px|pixels?|"
         rf"{CLASS_NOUNS}|{IMAGE_NOUNS})")
_FILLER = rf"(?:(?!{_GLUE}\b)[a-z][\w&'-]*\s+){{0,2}}?"
# Words that are no class name: they make a list of them something else ("train/test", "CPU or GPU").
_NOT_NAMES = frozenset("""
and or nor with without more less either whether the a an it this that these those is are be to of in on
for from by as at per each every one two few some any all both else then now later today tomorrow yes
train training test testing val validation valid dev holdout held-out split data dataset image images class classes
cpu gpu gpus cuda tpu ram vram laptop desktop server cloud colab mac macbook pc pytorch tensorflow keras model models backbone backbones resnet resnet18 resnet50 efficientnet mobilenet vit
densenet convnext vgg inception swin cnn transformer sgd adam adamw lr fine-tune finetune fine-tuning freeze frozen
scratch pretrained augmentation dropout epochs batch fast faster cheap cheaper small smaller large larger big
accurate accuracy good better best quick simple robust efficient high low speed size png jpg jpeg dicom tif tiff
ct mri pet x-ray xray x-rays ultrasound oct dermoscopy histology w o s h km mm px cm ms min minutes hours
""".split())
_SPLITS = frozenset("train training val validation valid test testing dev holdout held-out".split())
_UNIT_WORDS = (r"(?:px|pixels?|gb|mb|kb|epochs?|params|parameters|weights|minutes?|mins?|hours?|hrs?|seconds?|days?|"
               r"%|percent|times|fold|x|vs\.?|versus|plus|minus|gpus?|cpus?|cores?|layers?|channels?|runs?|trials?|folds?|seeds?|more|of|per|"
               rf"each|in|on|at|for|to|from|with|and|or|the|an?|than|are|is|was|were|out|{CLASS_NOUNS}|{IMAGE_NOUNS})")

# Things a task counts that are not classes: "3 views (CC, MLO, ML)", "4 hospitals", "2 scanners".
_OTHER_THINGS = (r"(?:views?|projections?|planes?|sequences?|sites?|centres?|centers?|hospitals?|institutions?|scanners?|"
                 r"vendors?|machines?|stains?|protocols?|modalities|cohorts?|years?|months?|weeks?|readers?|annotators?|"
                 r"datasets?|data sets?|sources?|collections?)")
_CLAUSE = re.compile(r"[,;.!?\n]\s|[()]")


def _whole(r: Reading, m: re.Match[str], group: str, what: str, low: int, high: int) -> tuple[int, bool] | None:
    """The whole number in `group` of `m`, checked to lie in [low, high]; None for "one"/"a" (not a count)."""
    raw = m.group(group)
    if re.fullmatch(r"\s*(?:one|a|zero)\s*", raw):
        return None
    number = read_count(raw)
    words = r.text[m.start():m.end()].strip()[:80]
    start = m.start(group)  # "-5 classes" (a minus sign right before the digits), not "-- 5" nor "0-5"
    negative = r.low[start - 1: start] == "-" and (start < 2 or not (r.low[start - 2].isalnum() or r.low[start - 2] == "-"))
    if number.value > high or not math.isfinite(number.value):  # first: int() of inf raises OverflowError
        raise ValueError(f"{what} must be at most {high:,}, but the text says {words!r}.")
    if negative or number.value < low or number.value != int(number.value):
        if what == "n_classes":
            raise ValueError(f"classification needs n_classes >= {low} (a whole number), but the text says {words!r}.")
        raise ValueError(f"{what} must be a whole number >= {low}, but the text says {words!r}.")
    return int(number.value), number.approximate


# ------------------------------------------------------------------------------ imbalance
_AP = r"(?:(?P<ap>~|about|around|roughly|approx(?:\.|imately)?|nearly|almost)\s*)?"
_RATIO_ONE = (
    re.compile(rf"\bimbalance(?:d)?\s*ratio\s*(?:of|is|:|=)?\s*{_AP}(?P<r>\d+(?:\.\d+)?)(?!\s*(?::|to|/)\s*\d)"),
    re.compile(rf"(?<!aspect )\bratio\s*(?:of|is|:|=)?\s*{_AP}(?P<r>\d+(?:\.\d+)?)(?![\d.]|\s*(?::|to|/|%|percent)\s*)"),
    # (not "very imbalanced: 1805 no DR but only 193 severe": a number a word follows is a class's size)
    re.compile(rf"\bimbalance(?:d)?\s*(?:of|:|=)\s*{_AP}(?P<r>\d+(?:\.\d+)?)(?!\s*(?::|to|/)\s*\d)"
               r"(?!\d|[.,]\d|\s+(?!(?:x|times|fold|between|among|across|in|for)\b)[a-z])"),
    re.compile(rf"{_AP}(?P<r>\d+(?:\.\d+)?|{COUNT})\s*(?:x|-?\s*fold|times)\s*(?:class\s+)?(?:imbalance|imbalanced|more|"
               r"as many|larger|bigger|(?:the\s+)?(?:size of (?:the\s+)?)?(?:smallest|rarest))\b"),
    # "imbalance up to 20x", "class imbalance as high as 15-fold": the number after the word, with its unit
    re.compile(rf"\bimbalance(?:d)?(?:\s+ratio)?\s*(?:of|is|:|=)?\s*(?:up to|as high as|as much as|at most|reaching|"
               rf"of up to)?\s*{_AP}(?P<r>\d+(?:\.\d+)?)\s*(?:x\b|\u00d7|-?\s*fold\b|times\b)"),
    # "twice as many negatives as positives"
    re.compile(rf"{_AP}\b(?P<r>twice|thrice)\s+as\s+(?:many|common|frequent|large|big)\b"),
)
# "normal outnumbers pneumonia three to one": the larger class's count per one of the smaller
_OUTNUMBER = re.compile(rf"\boutnumber\w*\s+(?:[a-z][\w'-]*\s+){{0,3}}?(?:by\s+)?{_AP}(?P<a>{COUNT})\s*(?:to|:)\s*(?P<b>{COUNT})\b")
# "one malignant for every four benign", "1 positive to every 9 negatives": two classes' sizes as a rate.
_FOR_EVERY = re.compile(rf"(?P<a>{COUNT})\s+(?:[a-z-]+\s+){{0,2}}?(?:for|to)\s+every\s+(?P<b>{COUNT})\b")
# One class's size set against a smaller one said to be "only" so much: "1805 no DR but only 193 severe".
# (Not "1,000 images but only 200 labelled": images, and what was done to some, are no classes.)
_NOT_A_CLASS = rf"(?:{_UNIT_WORDS}|labell?ed|annotated|usable|used|left|remaining|reviewed|verified|confirmed)"
_BUT_ONLY = re.compile(rf"(?<![\w.,])(?P<a>{COUNT})\s+(?!{_NOT_A_CLASS}\b)(?:[a-z][\w'-]*\s+){{0,3}}?[a-z][\w'-]*\s*,?\s*"
                       rf"(?:but|while|whereas|and)\s+(?:only|just|merely)\s+(?P<b>{COUNT})\s+(?!{_NOT_A_CLASS}\b)[a-z][\w'-]*")
_THOUSANDS = r"\d{1,3}(?:,\d{3})+(?![\d,])"  # "1,200" whole, as one number
_RATIO_PAIR = (
    re.compile(rf"\bratio\s*(?:of\s*)?{_AP}(?P<a>\d+(?:\.\d+)?)\s*(?::|to|/)\s*(?P<b>\d+(?:\.\d+)?)"),
    # (not "ISIC 2019: 25,331 images": a year before a colon, a number cut at its thousands comma)
    re.compile(rf"{_AP}(?<![\d.:/])(?!(?:19|20)\d\d:\s)(?P<a>{_THOUSANDS}|\d+(?:\.\d+)?)\s*:\s*"
               rf"(?P<b>{_THOUSANDS}|\d+(?:\.\d+)?)(?![\d:]|,\d)"),
    re.compile(r"(?<![\d.])(?P<a>\d{1,2}(?:\.\d+)?)\s*[/:-]\s*(?P<b>\d{1,2}(?:\.\d+)?)\s*%?\s*(?:class\s+)?(?:split|distribution)"),
    # "roughly 60/40": two shares that make 100 (a train/test split is refused by _NOT_CLASSES around it)
    re.compile(rf"{_AP}(?<![\d.:/])(?P<a>\d{{1,2}})\s*/\s*(?P<b>\d{{1,2}})(?![\d/]|\.\d)(?!\s*(?:px|pixels|%|mm|cm))"),
)
# Three or more classes in proportion, said so ("1:1:3 ratio"); not a clock ("10:30:00").
_RATIO_CHAIN = re.compile(rf"{_AP}(?<![\d.:/])(?P<chain>\d+(?:\.\d+)?(?:\s*:\s*\d+(?:\.\d+)?){{2,}})(?![\d:])")
_CHAIN_CUE = re.compile(r"ratio|split|distribution|proportion|balance")
_FRACTION = re.compile(r"(?<![\d.,/])(?P<a>\d+)\s*(?:in(?:\s+every)?|out of|/)\s*(?P<b>\d+)(?![\d.,])(?:\s+of\b)?")
# A share in words: "two thirds of them", "half the data", "one in ten".
_SHARE_WORDS = {"half": 50.0, "third": 100 / 3, "thirds": 100 / 3, "quarter": 25.0, "quarters": 25.0, "fifth": 20.0,
                "fifths": 20.0, "tenth": 10.0, "tenths": 10.0}
_TIMES = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4}
_SMALL = {"one": 1, "a": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
          "ten": 10, "twenty": 20, "fifty": 50, "hundred": 100, "a hundred": 100, "thousand": 1000, "a thousand": 1000}
_WORD_SHARE = re.compile(
    r"(?:(?P<ap>~|about|around|roughly|approximately|nearly|almost)\s+)?(?:(?P<n>a|one|two|three|four)[\s-]+)?"
    r"(?P<f>half|thirds?|quarters?|fifths?|tenths?)\b(?!\s*(?:-|of)?\s*(?:the\s+)?(?:time|budget|cost|size|price)|\s+(?:of\s+)?an?\s+(?:hundred|thousand|million|billion)\b)"
    r"|(?:(?P<ap2>about|around|roughly|nearly|almost)\s+)?(?P<a>one|two|three)\s+(?:in|out of)\s+(?:every\s+)?"
    r"(?P<b>two|three|four|five|six|seven|eight|nine|ten|twenty|fifty|a hundred|hundred|a thousand|thousand)\b")
_NOT_A_RATIO = re.compile(r"\b(?:at|by|until|from|before|after)\s*$|magnification|scale|dilution|\bam\b|\bpm\b")
_NOT_CLASSES = re.compile(r"\btrain|\btest|\bval(?:idation)?\b|hold-?out|\bsplit into\b")


def _sentence_window(low: str, start: int, end: int, width: int) -> str:
    """`width` characters either side of low[start:end], within its sentence ("1 in 5 positive. What should I
    train?": the next sentence's "train" says nothing of the share)."""
    before, after = low[max(0, start - width):start], low[end:end + width]
    before = re.split(r"[.!?\n]\s", before)[-1]
    after = re.split(r"[.!?\n](?:\s|$)", after)[0]
    return before + low[start:end] + after
_PERCENT = re.compile(
    r"(?:(?P<ap>~|about|around|roughly|approximately|only|just)\s*)?(?P<p>\d+(?:[.,]\d+)?)\s*(?:%|percent|per cent|pct)"
    rf"(?P<tail>\s+of\s+(?:the\s+|all\s+)?(?:[a-z-]+\s+){{0,2}}?(?:{IMAGE_NOUNS}|data|dataset|patients)"
    r"(?:\s+(?:are|is|were|show|have)\s+[a-z-]+)?|\s+(?:positives?|negatives?|malignant|abnormal|positive|negative)"
    r"|\s+(?P<name>[a-z][\w-]*))?"
)
_PERCENT_NOT = re.compile(r"accura|\bacc\b|\bauc\b|\bf1\b|sensitiv|specific|recall|precision|dropout|valid|\bval\b|\btest|"
                          r"\btrain|hold-?out|freez|frozen|layers?\b|augment|crop|zoom|faster|slower|improv|\bgain|\bdrop\b|"
                          r"memory|gpu|cpu|error|confiden|interval|budget|utili[sz]|better|worse|of the time|learning rate|"
                          r"nois|missing|corrupt|label(?:l?ed|s)?\b|wrong|mislabel|incorrect|annotat|less|more|smaller|larger|of the (?:size|cost)|"
                          # a score to reach ("the smallest model that gets above 90% on my 3-class set")
                          r"\bgets?\b|\bgetting\b|reach|achiev|\bscor|\bhits?\b|\baim|\bgoal|perform|"
                          # the images' quality, not a class ("10% of images are blurry")
                          r"blur|artefact|artifact|poor quality|low quality|duplicat|unusable|excluded|discarded")
_BRACKETED = re.compile(r"(?:~|about|around|roughly|approximately)?\s*\d+(?:[.,]\d+)?\s*(?:%|percent|per cent|pct)")
_PERCENT_CUE = re.compile(r"positive|negative|minority|majority|rare|skewed|smallest|largest|prevalen|incidence|class|cases|"
                          r"malignant|abnormal|disease|cancer|healthy|normal|benign|referable|affected|\bof (?:the |all )?|"
                          r"\bare\b|\bis\b|make up|makes up|account|belong|dominat|most common")
# "rare" alone names imbalance only when a class or the positives are what is rare ("one class is rare",
# "positives are rare"), not the disease or the data ("a rare bone disease", "rare scans").
_HINT = re.compile(r"\b(?:imbalanced|unbalanced|skewed|long[- ]tail\w*|rare class\w*|minority class\w*|few positives?|"
                   r"class imbalance|(?:class|classes|positives?|cases|category|categories|label|labels|finding)\s+"
                   r"(?:is|are)\s+(?:very\s+)?rare|rare (?:positives?|cases|categor\w*|labels?)|"
                   r"not (?:very |well )?balanced|unausgewogen\w*|unausgeglichen\w*|desbalancead\w*|desequilibrad\w*|"
                   r"d[ée]s[ée]quilibr\w*|sbilanciat\w*)\b")  # de, es/pt, fr, it


def read_ratio(r: Reading, p: TaskProfile) -> dict[str, Any] | None:
    """Read an imbalance stated as a ratio; return a pending percentage (it needs the class count), if any."""
    for regex in _RATIO_ONE:
        if regex is _RATIO_ONE[3] and not mentions(r.low, "imbalance", "more", "as many", "larger", "bigger", "smallest"):
            continue
        m = regex.search(r.low)
        if m:
            word = {"twice": 2.0, "thrice": 3.0}.get(m.group("r"))
            number = Number(word, False) if word else read_count(m.group("r"))
            _set_ratio(r, p, number.value, m, approximate=bool(m.groupdict().get("ap")) or number.approximate)
            return None
    if (m := _extremes(r.low)) is not None:  # "64 in the smallest class, 3,200 in the largest"
        _set_ratio(r, p, m[1], m[0], approximate=False)
        return None
    if (m := _OUTNUMBER.search(r.low)) is not None:  # "normal outnumbers pneumonia three to one"
        a, b = read_count(m.group("a")).value, read_count(m.group("b")).value
        if min(a, b) > 0:
            _set_ratio(r, p, max(a, b) / min(a, b), m, approximate=bool(m.groupdict().get("ap")))
            return None
    if (m := _FOR_EVERY.search(r.low)) is not None:  # "one malignant for every four benign"
        a, b = read_count(m.group("a")).value, read_count(m.group("b")).value
        if min(a, b) > 0:
            _set_ratio(r, p, max(a, b) / min(a, b), m, approximate=False)
            return None
    if (m := _BUT_ONLY.search(r.low)) is not None:  # "1805 no DR but only 193 severe"
        a, b = read_count(m.group("a")).value, read_count(m.group("b")).value
        if 0 < b < a:
            r.notes.append(f"{r.text[m.start():m.end()].strip()!r}: read as the largest and the smallest class")
            _set_ratio(r, p, a / b, m, approximate=False)
            return None
    for m in _RATIO_CHAIN.finditer(r.low):  # "1:1:3 ratio", "a 5:3:1 split": the largest over the smallest
        values = [float(v) for v in re.split(r"\s*:\s*", m.group("chain"))]
        if min(values) > 0 and _CHAIN_CUE.search(r.low[max(0, m.start() - 25):m.end() + 25]):
            _set_ratio(r, p, max(values) / min(values), m, approximate=bool(m.group("ap")))
            return None
    for regex in _RATIO_PAIR:
        for m in regex.finditer(r.low):
            before, window = r.low[max(0, m.start() - 12):m.start()], r.low[max(0, m.start() - 30):m.end() + 30]
            if _NOT_A_RATIO.search(before) or _NOT_A_RATIO.search(r.low[m.end():m.end() + 14]) or _NOT_CLASSES.search(window):
                continue
            a, b = float(m.group("a").replace(",", "")), float(m.group("b").replace(",", ""))
            if regex is _RATIO_PAIR[3] and a + b != 100:
                continue
            if min(a, b) <= 0:
                raise ValueError(f"a class ratio needs two positive numbers, but the text says {r.text[m.start():m.end()].strip()!r}.")
            _set_ratio(r, p, max(a, b) / min(a, b), m, approximate=bool(m.groupdict().get("ap")))
            return None
    for m in _FRACTION.finditer(r.low):
        a, b = int(m.group("a")), int(m.group("b"))
        joined = r.low[m.start("a"):m.start("b")]
        if not 0 < a < b <= 10**6 or ("/" in joined and not m.group(0).endswith("of")) or \
                _NOT_CLASSES.search(_sentence_window(r.low, m.start(), m.end(), 30)):
            continue
        r.blank(m.start(), m.end())  # "1 in 20 scans": a share of the smallest class, not 20 images
        rough = bool(re.search(rf"(?<![a-z]){APPROX}\s*$", r.low[max(0, m.start() - 16):m.start()]))  # "roughly 1 in 5"
        return {"share": 100 * a / b, "start": m.start(), "end": m.end(), "approximate": rough}
    for m in _WORD_SHARE.finditer(r.low):
        clause = _clause(r.low, m.start(), m.end())
        if _PERCENT_NOT.search(clause) or not _PERCENT_CUE.search(clause) or _NOT_CLASSES.search(clause):
            continue
        if m.group("f"):
            times = _TIMES.get(m.group("n") or "a", 1)
            if m.group("f") == "half" and m.group("n") not in (None, "a", "one"):
                continue
            share = _SHARE_WORDS[m.group("f")] * times
        else:
            share = 100 * _SMALL[m.group("a")] / _SMALL[m.group("b")]
        if not 0 < share < 100:
            continue
        r.blank(m.start(), m.end())
        return {"share": share, "start": m.start(), "end": m.end(), "approximate": bool(m.group("ap") or m.group("ap2"))}
    found: list[tuple[float, re.Match[str]]] = []  # "grade 0 50%, grade 4 5%": each class share said
    for m in _PERCENT.finditer(r.low):
        clause = _clause(r.low, m.start(), m.end())
        if _BRACKETED.fullmatch(clause.strip()):  # "skewed towards grade 0 (73%)": the words before the bracket say of what
            clause = _clause(r.low, r.low.rfind("(", 0, m.start()), r.low.rfind("(", 0, m.start())) + clause
        named = m.group("name") and m.group("name") not in _NOT_NAMES and not re.fullmatch(_UNIT_WORDS, m.group("name"))
        # after a class share, the next ones of its sentence are the other classes' ("normal 60%, viral 25%")
        listed = bool(found) and not re.search(r"[.!?\n]", r.low[found[-1][1].end():m.start()])
        if found and not listed:
            break  # a share in another sentence is of something else ("70% benign. 20% of the images are blurry")
        if _PERCENT_NOT.search(clause) or not (named or listed or _PERCENT_CUE.search(clause)):
            continue
        share = float(m.group("p").replace(",", "."))
        if not 0 < share < 100:
            raise ValueError(f"a class share must lie between 0 and 100 %, but the text says {r.text[m.start():m.end()]!r}.")
        found.append((share, m))
    if not found:
        return None
    for _, m in found:
        r.blank(m.start(), m.end())
    first, last = found[0][1], found[-1][1]
    return {"share": found[0][0], "shares": [x for x, _ in found], "start": first.start(), "end": last.end(),
            "approximate": any(m.group("ap") not in (None, "only", "just") for _, m in found)}


_EXTREME_WORDS = {"smallest": re.compile(r"\b(?:smallest|rarest|least common)\b"),
                  "largest": re.compile(r"\b(?:largest|biggest|most common|commonest)\b")}
_NUMBER = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?![\d.])|(?<![\w.,])\d+(?![\d.,]\d)")


def _extremes(low: str) -> tuple[re.Match[str], float] | None:
    """The sizes of the smallest and the largest class where both are given ("64 in the smallest
    class, 3,200 in the largest"): each word takes the nearest number in its clause. Returns a
    match spanning both and largest / smallest."""
    found, chosen = {}, set()
    for name, word in _EXTREME_WORDS.items():
        w = word.search(low)
        if w is None:
            return None
        start, end = _clause_bounds(low, w.start(), w.end())
        numbers = [n for n in _NUMBER.finditer(low, start, end)]
        if not numbers:
            return None
        n = min(numbers, key=lambda n: min(abs(n.start() - w.end()), abs(w.start() - n.end())))
        found[name] = (float(n.group(0).replace(",", "")), min(n.start(), w.start()), max(n.end(), w.end()))
        chosen.add(n.start())
    if len(chosen) < 2:  # one number for both ("largest class 10x smallest"): no two sizes given
        return None
    (small, s0, s1), (large, l0, l1) = found["smallest"], found["largest"]
    if small <= 0 or large < small:
        return None
    start, end = min(s0, l0), max(s1, l1)
    return re.compile(re.escape(low[start:end])).search(low, start), large / small


def _clause_bounds(low: str, start: int, end: int) -> tuple[int, int]:
    """Where the clause holding low[start:end] begins and ends."""
    left = max([m.end() for m in _CLAUSE.finditer(low, 0, start)] or [0])
    right = min([m.start() for m in _CLAUSE.finditer(low, end)] or [len(low)])
    return left, right


def _clause(low: str, start: int, end: int) -> str:
    left, right = _clause_bounds(low, start, end)
    return low[left:right]


def _set_ratio(r: Reading, p: TaskProfile, ratio: float, m: re.Match[str], approximate: bool) -> None:
    if not math.isfinite(ratio) or ratio < 1:
        raise ValueError(f"the imbalance ratio (largest / smallest class) must be >= 1, but the text says "
                         f"{r.text[m.start():m.end()].strip()[:80]!r}.")
    p.imbalance_ratio = ratio
    r.take("imbalance_ratio", m.start(), m.end(), approximate=approximate)


# The classes are as large as each other, said in words.
BALANCED = re.compile(r"\bbalanced\b|\b(?:split|divided|distributed)\s+(?:equally|evenly)\b|\b(?:equally|evenly)\s+"
                      r"(?:split|divided|distributed)\b|\bequal (?:numbers|counts|sizes|shares)\b|\b50\s*/\s*50\b")


def finish_imbalance(r: Reading, p: TaskProfile, pending: dict[str, Any] | None) -> None:
    """A percentage read earlier, now that the class count is known; else a word ("imbalanced", "balanced")."""
    if "imbalance_ratio" in r.said:
        return
    if pending:
        share, k, given = pending["share"], p.n_classes, pending.get("shares") or [pending["share"]]
        rest = 100 - sum(given)
        if 1 < len(given) < k and rest > 0:  # "grade 0 50%, grade 4 5%" of 5: the other classes share the rest
            _set_shares(p, given + [rest / (k - len(given))] * (k - len(given)))
            r.notes.append(f"{r.text[pending['start']:pending['end']].strip()!r} with {k} classes: the other classes "
                           "are taken as equal in size")
            r.take("imbalance_ratio", pending["start"], pending["end"], approximate=pending["approximate"])
            return
        if 1 < len(given) == k and abs(rest) <= 2:  # every class's share said
            _set_shares(p, given)
            r.take("imbalance_ratio", pending["start"], pending["end"], approximate=pending["approximate"])
            return
        # one class this share, the others equal: whether it is the largest or the smallest, the ratio follows
        _set_shares(p, [share] + [(100 - share) / (k - 1)] * (k - 1))
        if k > 2:
            r.notes.append(f"{r.text[pending['start']:pending['end']].strip()!r} with {k} classes: the other classes "
                           "are taken as equal in size")
        r.take("imbalance_ratio", pending["start"], pending["end"], approximate=pending["approximate"])
        return
    m = (_SMALLEST_SIZE.search(r.low) or _FEW_OF_THEM.search(r.low)) if "n_instances" in r.said else None
    g = "n2" if m is not None and m.groupdict().get("n2") else "n"
    if m and (n := _whole(r, m, g, "the smallest class", 1, MAX_IMAGES)) and n[0] * p.n_classes < p.n_instances:
        # "some classes have fewer than 10 images", 47,000 in all: the others share the rest
        _set_shares(p, [n[0]] + [(p.n_instances - n[0]) / (p.n_classes - 1)] * (p.n_classes - 1))
        r.take("imbalance_ratio", m.start(), m.end(), approximate=True, blank=False)
        r.notes.append(f"{r.text[m.start():m.end()].strip()!r} with {p.n_instances:,} images in {p.n_classes} classes: "
                       "the other classes are taken as equal in size")
        return
    m = _ONE_CLASS.search(r.low) if "n_instances" in r.said and p.n_classes == 2 else None
    if m and (n := _whole(r, m, "n", "one class's size", 1, MAX_IMAGES)) and 0.01 <= n[0] / p.n_instances < 1 and \
            m.group("w") not in _NOT_NAMES and not re.fullmatch(rf"{_UNIT_WORDS}|{_OTHER_THINGS}|{IMAGE_NOUNS}|{CLASS_NOUNS}|"
                                                                 r"patients|subjects|people|organs|regions|structures",
                                                                 m.group("w")):
        # "650 images, 168 glaucoma": two classes, one of them this size
        _set_shares(p, [n[0], p.n_instances - n[0]])
        r.take("imbalance_ratio", m.start(), m.end(), approximate=n[1], blank=False)
        return
    m = _HINT.search(r.low)
    if m:
        p.imbalance_ratio = HINTED_RATIO
        words = r.take("imbalance_ratio", m.start(), m.end(), blank=False)
        r.notes.append(f"'{words}' without a ratio: imbalance ratio taken as {p.imbalance_ratio:g}")
        return
    m = BALANCED.search(r.low)
    if m:
        p.imbalance_ratio = 1.0
        r.take("imbalance_ratio", m.start(), m.end(), blank=False)


# ------------------------------------------------------------------------------ classes
_WORD_COUNT = r"(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|\d{1,4})"
_CLASS_COUNT = (
    re.compile(rf"(?P<n>{COUNT})\s*-?\s*{_FILLER}{CLASS_NOUNS}\b"),
    re.compile(rf"(?P<n>{COUNT})\s*-?\s*(?:way|grade|category|label|type|stage|level|tier|group|point)\b"),
    re.compile(r"(?<![\w.])(?P<n>\d{1,3})\s*cls\b"),  # "7cls"
    re.compile(r"\b(?:number of (?:classes|categories|labels)|num[_ ]?classes|n[_ ]?classes|classes|categories|labels)"
               rf"\s*(?::|=|is|are|of)\s*(?P<n>{_WORD_COUNT})\b(?!\s*(?:-|to|through)\s*\d|-\w|\s*,\s*\d)"),
)
_BINARY = re.compile(r"\bbinary\b|\byes\s*(?:/|or)\s*no\b|\bpresent\s*(?:/|or|vs\.?|versus)\s*absent\b|"
                     r"\bpositive\s*(?:/|or|vs\.?|versus)\s*negative\b")
_LABEL = r"(?:[a-z]{1,3}\s?\d{1,2}|\d{1,2}|[ivx]{1,5}|[a-e])"
_SCALE = (r"(?:(?:kellgren[- ]lawrence|kl|[a-z]{1,4}-?rads|gleason|who|t[o\u00f6]nnis|severity|dr)\s+)?(?:graded|grading|"
          r"grades?|staged|staging|stages?|levels?|scored|scores?|scale|classes|categories|tiers?|grade groups?|patterns?|"
          r"densit(?:y|ies)|labell?ed|rated|annotated)|\bkl\b|"
          r"\b[a-z]{1,4}-?rads\b|\bkellgren[- ]lawrence\b|\bt[o\u00f6]nnis\b")
_RANGE = (
    re.compile(rf"\b(?:{_SCALE})\s*(?:from\s+|of\s+)?\(?\s*(?:(?:kl|grade|stage|level)\s*)?(?P<a>{_LABEL})\s*(?:-|to|through|thru|until|\.\.)\s*"
               rf"(?:(?:grade|stage|level|kl)\s*)?(?P<b>{_LABEL})(?![\w.])"),
    re.compile(rf"(?<![\w.-])(?P<a>{_LABEL})\s*(?:-|to|through)\s*(?P<b>{_LABEL})\s+(?:kl\s+|kellgren[- ]lawrence\s+)?"
               r"(?:grades|stages|levels|classes)\b"),
)
_GRADE_LIST = re.compile(rf"\b(?:{_SCALE})\s+(?P<l>{_LABEL}(?:\s*(?:,|vs\.?|versus|/)\s*{_LABEL})+"
                         rf"(?:\s*,?\s*(?:and|or)\s+{_LABEL})?)(?![\w.])")
# "(0/1/2/3/4)", "grades 1/2/3": three or more consecutive small numbers (a split, "80/10/10", is not)
_SLASH_LABELS = re.compile(r"(?<![\w./])(?P<l>\d{1,2}(?:\s*/\s*\d{1,2}){2,})(?![\w./])")
# "Gleason 3+3 / 3+4 / 4+3 / 4+4": scores written as sums, one class each
_SUM_LABELS = re.compile(r"(?<![\w./+])(?P<l>\d\s*\+\s*\d(?:\s*(?:/|,|or|vs\.?)\s*\d\s*\+\s*\d)+)(?![\w./+])")
# "multi-class (5)", "normal + 3 disease classes" (the normal class and three more)
_COUNT_IN_BRACKETS = re.compile(r"\bmulti-?\s?class\s*\(\s*(?P<n>\d{1,3})\s*\)")
# "3 diseases + normal", "(5 + none)", "four subtypes plus healthy": the classes named and the normal one after them
_NORMAL_CLASS = r"(?:a\s+|the\s+)?(?:normal|healthy|controls?|negative|background|no finding|none|no disease|no tumou?r)\b"
_CLASSES_PLUS = re.compile(rf"(?P<n>{COUNT})\s+(?:[a-z-]+\s+)?(?:{CLASS_NOUNS}|diseases|findings|subtypes|conditions|"
                           rf"pathologies|tumou?rs|lesions)(?:\s+of\s+(?:[a-z-]+\s+){{0,2}}?[a-z-]+)?\s*(?:\+|plus)\s*"
                           rf"[\"'\u201c]?{_NORMAL_CLASS}"  # ('3 types of brain tumour plus "no tumour"')
                           rf"|\(\s*(?P<n2>\d{{1,2}})\s*(?:\+|plus)\s*{_NORMAL_CLASS}\s*\)")
_PLUS_CLASSES = re.compile(rf"\b(?:normal|healthy|controls?|negative|background|benign|no finding|none)\s*(?:\+|plus)\s*"
                           rf"(?P<n>{COUNT})\s+(?:[a-z-]+\s+)?{CLASS_NOUNS}\b")
# "grade 1, grade 2, grade 3", "stage I, stage II or stage III": one label word said before each label.
_REPEATED_LABELS = re.compile(rf"\b(?P<w>grade|stage|level|class|type|category|kl|tier|group)\s*{_LABEL}"
                              rf"(?:\s*(?:,\s*(?:and|or)?|and|or)\s*(?P=w)\s*{_LABEL})+(?![\w.])")
_ITEM = r"(?!(?:and|or|but)\b)[a-z][\w'-]*(?:\s+(?!(?:and|or|but)\b)[a-z][\w'-]*){0,2}"  # "bacterial pneumonia", never "x and"
_LIST = rf"{_ITEM}(?:\s*,\s*{_ITEM})+(?:\s*,?\s+(?:and|or)\s+{_ITEM})?|{_ITEM}\s+(?:and|or)\s+{_ITEM}"
_NAMED = (
    re.compile(rf"\(\s*(?P<l>{_LIST})\s*\)"),
    re.compile(rf"\b(?:classes|labels|categories|types|diagnoses|outcomes)\s*(?:are|include|:|=|-)\s*:?\s*[{{\[]?\s*(?P<l>{_LIST})"),
    re.compile(r"\b(?:classif\w*|categori[sz]\w*|sort\w*|split\w*|divid\w*|group\w*|separat\w*|label\w*|tag\w*|"
               rf"grad\w*|diagnos\w*|identif\w*|assign\w*|mark\w*)\b(?:[^.;:()]|\([^().;:]{{0,20}}\)){{0,40}}?\b(?:into|as)\s+(?:either\s+)?"
               rf"(?:one of\s+)?(?P<l>{_LIST})"),
    re.compile(rf"\b(?:separate|distinguish|differentiate|discriminate)\s+(?:between\s+)?(?P<l>{_LIST})"),
    re.compile(rf"\b(?:between|among|amongst|each of|one of|either)\s+(?:the\s+)?(?P<l>{_LIST})"),
    re.compile(rf":\s*(?P<l>{_ITEM}(?:\s*,\s*{_ITEM}){{2,}}(?:\s*,?\s+(?:and|or)\s+{_ITEM})?)(?=\s*(?:[.;)\n\u2014\u2013]|\s-\s|$))"),
    # "is the knee x-ray healthy, mild, moderate or severe?": the options a question about an image lists
    re.compile(rf"\b(?:is|are)\s+(?:it|they|(?:the|each|this|an?|my|these|every)\s+(?:[\w-]+\s+){{0,3}}?{IMAGE_NOUNS})\s+"
               rf"(?:(?:showing|shows|show|of|with)\s+)?(?:an?\s+)?(?P<l>{_ITEM}(?:\s*,\s*{_ITEM})+\s*,?\s+or\s+{_ITEM})(?=\s*\?)"),
)
_FROM = re.compile(r"\b(?:distinguish\w*|differentiat\w*|discriminat\w*|tell(?:s|ing)?|told|separat\w*)\s+(?P<a>(?:[a-z][\w'-]*\s+){1,3}?)"
                   r"(?:apart\s+)?from\s+(?P<b>[a-z][\w'-]*)")
_SLASHED = re.compile(r"(?<![\w/.])[a-z][\w'-]*(?:\s*/\s*(?:[a-z][\w'-]*\s+){0,2}[a-z][\w'-]*)+(?![\w/])")
_VS_WORD = r"(?!vs\b|versus\b)[a-z][\w'-]*"
_VERSUS = re.compile(rf"[a-z][\w'-]*(?:\s+(?:vs\.?|versus)\s+(?:{_VS_WORD}\s+){{0,2}}{_VS_WORD})+")
_CHOICE = re.compile(r"\b(?:use|using|try|trying|choose|pick|prefer|run|deploy|buy|which)\b")
_OR_PAIR = re.compile(r"(?<![\w-])(?P<a>[a-z][\w'-]+)\s+or\s+(?P<b>[a-z][\w'-]+)")
_MORE_THAN_TWO = re.compile(rf"\bmulti-?\s?class\b|\b(?:several|a few|a handful of|many|multiple|various)\s+(?:[a-z]+\s+)?"
                            rf"{CLASS_NOUNS}\b")


# A grading scale named without its range or a count: its grades as it is usually used (read last, after any
# count, range or list the text gives). Not BI-RADS alone: its assessment categories (0-6) and its density
# grades (A-D) differ.
# "F0-F4", "KL0-KL4": a range of labels sharing their letters, said without a scale word. Not C, L, S or T alone:
# "L1-L5", "C1-C7" are vertebrae (and "T1-T4" may be).
_PREFIXED_RANGE = re.compile(r"(?<![\w.-])(?P<p>(?![clst]\d)[a-z]{1,2})(?P<a>\d{1,2})\s*(?:-|to|through)\s*(?P=p)(?P<b>\d{1,2})(?![\w.])")
_KNOWN_SCALES: tuple[tuple[re.Pattern[str], int, str], ...] = (
    (re.compile(r"\bmetavir\b(?:\s+(?:fibrosis\s+)?(?:stage|score|grade)\w*)?"), 5, "F0-F4"),
    (re.compile(r"\bkellgren[- ]lawrence\b(?:\s+grad\w*)?|\bkl\s*-?\s*grad\w*"), 5, "0-4"),
    (re.compile(r"\bt[o\u00f6]nnis\b(?:\s+grad\w*)?"), 4, "0-3"),
    (re.compile(r"\bfazekas\b(?:\s+(?:grad|scor|scal)\w*)?"), 4, "0-3"),
    (re.compile(r"\bpfirrmann\b(?:\s+grad\w*)?"), 5, "I-V"),
    (re.compile(r"\bpi-?rads\b"), 5, "1-5"),
    (re.compile(r"\bti-?rads\b"), 5, "TR1-TR5"),
    (re.compile(r"\bbosniak\b(?:\s+(?:class|categor|grad)\w*)?"), 5, "I, II, IIF, III, IV"),
    (re.compile(r"\bsalter[- ]harris\b(?:\s+(?:type|class|grad)\w*)?"), 5, "I-V"),
    (re.compile(r"\bbi-?rads\s+(?:breast\s+)?density\b|\bbreast density\s+(?:categor|grad|class)\w*"), 4, "A-D"),
    (re.compile(r"\b(?:isup|gleason)\s+grade\s+groups?\b"), 5, "1-5"),
    (re.compile(r"\bdiabetic retinopathy\s+(?:severity\s+)?grad\w*|\b(?:icdr|dr)\s+(?:severity\s+)?grad\w*"), 5,
     "no DR, mild, moderate, severe, proliferative"),
)

# "11 organs", said of images of an organ ("organ CT crops"): a count of the kinds of thing shown (see read_classes).
_KIND_COUNT = re.compile(rf"(?P<n>{COUNT})\s+(?P<w>(?!(?:{IMAGE_NOUNS}|{_UNIT_WORDS}|patients|subjects)\b)[a-z][a-z-]+s)\b")


def read_classes(r: Reading, p: TaskProfile) -> None:
    """The class count: a number, "binary", a range of grades, or a list of class names."""
    for regex, extra in ((_PLUS_CLASSES, 1), (_CLASSES_PLUS, 1), (_COUNT_IN_BRACKETS, 0)):
        if (m := regex.search(r.low)) and (n := _whole(r, m, "n" if m.group("n") else "n2", "n_classes", 1,
                                                       MAX_CLASSES - extra)):
            return _set_classes(r, p, n[0] + extra, m.start(), m.end(), approximate=n[1])
    for regex in _CLASS_COUNT:
        for m in regex.finditer(r.low):
            n = _whole(r, m, "n", "n_classes", 2, MAX_CLASSES)
            if n is not None:
                return _set_classes(r, p, n[0], m.start(), m.end(), approximate=n[1])
    m = _BINARY.search(r.low)
    if m:
        return _set_classes(r, p, 2, m.start(), m.end())
    for regex in _RANGE:
        for m in regex.finditer(r.low):
            span = label_span(m.group("a"), m.group("b"))
            if span is not None and span <= MAX_GRADES:
                return _set_classes(r, p, span, m.start(), m.end())
    m = _GRADE_LIST.search(r.low)
    for s in _SLASH_LABELS.finditer(r.low) if m is None else ():
        values = [int(x) for x in re.split(r"\s*/\s*", s.group("l"))]
        if values[0] in (0, 1) and values == list(range(values[0], values[0] + len(values))):
            return _set_classes(r, p, len(values), s.start(), s.end())
    for s in _SUM_LABELS.finditer(r.low) if m is None else ():
        labels = [re.sub(r"\s+", "", x) for x in re.split(r"\s*(?:/|,|or|vs\.?)\s*", s.group("l"))]
        if len(set(labels)) == len(labels) <= MAX_GRADES:
            return _set_classes(r, p, len(labels), s.start(), s.end())
    if m is None and (m := _REPEATED_LABELS.search(r.low)):
        return _set_classes(r, p, len(re.findall(rf"\b{m.group('w')}\b", m.group(0))), m.start(), m.end())
    if m:
        return _set_classes(r, p, len(re.split(r"\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+|\s*(?:vs\.?|versus|/)\s*",
                                                m.group("l"))), m.start(), m.end())
    found = _named(r.low)
    if found:
        return _set_classes(r, p, found[0], found[1], found[2], blank=False)
    for m in _KIND_COUNT.finditer(r.low):  # "organ CT crops, 11 organs": the kinds of thing the images show
        noun = m.group("w")[:-1]
        if re.search(rf"\b{re.escape(noun)}\s+(?:[a-z-]+\s+)?{IMAGE_NOUNS}\b", r.low) and (
                n := _whole(r, m, "n", "n_classes", 2, 100)):
            return _set_classes(r, p, n[0], m.start(), m.end(), approximate=n[1])
    for m in _PREFIXED_RANGE.finditer(r.low):  # "F0-F4", "G1-G3": one letter-and-number label per class
        a, b = int(m.group("a")), int(m.group("b"))
        if 2 <= b - a + 1 <= 10:
            return _set_classes(r, p, b - a + 1, m.start(), m.end())
    for regex, n, labels in _KNOWN_SCALES:  # "by KL grade": the scale's grades, as it is usually used
        if m := regex.search(r.low):
            r.notes.append(f"{r.text[m.start():m.end()].strip()!r}: the scale's {n} grades ({labels}), as it is usually "
                           "used; say the count if you use fewer")
            return _set_classes(r, p, n, m.start(), m.end())
    m = _MORE_THAN_TWO.search(r.low)
    if m:
        p.n_classes = 3
        r.notes.append(f"'{r.text[m.start():m.end()].strip()}' gives no count: n_classes assumed to be 3; say how many")
    return None


def _names_ok(names: list[str]) -> bool:
    # "c1 vs c2": the app's candidate ids, not two classes
    return len(names) >= 2 and all(n and not (set(n.split()) & _NOT_NAMES) and not re.fullmatch(r"c\d{1,2}", n)
                                   for n in names)


def _trimmed(name: str) -> str:
    """A listed name without the words after it that name no class ("malignant breast ultrasound")."""
    words = name.split()
    while len(words) > 1 and words[-1] in _NOT_NAMES:
        words.pop()
    return " ".join(words)


_LISTS_OTHER = re.compile(rf"\b{_OTHER_THINGS}(?:\s+(?:per|each|for each|a)\s+[a-z]+)?\s*$")  # "views per patient (PA, lateral)"
_SORTS = re.compile(r"\b(?:classif\w*|sort\w*|recogni[sz]\w*|identif\w*|distinguish\w*|predict\w*|categori[sz]\w*|tell\w*)\b")


def _named(low: str) -> tuple[int, int, int] | None:
    """(count, start, end) of the first list of class names, by the kinds of list in order."""
    for i, regex in enumerate(_NAMED):
        for m in regex.finditer(low):
            if i == 0 and _LISTS_OTHER.search(low, 0, m.start()) and not _SORTS.search(re.split(r"[,;.!?\n]", low[:m.start()])[-1]):
                continue  # "3 views (CC, MLO, ML)": the views, not the classes ("sort the views (A2C, A4C)": they are)
            names = [_trimmed(x) for x in re.split(r"\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+", m.group("l"))]
            if i == 1 or _names_ok([n.split()[-1] if n else n for n in names]):  # 1: "classes: a, b and c" says so
                return len(names), m.start("l") - (1 if low[m.start() : m.start() + 1] == "(" else 0), m.end()
    m = _FROM.search(low)
    if m and _names_ok([m.group("a").split()[-1], m.group("b")]):
        return 2, m.start(), m.end()
    for regex, sep, gate in ((_SLASHED, r"\s*/\s*", ("/",)), (_VERSUS, r"\s+(?:vs\.?|versus)\s+", ("vs", "versus"))):
        for m in regex.finditer(low) if mentions(low, *gate) else ():
            parts = re.split(sep, m.group(0))
            touching = [w for a, b in zip(parts, parts[1:], strict=False) for w in (a.split()[-1], b.split()[0])]
            if _names_ok(touching) and all(len(w) >= 2 for w in touching):
                return len(parts), m.start(), m.end()
    for m in _OR_PAIR.finditer(low):
        if _CHOICE.search(_clause(low, m.start(), m.start())):
            continue  # "should I use X or Y": a choice of set-up, not two classes
        if _names_ok([m.group("a"), m.group("b")]) and not re.search(_UNIT_WORDS + r"$", m.group("b")):
            return 2, m.start(), m.end()
    return None


def _set_classes(r: Reading, p: TaskProfile, n: int, start: int, end: int, *, approximate: bool = False,
                 blank: bool = True) -> None:
    p.n_classes = n
    r.take("n_classes", start, end, approximate=approximate, blank=blank)


# ------------------------------------------------------------------------------ class sizes and images
# ("206 with fracture": a class named by what its images have)
_SIZED = rf"{COUNT}\s+(?:with(?:out)?\s+(?:an?\s+)?)?(?!(?:{_UNIT_WORDS}|{_OTHER_THINGS})\b)[a-z][\w'-]*" \
         r"(?:\s+(?!(?:and|or|with|of|in|from|to|vs|versus|per|each|are|is|were|images?)\b)[a-z][\w'-]*(?=\s*(?:,|;|\band\b|\)|$)))?"
# "300 benign and 60 malignant", "300 benign, 60 malignant", "500 benign 100 malignant", "2,700 benign nevi and 500
# melanomas" (a name of two words before the next count)
_SIZES = re.compile(rf"(?:(?P<ap>{APPROX})\s*)?{_SIZED}(?:\s*(?:,\s*and|,|;|\+|/|\band)?\s*{_SIZED})+")
# "melanoma 320, nevus 2,100, seborrheic keratosis 410", "normal: 1,200; pneumonia: 3,400": the name first, then
# digits (a word number after a name is a label: "grade two"); not a field, a backbone or a device ("resnet 50").
_NAME_N = (r"(?P<name>[a-z][a-z'-]+(?:\s+(?!(?:is|are|has)\b)[a-z][a-z'-]+)?)\s*(?::|=|-|\bis\b|\bare\b|\bhas\b)?\s*(?:~\s*|about\s+|around\s+)?"
           r"\(?\s*(?P<n>\d{1,3}(?:,\d{3})+(?!\d|,\d)|\d+(?:\.\d+)?\s*k\b|"
           rf"\d+(?![\d.,]\d))\s*\)?(?!\s*(?:{_UNIT_WORDS}|{_OTHER_THINGS}|[\w%])\b)")
# (pairs apart by commas or "and"; by blanks only where each says "name=count": "normal=3,270 pneumonia=1,400")
_NAME_SIZES = re.compile(rf"{_NAME_N}(?:(?:\s*(?:,\s*and|,|;|\band)\s*|\s*(?<=\s)(?=[a-z][a-z'-]+\s*[=:]\s*\d))"
                         rf"{_NAME_N.replace('?P<name>', '').replace('?P<n>', '')})+")
_NOT_A_SIZE_NAME = frozenset("""
grade grades stage stages level levels class type category group tier kl rads step version python cuda rtx gtx titan quadro
a100 v100 t4 p100 h100 m1 m2 m3 windows ubuntu lite lite0 lite1 lite2 lite3 lite4 b0 b1 b2 b3 b4 resolution size sizes n k
seed seeds fold folds top year years age ages budget limit limits batch epoch epochs rate lr params parameters memory
""".split())
_PER_CLASS = (
    re.compile(rf"(?:(?P<ap>{APPROX})\s*)?(?P<n>{COUNT})\s*(?P<plus>\+)?\s*(?:(?:[a-z-]+\s+){{0,2}}{IMAGE_NOUNS}\s*)?"
               r"(?:(?:per|/|a|for each|in each|of each|for every|in every|each)\s*(?:class|category|label|type|grade|group|"
               r"condition|diagnosis|kind)\b"
               # "400 images in each of 12 categories", "for each of the classes"
               # (the class count read already is blanked out: "in each of    ")
               r"|(?:in|for)\s+each\s+of\s+(?:the\s+|its\s+|their\s+)?(?:(?:(?:\d{1,3}|[a-z]+)\s+)?(?:classes|categories|"
               r"labels|types|grades|groups|conditions|diagnoses|kinds)\b|\s{3,}))"),
    re.compile(rf"(?:(?P<ap>{APPROX})\s*)?(?P<n>{COUNT})\s+(?:(?:[a-z-]+\s+){{0,2}}{IMAGE_NOUNS}\s+)?(?:each|of each)\b"
               r"(?!\s*(?:minute|hour|second|epoch))"),
    re.compile(r"\b(?:each|every)\s+(?:class|category|label|type|grade|group|condition|diagnosis|kind)\s+(?:has|have|with|"
               rf"contains?|holds?)\s+(?:(?P<ap>{APPROX})\s*)?(?P<n>{COUNT})"),
    # "8 classes each with 1000 images", "5 grades, each having about 300"
    re.compile(r"\b(?:classes|categories|labels|types|grades|groups|conditions|diagnoses|kinds|(?:sub-?)?folders|"
               r"directories)\s*,?\s*(?:each|every one)\s+"
               rf"(?:(?:with|has|having|of|containing|holding)\s+)?(?:(?P<ap>{APPROX})\s*)?(?P<n>{COUNT})"
               rf"(?:\s+(?:[a-z-]+\s+)?{IMAGE_NOUNS}\b)?"),
)
# "40 to 400 images per class", "50-500 per category", "between 40 and 400 images per class", "class sizes vary
# from 40 to 1,500": the smallest and the largest class.
_A_CLASS = r"(?:class|category|label|type|grade|group|condition|diagnosis|kind)"
_PER_CLASS_RANGE = (
    re.compile(
        rf"(?:(?P<ap>{APPROX})\s*)?(?:between\s+)?(?P<a>{COUNT})\s*(?:-|\u2013|to|and)\s*(?P<b>{COUNT})\s*"
        rf"(?:(?:[a-z-]+\s+)?{IMAGE_NOUNS}\s*)?(?:per|/|a|for each|in each|of each|for every|in every|each)\s*{_A_CLASS}\b"),
    re.compile(
        rf"\b{_A_CLASS}(?:es|ies|s)?(?:\s+sizes?)?\s+(?:vary|varies|varying|range|ranges|ranging|go|goes|going|run|runs)\s+"
        rf"(?:in\s+size\s+)?(?:from|between)\s+(?:(?P<ap>{APPROX})\s*)?(?P<a>{COUNT})\s*(?:-|\u2013|to|and)\s*"
        rf"(?P<b>{COUNT})(?:\s+(?:[a-z-]+\s+)?{IMAGE_NOUNS}\b)?"),
    # "12 classes ..., between 200 and 3,000 images each": "each" of the classes (read where the text names classes and
    # no studies just before: "300 patients with 20-40 slices each" is per study)
    re.compile(
        rf"(?:(?P<ap>{APPROX})\s*)?(?:between\s+)?(?P<a>{COUNT})\s*(?:-|\u2013|to|and)\s*(?P<b>{COUNT})\s+"
        rf"(?:[a-z-]+\s+)?{IMAGE_NOUNS}\s+each\b(?!\s*(?:minute|hour|second|epoch))"),
)
# "between 3 and 4 thousand knee x-rays", "3-4k images", "2,000 to 2,500 slices": a range of totals
_IMAGE_RANGE = re.compile(rf"(?<![\w.,/-])(?:between\s+)?(?P<lo>\d+(?:\.\d+)?(?:,\d{{3}})*(?:\s*k\b)?)\s*(?:-|\u2013|to|and)\s*"
                          rf"(?P<n>{COUNT})\s+{_FILLER}{IMAGE_NOUNS}\b(?!\s*(?:per|each|in each|for each|a)\b)")
_IMAGES = (
    re.compile(rf"(?:(?P<ap>{APPROX})\s*)?(?P<n>{COUNT})\s*(?P<plus>\+)?(?:-?ish)?\s*(?:-\s*)?{_FILLER}(?:[a-z]+-)?"
               rf"{IMAGE_NOUNS}\b"),
    re.compile(rf"\b(?:n|n_?images|num_?images|n_?samples|num_?samples|n_?imgs)\s*(?:[=:]|(?=[\u2248~]))\s*"
               rf"(?:(?P<ap>{APPROX})\s*)?(?P<n>{COUNT})(?!\d|\.\d)"),  # "n=1,200", "n = ~17k", "n≈1800.", "n_images=5,856"
    re.compile(rf"\b(?:dataset|data set|set|collection|cohort|total|sample size|corpus)\s+(?:of|with|size|is|has|:|=)?\s*"
               rf"(?:(?P<ap>{APPROX})\s*)?(?P<n>{COUNT})(?!\s*(?:{CLASS_NOUNS}|%|patients|gb|mb|px|minutes|hours)\b)"),
    re.compile(rf"(?:(?P<ap>{APPROX})\s*)?(?P<n>{COUNT})\s+(?:of them|in total|total|altogether|overall)\b"),
    re.compile(rf"\b{IMAGE_NOUNS}\s*(?::|=|of|-)?\s*(?:(?P<ap>{APPROX})\s*)?(?P<n>{COUNT})(?!\s*(?:{_UNIT_WORDS})\b)"),
    # "4k CT", "12k MRIs": a count in thousands before a modality's short name is its images
    re.compile(rf"(?:(?P<ap>{APPROX})\s*)?(?P<n>\d+(?:[.,]\d+)?\s*(?:k|m)\b)\s+(?:ct|mri|cxr|oct|us)s?\b(?!\s*-?\s*"
               r"(?:scanners?|machines?|protocols?|sequences?))"),
)
# The size of the smallest class, or a bound on it, said on its own ("some classes have fewer than 10 images").
_SMALLEST_SIZE = re.compile(
    r"\b(?:(?:the\s+)?(?:smallest|rarest)\s+(?:class|category|grade|group)|(?:some|a few|one|two|three)\s+(?:of the\s+)?"
    r"(?:classes|categories|grades|groups)|(?:some|a few|one|two|three)\s+of\s+(?:them|these|those)|(?!(?:it|we|i|they|this|that|dataset|data|set|collection|cohort|folder|"
    r"archive|everything)\b)[a-z][\w'-]*(?=\s+(?:class\s+)?(?:has|had|contains?)\s+(?:only|just)\b))"
    r"\s+(?:\w+\s+)?(?:has|have|had|with|contains?)\s+(?:only\s+|just\s+)?"
    rf"(?:(?:fewer|less)\s+than\s+|under\s+|below\s+|at\s+most\s+|about\s+|around\s+|~\s*)?(?P<n>{COUNT})")
# One class's size after the total: "6400 images, moderate only 64 of them" (not "but only 2,000 of them labelled").
_FEW_OF_THEM = re.compile(
    r"\b(?!(?:but|and|with|yet|of|which|where|though|although|however|so|while)\b)[a-z][\w'-]*\s+(?:(?:is|are|has|have|"
    rf"with)\s+)?(?:only|just)\s+(?P<n>{COUNT})\s+of\s+(?:them|these|those)\b(?!\s+(?:are\s+|were\s+|being\s+)?"
    r"(?:labell?ed|annotated|usable|used|clean|valid|verified|reviewed|for|in|kept|good|of high))"
    # "2,100 scans but only 150 are DME": one class's size said after the total
    rf"|\b(?:but|and|of which|with)\s+only\s+(?P<n2>{COUNT})\s+(?:of them\s+)?(?:are|is|were|show|have|has)\s+"
    r"(?!(?:labell?ed|annotated|usable|used|clean|valid|verified|reviewed|kept|good|blurry|corrupt\w*|missing)\b)"
    r"[a-z][\w'-]*")
# "2000 studies ~ 25 slices each", "300 patients with 40 images per patient": the studies times the images in each.
_STUDIES = r"(?:studies|patients|exams|examinations|volumes|scans|series|subjects|cases|wsis|slides|videos|clips|sequences|" \
           r"eyes|breasts|knees|hips|hands|lesions|nodules|specimens|biopsies|wounds)"
_A_STUDY = r"(?:study|patient|exam|examination|volume|scan|series|subject|case|slide|video|sequence|eye|breast|knee|hip|" \
           r"hand|lesion|nodule|specimen|biopsy|wound)"
# "2 images per eye" with no count of eyes: a count per study, never the total
_PER_STUDY_AFTER = re.compile(rf"\s*(?:each\b|(?:per|a|in each|for each|for every)\s+{_A_STUDY}\b)")
_VIEWS = rf"(?:{IMAGE_NOUNS}|views?|projections?)"  # "2 views per breast": images, counted per study only
_PER_STUDY = re.compile(
    rf"(?P<a>{COUNT})\s+{_STUDIES}\s*(?:,|with|x|\u00d7|of|at|and|each with)?\s*(?:(?P<ap>{APPROX})\s*)?"
    rf"(?:(?P<blo>\d+)\s*(?:-|\u2013|to)\s*)?(?P<b>{COUNT})\s+"  # ("20-40 slices each": about 30)
    rf"(?:[a-z]+\s+)?{_VIEWS}\s*(?:each\b|(?:per|a|in each)\s+{_A_STUDY}\b)"
    # "300 patients x 20 slices": a times sign between the two says per study alone
    rf"|(?P<a2>{COUNT})\s+(?:{_STUDIES}\s*(?:x|\u00d7|\*)|(?:clips|videos|volumes|sequences|series|stacks)\s+of)\s*"
    rf"(?:(?P<ap2>{APPROX})\s*)?(?P<b2>{COUNT})\s+(?:[a-z]+\s+)?{IMAGE_NOUNS}\b"
    # "2 views per breast, 4000 breasts": the count per study first
    rf"|(?P<b3>{COUNT})\s+(?:[a-z]+\s+)?{_VIEWS}\s*(?:per|a|for each|for every|of each|from each)\s+{_A_STUDY}\b"
    rf"[^.;\d]{{0,30}}?(?:(?P<ap3>{APPROX})\s*)?(?P<a3>{COUNT})\s+(?:[a-z]+\s+)?{_STUDIES}\b"
    # "3D CT volumes (n=420) sliced into 2D images (~60 per volume)": the studies counted in brackets
    rf"|{_STUDIES}\s*\(\s*n\s*[=:]\s*(?P<a4>{COUNT})\s*\)[^.;]{{0,60}}?(?:(?P<ap4>{APPROX})\s*)?(?P<b4>{COUNT})\s+"
    rf"(?:[a-z]+\s+)?(?:{_VIEWS}\s+)?(?:per|each|a|in each|for each)\s+{_A_STUDY}\b")
# After the total, one class's size: "650 images, 168 glaucoma", "1,200 scans, of which 300 malignant".
_ONE_CLASS = re.compile(rf"[,;(]\s*(?:of which\s+|of them\s+|including\s+|with\s+)?(?P<n>{COUNT})\s+(?:are\s+|is\s+)?"
                        r"(?P<w>[a-z][\w'-]*)\s*(?=[,;.)]|$|\s+(?:cases|images|ones)\b)")
_TILES = re.compile(rf"{COUNT}\s+(?:[a-z]+\s+)?(?:tiles?|patches|patch|crops?)\b")
# What a class holds, said just before a count: "some classes have fewer than", "the smallest class has only".
_OF_A_CLASS = re.compile(r"\b(?:class|classes|categor(?:y|ies)|grades?|groups?|labels?|of them|of these|of those)\s+(?:\w+\s+){0,2}?"
                         r"(?:has|have|had|with|contains?|containing)\s+(?:only\s+|just\s+)?(?:(?:fewer|less|more)\s+than\s+|"
                         r"under\s+|below\s+|over\s+|at\s+(?:most|least)\s+|about\s+|around\s+|~\s*)?$")
# "one slice per patient": the patients are the images.
_ONE_EACH = re.compile(rf"\b(?:one|a single|1)\s+(?:[a-z]+\s+)?{IMAGE_NOUNS}\s+(?:per|for each|from each|of each)\s+"
                       r"(?:patient|subject|participant|person|individual|case)\b")
_PATIENTS = re.compile(rf"(?P<n>{COUNT})\s+(?:patients|subjects|participants|people|individuals|pacientes|patienten)\b")
# A count in thousands or millions standing alone between commas ("pneumonia x-rays, ~17k, 2 classes") or after
# a field already read ("OCT 4 classes 80k,": the class count is blanked by then): in a
# task text nothing else is counted in thousands without a noun, so it is the images (said so in a note).
_BARE_THOUSANDS = re.compile(rf"(?:^|[,;:(|]|\band\b|\b{CLASS_NOUNS}|(?<=\s{{4}})|\b(?:mris?|cts?|x-?rays?|xrays?|cxrs?|"
                             r"ultrasound|oct|fundus|dermoscopy|histology|histopathology|mammograms?|endoscopy|"
                             rf"microscopy|images|imgs|photos|scans))\s*(?:(?P<ap>{APPROX})\s*)?(?<![$\u20ac\u00a3])"
                             r"(?P<n>\d+(?:[.,]\d+)?\s*(?:k|m)\b)\s*(?=[,;.)|]|$)"
                             # telegraphic: "histo 9cls 100k 224px", "x-ray 14 classes multi label 112k"
                             r"|(?<=\s)(?<![$\u20ac\u00a3])(?P<n2>\d+(?:\.\d+)?k)(?=\s+\d+\s*(?:px|x\d)|\s{4}|\s*$)"
                             # a count written with thousands separators, closing its clause: "infected/uninfected 27,558 —"
                             r"|(?<![\w$\u20ac\u00a3.,])(?P<n3>\d{1,3}(?:,\d{3})+)(?![\d,.]\d)(?=\s*(?:[,;.)|\u2014\u2013]|\s-\s|$))")


# "fracture (n=1,200) vs no fracture (n=3,400)": a count in brackets after each class (two or more: the sizes).
_N_EACH = re.compile(rf"\(\s*n\s*[=:]\s*(?P<ap>~|≈|about\s+)?(?P<n>{COUNT})\s*(?:{IMAGE_NOUNS})?\s*\)")
# "437/210/133 per class", "with 437 / 210 / 133 images in each class": the class sizes, in order.
_SLASH_SIZES = re.compile(r"(?<![\w.,/])(?P<l>\d[\d,]*(?:\s*/\s*\d[\d,]*)+)\s*(?:" + IMAGE_NOUNS + r"\s+)?"
                          r"(?:per|in each|for each|of each|each)\s*(?:class|category|label|type|grade|group)\b"
                          # "counts 500/300/120/40", "class sizes: 437/210/133": the cue before the list
                          r"|\b(?:(?:class|category|group)\s+(?:sizes?|counts?)|counts?)\s*(?:are|of|:|=)?\s*"
                          r"(?P<l2>\d[\d,]*(?:\s*/\s*\d[\d,]*)+)(?![\w/])")


# "5 classes: 2000, 1500, 800, 300, 120 images respectively", "class sizes 500, 200 and 80": one size per class,
# as a comma list (a space after each comma: "2,000" is one number).
# Listed counts followed by their images ("1.1k, 800 and 650 CT slices" from three sites) add up to the total
# either way; they are class sizes only where the text says so.
_NUM = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+(?:\.\d+)?k\b|\d+)"
_LIST_SIZES = re.compile(rf"(?<![\w.,/+-])(?P<l>{_NUM}(?:\s*[,;]\s+{_NUM}|\s+\+\s+{_NUM})+(?:\s*,?\s+and\s+{_NUM})?)(?!\w|[.,/]\d|\s*%)\s*"
                         rf"(?P<noun>(?:[a-z-]+\s+)?{IMAGE_NOUNS}\b)?\s*(?P<resp>respectively)?")
_LIST_CUE = re.compile(rf"(?:\b(?:class|category|group)\s+(?:sizes?|counts?)|\bper (?:class|category)|\b(?:sizes?|counts?)|"
                       rf"\b{CLASS_NOUNS}\s*[:(]|\b{CLASS_NOUNS}\s+(?:with|having|containing|holding))\s*(?:are|of|is)?\s*[:=]?\s*$")


# "10 folders, each ~500 images": a folder per class, as torchvision's ImageFolder reads a dataset (not "3 folders
# (train, val, test)").
_FOLDERS = re.compile(rf"(?P<n>{COUNT})\s+(?:class\s+|image\s+)?(?:sub-?)?(?:folders|directories|dirs)\b")
_SPLIT_WORDS = re.compile(r"\b(?:train\w*|val\w*|test\w*|splits?|holdout|fold)\b")


def read_folders(r: Reading, p: TaskProfile) -> None:
    """The class count from the folders the images sit in, where the text gives no class count."""
    if "n_classes" in r.said or (m := _FOLDERS.search(r.low)) is None:
        return
    start, end = _clause_bounds(r.low, m.start(), m.end())
    if _SPLIT_WORDS.search(r.low, start, min(len(r.low), end + 40)):
        return
    n = _whole(r, m, "n", "the number of folders", 2, MAX_CLASSES)
    if n is not None:
        p.n_classes = int(n[0])
        r.take("n_classes", m.start(), m.end(), approximate=n[1])
        r.notes.append(f"{r.text[m.start():m.end()].strip()!r}: one class per folder")


# "class balance roughly 40/30/20/10", "distribution 70/20/10 %": the classes' shares in percent (they add up to 100;
# a cue word says they are the classes', not a train/val/test split).
_SHARE_LIST = re.compile(rf"\b(?:class(?:es)?\s+)?(?:balance|distribution|proportions?|shares?|breakdown|prevalence)\s*"
                         rf"(?:of|is|are|:|=)?\s*(?:(?P<ap>{APPROX})\s*)?(?P<l>\d{{1,2}}(?:\.\d+)?(?:\s*%?\s*/\s*\d{{1,2}}"
                         rf"(?:\.\d+)?){{1,}})\s*%?(?![\w/])")


# "train 4000 / val 500 / test 500", "training set 5216 images, test set 624 images": a split's parts, named first;
# the images are their sum.
_SPLIT_N = (rf"(?:[\w.~-]*/)*\b(?:train(?:ing)?|val(?:idation)?|valid|dev|test(?:ing)?|hold-?out|held-out)(?:\s+(?:set|split|data|fold))?"
            rf"/?\s*(?::|=|\bhas\b|\bof\b|\bis\b|\bwith\b)?\s*\(?\s*(?:~\s*|about\s+|around\s+)?(?P<n>{COUNT})"
            rf"(?!\s*(?:%|percent|epochs?|px|pixels?|minutes?|mins?|hours?|h\b|s\b|x\b|folds?|runs?|seeds?))\)?"
            rf"(?:\s+(?:[a-z-]+\s+)?{IMAGE_NOUNS}\b)?")
# ... and count first: "5,955 train images + 5,734 test"
_SPLIT_N_AFTER = (rf"(?P<n>{COUNT})\s+(?:train(?:ing)?|val(?:idation)?|valid|dev|test(?:ing)?|hold-?out|held-out)\b"
                  rf"(?:\s+(?:set|split|data))?(?:\s+(?:[a-z-]+\s+)?{IMAGE_NOUNS}\b)?")
# (a split's part, and two or more of them in a row)
_SPLITS = tuple((part, re.compile(rf"{part}(?:\s*(?:,\s*and|,|;|/|\+|\band)\s*{part.replace('?P<n>', '')})+"))
                for part in (_SPLIT_N, _SPLIT_N_AFTER))


def read_class_sizes(r: Reading, p: TaskProfile) -> None:
    """"300 benign and 60 malignant": classes, images and imbalance; "800 train and 200 test": images;
    "437/210/133 per class": the same as a list; "fracture (n=1,200) vs no fracture (n=3,400)": one count per class;
    "class balance 40/30/20/10": the classes' shares."""
    if "imbalance_ratio" not in r.said and (m := _SHARE_LIST.search(r.low)) is not None:
        shares = [float(x) for x in re.split(r"\s*%?\s*/\s*", m.group("l"))]
        if 98 <= sum(shares) <= 102 and min(shares) > 0 and ("n_classes" not in r.said or p.n_classes == len(shares)):
            if "n_classes" not in r.said:
                p.n_classes = len(shares)
                r.take("n_classes", m.start("l"), m.end(), blank=False)
            _set_shares(p, shares)
            r.take("imbalance_ratio", m.start(), m.end(), approximate=bool(m.group("ap")))
            return
    if (found := next(((part, m) for part, chain in _SPLITS if (m := chain.search(r.low))), None)) is not None:
        part, m = found
        counts = [read_count(x.group("n")) for x in re.finditer(part, m.group(0))]
        _set_images(r, p, sum(c.value for c in counts), m.start(), m.end(),
                    bool(re.search(r"~|\babout\b|\baround\b", m.group(0))) or any(c.approximate for c in counts))
    given = list(_N_EACH.finditer(r.low))
    if len(given) >= 2:
        counts = [read_count(m.group("n")) for m in given]
        if min(c.value for c in counts) >= 1:
            _set_sizes(r, p, [c.value for c in counts], given[0].start(), given[-1].end(),
                       approximate=any(c.approximate or m.group("ap") for c, m in zip(counts, given, strict=True)))
            return
    if (m := _SLASH_SIZES.search(r.low)) is not None:
        sizes = [float(x.replace(",", "")) for x in re.split(r"\s*/\s*", m.group("l") or m.group("l2"))]
        if min(sizes) >= 1:
            _set_sizes(r, p, sizes, m.start(), m.end(), approximate=False)
            return
    for m in _LIST_SIZES.finditer(r.low):
        sizes = [read_count(x).value for x in re.findall(_NUM, m.group("l"))]
        if min(sizes) < 1 or re.search(r"\b(?:seeds?|epochs?|folds?|runs?|trials?|batch(?:es| sizes?)?|layers?|versions?|"
                                        r"sizes? of|px|resolutions?)\s*:?\s*$", r.low[max(0, m.start() - 20):m.start()]):
            continue  # "seeds 1, 2 and 3": numbers of something else
        said_k = "n_classes" in r.said and p.n_classes == len(sizes)
        if m.group("resp") or _LIST_CUE.search(fold(r.text)[max(0, m.start() - 30):m.start()]) or (
                said_k and not m.group("noun")):  # "2 classes, 1200, 3400": one number per class said
            _set_sizes(r, p, sizes, m.start(), m.end(), approximate=False)
            return
        if "+" in m.group("l") and min(sizes) < 10:
            continue  # "Gleason 3 + 4": a score, not counts
        if m.group("noun") and (len(sizes) >= 3 or " and " in m.group("l") or "+" in m.group("l")):  # (not "covid-19, 6,000 images")
            r.notes.append(f"{r.text[m.start():m.end()].strip()!r}: the images are their sum; not read as class sizes")
            _set_images(r, p, sum(sizes), m.start(), m.end(), approximate=False, check=True)
            return
    for m in _SIZES.finditer(r.low):
        items = [(read_count(x.group(1)), x.group(2)) for x in re.finditer(rf"({COUNT})\s+([a-z][\w'-]*)", m.group(0))]
        if len(items) < 2:
            continue
        if any(re.fullmatch(r"(?:19|20)\d\d", x.group(1)) for x in re.finditer(rf"({COUNT})\s+[a-z]", m.group(0))):
            continue  # "2019 RSNA challenge, 2k patients": a year and a count, not two classes
        total = sum(n.value for n, _ in items)
        approximate = bool(m.group("ap")) or any(n.approximate for n, _ in items)
        if all(w in _SPLITS for _, w in items):
            _set_images(r, p, total, m.start(), m.end(), approximate)
            return
        if any(w in _SPLITS for _, w in items) or min(n.value for n, _ in items) < 1:
            continue
        if any(_misspelt_noun(w) for _, w in items):
            continue  # "7 classe 10k imagse": a class count and a size, misspelt, not two classes of 7 and 10,000
        _set_sizes(r, p, [n.value for n, _ in items], m.start(), m.end(), approximate)
        return
    for m in _NAME_SIZES.finditer(r.low):
        items = [(x.group("name").split()[-1], read_count(x.group("n"))) for x in re.finditer(_NAME_N, m.group(0))]
        sizes = [n.value for _, n in items]
        if len(items) >= 2 and all(w in _SPLITS for w, _ in items):  # "train: 2,870, val: 410, test: 820": the images
            _set_images(r, p, sum(sizes), m.start(), m.end(), any(n.approximate for _, n in items))
            return
        if len(items) < 2 or any(w in _NOT_NAMES or w in _NOT_A_SIZE_NAME or w in _SPLITS for w, _ in items):
            continue
        if min(sizes) < 2 or max(sizes) < 20:  # "grade 1, grade 2", "class 3, class 4": labels, not sizes
            continue
        if any(re.fullmatch(r"(?:19|20)\d\d", x.group("n").strip()) for x in re.finditer(_NAME_N, m.group(0))):
            continue  # "ISIC 2019, HAM 10000": datasets and their years, not class sizes
        _set_sizes(r, p, sizes, m.start(), m.end(),
                   any(n.approximate for _, n in items) or bool(re.search(r"~|\babout\b|\baround\b", m.group(0))))
        return


# Nouns things are counted in, and real words a near miss of one would mistake for it ("300 imaged patients").
_IMAGE_WORDS = ("images", "image", "slices", "scans", "patches", "photos", "pictures", "samples", "radiographs", "tiles",
                "frames")
_COUNTED_NOUNS = (*_IMAGE_WORDS, "classes", "class", "categories", "labels", "grades")
_REAL_NEAR_NOUNS = frozenset("imaged imager imagers imagery imagine scanned scanner scanners scanning slicer sliced "
                             "classed classic classics lasses glasses patched patcher photon photons tiled tiler framed "
                             "framer sampled sampler labeled labelled grader graded".split())
_COUNT_WORD = re.compile(rf"(?P<n>{COUNT})\s+(?P<w>[a-z]{{4,}})\b")


def _misspelt_noun(word: str, nouns: tuple[str, ...] = _COUNTED_NOUNS) -> bool:
    """A word that is, or is a near miss of, one of `nouns` ("imagse", "clasess"); difflib's ratio >= 0.8."""
    import difflib

    return len(word) >= 4 and word not in _REAL_NEAR_NOUNS and bool(difflib.get_close_matches(word, nouns, n=1, cutoff=0.8))


def _set_sizes(r: Reading, p: TaskProfile, sizes: list[float], start: int, end: int, approximate: bool) -> None:
    """Class sizes read: the class count (unless said), the imbalance and the images (their sum)."""
    if "n_classes" in r.said and sum(sizes) < p.n_classes:
        return  # "7 23 classes grade 3": fewer images than the classes said, so these are no class sizes
    if "n_classes" in r.said and p.n_classes != len(sizes):
        r.notes.append(f"the text says {r.said['n_classes']!r} but lists {len(sizes)} class sizes; "
                       f"using {p.n_classes} classes")
    elif "n_classes" not in r.said:
        p.n_classes = len(sizes)
        r.take("n_classes", start, end, blank=False)
    if "imbalance_ratio" not in r.said:
        if p.n_classes == len(sizes):
            _set_shares(p, sizes)
        else:
            p.imbalance_ratio = max(sizes) / min(sizes)
        r.take("imbalance_ratio", start, end, blank=False)
    # the sizes of only some of the classes ("normal ~10k, viral pneumonia ~1.3k" of 4): their sum is a rough total,
    # which a total the text states wins over
    _set_images(r, p, sum(sizes), start, end, approximate or len(sizes) < p.n_classes)


def _set_shares(p: TaskProfile, sizes: list[float]) -> None:
    """The classes' sizes (or shares) as the text gives them: `TaskProfile.shares`, smallest first, and the
    imbalance ratio they make."""
    total = sum(sizes)
    p.shares = tuple(x / total for x in sorted(sizes))
    p.imbalance_ratio = max(sizes) / min(sizes)


def read_images(r: Reading, p: TaskProfile) -> None:
    """The number of images: a total, a count per study times the studies, or a count per class times the class count."""
    m = _PER_STUDY.search(r.low)
    g = "" if m is None or m.group("a") else "2" if m.group("a2") else "3" if m.group("a3") else "4"  # (which form)
    if m and (a := _whole(r, m, "a" + g, "the number of studies", 1, MAX_IMAGES)) and (
            b := _whole(r, m, "b" + g, "the number of images per study", 1, MAX_IMAGES)):
        r.notes.append(f"{r.text[m.start():m.end()].strip()!r}: every image taken as one training image")
        low = int(m.group("blo")) if not g and m.group("blo") else None  # a range per study: its middle, approximate
        each = b[0] if low is None else (low + b[0]) / 2
        return _set_images(r, p, round(a[0] * each), m.start(), m.end(),
                           a[1] or b[1] or bool(m.group("ap" + g)) or low is not None, check=True)
    per_class = mentions(r.low, "each", "class", "categor", "label", "type", "grade", "group", "condition", "diagnos", "kind")
    m = next((m for regex in _PER_CLASS_RANGE if (m := regex.search(r.low)) and not (
        regex is _PER_CLASS_RANGE[2] and re.search(rf"\b{_STUDIES}\b", r.low[max(0, m.start() - 30):m.start()]))),
        None) if per_class else None
    spread = None  # the total the range gives, where the text states none of its own
    if m and (a := _whole(r, m, "a", "the smallest class", 1, MAX_IMAGES)) and (b := _whole(r, m, "b", "the largest class",
                                                                                             1, MAX_IMAGES)):
        least, most = sorted((a[0], b[0]))
        if least < most:
            if "imbalance_ratio" not in r.said:
                p.imbalance_ratio = most / least
                r.take("imbalance_ratio", m.start(), m.end(), blank=False)
            spread = (least, most, m.start(), m.end())
            r.blank(m.start(), m.end())  # its "1,500 images per class" is no size of every class, nor a total
    _read_total(r, p, per_class and spread is None)
    if spread is not None:
        least, most, start, end = spread
        if "n_instances" not in r.said:  # a total the text states wins: the range then gives the imbalance only
            r.notes.append(f"{r.text[start:end].strip()!r}: the classes taken as spread evenly between {least:,} and "
                           f"{most:,} images" + ("" if "n_classes" in r.said else f", times an assumed {p.n_classes} classes"))
            _set_images(r, p, round((least + most) / 2 * p.n_classes), start, end, True, check=True)


# "8 classes x 1000 images", "1000 images × 8 classes": a size per class times the classes (read from the text as
# written: the class count is blanked out of the reading once read).
_K_NOUNS = r"(?:classes|categories|labels|types|grades|groups|conditions|diagnoses|kinds)"
_TIMES_CLASSES = (
    re.compile(rf"\b(?P<k>\d{{1,3}})\s+{_K_NOUNS}\s*(?:[x\u00d7*]|times)\s*(?:(?P<ap>{APPROX})\s*)?(?P<n>{COUNT})"
               rf"(?:\s+(?:[a-z-]+\s+)?{IMAGE_NOUNS}\b)?(?!\s*(?:px|pixels?)\b)"),
    re.compile(rf"(?:(?P<ap>{APPROX})\s*)?(?P<n>{COUNT})\s+(?:[a-z-]+\s+)?{IMAGE_NOUNS}\s*(?:[x\u00d7*]|times)\s*"
               rf"(?P<k>\d{{1,3}})\s+{_K_NOUNS}\b"),
)


def _read_total(r: Reading, p: TaskProfile, per_class: bool) -> None:
    """The number of images said outright: one size for every class times the classes, or a total."""
    folded = fold(r.text)
    for regex in _TIMES_CLASSES:
        m = regex.search(folded)
        if m and int(m.group("k")) == p.n_classes and (n := _whole(r, m, "n", "the number of images per class", 1,
                                                                    MAX_IMAGES)):
            approximate = n[1] or bool(m.group("ap"))
            if "imbalance_ratio" not in r.said and not approximate:  # one size for every class: balanced
                p.imbalance_ratio = 1.0
                r.take("imbalance_ratio", m.start(), m.end(), blank=False)
            return _set_images(r, p, n[0] * p.n_classes, m.start(), m.end(), approximate, check=True)
    for regex in _PER_CLASS if per_class else ():
        # "8 classes each with 1000 images": the class count, read already, is blanked out of r.low
        m = regex.search(fold(r.text) if regex is _PER_CLASS[3] else r.low)
        if m and regex is _PER_CLASS[1] and re.search(rf"\b{_STUDIES}\W*$", r.low[max(0, m.start() - 20):m.start()]):
            continue  # "60 patients (20 each)": each patient's, not each class's
        if m and regex is _PER_CLASS[3] and not r.low[m.start("n"):m.end("n")].strip():
            continue
        if m and (n := _whole(r, m, "n", "the number of images per class", 1, MAX_IMAGES)):
            if "n_classes" not in r.said:
                r.notes.append(f"{r.text[m.start():m.end()].strip()!r} times an assumed {p.n_classes} classes")
            approximate = n[1] or bool(m.group("ap") or m.groupdict().get("plus"))
            if "imbalance_ratio" not in r.said and not approximate:  # one size for every class: balanced
                p.imbalance_ratio = 1.0
                r.take("imbalance_ratio", m.start(), m.end(), blank=False)
            return _set_images(r, p, n[0] * p.n_classes, m.start(), m.end(), approximate, check=True)
    if (m := _IMAGE_RANGE.search(r.low)) and (hi := _whole(r, m, "n", "the number of images", 2, MAX_IMAGES)):
        # "between 3 and 4 thousand x-rays", "3-4k images": the middle of the range, approximate
        lead = re.match(r"\d+(?:\.\d+)?", m.group("n").replace(",", ""))
        lo = read_count(m.group("lo")).value
        if lead and lo * hi[0] / float(lead.group()) <= hi[0]:
            lo *= hi[0] / float(lead.group())  # "3" of "3 and 4 thousand" is 3,000
        if 0 < lo < hi[0]:
            return _set_images(r, p, round((lo + hi[0]) / 2), m.start(), m.end(), True, check=True)
    for regex in _IMAGES:
        if regex is _IMAGES[3] and not mentions(r.low, "of them", "total", "altogether", "overall"):
            continue
        for m in regex.finditer(r.low):
            if _OF_A_CLASS.search(r.low, _clause_bounds(r.low, m.start(), m.start())[0], m.start()):
                continue  # "some classes have fewer than 10 images": one class's size, not the total
            if _PER_STUDY_AFTER.match(r.low, m.end()):
                r.notes.append(f"{r.text[m.start():m.end()].strip()!r} is a count per study, not the number of images")
                continue
            if re.search(r"(?:slides?|wsis?|whole[- ]slide images?|studies|patients|volumes)$", m.group(0)) and _TILES.search(r.low):
                continue  # "250 slides tiled into 80,000 tiles": the tiles are what is trained on
            n = _whole(r, m, "n", "the number of images", 2, MAX_IMAGES)
            if n is not None and n[0] < 20 and (m.groupdict().get("ap") or "").strip() in (">", "<"):
                continue  # "PI-RADS >=3 lesions": a threshold on a score, not a count of images
            if n is not None:
                approximate = n[1] or bool(m.groupdict().get("ap") or m.groupdict().get("plus"))
                return _set_images(r, p, n[0], m.start(), m.end(), approximate, check=True)
    for m in _BARE_THOUSANDS.finditer(r.low):
        g = next(g for g in ("n", "n2", "n3") if m.group(g))
        n = _whole(r, m, g, "the number of images", 2, MAX_IMAGES)
        if n is not None:
            r.notes.append(f"{r.text[m.start(g):m.end(g)].strip()!r} read as the number of images (no noun after it)")
            return _set_images(r, p, n[0], m.start("ap") if m.group("ap") else m.start(g), m.end(g),
                               n[1] or bool(m.group("ap")), check=True)
    for m in _COUNT_WORD.finditer(r.low):  # "10k imagse": a misspelt image noun, read as one
        if _misspelt_noun(m.group("w"), _IMAGE_WORDS) and not re.fullmatch(f"{CLASS_NOUNS}|{IMAGE_NOUNS}", m.group("w")):
            n = _whole(r, m, "n", "the number of images", 2, MAX_IMAGES)
            if n is not None:
                r.notes.append(f"{r.text[m.start('w'):m.end('w')]!r} read as images")
                return _set_images(r, p, n[0], m.start(), m.end(), n[1], check=True)
    m = _PATIENTS.search(r.low) if mentions(r.low, "patient", "pacient", "subject", "particip", "people", "individual") else None
    one = _ONE_EACH.search(r.low) if m else None
    if m and one and (n := _whole(r, m, "n", "the number of patients", 2, MAX_IMAGES)):
        r.notes.append(f"{r.text[one.start():one.end()].strip()!r}: as many images as patients")
        return _set_images(r, p, n[0], m.start(), m.end(), n[1], check=True)
    if m:
        r.notes.append(f"the text gives {r.text[m.start():m.end()].strip()!r}, not a number of images; "
                       "n_instances assumed")
    return None


def _set_images(r: Reading, p: TaskProfile, n: float, start: int, end: int, approximate: bool, check: bool = False) -> None:
    words = r.text[start:end].strip()[:80]
    if "n_instances" in r.said and "n_instances" in r.approximate and not approximate and n >= p.n_classes:
        # "3,200 images (about 2,700 benign and 500 malignant)": the exact total wins over the sum of rough sizes
        if n != p.n_instances:
            r.notes.append(f"the text also says {r.said['n_instances']!r}; using {words!r}")
        r.approximate.remove("n_instances")
        p.n_instances = int(n)
        r.take("n_instances", start, end)
        return
    if "n_instances" in r.said:
        if n != p.n_instances:
            r.notes.append(f"the text also says {words!r}; using {r.said['n_instances']!r}")
        return
    if n > MAX_IMAGES:
        raise ValueError(f"the number of images must be at most {MAX_IMAGES:,}, but the text says {words!r}.")
    if check and n < p.n_classes:
        raise ValueError(f"the number of images must be >= the number of classes ({p.n_classes}), but the text "
                         f"says {words!r}.")
    p.n_instances = int(n)
    r.take("n_instances", start, end, approximate=approximate)


__all__ = ["BALANCED", "CLASS_NOUNS", "read_folders", "HINTED_RATIO", "IMAGE_NOUNS", "MAX_CLASSES", "MAX_IMAGES", "finish_imbalance", "read_class_sizes",
           "read_classes", "read_images", "read_ratio"]

"""Does a text ask for what this tool does: an image-classification set-up, medical or not?

`classify_scope(text, profile)` sorts a request into one of four kinds, deterministically (keyword
patterns, like `tools.task_text`), with the words that decided it and what to tell the user:

    medical_image_classification      in scope.
    image_classification_non_medical  everyday photos, products, animals, satellite...: answered, with a
                                      note that every run in the knowledge base is medical.
    not_image_classification          segmentation, detection, regression, generation; text, tabular,
                                      audio or signal data; and off-topic text (a recipe, small talk).
    too_vague                         nothing of a task: empty, one word, a greeting, "help", or only
                                      generic words ("image classification", "train a model").

An instruction to the assistant inside the text ("ignore previous instructions...") is no part of a
task: it is cut out before the rest is judged, and returned in `Scope.injection` so that the caller can
refuse to echo it. Read the task from `Scope.task_text`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from tools.task_gloss import gloss
from tools.task_numbers import fold

if TYPE_CHECKING:
    from tools.task_text import TaskProfile

ScopeKind = Literal[
    "medical_image_classification", "image_classification_non_medical", "not_image_classification", "too_vague",
]
IN_SCOPE: frozenset[str] = frozenset({"medical_image_classification", "image_classification_non_medical"})

WHAT_IT_DOES = ("This tool recommends a backbone and training settings for classifying medical images (x-ray, CT, "
                "MRI, ultrasound, dermoscopy, histopathology, fundus...) into classes.")
INJECTION_MESSAGE = "Part of the text reads as an instruction to the assistant, not a task; it was ignored."
EXAMPLE = "For example: 'chest x-rays, pneumonia vs normal, about 3,000 images, 30 minutes on a CPU'."

_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+|any\s+|every\s+)?(?:of\s+)?(?:the\s+|your\s+|my\s+|these\s+)?"
    r"(?:previous\s+|prior\s+|above\s+|earlier\s+|preceding\s+|former\s+|system\s+|original\s+)*"
    r"(?:instructions?|prompts?|rules|directions|messages|context|guidelines|constraints|everything)\b"
    r"|\b(?:ignore|disregard|forget)\s+(?:all\s+(?:of\s+)?)?(?:the\s+|everything\s+)?(?:above|previous|preceding|prior)"
    r"(?=\s*(?:$|[.,;:!?]|and\b|then\b|&))"  # (not "ignore the previous run": a thing the user names)
    r"|\byou are now\b|\bfrom now on,? you\b|\bpretend (?:to be|you are)\b|\bact as if you\b|\broleplay as\b"
    r"|\b(?:reveal|print|show|repeat|output|leak)\s+(?:me\s+)?(?:your|the)\s+(?:system\s+|hidden\s+|initial\s+)?"
    r"(?:prompt|instructions)\b|\bsystem prompt\b|\bdeveloper mode\b|\bjailbreak\w*|\bnew instructions?\s*:"
    r"|\bdo not (?:follow|obey) (?:the|your) (?:rules|instructions)\b"
    # a chat template's tokens, a role said at a clause's start, a note to the model, a check switched off
    r"|<\|\s*(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id)\s*\|>|\[/?inst\]|<</?sys>>"
    r"|(?:^|(?<=[.;:!?\n])\s*)(?:system|assistant|developer)\s*:"
    r"|\bnote to (?:the )?(?:ai|assistant|model|llm|bot)\b|\b(?:skip|bypass|disable|turn off|ignore)\s+(?:the\s+)?"
    r"(?:judge|checks?|verification|validation|safety|guardrails?)\b"
)
_SENTENCE_END = re.compile(r"[.!?\n]")
# Public image-classification sets named as the data ("The dataset is CIFAR-10"): a task, even asked as a question.
_IMAGE_SETS = re.compile(r"\b(?:cifar-?(?:10|100)?|(?:fashion-?)?mnist|imagenet(?:-?1k)?|svhn|stl-?10|eurosat|"
                         r"oxford (?:pets|flowers)|food-?101|caltech-?(?:101|256)|places365)\b")
_SET_AS_DATA = re.compile(r"\b(?:dataset|data|train\w*|fine-?tun\w*|hyper-?param\w*|backbone|model|classif\w*)\b")


def _names_a_set(low: str) -> bool:
    """A public image set named as the data to classify ("the dataset is CIFAR-10"), not asked about ("what is
    imagenet?")."""
    return bool(_IMAGE_SETS.search(low) and _SET_AS_DATA.search(low))

# A number as the answer, however the request words it ("classify each x-ray by age in years (continuous)"):
# regression even beside "classify", unless the number is cut into classes (see _BINNED).
_CONTINUOUS = (r"\(\s*continuous\s*\)|\bcontinuous(?:ly)?[- ](?:[\w-]+?[- ]){0,2}?(?:valued?|targets?|outputs?|scores?|labels?|variables?|"
               r"outcomes?|measures?|measurements?|numbers?|predictions?|regression)\b|\bas (?:a|an) (?:real|continuous|exact|"
               r"floating[- ]point) (?:number|value)\b|\breal[- ]valued\b|\bexact (?:age|value|number|score)\b")
_STRONG_REGRESSION = re.compile(_CONTINUOUS)
# (label, user-facing name, pattern): requests that are not image classification.
_OTHER_TASKS = (
    ("segmentation", "Segmentation (a mask per pixel)",
     r"\bsegment(?:ation|ing|s|ed)?\b|\bpixel[- ]?(?:wise|level)\b|\bmasks?\b|\bdelineat\w*|\bcontour\w*|\bu-?net\b|"
     r"\boutlin(?:e|es|ing) (?:the|each|all|every)\b"),
    ("detection", "Object detection (boxes around things)",
     r"\bobject detection\b|\bbounding[- ]box\w*|\blocali[sz](?:e|ation|ing)\b|\blocat(?:e|es|ing)\b|\byolo\w*|"
     r"\bdraw (?:boxes|a box)\b|\b(?:count(?:s|ing)?|how many)\s+(?:the\s+)?(?:number\s+of\s+)?(?:the\s+|all\s+|of\s+the\s+)?(?:cells|objects|nuclei|"
     r"colonies|people|mitos[ie]s|mitotic figures|lesions|nodules|polyps|instances|items|parasites|bacteria)\b|"
     r"\bkeypoints?\b|\blandmark detection\b"),
    ("regression", "Regression (predicting a number)",
     r"\bregression\b|\bregress\b|\bpredict (?:the |a |their )?(?:age|volume|size|value|dose|length|weight|survival)\b|"
     r"\bestimat\w* (?:the |a )?(?:age|volume|size|ejection fraction|bone age|density|length)\b|\bbone age\b|"
     r"\bsurvival (?:time|analysis)\b|" + _CONTINUOUS),
    ("generation", "Generating, restoring or registering images",
     r"\bgenerat\w* (?:synthetic |new |fake |realistic )?(?:[a-z-]+ )?(?:images|scans|x-rays|pictures|photos)\b|\bsynthesi[sz]\w*|"
     r"\bgans?\b|\bdiffusion model|\bdenois\w*|\bsuper[- ]resolution\b|\bregistration\b|\breconstruct\w*|"
     r"\bregist(?:er|ers|ering|ered)\b(?:\s+[\w-]+){1,4}?\s+(?:to|onto|with)\b|"
     r"\bimage translation\b|\binpaint\w*|\bcaption\w*"),
    ("unsupervised", "Learning without class labels (clustering, retrieval, duplicates, anomaly detection, "
                     "self-supervised pretraining)",
     # (verbs and tasks only: "calcification clusters", "after removing duplicates" describe data to classify)
     r"\bclustering\b|\bcluster (?:my|the|these|our|them|all|images|scans|patches|slides)\b|\bunsupervised\b|"
     r"\bself-?supervised\b|\b(?:no|without(?: any)?) (?:class )?(?:labels|diagnos[ie]s|annotations|ground[- ]truth)\b"
     r"(?!\s+(?:are|is|were|was|missing)\b)|"
     r"\b(?:group|sort|organi[sz]e|split)\w*\b[^.;!?]{0,60}\bby (?:visual |image |their |appearance |look )?similarity\b|"
     r"\bduplicate detection\b|"
     r"\b(?:find|detect|identify|flag|spot)(?:s|ing)?\s+(?:the\s+|all\s+)?(?:near-?)?duplicates?\b|"
     r"\b(?:image|content-based|case) retrieval\b|\bretriev\w* similar\b|"
     r"\bfind (?:the )?(?:most )?similar (?:images|scans|cases|x-rays|mammograms|slides|patches|photos)\b|"
     r"\bsimilar (?:images|scans|cases|mammograms|x-rays) to\b|"
     r"\banomal(?:y|ies) detection\b|\bout-of-distribution detection\b|\bnovelty detection\b|\bone-class\b|"
     r"\bonly (?:on )?(?:normal|healthy) (?:scans|images|cases|data|examples)\b|\bembeddings? (?:of|for) (?:my |the )?(?:images|scans)\b"),
    ("text", "Text data (reports, notes, documents)",
     r"\btext classification\b|\bsentiment\b|\bnlp\b|\breports?\b|\bclinical notes?\b|\bnotes\b|\bdocuments?\b|"
     r"\btweets?\b|\bemails?\b|\bsentences?\b|\btranscripts?\b|\bfree[- ]text\b"),
    ("tabular", "Tabular data (a table of values)",
     r"\btabular\b|\bcsv\b|\bspreadsheets?\b|\bexcel\b|\blab (?:values|results|tests)\b|\behr\b|"
     r"\belectronic health records?\b|\bstructured data\b|\bblood tests?\b|\bcolumns\b|\bfeatures? table\b"),
    ("audio", "Audio and signal data",
     r"\baudio\b|\bsounds?\b|\bspeech\b|\bvoice\b|\bstethoscope\b|\becg\b|\bekg\b|\beeg\b|\bemg\b|"
     r"\btime[- ]series\b|\bsignals?\b|\bwearables?\b|\baccelerometer\b|\brecordings?\b"),
)
_OTHER = tuple((label, name, re.compile(pattern)) for label, name, pattern in _OTHER_TASKS)

# In scope, but not as the tool trains it: what the recommendation is then for, said with it. (Several
# labels per image is said by tools.task_text, as a note of the reading.)
_CAVEATS = (
    (re.compile(r"\b3-?d\b|\bvolumetric\b|\b(?:ct|mri?|pet|scan|image|imaging)\s+volumes?\b|"
                r"\d[\d,.]*\s*k?\s+volumes\b"),
     "This tool trains 2D image classifiers: a 3D volume is set up as 2D images (its slices, or one slice per "
     "scan), so the counts and sizes are read as those of 2D images."),
    (re.compile(r"\d[\d,.]*\s*k?\s+(?:[a-z]+\s+)?(?:videos|clips)\b|\bvideo\s+(?:classification|frames?|clips?|data|dataset|"
                r"recordings?|sequences?)\b|\bclips? of \d+ frames\b|\bsurgical phases?\b"),
     "This tool trains 2D image classifiers: a video is set up as its frames, each labelled with the class of its "
     "clip or phase (no motion between frames is learned), so give the number of frames as the number of images."),
)
_DATA_NOT_IMAGES = {"text", "tabular", "audio"}

_IMAGE = re.compile(r"\bimag(?:e|es|ing)\b|\bimgs?\b|\bpictures?\b|\bpics\b|\bphotos?\b|\bphotographs?\b|\bscans?\b|"
                    r"\bslides?\b|\bradiographs?\b|\bx-?rays?\b|\bmammograms?\b|\bpatches\b|\btiles\b|\bframes\b|"
                    r"\bfilms\b|\bslices\b|\bsmears\b|\bmicrographs?\b|\bvisual\b|\bcamera\b|\bjpe?gs?\b|\bpngs?\b|"
                    r"\bdicoms?\b|\bvideos?\b|\bsnapshots?\b|\bselfies?\b")
_CLASSIFY = re.compile(r"\bclassif\w*|\bcategori[sz]\w*|\brecogni[sz]\w*|\bidentif\w*|\bdetect\w*|\bscreen\w*|"
                       r"\btriage\b|\bgrad(?:e|es|ing)\b|\bdistinguish\w*|\bdifferentiat\w*|\btell\w* (?:apart|whether|if)|"
                       r"\bsort\w*|\blabel\w*|\bbinary\b|\bmulti-?class\b|\bvs\.?\b|\bversus\b|\bwhich (?:one|class|type)\b")
# Words that make a task classification although another is named: "... and classify", a number cut into classes
# ("bone age under or over 10 years", "age group", "binned").
_BINNED_WORDS = (r"\b(?:under|below|less than|younger than)\s+or\s+(?:over|above|more than|older than)\b|"
           r"\b(?:over|above)\s+or\s+(?:under|below)\b|\bbinned\b|\bbins?\b|\b(?:age|size|score) (?:groups?|bands?|brackets?|ranges?)\b|"
           r"\binto \w+ (?:groups|bands|brackets|ranges|categories|classes|levels)\b")
_EXPLICIT_CLASSIFY = re.compile(rf"\bclassif\w*|\bcategori[sz]\w*|\bclasses\b|{_BINNED_WORDS}")
_BINNED = re.compile(_BINNED_WORDS)
_MEDICAL = re.compile(
    r"\bpatients?\b|\bclinic(?:al)?\b|\bhospital\b|\bmedical\b|\bradiolog\w*|\bpatholog\w*|\btumou?rs?\b|\bcancer\w*|"
    r"\bmalignan\w*|\blesions?\b|\bpneumonia\b|\bmelanoma\b|\bcarcinoma\b|\bnodules?\b|\bfractures?\b|\bretinopathy\b|"
    r"\bglaucoma\b|\bbiops\w*|\bdermatolog\w*|\bophthalm\w*|\bleuk\w*mia\b|\bcovid\w*|\btubercul\w*|\balzheimer\w*|"
    r"\bpolyps?\b|\bmetasta\w*|\bstroke\b|\bhaemorrhage|\bhemorrhage|\bnevi\b|\bnaevi\b|\bmoles?\b|\brashe?s?\b|\bskin\b|\bwounds?\b|\bulcers?\b|\bcysts?\b|\bbrain\b|\blungs?\b"
)
_WEAK_MEDICAL = re.compile(r"\bdiagnos\w*|\bdisease\w*|\bsymptoms?\b|\bhealthy\b|\binfect\w*|\bbenign\b")
_NON_MEDICAL = re.compile(
    r"\bcats?\b|\bdogs?\b|\bpets\b|\bmy pet\b|\banimals?\b|\bbirds?\b|\bflowers?\b|\bplants?\b|\bleaf\b|\bleaves\b|"
    r"\bcrop (?:disease|fields?|types?)\b|\bfarm\w*|\bagricultur\w*|\bfruits?\b|\bvegetables?\b|\bfood\b|\bdishes\b|"
    r"\bcars?\b|\bvehicles?\b|\btraffic signs?\b|\btraffic\b|\bstreets?\b|\bproducts?\b|\bcloth(?:es|ing)\b|\bfashion\b|\bshoes?\b|"
    r"\bfurniture\b|\bsatellite\b|\baerial\b|\bdrones?\b|\blandscapes?\b|\bbuildings?\b|\bfaces\b|\bselfies?\b|"
    r"\bfacial expressions?\b|\bemotions?\b|\bhandwrit\w*|\bhand-written\b|\bdigits\b|\bmnist\b|\bcifar\w*|\bimagenet\b|"
    r"\bdefects?\b|\bmanufactur\w*|\bfactory\b|\bweld\w*|\bconcrete\b|\bwildlife\b|\bfish\b|\binsects?\b|\bmushrooms?\b|"
    r"\bgalax\w*|\bastronom\w*|\brocks?\b|\bminerals?\b|\bartworks?\b|\bpaintings?\b|\bmemes?\b|\blogos?\b|\bscenes?\b|"
    r"\bgestures?\b|\bsports?\b|\bclouds?\b|\bcoins?\b|\bpizza\b|\bhot ?dogs?\b|\bgroceries\b|"
    r"\binventory\b|\bwaste\b|\brecycl\w*|\bgarbage\b|\btrash\b|\bbread\b|\bcake\b|\bpokemon\b|\bcows?\b|\bcattle\b|"
    r"\bhorses?\b|\bsheep\b|\bgoats?\b|\bpigs?\b|\bchickens?\b|\blivestock\b|\bpoultry\b|\bbees?\b|\bbutterfl\w*|"
    r"\bfabrics?\b|\btextiles?\b|\blicen[cs]e plates?\b|\bships?\b|\baircraft\b|\bairplanes?\b|"
    r"\bboats?\b|\btoys?\b|\bjewel\w*|\bsnakes?\b|\bspiders?\b|\bfrogs?\b|\bwhales?\b|\bpedestrians?\b"
)
# A question about imaging ("explain the difference between CT and MRI") names modalities but asks for no
# set-up: it is refused unless it also speaks of a model, training, data or classes.
_QUESTION = re.compile(r"^\W*(?:(?:can|could|would) you\s+|please\s+)?(?:explain|describe|tell me (?:about|what|why|how)|"
                       r"what(?:'s| is| are) the differences?|what(?:'s| is) (?:a|an)\b|how (?:does|do|is|are)\b|"
                       r"why (?:does|do|is|are)\b|is (?:it|a|an)\b)")
_TASK_WORDS = re.compile(r"\bmodels?\b|\btrain\w*|\bdatasets?\b|\bbackbones?\b|\bnetworks?\b|\bcnns?\b|"
                         r"\brecommend\w*|\baccura\w*|\bfine[- ]?tun\w*|\bhyper-?parameters?\b|\bclass(?:es)?\b")
_GREETING = re.compile(
    r"(?:hi|hello|hey|hiya|howdy|yo|good (?:morning|afternoon|evening)|thanks?|thank you|cheers|ok(?:ay)?|test(?:ing)?|"
    r"help(?: me)?(?: please)?|please help|what can you do|what do you do|who are you|what is this|how does (?:this|it) work|"
    r"how are you|start|menu|info|hmm+|\?+|there)(?:[\s,!.?]+(?:hi|hello|there|you|please|how are you|help|thanks))*"
)
# Words that say "a task" without saying which: on their own, the request is too vague.
_GENERIC = frozenset("""
image images imaging picture pictures photo photos classification classify classifier classifying model models task
dataset data recommend recommendation recommendations help me please a an the i we you my our want need would like to
for with of on in some something set setup up configuration config hyperparameters hyperparameter backbone backbones
train training what which should use can do how best good deep learning machine ai neural network networks cnn cnns
is it this that me give suggest suggestion and or any tool start get make build create new
""".split())
_WORD = re.compile(r"[a-z][a-z'-]*|\d+(?:[.,]\d+)*[km]?(?![a-z])|\d+")  # "5k" is one word
# Requests for writing or language work that name a medical word but ask for no set-up.
_OFF_TOPIC = re.compile(r"\b(?:write|compose|draft)\b(?:\s+\w+){0,3}?\s+(?:poem|story|essay|song|joke|haiku|limerick|"
                        r"letter|email|speech|blog post|tweet|summary)\b|\btranslat\w*\b|\bsummari[sz]\w*\b|"
                        r"\btell me a joke\b")
_UNNAMED = ("The text names no imaging modality, body part or finding; every run in the knowledge base is on medical "
            "images, so if these images are not medical the recommendation is extrapolated and its predicted accuracy "
            "less reliable. Say what the images are (e.g. 'chest x-rays', 'dermoscopy photos') for a closer match.")


@dataclass(frozen=True)
class Scope:
    """What a request is, and what to tell the user.

    Attributes:
        kind: one of `ScopeKind`.
        words: the words that decided it, as written in the text (empty when nothing did).
        message: what to tell the user: for the out-of-scope kinds what the tool does and what to type;
            for a non-medical task the note that the evidence is medical; None for a medical task.
        injection: the words of an instruction to the assistant found in the text, as written, or None.
            Never echo them; the caller may refuse the request or go on with `task_text`.
        task_text: the text with the injection blanked out: what the task is read from.
    """

    kind: ScopeKind
    words: tuple[str, ...]
    message: str | None
    injection: str | None
    task_text: str

    @property
    def in_scope(self) -> bool:
        """Whether a recommendation is made (medical, or non-medical with its note)."""
        return self.kind in IN_SCOPE

    @property
    def exit_code(self) -> int:
        """The CLI's exit status for this request: 0 in scope, 2 out of scope (nothing recommended)."""
        return 0 if self.in_scope else 2


def classify_scope(text: str, profile: TaskProfile | None = None) -> Scope:
    """Sort a request into a `ScopeKind`, with the deciding words and the message for the user.

    Args:
        text: the request as the user wrote it.
        profile: `parse_task(text)`, when the caller has it (its `said` fields count as task content).
            It is read again from `task_text` when the text holds an injection, and read here when not given;
            a text the reader refuses (ValueError) is judged on its words alone.

    Returns:
        The scope; `exit_code` 2 means recommend nothing and train nothing, and show `message`.
    """
    from tools.task_text import parse_task

    original = text if isinstance(text, str) else ""
    glossed = gloss(original)  # Chinese, Japanese or Korean: judged on its task terms in English
    text = glossed.text
    if glossed.changed:
        profile = None  # read again from the glossed text, so that its spans are the glossed text's
    low = fold(text)
    injections: list[tuple[int, int]] = []
    for m in _INJECTION.finditer(low):  # each to the end of its sentence; overlapping ones as one
        start, end = m.start(), _sentence_end(low, m.end())
        if injections and start <= injections[-1][1]:
            injections[-1] = (injections[-1][0], max(end, injections[-1][1]))
        else:
            injections.append((start, end))
    injection = " / ".join(text[a:b].strip() for a, b in injections) or None
    for a, b in injections:
        low = low[:a] + " " * (b - a) + low[b:]
    read, task_text = text, original  # the text to read the task from (glossed), and as the user wrote it
    for a, b in injections:
        read = read[:a] + " " * (b - a) + read[b:]
        a, b = glossed.origin(a, b)
        task_text = task_text[:a] + " " * (b - a) + task_text[b:]
    if profile is None or injections:
        try:
            profile = parse_task(read)
        except ValueError:
            profile = None
    kind, spans, message = _judge(text, low, profile)
    if injection and message is None:
        message = INJECTION_MESSAGE
    words = tuple(dict.fromkeys(original[slice(*glossed.origin(a, b))].strip() for a, b in sorted(spans)))
    return Scope(kind=kind, words=words, message=message, injection=injection, task_text=task_text)


def _sentence_end(low: str, start: int) -> int:
    m = _SENTENCE_END.search(low, start)
    return m.end() if m else len(low)


def _judge(text: str, low: str, profile: TaskProfile | None) -> tuple[ScopeKind, list[tuple[int, int]], str | None]:
    """The kind, the spans of the words that decided it, and the message (see `classify_scope`)."""
    stripped = low.strip(" \t\r\n.,;:!?'\"")
    counted = profile is not None and {"n_classes", "n_instances"} <= set(profile.said)  # "HAM10000" alone: a task
    if not stripped or _GREETING.fullmatch(stripped) or (len(_WORD.findall(low)) <= 1 and not counted):
        return "too_vague", [], _vague()
    image, classify = _IMAGE.search(low), _CLASSIFY.search(low)
    also = None  # another task asked for beside classification: only the classification part is set up
    for label, name, regex in _OTHER:
        m = regex.search(low)
        if m is None:
            continue
        if label in _DATA_NOT_IMAGES and image is None:
            return "not_image_classification", [m.span()], _other(name)
        if label not in _DATA_NOT_IMAGES and not _EXPLICIT_CLASSIFY.search(low):
            return "not_image_classification", [m.span()], _other(name)
        if label == "regression" and (strong := _STRONG_REGRESSION.search(low)) and not _BINNED.search(low):
            return "not_image_classification", [strong.span()], _other(name)  # "classify by age (continuous)"
        also = also or name
    question = _QUESTION.search(low)
    if question and not _TASK_WORDS.search(low) and not classify and not _names_a_set(low) and not {
            "n_classes", "n_instances"} & set(profile.said if profile is not None else {}):
        return "not_image_classification", [question.span()], (
            f"{WHAT_IT_DOES} This reads as a question about imaging, not a task to set up, so there is nothing to "
            f"recommend. {EXAMPLE}")
    kind, spans, message = _image_task(text, low, profile, image, classify)
    if also and kind in IN_SCOPE:
        message = " ".join(x for x in (message, f"Only the classification is set up here: {also} is not covered.") if x)
    if kind in IN_SCOPE:
        message = " ".join(x for x in (message, *(said for regex, said in _CAVEATS if regex.search(low))) if x) or None
    return kind, spans, message


def _image_task(text: str, low: str, profile: TaskProfile | None, image: re.Match[str] | None,
                classify: re.Match[str] | None) -> tuple[ScopeKind, list[tuple[int, int]], str | None]:
    """Medical, non-medical, vague or off-topic, once no other task has decided it."""
    said = profile.said if profile is not None else {}
    spans = profile.spans if profile is not None else {}
    content = [w for w in _WORD.findall(low) if w not in _GENERIC]
    medical = _MEDICAL.search(low)
    # "pet photos" name no PET scanner: a modality read from "pet" alone decides nothing
    modality = spans.get("modality") if said.get("modality", "").lower() not in ("pet", "") else None
    strong = modality or (medical.span() if medical else None)
    non_medical = _NON_MEDICAL.search(low)
    if non_medical and not strong and (image or classify or "n_classes" in said or _names_a_set(low)):
        return "image_classification_non_medical", [non_medical.span()], (
            f"Every run in the knowledge base is on medical images; for {text[slice(*non_medical.span())]!r} the "
            "recommendation is extrapolated from them: expect the predicted accuracy to be less reliable.")
    task_fields = [spans[f] for f in ("modality", "body_part", "n_classes", "n_instances") if f in spans]
    weak = _WEAK_MEDICAL.search(low)
    off_topic = _OFF_TOPIC.search(low)
    if off_topic and not (image or classify or {"n_classes", "n_instances"} & set(said) or _TASK_WORDS.search(low)):
        return "not_image_classification", [off_topic.span()], (  # "write me a poem about radiology"
            f"{WHAT_IT_DOES} The message asks for something else ({text[slice(*off_topic.span())]!r}), so there is "
            f"nothing to recommend. {EXAMPLE}")
    # No modality, body part or finding named: the images may not be medical at all ("sort my holiday photos").
    unnamed = None if (strong or weak or "body_part" in spans) else _UNNAMED
    if strong or task_fields or ((image or classify) and weak):
        found = [strong] if strong else []
        return "medical_image_classification", found + task_fields + ([weak.span()] if weak else []), unnamed
    if image or classify:
        if not content:
            return "too_vague", [x.span() for x in (image, classify) if x], _vague()
        return "medical_image_classification", [x.span() for x in (image, classify) if x], unnamed
    if len(content) <= 1:
        return "too_vague", [], _vague()
    return "not_image_classification", [], (
        f"{WHAT_IT_DOES} The message does not describe an image-classification task, so there is nothing to "
        f"recommend. {EXAMPLE}")


def _vague() -> str:
    return (f"{WHAT_IT_DOES} Say what the images show, how many classes and how many images there are, and any "
            f"limit (training time, CPU or GPU, model size). {EXAMPLE}")


def _other(name: str) -> str:
    return (f"{WHAT_IT_DOES} {name} is not image classification, so there is nothing to recommend or train. "
            f"Describe an image-classification task instead. {EXAMPLE}")


__all__ = ["EXAMPLE", "IN_SCOPE", "WHAT_IT_DOES", "Scope", "ScopeKind", "classify_scope"]

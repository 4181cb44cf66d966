"""The limits a task text states: parameters, model size, memory, device, and the training time budget.

Read before the counts, and blanked out of the text once read, so that "under 5M parameters" is a
parameter limit and never five minutes, and "a 6 GB GPU" is memory, never a model size. Units are
normalised: parameters as a count, sizes and memory in bytes (binary multiples: "8 GB" = 8 GiB), time
in seconds. A limit the text does not state stays None: no limit, never an invented one.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from tools.task_counts import IMAGE_NOUNS
from tools.task_numbers import COUNT, SIZE_UNIT, Reading, mentions, read_count, to_bytes

if TYPE_CHECKING:
    from tools.task_text import TaskProfile

MAX_PARAMS = 10**12  # beyond this a parameter limit is a typo

# Words that make the number after them an upper bound ("under 5M parameters", "< 20 MB").
_UPPER = (r"(?:under|below|less than|fewer than|no more than|not more than|(?:no|not|nothing) (?:bigger|larger) than|"
          r"not exceeding|smaller than|lower than|at most|max(?:imum|\.)?|up to|within|<=?|capped at|cap of|"
          r"limit(?:ed)? (?:to|of)|budget of)")
_LOWER = r"(?:at least|more than|over|above|greater than|bigger than|larger than|>=?|minimum of|min\.?)"
_PARAM_NOUN = r"(?:trainable\s+)?(?:param(?:eter)?s?|weights)\b"
_PARAMS_AFTER = re.compile(rf"(?:(?P<cue>{_UPPER}|{_LOWER})\s*)?(?P<n>{COUNT})\s*-?\s*{_PARAM_NOUN}")
_PARAMS_BEFORE = re.compile(
    rf"\b{_PARAM_NOUN}\s*(?:count|number|budget|limit|cap)?\s*(?:of|is|:|=|should be|must be|must stay|stays?)?\s*"
    rf"(?:(?P<cue>{_UPPER}|{_LOWER})\s*)?(?P<n>{COUNT})(?!\s*(?:images|classes|minutes|hours|%|gb|mb))"
)

_SIZE = re.compile(rf"(?<![\w.])(?P<n>\d+(?:[.,]\d+)?)\s*(?P<u>{SIZE_UNIT})")
# "TB" as a class: tuberculosis ("TB vs normal", "700 TB and 3500 normal").
_TB_CLASS = re.compile(r"tubercul|\btb\s*(?:vs\.?|versus|/|or|and|positive|negative|cases|patients)\b|"
                       r"\b(?:normal|healthy|negative)\s*(?:vs\.?|versus|/|or|and)\s*(?:\d[\d,]*\s*)?tb\b")
# "T4", "L4" (and a few more) also name vertebrae ("an L4 fracture", "T4-T5"): as GPUs only beside a GPU word
# or an article/number ("a T4", "Colab T4", "2x L4"), and never before a vertebra's words.
_SHORT_GPU = (r"(?:(?<=nvidia )|(?<=tesla )|(?<=colab )|(?<=kaggle )|(?<=cloud )|(?<=tier )|(?<=\ba )|(?<=\ban )|(?<=\bone )|"
              r"(?<=\btwo )|(?<=single )|(?<=\dx )|(?<=\dx))(?:t4|l4|l40s?|a10g?|a30|a40|k80|p40)s?"
              r"(?!\s*(?:-\s*[tlsc]\d|vertebra\w*|level|disc|segment|spine))|(?:t4|l4|a10g?)(?=\s*(?:gpus?|card)\b)")
# A GeForce card by its number alone ("have a 3090", "my 4090", "two 2080 Tis"): after an article or a count, or
# before a GPU word, never a year or a count of images ("a 2020 study", "3090 images").
_BARE_GEFORCE = (r"(?:(?<=\ba )|(?<=\ban )|(?<=\bmy )|(?<=\bour )|(?<=\bone )|(?<=\btwo )|(?<=\bfour )|(?<=single )|(?<=\bold )|"
                 r"(?<=\dx )|(?<=\dx))[1-5]0[5-9]0(?:\s*(?:ti|super))?(?=s?\b(?!\s*(?:images|studies|scans|patients|cases)))"
                 r"|[1-5]0[5-9]0(?:\s*(?:ti|super))?(?=s?\s*(?:gpus?|card|\(?\s*\d+\s*gb))")
_GPU_NAME = re.compile(
    r"(?:\b|(?<=\dx))(?:nvidia\s+)?(?:geforce\s+)?(?P<name>rtx\s*a?\d{4}(?:\s*(?:ti|super))?|gtx\s*\d{3,4}(?:\s*ti)?|"
    rf"[ahv]100|h200|a[456]000|p100|titan\s*(?:rtx|v|xp?)?|quadro\s*\w+|radeon\s*(?:rx\s*)?\w*|mi\d{{2,3}}x?|{_SHORT_GPU}|"
    rf"{_BARE_GEFORCE})"
    r"s?\b"
)
# What a size is the size of, by the nearest cue word around it.
_SIZE_CUES = tuple((kind, re.compile(pattern)) for kind, pattern in (
    ("gpu_memory_bytes", r"\bvram\b|\bgpus?(?:\s+(?:memory|ram))?\b|graphics card|video memory|\bcuda\b|" + _GPU_NAME.pattern),
    ("ram_bytes", r"(?<!gpu )(?<!gpus )(?<!video )\b(?:ram|memory)\b"),  # ("GPU memory <= 8 GiB" is the GPU's)
    ("max_model_bytes", r"\bmodels?\b|\bweights\b|\bcheckpoints?\b|\bfile\b|footprint|\bdisk\b|\bonnx\b|\btflite\b|"
                        r"\bsize\b|\bdeploy\w*|\bphones?\b|\bmobile\b|\bapps?\b|\bedge\b|\bembedded\b|"
                        r"\bheav(?:y|ier)\b|\blight(?:er|weight)?\b"),  # "nothing heavier than 20 MB": the model's weight
    ("data", r"\bdata(?:set| set)?\b|\bimages\b|\bpngs?\b|\bjpe?gs?\b|\bdicoms?\b|\barchive\b|\bzip\b|\bfolder\b"),
))

# Words that say a device is where the trained model runs, not where it trains.
_DEPLOYED = re.compile(r"\binference\b|\bdeploy\w*|\bin production\b|\bon-device\b|\bedge device\b|\bto run on\b|"
                       r"\bruns? on (?:a |an |the |my )?(?:phone|iphone|android|raspberry|pi\b|jetson|mobile|microcontroller)")
_GPU_NEGATED = re.compile(
    r"\b(?:no|without(?: a| any)?|don'?t have(?: a| any)?|do not have(?: a| any)?|lack(?:ing)?(?: a)?|"
    r"no access to(?: a)?|not on(?: a)?|never|sin|ohne|sans|senza|sem|keine?|pas de|pas d'une?|no hay|n'ai pas de|"
    r"non ho)\s+(?:\w+\s+)?(?:gpus?|cuda|graphics card)\b|"
    r"\b(?:gpus?|cuda)\s+(?:is\s+|are\s+)?(?:not available|unavailable|isn'?t available|not an option)|"
    r"\bgpus?\s*[:=-]\s*(?:none|no|n/?a|nil|0)\b"  # "GPU: none"
)
_CPU_WORD = re.compile(r"\bcpu[- ]only\b|\bonly (?:a |the |my )?cpus?\b|\bcpus?\b")
_CPU_WEAK = re.compile(r"\blaptop\b|\bnotebook\b|\bmac(?:book)?\b|\bimac\b|\bapple (?:silicon|m[1-4])\b|\braspberry\b")
# A whole machine: a size beside it and no other cue in its clause is its memory.
_MACHINE = re.compile(r"\blaptops?\b|\bnotebooks?\b|\bmac(?:book)?s?(?:\s+(?:air|pro))?\b|\bimacs?\b|\bdesktops?\b|\bpcs?\b|"
                      r"\bworkstations?\b|\bcomputers?\b|\bmachines?\b|\bservers?\b|\bvms?\b|\bapple (?:silicon|m[1-4])\b")
_GPU_WORD = re.compile(r"\bgpus?\b|\bcuda\b|\bgraphics card\b|\bnvidia\b|\bvram\b")
# A CPU's core count: "8-core CPU", "16 cores", "4 vCPUs", "quad-core laptop". It names a CPU, and the time
# model reads the count (records say "cpu:2 cores").
_CORE_WORDS = {"dual": 2, "two": 2, "quad": 4, "four": 4, "hexa": 6, "six": 6, "octa": 8, "eight": 8, "twelve": 12,
               "sixteen": 16}
# "12 core biopsies" is tissue: a single "core" counts only before a machine word.
_CORES = re.compile(rf"(?<![\w.])(?P<n>\d{{1,3}}|{'|'.join(_CORE_WORDS)})\s*-?\s*(?:(?:physical|cpu)\s+)?"
                    r"(?:cores\b(?!\s+of\b)|v?cpus\b|core\s*(?=(?:intel\s+|amd\s+|arm\s+)?(?:cpus?|processors?|machines?|"
                    r"laptops?|box|servers?|workstations?|desktops?|computers?|pcs?|vms?|nodes?|macs?|macbooks?|xeons?|"
                    r"ryzens?|i[3579]s?)\b))")

_TIME_UNITS: dict[str, float] = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "min": 60, "mins": 60, "minute": 60, "minutes": 60, "m": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    # es/pt, fr, de, it ("tengo 30 minutos", "1 ora di tempo", "2 Stunden")
    "segundo": 1, "segundos": 1, "seconde": 1, "secondes": 1, "sekunde": 1, "sekunden": 1, "secondi": 1,
    "minuto": 60, "minutos": 60, "minuten": 60, "minuti": 60,
    "hora": 3600, "horas": 3600, "heure": 3600, "heures": 3600, "stunde": 3600, "stunden": 3600, "ora": 3600, "ore": 3600,
    "dia": 86400, "dias": 86400, "jour": 86400, "jours": 86400, "tag": 86400, "tage": 86400, "giorno": 86400,
    "giorni": 86400,
}
_UNITS = "|".join(sorted(_TIME_UNITS, key=len, reverse=True))  # every unit the table knows, longest first
_TIME_WORDS = r"(?:a\s+)?(?:quarter|third|three\s+quarters)\s+of\s+an?|half\s+an?|an|a|one|two|three|four|five|six|eight|ten|twelve|fifteen|twenty|thirty|forty|forty-five|sixty|ninety"
_TIME_RE = re.compile(
    r"(?<![\w.-])(?<!\d,)(?:(?P<low>\d+(?:\.\d+)?)\s*(?:-|to)\s*)?"  # (not the "000 h" of "2,000 H&E tiles")
    rf"(?P<num>-\d+(?:\.\d+)?|\d+(?:\.\d+)?|(?:{_TIME_WORDS})\b)(?P<half>\s+and a half)?"  # "- 30 min": a dash
    r"\s*-?\s*(?:(?:gpu|cpu|training|compute|wall[- ]?clock)\b[- ]?\s*)?"  # (not the "s" of "2 GPUs")
    rf"(?P<unit>{_UNITS})\b(?!\s*&)(?P<half2>\s+and a half\b)?",  # ("H&E" is a stain)
)
_HOURS_MINUTES = re.compile(r"(?<![\w.])(\d+)\s*(?:h|hrs?|hours?)\s*(?:and\s+)?(\d{1,2})\s*(?:m|mins?|minutes?)?(?![\w.])")
_MONEY = re.compile(r"\$|\u20ac|\u00a3|dollars?|usd|euros?|eur|pounds?|gbp|bucks|credits?|cents?")
_BUDGET_PHRASE = re.compile(
    r"\b(?:budget|time limit|time budget|deadline)\b\s*(?:of|is|:|=|to|about|around|~)?\s*"
    r"(?P<num>-?\d+(?:\.\d+)?)\s*-?\s*(?P<unit>[a-z%]+)?"
)
# A key with its unit, as a config or JSON writes it: "budget_minutes": 15, time_limit_s=600.
_BUDGET_KEY = re.compile(r"\b(?:budget|time_?limit|time_?budget|max_?time|max_?train(?:ing)?_?time)_(?P<unit>seconds|secs?|"
                         r"minutes|mins?|hours|hrs?|[smh])\s*(?::|=)\s*(?P<num>\d+(?:\.\d+)?)(?!\w|\.\d)")
_BUDGET_CUE = re.compile(r"(?:budget|time limit|limit|deadline|at most|within|under|max(?:imum)?|only|have|got|in|for|"
                         r"about|around|~|finish|train(?:ing)?|leave)\W*(?:\w+\W+){0,3}$")
# What follows "2d"/"3d" when it counts dimensions, not days.
_DIMENSION_NOUN = re.compile(r"\s*-?\s*(?:ct|mri?|pet|us|ultrasound|volumes?|scans?|images?|imaging|data|slices?|stacks?|"
                             r"cnns?|conv\w*|models?|inputs?|networks?|unets?|medical|printing|reconstruct\w*)\b")
# A duration of inference, per image: a latency, not the time to train.
# ("10 min per experiment" is the time to train one run: a budget)
_PER_ITEM = re.compile(r"^\s*(?:per|each|an?\s+(?:image|scan|sample|slide|picture|prediction|case))\b"
                       r"(?!\s+(?:experiment|run|trial|job|training|model|attempt|config\w*|try|fit)\b)")
_LATENCY_CUE = re.compile(r"(?:inference|latency|predict\w*|per image|response)[^\w,.;]*(?:\w+[^\w,.;]+){0,4}$")
_COUNT_WORDS = re.compile(r"^(?:images?|scans?|photos?|pictures?|classes|class|categories|px|pixels?|gb|mb|epochs?|%|"
                          r"percent|samples?|slides?|patches|tiles?|params|parameters)$")


def read_limits(r: Reading, p: TaskProfile) -> None:
    """Parameters, model size and memory, device, then the time budget (in that order: each blanks its words)."""
    _read_params(r, p)
    _read_sizes(r, p)
    _read_device(r, p)
    _read_budget(r, p)


def _read_params(r: Reading, p: TaskProfile) -> None:
    if not mentions(r.low, "param", "weights"):
        return
    for regex in (_PARAMS_AFTER, _PARAMS_BEFORE):
        for m in regex.finditer(r.low):
            if re.fullmatch(r"one|zero|a", m.group("n").strip()):
                continue
            number = read_count(m.group("n"))
            cue = (m.group("cue") or "").strip()
            if cue and re.fullmatch(_LOWER, cue):
                r.notes.append(f"{r.text[m.start():m.end()].strip()!r} is a lower bound, not a limit; not used")
                r.blank(m.start(), m.end())
                continue
            if not math.isfinite(number.value) or number.value > MAX_PARAMS:
                raise ValueError(f"a parameter limit must be at most {MAX_PARAMS:,}, but the text says "
                                 f"{r.text[m.start():m.end()].strip()[:80]!r}; write it as e.g. 'under 5M parameters'.")
            if number.value < 1000:  # "under 5 params": a unit left out; guessing it would invent a limit
                r.notes.append(f"{r.text[m.start():m.end()].strip()!r} is too small for a model; write e.g. '5M'")
                r.blank(m.start(), m.end())
                continue
            p.max_params = int(number.value)
            r.take("max_params", m.start(), m.end(), approximate=number.approximate)
            if not cue:
                r.notes.append(f"{r.said['max_params']!r} read as the largest model allowed")
            return


def _read_sizes(r: Reading, p: TaskProfile) -> None:
    if not _SIZE.search(r.low):
        return
    cues = [(m.start(), m.end(), kind) for kind, pattern in _SIZE_CUES for m in pattern.finditer(r.low)]
    for m in list(_SIZE.finditer(r.low)):
        clause_start = max(r.low.rfind(c, 0, m.start()) for c in ".;,(") + 1
        clause_end = min([i for i in (r.low.find(c, m.end()) for c in ".;,)") if i >= 0] or [len(r.low)])
        near = [(min(abs(s - m.end()), abs(m.start() - e)), kind) for s, e, kind in cues
                if clause_start <= s and e <= clause_end]
        if not near:  # "RTX 4090 (24 GB)": the clause is the parenthesis; look just before it
            # ("a phone (max 10MB)": a model to fit on it)
            near = [(m.start() - e, kind) for s, e, kind in cues
                    if kind in ("gpu_memory_bytes", "max_model_bytes") and 0 <= m.start() - e <= 8]
        if not near and (paren := r.low.rfind("(", 0, m.start())) >= clause_start - 1 and paren >= 0:
            # "the model has to be tiny (<1 MB)": the clause the parenthesis sits in says what it is the size of
            outer = max(r.low.rfind(c, 0, paren) for c in ".;,") + 1
            near = [(paren - e, kind) for s, e, kind in cues if outer <= s and e <= paren]
            if m.group("u")[0] in "gt":  # "my laptop (16 GB)"
                near += [(paren - x.end(), "ram_bytes") for x in _MACHINE.finditer(r.low, outer, paren)]
        if m.group("u")[0] in "gt":  # "a MacBook M1 with 8GB", "my machine has 32GB": the machine's memory
            near += [(min(abs(s.start() - m.end()), abs(m.start() - s.end())), "ram_bytes")
                     for s in _MACHINE.finditer(r.low, clause_start, clause_end)]
        kind = min(near)[1] if near else None
        sentence = (max(r.low.rfind(c, 0, m.start()) for c in ".;") + 1,
                    min([i for i in (r.low.find(c, m.end()) for c in ".;") if i >= 0] or [len(r.low)]))
        if kind in ("ram_bytes", "gpu_memory_bytes") and _DEPLOYED.search(r.low, *sentence):
            # "a Raspberry Pi 4 (4GB RAM) for inference": the device the model runs on, not the one it trains on
            r.notes.append(f"{r.text[m.start():m.end()]!r} is the memory of the device the model is deployed on, "
                           "not of the one it trains on; not read as a training limit")
            continue
        if kind is None and m.group("u") == "tb" and _TB_CLASS.search(r.low):
            continue  # "700 TB and 3500 normal": tuberculosis cases, not terabytes
        if m.group("u") == "go" and r.text[m.start("u"):m.end("u")] != "Go":
            continue  # French gigaoctets are written "Go"; "2 go" is a word
        value = float(m.group("n").replace(",", "."))
        if kind is None or kind == "data" or getattr(p, kind) is not None or value <= 0:
            if kind is None:
                r.notes.append(f"{r.text[m.start():m.end()]!r} names no model, GPU or RAM; not read as a limit")
            continue
        setattr(p, kind, to_bytes(value, m.group("u")))
        r.take(kind, m.start(), m.end())
        if kind == "gpu_memory_bytes" and "device" not in r.said:
            p.device = "cuda"


# Cloud machines by their instance type ("a g4dn.xlarge", "p3.2xlarge", "a2-highgpu-1g"): the GPU a family carries,
# or none. A CPU family's vCPUs follow its size (large 2, xlarge 4, Nxlarge 4N, on AWS's c/m/r/t families).
_GPU_INSTANCES = {"g4dn": "an NVIDIA T4", "g5": "an NVIDIA A10G", "g6": "an NVIDIA L4", "gr6": "an NVIDIA L4",
                  "g6e": "an NVIDIA L40S", "p2": "an NVIDIA K80", "p3": "an NVIDIA V100", "p3dn": "an NVIDIA V100",
                  "p4d": "an NVIDIA A100", "p4de": "an NVIDIA A100", "p5": "an NVIDIA H100", "p5e": "an NVIDIA H200",
                  "p5en": "an NVIDIA H200", "a2": "an NVIDIA A100", "a3": "an NVIDIA H100", "g2": "an NVIDIA L4"}
_INSTANCE = re.compile(
    r"(?<![\w.-])(?:(?P<aws>g4dn|g5|g6e?|gr6|p2|p3dn|p3|p4de?|p5e?n?|(?P<cpu>[cmrt][2-8][a-z]{0,3}))\.(?P<size>(?P<n>\d{1,2})?xlarge|"
    r"large|medium|small|micro|nano|metal)|(?P<gcp>a2|a3|g2)-(?:highgpu|ultragpu|megagpu|edgegpu|standard)-\d+g?)(?![\w.-])")
# Hosted notebooks whose runtime may or may not have a GPU: without one named, the device is not read from them.
_NOTEBOOK_HOST = re.compile(r"\b(?:google\s+)?colab(?:oratory)?\b|\bkaggle\b(?:\s+(?:notebooks?|kernels?))?|\bsagemaker studio lab\b")


def _read_instance(r: Reading, p: TaskProfile) -> tuple[re.Match[str] | None, re.Match[str] | None]:
    """A cloud instance type the text names: (its match if it carries a GPU, its match if it is CPU-only)."""
    m = _INSTANCE.search(r.low)
    if m is None:
        return None, None
    words = r.text[m.start():m.end()]
    family = m.group("aws") or m.group("gcp")
    if m.group("cpu"):
        n = m.group("n")
        vcpus = {"large": 2, "xlarge": 4}.get(m.group("size")) or (4 * int(n) if n else None)
        if vcpus and p.cpu_cores is None:
            p.cpu_cores = vcpus
            r.take("cpu_cores", m.start(), m.end(), blank=False)
        r.notes.append(f"{words!r} read as a cloud machine without a GPU" + (f", {vcpus} vCPUs" if vcpus else ""))
        return None, m
    r.notes.append(f"{words!r} read as a cloud machine with {_GPU_INSTANCES[family]} GPU")
    if p.gpu_name is None:
        start, end = r.words(m.start(), m.end())
        p.gpu_name = r.text[start:end]
        r.said["gpu_name"], r.spans["gpu_name"] = p.gpu_name, (start, end)
    return m, None


# "CPU only, 8 threads": the threads a CPU run may use (torch's), taken as its cores where a CPU is named.
_THREADS = re.compile(r"(?<![\w.])(?P<n>\d{1,3})\s*-?\s*(?:cpu\s+)?threads\b")


def _read_device(r: Reading, p: TaskProfile) -> None:
    cores = _CORES.search(r.low)
    if cores is None and _CPU_WORD.search(r.low) and (cores := _THREADS.search(r.low)):
        r.notes.append(f"{r.text[cores.start():cores.end()]!r}: training times are quoted for as many cores")
    if cores:
        n = _CORE_WORDS.get(cores.group("n")) or int(cores.group("n"))
        if 1 <= n <= 512:
            p.cpu_cores = n
            r.take("cpu_cores", cores.start(), cores.end(), blank=False)
        cores = cores if p.cpu_cores else None
    name = _GPU_NAME.search(r.low)
    if name is None and _NOTEBOOK_HOST.search(r.low):  # "Colab Pro, T4": beside a hosted notebook a T4 is its GPU
        name = re.search(r"(?<![\w-])(?P<name>t4|l4|p100|v100|a100|k80|p4)(?![\w-])", r.low)
    if name:
        start, end = r.words(name.start("name"), name.end("name"))
        p.gpu_name = r.text[start:end]
        r.said["gpu_name"], r.spans["gpu_name"] = p.gpu_name, (start, end)
    gpu_box, cpu_box = _read_instance(r, p)
    negated = _GPU_NEGATED.search(r.low)
    cpu, gpu = _CPU_WORD.search(r.low) or cpu_box, _GPU_WORD.search(r.low) or name or gpu_box
    if negated:
        m, p.device = negated, "cpu"
    elif cpu and (gpu is None or cpu.start() < gpu.start()):
        m, p.device = cpu, "cpu"
    elif gpu:
        m, p.device = gpu, "cuda"
    elif "gpu_memory_bytes" in r.said:
        return  # "a 6 GB card": the memory said it
    else:
        m = _CPU_WEAK.search(r.low) or cores
        if m is None:
            if host := _NOTEBOOK_HOST.search(r.low):
                r.notes.append(f"{r.text[host.start():host.end()]!r} does not say whether its runtime has a GPU: "
                               "a CPU is assumed; name the GPU (e.g. 'Colab with a T4') for GPU training times")
            return
        p.device = "cpu"
    r.take("device", m.start(), m.end(), blank=False)
    for box in (name, gpu_box, cpu_box):
        if box:
            r.blank(box.start(), box.end())  # "RTX 3060", "p3.2xlarge" are no counts of anything
    if cores:
        r.blank(cores.start(), cores.end())  # "8 cores" is no count of images or classes


def _seconds(m: re.Match[str]) -> float:
    num = m.group("num").strip().replace(" ", "")
    value = {"halfan": 0.5, "halfa": 0.5, "a": 1.0, "an": 1.0}.get(num)
    if value is None and (share := re.fullmatch(r"(?:a)?(quarter|third|threequarters)ofan?", num)):
        value = {"quarter": 0.25, "third": 1 / 3, "threequarters": 0.75}[share.group(1)]  # "a quarter of an hour"
    if value is None:
        value = read_count(num).value if not num.startswith("-") else -read_count(num[1:].strip()).value
    if m.group("half") or m.group("half2"):
        value += 0.5
    return value * _TIME_UNITS[m.group("unit")]


def _read_budget(r: Reading, p: TaskProfile) -> None:
    # "1h30", "1 hour 30 minutes": read whole, then hidden from the single-unit reading below
    joined = list(_HOURS_MINUTES.finditer(r.low))
    low = r.low
    for m in joined:
        low = low[:m.start()] + " " * (m.end() - m.start()) + low[m.end():]
    if keyed := _BUDGET_KEY.search(low):
        return _set_budget(r, p, float(keyed.group("num")) * _TIME_UNITS[keyed.group("unit")], keyed.start(), keyed.end())
    explicit = _BUDGET_PHRASE.search(low)  # "budget of N <unit>" must carry a time unit
    if explicit:
        unit = (explicit.group("unit") or "").lower()
        if unit in _TIME_UNITS:
            _set_budget(r, p, float(explicit.group("num")) * _TIME_UNITS[unit], explicit.start(), explicit.end())
            return
        if _MONEY.match(unit) or _MONEY.search(low, max(0, explicit.start("num") - 2), explicit.start("num") + 1):
            # "a budget of 200 dollars", "budget: $300": money, not time; the limits that matter are said apart
            r.notes.append(f"{r.text[explicit.start():explicit.end()].strip()!r} is money, not a training time; "
                           "no time budget read (say one as e.g. '2 hours on a GPU')")
            r.blank(explicit.start(), explicit.end())
        elif not unit or not _COUNT_WORDS.match(unit):
            raise ValueError(
                f"cannot read the time budget {r.text[explicit.start():explicit.end()].strip()!r}: "
                + (f"{unit!r} is not a unit of time" if unit else "it has no unit")
                + "; write it as e.g. '15 minutes', '1 hour' or '90 s'."
            )
    hits: list[tuple[bool, int, int, float]] = []  # (no cue before it, start, end, seconds)
    per_item = []
    for m in joined:
        before = low[max(0, m.start() - 50): m.start()]
        hits.append((not _BUDGET_CUE.search(before), m.start(), m.end(), int(m.group(1)) * 3600 + int(m.group(2)) * 60))
    for m in _TIME_RE.finditer(low):
        num, unit, after = m.group("num"), m.group("unit"), low[m.end():]
        if unit == "m" and re.match(rf"\s*(?:[a-z-]+\s+){{0,3}}(?:{IMAGE_NOUNS}\b|param|weights|of them\b)", after):
            continue  # "5m images", "1.2M chest radiographs": millions of images, not minutes
        if unit == "m" and re.search(r"\bn\s*[=:]\s*~?\s*$", low[:m.start()]):
            continue  # "n=2.5m": a count (tools.task_counts reads it), not minutes
        if unit == "m" and "." in num and re.match(r"\s*(?:[,;.)]|$)", after) and re.search(
                r"(?:^|[,;:(]|\band)\s*(?:~|about|around|approx\.?|roughly)?\s*$", low[:m.start()]):
            continue  # "chest x-rays, 1.2m, 14 classes": a count standing alone; minutes are not written in tenths
        if unit in ("s", "d") and not re.match(r"\d", num):
            continue  # "a s..." / "a d" are words, not durations
        if unit == "d" and num in ("2", "3", "4") and m.start("unit") == m.end("num") and (
                r.text[m.start("unit")] == "D" or _DIMENSION_NOUN.match(after)):
            continue  # "3D CT volumes", "a 3d cnn": dimensions, not days
        before = low[max(0, m.start() - 50): m.start()]
        if _PER_ITEM.match(after) or _LATENCY_CUE.search(before):
            per_item.append(m)
            continue
        hits.append((not _BUDGET_CUE.search(before), m.start(), m.end(), _seconds(m)))
    for m in per_item:
        r.blank(m.start(), m.end())
    if not hits:
        if per_item:
            r.notes.append(f"{r.text[per_item[0].start():per_item[0].end()]!r} is a time per image, not a training budget")
        if re.search(r"\bovernight\b|\bover the weekend\b|\bby tomorrow\b", low):
            r.notes.append("the text gives no duration for training ('overnight' and the like); no budget assumed")
        return
    hits.sort(key=lambda h: (h[0], h[1]))
    _, start, end, seconds = hits[0]
    if len(hits) + len(per_item) > 1:
        r.notes.append(f"the text names several durations; the time budget is read from {r.text[start:end].strip()!r}")
    _set_budget(r, p, seconds, start, end)
    for _, other_start, other_end, _ in hits[1:]:
        r.blank(other_start, other_end)


def _set_budget(r: Reading, p: TaskProfile, seconds: float, start: int, end: int) -> None:
    words = r.text[start:end].strip()
    if not math.isfinite(seconds):  # a 400-digit number of minutes reads as inf
        raise ValueError(f"the time budget must be a finite number, but the text says {words[:80]!r}.")
    if seconds <= 0:
        raise ValueError(f"the time budget must be positive, but the text says {words!r}; write it as e.g. '15 minutes'.")
    p.budget_seconds = float(seconds)
    r.take("budget", start, end)


__all__ = ["MAX_PARAMS", "read_limits"]

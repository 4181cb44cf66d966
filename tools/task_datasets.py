"""Public datasets a task text names, with their published counts.

"fine-tune on HAM10000" says 7 classes, 10,015 images and a 58x imbalance to anyone who knows the
dataset; read without this table it gave the defaults (2 classes, 2,000 images, a ratio of 2), and the
meta-model predicted for a binary task. Each entry holds what its paper or challenge published, with
the citation, and only datasets whose counts are fixed by the name (a year or version where the name
alone is ambiguous: "ISIC" is 2 to 8 classes depending on the year, so it fills no counts, and a note says
which name would). A multi-label set ("CheXpert": 14 observations, several per image) fills none either: this
tool trains one label per image, and the note says so.

A figure from the name fills only what the text did not say: "a 3-class subset of HAM10000" keeps its
3 classes and takes no published sizes (class sizes are used only where the text's own counts agree). Each filled field shows the name as its words and a note says
where the figures come from. "like HAM10000" / "HAM10000-style" mark them approximate. Two or more
datasets named: none is used, and a note says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tools.task_counts import BALANCED
from tools.task_numbers import Reading


@dataclass(frozen=True)
class PublicDataset:
    """One public dataset: its published class sizes (or only its size and class count)."""

    name: str
    pattern: str
    n_classes: int
    n_images: int
    source: str
    sizes: tuple[int, ...] | None = None  # per class, as published; sums to n_images
    modality: str | None = None  # where the modality table of tools.task_text does not already know the name
    body_part: str | None = None
    resolution: int | None = None  # only where the name fixes it (MedMNIST's 28 px, PCam's 96 px)
    channels: int | None = None


_MEDMNIST = "Yang et al., MedMNIST v2, Sci. Data 10:41 (2023)"


def _mnist(name: str, n_classes: int, n: int, modality: str, body: str | None, channels: int,
           sizes: tuple[int, ...] | None = None) -> PublicDataset:
    # MedMNIST+ ("pathmnist_128", "MedMNIST+ 224") has other sizes: the resolution the text says then wins
    return PublicDataset(name, rf"\b{name.lower()}(?:v2)?\b\+?", n_classes, n, _MEDMNIST, sizes, modality, body,
                         28, channels)


_HAM = (6705, 1113, 1099, 514, 327, 142, 115)
_PBC = (3329, 3117, 2895, 2348, 1551, 1420, 1218, 1214)
DATASETS: tuple[PublicDataset, ...] = (
    PublicDataset("HAM10000", r"\bham[- ]?10000\b|\bham[- ]?10k\b|\bisic[- ]?2018\b", 7, 10015,
                  "Tschandl, Rosendahl & Kittler, Sci. Data 5:180161 (2018)", _HAM),
    PublicDataset("ISIC 2019", r"\bisic[- ]?(?:challenge[- ]?)?2019\b", 8, 25331,
                  "ISIC 2019 challenge training set (Tschandl et al. 2018; Codella et al. 2018; Combalia et al. 2019)",
                  (12875, 4522, 3323, 2624, 867, 628, 253, 239)),
    PublicDataset("ISIC 2020", r"\bisic[- ]?(?:challenge[- ]?)?2020\b|\bsiim[- ]?isic\b", 2, 33126,
                  "Rotemberg et al., Sci. Data 8:34 (2021)", (32542, 584)),
    PublicDataset("APTOS 2019", r"\baptos(?:[- ]?2019)?\b", 5, 3662,
                  "APTOS 2019 Blindness Detection (Kaggle), training set", (1805, 999, 370, 295, 193)),
    PublicDataset("EyePACS", r"\beyepacs\b", 5, 35126,
                  "Kaggle Diabetic Retinopathy Detection (2015, EyePACS), training set", (25810, 5292, 2443, 873, 708)),
    PublicDataset("Messidor", r"\bmessidor\b(?![- ]?2)", 4, 1200, "Decencière et al., Image Anal. Stereol. 33:231 (2014)",
                  (546, 254, 247, 153)),
    PublicDataset("IDRiD", r"\bidrid\b", 5, 516, "Porwal et al., Data 3:25 (2018), disease grading set",
                  (168, 168, 93, 62, 25)),
    PublicDataset("Kvasir v2", r"\bkvasir(?:[- ]?v?2)?\b", 8, 8000, "Pogorelov et al., ACM MMSys 2017 (Kvasir v2)",
                  (1000,) * 8),
    PublicDataset("HyperKvasir", r"\bhyper-?kvasir\b", 23, 10662, "Borgli et al., Sci. Data 7:283 (2020), labelled images"),
    PublicDataset("PatchCamelyon", r"\bpcam\b|\bpatch-?camelyon\b", 2, 327680, "Veeling et al., MICCAI 2018",
                  (163840, 163840), "histopathology", "lymph node", 96, 3),
    PublicDataset("BreakHis", r"\bbreakhis\b", 2, 7909, "Spanhol et al., IEEE Trans. Biomed. Eng. 63:1455 (2016)",
                  (5429, 2480), "histopathology", "breast"),
    PublicDataset("NCT-CRC-HE-100K", r"\bnct-?crc-?he(?:-?100k)?\b", 9, 100000, "Kather et al., PLOS Med. 16:e1002730 (2019)",
                  None, "histopathology", "colon"),
    PublicDataset("LC25000", r"\blc-?25000\b|\blc25k\b", 5, 25000, "Borkowski et al., arXiv:1912.12142 (2019)",
                  (5000,) * 5, "histopathology", None),
    PublicDataset("PBC", r"\bpbc\b(?=[^.;]{0,30}\b(?:blood|cells?|data ?set)\b)|\bacevedo\b", 8, 17092,
                  "Acevedo et al., Data Brief 30:105474 (2020)", _PBC, "light microscopy", "blood"),
    PublicDataset("BUSI", r"\bbusi\b", 3, 780, "Al-Dhabyani et al., Data Brief 28:104863 (2020)", (437, 210, 133),
                  "ultrasound", "breast"),
    PublicDataset("Shenzhen TB set", r"\bshenzhen\b(?=[^.;]{0,30}\b(?:tb|tubercul\w*|cxrs?|x-?rays?|chest|data ?set)\b)", 2, 662,
                  "Jaeger et al., Quant. Imaging Med. Surg. 4:475 (2014)", (336, 326), "x-ray", "chest"),
    PublicDataset("Montgomery TB set", r"\bmontgomery\b(?=[^.;]{0,30}\b(?:tb|tubercul\w*|cxrs?|x-?rays?|chest|data ?set)\b)", 2,
                  138, "Jaeger et al., Quant. Imaging Med. Surg. 4:475 (2014)", (80, 58), "x-ray", "chest"),
    PublicDataset("MURA", r"\bmura\b(?=[^.;]{0,40}\b(?:x-?rays?|radiographs?|musculoskeletal|bones?|upper extremity|"
                  r"data ?set)\b)", 2, 40561, "Rajpurkar et al., arXiv:1712.06957 (2017)", None, "x-ray", "bone"),
    PublicDataset("SIPaKMeD", r"\bsipakmed\b", 5, 4049, "Plissiti et al., ICIP 2018", (831, 825, 813, 793, 787),
                  "light microscopy", "cervix"),
    PublicDataset("Herlev", r"\bherlev\b", 7, 917, "Jantzen et al., NiSIS 2005", (197, 182, 150, 146, 98, 74, 70),
                  "light microscopy", "cervix"),
    _mnist("PathMNIST", 9, 107180, "histopathology", "colon", 3),
    _mnist("DermaMNIST", 7, 10015, "dermoscopy", "skin", 3, _HAM),
    _mnist("OCTMNIST", 4, 109309, "oct", "eye", 1),
    _mnist("PneumoniaMNIST", 2, 5856, "x-ray", "chest", 1),
    _mnist("RetinaMNIST", 5, 1600, "fundus", "eye", 3),
    _mnist("BreastMNIST", 2, 780, "ultrasound", "breast", 1, (570, 210)),
    _mnist("BloodMNIST", 8, 17092, "light microscopy", "blood", 3, _PBC),
    _mnist("TissueMNIST", 8, 236386, "light microscopy", "kidney", 1),
    _mnist("OrganAMNIST", 11, 58830, "ct", "abdomen", 1),
    _mnist("OrganCMNIST", 11, 23583, "ct", "abdomen", 1),
    _mnist("OrganSMNIST", 11, 25211, "ct", "abdomen", 1),
)
_PATTERNS = [(d, re.compile(d.pattern)) for d in DATASETS]
# Names that fix no counts: a family of sets that differ by year or version, or a set whose images carry several
# labels each (this tool trains one label per image). Named alone, they fill nothing and say why. (pattern, note)
_UNFIXED: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bisic\b(?![- ]?(?:challenge[- ]?)?20\d\d)"),
     "names the ISIC challenge sets, which differ by year (2016-2020: 2 to 8 classes, 900 to 33,126 training images; "
     "Gutman et al., arXiv:1605.01397, to Rotemberg et al., Sci. Data 8:34): "
     "name the year ('ISIC 2019') or say the classes and images of yours"),
    (re.compile(r"\bchexpert\b"),
     "labels 14 observations per chest radiograph, several per image (224,316 radiographs; Irvin et al., AAAI 2019)"),
    (re.compile(r"\bchestx-?ray-?14\b|\bnih chest x-?rays?\b"),
     "labels 14 findings per chest x-ray, several per image (112,120 images; Wang et al., CVPR 2017)"),
    (re.compile(r"\bmimic-?cxr\b"),
     "labels 14 findings per chest radiograph, several per image (Johnson et al., Sci. Data 6:317, 2019)"),
)
MULTI_LABEL_NOTE = ("this tool trains one label per image, so the recommendation is for {k} exclusive classes; for "
                    "several labels per image, train one two-class model per label")
# The data is like the named set, not the set itself: its figures are a guide, marked approximate.
_LIKE_BEFORE = re.compile(r"\b(?:like|similar to|such as|e\.?g\.?|akin to|resembl\w+|comparable to|modell?ed on|"
                          r"inspired by|as in)\W+(?:the\s+)?(?:public\s+)?$")
_LIKE_AFTER = re.compile(r"\W{0,2}(?:style|like|type|alike)\b")
_SUBSET = re.compile(r"\b(?:subset|part|portion|sample|fraction|some|few|slice)\s+of\s+(?:the\s+)?$")


def read_public_dataset(r: Reading, p: Any, pending: dict[str, Any] | None) -> None:
    """Fill what the text did not say from the public dataset it names (`DATASETS`); see the module docstring.

    `pending` is an imbalance percentage read earlier that waits for the class count: it wins over the
    published sizes. Runs before `finish_imbalance`, so a bare "imbalanced" (a hinted ratio) gives way to them."""
    hits: dict[str, tuple[PublicDataset, re.Match[str]]] = {}
    for d, pattern in _PATTERNS:
        if (m := pattern.search(r.low)) and d.name not in hits:
            hits[d.name] = (d, m)
    if "HyperKvasir" in hits:
        hits.pop("Kvasir v2", None)
    if not hits:
        for pattern, note in _UNFIXED:
            if m := pattern.search(r.low):
                several = "several per image" in note
                own = f"the recommendation is for the {p.n_classes} exclusive classes the text names" \
                    if "n_classes" in r.said else ("train one two-class model per label, or say the exclusive classes "
                                                   "and images of yours")
                r.notes.append(f"{r.text[m.start():m.end()]!r} {note}" + (
                    f"; this tool trains one label per image, so none of its counts is used: {own}" if several else ""))
        return
    if len(hits) > 1:
        r.notes.append(f"the text names {len(hits)} public datasets ({', '.join(sorted(hits))}); none of their published "
                       "counts is used: say the classes and images of yours")
        return
    d, m = next(iter(hits.values()))
    before = r.low[max(0, m.start() - 30):m.start()]
    subset = bool(_SUBSET.search(before))
    like = bool(_LIKE_BEFORE.search(before) or _LIKE_AFTER.match(r.low, m.end()))
    # the published sizes hold where the text's own counts (a grading scale's grades, a total) agree with them
    counted = not subset and ("n_classes" not in r.said or p.n_classes == d.n_classes) and (
        "n_instances" not in r.said or p.n_instances == d.n_images)
    filled: list[str] = []

    def fill(field: str, value: Any, label: str) -> None:
        if value is None or field in r.said:
            return
        setattr(p, field, value)
        r.take(field, m.start(), m.end(), approximate=like, blank=False)
        filled.append(label)

    fill("modality", d.modality, f"modality {d.modality}")
    fill("body_part", d.body_part, f"body part {d.body_part}")
    if not subset and ("n_instances" not in r.said or p.n_instances >= d.n_classes):
        fill("n_classes", d.n_classes, f"{d.n_classes} classes")
    if counted:
        fill("n_instances", d.n_images, f"{d.n_images:,} images")
    # the text's own "balanced" wins; a bare "imbalanced" gives way to the published sizes
    if counted and d.sizes and not pending and "imbalance_ratio" not in r.said and not BALANCED.search(r.low):
        total = sum(d.sizes)
        p.shares = tuple(x / total for x in sorted(d.sizes))
        fill("imbalance_ratio", round(max(d.sizes) / min(d.sizes), 2), f"imbalance {max(d.sizes) / min(d.sizes):.3g}x")
    fill("resolution", d.resolution, f"{d.resolution} px")
    fill("channels", d.channels, f"{d.channels} channel{'s' * (d.channels != 1)}" if d.channels else "")
    if filled:
        how = "approximate, since the text says the data is like it" if like else "say your own if your copy differs"
        r.notes.append(f"{r.text[m.start():m.end()]!r} is the public {d.name}: {', '.join(filled)} as published "
                       f"({d.source}); {how}")


__all__ = ["DATASETS", "MULTI_LABEL_NOTE", "PublicDataset", "read_public_dataset"]

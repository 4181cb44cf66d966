"""How far a task is from the knowledge base's datasets, and what that distance has cost before.

The meta-model (`tools.metamodel`) learns from runs on a handful of datasets. A task like one
of them is predicted from evidence; a task unlike all of them (another modality, ten times
the images) is an extrapolation, and its interval must say so. This module measures the
distance and turns the errors measured at each distance into an interval.

**Distance** (`distance`): Euclidean over coordinates on scales fixed here, not learnt from
the data (so a distance means the same thing whatever the knowledge base holds), each chosen
so that one unit is "a different kind of dataset":

============== ============================================ ==========================
field          coordinate                                    one unit is
============== ============================================ ==========================
n_instances    log10(n)                                      a factor 10 in images
n_classes      log2(k) / 2                                   a factor 4 in classes
imbalance      log10(largest / smallest class) / 2           a factor 100 in imbalance
resolution     log2(side) / 4                                a factor 16 in image side
channels       0.5 when grey vs RGB                          (half a unit)
modality       1 - Jaccard(word sets)                        no word in common
body part      0.5 x (1 - Jaccard(word sets))                (half a unit)
============== ============================================ ==========================

Modality and body part are compared as sets of words after a few aliases ("x-ray",
"radiograph" and "mammography" share "xray"; "light microscopy" is "microscopy"), so "ct"
against the mixed "ct / mri / x-ray" costs 2/3 of a mismatch, not a full one. A field the task
does not state (modality "unknown", no body part) counts as a full mismatch: nothing says the
data is like any dataset's. Class entropy and class sizes are left out: given the count and the
imbalance they add nothing. A dataset of the knowledge base is at distance 0 from itself.

**Bands** (`calibrate`): in the meta-model's fit, each leave-dataset-out fold holds datasets out
and predicts their runs. Each held-out dataset's residuals are labelled with its distance to
the nearest dataset *outside its fold* (what it looked like while held out). Sorted by that
distance, datasets are grouped into bands of at least MIN_BAND_DATASETS datasets; each band's
interval is the (5 %, 95 %) quantiles of its residuals, every dataset weighted equally (a
new task is one dataset, and the sweep ran 30 to 300 runs per dataset: row weights would let
the most-swept datasets decide). Bands are made monotone outward: a farther band's low
quantile is never above a nearer one's, nor its high quantile below it.

**Threshold** (`calibrate`): evidence is thin beyond the edge of the nearest band: beyond the
distances at which the nearest third of the held-out datasets (at least MIN_BAND_DATASETS)
still had a dataset like them outside their fold. Inside it, a task is as close to the
knowledge base as the best-covered held-out datasets were, and their measured error is its
interval; past it, the task is farther from the evidence than those were, its interval comes
from the farther bands (never narrower, by construction), and the user is told. The other
rule considered, "the first band whose interval is wider than the nearest band's" (where
held-out error exceeds what near datasets show), rests on 3-5 datasets a side: in the nested
leave-one-dataset-out of bench/calibration.py it put the threshold anywhere from 0.95 to
1.25 depending on which dataset was left out (a task at 1.1 was near for one of those models
and far for the next), while the nearest band's edge stayed within 0.95-1.03. With a single band (fewer than two bands' worth
of held-out datasets) the threshold is the farthest distance measured. Beyond the farthest
distance leave-one-out ever measured (`max_measured`) no error was measured at all: the
farthest band's interval is used (never a narrower one) and the note says the error there
is unmeasured.

**Assumed fields** (`open_metas`): a profile read from text fills what the text did not say
with defaults (tools.task_text). For those fields the prediction is made at each value of
`OPEN_GRID` (the cartesian product over the fields left open), and the meta-model's interval
is the union of the per-value intervals. Class sizes follow tools.task_text's geometric
profile, so a varied meta is built as a text profile's is.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from knowledge.schema import MetaFeatures

# Weight of a full modality / body-part / channel mismatch, in distance units.
MODALITY_WEIGHT = 1.0
BODY_PART_WEIGHT = 0.5
CHANNELS_WEIGHT = 0.5
NEAREST_SHOWN = 3  # datasets named with a prediction
MIN_BAND_DATASETS = 3  # a band's quantiles rest on at least this many held-out datasets

# Words that name no modality or body part on their own ("light microscopy" is microscopy).
_GENERIC = {"mixed", "light", "photography", "imaging", "image", "images", "scan", "scans", "and", "of", "the",
            "digital", "unknown", "none", "other"}
_ALIASES: dict[str, tuple[str, ...]] = {
    "x-ray": ("xray",), "xray": ("xray",), "radiograph": ("xray",), "radiography": ("xray",),
    "mammography": ("mammography", "xray"), "mammogram": ("mammography", "xray"),
    "mr": ("mri",), "histology": ("histopathology",), "pathology": ("histopathology",),
    "dermatoscopy": ("dermoscopy",), "retinal": ("retina",), "lungs": ("lung",),
}

# Values an assumed field may plausibly take (open_metas): a binary to a 10-class task, a
# few hundred to 20,000 images, balanced to 10:1, 28-224 px, grey or RGB.
OPEN_GRID: dict[str, tuple[float, ...]] = {
    "n_classes": (2, 3, 4, 5, 7, 10),
    "n_instances": (300, 1000, 2000, 5000, 20_000),
    "imbalance_ratio": (1.0, 2.0, 5.0, 10.0),
    "resolution": (28, 64, 128, 224),
    "channels": (1, 3),
    # tools.probe's accuracy, open for every task described in words (the seed's datasets span 0.34-1.0)
    "probe_accuracy": (0.35, 0.5, 0.65, 0.8, 0.95),
}
OPEN_FIELDS = tuple(OPEN_GRID)


# ------------------------------------------------------------------------- distance
@functools.lru_cache(maxsize=1024)
def words(text: str | None) -> frozenset[str]:
    """The words of a modality or body part, with aliases, generic words left out."""
    if not text:
        return frozenset()
    low = re.sub(r"\bx[- ]?rays?\b", "x-ray", text.lower())
    out: set[str] = set()
    for w in re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)?", low):
        if w not in _GENERIC:
            out.update(_ALIASES.get(w, (w,)))
    return frozenset(out)


def mismatch(a: str | None, b: str | None) -> float:
    """1 - Jaccard similarity of the word sets: 0 same words, 1 none shared or either unstated."""
    wa, wb = words(a), words(b)
    if not wa or not wb:
        return 1.0
    return 1.0 - len(wa & wb) / len(wa | wb)


def coordinates(meta: MetaFeatures) -> np.ndarray:
    """The numeric coordinates of `meta` (see the module docstring for the scales)."""
    return np.array([
        math.log10(meta.n_instances),
        math.log2(meta.n_classes) / 2,
        math.log10(max(meta.imbalance_ratio, 1.0)) / 2,
        math.log2(meta.resolution) / 4,
        CHANNELS_WEIGHT * (meta.channels == 3),
    ], dtype=np.float64)


def distance(a: MetaFeatures, b: MetaFeatures) -> float:
    """How far task `a` is from dataset `b` (0 for the same meta-features; see the module docstring)."""
    d2 = float(np.sum((coordinates(a) - coordinates(b)) ** 2))
    d2 += (MODALITY_WEIGHT * mismatch(a.modality, b.modality)) ** 2
    d2 += (BODY_PART_WEIGHT * mismatch(a.body_part, b.body_part)) ** 2
    return math.sqrt(d2)


@dataclass(frozen=True)
class Neighbours:
    """The knowledge base's datasets, for distances from a task.

    Attributes:
        names: dataset names, sorted.
        metas: their meta-features, in the same order.
    """

    names: tuple[str, ...]
    metas: tuple[MetaFeatures, ...]

    @classmethod
    def of(cls, datasets: Mapping[str, MetaFeatures]) -> Neighbours:
        """From {name: meta}."""
        names = tuple(sorted(datasets))
        return cls(names, tuple(datasets[n] for n in names))

    @classmethod
    def from_info(cls, rows: Iterable[Mapping[str, Any]]) -> Neighbours:
        """From `to_info`'s rows (JSON)."""
        return cls.of({row["name"]: MetaFeatures.model_validate(row["meta"]) for row in rows})

    def to_info(self) -> list[dict[str, Any]]:
        """JSON rows: each dataset's name and meta-features."""
        return [{"name": n, "meta": m.model_dump(mode="json")} for n, m in zip(self.names, self.metas, strict=True)]

    @functools.cached_property
    def _coords(self) -> np.ndarray:
        return np.array([coordinates(m) for m in self.metas], dtype=np.float64).reshape(len(self.metas), -1)

    @functools.cached_property
    def _categorical(self) -> dict[tuple[str, str | None], np.ndarray]:
        return {}  # squared modality + body-part terms per (modality, body part) asked: a grid shares them

    def distances(self, meta: MetaFeatures) -> np.ndarray:
        """`distance(meta, m)` for every dataset m, in `names` order."""
        if not self.names:
            return np.zeros(0)
        key = (meta.modality, meta.body_part)
        if key not in self._categorical:
            self._categorical[key] = np.array([(MODALITY_WEIGHT * mismatch(meta.modality, m.modality)) ** 2
                                               + (BODY_PART_WEIGHT * mismatch(meta.body_part, m.body_part)) ** 2
                                               for m in self.metas])
        return np.sqrt(((self._coords - coordinates(meta)) ** 2).sum(axis=1) + self._categorical[key])

    def nearest(self, meta: MetaFeatures, k: int = NEAREST_SHOWN, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """The k nearest datasets (name, distance rounded to 4 places), nearest first, ties by
        name; `exclude`d names are skipped."""
        skip = set(exclude)
        found = [(n, float(d)) for n, d in zip(self.names, self.distances(meta), strict=True) if n not in skip]
        found.sort(key=lambda t: (t[1], t[0]))
        return [(n, round(d, 4)) for n, d in found[:k]]

    def held_out_distances(self, folds: Sequence[Iterable[str]]) -> dict[str, float]:
        """Each dataset's distance to the nearest dataset outside its fold (inf when none is)."""
        out: dict[str, float] = {}
        for fold in folds:
            names = set(fold)
            for name in names:
                near = self.nearest(self.metas[self.names.index(name)], k=1, exclude=names)
                out[name] = near[0][1] if near else math.inf
        return out


# ------------------------------------------------------------------------- bands
def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: Sequence[float]) -> list[float]:
    """Quantiles of `values` under `weights` (the inverse of the weighted empirical CDF, midpoints)."""
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cdf = (np.cumsum(w) - 0.5 * w) / w.sum()
    return [float(np.interp(q, cdf, v)) for q in qs]


def _groups(names: Sequence[str], dist: Mapping[str, float]) -> list[list[str]]:
    """`names` (sorted by distance) cut into bands of at least MIN_BAND_DATASETS datasets and a
    third of them, never splitting equal distances; a short tail joins the band before it."""
    size = max(MIN_BAND_DATASETS, math.ceil(len(names) / 3))
    groups: list[list[str]] = [[]]
    for name in names:
        if len(groups[-1]) >= size and dist[name] > dist[groups[-1][-1]]:
            groups.append([])
        groups[-1].append(name)
    if len(groups) > 1 and len(groups[-1]) < MIN_BAND_DATASETS:
        tail = groups.pop()
        groups[-1] += tail
    return groups


def calibrate(distances: Mapping[str, float], residuals: Mapping[str, np.ndarray],
              quantiles: Sequence[float]) -> dict[str, Any]:
    """Distance bands of held-out residuals and the threshold (see the module docstring).

    Args:
        distances: each held-out dataset's distance to the nearest dataset outside its fold.
        residuals: each held-out dataset's out-of-fold residuals (truth - prediction).
        quantiles: the interval's (low, high) quantiles, e.g. (0.05, 0.95).

    Returns:
        JSON: ``edges`` (band boundaries, ascending: band i holds distances up to edges[i],
        the last band everything beyond), ``q`` (per band [low, high] residual quantiles,
        monotone outward), ``datasets`` (per band the held-out datasets it rests on),
        ``threshold`` (evidence is thin beyond it), ``max_measured`` (the farthest held-out
        distance) and ``measured`` ({dataset: distance}). With fewer than MIN_BAND_DATASETS
        datasets there are no bands: ``q`` is empty and ``threshold`` None.
    """
    names = sorted((n for n in residuals if len(residuals[n]) and math.isfinite(distances.get(n, math.inf))),
                   key=lambda n: (distances[n], n))
    measured = {n: round(float(distances[n]), 4) for n in names}
    if len(names) < MIN_BAND_DATASETS:
        return {"edges": [], "q": [], "datasets": [], "threshold": None,
                "max_measured": max(measured.values(), default=None), "measured": measured}
    groups = _groups(names, measured)
    q: list[list[float]] = []
    for group in groups:
        values = np.concatenate([np.asarray(residuals[n], dtype=np.float64) for n in group])
        weights = np.concatenate([np.full(len(residuals[n]), 1.0 / len(residuals[n])) for n in group])
        q.append(_weighted_quantiles(values, weights, quantiles))
    for i in range(1, len(q)):  # monotone outward: never narrower than a nearer band
        q[i] = [min(q[i][0], q[i - 1][0]), max(q[i][1], q[i - 1][1])]
    edges = [round((measured[a[-1]] + measured[b[0]]) / 2, 4) for a, b in itertools.pairwise(groups)]
    return {
        "edges": edges,
        "q": [[round(lo, 5), round(hi, 5)] for lo, hi in q],
        "datasets": groups,
        "threshold": edges[0] if edges else measured[names[-1]],
        "max_measured": measured[names[-1]],
        "measured": measured,
    }


def band_of(bands: Mapping[str, Any], dist: float) -> int:
    """The band of a distance (the farthest band beyond the farthest measured distance)."""
    return int(np.searchsorted(bands["edges"], dist, side="right"))


def is_thin(bands: Mapping[str, Any], dist: float) -> bool:
    """Whether a task at `dist` is beyond the threshold (evidence is thin)."""
    t = bands.get("threshold")
    return t is not None and dist > t


def evidence_note(bands: Mapping[str, Any], dist: float, nearest: Sequence[tuple[str, float]]) -> str | None:
    """A sentence for the user when `dist` is beyond the threshold; None otherwise."""
    if not is_thin(bands, dist) or not bands["q"]:
        return None
    names = ", ".join(f"{n} ({d:.2f})" for n, d in nearest) or "none"
    band = band_of(bands, dist)
    lo, hi = bands["q"][band]
    text = (f"The task is far from every dataset in the knowledge base (distance {dist:.2f}, beyond "
            f"{bands['threshold']:.2f}); the nearest are {names}. The interval is widened to the error measured on "
            f"the {len(bands['datasets'][band])} datasets that were that far from the rest when held out "
            f"({lo:+.2f} to {hi:+.2f} around the prediction).")
    if dist > bands["max_measured"]:
        text += (f" No held-out dataset was ever this far (the farthest was {bands['max_measured']:.2f}), so the "
                 "error here is unmeasured and may be larger still.")
    return text


# ------------------------------------------------------------------------- assumed fields
def check_open_fields(open_fields: Iterable[str]) -> tuple[str, ...]:
    """The open fields in OPEN_FIELDS order, without duplicates.

    Raises:
        ValueError: a name outside OPEN_FIELDS (the message lists them).
    """
    given = list(open_fields)
    bad = [f for f in given if f not in OPEN_GRID]
    if bad:
        raise ValueError(f"open_fields must be drawn from {', '.join(OPEN_FIELDS)}, but got {bad!r}; "
                         "modality and body part are not varied (their distance says how far the task is).")
    return tuple(f for f in OPEN_FIELDS if f in given)


def vary(meta: MetaFeatures, **values: float) -> MetaFeatures:
    """`meta` with some of OPEN_FIELDS replaced, class sizes rebuilt as a text profile builds them."""
    from tools.task_text import class_sizes  # the one geometric class-size profile

    fields = {"n_instances": meta.n_instances, "n_classes": meta.n_classes, "imbalance_ratio": meta.imbalance_ratio,
              "resolution": meta.resolution, "channels": meta.channels, "probe_accuracy": meta.probe_accuracy, **values}
    n, k = int(fields["n_instances"]), int(fields["n_classes"])
    if (n, k, fields["imbalance_ratio"]) == (meta.n_instances, meta.n_classes, meta.imbalance_ratio):
        return meta.model_copy(update={"resolution": int(fields["resolution"]), "channels": int(fields["channels"]),
                                       "probe_accuracy": fields["probe_accuracy"]})
    split = {}
    if (k, fields["imbalance_ratio"]) == (meta.n_classes, meta.imbalance_ratio) and n >= k and meta.n_instances:
        # only the size varies: the classes keep their shares (a profile's may not be geometric: "73 %" of one)
        f = n / meta.n_instances
        if meta.split_sizes:
            split = {name: max(1, round(v * f)) for name, v in meta.split_sizes.items()}
        return meta.model_copy(update={
            "n_instances": n, "class_size_mean": round(n / k, 4), "class_size_std": round(meta.class_size_std * f, 4),
            "class_size_min": max(1, round(meta.class_size_min * f)), "class_size_max": max(1, round(meta.class_size_max * f)),
            "split_sizes": split, "resolution": int(fields["resolution"]), "channels": int(fields["channels"]),
            "probe_accuracy": fields["probe_accuracy"]})
    sizes = class_sizes(max(n, k), k, float(fields["imbalance_ratio"]))
    total = sum(sizes)
    p = [s / total for s in sizes]
    entropy = -sum(x * math.log(x) for x in p if x > 0) / math.log(k)
    mean = total / k
    if meta.split_sizes and meta.n_instances:  # the same split shares at the new size
        split = {name: max(1, round(v * total / meta.n_instances)) for name, v in meta.split_sizes.items()}
    return MetaFeatures(
        n_instances=total, n_classes=k, imbalance_ratio=round(max(sizes) / max(min(sizes), 1), 4),
        class_entropy=round(min(max(entropy, 0.0), 1.0), 6), resolution=int(fields["resolution"]),
        channels=int(fields["channels"]), class_size_mean=round(mean, 4),
        class_size_std=round(math.sqrt(sum((s - mean) ** 2 for s in sizes) / k), 4), class_size_min=min(sizes),
        class_size_max=max(sizes), modality=meta.modality, body_part=meta.body_part,
        task_type="binary" if k == 2 else "multiclass", split_sizes=split, probe_accuracy=fields["probe_accuracy"],
    )


def open_metas(meta: MetaFeatures, open_fields: Iterable[str]) -> list[MetaFeatures]:
    """`meta` at every point of OPEN_GRID over the open fields (the cartesian product); [] when none is open."""
    fields = check_open_fields(open_fields)
    if not fields:
        return []
    return [vary(meta, **dict(zip(fields, point, strict=True)))
            for point in itertools.product(*(OPEN_GRID[f] for f in fields))]


# ------------------------------------------------------------------------- beyond the data
# A tree model predicts a value past the edge of what it learnt from as it predicts the edge: 102 classes
# as the largest class count it saw, 15 images a class as the fewest. Only the directions that make a task
# harder are flagged (more classes, fewer images, smaller classes): there the prediction is an upper bound,
# not an estimate. BEYOND_FACTOR keeps a task a little past the edge (52 against 53 images a class) quiet.
BEYOND_FACTOR = 1.5


def beyond_range(meta: MetaFeatures, known: Sequence[MetaFeatures], open_fields: Iterable[str] = ()) -> list[str]:
    """The stated meta-features of `meta` past the harder edge of the `known` datasets, in words (e.g.
    "102 classes (the knowledge base's datasets have 2 to 8)"); [] when none is, when a field was not
    stated (`open_fields`) or when there are fewer than MIN_BAND_DATASETS datasets to have a range."""
    if len(known) < MIN_BAND_DATASETS:
        return []
    fields = set(check_open_fields(open_fields))
    found = []

    def span(values: Iterable[float]) -> str:
        v = sorted(values)
        return f"{v[0]:,.0f} to {v[-1]:,.0f}"

    if "n_classes" not in fields and meta.n_classes > max(m.n_classes for m in known):
        found.append(f"{meta.n_classes} classes (the knowledge base's datasets have {span(m.n_classes for m in known)})")
    if "n_instances" not in fields and meta.n_instances * BEYOND_FACTOR < min(m.n_instances for m in known):
        found.append(f"{meta.n_instances:,} images (its datasets have {span(m.n_instances for m in known)})")
    if not fields & {"n_instances", "n_classes", "imbalance_ratio"} and \
            meta.class_size_min * BEYOND_FACTOR < min(m.class_size_min for m in known):
        found.append(f"{meta.class_size_min:,.0f} images in the smallest class (its datasets have "
                     f"{span(m.class_size_min for m in known)})")
    return found


def beyond_note(beyond: Sequence[str], n_classes: int) -> str | None:
    """The sentence for the user about `beyond_range`'s findings; None when there are none."""
    if not beyond:
        return None
    return (f"Beyond what the knowledge base covers: {'; '.join(beyond)}. The meta-model cannot extrapolate and "
            f"predicts such a task as one at the edge of its data, so read the accuracy as an upper bound; the "
            f"interval reaches down to guessing ({1 / n_classes:.2f}).")


def majority_note(meta: MetaFeatures, known: Sequence[MetaFeatures], accuracy: float,
                  open_fields: Iterable[str] = ()) -> str | None:
    """The sentence for the user when `accuracy` (a prediction) is below what always answering the task's
    largest class scores (its share of the images, with a test split stratified like the data): accuracy then
    says little, and the runs it was learnt from may never have been that imbalanced. None otherwise, or when
    the imbalance was not stated (`open_fields`; an assumed class count is the assumption the card shows)."""
    if "imbalance_ratio" in check_open_fields(open_fields):
        return None
    share = meta.class_size_max / meta.n_instances
    if accuracy >= share - 0.005:
        return None
    most = max((m.class_size_max / m.n_instances for m in known), default=None)
    seen = (f" The knowledge base's datasets are less imbalanced (their largest class holds at most {most * 100:.0f} % of "
            f"the images), so the meta-model does not know what accuracy means at this imbalance." if most is not None
            and most < share else "")
    return (f"Always answering the largest class would score {share:.2f} here ({share * 100:.0f} % of the images), more "
            f"than the meta-model predicts.{seen} Judge the trained run by its macro F1 and AUC, which every run "
            "reports, rather than its accuracy.")


__all__ = [
    "BEYOND_FACTOR", "MIN_BAND_DATASETS", "NEAREST_SHOWN", "OPEN_FIELDS", "OPEN_GRID", "Neighbours", "band_of",
    "beyond_note", "beyond_range", "calibrate", "check_open_fields", "coordinates", "distance", "evidence_note",
    "is_thin", "majority_note", "mismatch", "open_metas", "vary", "words",
]

"""Reading a task description: what it says, the defaults for what it does not, clear errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.task_text import DEFAULTS, FIELDS, class_sizes, parse_task


def test_the_mission_example() -> None:
    p = parse_task("skin lesion dermoscopy, 8 classes, 2,000 images, I have 15 minutes on a laptop CPU")

    assert (p.modality, p.body_part, p.n_classes, p.n_instances) == ("dermoscopy", "skin", 8, 2000)
    assert p.budget_seconds == 900 and p.device == "cpu"
    assert p.channels == 3  # dermoscopy is colour
    # The limits it does not state are listed too (issue 16: nothing read is silently defaulted); they are no
    # limits, and `assumptions()` does not render them, so no one invents a limit.
    assert set(p.assumed) == {"resolution", "channels", "imbalance_ratio", "max_params", "max_model_bytes",
                              "gpu_memory_bytes", "ram_bytes"}
    assert p.assumptions() == ["resolution=64", "channels=3", "imbalance_ratio=2.0"]
    assert p.said["n_instances"] == "2,000 images"


@pytest.mark.parametrize(
    ("text", "modality", "body_part"),
    [
        ("chest x-ray pneumonia", "x-ray", "chest"),
        ("knee radiographs, KL grading", "x-ray", "knee"),
        ("CXR triage", "x-ray", None),
        ("abdominal CT slices", "ct", "abdomen"),
        ("brain MRI, T1-weighted", "mri", "brain"),
        ("breast ultrasound lesions", "ultrasound", "breast"),
        ("dermatoscopic images of moles", "dermoscopy", "skin"),
        ("lung histopathology H&E tiles", "histopathology", "lung"),
        ("H&E whole-slide patches", "histopathology", None),
        ("peripheral blood smear microscopy", "light microscopy", "blood"),
        ("retinal fundus photographs", "fundus", "eye"),
        ("retinal OCT B-scans", "oct", "eye"),
        ("colonoscopy frames with polyps", "endoscopy", "colon"),
        ("screening mammograms", "x-ray", "breast"),
        ("skin lesion photos", "dermoscopy", "skin"),  # implied by the body part, and said so
    ],
)
def test_modality_and_body_part(text: str, modality: str, body_part: str | None) -> None:
    p = parse_task(text)
    assert (p.modality, p.body_part) == (modality, body_part)


def test_implied_modality_is_an_assumption() -> None:
    p = parse_task("skin lesion photos")
    assert "modality" in p.assumed and any("assumed to be dermoscopy" in n for n in p.notes)


def test_two_modalities_are_noted() -> None:
    p = parse_task("brain MRI or CT, 3 classes")
    assert p.modality == "mri" and any("more than one modality" in n for n in p.notes)


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("8 classes", 8),
        ("a 3-class problem", 3),
        ("four categories", 4),
        ("binary task", 2),
        ("benign vs malignant", 2),
        ("normal vs benign vs malignant", 3),
        ("8 cell types", 8),
        ("5 KL grades", 5),
        ("breast ultrasound (normal, benign, malignant), 780 images", 3),
        ("chest ct (covid, pneumonia, normal and other)", 4),
        ("knee x-ray (healthy or arthritic)", 2),
        ("classes: a, b, c and d", 4),
        ("KL grades 0-4", 5),
        ("stages 1 to 3", 3),
        ("mri (t1, t2 and flair), 3 classes", 3),  # the stated count wins over a list
    ],
)
def test_number_of_classes(text: str, n: int) -> None:
    assert parse_task(text).n_classes == n


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("2,000 images", 2000),
        ("2k images", 2000),
        ("1.5k scans", 1500),
        ("778 dermoscopy images", 778),
        ("5m images", 5_000_000),
        ("n=640", 640),
        ("skin lesions, 7 classes, n=2.5m", 2_500_000),  # "m" after "n=" is millions, not minutes
        ("n: ~1.2M", 1_200_000),
        ("pneumonia x-rays, ~17k, 2 classes", 17_000),  # thousands alone between commas: the images
        ("dermoscopy, 25k", 25_000),
        ("about 10,000 slides", 10000),
        ("300 patches", 300),
    ],
)
def test_number_of_images(text: str, n: int) -> None:
    assert parse_task(text).n_instances == n


def test_resolution_is_not_a_count() -> None:
    p = parse_task("224 x 224 images, 3 classes")
    assert p.resolution == 224 and "n_instances" in p.assumed


@pytest.mark.parametrize(("text", "res"), [("64x64", 64), ("256×128 px", 128), ("512px", 512), ("at 28 pixels", 28)])
def test_resolution(text: str, res: int) -> None:
    assert parse_task(text).resolution == res


@pytest.mark.parametrize(
    ("text", "channels"),
    [
        ("greyscale x-rays", 1),
        ("grayscale photos", 1),
        ("RGB ultrasound", 3),
        ("colour images", 3),
        ("x-ray", 1),
        ("fundus", 3),
        ("", 3),
    ],
)
def test_channels(text: str, channels: int) -> None:
    assert parse_task(text).channels == channels


@pytest.mark.parametrize(
    ("text", "ratio"),
    [
        ("imbalance ratio of 8", 8.0),
        ("1:10 class ratio", 10.0),
        ("ratio of 20:2", 10.0),
        ("balanced classes", 1.0),
        ("highly imbalanced", DEFAULTS["imbalance_ratio_hinted"]),
        ("one class is rare", DEFAULTS["imbalance_ratio_hinted"]),
        ("x-ray", DEFAULTS["imbalance_ratio"]),
    ],
)
def test_imbalance(text: str, ratio: float) -> None:
    assert parse_task(text).imbalance_ratio == ratio


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("I have 15 minutes", 900),
        ("1 hour", 3600),
        ("10 min", 600),
        ("within 90 s", 90),
        ("half an hour", 1800),
        ("an hour on CPU", 3600),
        ("2h", 7200),
        ("1.5 hours", 5400),
        ("budget: 1h30", 5400),
        ("1 hour 30 minutes", 5400),
        ("10-15 minutes", 900),
        ("a 20-minute budget", 1200),
        ("time limit is 2 days", 172800),
        ("x-ray, 3 classes", None),
        # "3D" / "2d" counting dimensions, not days
        ("3D CT volumes of the lung, 1,000 scans", None),
        ("brain MRI, 3D, 4 classes", None),
        ("a 3d cnn on knee MRI, 2 hours", 7200),
        ("lung CT, 2 classes, budget 3d", 259200),
        ("chest x-ray, I have 2d to train", 172800),
    ],
)
def test_time_budget(text: str, seconds: float | None) -> None:
    assert parse_task(text).budget_seconds == seconds


def test_budget_cue_wins_over_other_durations() -> None:
    p = parse_task("scans take 5 minutes each; I have 2 hours")
    assert p.budget_seconds == 7200 and any("several durations" in n for n in p.notes)


@pytest.mark.parametrize(
    ("text", "device"),
    [
        ("on a laptop CPU", "cpu"),
        ("no GPU", "cpu"),
        ("an RTX 3090", "cuda"),
        ("one A100 GPU", "cuda"),
        ("cpu only, no gpu", "cpu"),
    ],
)
def test_device(text: str, device: str) -> None:
    p = parse_task(text)
    assert p.device == device and "device" not in p.assumed


def test_device_default_is_assumed() -> None:
    p = parse_task("x-ray")
    assert p.device == "cpu" and "device" in p.assumed


def test_empty_text_assumes_everything() -> None:
    p = parse_task("")
    assert set(p.assumed) >= {
        "modality",
        "n_classes",
        "n_instances",
        "resolution",
        "channels",
        "imbalance_ratio",
        "device",
    }
    assert p.budget_seconds is None
    assert p.assumptions()[0].startswith("modality=unknown")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("I have -5 minutes", "must be positive"),
        ("budget 0 minutes", "must be positive"),
        ("a budget of 15 parsecs", "'parsecs' is not a unit of time"),
        ("budget of 15", "it has no unit"),
        ("1 class", "n_classes >= 2"),
        ("0 images", ">= 2"),
        ("5 classes, 3 images", ">= the number of classes"),
        ("imbalance ratio of 0.5", ">= 1"),
        ("x" * 5000, "at most 4000 characters"),
    ],
)
def test_impossible_values_are_clear_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_task(text)


@pytest.mark.parametrize("text", ["mri 4 classes, $20k", "x-ray, 2 classes, 5M params max", "ct, 3 classes, 20k€"])
def test_money_and_parameters_in_thousands_are_not_images(text: str) -> None:
    p = parse_task(text)
    assert "n_instances" in p.assumed and not any("read as the number of images" in n for n in p.notes)


def test_a_bare_count_of_images_says_how_it_was_read() -> None:
    p = parse_task("pneumonia x-rays, ~17k, 2 classes")
    assert p.said["n_instances"] == "~17k" and "'17k' read as the number of images (no noun after it)" in p.notes


def test_a_count_after_n_equals_is_never_a_time_budget() -> None:
    p = parse_task("skin lesions, 7 classes, n=2.5m, train in 20 min")
    assert p.n_instances == 2_500_000 and p.budget_seconds == 1200


def test_budget_next_to_a_count_is_not_a_bad_unit() -> None:
    assert parse_task("budget of 2000 images, 10 minutes").budget_seconds == 600


@pytest.mark.parametrize(("n", "k", "ratio"), [(2000, 8, 2.0), (778, 3, 3.3), (100, 2, 1.0), (10, 5, 50.0)])
def test_class_sizes_sum_and_ratio(n: int, k: int, ratio: float) -> None:
    sizes = class_sizes(n, k, ratio)
    assert sum(sizes) == n and len(sizes) == k and min(sizes) >= 1
    if n / k > 20:
        assert max(sizes) / min(sizes) == pytest.approx(ratio, rel=0.1)


def test_meta_features_are_consistent() -> None:
    meta = parse_task("dermoscopy, 8 classes, 2,000 images, imbalance ratio of 4").to_meta()

    assert meta.n_instances == 2000 and meta.task_type == "multiclass" and meta.channels == 3
    assert meta.imbalance_ratio == pytest.approx(4, rel=0.05)
    assert 0.9 < meta.class_entropy < 1.0
    assert meta.class_size_min < meta.class_size_mean < meta.class_size_max
    assert math.isclose(meta.class_size_mean * 8, 2000)


def test_same_text_same_profile() -> None:
    text = "brain MRI, 4 classes, 6,400 slices, imbalanced, 30 minutes on a GPU"
    assert parse_task(text) == parse_task(text)


# ------------------------------------------------------------------ the phrasing table
# tests/fixtures/task_phrasings.jsonl: phrasings written for the reader (issue 16, item 4), one per line:
#   id, text, expect {field: value}, optional approximate [fields], said {field: exact words},
#   unread {field: why} (phrasings left unread by design: the field must be listed as assumed).
# Ids with "-h-" were written after the reader, as a held-out check (25 of 40 read right at first; the
# general causes were then fixed); "neg-" rows are texts where a careless reader would invent a field.
# A field a row does not name was not said, so it must be in `assumed` (gpu_name, cpu_cores: must be None).
PHRASINGS = [
    json.loads(line)
    for line in (Path(__file__).parent / "fixtures" / "task_phrasings.jsonl").read_text(encoding="utf-8").splitlines()
    if line.strip()
]
# table field -> the name it has in `said` / `assumed` (the budget keeps its historical name)
TABLE_FIELDS = {
    "modality": "modality", "body_part": "body_part", "n_classes": "n_classes", "n_instances": "n_instances",
    "resolution": "resolution", "channels": "channels", "imbalance_ratio": "imbalance_ratio",
    "budget_seconds": "budget", "device": "device", "max_params": "max_params",
    "max_model_bytes": "max_model_bytes", "gpu_memory_bytes": "gpu_memory_bytes", "ram_bytes": "ram_bytes",
}


def check_row(row: dict[str, Any], p: Any) -> list[str]:
    """What the profile gets wrong against one table row (empty when it reads the row as written)."""
    text, expect, problems = row["text"], row["expect"], []
    for field, name in TABLE_FIELDS.items():
        if field in expect:
            got, want = getattr(p, field), expect[field]
            same = got == pytest.approx(want, rel=1e-3) if isinstance(want, float) else got == want
            if not same:
                problems.append(f"{field}: want {want!r}, got {got!r}")
            elif name in p.assumed or name not in p.said:
                problems.append(f"{field}: read right but not said ({p.said.get(name)!r}, assumed={name in p.assumed})")
            elif p.said[name] not in text or text[slice(*p.spans[name])] != p.said[name]:
                problems.append(f"{field}: source words {p.said[name]!r} are not the text's own at {p.spans[name]}")
        elif name not in p.assumed:
            problems.append(f"{field}: not in the text, yet read as {getattr(p, field)!r} from {p.said.get(name)!r}")
    if "gpu_name" in expect and p.gpu_name != expect["gpu_name"]:
        problems.append(f"gpu_name: want {expect['gpu_name']!r}, got {p.gpu_name!r}")
    if "gpu_name" not in expect and p.gpu_name is not None:
        problems.append(f"gpu_name: none named, yet read {p.gpu_name!r}")
    if p.cpu_cores != expect.get("cpu_cores"):
        problems.append(f"cpu_cores: want {expect.get('cpu_cores')!r}, got {p.cpu_cores!r}")
    for field, words in (row.get("said") or {}).items():
        if p.said.get(TABLE_FIELDS.get(field, field)) != words:
            problems.append(f"said[{field}]: want {words!r}, got {p.said.get(TABLE_FIELDS.get(field, field))!r}")
    if sorted(row.get("approximate", [])) != sorted(x for x in p.approximate if x in TABLE_FIELDS):
        problems.append(f"approximate: want {row.get('approximate', [])}, got {p.approximate}")
    return problems


@pytest.mark.parametrize("row", PHRASINGS, ids=[r["id"] for r in PHRASINGS])
def test_phrasing_table(row: dict[str, Any]) -> None:
    problems = check_row(row, parse_task(row["text"]))
    assert not problems, f"{row['text']!r}: " + "; ".join(problems)


def test_phrasing_table_is_large_and_varied() -> None:
    assert len(PHRASINGS) >= 100 and len({r["id"] for r in PHRASINGS}) == len(PHRASINGS)
    kinds = {r["id"].split("-")[0] for r in PHRASINGS}
    assert kinds == {"cls", "size", "imb", "lim", "mix", "neg"}  # neg: texts with nothing of that kind to read


# ------------------------------------------------------------------ the API around the table
@pytest.mark.parametrize(
    "text",
    [
        "under 5M parameters", "<20m params", "5M-parameter model", "parameter budget of 4M", "max 5m weights",
        "model under 20 MB", "a 5 MB model", "8 GB GPU", "4 gb ram", "at most 3m params and 5m images",
    ],
)
def test_a_parameter_size_or_memory_limit_is_never_a_time_budget(text: str) -> None:
    p = parse_task(text)
    assert p.budget_seconds is None and "budget" in p.assumed and "budget" not in p.said


def test_sources_show_each_field_with_its_words() -> None:
    p = parse_task("MRI slices of eight tumour types, ~3,100 scans, under 5M parameters")
    assert "n_classes=8 <- 'eight tumour types'" in p.sources()
    assert "n_instances=3100 (approximate) <- '~3,100 scans'" in p.sources()
    assert "max_params=5000000 <- 'under 5M parameters'" in p.sources()


def test_limits_are_only_those_stated() -> None:
    assert parse_task("dermoscopy, 8 classes").limits() == {}
    limits = parse_task("under 5M params, model below 20 MB, 8 GB GPU, 16 GB RAM, 30 minutes").limits()
    assert limits == {"budget": 1800.0, "device": "cuda", "max_params": 5_000_000, "max_model_bytes": 20 * 2**20,
                      "gpu_memory_bytes": 8 * 2**30, "ram_bytes": 16 * 2**30}


def test_spans_stay_the_texts_own_when_lower_case_changes_length() -> None:
    text = "\u0130zmir clinic: chest X-Ray, Eight classes, 2K images"  # "\u0130".lower() is two characters
    p = parse_task(text)
    assert p.said["n_classes"] == "Eight classes" and p.said["n_instances"] == "2K images"
    assert all(text[slice(*p.spans[f])] == w for f, w in p.said.items())


def test_a_percentage_with_more_classes_takes_the_others_as_equal() -> None:
    p = parse_task("5 classes, only 4% are malignant")
    assert p.imbalance_ratio == pytest.approx(96 / 4 / 4) and any("taken as equal" in n for n in p.notes)


def test_a_count_per_class_times_an_assumed_class_count_says_so() -> None:
    p = parse_task("200 images per class")
    assert p.n_instances == 400 and "n_classes" in p.assumed and any("assumed 2 classes" in n for n in p.notes)


def test_multi_class_without_a_count_assumes_more_than_two() -> None:
    p = parse_task("a multi-class dermoscopy problem")
    assert p.n_classes == DEFAULTS["n_classes_more_than_two"] and "n_classes" in p.assumed
    assert any("gives no count" in n for n in p.notes)


def test_phrasings_are_read_in_well_under_a_millisecond() -> None:
    import time

    texts = [r["text"] for r in PHRASINGS]
    start = time.perf_counter()
    for text in texts:
        parse_task(text)
    assert (time.perf_counter() - start) / len(texts) < 0.005  # ~0.2 ms here; generous for a loaded CI machine


_PIECES = sorted({piece.strip() for r in PHRASINGS for piece in re.split(r"[,;.]", r["text"]) if piece.strip()})


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.sampled_from(_PIECES) | st.text(max_size=12), min_size=1, max_size=6),
       st.sampled_from([", ", "; ", ". ", " and ", " "]))
def test_any_mix_of_phrasings_gives_a_consistent_profile(pieces: list[str], glue: str) -> None:
    text = glue.join(pieces)
    try:
        p = parse_task(text)
    except ValueError as exc:
        assert str(exc)
        return
    assert all(text[slice(*p.spans[f])] == w and w for f, w in p.said.items())
    assert set(p.assumed).isdisjoint(p.said) and set(p.assumed) | (set(p.said) - {"gpu_name", "cpu_cores"}) == set(FIELDS)
    assert set(p.approximate) <= set(p.said)
    meta = p.to_meta()
    assert 2 <= meta.n_classes <= meta.n_instances and p.imbalance_ratio >= 1


@pytest.mark.parametrize(("text", "noted"), [
    ("1.2M chest radiographs, 14 findings, multi-label", True),
    ("chest x-rays with several findings per image, 14 findings", True),
    ("chest x-rays, 2 classes, 3,000 images", False),
    ("chest x-rays where each image can have several of 14 findings at once, 100k images", True),
    ("chest x-rays, 14 findings; an x-ray may show more than one disease", True),
    ("fundus photos, 14 grades, images may have multiple lesions", False),  # lesions of one class, not labels
    ("chest x-rays, 14 classes, one finding per image", False),
])
def test_a_multi_label_task_is_told_it_is_set_up_as_exclusive_classes(text: str, noted: bool) -> None:
    notes = [n for n in parse_task(text).notes if "one label per image" in n]
    assert len(notes) == noted
    if noted:
        assert "for 14 exclusive classes" in notes[0] and "one two-class model per label" in notes[0]


@pytest.mark.parametrize(("text", "majority"), [
    # the largest class's share, as the text fixes it (not the geometric profile of the imbalance ratio)
    ("retinopathy grading (0-4), 20k fundus photos, skewed towards grade 0 (73%)", 0.73),
    ("brain MRI, 4 stages, 6,400 images; moderate has only 64", 2112 / 6400),
    ("skin lesions: melanoma 320, nevus 2100, seborrheic keratosis 410", 2100 / 2830),
    ("fundus photos, glaucoma yes/no, 900 images, 210 glaucoma", 690 / 900),
])
def test_the_class_shares_the_text_gives_reach_the_meta_features(text: str, majority: float) -> None:
    p = parse_task(text)
    meta = p.to_meta()
    assert meta.class_size_max / meta.n_instances == pytest.approx(majority, abs=0.002)
    # an assumed image count varied over its plausible values keeps the shares
    from tools.novelty import vary

    bigger = vary(meta, n_instances=meta.n_instances * 10)
    assert bigger.class_size_max / bigger.n_instances == pytest.approx(majority, abs=0.002)
    assert bigger.imbalance_ratio == meta.imbalance_ratio


def test_without_shares_the_classes_follow_the_geometric_profile() -> None:
    p = parse_task("brain MRI 4 classes, 3000 images, imbalance 10:1")
    assert p.shares is None
    assert p.to_meta().class_size_max == class_sizes(3000, 4, 10.0)[-1]


def test_a_grading_scale_named_alone_gives_its_grades_and_says_so() -> None:
    p = parse_task("Classify knee radiographs by KL grade, 8,260 images")
    assert p.n_classes == 5 and p.said["n_classes"] == "KL grade"
    assert any("'KL grade': the scale's 5 grades (0-4)" in n and "say the count if you use fewer" in n for n in p.notes)
    # a range or a count the text gives comes first
    assert parse_task("knee radiographs, KL grades 2-4, 3,000 images").n_classes == 3


def test_tb_as_a_class_is_not_read_as_terabytes() -> None:
    p = parse_task("Tuberculosis chest x-ray: 700 TB and 3500 normal")
    assert not any("TB" in n for n in p.notes) and p.n_instances == 4200
    assert any("'2 TB' names no model" in n for n in parse_task("2 TB of chest x-rays, 3 classes").notes)


@pytest.mark.parametrize(("text", "device", "note"), [
    ("train on a g4dn.xlarge, chest x-rays, 2 classes", "cuda", "'g4dn.xlarge' read as a cloud machine with an NVIDIA T4 GPU"),
    ("a2-highgpu-1g, brain MRI, 4 classes", "cuda", "with an NVIDIA A100 GPU"),
    ("an m5.2xlarge, chest x-rays, 2 classes", "cpu", "'m5.2xlarge' read as a cloud machine without a GPU, 8 vCPUs"),
    ("a t3.medium, chest x-rays, 2 classes", "cpu", "'t3.medium' read as a cloud machine without a GPU"),
    # a hosted notebook without its runtime named decides nothing, and says so
    ("in Google Colab, fundus photos, 5 grades", "cpu", "'Google Colab' does not say whether its runtime has a GPU"),
    ("in Google Colab with a T4, fundus photos, 5 grades", "cuda", None),
])
def test_a_cloud_machine_says_which_device_it_is(text: str, device: str, note: str | None) -> None:
    p = parse_task(text)
    assert p.device == device
    assert ("device" in p.assumed) == (note is not None and "Colab" in note)
    if note:
        assert any(note in n for n in p.notes), p.notes
    assert p.n_classes in (2, 4, 5)  # "2xlarge", "1g" count nothing


def test_a_count_of_augmented_copies_gives_way_to_the_originals_or_says_it_may_count_copies() -> None:
    p = parse_task("white blood cells, 4 types, 12,500 augmented images (orig 410)")
    assert p.n_instances == 410 and p.said["n_instances"] == "orig 410"
    assert any("'12,500 augmented images' counts augmented copies; the 410 originals" in n for n in p.notes)
    q = parse_task("10k augmented fundus photos, 5 grades")
    assert q.n_instances == 10_000 and any("may count augmented copies" in n for n in q.notes)
    assert not any("augment" in n for n in parse_task("chest x-rays, 2 classes, 3000 images, we will use augmentation").notes)


def test_one_class_said_to_have_only_so_many_against_another_gives_the_imbalance() -> None:
    p = parse_task("fundus photos, 5 grades, 3,662 images; 1805 no DR but only 193 severe")
    assert p.imbalance_ratio == pytest.approx(1805 / 193)
    assert any("read as the largest and the smallest class" in n for n in p.notes)


# ------------------------------------------------------------------ public datasets named in the text
def test_every_public_dataset_has_published_sizes_that_add_up() -> None:
    from tools.task_datasets import DATASETS

    assert len({d.name for d in DATASETS}) == len(DATASETS)
    for d in DATASETS:
        assert d.source and d.n_classes >= 2 and d.n_images > d.n_classes
        if d.sizes is not None:
            assert len(d.sizes) == d.n_classes and sum(d.sizes) == d.n_images, d.name


def test_a_named_public_dataset_gives_its_published_counts_and_says_where_from() -> None:
    p = parse_task("fine-tune on HAM10000 for skin cancer triage")
    assert (p.n_classes, p.n_instances, round(p.imbalance_ratio, 1)) == (7, 10015, 58.3)
    assert p.said["n_classes"] == p.said["n_instances"] == "HAM10000"
    assert any("Tschandl" in n and "HAM10000" in n for n in p.notes)
    sizes = p.to_meta().model_dump()
    assert (sizes["class_size_min"], sizes["class_size_max"]) == (115, 6705)  # the published classes, not a guess


def test_a_subset_or_two_named_datasets_take_no_published_counts() -> None:
    sub = parse_task("a binary subset of HAM10000, melanoma vs nevus")
    assert sub.n_classes == 2 and "n_instances" in sub.assumed and "imbalance_ratio" in sub.assumed
    two = parse_task("pretrain on ISIC 2019, then fine-tune on HAM10000")
    assert {"n_classes", "n_instances"} <= set(two.assumed)
    assert any("names 2 public datasets" in n for n in two.notes)


def test_a_name_that_fixes_no_counts_fills_none_and_says_why() -> None:
    isic = parse_task("fine-tune on ISIC for melanoma detection")
    assert {"n_classes", "n_instances"} <= set(isic.assumed)
    assert [n for n in isic.notes if "differ by year" in n and "'ISIC 2019'" in n]  # which name would fix them
    chex = parse_task("CheXpert, multi-label, 224k images")
    assert "n_classes" in chex.assumed and chex.n_instances == 224_000  # the text's own total is kept
    assert len([n for n in chex.notes if "one label per image" in n]) == 1  # one note, not the dataset's and the text's
    assert [n for n in chex.notes if "Irvin" in n and "one two-class model per label" in n]
    named = parse_task("CheXpert, cardiomegaly vs normal, 5000 frontal images")
    assert named.n_classes == 2 and [n for n in named.notes if "for the 2 exclusive classes the text names" in n]
    assert not [n for n in parse_task("ISIC 2019, 8 classes").notes if "differ by year" in n]

"""Memory limits are hard filters (issue 16): the estimate, the table it rests on, and the filter.

The estimate itself is compared with real runs' peak memory by bench/memory_check.py; here:
the committed table is what a fresh measurement gives, the estimate moves the way memory does,
and a limit keeps every candidate (and the pick) within it, or refuses with the closest.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from agent.errors import TaskError
from agent.recommend import Recommender
from knowledge.schema import TrainConfig
from knowledge.store import read_seed
from tests.fakes import FakeMetaModel, FakeStore, ScriptChat
from tools.memory import RUNTIME_BYTES, NoMemoryFit, measure, table, training_memory


def cfg(**kw: object) -> TrainConfig:
    base = {"backbone": "efficientnet_lite0", "mode": "finetune", "input_size": 64, "batch_size": 32,
            "learning_rate": 1e-3, "epochs": 5, "optimizer": "adamw"}
    return TrainConfig.model_validate({**base, **kw})


@pytest.mark.parametrize("backbone", ["small_cnn", "efficientnet_lite0", "mobilenet_v3_small"])
def test_the_committed_table_is_what_a_fresh_measurement_gives(backbone: str) -> None:
    fresh, stored = measure(backbone), table()[backbone]
    assert fresh["params"] == stored["params"] and fresh["feature_dim"] == stored["feature_dim"]
    for key in ("saved_bytes_per_image", "output_bytes_per_image"):
        assert fresh[key] == pytest.approx(stored[key], rel=0.01), key


def test_the_estimate_grows_with_batch_input_and_data_and_shrinks_with_freezing() -> None:
    need = lambda c, n=2_000, device="cpu": training_memory(c, n, device).total  # noqa: E731
    assert need(cfg(batch_size=64)) > need(cfg(batch_size=32))
    assert need(cfg(input_size=128)) > 3 * (need(cfg()) - RUNTIME_BYTES * 1.15)  # activations scale with area
    assert need(cfg(), n=20_000) > need(cfg(), n=2_000)
    big = {"batch_size": 256}  # where training, not the frozen part's extraction pass, sets the peak
    assert need(cfg(freeze=0.75, **big)) < need(cfg(freeze=0.25, **big)) < need(cfg(**big))
    assert need(cfg(mode="frozen", **big)) < need(cfg(**big))
    # The runner first extracts a frozen part's outputs in batches of 256: at a small batch that
    # pass, not training, is the peak (bench/memory_check.py measured it), and it is counted.
    assert "extraction" in training_memory(cfg(freeze=0.25), 2_000).parts
    assert need(cfg(optimizer="sgd")) < need(cfg(optimizer="adamw"))
    # A GPU holds no Python runtime: the same run needs less there than in RAM.
    assert need(cfg(), device="cuda") < need(cfg())


def test_the_estimate_says_what_makes_it_up() -> None:
    need = training_memory(cfg(input_size=128, batch_size=64), 5_000)
    assert set(need.parts) >= {"runtime", "weights", "optimizer", "activations", "data"}
    assert need.parts["activations"] > need.parts["weights"] and "activations" in need.text()


@pytest.fixture(scope="module")
def metamodel():  # type: ignore[no-untyped-def]
    from tools.metamodel import MetaModel

    recs = [r for r in read_seed() if r.outcome.status == "ok"]
    return MetaModel.fit(random.Random(0).sample(recs, min(400, len(recs))), seed=0)


def test_every_candidate_keeps_to_a_memory_limit_and_a_tighter_one_changes_the_pick(metamodel) -> None:  # type: ignore[no-untyped-def]
    from tools.metamodel import Constraints

    # Fine-tunes span a range of memory (input size, batch, what is frozen): a limit halfway between the
    # lightest fine-tune's need (what a limit nothing meets names) and the top pick's leaves others that fit.
    # On a task whose top pick is itself the lightest no limit can exclude it alone, so the first seed
    # dataset where it is not is used (which one depends on the meta-model's fit).
    finetune = {"modes": ["finetune"]}
    metas = list({r.dataset.name: r.dataset.meta for r in read_seed()}.values())
    tried = []
    for meta in metas:
        free = metamodel.candidates(meta, Constraints(**finetune), n=5)
        top_need = training_memory(free[0].config, meta.n_instances, "cpu", meta.n_classes).total
        with pytest.raises(NoMemoryFit) as least:
            metamodel.candidates(meta, Constraints(max_memory_bytes=1, **finetune), n=5)
        assert least.value.need <= top_need
        tried.append(meta.modality)
        if least.value.need < top_need:
            break
    else:
        pytest.fail(f"on every seed dataset the top fine-tune is the lightest one: {tried}")
    limit = (least.value.need + top_need) / 2
    kept = metamodel.candidates(meta, Constraints(max_memory_bytes=limit, **finetune), n=5)
    assert kept and kept[0].config.key() != free[0].config.key()
    for c in kept:
        assert training_memory(c.config, meta.n_instances, "cpu", meta.n_classes).total <= limit


def test_a_memory_limit_nothing_fits_names_the_config_that_needs_least(metamodel) -> None:  # type: ignore[no-untyped-def]
    from tools.metamodel import Constraints

    meta = read_seed()[0].dataset.meta
    with pytest.raises(NoMemoryFit, match=r"no configuration fits in 100 MB of memory: the one that needs least, .* "
                                          r"needs about .*; raise the limit") as err:
        metamodel.candidates(meta, Constraints(max_memory_bytes=100 * 2**20), n=5)
    assert err.value.need > 100 * 2**20


@pytest.fixture
def recommender(tmp_path: Path) -> Recommender:
    return Recommender(llm=ScriptChat(), kb=FakeStore(tmp_path / "kb"), metamodel=FakeMetaModel(png=False))


@pytest.mark.parametrize(("text", "kw", "says"), [
    ("chest x-ray, 2 classes, 1,000 images, my laptop has 8 GB of RAM", {}, "memory at most 8.0 GB ('8 GB')"),
    ("chest x-ray, 2 classes, 1,000 images", {"max_memory_gb": 6}, "memory at most 6.0 GB ('max_memory_gb')"),
])
def test_a_memory_limit_from_the_text_or_the_api_is_applied_and_recorded(recommender: Recommender, text: str,
                                                                         kw: dict, says: str) -> None:
    rec = recommender.recommend(text, **kw)
    assert any(s.startswith(says) and "left out" in s for s in rec.profile.limits), rec.profile.limits
    assert rec.profile.max_memory_bytes is not None
    assert any(s.startswith("memory the pick needs: about") for s in rec.profile.limits)


def test_a_gpu_memory_limit_does_not_bind_a_cpu_run_and_says_so(recommender: Recommender) -> None:
    rec = recommender.recommend("chest x-ray, 2 classes, 1,000 images, training on the CPU, my GPU has 8 GB",
                                device="cpu")
    assert rec.profile.max_memory_bytes is None
    assert any(s.startswith("GPU memory 8.0 GB") and "not applied" in s for s in rec.profile.limits)


def test_a_bad_memory_limit_from_the_api_says_what_is_wrong(recommender: Recommender) -> None:
    with pytest.raises(TaskError, match="max_memory_gb must be a number > 0, but got 0"):
        recommender.recommend("chest x-ray, 2 classes", max_memory_gb=0)


def test_the_cli_takes_a_memory_limit_and_refuses_a_bad_one_with_exit_2(recommender: Recommender,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from agent.cli import main

    monkeypatch.setattr("agent.recommend.default_recommender", lambda kb_dir=None: recommender)
    assert main(["recommend", "chest x-ray, 2 classes, 1,000 images", "--max-memory-gb", "4", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["profile"]["max_memory_bytes"] == 4 * 2**30
    assert main(["recommend", "chest x-ray, 2 classes", "--max-memory-gb", "-1"]) == 2
    assert "max_memory_gb must be a number > 0, but got -1" in capsys.readouterr().err

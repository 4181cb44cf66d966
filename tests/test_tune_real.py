"""Real trials: `tune` through the real job runner, meta-model and knowledge base (slow tier).

The LLM is the only fake (a rule that picks an option from the schema's enum; the embedded
model runs in tests/integration/test_tune_llm.py). Frozen heads on cached features of a
shared dataset (seconds of training each): every trial is a real training job whose record lands
in a temporary knowledge base.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.context import Context
from agent.recommend import Recommender
from agent.tune import tune
from agent.tune._gain import validation_se
from knowledge.schema import ExperimentRecord, TrainConfig
from knowledge.store import KnowledgeBase, read_records, read_seed
from tests.test_tune import FakeChat
from tools.datasets import load_dataset

pytestmark = pytest.mark.slow


def second_option(schema: dict[str, Any]) -> Any:
    """Answers the tuning schema with its second option (when there is one); anything else with nonsense,
    so the zero-shot step falls back to the meta-model's best candidate."""
    ids = schema.get("properties", {}).get("option", {}).get("enum")
    if not ids:
        return "not json"
    return {"option": ids[min(1, len(ids) - 1)],
            "rationale": "The second option explores a nearby setting the analysis points to."}


def test_three_real_frozen_trials_land_in_the_knowledge_base(tmp_path: Path, shared_data: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.metamodel import MetaModel

    seed = read_seed()
    metamodel = MetaModel.load_or_fit(seed)  # cached on disk for the packaged records
    kb = KnowledgeBase(tmp_path / "kb")  # empty: the trials' records are all it will hold
    llm = FakeChat(messages=iter([]), script=[second_option] * 50)
    recommender = Recommender(llm=llm, judge_llm=llm, kb=kb, metamodel=metamodel,
                              context=Context(llm_judge=False, max_judge_retries=0))
    from tools import jobs

    real_start = jobs.Job.start
    started: list[TrainConfig] = []

    def start(dataset: str, config: TrainConfig, **kw: Any) -> Any:
        started.append(config)
        return real_start(dataset, config, **kw)

    events: list[dict[str, Any]] = []
    result = tune(
        "breast ultrasound lesions, normal vs benign vs malignant", dataset=str(shared_data / "busi_ultrasound.npz"),
        trials=3, modes=["frozen"], backbones=["efficientnet_lite0"], min_gain=0.0, recommender=recommender,
        start_job=start, runs_dir=str(tmp_path / "runs"), on_event=events.append,
    )

    print("\n" + "\n".join(f"trial {t.number} {t.source} {t.status} val={t.val_accuracy} test={t.test_accuracy} "
                           f"{t.seconds:.1f}s [{', '.join(t.analysis.labels)}] {t.analysis.text}" for t in result.trials))
    assert len(result.trials) == 3, result.stop_reason
    assert [t.source for t in result.trials] == ["fallback", "llm", "llm"]
    assert len({t.config.key() for t in result.trials}) == 3
    records: dict[str, ExperimentRecord] = {r.id: r for r in read_records(kb.path)}
    assert set(records) == {t.record_id for t in result.trials}
    for t, cfg in zip(result.trials, started, strict=True):
        r = records[t.record_id]  # type: ignore[index]
        assert r.config == cfg == t.config and r.outcome.status == t.status
        assert r.provenance.notes and t.rationale[:40] in r.provenance.notes
        assert r.dataset.name == "busi_ultrasound" and r.outcome.history
        assert t.analysis.labels and t.seconds > 0
        assert (Path(t.run_dir) / "log.jsonl").exists()  # type: ignore[arg-type]
    ok = [t for t in result.trials if t.status == "ok"]
    assert ok and result.best is not None
    top = max(t.val_accuracy for t in ok)
    if result.best.val_accuracy != top:  # a near-tie kept for its prediction (`pick`), and the reason says so
        assert result.best_reason and f"trial {result.best.number}" in result.best_reason
        n_val = len(load_dataset(shared_data / "busi_ultrasound.npz").splits["val"].labels)
        assert top - result.best.val_accuracy <= validation_se(top, n_val)
        assert result.best.predicted.accuracy >= max(t.predicted.accuracy for t in ok if t.val_accuracy == top)
    # The prompt for trial 3 carried both earlier trials and the analysis of trial 2.
    last_prompt = "\n".join(str(m.content) for m in llm.prompts[-1])
    assert "t1 efficientnet_lite0/frozen" in last_prompt and "Analysis of trial 2:" in last_prompt
    assert sum(1 for e in events if e["type"] == "train" and e.get("event") == "epoch") >= 3
    assert kb.search("breast ultrasound", k=3)  # the index was brought up to date

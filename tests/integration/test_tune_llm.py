"""`tune` with the real embedded LLM for two real trials (slow tier, about 1-2 minutes).

Trial 1 is the graph's zero-shot recommendation (LLM reasoner + LLM judge); trial 2 is
proposed by the LLM from the trial history, the log analysis and SHAP, under the schema
whose enum holds only untried options. Both train as frozen heads on a shared dataset.
The knowledge base is a temporary one holding a slice of the packaged runs of the same
dataset (enough for retrieval, quick to index); the meta-model is the one of the packaged runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.recommend import Recommender
from agent.tune import render_result, tune
from knowledge.store import KnowledgeBase, read_records, read_seed

pytestmark = pytest.mark.integration

DATA = Path(os.environ.get("METALLMIX_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
BUSI = DATA / "busi_ultrasound.npz"


def test_two_trials_with_the_embedded_llm(tmp_path: Path) -> None:
    if not BUSI.exists():
        pytest.skip(f"the shared datasets are not at {DATA}; set METALLMIX_DATA")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from agent.llm import get_chat_model
    from tools.metamodel import MetaModel

    seed = read_seed()
    kb = KnowledgeBase(tmp_path / "kb")
    kb.append([r for r in seed if r.dataset.name == "busi_ultrasound" and r.config.mode == "frozen"][:40])
    recommender = Recommender(llm=get_chat_model(max_tokens=320, seed=0),
                              judge_llm=get_chat_model(max_tokens=160, seed=0),
                              kb=kb, metamodel=MetaModel.load_or_fit(seed))

    result = tune("breast ultrasound lesions, normal vs benign vs malignant", dataset=str(BUSI), trials=2,
                  budget_minutes=10, modes=["frozen"], min_gain=0.0, recommender=recommender,
                  runs_dir=str(tmp_path / "runs"))
    print("\n" + render_result(result))

    assert len(result.trials) == 2, result.stop_reason
    first, second = result.trials
    # Trial 1 is the recommendation as the graph made it (whether its judge passed the LLM's draft is
    # tests/integration/test_recommend_real.py's subject).
    assert first.source in ("zero-shot", "fallback")
    assert first.config.model_dump(mode="json") == result.recommendation["config"]
    assert second.config.key() != first.config.key()
    # The LLM answered under the schema; a fallback is allowed only for a judged reason, never a broken answer.
    if second.source == "fallback":
        assert "no usable answer" not in (second.fallback_reason or "")
        assert "not the JSON object" not in (second.fallback_reason or "")
    else:
        assert second.source == "llm" and len(second.rationale) >= 20 and second.option
    assert all(t.status == "ok" and t.record_id for t in result.trials)
    notes = {r.id: r.provenance.notes for r in read_records(kb.path)}
    assert all(t.rationale[:40] in (notes[t.record_id] or "") for t in result.trials)  # type: ignore[index]
    assert result.llm_seconds > 0 and result.best is not None

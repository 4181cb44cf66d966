"""The chat streams the real embedded LLM's rationale and stops it (issue 17), with the app's real parts.

Slow tier (`-m integration`): app.build_parts over a copy of the packaged knowledge base (Chroma
index, XGBoost meta-model) and the embedded llama.cpp model, on a SQLite checkpointer.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from agent.chat.runs import STOPPED, WRITING
from knowledge.store import SEED_DIR, open_default, seed_files

pytestmark = pytest.mark.integration

TASK = "skin lesion dermoscopy, 8 classes, 2,000 images, I have 15 minutes on a laptop CPU"


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import app as app_module
    from agent.llm import get_chat_model

    if not seed_files():
        pytest.fail(f"no packaged seed records in {SEED_DIR}: run the sweep first")
    root = tmp_path_factory.mktemp("chat")
    kb = open_default(root / "kb")  # a copy of the seed, as a user's first knowledge base gets
    settings = app_module.AppSettings(port=None, db_path=root / "threads.sqlite", plot_dir=root / "plots",
                                      uploads_dir=root / "uploads", data_dirs=[], secret="it")
    parts = app_module.build_parts(settings, llm=get_chat_model(max_tokens=320, seed=0),
                                   judge_llm=get_chat_model(max_tokens=160, seed=0), kb=kb)
    if parts.warm_up is not None:
        parts.warm_up()
    return parts.adapter


def _written(view: Any) -> list[str]:
    return [m["content"] for m in view.messages if isinstance(m["content"], str) and m["content"].startswith(WRITING)]


def test_the_real_llm_rationale_streams_then_the_card_replaces_it(adapter: Any) -> None:
    views = list(adapter.submit("stream", TASK))

    pieces = list(dict.fromkeys(w for v in views for w in _written(v)))
    assert len(pieces) >= 2, pieces  # words on screen before the whole answer
    card = [m["content"] for m in views[-1].messages if str(m["content"]).startswith("### Recommendation")]
    assert len(card) == 1 and not _written(views[-1])


def test_stop_ends_the_real_llm_at_its_next_token_and_the_thread_goes_on(adapter: Any) -> None:
    stopped_at = None
    final = None
    for view in adapter.submit("stop", "chest x-ray, pneumonia vs normal, 5k images, 10 min"):
        final = view
        if stopped_at is None and _written(view):
            assert adapter.stop("stop") == "Stopping…"
            stopped_at = time.monotonic()
    assert stopped_at is not None and final is not None
    assert time.monotonic() - stopped_at < 5.0  # a token or two on a loaded 2-core CPU, not the whole answer
    assert final.messages[-1]["content"] == STOPPED and not final.busy

    again = list(adapter.submit("stop", TASK))[-1]
    assert sum(str(m["content"]).startswith("### Recommendation") for m in again.messages) == 1
    assert again.offer is not None

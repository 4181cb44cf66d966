"""The chat adapter against the real graph with scripted parts.

The graph is the real one (agent.graph.compile_graph), its parts are the scripted ones of
tests/fakes.py: a rule-based chat model that answers from the prompt's candidate list, a
four-record knowledge base, a deterministic meta-model, and training jobs that replay a log.
So routing, interrupts, checkpoints and the adapter's rendering are all real; nothing is slow
or random.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from agent.chat.adapter import ChatAdapter
from agent.chat.knowledge_tab import (
    BEST_COLUMNS,
    COLUMN_NOTES,
    KB_COLUMNS,
    kb_best_rows,
    kb_counts_md,
    kb_filters,
    kb_rows,
)
from agent.chat.transcript import Transcript
from agent.chat.uploads import prepare_dataset
from agent.chat.views import ChatView, TrainingView, read_job_log
from tests.fakes import TASK, FakeStore, last, make_adapter, texts, tiny_dataset


def titles(view: ChatView) -> list[str]:
    return [m["metadata"]["title"] for m in view.messages if m.get("metadata", {}).get("title")]


# ------------------------------------------------------------------------------- tests
@pytest.fixture
def adapter(tmp_path: Path) -> ChatAdapter:
    return make_adapter(tmp_path)[0]


@pytest.fixture
def dataset(tmp_path: Path) -> str:
    return tiny_dataset(tmp_path / "data")


def test_a_task_streams_each_step_as_a_thought_then_the_card_and_the_shap_plot(adapter: ChatAdapter) -> None:
    views = list(adapter.submit("t1", TASK))

    assert views[0].busy and views[0].messages[0] == {"role": "user", "content": TASK}
    assert any(m.get("metadata", {}).get("status") == "pending" for v in views[:-1] for m in v.messages)
    final = views[-1]
    assert not final.busy and final.offer is not None and final.offer["type"] == "approval"
    heads = titles(final)
    order = ["Profile:", "Retrieved 4 similar", "Meta-model:", "LLM draft 1:", "Judge: draft 1 passed"]
    assert [next(i for i, t in enumerate(heads) if t.startswith(o)) for o in order] == sorted(
        next(i for i, t in enumerate(heads) if t.startswith(o)) for o in order
    )
    assert all(m["metadata"]["status"] == "done" for m in final.messages if m.get("metadata"))
    card = next(t for t in texts(final) if t.startswith("### Recommendation"))
    assert "efficientnet_lite0, frozen" in card and "Expected test accuracy 0.80" in card and "Approve" in card
    image = next(m for m in final.messages if isinstance(m["content"], dict))
    assert Path(image["content"]["path"]).is_file() and "SHAP" in image["content"]["alt_text"]
    retrieved = next(m for m in final.messages if m.get("metadata", {}).get("title", "").startswith("Retrieved"))
    assert "| run | dataset |" in retrieved["content"] and "skin_lesion_isic" in retrieved["content"]


def test_approve_streams_training_progress_then_metrics_record_and_curve(tmp_path: Path, dataset: str) -> None:
    gate = threading.Event()  # the job waits after epoch 1 until this page has seen it
    adapter, _ = make_adapter(tmp_path, gate=gate)
    last(adapter.submit("t1", TASK, dataset=dataset))

    views = []
    for view in adapter.approve("t1"):
        views.append(view)
        if view.training is not None and view.training.epoch == 1:
            gate.set()

    live = [v.training for v in views if v.training is not None and not v.training.done]
    assert any(t.epoch == 1 and t.history[0]["val_accuracy"] == 0.6 and t.fraction == 0.5 for t in live)
    assert any(m.get("metadata", {}).get("title") == "Training…" for v in views for m in v.messages)
    final = views[-1]
    assert final.training is not None and final.training.done and final.training.status == "ok"
    assert [h["epoch"] for h in final.training.history] == [1, 2] and final.training.fraction == 1.0
    body = "\n".join(texts(final))
    assert "Approve" in body and "Approved: training" in body and "Training finished: **test accuracy 0.810**" in body
    assert "New knowledge-base record" in body
    curve = [
        m for m in final.messages if isinstance(m["content"], dict) and "Learning curve" in m["content"]["alt_text"]
    ]
    assert curve and Path(curve[0]["content"]["path"]).is_file()
    assert final.offer is None and not final.busy


def test_plain_language_replies_resume_the_interrupt(tmp_path: Path, dataset: str) -> None:
    adapter, jobs = make_adapter(tmp_path)
    last(adapter.submit("t1", TASK, dataset=dataset))

    edited = last(adapter.submit("t1", "change epochs to 3"))
    assert edited.offer is not None and edited.offer["config"]["epochs"] == 3 and jobs.calls == []
    assert "change epochs to 3" in texts(edited) and "Edit: epochs=3" not in texts(edited)  # as typed

    refused = last(adapter.submit("t1", "lr=5"))
    assert refused.offer is not None and "learning_rate must satisfy" in refused.offer["error"]

    last(adapter.submit("t1", "yes, go ahead"))
    (call,) = jobs.calls
    assert call["config"].epochs == 3


def test_reject_in_words_ends_without_training(tmp_path: Path, dataset: str) -> None:
    adapter, jobs = make_adapter(tmp_path)
    last(adapter.submit("t1", TASK, dataset=dataset))

    view = last(adapter.submit("t1", "no, too slow for me"))

    assert jobs.calls == [] and view.offer is None
    said = [m["content"] for m in view.messages if m["role"] == "user"]
    assert said == [TASK + f"\n\n*(dataset `{Path(dataset).name}`)*", "no, too slow for me"]  # as typed


def test_buttons_edit_with_json_and_reject(adapter: ChatAdapter, dataset: str) -> None:
    last(adapter.submit("t1", TASK, dataset=dataset))

    view = last(adapter.edit("t1", '{"batch_size": 32}'))
    assert view.offer is not None and view.offer["config"]["batch_size"] == 32

    nothing = last(adapter.edit("t1", "make it better"))
    assert "Say what to change" in (nothing.notice or "")

    done = last(adapter.reject("t1", "not now"))
    assert done.offer is None and last(adapter.approve("t1")).notice is not None


def test_followups_are_answered_from_the_state_and_kept(adapter: ChatAdapter) -> None:
    last(adapter.submit("t1", TASK))

    why = last(adapter.submit("t1", "why this learning rate?"))
    body = texts(why)
    assert body[-2] == "why this learning rate?" or body[-3] == "why this learning rate?"
    answer = next(t for t in reversed(body) if t.startswith("**Why learning rate"))
    assert "| learning_rate |" in answer and "chosen" in answer

    whatif = last(adapter.submit("t1", "what about resnet18?"))
    text = texts(whatif)[-1]
    assert "resnet18" in text and "scratch" in text and "use it" in text

    used = last(adapter.submit("t1", "use it"))
    assert used.offer is not None and used.offer["config"]["backbone"] == "resnet18"
    assert used.offer["config"]["mode"] == "scratch"

    similar = last(adapter.submit("t1", "show similar experiments"))
    assert "| run | dataset | configuration |" in texts(similar)[-1]


def test_a_question_without_data_says_what_is_missing(adapter: ChatAdapter) -> None:
    view = last(adapter.submit("fresh", "why this learning rate?"))

    assert "no recommendation in this conversation yet" in texts(view)[-1]
    training = last(adapter.submit("fresh", "how did training go?"))
    assert "no training run" in texts(training)[-1].lower()


def test_a_short_unclear_message_gets_help_not_a_run(adapter: ChatAdapter) -> None:
    view = last(adapter.submit("t1", "hello"))

    assert "Describe your imaging task" in texts(view)[-1] and view.offer is None
    assert adapter.graph.get_state(adapter.config("t1")).next == ()


def test_bad_input_is_shown_as_a_message(adapter: ChatAdapter, tmp_path: Path) -> None:
    outside = tiny_dataset(tmp_path / "elsewhere")

    view = last(adapter.submit("t1", "breast ultrasound", dataset=outside))

    assert "outside the allowed folders" in texts(view)[-1] and view.offer is None


def test_history_and_pending_approval_survive_a_restart(tmp_path: Path, dataset: str) -> None:
    from langgraph.checkpoint.sqlite import SqliteSaver

    db = tmp_path / "threads.sqlite"
    conn = sqlite3.connect(db, check_same_thread=False)
    first, _ = make_adapter(tmp_path, checkpointer=SqliteSaver(conn), transcript=Transcript(db))
    last(first.submit("t1", TASK, dataset=dataset))
    last(first.submit("t1", "epochs=3"))
    before = last(first.submit("t1", "why frozen?"))
    conn.close()

    conn = sqlite3.connect(db, check_same_thread=False)
    second, jobs = make_adapter(tmp_path, checkpointer=SqliteSaver(conn), transcript=Transcript(db))
    after = second.view("t1")

    assert texts(after) == texts(before) and titles(after) == titles(before)
    assert after.offer is not None and after.offer["config"]["epochs"] == 3
    last(second.approve("t1"))
    assert len(jobs.calls) == 1
    conn.close()


def test_threads_are_isolated(adapter: ChatAdapter) -> None:
    last(adapter.submit("alice", TASK))
    bob = last(adapter.submit("bob", "why this learning rate?"))

    assert "no recommendation in this conversation yet" in texts(bob)[-1]
    assert not any("Recommendation" in t for t in texts(bob))
    assert adapter.view("alice").offer is not None and adapter.view("bob").offer is None


def test_cancel_stops_the_running_job(tmp_path: Path, dataset: str) -> None:
    gate = threading.Event()
    adapter, jobs = make_adapter(tmp_path, gate=gate)
    last(adapter.submit("t1", TASK, dataset=dataset))
    views: list[ChatView] = []
    consumer = threading.Thread(target=lambda: views.extend(adapter.approve("t1")))
    consumer.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(v.training and v.training.epoch == 1 for v in views):
        time.sleep(0.05)

    busy = last(adapter.submit("t1", "breast ultrasound, 3 classes"))
    assert "Still working" in (busy.notice or "")
    message = adapter.cancel("t1")
    consumer.join(timeout=20)

    assert "Cancelling" in message and not consumer.is_alive()
    final = views[-1]
    assert final.training is not None and final.training.status == "cancelled"
    assert "Training ended **cancelled**" in "\n".join(texts(final))
    assert adapter.cancel("t1") == "No training job is running in this conversation."


def test_a_page_can_attach_to_a_running_training(tmp_path: Path, dataset: str) -> None:
    gate = threading.Event()
    adapter, _ = make_adapter(tmp_path, gate=gate)
    last(adapter.submit("t1", TASK, dataset=dataset))
    started = adapter.approve("t1")
    next(started)  # the run is launched; this page goes away
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (adapter.view("t1").training or TrainingView()).epoch:
        time.sleep(0.05)

    attached = adapter.follow("t1")
    view = next(attached)
    assert view.busy and view.training is not None and view.training.epoch == 1
    assert view.messages[-1]["metadata"]["status"] == "pending"
    gate.set()
    final = last(attached)
    assert not final.busy and final.training is not None and final.training.status == "ok"


def test_uploads_are_copied_or_safely_unpacked(tmp_path: Path, dataset: str) -> None:
    uploads = tmp_path / "uploads"
    copied = prepare_dataset(dataset, uploads)
    assert Path(copied).parent == uploads and Path(copied).read_bytes() == Path(dataset).read_bytes()

    good = tmp_path / "folder.zip"
    with zipfile.ZipFile(good, "w") as z:
        z.writestr("xray/normal/a.png", b"x")
        z.writestr("xray/pneumonia/b.png", b"y")
    folder = Path(prepare_dataset(good, uploads))
    assert folder.name == "xray" and (folder / "normal" / "a.png").is_file()

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../../escape.txt", b"x")
    with pytest.raises(ValueError, match="outside the archive"):
        prepare_dataset(evil, uploads)
    assert not (tmp_path / "escape.txt").exists()
    text = tmp_path / "notes.txt"
    text.write_text("x")
    with pytest.raises(ValueError, match=".npz file or a .zip"):
        prepare_dataset(text, uploads)


def test_read_job_log_rebuilds_the_training_view(tmp_path: Path) -> None:
    run = tmp_path / "job-1"
    run.mkdir()
    lines = [
        {"event": "start", "config": {"mode": "frozen", "epochs": 2}},
        {"event": "epoch", "epoch": 1, "epochs": 2, "train_loss": 0.7, "val": {"accuracy": 0.5, "loss": 0.8}},
    ]
    (run / "log.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n{torn")

    view = read_job_log(run)

    assert view.epoch == 1 and view.epochs == 2 and view.history[0]["val_accuracy"] == 0.5 and not view.done
    assert view.fraction == 0.5 and "val accuracy 0.500" in view.message


def test_knowledge_base_tables(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)

    assert kb_filters(store)["status"] == ["failed", "ok"]
    rows = kb_rows(store, dataset="skin_lesion_isic", status="all")
    assert {r[1] for r in rows} == {"skin_lesion_isic"} and len(rows) == 2
    assert kb_rows(store, status="failed")[0][10] == "failed"
    best = {r[0]: r for r in kb_best_rows(store)}
    assert best["blood_cells_pbc"][2] == 0.85 and best["blood_cells_pbc"][3] == "efficientnet_lite1"
    assert best["skin_lesion_isic"][1] == 2
    # Every column of both tables has a name, and the tab says what each means.
    assert all(KB_COLUMNS) and all(BEST_COLUMNS) and set(KB_COLUMNS) | set(BEST_COLUMNS) <= set(COLUMN_NOTES)
    counts = kb_counts_md(store)
    assert all(f"**{name}** " in counts for name in [*KB_COLUMNS, *BEST_COLUMNS])


def test_a_thread_stopped_inside_training_resumes_and_records_the_job(tmp_path: Path, dataset: str) -> None:
    adapter, jobs = make_adapter(tmp_path)
    last(adapter.submit("t1", TASK, dataset=dataset))
    real_start = adapter.jobs._start

    def lost(*args: Any, **kwargs: Any) -> Any:  # the process following the job goes away
        raise RuntimeError("the app was stopped")

    adapter.jobs._start = lost
    stopped = last(adapter.approve("t1"))
    assert stopped.stalled and not stopped.busy and "the app was stopped" in "\n".join(texts(stopped))
    assert adapter.graph.get_state(adapter.config("t1")).next == ("train",)

    adapter.jobs._start = real_start
    views = list(adapter.reattach("t1", poll=0.01, idle_seconds=0.05))

    final = views[-1]
    assert not final.stalled and final.training is not None and final.training.status == "ok"
    assert "Training finished" in "\n".join(texts(final)) and len(jobs.calls) == 1

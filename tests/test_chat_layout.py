"""The chat's live run, plots, conversations and run time (issue 17), below the browser: the
adapter over the real graph with the scripted parts of tests/fakes.py, and the app's helpers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.chat.views import TrainingView, run_time_text
from tests.fakes import TASK, FakeJob, last, make_adapter, texts, tiny_dataset


# ------------------------------------------------------------------ the run's own time
def test_run_time_says_the_runs_own_time_and_where_feature_time_came_from() -> None:
    cached = {"seconds": 51.0, "train_seconds": 15.0, "feature_seconds": 36.0, "features_cached": True}
    text = run_time_text(cached)
    assert text.startswith("in 15 s") and "cache" in text and "36 s in an earlier run" in text
    assert "51 s" not in text
    fresh = {"seconds": 51.0, "train_seconds": 15.0, "feature_seconds": 36.0, "features_cached": False}
    assert run_time_text(fresh) == ("in 51 s, of which 36 s extracting the backbone features (cached for the next "
                                    "run on this dataset)")
    assert run_time_text({"seconds": 20.0, "train_seconds": 20.0, "feature_seconds": 0.0}) == "in 20 s"
    assert run_time_text({"seconds": 51.0}) == "in 51 s"  # a thread trained before the split was kept


def _cached_feature_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """FakeJob's run takes 15 s of training on features an earlier run extracted in 36 s."""
    events, finalize = FakeJob.events, FakeJob.finalize

    def cached_events(self: FakeJob) -> Any:
        for event in events(self):
            yield {**event, "cache": "hit"} if event.get("event") == "end" else event

    def timed_finalize(self: FakeJob) -> Any:
        r = finalize(self)
        timed = r.outcome.model_copy(update={"train_seconds": 15.0, "feature_seconds": 36.0})
        return r.model_copy(update={"outcome": timed})

    monkeypatch.setattr(FakeJob, "events", cached_events)
    monkeypatch.setattr(FakeJob, "finalize", timed_finalize)


def test_the_final_message_reports_the_runs_time_not_the_cached_feature_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _cached_feature_job(monkeypatch)
    adapter, _ = make_adapter(tmp_path)
    last(adapter.submit("t1", TASK, dataset=tiny_dataset(tmp_path / "data")))
    final = last(adapter.approve("t1"))

    done = next(t for t in texts(final) if t.startswith("Training finished"))
    assert "in 15 s (the backbone features came from the cache; extracting them took 36 s in an earlier run)" in done
    assert "51 s" not in done
    training = adapter.values("t1")["training"]
    assert training["seconds"] == 51.0 and training["features_cached"] is True  # the record's total is kept
    assert final.training is not None and final.training.message.endswith("in an earlier run)")
    assert "51 s" not in final.training.message


def test_the_worker_says_whether_features_came_from_the_cache(tmp_path: Path, shared_data: Path) -> None:
    from knowledge.schema import TrainConfig
    from tools.jobs import Job

    data = str(shared_data / "busi_ultrasound.npz")
    ends = []
    for seed in (0, 1):  # the second run reads the features the first one extracted (or found)
        cfg = TrainConfig(backbone="efficientnet_lite0", mode="frozen", epochs=1, input_size=64)
        job = Job.start(data, cfg, seed=seed, kb_root=tmp_path / "kb", runs=tmp_path / "runs")
        record = job.wait()
        assert record is not None and record.outcome.status == "ok"
        events = [json.loads(x) for x in (job.run_dir / "log.jsonl").read_text().splitlines()]
        ends.append((events[-1], record.outcome))
    (end, outcome) = ends[1]
    assert end["event"] == "end" and end["cache"] == "hit" and outcome.feature_seconds > 0
    assert ends[0][0]["cache"] in ("hit", "miss")

    view = TrainingView()
    view.apply({"type": "train_done", "status": "ok", "test_accuracy": 0.8, "seconds": 51, "train_seconds": 15,
                "feature_seconds": 36, "features_cached": True})
    assert view.message.startswith("finished: test accuracy 0.800 in 15 s")


# ------------------------------------------------------------------ the live curve
def _history(n: int) -> list[dict[str, Any]]:
    return [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_accuracy": 1 - 0.5 / e} for e in range(1, n + 1)]


@pytest.mark.parametrize("epochs", [5, 40, 200])
def test_the_curve_has_a_few_whole_epoch_ticks_at_any_length(epochs: int) -> None:
    from agent.chat.plots import X_TICKS, learning_curve_figure

    for stacked in (True, False):
        fig = learning_curve_figure(_history(epochs), stacked=stacked)
        fig.canvas.draw()
        for ax in fig.axes:
            low, high = ax.get_xlim()
            ticks = [t for t in ax.get_xticks() if low <= t <= high]
            assert 2 <= len(ticks) <= X_TICKS + 1, (epochs, ticks)
            assert all(float(t).is_integer() for t in ticks)
            labels = [lab.get_window_extent() for lab in ax.get_xticklabels() if lab.get_text()]
            assert all(a.x1 < b.x0 for a, b in zip(labels, labels[1:], strict=False)), "tick labels overlap"
    if epochs == 5:
        assert [int(t) for t in fig.axes[0].get_xticks() if 1 <= t <= 5] == [1, 2, 3, 4, 5]


def test_the_panel_redraws_for_each_run_and_clears_before_its_first_epoch() -> None:
    from agent.chat.plots import panel_curve

    shown: list[Any] = [-1]
    trial1 = TrainingView(job_id="trial-1", history=_history(3))
    changed, fig = panel_curve(trial1, shown)
    assert changed and fig is not None
    assert panel_curve(TrainingView(job_id="trial-1", history=_history(3)), shown) == (False, None)  # same: no redraw
    # Tuning's trial 2 starts: a new job, no epoch yet. The panel clears at once (it showed trial 1 until now).
    assert panel_curve(TrainingView(job_id="trial-2"), shown) == (True, None)
    changed, fig = panel_curve(TrainingView(job_id="trial-2", history=_history(1)), shown)
    assert changed and fig is not None and shown[0] == ("trial-2", 1, False)
    assert panel_curve(None, shown) == (True, None)  # another thread without a run: nothing of this one


def test_a_tuning_sessions_second_trial_is_the_run_on_screen(tmp_path: Path) -> None:
    from agent.chat.plots import curve_key
    from agent.chat.tuning import TuneSession, show_session
    from agent.chat.views import ChatView
    from tests.fakes import make_trial

    session = TuneSession("t1", "tune 2 trials", tuner=None, per_trial=False, dataset="d.npz")  # type: ignore[arg-type]
    shown = []
    for job in ("job-a", "job-b"):
        session._event({"type": "job", "job_id": job, "run_dir": str(tmp_path / job)})
        view = ChatView("t1", [])
        show_session(view, session, None)
        shown.append(curve_key(view.training))
        session._event({"type": "train", "event": "epoch", "epoch": 1, "epochs": 2, "train_loss": 0.5,
                        "val": {"accuracy": 0.7, "loss": 0.6}})
        session._event({"type": "trial", "result": make_trial(1, 0.7, 0.7).model_dump(mode="json")})
    assert shown == [("job-a", 0, False), ("job-b", 0, False)]
    view = ChatView("t1", [])
    show_session(view, session, None)
    assert view.training is not None and view.training.job_id == "job-b" and view.training.status == "ok"


# ------------------------------------------------------------------ conversations
def test_a_browser_lists_its_own_threads_with_titles_and_times_and_reopens_one(tmp_path: Path) -> None:
    from agent.chat.conversations import NEW_TITLE, Conversations, remember

    adapter, _ = make_adapter(tmp_path)
    listed = Conversations(adapter.graph, adapter.transcript)
    last(adapter.submit("a", TASK))
    adapter.note("b", "hello", "Describe your imaging task ...")
    last(adapter.submit("someone-else", "Chest x-rays, pneumonia vs normal, 5,000 images"))

    mine = remember(remember(remember([], "a"), "b"), "c")  # c: a new thread, nothing said yet
    assert mine == ["c", "b", "a"]
    rows = listed.listing(mine, current="c")
    assert [r.thread_id for r in rows] == ["c", "b", "a"]  # never another browser's thread
    assert rows[0].title == NEW_TITLE and rows[0].updated is None and rows[0].label == NEW_TITLE
    assert rows[1].title == "hello" and rows[1].updated is not None
    assert rows[2].title.startswith(TASK[:30]) and len(rows[2].title) <= 61 and " · " in rows[2].label
    assert [r.thread_id for r in listed.listing(mine, current="a")] == ["b", "a"]  # an empty thread left behind
    # Reopening a thread shows its messages (the checkpointer is the source of truth).
    assert any(t.startswith("### Recommendation") for t in texts(adapter.view("a")))
    assert remember(["x"] * 3 + [f"t{i}" for i in range(100)], "t5")[:2] == ["t5", "x"]
    assert len(remember([f"t{i}" for i in range(100)], "new")) == 50


def test_titles_are_the_first_request_shortened_at_a_word() -> None:
    from agent.chat.conversations import short_title

    assert short_title("  Chest x-rays,\n pneumonia vs normal ") == "Chest x-rays, pneumonia vs normal"
    long = "Breast ultrasound lesions (normal, benign, malignant), about 800 images; I have 10 minutes"
    assert short_title(long) == "Breast ultrasound lesions (normal, benign, malignant), about…"


def test_a_live_run_before_its_job_starts_shows_no_earlier_runs_status(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from agent.chat.runs import LiveRun
    from agent.chat.views import training_view

    run_dir = tmp_path / "run-1"
    run_dir.mkdir()
    (run_dir / "log.jsonl").write_text(json.dumps({"event": "epoch", "epoch": 40, "epochs": 40, "train_loss": 0.1,
                                                   "val": {"accuracy": 0.9, "loss": 0.2}}) + "\n")
    done = {"run_dir": str(run_dir), "status": "ok", "test_accuracy": 0.88, "seconds": 60.0}
    last = SimpleNamespace(values={"training": done}, next=("approve",))
    earlier = training_view(None, last, {"train", "record"})
    assert earlier is not None and earlier.status == "ok" and earlier.epoch == 40  # no run live: the last one

    second = LiveRun("t1", "resume", None, None)  # approved again; its job has not started yet
    assert training_view(second, last, {"train", "record"}) is None
    second.training = TrainingView(job_id="run-2")
    shown = training_view(second, last, {"train", "record"})
    assert shown is not None and shown.job_id == "run-2" and shown.status == "starting" and shown is not second.training

"""The iterative mode in the chat (agent.chat.tuning through ChatAdapter) with fake parts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from agent.chat import ChatAdapter, ChatView, JobRegistry, Transcript
from agent.chat.router import TuneCommand, parse_tune_command
from agent.context import Context
from agent.graph import build_graph
from agent.parts import Parts
from tests.fakes import tiny_dataset
from tests.test_tune import DRAFT, FakeChat, FakeJobs, FakeMetaModel, FakeStore, pick


class Chat:
    def __init__(self, tmp_path: Path, script: list, *, delay: float = 0.0) -> None:
        self.store = FakeStore(tmp_path / "kb")
        self.llm = FakeChat(messages=iter([]), script=list(script))
        self.metamodel = FakeMetaModel()
        self.jobs = FakeJobs(tmp_path / "runs", self.store, delay=delay)
        self.transcript = Transcript(tmp_path / "threads.sqlite")
        self.saver = InMemorySaver()
        self.adapter = self.make()
        self.dataset = tiny_dataset(tmp_path)

    def make(self) -> ChatAdapter:
        parts = Parts(llm=self.llm, judge_llm=self.llm, kb=self.store, metamodel=self.metamodel, start_job=self.jobs,
                      weights_available=lambda b: b.startswith("efficientnet_lite"))
        return ChatAdapter(build_graph(parts, checkpointer=self.saver), parts, context=Context(llm_judge=False),
                           jobs=JobRegistry(self.jobs), transcript=self.transcript, followup_llm=self.llm)


def last(views: Iterator[ChatView]) -> ChatView:
    seen = list(views)
    assert seen
    return seen[-1]


def text(view: ChatView) -> str:
    return "\n".join(str(m["content"]) for m in view.messages)


def recommend(chat: Chat, thread: str = "t1") -> ChatView:
    view = last(chat.adapter.submit(thread, "breast ultrasound, 3 classes", dataset=chat.dataset))
    assert view.offer is not None and not view.busy
    return view


@pytest.mark.parametrize(("message", "expected"), [
    ("tune 5 trials in 10 minutes", TuneCommand(5, 10.0, False)),
    ("Tune 3 trials, ask before each", TuneCommand(3, None, True)),
    ("iterate for 1.5 hours", TuneCommand(5, 90.0, False)),
    ("tune 2 runs in 4 min one by one", TuneCommand(2, 4.0, True)),
    ("why this learning rate?", None),
    ("what about tuning the learning rate?", None),
])
def test_parse_tune_command(message: str, expected: TuneCommand | None) -> None:
    assert parse_tune_command(message) == expected


def test_tune_streams_every_trial_and_keeps_the_session(tmp_path: Path) -> None:
    chat = Chat(tmp_path, [DRAFT, pick(0), pick(1)])
    recommend(chat)

    views = list(chat.adapter.submit("t1", "tune 3 trials in 10 minutes"))

    final = views[-1]
    assert not final.busy and final.offer is None
    shown = text(final)
    for n in (1, 2, 3):
        assert f"**Trial {n}**" in shown and f"**Trial {n} result:**" in shown
    assert "the recommendation" in shown and "the LLM's pick (o1)" in shown and "*Analysis (" in shown
    assert "**Tuning stopped:** trials done" in shown
    assert len(chat.jobs.calls) == 3 and len({c["config"].key() for c in chat.jobs.calls}) == 3
    assert any(v.busy and v.training is not None for v in views[:-1])  # progress streamed while training
    # The graph's pending approval was closed (trial 1 trained that recommendation) ...
    assert chat.adapter.graph.get_state(chat.adapter.config("t1")).next == ()
    # ... and the session is kept in the transcript: a restarted app shows it.
    again = chat.make().view("t1")
    assert "**Trial 3 result:**" in text(again) and "tune 3 trials in 10 minutes" in text(again)


def test_per_trial_approval_waits_for_each_answer(tmp_path: Path) -> None:
    chat = Chat(tmp_path, [DRAFT, pick(0)])
    recommend(chat)

    view = last(chat.adapter.submit("t1", "tune 3 trials, ask before each"))
    assert view.busy and view.offer is not None and view.offer["tune_trial"] == 1
    assert chat.jobs.calls == []  # nothing trains before the answer

    view = last(chat.adapter.approve("t1"))
    assert len(chat.jobs.calls) == 1 and view.offer is not None and view.offer["tune_trial"] == 2
    assert "**Trial 1 result:**" in text(view)

    view = last(chat.adapter.submit("t1", "no"))
    assert not view.busy and view.offer is None and len(chat.jobs.calls) == 1
    assert "**Tuning stopped:** trial 2 not approved" in text(view)


def test_cancel_stops_the_session(tmp_path: Path) -> None:
    chat = Chat(tmp_path, [DRAFT, pick(0)], delay=1.0)
    recommend(chat)
    views = chat.adapter.submit("t1", "tune 3 trials")
    first = next(views)
    assert first.busy

    assert "Cancelling the tuning session" in chat.adapter.cancel("t1")
    final = last(views)
    assert not final.busy and "**Tuning stopped:** cancelled by the user" in text(final)
    assert len(chat.jobs.calls) == 1


def test_tuning_needs_a_recommendation_with_a_dataset(tmp_path: Path) -> None:
    chat = Chat(tmp_path, [DRAFT])
    view = last(chat.adapter.submit("t1", "tune 3 trials"))
    assert "Tuning starts from a recommendation" in text(view) and chat.jobs.calls == []

    last(chat.adapter.submit("t2", "breast ultrasound, 3 classes, 800 images"))  # text only: no dataset
    view = last(chat.adapter.submit("t2", "tune 3 trials"))
    assert "needs the dataset" in text(view) and chat.jobs.calls == []


def test_a_second_tune_in_the_thread_continues_where_the_first_stopped(tmp_path: Path) -> None:
    chat = Chat(tmp_path, [DRAFT, pick(0), pick(0), pick(0)])
    recommend(chat)
    last(chat.adapter.submit("t1", "tune 2 trials"))
    first = [c["config"].key() for c in chat.jobs.calls]
    assert len(first) == 2

    chat.adapter = chat.make()  # an app restart between the sessions: the transcript holds the trials
    final = last(chat.adapter.submit("t1", "tune 2 trials"))

    calls = [c["config"].key() for c in chat.jobs.calls]
    assert len(calls) == 4 and calls[:2] == first
    assert len(set(calls)) == 4  # neither the recommendation nor trial 2 ran again
    assert [c["job_id"].rsplit("-t", 1)[1][:2] for c in chat.jobs.calls[2:]] == ["03", "04"]
    shown = text(final)
    assert "Continuing this thread's earlier tuning: its 2 trial(s) are not run again" in shown
    assert "**Trial 3 result:**" in shown and "**Trial 4 result:**" in shown
    assert "**Tuning stopped:** trials done: all 2 ran (after the 2 of the earlier session)" in shown
    entries = [e["answer"] for e in chat.transcript.entries("t1") if e["answer"].get("kind") == "tune"]
    assert [len(a["trials"]) for a in entries] == [2, 4]


def test_a_new_task_in_the_thread_tunes_afresh(tmp_path: Path) -> None:
    chat = Chat(tmp_path, [DRAFT, pick(0), DRAFT, pick(0)])
    recommend(chat)
    last(chat.adapter.submit("t1", "tune 2 trials"))
    # Another dataset: a new task, whose tuning must not continue the first one's trials.
    other = tiny_dataset(tmp_path / "other", "other_ultrasound.npz")
    view = last(chat.adapter.submit("t1", "breast ultrasound, 3 classes", dataset=other))
    assert view.offer is not None
    final = last(chat.adapter.submit("t1", "tune 2 trials"))
    assert "Continuing" not in text(final).split("tune 2 trials")[-1]
    assert len(chat.jobs.calls) == 4 and chat.jobs.calls[2]["dataset"] == other


# ------------------------------------------- what the user said, and each trial's own time (issue 17)
def _tuning(tmp_path: Path, timing: dict | None = None) -> tuple[ChatAdapter, Transcript, str]:
    """The adapter of tests/fakes.py (scripted graph parts; the tuner's next trials are the meta-model's
    fallback picks) with a recommendation on a dataset in thread t1."""
    from tests.fakes import TASK, make_adapter

    transcript = Transcript(tmp_path / "threads.sqlite")
    adapter, jobs = make_adapter(tmp_path, transcript=transcript)
    jobs.timing = timing
    data = tiny_dataset(tmp_path / "data")
    assert last(adapter.submit("t1", TASK, dataset=data)).offer is not None
    return adapter, transcript, data


def _said(view: ChatView) -> list[str]:
    return [str(m["content"]) for m in view.messages if m["role"] == "user"]


def test_answers_to_each_trial_show_as_the_user_said_them(tmp_path: Path) -> None:
    from tests.fakes import TASK, make_adapter

    adapter, transcript, data = _tuning(tmp_path)
    view = last(adapter.submit("t1", "tune 3 trials, ask before each"))
    assert view.offer["tune_trial"] == 1
    held = last(adapter.submit("t1", "hmm, let me think"))  # no answer: not taken, and left in the box
    assert held.unsent and "still in the box" in (held.notice or "") and held.offer["tune_trial"] == 1
    assert "hmm, let me think" not in _said(held)
    view = last(adapter.submit("t1", "yes"))  # typed
    assert view.offer["tune_trial"] == 2 and not view.unsent
    assert _said(view)[-2:] == ["tune 3 trials, ask before each", "yes"]
    view = last(adapter.approve("t1"))  # the button: shown as "Approve", like the single run's
    assert view.offer["tune_trial"] == 3
    final = last(adapter.submit("t1", "no, too slow"))

    expected = [f"{TASK}\n\n*(dataset `{Path(data).name}`)*", "tune 3 trials, ask before each", "yes", "Approve",
                "no, too slow"]
    assert _said(final) == expected  # every message typed, in order, and none the user did not type
    assert "**Tuning stopped:** trial 3 not approved: too slow." in text(final)
    shown = text(final)
    assert shown.index("yes") < shown.index("**Trial 1 result:**") < shown.index("**Trial 2 result:**")
    # The answers are kept with the session: an app restart shows the same conversation.
    again, _ = make_adapter(tmp_path, transcript=transcript, checkpointer=adapter.graph.checkpointer)
    assert _said(again.view("t1")) == expected


def test_a_cancel_or_a_reject_click_shows_no_words_the_user_did_not_say(tmp_path: Path) -> None:
    adapter, _, _ = _tuning(tmp_path)
    last(adapter.submit("t1", "tune 3 trials, ask before each"))
    view = last(adapter.reject("t1", "too slow"))  # the Reject button with the reason in the box beside it
    assert _said(view)[-1] == "Reject: too slow"
    assert "**Tuning stopped:** trial 1 not approved: too slow." in text(view)

    last(adapter.submit("t1", "tune 3 trials, ask before each"))
    assert "Cancelling the tuning session" in adapter.cancel("t1")
    final = last(adapter.follow("t1"))  # until the session has ended
    assert _said(final)[-1] == "tune 3 trials, ask before each"  # the Cancel click says nothing in the user's name
    assert "**Tuning stopped:**" in text(final).split("tune 3 trials, ask before each")[-1]


@pytest.mark.parametrize(("cache", "said"), [
    ("hit", "in 15 s (the backbone features came from the cache; extracting them took 36 s in an earlier run)"),
    ("miss", "in 51 s, of which 36 s extracting the backbone features (cached for the next run on this dataset)"),
])
def test_each_trial_card_says_that_trials_own_time(tmp_path: Path, cache: str, said: str) -> None:
    adapter, _, _ = _tuning(tmp_path, {"train_seconds": 15.0, "feature_seconds": 36.0, "cache": cache})
    final = last(adapter.submit("t1", "tune 2 trials"))

    cards = [str(m["content"]) for m in final.messages if str(m["content"]).startswith("**Trial ")
             and " result:**" in str(m["content"])]
    assert len(cards) == 2 and all(said in c for c in cards), cards
    if cache == "hit":
        assert not any("51 s" in c for c in cards)
    own = "15 s" if cache == "hit" else "51 s"  # the summary's own-time column, the same rule
    rows = [line for line in text(final).splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(rows) == 2 and all(row.rstrip(" |").endswith(own) for row in rows), rows


def test_edit_during_a_trial_question_says_what_to_do_and_keeps_the_trial_waiting(tmp_path: Path) -> None:
    adapter, _, _ = _tuning(tmp_path)
    view = last(adapter.submit("t1", "tune 2 trials, ask before each"))
    assert view.offer is not None and view.offer["tune_trial"] == 1

    edited = last(adapter.edit("t1", "epochs=5"))
    assert edited.notice and "cannot be edited" in edited.notice and "Approve" in edited.notice
    assert edited.offer is not None and edited.offer["tune_trial"] == 1  # still waiting for its answer
    assert last(adapter.approve("t1")).offer["tune_trial"] == 2  # and still answerable
    last(adapter.reject("t1"))


def test_the_dataset_path_left_under_options_does_not_turn_answers_into_new_requests(tmp_path: Path) -> None:
    from tests.fakes import TASK

    adapter, _, data = _tuning(tmp_path)  # the page sends the Options path with every message
    view = last(adapter.submit("t1", "tune 2 trials, ask before each", dataset=data))
    assert view.offer is not None and view.offer["tune_trial"] == 1  # tuning, not a new recommendation
    view = last(adapter.submit("t1", "yes", dataset=data))
    assert view.offer["tune_trial"] == 2 and _said(view)[-1] == "yes"
    last(adapter.submit("t1", "no", dataset=data))

    last(adapter.submit("t2", TASK, dataset=data))
    final = last(adapter.submit("t2", "yes", dataset=data))  # the single run's offer: approved, as typed
    assert _said(final)[-1] == "yes" and any("Training finished" in str(m["content"]) for m in final.messages)
    # A task text with the same dataset is still a new request on it.
    again = last(adapter.submit("t2", TASK, dataset=data))
    assert again.offer is not None and again.offer["dataset"] == data
    other = tiny_dataset(tmp_path / "data", "other_ultrasound.npz")  # another dataset: a new request
    assert last(adapter.submit("t2", "yes", dataset=other)).offer["dataset"] == other

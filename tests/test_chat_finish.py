"""The chat finished (issue 17), at the adapter: the meta-model's pick at once, the config to take
away, no message the user did not type, and a status that belongs to the run on screen.

The real graph over the scripted parts of tests/fakes.py, as in tests/test_app_adapter.py.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from agent.chat.views import ChatView
from tests.fakes import TASK, last, make_adapter, texts, tiny_dataset


def _gate_the_llm(adapter: Any, gate: threading.Event) -> None:
    """Hold the reasoner's call until `gate` is set (the judge and the rest pass at once)."""
    llm = adapter.parts.llm
    answer = llm.answer

    def held(schema: dict[str, Any], messages: list[Any]) -> dict[str, Any]:
        if schema.get("title") == "Recommendation":
            assert gate.wait(20), "the test never released the LLM"
        return answer(schema, messages)

    object.__setattr__(llm, "answer", held)  # ScriptChat is a pydantic model: set past its validation


def test_the_pick_shows_before_the_llm_answers_and_the_card_replaces_it(tmp_path: Path) -> None:
    adapter, _ = make_adapter(tmp_path)
    gate = threading.Event()
    _gate_the_llm(adapter, gate)

    views: list[ChatView] = []
    for view in adapter.submit("t1", TASK):
        views.append(view)
        if any(t.startswith("**The meta-model's pick:**") for t in texts(view)):
            gate.set()  # the pick is on screen while the LLM has not answered yet

    early = next(v for v in views if any(t.startswith("**The meta-model's pick:**") for t in texts(v)))
    body = texts(early)
    pick = next(t for t in body if t.startswith("**The meta-model's pick:**"))
    assert early.busy and not any(t.startswith("### Recommendation") for t in body)
    assert "efficientnet_lite0/frozen" in pick and "predicted test accuracy **0.80**" in pick
    assert "% interval" in pick and " on cpu" in pick
    assert early.messages[-1]["metadata"]["status"] == "pending"  # the LLM step runs below it

    final = texts(views[-1])
    assert sum(t.startswith("### Recommendation") for t in final) == 1
    assert not any("The meta-model's pick" in t for t in final)  # the card took its place


def test_the_pick_stays_when_the_request_ends_without_a_card(tmp_path: Path) -> None:
    adapter, _ = make_adapter(tmp_path)
    llm = adapter.parts.llm

    def broken(schema: dict[str, Any], messages: list[Any]) -> dict[str, Any]:
        raise RuntimeError("the model server went away")

    object.__setattr__(llm, "answer", broken)
    final = texts(last(adapter.submit("t1", TASK)))

    assert any(t.startswith("**The meta-model's pick:**") for t in final) or any(
        t.startswith("### Recommendation") for t in final)  # a fallback card, or the pick with the error
    assert sum(t.startswith("**The meta-model's pick:**") or t.startswith("### Recommendation") for t in final) == 1


# ------------------------------------------------------------------ taking the result away
def _export(view: ChatView) -> str:
    blocks = [m["content"] for m in view.messages
              if m.get("metadata", {}).get("title", "").startswith("Take this configuration away")]
    assert blocks, "no export block"
    return str(blocks[-1])


def _block(text: str, lang: str) -> str:
    return text.split(f"```{lang}\n", 1)[1].split("\n```", 1)[0]


def test_the_offer_is_offered_as_json_yaml_the_cli_command_and_python(tmp_path: Path, monkeypatch: Any) -> None:
    import json
    import shlex
    import types

    import yaml

    from agent import cli
    from knowledge.schema import TrainConfig

    adapter, _ = make_adapter(tmp_path)
    dataset = tiny_dataset(tmp_path / "data")
    view = last(adapter.submit("t1", TASK, dataset=dataset))
    assert view.offer is not None
    offered = view.offer["config"]
    text = _export(view)

    assert json.loads(_block(text, "json")) == offered
    assert yaml.safe_load(_block(text, "yaml")) == offered
    command = shlex.split(_block(text, "bash"))  # what a shell passes to the real CLI
    assert command[:2] == ["metallmix", "train"] and command[-1] == "--yes"
    args = cli.build_parser().parse_args(command[1:])
    assert args.dataset == dataset and cli._config_from_args(args) == TrainConfig.model_validate(offered)

    started: list[tuple[str, Any, Any]] = []

    class FakeJob:
        run_dir = "runs/x"

        @staticmethod
        def start(path: str, config: Any, *, kb_root: Any) -> Any:
            started.append((path, config, kb_root))
            return FakeJob()

        def wait(self, progress: bool = False) -> Any:
            return types.SimpleNamespace(outcome=types.SimpleNamespace(status="ok", test_accuracy=0.8))

    monkeypatch.setattr("tools.jobs.Job", FakeJob)
    monkeypatch.setattr("knowledge.store.open_default", lambda **kw: types.SimpleNamespace(root="kb-root"))
    exec(compile(_block(text, "python"), "snippet", "exec"), {})  # the snippet runs against the real modules
    assert started == [(dataset, TrainConfig.model_validate(offered), "kb-root")]


def test_an_edited_offer_comes_with_its_own_export(tmp_path: Path) -> None:
    import json

    adapter, _ = make_adapter(tmp_path)
    last(adapter.submit("t1", TASK))  # no dataset: the command says where the path goes
    view = last(adapter.submit("t1", "epochs=3"))

    text = _export(view)
    assert json.loads(_block(text, "json"))["epochs"] == 3
    assert "PATH/TO/DATASET.npz" in _block(text, "bash") and "replace `PATH/TO/DATASET.npz`" in text


# ------------------------------------------------------------------ no message the user did not type
def _user_texts(view: ChatView) -> list[str]:
    return [str(m["content"]) for m in view.messages if m["role"] == "user"]


def test_a_new_task_while_an_offer_waits_adds_no_reject_bubble(tmp_path: Path) -> None:
    from agent.chat.rendering import UNANSWERED

    adapter, jobs = make_adapter(tmp_path)
    last(adapter.submit("t1", TASK))
    other = "chest x-ray, 2 classes, 5,000 images, 10 minutes on a laptop"

    view = last(adapter.submit("t1", other))

    assert _user_texts(view) == [TASK, other]  # only what was typed
    assert UNANSWERED in texts(view) and jobs.calls == []
    assert sum(t.startswith("### Recommendation") for t in texts(view)) == 2 and view.offer is not None


def test_typed_answers_to_an_offer_are_shown_as_typed(tmp_path: Path) -> None:
    adapter, jobs = make_adapter(tmp_path)
    last(adapter.submit("t1", TASK))

    view = last(adapter.submit("t1", "epochs=3"))  # an edit, typed
    assert _user_texts(view) == [TASK, "epochs=3"] and view.offer is not None and view.offer["config"]["epochs"] == 3
    view = last(adapter.submit("t1", "yes please"))  # an approval, typed: refused (no dataset), still as typed
    assert _user_texts(view) == [TASK, "epochs=3", "yes please"] and "training needs a dataset" in texts(view)[-1]
    view = last(adapter.submit("t1", "no, too slow for me"))
    assert _user_texts(view) == [TASK, "epochs=3", "yes please", "no, too slow for me"] and jobs.calls == []
    assert not any(t.startswith(("Approve", "Reject", "Edit:")) for t in _user_texts(view))


def test_a_click_is_shown_as_the_buttons_name(tmp_path: Path) -> None:
    adapter, _ = make_adapter(tmp_path)
    last(adapter.submit("t1", TASK))
    view = last(adapter.reject("t1", "too slow"))
    assert _user_texts(view) == [TASK, "Reject: too slow"]


def test_an_offer_closed_for_tuning_is_said_by_the_assistant_not_the_user(tmp_path: Path) -> None:
    from langgraph.types import Command

    from agent.chat.views import SUPERSEDED_BY_TUNING

    adapter, _ = make_adapter(tmp_path)
    last(adapter.submit("t1", TASK))
    adapter.graph.invoke(Command(resume={"action": "reject", "reason": SUPERSEDED_BY_TUNING}),
                         adapter.config("t1"), context=adapter.context)  # what start_tune does

    view = adapter.view("t1")
    assert _user_texts(view) == [TASK]
    assert any("the tuning session below starts from it" in t for t in texts(view))


# ------------------------------------------------------------------ a status that belongs to the run on screen
def test_after_cancelling_tuning_the_status_is_not_the_earlier_training(tmp_path: Path) -> None:
    from tests.test_tune import DRAFT, pick
    from tests.test_tune_chat import Chat, recommend

    chat = Chat(tmp_path, [DRAFT, pick(0)], delay=1.0)
    recommend(chat)
    trained = last(chat.adapter.submit("t1", "yes"))  # the recommendation trains and finishes ok
    assert trained.training is not None and trained.training.status == "ok"
    earlier = trained.training.run_dir

    views = chat.adapter.submit("t1", "tune 3 trials")
    next(views)
    chat.adapter.cancel("t1")
    final = last(views)

    assert "cancelled by the user" in "\n".join(str(m["content"]) for m in final.messages)
    assert final.training is None or final.training.run_dir != earlier  # the cancelled session's, or none
    again = chat.adapter.view("t1")  # a reload after the session was kept in the transcript
    assert again.training is None or again.training.run_dir != earlier

"""Every prompt template loads as package data and formats with exactly the keys it expects."""

from __future__ import annotations

import string
from importlib import resources

import pytest

from agent.prompts import prompt

# Every template in prompts/, with the keys its caller formats it with (agent/nodes.py:
# reason_messages and judge_messages; agent/tune.py: Tuner.messages).
EXPECTED: dict[str, set[str]] = {
    "reason_system": set(),
    "reason_user": {"task", "data", "constraints", "candidates", "top_id", "shap", "evidence", "facts"},
    "reason_retry": {"critique"},
    "judge": set(),
    "tune_system": set(),
    "tune_user": {"task", "data", "budget", "history", "last", "analysis", "shap", "options"},
}


def test_every_template_is_package_data_and_known_here() -> None:
    # Equality, not a subset: a template added to prompts/ must be listed above (so the tests
    # below format it), and a listed one that is missing or renamed fails here.
    files = {p.name.removesuffix(".md") for p in resources.files("prompts").iterdir() if p.name.endswith(".md")}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_template_formats_with_its_keys(name: str) -> None:
    template = prompt(name)
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}

    assert fields == EXPECTED[name]
    text = template.format(**{k: f"<{k}>" for k in fields})
    assert "{" not in text and "}" not in text
    for key in fields:
        assert f"<{key}>" in text


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_templates_stay_short(name: str) -> None:
    # Prompt tokens dominate latency on a 2-core CPU (~200 tokens/s): ~4 characters a token.
    assert len(prompt(name)) < 1000


def test_a_candidate_line_shows_its_spread_only_when_the_models_disagree() -> None:
    from agent.prompting import candidate_line

    c = {"id": "c2", "accuracy": 0.744, "seconds": 95.0, "over_budget": False,
         "config": {"backbone": "efficientnet_lite1", "mode": "finetune", "freeze": 0.5, "input_size": 96,
                    "optimizer": "adam", "learning_rate": 0.001, "batch_size": 32, "epochs": 20}}
    assert ": 0.74 ±0.08, " in candidate_line(dict(c, spread=0.081))
    assert ": 0.74, " in candidate_line(dict(c, spread=0.001))  # rounds to ±0.00: not shown
    assert ": 0.74, " in candidate_line(c)  # a candidate from before the spread existed

"""Reading a request into its profile: the task text and its scope, the limits, the lists the user allows.

The profile node (agent.nodes) calls these; they hold the rules, the node the order.
"""

from __future__ import annotations

from typing import Any

from agent.errors import OutOfScope, TaskError


def open_fields(profile: dict[str, Any]) -> list[str]:
    """The meta-features a text-only profile assumed (tools.novelty.OPEN_FIELDS among them): the
    meta-model's interval spans their plausible values instead of trusting the defaults."""
    from tools.novelty import OPEN_FIELDS

    if profile.get("source") != "text":
        return []
    named = [a.split("=", 1)[0] for a in profile.get("assumed") or ()]
    return [f for f in named if f in OPEN_FIELDS]


def read_task(text: str, dataset: str | None) -> tuple[Any, Any]:
    """The task read from the text, and its scope (None when a dataset comes without words).

    Without a dataset, a text that asks for no image-classification set-up (another task,
    another kind of data, off-topic, or too vague to act on) is refused with what the tool does
    and what to type (OutOfScope, exit 2 in the CLI). An instruction to the assistant inside the
    text is cut out before the task is read, so none of its values reach the profile.
    """
    from tools.scope import classify_scope
    from tools.task_text import parse_task

    try:
        told = parse_task(text)
        problem = None
    except ValueError as exc:
        told, problem = None, exc
    scope = classify_scope(text, told) if text.strip() else None
    if scope is not None and not scope.in_scope and not dataset:
        raise OutOfScope(scope.message or "this is not an image-classification task.")
    if problem is not None:
        raise TaskError(str(problem)) from problem
    if scope is not None and scope.injection:
        try:
            told = parse_task(scope.task_text)
        except ValueError as exc:
            raise TaskError(str(exc)) from exc
    return told, scope


def allowed(name: str, values: Any, allowed: tuple[str, ...]) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = [v.strip() for v in values.split(",") if v.strip()]
    values = list(values)
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise TaskError(f"{name} must be drawn from {', '.join(allowed)}, but got {values!r}.")
    return values


__all__ = ["allowed", "open_fields", "read_task"]

"""The Markdown of each step of a thread: the thoughts' titles and tables, the recommendation card, the edited offer.

Each function takes the plain values the graph keeps in its state (dicts, as checkpointed)
and returns text; `agent.chat.rendering` decides which messages they become.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.formatting import (
    CANDIDATE_COLUMNS,
    EVIDENCE_COLUMNS,
    EVIDENCE_LEGEND,
    accuracy_text,
    candidate_legend,
    candidate_note,
    config_text,
    duration_text,
    interval_text,
    markdown_table,
)
from agent.judge import verdict_summary
from agent.recommendation import measured_text


def profile_md(p: dict[str, Any]) -> tuple[str, str]:
    """The profile step's title and meta-feature table (with what was assumed, and notes)."""
    m = p["meta"]
    body = f" {m['body_part']}" if m.get("body_part") else ""
    title = (f"Profile: {m['modality']}{body}, {m['n_classes']} classes, {m['n_instances']:,} images"
             f" (from the {p['source']})")
    rows = [["modality", f"{m['modality']}{body}"], ["classes", m["n_classes"]], ["images", f"{m['n_instances']:,}"],
            ["resolution", f"{m['resolution']} px, {'RGB' if m['channels'] == 3 else 'grey'}"],
            ["imbalance (largest/smallest)", f"{m['imbalance_ratio']:.2f}"], ["class entropy", f"{m['class_entropy']:.2f}"],
            ["budget", duration_text(p["budget_seconds"]) if p.get("budget_seconds") else "none given"],
            ["device", p.get("device")]]
    if p.get("dataset_name"):
        rows.insert(0, ["dataset", p["dataset_name"]])
    if p.get("backbones"):
        rows.append(["allowed backbones", ", ".join(p["backbones"])])
    if p.get("modes"):
        rows.append(["allowed modes", ", ".join(p["modes"])])
    text = markdown_table(["meta-feature", "value"], rows)
    if p.get("assumed"):
        text += "\n\n**Assumed (not stated):** " + ", ".join(p["assumed"])
    for note in p.get("notes") or []:
        text += f"\n\nNote: {note}"
    return title, text


def evidence_md(evidence: list[dict[str, Any]]) -> tuple[str, str]:
    """The retrieve step's title and table of similar past runs."""
    if not evidence:
        return "Similar past runs: none found", "The knowledge base returned no similar runs."
    rows = [[e["alias"], e["dataset"], config_text(e["config"]), e["status"],
             "" if e.get("test_accuracy") is None else f"{e['test_accuracy']:.3f}", duration_text(e.get("seconds")),
             f"{e.get('distance', 0):.3f}"] for e in evidence]
    return (f"Retrieved {len(evidence)} similar past runs",
            markdown_table(EVIDENCE_COLUMNS, rows) + "\n\n" + EVIDENCE_LEGEND)


def candidates_md(candidates: list[dict[str, Any]], explanation: dict[str, Any] | None) -> tuple[str, str]:
    """The explain step's title and table of scored candidates, with the SHAP lines of the best."""
    rows = [[c["id"], config_text(c["config"]), f"{c['accuracy']:.3f} ({c['low']:.2f}-{c['high']:.2f})",
             duration_text(c["seconds"]), c.get("support", 0), candidate_note(c)]
            for c in candidates]
    text = markdown_table(CANDIDATE_COLUMNS, rows) + "\n\n" + candidate_legend()
    if explanation and explanation.get("text"):
        text += f"\n\n**SHAP of {explanation.get('candidate', 'c1')}:**\n\n" + "\n".join(
            f"- {line.lstrip('- ')}" for line in explanation["text"].splitlines())
    best = candidates[0] if candidates else None
    title = f"Meta-model: {len(candidates)} candidates" + (
        f", best {best['config']['backbone']}/{best['config']['mode']} at {best['accuracy']:.2f}" if best else "")
    return title, text


def pick_md(candidates: list[dict[str, Any]], profile: dict[str, Any] | None) -> str:
    """The meta-model's pick, shown as soon as the explain step ends (the card replaces it once the LLM has written why)."""
    c = candidates[0]
    device = (profile or {}).get("device")
    return (f"**The meta-model's pick:** {config_text(c['config'])}: predicted test accuracy **{c['accuracy']:.2f}** "
            f"({interval_text(c['low'], c['high'])}) in **{duration_text(c['seconds'])}**"
            + (f" on {device}" if device else "") + "."
            + (" Over the time budget: no candidate fits it." if c.get("over_budget") else "")
            + "\n\n*The LLM now checks it against the evidence and writes why; the full recommendation replaces "
              "this line.*")


def draft_md(draft: dict[str, Any] | None, error: str | None, attempt: int) -> tuple[str, str]:
    """The reason step's title and text: the LLM's draft, or why it gave none."""
    if draft is None:
        return f"LLM draft {attempt}: no usable answer", f"The LLM gave no usable answer: {error or 'unknown error'}"
    title = (f"LLM draft {attempt}: {draft.get('backbone')}/{draft.get('mode')} lr={draft.get('learning_rate')} "
             f"bs={draft.get('batch_size')} ep={draft.get('epochs')}")
    text = (f"Starts from **{draft.get('candidate')}**, expects test accuracy {draft.get('expected_accuracy')}, "
            f"cites {', '.join(draft.get('cite') or []) or 'nothing'}.\n\n> {draft.get('rationale', '')}")
    return title, text


def verdict_md(v: dict[str, Any]) -> tuple[str, str]:
    """The judge step's title and table of checks, with the LLM judge's scores and critique."""
    state = "passed" if v.get("passed") else "failed"
    title = f"Judge: draft {v.get('attempt')} {state} ({v.get('judged_by')})"
    rows = [[c["name"], "✓ passed" if c["ok"] else "✗ failed", c.get("message") or ""] for c in v.get("checks") or []]
    text = markdown_table(["deterministic check", "result", "message"], rows) if rows else ""
    text += ("\n\n" if text else "") + verdict_summary(v) + "."
    if v.get("critique") and not v.get("overruled"):
        text += f"\n\nCritique: {v['critique']}"
    return title, text


def card_md(rec: dict[str, Any], offer: dict[str, Any] | None) -> str:
    """The recommendation card: what to train, what to expect, why, and how to answer."""
    c = rec["config"]
    head = f"### Recommendation: {c['backbone']}, {c['mode']}"
    head += f" (pretrained: {rec['weights']})" if rec.get("pretrained") else " (random init)"
    lines = [head]
    if rec.get("fallback"):
        lines.append(f"> **Fallback:** the meta-model's best candidate, because {rec.get('fallback_reason')}")
    rows = [["optimizer", c["optimizer"]], ["learning rate", f"{c['learning_rate']:g}"], ["batch size", c["batch_size"]],
            ["epochs", c["epochs"]], ["input size", f"{c['input_size']} px"], ["weight decay", f"{c['weight_decay']:g}"],
            ["dropout", f"{c['dropout']:g}"], ["scheduler", c["scheduler"]], ["augmentation", c["augmentation"]],
            ["label smoothing", f"{c['label_smoothing']:g}"]]
    if c.get("freeze"):
        rows.append(["frozen share of the backbone", f"{c['freeze']:g}"])
    lines.append(markdown_table(["hyperparameter", "value"], rows))
    low, high = rec["accuracy_interval"]
    lines.append(f"**Expected test accuracy {rec['expected_accuracy']:.2f}** ({interval_text(low, high)}); "
                 f"**expected training time {duration_text(rec['expected_seconds'])}** on {rec['profile']['device']}.")
    if source := measured_text(c, rec.get("candidates") or []):
        lines.append(f"**Measured:** {source}.")
    lines.append(f"**Why:** {rec['rationale']}")
    if rec.get("reasons"):
        lines.append(f"**In numbers:** {'; '.join(rec['reasons'])}.")
    cited = [e for e in rec.get("evidence") or [] if e.get("cited")]
    if cited:
        lines.append("**Evidence:** " + "; ".join(
            f"{e['alias']} {e['dataset']} {e['summary']} → "
            + (f"test {e['test_accuracy']:.2f}" if e.get("test_accuracy") is not None else e["status"]) for e in cited))
    for limit in (rec.get("profile") or {}).get("limits") or []:
        lines.append(f"**Limit:** {limit}")
    for note in ((rec.get("profile") or {}).get("goals") or {}).get("notes") or []:  # e.g. a comparison not shown as asked
        lines.append(f"**Note:** {note}")
    for w in rec.get("warnings") or []:
        lines.append(f"⚠ {w}")
    v = rec.get("verdict") or {}
    lines.append(f"Judge: {'passed' if v.get('passed') else 'failed'} on draft {v.get('attempts')} ({v.get('judged_by')}): "
                 f"{verdict_summary(v)}. Answered in {sum(x for k, x in (rec.get('timings') or {}).items() if k != 'total'):.1f} s.")
    if offer is not None:
        lines.append(_offer_hint(offer))
    return "\n\n".join(lines)


def _offer_hint(offer: dict[str, Any]) -> str:
    where = f" on `{Path(offer['dataset']).name}`" if offer.get("dataset") else " (give a dataset to train on)"
    return (f"Nothing trains without your approval{where}: **Approve**, **Edit** (e.g. `epochs=5`) or **Reject** beside the chat, "
            "or reply *yes* / *no* / *epochs=5*. Ask *why this learning rate?*, *what if I only have 10 minutes?*, "
            "*what about resnet18?* or *show similar experiments* any time.")


def offer_md(offer: dict[str, Any], previous: dict[str, Any] | None) -> str:
    """An edited offer: what changed, its prediction and warnings, and how to answer."""
    p = offer.get("prediction") or {}
    changed = ""
    if previous and previous.get("config"):
        diffs = [f"{k} {previous['config'].get(k)} → {v}" for k, v in offer["config"].items()
                 if previous["config"].get(k) != v]
        changed = " (" + ", ".join(diffs) + ")" if diffs else ""
    text = (f"**Edited offer{changed}:** {config_text(offer['config'])}: predicted test accuracy "
            f"{accuracy_text(p.get('accuracy', float('nan')), p.get('low', float('nan')), p.get('high', float('nan')))} in "
            f"{duration_text(p.get('seconds'))}.")
    for w in offer.get("warnings") or []:
        text += f"\n\n⚠ {w}"
    return text + "\n\n" + _offer_hint(offer)


__all__ = ["candidates_md", "card_md", "draft_md", "evidence_md", "offer_md", "pick_md", "profile_md", "verdict_md"]

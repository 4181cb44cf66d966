"""Follow-up questions about a recommendation, answered from the thread's state.

    answer = answer_followup(state, "what if I only have 10 minutes?", metamodel, store)
    print(answer.markdown())

The state is the graph's (`agent.state.State` as a plain dict): the profile, the retrieved
runs, the meta-model's candidates, the recommendation, the offer, the training outcome.
Nothing is invented: every number in an answer is read from that state or predicted by the
meta-model for a named configuration, and a question that needs data the thread does not
have says which data is missing.

The question's intent is read by agent.intents (deterministic rules first; a chat model, when
given, only where they find nothing). What-if answers re-run the judge's deterministic
checks (`agent.judge.run_checks`) on the changed configuration, so a what-if is held to
the same rules as the recommendation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent import judge as J
from agent.context import Context
from agent.formatting import (
    CANDIDATE_COLUMNS,
    EVIDENCE_COLUMNS,
    EVIDENCE_LEGEND,
    accuracy_text,
    candidate_legend,
    config_text,
    duration_text,
    fmt_value,
    interval_label,
    markdown_table,
    prediction_values,
)
from agent.intents import Intent, detect_intent, norm, parse_changes, read_intent
from agent.profiling import open_fields
from knowledge.schema import MetaFeatures, TrainConfig
from knowledge.space import AUGMENTATIONS, BACKBONES, MODES, OPTIMIZERS, RANGES, SCHEDULERS
from tools.weights import weights_available as default_weights_available

# agent.nodes (it loads LangGraph, ~1 s) is imported where an answer needs the knowledge
# base, so that the chat's import of this module stays light.

# Questions this module cannot answer from a thread, and the data each would need.
_NOT_RECORDED = (
    (r"per.?class|confusion|sensitivity|specificity|precision|recall|roc\b|calibrat",
     "per-class metrics (the knowledge base records accuracy, macro AUC and F1 per run, not per class)"),
    (r"saliency|grad.?cam|heat ?map|attention map",
     "saliency maps of the trained network (SHAP here explains the meta-model's prediction, not the network)"),
    (r"inference (?:time|speed|latency)|throughput|deploy",
     "inference timings (runs record training time, not inference latency)"),
)


@dataclass
class FollowupAnswer:
    """A plain-language answer, with the data behind it.

    Attributes:
        intent: the intent answered (one of INTENTS, or "missing" when the thread lacks the data).
        text: the answer in Markdown.
        columns: column names of `rows` (a small table), if any.
        rows: table rows, each a list of cells in `columns` order.
        plot: path of a picture that belongs to the answer (a SHAP plot), if any.
        config: the configuration a what-if is about (JSON), which the user may adopt.
        prediction: the meta-model's prediction for `config`.
        checks: the judge's deterministic checks on `config`: [{name, ok, message}].
        missing: the data the thread would need to answer fully.
        understood_as: how the question was read (shown when an LLM mapped it).
        legend: what each column of the table means (shown under it).
    """

    intent: str
    text: str
    columns: list[str] | None = None
    rows: list[list[Any]] | None = None
    plot: str | None = None
    config: dict[str, Any] | None = None
    prediction: dict[str, float] | None = None
    checks: list[dict[str, Any]] | None = None
    missing: list[str] = field(default_factory=list)
    understood_as: str | None = None
    legend: str | None = None

    def markdown(self) -> str:
        """The text with its table, ready for a chat window or a terminal."""
        parts = [self.text.strip()]
        if self.columns and self.rows:
            parts.append(markdown_table(self.columns, self.rows))
            if self.legend:
                parts.append(self.legend)
        return "\n\n".join(p for p in parts if p)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------- formatting
def device_words(device: str) -> str:
    """A device string ("cuda:NVIDIA H200", "cpu:8 cores", "cuda") for a sentence: "a GPU (NVIDIA H200)"."""
    kind, _, rest = str(device).partition(":")
    if kind.lower() in ("cuda", "gpu"):
        return f"a GPU ({rest.strip()})" if rest.strip() and not rest.strip().isdigit() else "a GPU"
    return f"the CPU ({rest.strip()})" if rest.strip() else "the CPU"


def _acc(p: dict[str, float]) -> str:
    return accuracy_text(p["accuracy"], p["low"], p["high"])


# --------------------------------------------------------------------------- the state
class ThreadView:
    """Typed access to the parts of a thread's state that answers use."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state or {}
        self.rec: dict[str, Any] | None = self.state.get("recommendation")
        self.offer: dict[str, Any] | None = self.state.get("offer")
        self.profile: dict[str, Any] | None = self.state.get("profile")

    def config(self) -> tuple[TrainConfig, str] | None:
        """The configuration under discussion: the offer (it reflects edits), else the recommendation."""
        if self.offer and self.offer.get("config"):
            edited = self.rec is not None and self.offer.get("key") != TrainConfig.model_validate(self.rec["config"]).key()
            return TrainConfig.model_validate(self.offer["config"]), ("the edited configuration" if edited
                                                                      else "the recommended configuration")
        if self.rec:
            return TrainConfig.model_validate(self.rec["config"]), "the recommended configuration"
        return None

    def meta(self) -> MetaFeatures | None:
        if not self.profile:
            return None
        return MetaFeatures.model_validate(self.profile["meta"])

    @property
    def device(self) -> str:
        return str((self.profile or {}).get("device") or "cpu")

    @property
    def open_fields(self) -> list[str]:
        """The fields a text-only profile assumed: its predictions are stated over their plausible values."""
        return open_fields(self.profile or {})


def _no_recommendation(intent: str) -> FollowupAnswer:
    return FollowupAnswer(
        intent="missing",
        text=("There is no recommendation in this conversation yet, so there is nothing to explain or vary. "
              "Describe your task first (modality, classes, number of images, time budget) or give a dataset."),
        missing=["a recommendation (describe the task first)"],
        understood_as=intent,
    )


def _no_metamodel(intent: str) -> FollowupAnswer:
    return FollowupAnswer(
        intent="missing",
        text="This needs the meta-model's predictions, and no meta-model is loaded here, so I cannot answer it "
             "without guessing.",
        missing=["the meta-model"],
        understood_as=intent,
    )


def _predict(metamodel: Any, meta: MetaFeatures, configs: Sequence[TrainConfig], device: str,
             assumed: Sequence[str]) -> list[dict[str, Any]]:
    """What the meta-model states for each config on the thread's task (`MetaModel.stated`, the path
    the recommendation and its candidates take: a text-only profile's `assumed` fields averaged over)."""
    preds = metamodel.stated(meta, list(configs), device=device, open_fields=list(assumed))
    out: list[dict[str, Any]] = []
    for p in preds:
        pred: dict[str, Any] = prediction_values(p)
        if getattr(p, "device_note", None):  # no run from this device: the time is extrapolated
            pred["device_note"] = p.device_note
        out.append(pred)
    return out


# ------------------------------------------------------------------------------ checks
def recheck(
    thread_state: dict[str, Any],
    config: TrainConfig,
    prediction: dict[str, float],
    *,
    weights_available: Callable[[str], bool],
    budget_seconds: float | None = None,
    accuracy_tolerance: float = 0.05,
    max_accuracy_gap: float = 0.05,
) -> list[dict[str, Any]]:
    """The judge's deterministic checks on a what-if configuration.

    The what-if joins the thread's candidates as "w1" and is checked as a draft that starts
    from it, so the rules (search space, constraints, weights, competitive with the best
    candidate, time budget) are exactly the judge's.
    """
    profile = dict(thread_state.get("profile") or {})
    if budget_seconds is not None:
        profile["budget_seconds"] = budget_seconds
    candidates = list(thread_state.get("candidates") or [])
    mine = {"id": "w1", "config": config.model_dump(mode="json"), **prediction}
    candidates = [*candidates, mine]
    draft = J.Draft(candidate="w1", backbone=config.backbone, mode=config.mode, learning_rate=config.learning_rate,
                    batch_size=config.batch_size, epochs=config.epochs, expected_accuracy=prediction["accuracy"],
                    rationale="what-if", cite=["w1"])
    checks = J.run_checks(
        draft=draft, draft_error=None, candidates=candidates, evidence_aliases=[], config=config, config_error=None,
        prediction=prediction, profile=profile, weights_available=weights_available,
        accuracy_tolerance=accuracy_tolerance, max_accuracy_gap=max_accuracy_gap,
    )
    return [c for c in J.checks_as_json(checks) if c["name"] not in ("schema", "citations", "grounded", "specific", "metric")]


def _checks_text(checks: list[dict[str, Any]]) -> str:
    failed = [c for c in checks if not c["ok"]]
    names = ", ".join(c["name"].replace("_", " ") for c in checks)
    if not failed:
        return f"It passes the judge's checks ({names})."
    return "The judge's checks would refuse it: " + " ".join(f"{c['name'].replace('_', ' ')}: {c['message']}" for c in failed)


# ------------------------------------------------------------------------------ answers
def _sweep_values(name: str, config: TrainConfig, weights_available: Callable[[str], bool]) -> list[Any]:
    v = getattr(config, name)
    if name == "learning_rate":
        values = [v * f for f in (0.1, 0.3, 1.0, 3.0, 10.0)]
        return sorted({float(f"{min(max(x, RANGES[name].low), RANGES[name].high):.3g}") for x in values})
    if name == "batch_size":
        return sorted({16, 32, 64, 128, 256, v})
    if name == "epochs":
        return sorted({max(1, v // 4), max(1, v // 2), v, min(300, v * 2), min(300, v * 4)})
    if name == "weight_decay":
        return sorted({0.0, 1e-5, 1e-4, 1e-3, 1e-2, v})
    if name == "dropout":
        return sorted({0.0, 0.1, 0.2, 0.3, 0.5, v})
    if name == "input_size":
        return sorted({32, 64, 96, 128, v})
    if name == "label_smoothing":
        return sorted({0.0, 0.05, 0.1, 0.2, v})
    if name == "freeze":  # only finetune mode freezes part of the backbone (other modes' variants are invalid)
        return sorted({0.0, 0.25, 0.5, 0.75, 0.9, v}) if config.mode == "finetune" else [v]
    if name == "optimizer":
        return list(OPTIMIZERS)
    if name == "scheduler":
        return list(SCHEDULERS)
    if name == "augmentation":
        return ["none"] if config.mode == "frozen" else list(AUGMENTATIONS)
    if name == "backbone":
        return [b for b in BACKBONES if config.mode == "scratch" or weights_available(b)]
    if name == "mode":
        return [m for m in MODES if m == "scratch" or weights_available(config.backbone)]
    return [v]


def _variant(config: TrainConfig, changes: dict[str, Any]) -> TrainConfig | None:
    data = {**config.model_dump(), **changes}
    if data["mode"] == "frozen":
        data["augmentation"] = "none"
    try:
        return TrainConfig.model_validate(data)
    except ValueError:
        return None


def _shap_for(t: ThreadView, metamodel: Any, meta: MetaFeatures, config: TrainConfig) -> list[list[Any]]:
    rec_config = TrainConfig.model_validate(t.rec["config"]) if t.rec else None
    if metamodel is not None and hasattr(metamodel, "explain"):
        try:
            ex = metamodel.explain(meta, config)
            return [[str(n), v, float(c)] for n, v, c in ex.contributions]
        except Exception:  # an explanation is extra; the state's SHAP values still answer
            pass
    if t.rec and rec_config == config:
        return [list(c) for c in t.rec.get("shap_contributions") or []]
    return []


def _plot_for(t: ThreadView, metamodel: Any, meta: MetaFeatures, config: TrainConfig, plot_dir: str | None) -> str | None:
    if t.rec and t.rec.get("shap_plot") and TrainConfig.model_validate(t.rec["config"]) == config \
            and Path(t.rec["shap_plot"]).is_file():
        return str(t.rec["shap_plot"])
    if plot_dir and metamodel is not None and hasattr(metamodel, "shap_plot"):
        try:
            return str(metamodel.shap_plot(meta, config, Path(plot_dir) / f"shap-whatif-{config.key()}.png"))
        except Exception:  # a plot is for people; the text answer stands without it
            return None
    return None


def _answer_why(t: ThreadView, intent: Intent, metamodel: Any, weights_available: Callable[[str], bool],
                plot_dir: str | None) -> FollowupAnswer:
    current = t.config()
    meta = t.meta()
    if current is None or meta is None or t.rec is None:
        return _no_recommendation("why")
    config, label = current
    shap = _shap_for(t, metamodel, meta, config)
    plot = _plot_for(t, metamodel, meta, config, plot_dir)
    name = intent.param
    lines: list[str] = []
    columns: list[str] | None = None
    rows: list[list[Any]] | None = None
    if name is None:
        rec = t.rec
        lines.append(f"**Why {config_text(config)}** ({label}):")
        if rec.get("fallback"):
            lines.append(f"It is the meta-model's top candidate, used as a fallback: {rec.get('fallback_reason')}.")
        else:
            lines.append(f"The reasoner's rationale: {rec.get('rationale')}")
        if shap:
            lines.append("What drives the predicted accuracy (SHAP, versus an average past run):")
            lines += [f"- {n} = {fmt_value(v)} {'raises' if c >= 0 else 'lowers'} it by {c:+.3f}" for n, v, c in shap[:4]]
        cited = [e for e in rec.get("evidence") or [] if e.get("cited")]
        if cited:
            lines.append("Past runs it relies on: " + "; ".join(
                f"{e['alias']} {e['dataset']} {e['summary']} (test {e['test_accuracy']:.2f})" if e.get("test_accuracy")
                is not None else f"{e['alias']} {e['dataset']} {e['summary']} ({e['status']})" for e in cited))
        v = rec.get("verdict") or {}
        lines.append(f"The judge {'passed' if v.get('passed') else 'did not pass'} it on draft {v.get('attempts', '?')} "
                     f"({v.get('judged_by', 'checks')}).")
        return FollowupAnswer(intent="why", text="\n".join(lines), plot=plot, config=config.model_dump(mode="json"))

    value = getattr(config, name)
    entry = next((c for c in shap if c[0] == name), None)
    lines.append(f"**Why {name.replace('_', ' ')} = {fmt_value(value)}** in {label} ({config.backbone}/{config.mode}):")
    if entry is not None:
        c = float(entry[2])
        rank = [s[0] for s in shap].index(name) + 1
        lines.append(f"- SHAP: {name} = {fmt_value(value)} {'raises' if c >= 0 else 'lowers'} the predicted test "
                     f"accuracy by {c:+.3f} compared with an average past run (the #{rank} driver of {len(shap)}).")
    elif shap:
        lines.append(f"- SHAP: the meta-model gives {name} no weight for this task (it is not among its features).")
    else:
        lines.append("- SHAP values are not available in this conversation (no meta-model is loaded).")
    if metamodel is not None:
        maybe = [(x, _variant(config, {name: x})) for x in _sweep_values(name, config, weights_available)]
        variants = [(x, cfg) for x, cfg in maybe if cfg is not None]
        if len(variants) > 1:
            preds = _predict(metamodel, meta, [cfg for _, cfg in variants], t.device, t.open_fields)
            columns = [name, f"predicted test accuracy ({interval_label()})", "predicted time", "note"]
            rows = [[fmt_value(x), _acc(p), duration_text(p["seconds"]), "chosen" if cfg == config else ""]
                    for (x, cfg), p in zip(variants, preds, strict=True)]
            chosen = next(p for (_, cfg), p in zip(variants, preds, strict=True) if cfg == config) \
                if any(cfg == config for _, cfg in variants) else None
            best_i = max(range(len(preds)), key=lambda i: preds[i]["accuracy"])
            best_x, best_p = variants[best_i][0], preds[best_i]
            if chosen is not None and best_p["accuracy"] - chosen["accuracy"] > 0.005:
                lines.append(f"- Varying only {name}, the meta-model predicts {fmt_value(best_x)} slightly higher "
                             f"({best_p['accuracy']:.2f} vs {chosen['accuracy']:.2f}; "
                             f"{'inside' if best_p['accuracy'] <= chosen['high'] else 'outside'} the chosen value's "
                             f"interval) and takes {duration_text(best_p['seconds'])}.")
            elif chosen is not None:
                lines.append(f"- Varying only {name}, no other value is predicted better than the chosen one "
                             f"({chosen['accuracy']:.2f}).")
    ev = [e for e in t.state.get("evidence") or [] if e.get("config")]
    if ev:
        shown = ev[:5]
        lines.append(f"- Similar past runs used {name}: " + "; ".join(
            f"{e['alias']} {fmt_value(e['config'].get(name))} on {e['dataset']} -> "
            + (f"test {e['test_accuracy']:.2f}" if e.get("test_accuracy") is not None else e.get("status", "?"))
            for e in shown) + ".")
    if t.rec.get("rationale") and not t.rec.get("fallback"):
        lines.append(f"- The reasoner's rationale: {t.rec['rationale']}")
    return FollowupAnswer(intent="why", text="\n".join(lines), columns=columns, rows=rows, plot=plot,
                          config=config.model_dump(mode="json"))


def _answer_budget(t: ThreadView, intent: Intent, metamodel: Any, store: Any, weights_available: Callable[[str], bool],
                   config: TrainConfig, base: dict[str, float], meta: MetaFeatures, device: str,
                   tolerance: float, gap: float) -> FollowupAnswer:
    from tools.metamodel import Constraints

    budget = float(intent.budget_seconds or 0)
    where = f" on {device_words(device)}" if intent.device else ""
    if base["seconds"] <= budget:
        checks = recheck(t.state, config, base, weights_available=weights_available, budget_seconds=budget,
                         accuracy_tolerance=tolerance, max_accuracy_gap=gap)
        return FollowupAnswer(
            intent="what_if",
            text=(f"With {duration_text(budget)}{where}, {config_text(config)} still fits: predicted "
                  f"{duration_text(base['seconds'])} for test accuracy {_acc(base)}. {_checks_text(checks)}"),
            config=config.model_dump(mode="json"), prediction=base, checks=checks,
        )
    lines = [f"With {duration_text(budget)}{where}, {config_text(config)} does not fit: it is predicted to take "
             f"{duration_text(base['seconds'])}."]
    options: list[tuple[str, TrainConfig, dict[str, float]]] = []
    shorter = [c for c in (_variant(config, {"epochs": e}) for e in range(config.epochs - 1, 0, -1)) if c is not None]
    if shorter:
        preds = _predict(metamodel, meta, shorter, device, t.open_fields)
        fit = [(c, p) for c, p in zip(shorter, preds, strict=True) if p["seconds"] <= budget]
        if fit:
            c, p = fit[0]
            options.append((f"same setup, {c.epochs} epochs", c, p))
    profile = t.profile or {}
    try:
        from agent.prompting import stored_records

        ids = [e["id"] for e in t.state.get("evidence") or [] if e.get("id")]
        retrieved = stored_records(store, ids) if store is not None else []
    except Exception:  # the knowledge base is optional here: candidates are generated without it
        retrieved = []
    found = metamodel.candidates(meta, Constraints(budget_seconds=budget, device=device, backbones=profile.get("backbones"),
                                                   modes=profile.get("modes"),
                                                   max_memory_bytes=profile.get("max_memory_bytes")),
                                  retrieved=retrieved, n=5, open_fields=t.open_fields)
    for c in found:
        if c.over_budget:
            continue
        p = prediction_values(c.prediction)
        options.append((f"meta-model candidate ({getattr(c, 'support', 0)} past runs)", c.config, p))
    if not options:
        lines.append("Nothing the meta-model knows fits that budget (all candidates are predicted slower); the "
                     "fastest options would still overrun it.")
        return FollowupAnswer(intent="what_if", text=" ".join(lines), prediction=base)
    best_label, best_config, best_pred = max(options, key=lambda o: o[2]["accuracy"])
    checks = recheck(t.state, best_config, best_pred, weights_available=weights_available, budget_seconds=budget,
                     accuracy_tolerance=tolerance, max_accuracy_gap=gap)
    delta = best_pred["accuracy"] - base["accuracy"]
    lines.append(f"The best that fits is **{config_text(best_config)}** ({best_label}): predicted test accuracy "
                 f"{_acc(best_pred)} in {duration_text(best_pred['seconds'])} ({delta:+.2f} versus now). "
                 + _checks_text(checks))
    rows = [[label, config_text(c), _acc(p), duration_text(p["seconds"])] for label, c, p in options[:6]]
    return FollowupAnswer(intent="what_if", text=" ".join(lines), columns=["option", "configuration",
                          "predicted accuracy", "predicted time"], rows=rows, config=best_config.model_dump(mode="json"),
                          prediction=best_pred, checks=checks)


def _answer_what_if(t: ThreadView, intent: Intent, metamodel: Any, store: Any, weights_available: Callable[[str], bool],
                    tolerance: float, gap: float) -> FollowupAnswer:
    current = t.config()
    meta = t.meta()
    if current is None or meta is None:
        return _no_recommendation("what_if")
    if metamodel is None:
        return _no_metamodel("what_if")
    config, label = current
    if not intent.changes and intent.budget_seconds is None and intent.device is None:
        return FollowupAnswer(
            intent="what_if",
            text=("What should change? For example: \"what if I only have 10 minutes?\", \"what about resnet18?\", "
                  "\"what if I fine-tune?\", \"what if lr=0.01?\", \"what if I use a GPU?\""),
            missing=["the change to consider (budget, backbone, mode, device or a hyperparameter value)"],
        )
    device = intent.device or t.device
    base = _predict(metamodel, meta, [config], t.device, t.open_fields)[0]
    if intent.budget_seconds is not None and not intent.changes:
        return _answer_budget(t, intent, metamodel, store, weights_available, config, base, meta, device, tolerance, gap)

    changes = dict(intent.changes)
    notes: list[str] = []
    backbone = changes.get("backbone", config.backbone)
    mode = changes.get("mode", config.mode)
    if mode != "scratch" and not weights_available(backbone):
        why = ("has no pretrained weights at all" if BACKBONES.get(backbone, {}).get("pretrained_source") is None
               else "has no pretrained weights on this machine (torchvision weights are used only from the local cache)")
        notes.append(f"{backbone} {why}, so it can only train from scratch; the what-if uses mode scratch.")
        changes["mode"] = "scratch"
    data = {**config.model_dump(), **changes}
    if data["mode"] == "frozen":
        if changes.get("augmentation", "none") != "none":
            notes.append("frozen mode extracts features once, so augmentation cannot apply; it stays 'none'.")
        data["augmentation"] = "none"
    if data["mode"] != "finetune" and data.get("freeze") and "freeze" not in changes:
        notes.append(f"partial freezing (freeze={data['freeze']:g}) belongs to finetune mode; in {data['mode']} mode it is 0.")
        data["freeze"] = 0.0
    try:
        new = TrainConfig.model_validate(data)
    except ValidationError as exc:
        msg = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        return FollowupAnswer(intent="what_if", text=f"That configuration is not valid: {msg}")
    pred = _predict(metamodel, meta, [new], device, t.open_fields)[0]
    budget = intent.budget_seconds if intent.budget_seconds is not None else (t.profile or {}).get("budget_seconds")
    checks = recheck(t.state, new, pred, weights_available=weights_available, budget_seconds=budget,
                     accuracy_tolerance=tolerance, max_accuracy_gap=gap)
    changed = {k: v for k, v in new.model_dump().items() if v != getattr(config, k)}
    what = ", ".join(f"{k} {fmt_value(getattr(config, k))} -> {fmt_value(v)}" for k, v in changed.items()) or \
        f"the same configuration ({config_text(config)})"
    delta_acc = pred["accuracy"] - base["accuracy"]
    lines = [f"**What if: {what}**" + (f" (on {device_words(device)})" if intent.device else "")]
    lines += [f"- {n}" for n in notes]
    lines.append(f"- Predicted test accuracy {_acc(pred)} in {duration_text(pred['seconds'])}, versus {_acc(base)} in "
                 f"{duration_text(base['seconds'])} for {label} ({delta_acc:+.2f}).")
    if pred.get("device_note"):
        lines.append(f"- Training time on {device_words(device)}: {pred['device_note']}")
    support = getattr(metamodel, "support", None)
    if callable(support):
        n = int(support(new.backbone, new.mode))
        lines.append(f"- The knowledge base has {n} past run(s) of {new.backbone}/{new.mode}"
                     + ("; with none, this prediction is an extrapolation." if n == 0 else "."))
    if delta_acc > 0 and not intent.device and intent.budget_seconds is None:
        lines.append("- " + _why_not_picked(new, pred, config, base, metamodel, checks, budget))
    lines.append(f"- {_checks_text(checks)}")
    return FollowupAnswer(intent="what_if", text="\n".join(lines), config=new.model_dump(mode="json"), prediction=pred,
                          checks=checks)


def _why_not_picked(new: TrainConfig, pred: dict[str, Any], config: TrainConfig, base: dict[str, Any], metamodel: Any,
                    checks: list[dict[str, Any]], budget: float | None) -> str:
    """Why a what-if predicted above the pick was not the pick: its interval, its evidence, its cost."""
    reasons = []
    if pred["low"] <= base["high"] and base["low"] <= pred["high"]:
        reasons.append(f"its {interval_label()} ({pred['low']:.2f}-{pred['high']:.2f}) overlaps the pick's "
                       f"({base['low']:.2f}-{base['high']:.2f}), so the difference is within the meta-model's error")
    support = getattr(metamodel, "support", None)
    if callable(support):
        mine, theirs = int(support(new.backbone, new.mode)), int(support(config.backbone, config.mode))
        if mine < theirs:
            reasons.append(f"it rests on {mine} past run(s) of {new.backbone}/{new.mode} against {theirs} for the pick")
    if pred["seconds"] > base["seconds"] * 1.2:
        reasons.append(f"it takes {pred['seconds'] / max(base['seconds'], 1e-9):.1f}x the time")
    if budget and pred["seconds"] > budget:
        reasons.append(f"it exceeds the budget of {duration_text(budget)}")
    failed = [c["name"] for c in checks if not c.get("ok")]
    if failed:
        reasons.append("it fails the judge's checks (" + ", ".join(failed) + ")")
    if not reasons:
        return "It is predicted above the pick with no drawback found here: say *use it* to offer it instead."
    return "Why it was not picked: " + "; ".join(reasons) + "."


def _answer_similar(t: ThreadView, store: Any) -> FollowupAnswer:
    evidence = list(t.state.get("evidence") or [])
    if not evidence and store is not None and t.profile:
        from agent.prompting import task_query

        try:
            query = task_query(t.profile, t.state.get("task") or "", Context())
            if hasattr(store, "search_vectors"):
                from tools.evidence import diverse_runs

                hits = diverse_runs(store, query, 8).runs
            else:
                hits = store.search(query, k=8)
        except Exception as exc:  # the index may be unavailable; say so rather than guess
            return FollowupAnswer(intent="missing", text=f"The knowledge base could not be searched: {exc}",
                                  missing=["a searchable knowledge base"])
        evidence = [{"alias": f"r{i}", "id": r.id, "dataset": r.dataset.name, "config": r.config.model_dump(mode="json"),
                     "status": r.outcome.status, "test_accuracy": r.outcome.test_accuracy,
                     "seconds": r.outcome.total_seconds, "distance": d} for i, (r, d) in enumerate(hits, start=1)]
    if not evidence:
        return FollowupAnswer(
            intent="missing",
            text="This conversation has no retrieved experiments yet: describe your task first, and I will list the "
                 "most similar past runs from the knowledge base.",
            missing=["retrieved past runs (describe the task first)"],
        )
    rows = [[e["alias"], e["dataset"], config_text(e["config"]), e.get("status", "?"),
             None if e.get("test_accuracy") is None else round(e["test_accuracy"], 3), duration_text(e.get("seconds")),
             round(float(e.get("distance", 0.0)), 3)] for e in evidence]
    ok = [e for e in evidence if e.get("test_accuracy") is not None]
    datasets = len({e["dataset"] for e in evidence})
    text = (f"{len(evidence)} similar past experiments from the knowledge base, on {datasets} dataset"
            f"{'s' if datasets != 1 else ''}: near your task but unlike each other, the nearest dataset's first.")
    if ok:
        best = max(ok, key=lambda e: e["test_accuracy"])
        text += (f" The best of them, {best['alias']} ({best['dataset']}, {config_text(best['config'])}), reached "
                 f"test accuracy {best['test_accuracy']:.2f} in {duration_text(best.get('seconds'))}.")
    return FollowupAnswer(intent="similar", text=text, columns=EVIDENCE_COLUMNS, rows=rows, legend=EVIDENCE_LEGEND)


def _answer_compare(t: ThreadView, intent: Intent) -> FollowupAnswer:
    cands = list(t.state.get("candidates") or [])
    if not cands:
        return _no_recommendation("compare")
    wanted = set(intent.candidates)
    shown = [c for c in cands if not wanted or c["id"] in wanted]
    unknown = sorted(wanted - {c["id"] for c in cands})
    current = t.config()
    key = current[0].key() if current else None
    rows = [[c["id"], config_text(c["config"]), _acc(c), duration_text(c["seconds"]), c.get("support", 0),
             "recommended" if TrainConfig.model_validate(c["config"]).key() == key else ""] for c in shown]
    text = f"The meta-model's candidates for this task ({len(shown)} shown, best predicted first)."
    if unknown:
        text += f" There is no candidate {', '.join(unknown)} in this conversation (it has {', '.join(c['id'] for c in cands)})."
    if len(shown) >= 2:
        a, b = shown[0], shown[1]
        text += (f" {a['id']} is predicted {a['accuracy'] - b['accuracy']:+.2f} versus {b['id']} and takes "
                 f"{duration_text(a['seconds'])} versus {duration_text(b['seconds'])}.")
    return FollowupAnswer(intent="compare", text=text, columns=CANDIDATE_COLUMNS, rows=rows, legend=candidate_legend())


def _answer_training(t: ThreadView, store: Any) -> FollowupAnswer:
    training = t.state.get("training")
    decision = t.state.get("decision") or {}
    if not training:
        if decision.get("status") == "rejected":
            why = "the recommendation was rejected, so nothing was trained"
        elif t.rec is not None:
            why = "nothing has been trained yet: approve the offered configuration to train it"
        else:
            why = "there is no recommendation yet"
        return FollowupAnswer(intent="missing", text=f"There is no training run in this conversation: {why}.",
                              missing=["a finished training run"])
    status = training.get("status")
    if status in (None, "error"):
        return FollowupAnswer(intent="training", text=f"The training job failed before it produced metrics: "
                                                      f"{training.get('error') or 'no error message was recorded'}.")
    lines = [f"The training run ended **{status}** after {duration_text(training.get('seconds'))}."]
    test, val = training.get("test_accuracy"), training.get("val_accuracy")
    if test is not None:
        lines.append(f"Test accuracy {test:.3f}" + (f", validation accuracy {val:.3f}." if val is not None else "."))
    rec = t.rec or {}
    if test is not None and rec.get("accuracy_interval"):
        low, high = rec["accuracy_interval"]
        where = "inside" if low <= test <= high else ("above" if test > high else "below")
        lines.append(f"The meta-model predicted {accuracy_text(rec['expected_accuracy'], low, high)}: the result is "
                     f"{where} that interval; predicted time was {duration_text(rec.get('expected_seconds'))}.")
    record_id = training.get("record_id")
    if record_id and store is not None and hasattr(store, "get"):
        r = store.get(record_id)
        if r is not None:
            o = r.outcome
            extra = [f"{n} {v:.3f}" for n, v in (("test AUC", o.test_auc), ("test F1", o.test_f1)) if v is not None]
            if extra:
                lines.append("Also recorded: " + ", ".join(extra) + ".")
    if record_id:
        lines.append(f"It is in the knowledge base as record {record_id}, so future recommendations learn from it.")
    if status == "cancelled":
        lines.append("The run was cancelled, so its metrics cover the epochs that finished.")
    return FollowupAnswer(intent="training", text=" ".join(lines))


def _answer_summary(t: ThreadView) -> FollowupAnswer:
    current = t.config()
    if current is None or t.rec is None:
        return _no_recommendation("summary")
    config, label = current
    rec = t.rec
    text = (f"{label.capitalize()}: **{config_text(config)}**, predicted test accuracy "
            f"{accuracy_text(rec['expected_accuracy'], *rec['accuracy_interval'])} in "
            f"{duration_text(rec['expected_seconds'])}.")
    return FollowupAnswer(intent="summary", text=text, config=config.model_dump(mode="json"))


def _answer_unknown(t: ThreadView, question: str) -> FollowupAnswer:
    q = norm(question)
    for pattern, what in _NOT_RECORDED:
        if re.search(pattern, q):
            return FollowupAnswer(intent="missing", text=f"I cannot answer that from this conversation: it needs {what}.",
                                  missing=[what])
    return FollowupAnswer(
        intent="unknown",
        text=("I can answer, from this conversation: *why this learning rate?* (or any hyperparameter, backbone, mode), "
              "*what if I only have 10 minutes?*, *what about resnet18?*, *what if I fine-tune?*, *what if lr=0.01?*, "
              "*show similar experiments*, *compare the candidates*, *how did training go?*. To start over, describe a "
              "new task."),
    )


# ------------------------------------------------------------------------------- entry
def answer_followup(
    state: dict[str, Any],
    question: str,
    metamodel: Any,
    store: Any,
    *,
    llm: Any | None = None,
    weights_available: Callable[[str], bool] | None = None,
    plot_dir: str | None = None,
    accuracy_tolerance: float = 0.05,
    max_accuracy_gap: float = 0.05,
) -> FollowupAnswer:
    """Answer a follow-up question from a thread's state.

    Args:
        state: the thread's graph state (a dict; `graph.get_state(config).values`).
        question: the question as the user typed it.
        metamodel: the fitted meta-model (`predict`, `explain`, `candidates`, `shap_plot`); None
            answers what it can from the state and says what needs the meta-model.
        store: the knowledge base (`records`, `search`, `get`); may be None.
        llm: optional chat model used only to classify a question the rules do not recognise.
        weights_available: whether a backbone's pretrained weights exist here (default: look on disk).
        plot_dir: where a SHAP plot of a changed configuration may be written; None writes none.
        accuracy_tolerance: the judge's tolerance (agent.context.Context).
        max_accuracy_gap: the judge's competitive gap (agent.context.Context).

    Returns:
        The answer; `intent == "missing"` when the thread lacks the data, with `missing` naming it.
    """
    weights = weights_available or default_weights_available
    question = (question or "").strip()
    if not question:
        return FollowupAnswer(intent="unknown", text="Ask a question about the recommendation, or describe a task.")
    t = ThreadView(state)
    intent = read_intent(question, llm)
    if intent.kind == "why":
        answer = _answer_why(t, intent, metamodel, weights, plot_dir)
    elif intent.kind == "what_if":
        answer = _answer_what_if(t, intent, metamodel, store, weights, accuracy_tolerance, max_accuracy_gap)
    elif intent.kind == "similar":
        answer = _answer_similar(t, store)
    elif intent.kind == "compare":
        answer = _answer_compare(t, intent)
    elif intent.kind == "training":
        answer = _answer_training(t, store)
    elif intent.kind == "summary":
        answer = _answer_summary(t)
    else:
        answer = _answer_unknown(t, question)
    if intent.source == "llm":
        how = intent.kind.replace("_", "-") + (f" about {intent.param}" if intent.param else "")
        answer.understood_as = how
        answer.text = f"(I read this as a {how} question.)\n\n{answer.text}"
    return answer


# detect_intent and parse_changes live in agent.intents; re-exported until the chat reads messages through
# agent.chat.router.
__all__ = ["FollowupAnswer", "ThreadView", "answer_followup", "detect_intent", "parse_changes", "recheck"]

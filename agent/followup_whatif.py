"""Follow-up answers that vary the configuration through the meta-model: why, what-if, budget.

*Why lr = 0.001?* explains one value with the meta-model's SHAP contributions and with its
predictions for the neighbouring values, holding the rest of the configuration; *what if I
use resnet18?* predicts a changed configuration and re-runs the judge's checks on it; *what
if I only have 10 minutes?* looks for the best configuration the meta-model predicts to fit
the budget. Every number is the meta-model's, for a named configuration; nothing is invented.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.followup_thread import (
    FollowupAnswer,
    ThreadView,
    acc,
    checks_text,
    device_words,
    no_metamodel,
    no_recommendation,
    predict,
    recheck,
)
from agent.formatting import config_text, duration_text, fmt_value, interval_label, interval_text, prediction_values
from agent.intents import Intent, apply_changes
from knowledge.schema import MetaFeatures, TrainConfig
from knowledge.space import AUGMENTATIONS, BACKBONES, MODES, OPTIMIZERS, RANGES, SCHEDULERS

# tools.metamodel (XGBoost) and agent.prompting are imported inside the budget answer, so that the
# chat's import of agent.followup stays light.


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
    data = apply_changes(config.model_dump(), changes)
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


def answer_why(t: ThreadView, intent: Intent, metamodel: Any, weights_available: Callable[[str], bool],
                plot_dir: str | None) -> FollowupAnswer:
    """Why the configuration, or one value in it: SHAP, neighbouring values, past runs, the rationale."""
    current = t.config()
    meta = t.meta()
    if current is None or meta is None or t.rec is None:
        return no_recommendation("why")
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
        if rec.get("expected_accuracy") is not None and rec.get("accuracy_interval"):
            # how sure: the interval, and what the recommendation warned of (thin evidence, another device, optimism)
            low, high = rec["accuracy_interval"]
            lines.append(f"Predicted test accuracy {rec['expected_accuracy']:.2f}, {interval_text(low, high)}.")
            lines += [f"- {w}" for w in rec.get("warnings") or [] if not str(w).startswith("assumed")]
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
            preds = predict(metamodel, meta, [cfg for _, cfg in variants], t.device, t.open_fields)
            columns = [name, f"predicted test accuracy ({interval_label()})", "predicted time", "note"]
            rows = [[fmt_value(x), acc(p), duration_text(p["seconds"]), "chosen" if cfg == config else ""]
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
    """The best configuration predicted to fit `intent.budget_seconds`: fewer epochs or a meta-model candidate."""
    from tools.metamodel import Constraints

    budget = float(intent.budget_seconds or 0)
    where = f" on {device_words(device)}" if intent.device else ""
    if base["seconds"] <= budget:
        checks = recheck(t.state, config, base, weights_available=weights_available, budget_seconds=budget,
                         accuracy_tolerance=tolerance, max_accuracy_gap=gap)
        return FollowupAnswer(
            intent="what_if",
            text=(f"With {duration_text(budget)}{where}, {config_text(config)} still fits: predicted "
                  f"{duration_text(base['seconds'])} for test accuracy {acc(base)}. {checks_text(checks)}"),
            config=config.model_dump(mode="json"), prediction=base, checks=checks,
        )
    lines = [f"With {duration_text(budget)}{where}, {config_text(config)} does not fit: it is predicted to take "
             f"{duration_text(base['seconds'])}."]
    options: list[tuple[str, TrainConfig, dict[str, float]]] = []
    shorter = [c for c in (_variant(config, {"epochs": e}) for e in range(config.epochs - 1, 0, -1)) if c is not None]
    if shorter:
        preds = predict(metamodel, meta, shorter, device, t.open_fields)
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
                 f"{acc(best_pred)} in {duration_text(best_pred['seconds'])} ({delta:+.2f} versus now). "
                 + checks_text(checks))
    rows = [[label, config_text(c), acc(p), duration_text(p["seconds"])] for label, c, p in options[:6]]
    return FollowupAnswer(intent="what_if", text=" ".join(lines), columns=["option", "configuration",
                          "predicted accuracy", "predicted time"], rows=rows, config=best_config.model_dump(mode="json"),
                          prediction=best_pred, checks=checks)


def answer_what_if(t: ThreadView, intent: Intent, metamodel: Any, store: Any, weights_available: Callable[[str], bool],
                    tolerance: float, gap: float) -> FollowupAnswer:
    """A changed configuration (or a budget, or a device) predicted and checked against the current one."""
    current = t.config()
    meta = t.meta()
    if current is None or meta is None:
        return no_recommendation("what_if")
    if metamodel is None:
        return no_metamodel("what_if")
    config, label = current
    if not intent.changes and intent.budget_seconds is None and intent.device is None:
        return FollowupAnswer(
            intent="what_if",
            text=("What should change? For example: \"what if I only have 10 minutes?\", \"what about resnet18?\", "
                  "\"what if I fine-tune?\", \"what if lr=0.01?\", \"what if I use a GPU?\""),
            missing=["the change to consider (budget, backbone, mode, device or a hyperparameter value)"],
        )
    device = intent.device or t.device
    base = predict(metamodel, meta, [config], t.device, t.open_fields)[0]
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
    data = apply_changes(config.model_dump(), changes)
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
    pred = predict(metamodel, meta, [new], device, t.open_fields)[0]
    budget = intent.budget_seconds if intent.budget_seconds is not None else (t.profile or {}).get("budget_seconds")
    checks = recheck(t.state, new, pred, weights_available=weights_available, budget_seconds=budget,
                     accuracy_tolerance=tolerance, max_accuracy_gap=gap)
    changed = {k: v for k, v in new.model_dump().items() if v != getattr(config, k)}
    what = ", ".join(f"{k} {fmt_value(getattr(config, k))} -> {fmt_value(v)}" for k, v in changed.items()) or \
        f"the same configuration ({config_text(config)})"
    delta_acc = pred["accuracy"] - base["accuracy"]
    lines = [f"**What if: {what}**" + (f" (on {device_words(device)})" if intent.device else "")]
    lines += [f"- {n}" for n in notes]
    lines.append(f"- Predicted test accuracy {acc(pred)} in {duration_text(pred['seconds'])}, versus {acc(base)} in "
                 f"{duration_text(base['seconds'])} for {label} ({delta_acc:+.2f}).")
    if pred.get("device_note"):
        lines.append(f"- Training time on {device_words(device)}: {pred['device_note']}")
    support = getattr(metamodel, "support", None)
    if callable(support):
        n = int(support(new.backbone, new.mode))
        lines.append(f"- The knowledge base has {n} past run(s) of {new.backbone}/{new.mode}"
                     + ("; with none, this prediction is an extrapolation." if n == 0 else "."))
    kind = _kind_of_run(metamodel, new, meta)
    if kind is not None:
        words, runs, datasets, enough = kind
        lines.append(f"- Runs of its kind ({words}): {runs} on {datasets} dataset(s)"
                     + ("; the meta-model extrapolates here from other kinds of run, and the recommender does not "
                        "pick configs where it has too few." if not enough else "."))
    if delta_acc > 0 and not intent.device and intent.budget_seconds is None:
        lines.append("- " + _why_not_picked(new, pred, config, base, metamodel, checks, budget, meta))
    lines.append(f"- {checks_text(checks)}")
    return FollowupAnswer(intent="what_if", text="\n".join(lines), config=new.model_dump(mode="json"), prediction=pred,
                          checks=checks)


def _kind_of_run(metamodel: Any, config: TrainConfig, meta: MetaFeatures) -> tuple[str, int, int, bool] | None:
    """(its kind of run in words, runs, datasets, enough to rank) from the meta-model's trust region, if it has one."""
    evidence = getattr(metamodel, "cell_evidence", None)
    return evidence(config, meta.resolution) if callable(evidence) else None


def _why_not_picked(new: TrainConfig, pred: dict[str, Any], config: TrainConfig, base: dict[str, Any], metamodel: Any,
                    checks: list[dict[str, Any]], budget: float | None, meta: MetaFeatures) -> str:
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
    spread = getattr(metamodel, "spread", None)
    if callable(spread):
        mine, theirs = spread(meta, [new, config])
        if mine > theirs + 0.01:  # the ranking takes one standard deviation off each prediction
            reasons.append(f"models fitted on subsets of the knowledge base's datasets disagree more on it "
                           f"(±{mine:.2f} against ±{theirs:.2f} for the pick), and the ranking counts that against it")
    kind = _kind_of_run(metamodel, new, meta)
    if kind is not None and not kind[3]:
        reasons.append(f"the knowledge base has {kind[1]} run(s) of its kind ({kind[0]}) on {kind[2]} dataset(s), "
                       "too few to trust the prediction")
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

"""The steps that gather what a recommendation rests on: profile, retrieve and explain.

- `profile` reads the task (text, dataset or both) into meta-features and the constraints;
- `retrieve` finds past runs near the task in the knowledge base, as the evidence the LLM sees;
- `explain` packages the meta-model's ranked candidates with their predictions, and SHAP for
  the top one.

No LLM is called here; reason, judge and respond (agent.nodes_draft) build on what these write.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import Overwrite

from agent.context import Context
from agent.errors import TaskError
from agent.formatting import duration_text, prediction_values
from agent.goals import (
    apply_goals,
    comparison_notes,
    inference_note,
    label_noise_note,
    metric_note,
    read_goals,
    regularisation_note,
    settings_limits,
)
from agent.limits import backbones_within, memory_limit, stated_limits
from agent.nodes_base import NodeBase, jsonable
from agent.profiling import allowed, open_fields, read_task
from agent.prompting import stored_records, task_query
from agent.state import State
from knowledge.schema import MetaFeatures, TrainConfig
from knowledge.space import BACKBONES, MODES, model_params
from tools.scope import INJECTION_MESSAGE


class EvidenceNodes(NodeBase):
    """The profile, retrieve and explain nodes."""

    def _dataset_meta(self, path: str) -> tuple[dict[str, Any], str]:
        """Meta-features and name of a dataset, cached by path, size and mtime."""
        from tools.datasets import DatasetError, load_dataset, profile_dataset

        p = Path(path).expanduser()
        try:
            st = p.stat()
        except OSError:
            st = None
        key = (str(p.resolve()), st.st_size if st else -1, st.st_mtime_ns if st else -1)
        if key not in self._profiles:
            try:
                ds = load_dataset(path)
                meta = profile_dataset(ds)
            except DatasetError as exc:
                raise TaskError(str(exc)) from exc
            self._profiles[key] = {"meta": meta.model_dump(mode="json"), "name": ds.name, "notes": list(ds.notes)}
        entry = self._profiles[key]
        return entry, entry["name"]

    # ------------------------------------------------------------------- nodes
    def profile(self, state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """Meta-features from the dataset when given, else from the text; constraints merged."""
        ctx = runtime.context or Context()
        text = state.get("task") or ""
        dataset = state.get("dataset") or None
        if not isinstance(text, str):
            raise TaskError(f"the task must be text, but got {type(text).__name__}; describe it in words.")
        if dataset is not None and not isinstance(dataset, str | os.PathLike):
            raise TaskError(f"the dataset must be a path, but got {type(dataset).__name__}.")
        given: dict[str, Any] = dict(state.get("constraints") or {})
        if not text.strip() and not dataset:
            raise TaskError("describe the task in words, give a dataset path, or both.")
        told, scope = read_task(text, dataset)
        notes = list(told.notes)
        if scope is not None and scope.injection:
            notes.append("an instruction to the assistant inside the task text was ignored; the task was read "
                         "without it")
        if scope is not None and scope.in_scope and scope.message and scope.message != INJECTION_MESSAGE:
            notes.append(scope.message)  # non-medical evidence; another task or 3D data beside the classification
        goals = read_goals(scope.task_text if scope is not None else text)
        if "overfitting" in goals.worries:
            notes.append(regularisation_note(goals.worries["overfitting"]))
        if "label_noise" in goals.worries:
            notes.append(label_noise_note(goals.worries["label_noise"]))
        if goals.metric:
            notes.append(metric_note(goals.metric))
        if dataset:
            if not ctx.allows(dataset):
                raise TaskError(
                    f"the dataset {dataset!r} lies outside the allowed folders ({', '.join(ctx.allowed_data_dirs or ())}); "
                    "move it there or ask the operator to allow its folder."
                )
            entry, name = self._dataset_meta(dataset)
            meta = dict(entry["meta"])
            notes += entry["notes"]
            if meta["modality"] == "unknown" and "modality" in told.said:
                meta["modality"] = told.modality
                notes.append(f"modality {told.modality} taken from the text (the dataset does not say)")
            if not meta.get("body_part") and "body_part" in told.said:
                meta["body_part"] = told.body_part
            for field, value in (("n_classes", told.n_classes), ("n_instances", told.n_instances)):
                if field in told.said and value != meta[field]:
                    notes.append(f"the text says {told.said[field]!r} but the data has {field}={meta[field]}; "
                                 "using the data")
            assumed = [] if meta["modality"] != "unknown" else ["modality=unknown"]
            source, dataset_name = "dataset", name
        else:
            meta = told.to_meta().model_dump(mode="json")
            assumed = told.assumptions()
            assumed = [a for a in assumed if not a.startswith("device=")]
            source, dataset_name = "text", None
            if {"n_classes", "n_instances"} <= {a.split("=")[0] for a in assumed}:
                # "which lr is best for x-rays?": a general question, answered for a task nobody described
                notes.append(f"the text gives neither the number of classes nor of images, so this is for an assumed "
                             f"{meta['n_classes']}-class task of {meta['n_instances']:,} images; say both (and what "
                             "the images show) for a recommendation that fits your data")

        budget_seconds, budget_words = told.budget_seconds, told.said.get("budget")
        if given.get("budget_minutes") is not None:
            minutes = given["budget_minutes"]
            if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not math.isfinite(minutes) \
                    or minutes <= 0:
                raise TaskError(f"budget_minutes must be a number > 0, but got {minutes!r}.")
            budget_seconds, budget_words = float(minutes) * 60, "budget_minutes"
        device = given.get("device") or None
        if device is not None:
            from tools.metamodel import parse_device

            try:  # "cpu", "cuda"/"gpu", or as records write it: "cpu:8 cores", "cuda:NVIDIA H200"
                device = parse_device(str(device)).label
            except ValueError:
                raise TaskError(f"device must be one of cpu, cuda (or gpu; also 'cpu:N cores' or "
                                f"'cuda:<GPU model>'), but got {given['device']!r}.") from None
        elif "device" in told.said:
            device = told.device_label
        else:
            device = "cpu"
            assumed.append("device=cpu")
        stated = stated_limits(told, given)
        if goals.size_of and "max_params" not in stated:  # "nothing bigger than ResNet18": its size, with the head
            name, strict, words = goals.size_of
            cap = float(model_params(name, int(meta["n_classes"])))
            stated["max_params"] = (cap - 1 if strict else cap, words)
        pool = allowed("backbones", given.get("backbones"), tuple(BACKBONES))
        avoided = [b for b in BACKBONES if b in goals.avoid] if pool is None else []  # (--backbones overrides)
        if avoided:  # "don't use ResNet": a limit the text states, as --backbones without it would
            pool = [b for b in BACKBONES if b not in goals.avoid]
            if not pool:
                raise TaskError(f"the text rules out every backbone this tool has ({goals.words['avoid']!r}); "
                                f"allow one of {', '.join(BACKBONES)}.")
        backbones, limits = backbones_within(stated, pool, n_classes=int(meta["n_classes"]))
        if avoided:
            limits.insert(0, f"not {', '.join(avoided)} ({goals.words['avoid']!r}): no candidate uses "
                             f"{'it' if len(avoided) == 1 else 'them'}")
        max_memory, memory_said = memory_limit(stated, device)
        limits += memory_said + settings_limits(goals.settings)
        if goals.inference:
            notes.append(inference_note(goals.inference, size_limited=backbones is not None))
        modes = allowed("modes", given.get("modes"), MODES)
        if goals.scratch_only and given.get("modes") is None:  # a limit the text states, as --modes scratch would
            modes = ["scratch"]
            limits.append(f"from scratch only ({goals.scratch_only!r}): no pretrained weights, so every candidate "
                          "trains from scratch")
        read = {name: str(words) for name, words in told.said.items()}
        return {
            "profile": {
                "meta": meta, "source": source, "dataset": dataset, "dataset_name": dataset_name,
                "assumed": assumed, "notes": notes, "budget_seconds": budget_seconds, "budget_words": budget_words,
                "device": device,
                "backbones": backbones, "modes": modes, "read": read, "limits": limits,
                "max_memory_bytes": max_memory,
                "scope": scope.kind if scope is not None else "dataset", "goals": goals.as_json(),
                "task_text": scope.task_text if scope is not None else text,
            },
            # A fresh request in an old thread starts its judge loop afresh.
            "attempts": 0, "critique": None, "fallback": None, "draft": None, "draft_text": None, "draft_error": None,
            "approval": None, "verdicts": Overwrite([]), "llm_seconds": Overwrite({}),
        }

    def retrieve(self, state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """Past runs near the task and unlike each other (tools.evidence: MMR over a pool of the
        nearest in Chroma, with the nearest dataset's best run), and the plain k nearest for the meta-model."""
        ctx = runtime.context or Context()
        profile = state["profile"]
        query = task_query(profile, profile.get("task_text", state.get("task") or ""), ctx)
        if not ctx.k_retrieve:
            return {"evidence": [], "neighbours": []}
        if hasattr(self.store, "search_vectors"):
            from tools.evidence import diverse_runs

            picked = diverse_runs(self.store, query, ctx.k_retrieve)
            hits, neighbours = picked.runs, picked.nearest
            near = set(neighbours) | {picked.best_of_nearest_dataset}
        else:  # a store without embeddings: the plain nearest
            hits = self.store.search(query, k=ctx.k_retrieve)
            neighbours = [r.id for r, _ in hits]
            near = set(neighbours)
        nearest_dataset = min(hits, key=lambda h: h[1])[0].dataset.name if hits else None

        # The nearest dataset's runs come first and, among them, the ones that worked best
        # (r1, r2, ...: the LLM sees the first k_prompt), then the other datasets' the same
        # way; failures last within each.
        def usefulness(hit: tuple[Any, float]) -> tuple[int, int, float, float]:
            o = hit[0].outcome
            ok = o.status == "ok" and o.test_accuracy is not None
            return (0 if hit[0].dataset.name == nearest_dataset else 1, 0 if ok else 1 if o.status == "diverged" else 2,
                    -(o.test_accuracy or 0.0) if ok else 0.0, hit[1])

        evidence = []
        for i, (record, distance) in enumerate(sorted(hits, key=usefulness), start=1):
            o = record.outcome
            evidence.append({
                "alias": f"r{i}", "id": record.id, "dataset": record.dataset.name,
                "config": record.config.model_dump(mode="json"), "weights": record.weights, "status": o.status,
                "test_accuracy": o.test_accuracy, "val_accuracy": o.val_accuracy,
                "seconds": round(o.total_seconds, 3), "distance": round(float(distance), 4), "near": record.id in near,
            })
        return {"evidence": evidence, "neighbours": neighbours}

    def explain(self, state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """The meta-model's ranked candidates under the constraints, and SHAP for the top one."""
        from tools.memory import NoMemoryFit
        from tools.metamodel import Constraints

        ctx = runtime.context or Context()
        profile = state["profile"]
        meta = MetaFeatures.model_validate(profile["meta"])
        constraints = Constraints(
            budget_seconds=profile.get("budget_seconds"), device=profile["device"],
            backbones=profile.get("backbones"), modes=profile.get("modes"),
            max_memory_bytes=profile.get("max_memory_bytes"),
        )
        # The meta-model's neighbours are the plain k nearest (older threads: the evidence, which was them).
        neighbours = state.get("neighbours")
        retrieved = stored_records(self.store, neighbours if neighbours is not None
                                   else [e["id"] for e in state.get("evidence", [])])
        mm = self.metamodel
        try:
            found = self._ranked(profile, meta, constraints, retrieved, ctx, state.get("evidence", []))
        except NoMemoryFit as exc:
            raise TaskError(str(exc)) from None
        if not found:
            raise TaskError(
                "no configuration satisfies the constraints (allowed backbones "
                f"{', '.join(profile.get('backbones') or ['any'])}, modes {', '.join(profile.get('modes') or ['any'])}); "
                "allow more backbones or modes."
            )
        ran = getattr(mm, "measured_run", None)  # where a measured candidate's config comes from
        candidates = [
            {
                "id": c.id, "config": c.config.model_dump(mode="json"), **prediction_values(c.prediction), "origin": c.origin,
                "support": int(getattr(c, "support", 0)), "over_budget": bool(getattr(c, "over_budget", False)),
                "spread": round(float(getattr(c, "spread", 0.0)), 4),
                "measured": ran(c.origin, c.config) if callable(ran) else None,
            }
            for c in found
        ]
        ex = mm.explain(meta, found[0].config, open_fields=open_fields(profile))
        explanation = {
            "candidate": found[0].id, "text": ex.text(top=3), "base_value": round(float(ex.base_value), 4),
            "contributions": [[str(n), jsonable(v), round(float(c), 4)] for n, v, c in ex.contributions[:12]],
        }
        out: dict[str, Any] = {"candidates": candidates, "explanation": explanation}
        goals = profile.get("goals") or {}
        asked = comparison_notes(goals, found, profile.get("modes"))
        if asked != goals.get("notes", []):  # said on the card, beside the comparison it concerns
            out["profile"] = profile = {**profile, "goals": {**goals, "notes": asked}}
        limits = list(profile.get("limits", []))
        if constraints.budget_seconds is not None and not found[0].over_budget:
            limits.append(self._budget_price(profile, meta, constraints, retrieved, found[0], ctx))
        if profile.get("max_memory_bytes") is not None:  # what the pick needs, beside the limit it keeps to
            from tools.memory import training_memory

            need = training_memory(found[0].config, meta.n_instances, constraints.device, meta.n_classes)
            limits.append(f"memory the pick needs: {need.text()} (estimated)")
        if limits != profile.get("limits", []):
            out["profile"] = {**profile, "limits": limits}
        return out

    def _ranked(self, profile: dict[str, Any], meta: MetaFeatures, constraints: Any, retrieved: list[Any],
                ctx: Context, evidence: Sequence[dict[str, Any]] = ()) -> list[Any]:
        """The meta-model's candidates under `constraints`, shaped by the profile's goals, and a past run's
        config beside them when that run reached more than the pick is predicted to (`_past_run`)."""
        found = self.metamodel.candidates(meta, constraints, retrieved=retrieved, n=ctx.n_candidates,
                                          open_fields=open_fields(profile))
        if found:  # before the goals: a worry regularises it too, and an objective ranks it like the others
            found += self._past_run(found, profile, meta, constraints, evidence)
        if found and profile.get("goals"):
            found = apply_goals(found, profile["goals"], self.metamodel, meta, constraints, open_fields(profile))
        return found

    def _past_run(self, found: list[Any], profile: dict[str, Any], meta: MetaFeatures, constraints: Any,
                  evidence: Sequence[dict[str, Any]]) -> list[Any]:
        """The config of the near past run that reached the most, as one candidate more (last: the meta-model's
        pick stays first), when it reached PAST_RUN_MARGIN above the pick's prediction and is not a candidate
        already: predicted for this task, so what the meta-model expects of it here stands beside what it
        reached there. None when the config breaks a limit (backbones, modes, weights, budget, memory)."""
        from dataclasses import replace

        from agent.goals import PAST_RUN_MARGIN
        from tools.metamodel_candidates import can_run

        ran = [e for e in evidence if e.get("test_accuracy") is not None and e.get("near", True)]
        best = max(ran, key=lambda e: e["test_accuracy"], default=None)
        if best is None or best["test_accuracy"] < found[0].prediction.accuracy + PAST_RUN_MARGIN:
            return []
        config = TrainConfig.model_validate(best["config"])
        if any(c.config.key() == config.key() for c in found) or not can_run(config.backbone, config.mode, constraints):
            return []
        prediction = self.metamodel.stated(meta, [config], device=constraints.device, open_fields=open_fields(profile))[0]
        if constraints.budget_seconds is not None and prediction.seconds > constraints.budget_seconds:
            return []
        if constraints.max_memory_bytes is not None:
            from tools.memory import training_memory

            need = training_memory(config, meta.n_instances, constraints.device, meta.n_classes).total
            if need > constraints.max_memory_bytes:
                return []
        spread = getattr(self.metamodel, "spread", None)
        return [replace(found[0], id=f"c{len(found) + 1}", config=config, prediction=prediction,
                        origin=f"retrieved:{best['id']}", support=self.metamodel.support(config.backbone, config.mode),
                        over_budget=False, spread=float(spread(meta, [config])[0]) if callable(spread) else 0.0)]

    def _budget_price(self, profile: dict[str, Any], meta: MetaFeatures, constraints: Any, retrieved: list[Any],
                      best: Any, ctx: Context) -> str:
        """The time budget as a limit the pick was filtered by, and what it costs: the most accurate of
        the candidates the meta-model ranks without it (same device, backbones, modes, memory and
        goals) that needs more time, against `best`, the best within it. A user who reads "4 points
        above, in 40 min" can decide whether the budget is worth it."""
        from dataclasses import replace

        words = profile.get("budget_words")
        said = f" ('{words}')" if words else ""
        head = f"training time at most {duration_text(constraints.budget_seconds)} on {profile['device']}{said}"
        found = self._ranked(profile, meta, replace(constraints, budget_seconds=None), retrieved, ctx)
        over = [c for c in found if c.prediction.seconds > constraints.budget_seconds]
        top = max(over, key=lambda c: c.prediction.accuracy, default=None)
        # In points between the accuracies as shown (0.69 and 0.69 are not "1 point above").
        gain = round(top.prediction.accuracy * 100) - round(best.prediction.accuracy * 100) if top is not None else 0
        if top is None or gain <= 0:
            return f"{head}: it left out nothing predicted more accurate than the best within it"
        what = (f"{top.config.backbone}/{top.config.mode}"
                + (f" (first {top.config.freeze:.0%} frozen)" if top.config.freeze else "")
                + f" at {top.config.input_size} px")
        return (f"{head}: the most accurate candidate without it, {what}, is predicted "
                f"{top.prediction.accuracy:.2f} in {duration_text(top.prediction.seconds)}, {gain} point{'s' if gain != 1 else ''} "
                f"above the best within it "
                f"({best.prediction.accuracy:.2f} in {duration_text(best.prediction.seconds)})")

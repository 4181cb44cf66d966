"""The nodes of the recommendation graph, built around injected parts.

`Nodes` holds the parts a request needs (chat models, knowledge base, meta-model, job
starter) and caches what is expensive to build (the meta-model, dataset profiles, weight
availability) for the life of the process; each node is a method taking the state and the
runtime and returning a state update (or a `Command` where it routes).

Side effects live in `train` and `record` only, behind an approval; `approve` does nothing
before its `interrupt()` (a resumed node re-runs from its top).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import Command, Overwrite, interrupt

from agent import judge as J
from agent.context import Context
from agent.errors import TaskError, TrainingNotApproved
from agent.facts import contrast_facts
from agent.formatting import data_text, duration_text, prediction_values
from agent.goals import apply_goals, read_goals, regularisation_note
from agent.limits import backbones_within, memory_limit, stated_limits
from agent.parts import Parts
from agent.profiling import allowed, open_fields, read_task
from agent.prompting import (
    judge_messages,
    prompt_evidence,
    reason_messages,
    shown_accuracies,
    stored_records,
    task_query,
)
from agent.prompts import prompt
from agent.recommendation import build_recommendation
from agent.state import State, add_seconds
from knowledge.schema import MetaFeatures, TrainConfig
from knowledge.space import BACKBONES, MODES

log = logging.getLogger(__name__)

RESUME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["approve", "edit", "reject"]},
        "config": {"type": "object", "description": "approve: must equal the offered config; edit: fields to change"},
        "dataset": {"type": "string", "description": "the dataset to train on, when the offer has none"},
        "reason": {"type": "string", "maxLength": 500},
        "said": {"type": "string", "maxLength": 500,
                 "description": "the words the user typed, shown as their message (else the action's name)"},
    },
    "required": ["action"],
}
RESUME_HELP = {
    "approve": {"action": "approve"},
    "edit": {"action": "edit", "config": {"epochs": 5}},
    "reject": {"action": "reject", "reason": "..."},
}


# A retry samples at this temperature (the first draft is greedy).
RETRY_TEMPERATURE = 0.6


# ------------------------------------------------------------------------------ timing
def timed(name: str, fn: Callable[..., Any], *, first: bool = False) -> Callable[..., Any]:
    """Wrap a node so its wall time is added to `timings[name]` (retries add up).

    `functools.wraps` keeps the node's signature visible, so LangGraph still injects
    `runtime` and `config`. The `first` node of a request overwrites the timings instead,
    so a second request in the same thread starts from zero.
    """

    @functools.wraps(fn)
    def node(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        seconds = {name: round(time.perf_counter() - start, 6)}
        if isinstance(out, Command):
            update = dict(out.update or {})
            update["timings"] = add_seconds(update.get("timings"), seconds)
            return Command(graph=out.graph, update=update, resume=out.resume, goto=out.goto)
        out = dict(out or {})
        out["timings"] = Overwrite(seconds) if first else add_seconds(out.get("timings"), seconds)
        return out

    return node


def _thread_id(config: RunnableConfig | None) -> str:
    return str(((config or {}).get("configurable") or {}).get("thread_id") or "no-thread")


def job_id_for(thread_id: str, config: TrainConfig) -> str:
    """The run folder name of a thread's first training of a config (see `new_job_id` for the next ones)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", thread_id).strip("._")[:48] or "thread"
    return f"{safe}-{config.key()}"


def new_job_id(thread_id: str, config: TrainConfig, runs: str | os.PathLike[str] | None) -> str:
    """A run folder name no earlier job has: `job_id_for`, then "-2", "-3", ... for the same config
    approved again in the same thread (the same id would re-attach to the finished first run)."""
    from tools.jobs import runs_dir

    root = Path(runs) if runs else runs_dir()
    base = job_id_for(thread_id, config)
    job_id, n = base, 1
    while (root / job_id).exists():
        n += 1
        job_id = f"{base}-{n}"
    return job_id


# ------------------------------------------------------------------------------- nodes
class Nodes:
    """The graph's nodes around their parts (agent.parts.Parts)."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.store = parts.kb
        self._profiles: dict[tuple[str, int, int], dict[str, Any]] = {}

    @property
    def metamodel(self) -> Any:
        return self.parts.get_metamodel()

    def weights_available(self, backbone: str) -> bool:
        return self.parts.has_weights(backbone)

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
        if scope is not None and scope.kind == "image_classification_non_medical" and scope.message:
            notes.append(scope.message)
        goals = read_goals(scope.task_text if scope is not None else text)
        if "overfitting" in goals.worries:
            notes.append(regularisation_note(goals.worries["overfitting"]))
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

        budget_seconds = told.budget_seconds
        if given.get("budget_minutes") is not None:
            minutes = given["budget_minutes"]
            if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not math.isfinite(minutes) \
                    or minutes <= 0:
                raise TaskError(f"budget_minutes must be a number > 0, but got {minutes!r}.")
            budget_seconds = float(minutes) * 60
        device = given.get("device") or None
        if device is not None:
            from tools.metamodel import parse_device

            try:  # "cpu", "cuda"/"gpu", or as records write it: "cpu:8 cores", "cuda:NVIDIA H200"
                device = parse_device(str(device)).label
            except ValueError:
                raise TaskError(f"device must be one of cpu, cuda (or gpu; also 'cpu:N cores' or "
                                f"'cuda:<GPU model>'), but got {given['device']!r}.") from None
        elif "device" in told.said:
            device = told.device
        else:
            device = "cpu"
            assumed.append("device=cpu")
        stated = stated_limits(told, given)
        backbones, limits = backbones_within(stated, allowed("backbones", given.get("backbones"), tuple(BACKBONES)))
        max_memory, memory_said = memory_limit(stated, device)
        limits += memory_said
        modes = allowed("modes", given.get("modes"), MODES)
        read = {name: str(words) for name, words in told.said.items()}
        return {
            "profile": {
                "meta": meta, "source": source, "dataset": dataset, "dataset_name": dataset_name,
                "assumed": assumed, "notes": notes, "budget_seconds": budget_seconds, "device": device,
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
            found = mm.candidates(meta, constraints, retrieved=retrieved, n=ctx.n_candidates,
                                  open_fields=open_fields(profile))
            if found and profile.get("goals"):
                found = apply_goals(found, profile["goals"], mm, meta, constraints, open_fields(profile))
        except NoMemoryFit as exc:
            raise TaskError(str(exc)) from None
        if not found:
            raise TaskError(
                "no configuration satisfies the constraints (allowed backbones "
                f"{', '.join(profile.get('backbones') or ['any'])}, modes {', '.join(profile.get('modes') or ['any'])}); "
                "allow more backbones or modes."
            )
        candidates = [
            {
                "id": c.id, "config": c.config.model_dump(mode="json"), **prediction_values(c.prediction), "origin": c.origin,
                "support": int(getattr(c, "support", 0)), "over_budget": bool(getattr(c, "over_budget", False)),
            }
            for c in found
        ]
        ex = mm.explain(meta, found[0].config, open_fields=open_fields(profile))
        explanation = {
            "candidate": found[0].id, "text": ex.text(top=3), "base_value": round(float(ex.base_value), 4),
            "contributions": [[str(n), _jsonable(v), round(float(c), 4)] for n, v, c in ex.contributions[:12]],
        }
        out: dict[str, Any] = {"candidates": candidates, "explanation": explanation}
        if profile.get("max_memory_bytes") is not None:  # what the pick needs, beside the limit it keeps to
            from tools.memory import training_memory

            need = training_memory(found[0].config, meta.n_instances, constraints.device, meta.n_classes)
            out["profile"] = {**profile, "limits": [*profile.get("limits", []),
                                                    f"memory the pick needs: {need.text()} (estimated)"]}
        return out

    def reason(self, state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """One LLM call: a draft recommendation, JSON-constrained by the candidate set."""
        ctx = runtime.context or Context()
        aliases = [e["alias"] for e in prompt_evidence(state, ctx)]
        schema = J.draft_schema(state["candidates"], aliases)
        messages = reason_messages(state, ctx)
        start = time.perf_counter()
        draft: Any = None
        error = None
        text = None
        try:
            out = self._retry_model(state.get("attempts", 0)).with_structured_output(schema, include_raw=True).with_config(
                run_name="reason", tags=["reason"]
            ).invoke(messages)
            if isinstance(out, dict) and {"raw", "parsed"} <= out.keys():
                if out.get("parsing_error") is not None:
                    error = f"invalid JSON answer: {str(out['parsing_error'])[:300]}"
                content = getattr(out["raw"], "content", None)
                text = content if isinstance(content, str) else None
                out = out["parsed"]
            draft = out
        except Exception as exc:  # a bad answer is the judge's to report, and counts as an attempt
            error = f"{type(exc).__name__}: {str(exc)[:300]}"
            log.warning("reason: the LLM gave no usable answer: %s", error)
        seconds = time.perf_counter() - start
        if hasattr(draft, "model_dump"):
            draft = draft.model_dump()
        if isinstance(draft, dict) and isinstance(draft.get("rationale"), str):
            tidy = J.tidy_text(draft["rationale"], J.DRAFT_RATIONALE_MAX)
            if text is not None and tidy != " ".join(draft["rationale"].split()):
                # The judge must see the tidied rationale, not the cut-off one, and in the
                # model's own wording, which llama.cpp's KV cache still holds.
                text = J.with_rationale(text, draft["rationale"], tidy)
            draft["rationale"] = tidy
        if isinstance(draft, dict):
            draft = J.complete_draft(draft, state["candidates"])
        else:
            error = error or f"not a JSON object: {str(draft)[:200]}"
            draft, text = None, None
        return {
            "draft": draft, "draft_text": text, "draft_error": error,
            "attempts": state.get("attempts", 0) + 1,
            "llm_seconds": {"reason": seconds},
        }

    def _retry_model(self, attempts: int) -> Any:
        """The reasoner for this attempt: greedy first; a retry samples (seeded by the attempt),
        because a greedy small model answers a critique with the very draft it criticised."""
        fields = getattr(type(self.parts.llm), "model_fields", {})
        if attempts == 0 or "temperature" not in fields:
            return self.parts.llm
        update: dict[str, Any] = {"temperature": RETRY_TEMPERATURE}
        if "seed" in fields:
            update["seed"] = attempts
        return self.parts.llm.model_copy(update=update)

    def judge(self, state: State, runtime: Runtime[Context]) -> Command[Any]:
        """Deterministic checks, then (if they pass) the LLM judge; route by the verdict."""
        ctx = runtime.context or Context()
        candidates = state["candidates"]
        profile = state["profile"]
        aliases = [e["alias"] for e in prompt_evidence(state, ctx)]
        draft, error = J.parse_draft(state.get("draft"))
        if draft is None and state.get("draft_error"):
            error = state["draft_error"]
        config, config_error, prediction = None, None, None
        if draft is not None:
            try:
                config = J.merge_config(draft, candidates)
            except ValueError as exc:
                config_error = str(exc)
        if config is not None:
            prediction = self._predict(profile, config)
        checks = J.run_checks(
            draft=draft, draft_error=error, candidates=candidates, evidence_aliases=aliases, config=config,
            config_error=config_error, prediction=prediction, profile=profile,
            weights_available=self.weights_available, accuracy_tolerance=ctx.accuracy_tolerance,
            max_accuracy_gap=ctx.max_accuracy_gap, shown_accuracies=shown_accuracies(state, ctx),
            evidence=prompt_evidence(state, ctx),
        )
        passed = all(c.ok for c in checks)
        scores, judge_error, llm_seconds = None, None, 0.0
        # A greedy model often answers a critique with the very draft it criticised; judging
        # it again would cost a judge call and end in the same place.
        key = J.short_json(state["draft"]) if draft is not None else None
        repeated = next((v for v in state.get("verdicts") or [] if key and v.get("draft_key") == key), None)
        if repeated is not None and passed and repeated.get("scores"):
            scores = J.JudgeScores.model_validate({**repeated["scores"], "critique": repeated.get("critique") or ""})
            passed = J.passes(scores, ctx.min_judge_score)
        elif passed and ctx.llm_judge and prediction is not None:
            start = time.perf_counter()
            scores, judge_error = J.llm_scores(self.parts.judge_llm, judge_messages(state, ctx, state["draft"]))
            llm_seconds = time.perf_counter() - start
            if scores is not None:
                passed = J.passes(scores, ctx.min_judge_score)
        overruled = None
        if scores is not None and not passed and scores.problem == "wrong number or id":
            # The grounding check read every number and id of the rationale against the
            # evidence and found them right; a 1.5B judge calls 0.9323 vs 0.93 wrong
            # (bench/judge_quality.py). It keeps its say on vague and unreadable rationales.
            said = scores.critique.strip()
            said = f" ({said})" if said and said.lower() != "ok" else ""
            overruled = f"the LLM judge found a {scores.problem}{said}, but every number and id " \
                        "the rationale quotes matches the evidence"
            passed = True
        attempt = state.get("attempts", 1)
        critique = None if passed else J.critique_of(checks, scores)
        verdict = {
            "passed": passed, "attempt": attempt, "checks": J.checks_as_json(checks),
            "scores": None if scores is None else {n: getattr(scores, n) for n in J.SCORE_NAMES},
            "critique": overruled or (scores.critique.strip() if scores is not None and passed else critique),
            "judged_by": "checks+llm" if scores is not None else "checks",
            "judge_error": judge_error,
            "prediction": prediction,
            "assumed": profile["assumed"],
            "draft_key": key,
            "repeats": None if repeated is None else repeated["attempt"],
            "overruled": overruled,
            "min_score": ctx.min_judge_score,
        }
        update: dict[str, Any] = {"verdict": verdict, "verdicts": [verdict], "llm_seconds": {"judge": llm_seconds}}
        if passed:
            return Command(goto="respond", update={**update, "critique": None, "fallback": None})
        if attempt <= ctx.max_judge_retries and repeated is None:
            return Command(goto="reason", update={**update, "critique": critique})
        reason = (f"the LLM repeated draft {repeated['attempt']}, which the judge had rejected: {critique}"
                  if repeated is not None else f"the judge rejected {attempt} draft(s); last critique: {critique}")
        return Command(goto="respond", update={**update, "critique": critique, "fallback": {"reason": reason}})

    def respond(self, state: State, runtime: Runtime[Context], config: RunnableConfig) -> dict[str, Any]:
        """The recommendation object (a labelled fallback when the judge gave up) and the offer."""
        start = time.perf_counter()
        ctx = runtime.context or Context()
        profile = state["profile"]
        candidates = state["candidates"]
        meta = MetaFeatures.model_validate(profile["meta"])
        fallback = state.get("fallback")
        draft, _ = J.parse_draft(state.get("draft"))
        falls_back = bool(fallback) or draft is None
        if fallback or draft is None:  # (spelt out: a type checker narrows `draft` here)
            top = candidates[0]
            chosen = TrainConfig.model_validate(top["config"])
            cited = [top["id"]]
        else:
            chosen = J.merge_config(draft, candidates)
            cited = list(dict.fromkeys(draft.cite))
        prediction = self._predict(profile, chosen)
        explanation = state["explanation"]
        top_config = TrainConfig.model_validate(candidates[0]["config"])
        if chosen.key() == top_config.key():
            shap_text, contributions = explanation["text"], explanation["contributions"]
        else:
            ex = self.metamodel.explain(meta, chosen, open_fields=open_fields(profile))
            shap_text = ex.text(top=3)
            contributions = [[str(n), _jsonable(v), round(float(c), 4)] for n, v, c in ex.contributions[:12]]
        plot = None
        if ctx.plot_dir:
            name = f"shap-{job_id_for(_thread_id(config), chosen)}.png"
            try:
                plot = str(self.metamodel.shap_plot(meta, chosen, Path(ctx.plot_dir) / name))
            except Exception as exc:  # a plot is for people; its failure must not lose the answer
                log.warning("SHAP plot failed: %s", exc)
        timings = add_seconds(state.get("timings"), {"respond": time.perf_counter() - start})
        rec = build_recommendation(
            state=state, config=chosen, prediction=prediction, cited=cited, shap_summary=shap_text,
            contributions=contributions, shap_plot=plot, draft=None if fallback else draft,
            fallback_reason=((fallback or {}).get("reason") or "no usable draft") if falls_back else None,
            weights=J.weights_source(chosen.backbone, chosen.mode, self.weights_available(chosen.backbone)),
            timings=timings, facts=contrast_facts(candidates, prompt_evidence(state, ctx)) if falls_back else None,
        )
        offer = self._offer(profile, chosen, prediction, warnings=rec.warnings)
        return {"recommendation": rec.model_dump(mode="json"), "offer": offer}

    def approve(self, state: State, runtime: Runtime[Context], config: RunnableConfig) -> Command[Any]:
        """Ask for approval of the exact offered config; route by the answer.

        Nothing happens before `interrupt()`: on resume this node re-runs from the top.
        """
        ctx = runtime.context or Context()
        offer = state["offer"]
        payload = {
            "type": "approval",
            "question": "Train this exact configuration? Resume with one of `resume`.",
            **offer,
            "resume": RESUME_HELP,
        }
        answer = interrupt(payload, response_schema=RESUME_SCHEMA)
        action, fields, problem = _read_answer(answer)
        said = str(fields.get("said") or "")[:500] or None  # what the user typed, the chat shows it as typed
        offer = {**offer, "said": said}
        if problem:
            return Command(goto="approve", update={"offer": {**offer, "error": problem}})
        if action == "reject":
            return Command(goto=END, update={
                "decision": {"status": "rejected", "reason": str(fields.get("reason") or "")[:500],
                             **({"said": said} if said else {})},
                "approval": None, "offer": {**offer, "error": None},
            })
        proposed = fields.get("config")
        if proposed is not None and not isinstance(proposed, dict):
            return Command(goto="approve", update={"offer": {**offer, "error": "config must be a JSON object."}})
        if action == "edit" or (proposed is not None and _normalised(proposed, offer) != offer["key"]):
            edited, problems = J.validate_config(
                {**offer["config"], **(proposed or {})}, backbones=state["profile"].get("backbones"),
                modes=state["profile"].get("modes"), weights_available=self.weights_available,
            )
            if edited is None or problems:
                message = "the edited configuration was refused: " + " ".join(problems)
                return Command(goto="approve", update={"offer": {**offer, "error": message}})
            new_offer = self._offer(state["profile"], edited, self._predict(state["profile"], edited),
                                    dataset=offer.get("dataset"))
            new_offer["note"] = "edited: approve this exact configuration to train it"
            new_offer["said"] = said
            return Command(goto="approve", update={"offer": new_offer})
        dataset = offer.get("dataset") or fields.get("dataset")
        if not dataset:
            return Command(goto="approve", update={"offer": {**offer, "error": (
                "training needs a dataset: resume with {\"action\": \"approve\", \"dataset\": \"PATH\"}, or reject.")}})
        if not ctx.allows(dataset) or not Path(dataset).expanduser().exists():
            return Command(goto="approve", update={"offer": {**offer, "error": (
                f"cannot train on {dataset!r}: it does not exist or lies outside the allowed folders.")}})
        # Named once here, after the answer (a node re-runs from its top on resume): train re-attaches
        # to this job after a restart, and a second approval of the same config is a new job.
        job_id = new_job_id(_thread_id(config), TrainConfig.model_validate(offer["config"]), ctx.runs_dir)
        return Command(goto="train", update={
            "approval": {"config": offer["config"], "key": offer["key"], "dataset": str(dataset), "job_id": job_id},
            "decision": {"status": "approved", **({"said": said} if said else {})}, "offer": {**offer, "dataset": str(dataset), "error": None},
        })

    def train(self, state: State, runtime: Runtime[Context], config: RunnableConfig) -> dict[str, Any]:
        """Start (or re-attach to) the training job of the approved config; stream its progress."""
        ctx = runtime.context or Context()
        approval = state.get("approval")
        offer = state.get("offer") or {}
        if not approval:
            raise TrainingNotApproved("refusing to train: no configuration was approved in this thread.")
        chosen = TrainConfig.model_validate(approval["config"])
        if chosen.key() != approval["key"] or approval["key"] != offer.get("key"):
            raise TrainingNotApproved(
                "refusing to train: the approved configuration is not the one offered for approval "
                f"(approved {approval['key']}, offered {offer.get('key')}); approve the offered config again."
            )
        from tools.jobs import drive

        meta = state["profile"]["meta"]
        job = self.parts.job_starter()(
            approval["dataset"], chosen, seed=ctx.seed, kb_root=getattr(self.store, "root", None),
            runs=ctx.runs_dir, job_id=approval.get("job_id") or job_id_for(_thread_id(config), chosen),
            modality=None if meta["modality"] == "unknown" else meta["modality"], body_part=meta.get("body_part"),
        )
        write = get_stream_writer()
        write({"type": "job", "job_id": job.id, "run_dir": str(job.run_dir)})
        ended: dict[str, Any] = {}

        def forward(event: dict[str, Any]) -> None:
            if event.get("event") == "end":
                ended.update(event)
            write({"type": "train", **event})

        finished = drive(job, forward)
        record = finished.record
        training: dict[str, Any] = {"job_id": job.id, "run_dir": str(job.run_dir)}
        if record is None:
            training.update(status="error", error=finished.error)
        else:
            o = record.outcome
            # seconds: the record's total (what a time prediction is scored on); train_seconds and
            # feature_seconds apart, with whether the features came from an earlier run's cache,
            # so the chat reports the run's own time.
            training.update(status=o.status, record_id=record.id, test_accuracy=o.test_accuracy,
                            val_accuracy=o.val_accuracy, seconds=o.total_seconds, train_seconds=o.train_seconds,
                            feature_seconds=o.feature_seconds, features_cached=ended.get("cache") == "hit",
                            error=o.error)
        write({"type": "train_done", **training})
        return {"training": training}

    def record(self, state: State) -> dict[str, Any]:
        """Report the new knowledge-base record and bring the search index up to date."""
        training = state.get("training") or {}
        record_id = training.get("record_id")
        index: dict[str, int] | None = None
        if record_id and hasattr(self.store, "sync_index"):
            try:
                index = self.store.sync_index()
            except Exception as exc:  # the JSONL holds the record; the index re-syncs on the next search
                log.warning("index sync failed: %s", exc)
        return {"recorded": {"record_id": record_id, "index": index, "status": training.get("status")}}

    # ------------------------------------------------------------------- helpers
    def _predict(self, profile: dict[str, Any], config: TrainConfig) -> dict[str, Any]:
        meta = MetaFeatures.model_validate(profile["meta"])
        # the number stated for this config on this profile, as the candidates state theirs
        p = self.metamodel.stated(meta, [config], device=profile["device"], open_fields=open_fields(profile))[0]
        out: dict[str, Any] = prediction_values(p)
        note = getattr(p, "device_note", None)
        if note:  # no run from the user's device backs the time: the user is told (recommend.build_recommendation)
            out["device_note"] = note
        if getattr(p, "evidence_note", None):  # the task is far from every dataset in the knowledge base
            out["evidence_note"] = p.evidence_note
        return out

    def _offer(self, profile: dict[str, Any], config: TrainConfig, prediction: dict[str, float], *,
               warnings: list[str] | None = None, dataset: str | None = None) -> dict[str, Any]:
        warnings = list(warnings or [])
        budget = profile.get("budget_seconds")
        if budget and prediction["seconds"] > budget and not any("budget" in w for w in warnings):
            warnings.append(f"predicted {duration_text(prediction['seconds'])} exceeds the budget of {duration_text(budget)}")
        return {
            "config": config.model_dump(mode="json"), "key": config.key(),
            "dataset": dataset or profile.get("dataset"), "prediction": prediction, "warnings": warnings,
            "error": None,
        }


def _read_answer(answer: Any) -> tuple[str, dict[str, Any], str | None]:
    """(action, fields, problem) from a resume value; shorthands True/False/"approve"/"reject"."""
    if answer is True or (isinstance(answer, str) and answer.strip().lower() in ("approve", "yes", "y")):
        return "approve", {}, None
    if answer is False or (isinstance(answer, str) and answer.strip().lower() in ("reject", "no", "n")):
        return "reject", {}, None
    if isinstance(answer, dict) and answer.get("action") in ("approve", "edit", "reject"):
        if answer["action"] == "edit" and not isinstance(answer.get("config"), dict):
            return "edit", {}, "an edit needs the fields to change: {\"action\": \"edit\", \"config\": {\"epochs\": 5}}."
        return str(answer["action"]), answer, None
    return "", {}, (f"cannot read the answer {str(answer)[:200]!r}: resume with {{\"action\": \"approve\"}}, "
                    "{\"action\": \"edit\", \"config\": {...}} or {\"action\": \"reject\"}.")


def _normalised(proposed: dict[str, Any], offer: dict[str, Any]) -> str | None:
    """The key of the offered config with `proposed` on top (None when that is invalid)."""
    try:
        return TrainConfig.model_validate({**offer["config"], **proposed}).key()
    except Exception:
        return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


__all__ = ["Nodes", "RESUME_SCHEMA", "TaskError", "TrainingNotApproved", "data_text", "job_id_for", "new_job_id", "prompt",
           "reason_messages", "task_query", "timed"]

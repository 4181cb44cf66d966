"""The steps that write and check the recommendation: reason, judge and respond.

- `reason` asks the LLM for a draft, JSON-constrained by the candidate set (a retry samples);
- `judge` runs the deterministic checks, then the LLM judge, and routes back to `reason` with
  a critique or on to `respond`;
- `respond` builds the recommendation (a labelled fallback to the meta-model's best when the
  judge gave up) and the offer the approval shows.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime
from langgraph.types import Command

from agent import judge as J
from agent.context import Context
from agent.facts import contrast_facts
from agent.nodes_approval import job_id_for, thread_id_of
from agent.nodes_base import NodeBase, jsonable
from agent.profiling import open_fields
from agent.prompting import judge_messages, prompt_evidence, reason_messages, shown_accuracies
from agent.recommendation import build_recommendation
from agent.state import State, add_seconds
from knowledge.schema import MetaFeatures, TrainConfig

log = logging.getLogger(__name__)

# A retry samples at this temperature (the first draft is greedy).
RETRY_TEMPERATURE = 0.6


class DraftNodes(NodeBase):
    """The reason, judge and respond nodes."""

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
            # "c1 achieves 0.77" said of a candidate: the tense made right, the claim still checked.
            tidy = J.hedge_measured(tidy, [c["id"] for c in state["candidates"]],
                                    draft.get("candidate") if isinstance(draft.get("candidate"), str) else None)
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

    def check_case(self, state: State, ctx: Context, draft: J.Draft | None, error: str | None) -> dict[str, Any]:
        """What the deterministic checks read besides the draft (`J.run_checks`' other arguments): the
        draft's merged configuration, its prediction, and what the prompt showed the model."""
        candidates = state["candidates"]
        config, config_error, prediction = None, None, None
        if draft is not None:
            try:
                config = J.merge_config(draft, candidates)
            except ValueError as exc:
                config_error = str(exc)
        if config is not None:
            prediction = self._predict(state["profile"], config)
        evidence = prompt_evidence(state, ctx)
        return dict(
            draft_error=error, candidates=candidates, evidence_aliases=[e["alias"] for e in evidence], config=config,
            config_error=config_error, prediction=prediction, profile=state["profile"],
            weights_available=self.weights_available, accuracy_tolerance=ctx.accuracy_tolerance,
            max_accuracy_gap=ctx.max_accuracy_gap, shown_accuracies=shown_accuracies(state, ctx), evidence=evidence,
        )

    def judge(self, state: State, runtime: Runtime[Context]) -> Command[Any]:
        """Deterministic checks, then (if they pass) the LLM judge; route by the verdict."""
        ctx = runtime.context or Context()
        draft, error = J.parse_draft(state.get("draft"))
        if draft is None and state.get("draft_error"):
            error = state["draft_error"]
        case = self.check_case(state, ctx, draft, error)
        prediction = case["prediction"]

        def check(d: J.Draft | None) -> list[J.Check]:
            return J.run_checks(draft=d, **case)

        checks = check(draft)
        raw_draft, draft_text, trimmed = state["draft"], state.get("draft_text"), None
        # Only a clause it cannot back up is wrong: the head before that clause, when it passes every check.
        if draft is not None and (cut := J.trim(draft, checks, check)) is not None:
            said = draft.rationale
            draft, checks, trimmed = cut
            raw_draft = {**raw_draft, "rationale": draft.rationale}
            draft_text = J.with_rationale(draft_text, said, draft.rationale) if draft_text else None
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
            scores, judge_error = J.llm_scores(self.parts.judge_llm,
                                               judge_messages({**state, "draft_text": draft_text}, ctx, raw_draft))
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
            "assumed": state["profile"]["assumed"],
            "draft_key": key,
            "repeats": None if repeated is None else repeated["attempt"],
            "overruled": overruled,
            "trimmed": trimmed,
            "min_score": ctx.min_judge_score,
        }
        update: dict[str, Any] = {"verdict": verdict, "verdicts": [verdict], "llm_seconds": {"judge": llm_seconds}}
        if trimmed:
            update |= {"draft": raw_draft, "draft_text": draft_text}
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
            contributions = [[str(n), jsonable(v), round(float(c), 4)] for n, v, c in ex.contributions[:12]]
        plot = None
        if ctx.plot_dir:
            name = f"shap-{job_id_for(thread_id_of(config), chosen)}.png"
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
            timings=timings, facts=contrast_facts(candidates, prompt_evidence(state, ctx), profile.get("goals")),
        )
        offer = self._offer(profile, chosen, prediction, warnings=rec.warnings)
        return {"recommendation": rec.model_dump(mode="json"), "offer": offer}

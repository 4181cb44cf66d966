"""The Tuner: a tuning session, one step at a time (propose a trial, run it once approved, read its log).

Trial 1 is the zero-shot recommendation of the graph; every later one is chosen among the
options (`options`: the meta-model's untried candidates and variants of the best trial, by
expected gain) by the LLM (`agent.tune._choice`), or is the option with the highest expected
gain, labelled as a fallback. Each trial runs as a training job; its record lands in the
knowledge base and the session in `<kb>/tuning/<session>.json`.

The module holds the class alone, at ~410 lines over the ~400 aimed at: its methods share the
session's state (trials, budget, profile, the running job), and spreading them over modules
would hide where each lives. `run` sheds its own job driving (~30 lines) once
`tools.jobs.drive` takes it over.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import TaskError
from agent.formatting import config_text, duration_text, prediction_values
from agent.parts import Parts
from agent.tune._analysis import analyze
from agent.tune._choice import check_choice, tune_messages, tune_schema
from agent.tune._gain import calibration, pick, rank_options
from agent.tune._models import Option, PredictedOutcome, Proposal, Trial, TuneError, TuneResult
from agent.tune._variants import N_MODEL_OPTIONS, next_configs
from knowledge.schema import MetaFeatures, TrainConfig
from tools.jobs import drive, write_json

# agent.recommend and agent.nodes (they load LangGraph, ~1 s) are imported where a trial
# needs the graph, so that `import agent.tune` stays light for the chat and the CLI.
if TYPE_CHECKING:
    from agent.context import Context
    from agent.recommend import Recommender
    from agent.recommendation import Recommendation

log = logging.getLogger(__package__)  # "agent.tune", the name its records always had

DEFAULT_MIN_GAIN = 0.002
MAX_TRIALS = 50


class Tuner:
    """A tuning session, one step at a time: `propose()`, then `run(proposal)` once approved.

    `tune()` drives it in a loop; the chat steps through it between clicks. Build it with
    the same parts as a `Recommender` (or hand in one), so tests pass fakes.

    Args:
        text: the task in words (may be "" when the dataset says enough).
        dataset: the dataset to train on (required: trials are real runs).
        trials: at most this many trials (1-50).
        budget_minutes: wall time of all trials together; None uses the text's budget, if any.
        device, backbones, modes: constraints, as for `recommend`.
        min_gain: stop when the best option's expected gain is below this (accuracy, 0-1).
        seed: seed of every training run.
        recommender: the graph with its parts, for trial 1; None builds one on `parts` when
            `recommendation` is None.
        parts: the agent's parts (agent.parts.Parts): knowledge base, meta-model, weights check,
            job starter; None takes the recommender's, else builds them from llm/kb/metamodel (or
            the process's default recommender when none of them is given).
        recommendation: trial 1 as already recommended (e.g. in a chat thread); None runs the graph.
        llm: the chat model that proposes trials 2..N; None uses the reasoner of the parts, except
            when `parts` is handed in (the chat): then every next trial is the labelled fallback.
        start_job: the job starter, over the parts' one (the chat passes its cancel registry's).
        runs_dir: run folders of the trials (default `tools.jobs.runs_dir()`).
        context: run settings of the graph for trial 1.
        session_id: names the session (its jobs and its log); a new one by default.
        previous: the trials an earlier session of the same task already ran (e.g. the chat
            thread's last tuning): this session continues from them (none is re-run, the next
            trial is chosen from their results) with `trials` and `budget_minutes` its own.
            Needs `recommendation` (the one the earlier session started from).
    """

    def __init__(
        self,
        text: str = "",
        *,
        dataset: str,
        trials: int = 5,
        budget_minutes: float | None = None,
        device: str | None = None,
        backbones: Sequence[str] | None = None,
        modes: Sequence[str] | None = None,
        min_gain: float = DEFAULT_MIN_GAIN,
        seed: int = 0,
        recommender: Recommender | None = None,
        parts: Parts | None = None,
        recommendation: Recommendation | None = None,
        llm: Any | None = None,
        judge_llm: Any | None = None,
        kb: Any | None = None,
        kb_dir: str | None = None,
        metamodel: Any | None = None,
        start_job: Callable[..., Any] | None = None,
        runs_dir: str | None = None,
        context: Context | None = None,
        session_id: str | None = None,
        previous: Sequence[Trial] = (),
    ) -> None:
        given_parts = parts is not None
        if not dataset or not isinstance(dataset, (str, os.PathLike)):
            raise TuneError("tuning trains real runs, so it needs a dataset: pass dataset=PATH.")
        if not Path(dataset).expanduser().exists():
            raise TuneError(f"the dataset {str(dataset)!r} does not exist; pass the path of a .npz file or image folder.")
        if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
            raise TuneError(f"trials must be an integer with 1 <= trials <= {MAX_TRIALS}, but got {trials!r}.")
        if budget_minutes is not None and (isinstance(budget_minutes, bool) or not isinstance(budget_minutes, (int, float))
                                           or not math.isfinite(budget_minutes) or budget_minutes <= 0):
            raise TuneError(f"budget_minutes must be a number > 0, but got {budget_minutes!r}.")
        if not isinstance(min_gain, (int, float)) or not 0 <= min_gain <= 1:
            raise TuneError(f"min_gain must satisfy 0 <= min_gain <= 1, but got {min_gain!r}.")
        if previous and recommendation is None:
            raise TuneError("continuing earlier trials needs the recommendation they started from: pass "
                            "recommendation=..., or start a new session without previous trials.")
        if parts is None and recommender is not None:
            parts = recommender.parts
        if parts is None:
            from agent.recommend import default_recommender

            if llm is None and judge_llm is None and kb is None and metamodel is None:
                recommender = default_recommender(kb_dir)
                parts = recommender.parts
            elif recommendation is not None and kb is not None and metamodel is not None:
                parts = Parts(llm=llm, kb=kb, judge_llm=judge_llm, metamodel=metamodel)  # no graph runs: no LLM loaded
            else:
                parts = Parts.default(kb_dir=kb_dir, llm=llm, judge_llm=judge_llm, kb=kb, metamodel=metamodel)
        if recommender is None and recommendation is None:  # trial 1 runs the graph
            from agent.recommend import Recommender

            recommender = Recommender(parts=parts)
        self.recommender = recommender
        self.parts = parts
        # The proposer: the given model, else the reasoner; a Tuner handed `parts` for a
        # recommendation already made (the chat) proposes with `llm` only, and without it every
        # next trial is the labelled fallback.
        self.llm = llm if llm is not None or given_parts else parts.llm
        self.kb = parts.kb
        self.text = text or ""
        self.dataset = str(dataset)
        self.previous = [Trial.model_validate(t) for t in previous]
        self.max_trials = len(self.previous) + trials
        self.budget_seconds = None if budget_minutes is None else float(budget_minutes) * 60
        self.device, self.backbones, self.modes = device, list(backbones or []) or None, list(modes or []) or None
        self.min_gain = float(min_gain)
        self.seed = seed
        self.start_job = start_job
        self.runs_dir = runs_dir
        self.context = context
        self.session_id = session_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self.trials: list[Trial] = list(self.previous)
        self.recommendation: Recommendation | None = recommendation
        self.profile: dict[str, Any] | None = None
        if self.previous:  # trial 1 ran in the earlier session: the profile comes from its recommendation
            assert recommendation is not None
            self._from_recommendation(recommendation, llm_seconds=0.0)
        self.stop_reason: str | None = None
        self.pending: Proposal | None = None
        self._llm_seconds = 0.0
        self._started = time.perf_counter()
        self._job: Any = None
        self._cancelled = threading.Event()

    # ------------------------------------------------------------------ state
    @property
    def metamodel(self) -> Any:
        return self.parts.get_metamodel()

    def weights_available(self, backbone: str) -> bool:
        return self.parts.has_weights(backbone)

    @property
    def meta(self) -> MetaFeatures:
        assert self.profile is not None
        return MetaFeatures.model_validate(self.profile["meta"])

    @property
    def spent(self) -> float:
        """Wall seconds of this session's trials so far (what its budget counts; earlier sessions' are theirs)."""
        return sum(t.seconds for t in self.trials[len(self.previous):])

    @property
    def remaining(self) -> float | None:
        return None if self.budget_seconds is None else max(0.0, self.budget_seconds - self.spent)

    def share(self) -> float | None:
        """The time the next trial should fit: what is left over the trials left."""
        if self.budget_seconds is None:
            return None
        left = max(1, self.max_trials - len(self.trials))
        return max(1.0, (self.remaining or 0.0) / left)

    @property
    def n_val(self) -> int | None:
        """Validation images of the task's dataset (None before the profile is known)."""
        if self.profile is None:
            return None
        return (self.profile["meta"].get("split_sizes") or {}).get("val")

    @property
    def best(self) -> Trial | None:
        """The trial to keep (`pick`): the best validation accuracy beyond validation noise."""
        return pick(self.trials, self.n_val)[0]

    def tried(self) -> set[str]:
        keys = {t.config.key() for t in self.trials}
        if self.pending is not None:
            keys.add(self.pending.config.key())
        return keys

    def _chance(self) -> float | None:
        if self.profile is None:
            return None
        m = self.profile["meta"]
        return m["class_size_max"] / max(m["n_instances"], 1)

    # -------------------------------------------------------------- proposing
    def propose(self) -> Proposal | None:
        """The next trial, or None when tuning should stop (`stop_reason` says why)."""
        if self.stop_reason:
            return None
        if self._cancelled.is_set():
            return self._stop("cancelled by the user")
        if len(self.trials) >= self.max_trials:
            return self._stop(f"trials done: all {self.max_trials - len(self.previous)} ran"
                              + (f" (after the {len(self.previous)} of the earlier session)" if self.previous else ""))
        if self.budget_seconds is not None and self.spent >= self.budget_seconds:
            return self._stop(f"budget spent: the trials took {duration_text(self.spent)} of {duration_text(self.budget_seconds)}")
        proposal = self._first() if not self.trials else self._next()
        if self._cancelled.is_set():  # cancelled while the LLM was thinking: propose nothing
            return self._stop("cancelled by the user")
        return proposal

    def _stop(self, reason: str) -> None:
        self.stop_reason = reason
        return None

    def _first(self) -> Proposal:
        if self.recommendation is not None:  # trial 1 was recommended already (a chat thread)
            return self._from_recommendation(self.recommendation, llm_seconds=0.0)
        assert self.recommender is not None
        share = self.share()
        try:
            rec, _ = self.recommender.run(
                self.text, dataset=self.dataset, budget_minutes=None if share is None else share / 60,
                device=self.device, backbones=self.backbones, modes=self.modes, context=self.context,
                thread_id=f"tune-{self.session_id}",
            )
        except TaskError as exc:
            raise TuneError(str(exc)) from exc
        self.recommendation = rec
        self._llm_seconds += rec.llm_seconds
        return self._from_recommendation(rec, llm_seconds=rec.llm_seconds)

    def _from_recommendation(self, rec: Recommendation, *, llm_seconds: float) -> Proposal:
        self.profile = rec.profile.model_dump(mode="json")
        if self.budget_seconds is None and rec.profile.budget_seconds:
            self.budget_seconds = float(rec.profile.budget_seconds)
        return Proposal(
            number=1, config=rec.config, source="fallback" if rec.fallback else "zero-shot",
            rationale=rec.rationale, fallback_reason=rec.fallback_reason,
            predicted=PredictedOutcome(accuracy=rec.expected_accuracy, low=rec.accuracy_interval[0],
                                       high=rec.accuracy_interval[1], seconds=rec.expected_seconds),
            llm_seconds=llm_seconds,
        )

    def _predict(self, configs: Sequence[TrainConfig]) -> list[PredictedOutcome]:
        assert self.profile is not None
        from agent.profiling import open_fields

        preds = self.metamodel.stated(self.meta, list(configs), device=self.profile["device"],
                                      open_fields=open_fields(self.profile))
        return [PredictedOutcome(**prediction_values(p)) for p in preds]

    def options(self) -> list[Option]:
        """Untried configs for the next trial, by expected gain (highest first)."""
        from tools.metamodel import Constraints

        assert self.profile is not None
        p = self.profile
        tried = self.tried()
        constraints = Constraints(budget_seconds=self.share(), device=p["device"], backbones=p.get("backbones"),
                                  modes=p.get("modes"), max_memory_bytes=p.get("max_memory_bytes"))
        retrieved = []
        if self.recommendation is not None:
            from agent.prompting import stored_records

            retrieved = stored_records(self.kb, [e.id for e in self.recommendation.evidence])
        found = self.metamodel.candidates(self.meta, constraints, retrieved=retrieved,
                                          n=N_MODEL_OPTIONS + len(self.trials))
        unique = next_configs([c.config for c in found], self.best, tried)
        if not unique:
            return []
        return rank_options(unique, self._predict([c for c, _ in unique]), self.trials, self.remaining)

    def _next(self) -> Proposal | None:
        opts = self.options()
        if not opts:
            left = f" in the remaining {duration_text(self.remaining)}" if self.remaining is not None else ""
            return self._stop(f"no untried configuration fits the constraints{left}")
        top = opts[0]
        best_val = calibration(self.trials)[1]
        if best_val is not None and top.expected_gain < self.min_gain:
            return self._stop(
                f"no expected gain: the best untried option ({config_text(top.config)}) is expected to improve the "
                f"best validation accuracy {best_val:.3f} by only {top.expected_gain:.4f} "
                f"(< min_gain {self.min_gain:g})"
            )
        choice, rationale, problem, seconds = self._ask_llm(opts)
        self._llm_seconds += seconds
        number = len(self.trials) + 1
        if choice is None:
            return Proposal(
                number=number, config=top.config, source="fallback", option=top.id,
                rationale=(f"Fallback: the option with the highest expected gain, {top.id} ({top.origin}), expected "
                           f"validation accuracy {top.expected:.3f}, gain {top.expected_gain:+.4f}."),
                fallback_reason=problem, predicted=top.predicted, expected_gain=top.expected_gain, options=opts,
                llm_seconds=seconds,
            )
        return Proposal(number=number, config=choice.config, source="llm", option=choice.id, rationale=rationale,
                        predicted=choice.predicted, expected_gain=choice.expected_gain, options=opts,
                        llm_seconds=seconds)

    def messages(self, opts: Sequence[Option]) -> list[Any]:
        """The LLM's prompt: the task, the trial history with analyses, SHAP of the best config, the options."""
        assert self.profile is not None
        best = self.best
        shap = "none (no trial succeeded yet)"
        if best is not None:
            try:
                shap = self.metamodel.explain(self.meta, best.config).text(top=3)
            except Exception as exc:  # SHAP is context for the LLM; without it the options still stand
                log.warning("SHAP for the tuning prompt failed: %s", exc)
        return tune_messages(opts, text=self.text, profile=self.profile, trials=self.trials, best=best, shap=shap,
                             remaining=self.remaining, budget_seconds=self.budget_seconds, max_trials=self.max_trials)

    def _ask_llm(self, opts: Sequence[Option]) -> tuple[Option | None, str, str | None, float]:
        """(chosen option, rationale, None) or (None, "", why the LLM's answer was not used)."""
        start = time.perf_counter()
        if self.llm is None:
            return None, "", "no chat model is configured", 0.0
        try:
            out = self.llm.with_structured_output(tune_schema(opts), include_raw=True).with_config(
                run_name="tune", tags=["tune"]).invoke(self.messages(opts))
            if isinstance(out, dict) and {"raw", "parsed"} <= out.keys():
                out = out["parsed"]
            if hasattr(out, "model_dump"):
                out = out.model_dump()
        except Exception as exc:  # the fallback below covers any failure of the model
            log.warning("tune: the LLM gave no usable answer: %s", exc)
            return None, "", f"the LLM gave no usable answer ({type(exc).__name__}: {str(exc)[:160]})", \
                time.perf_counter() - start
        seconds = time.perf_counter() - start
        assert self.profile is not None
        chosen, rationale, problem = check_choice(
            out, opts, tried=self.tried(), profile=self.profile, weights_available=self.weights_available,
            remaining=self.remaining, trials=self.trials, budget_seconds=self.budget_seconds,
            kept=self.best,
        )
        return chosen, rationale, problem, seconds

    # ---------------------------------------------------------------- running
    def decline(self, proposal: Proposal, reason: str = "not approved") -> None:
        """Record that a proposal was not approved: nothing trains, tuning stops."""
        self.pending = proposal
        self.stop_reason = f"trial {proposal.number} not approved" + (f": {reason}" if reason != "not approved" else "")

    def cancel(self) -> None:
        """Stop: cancel the running trial (recorded as cancelled) and propose nothing more."""
        self._cancelled.set()
        job = self._job
        if job is not None:
            try:
                job.cancel()
            except Exception as exc:  # the job may have ended meanwhile
                log.warning("cancel: %s", exc)

    def run(self, proposal: Proposal, on_event: Callable[[dict[str, Any]], None] | None = None) -> Trial:
        """Train an approved proposal as a job, wait for its record, analyse its log."""
        if proposal.config.key() in {t.config.key() for t in self.trials}:
            raise TuneError(f"refusing to repeat a tried configuration ({config_text(proposal.config)}).")
        emit = on_event or (lambda _e: None)
        assert self.profile is not None
        meta = self.profile["meta"]
        share = self.share()
        remaining = self.remaining
        notes = (f"metallmix tune {self.session_id}, trial {proposal.number} ({proposal.source}): {proposal.rationale}"
                 + (f" [fallback: {proposal.fallback_reason}]" if proposal.fallback_reason else ""))
        start = time.perf_counter()
        job = (self.start_job or self.parts.job_starter())(
            self.dataset, proposal.config, seed=self.seed, kb_root=getattr(self.kb, "root", None), runs=self.runs_dir,
            job_id=f"tune-{self.session_id}-t{proposal.number:02d}-{proposal.config.key()}",
            modality=None if meta["modality"] == "unknown" else meta["modality"], body_part=meta.get("body_part"),
            notes=notes[:2000],
        )
        self._job = job
        timer = None
        if remaining is not None:  # the budget is a limit: a trial that would overrun it is cancelled
            timer = threading.Timer(max(remaining, 1.0), job.cancel)
            timer.daemon = True
            timer.start()
        emit({"type": "job", "trial": proposal.number, "job_id": job.id, "run_dir": str(job.run_dir)})
        ended: dict[str, Any] = {}  # the log's end event: whether the features came from the cache

        def forward(event: dict[str, Any]) -> None:
            if event.get("event") == "end":
                ended.update(event)
            emit({"type": "train", "trial": proposal.number, **event})

        try:
            finished = drive(job, forward)
        finally:
            if timer is not None:
                timer.cancel()
            self._job = None
        record = finished.record
        seconds = round(time.perf_counter() - start, 3)
        # a trial is its proposal's plan with an outcome
        common = dict(**proposal.plan_fields(), seconds=seconds, run_dir=str(job.run_dir),
                      llm_seconds=proposal.llm_seconds)
        if record is None:
            error = finished.error
            trial = Trial(**common, status="error", error=error,
                          analysis=analyze([], status="error", seconds=seconds, error=error))
        else:
            o = record.outcome
            trial = Trial(
                **common, status=o.status, val_accuracy=o.val_accuracy, test_accuracy=o.test_accuracy,
                val_auc=o.val_auc, test_auc=o.test_auc, best_epoch=o.best_epoch, epochs_run=o.epochs_run,
                train_seconds=o.train_seconds, feature_seconds=o.feature_seconds,
                features_cached=ended.get("cache") == "hit", record_id=record.id, error=o.error,
                analysis=analyze(o.history, status=o.status, seconds=seconds, chance=self._chance(),
                                 predicted_seconds=proposal.predicted.seconds, share_seconds=share, error=o.error),
            )
            if hasattr(self.kb, "sync_index"):
                try:
                    self.kb.sync_index()
                except Exception as exc:  # the JSONL holds the record; the index re-syncs on the next search
                    log.warning("index sync failed: %s", exc)
        self.trials.append(trial)
        self.write_log()
        emit({"type": "trial", "trial": trial.number, "result": trial.model_dump(mode="json")})
        return trial

    # ---------------------------------------------------------------- results
    def result(self) -> TuneResult:
        best, why = pick(self.trials, self.n_val)
        return TuneResult(
            session_id=self.session_id, task=self.text, dataset=self.dataset, trials=list(self.trials), best=best,
            best_reason=why,
            stop_reason=self.stop_reason or "not finished", pending=self.pending, max_trials=self.max_trials,
            budget_seconds=self.budget_seconds, seconds=round(time.perf_counter() - self._started, 3),
            train_seconds=round(self.spent, 3), llm_seconds=round(self._llm_seconds, 3),
            recommendation=None if self.recommendation is None else self.recommendation.model_dump(mode="json"),
            log_path=str(self.log_path) if self.log_path else None,
        )

    @property
    def log_path(self) -> Path | None:
        root = getattr(self.kb, "root", None)
        return None if root is None else Path(root) / "tuning" / f"{self.session_id}.json"

    def write_log(self) -> None:
        """The session so far, as JSON beside the knowledge base (atomic)."""
        path = self.log_path
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            data = self.result().model_dump(mode="json")
            data.pop("recommendation", None)
            write_json(path, data)
        except OSError as exc:  # the records are in the knowledge base; the session log is a convenience
            log.warning("could not write the tuning log %s: %s", path, exc)

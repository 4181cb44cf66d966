"""`metallmix recommend`, `tune` and `export-optuna`: the agent's commands, registered into agent.cli's parser.

    metallmix recommend "skin lesion dermoscopy, 8 classes, 2,000 images, 15 minutes on a laptop CPU"
    metallmix recommend "breast ultrasound" --dataset ../shared/data/busi_ultrasound.npz --json
    metallmix recommend "breast ultrasound" --dataset D.npz --train --yes
    metallmix tune "breast ultrasound" --dataset D.npz --trials 5 --budget-minutes 10 --yes
    metallmix export-optuna "breast ultrasound" --dataset D.npz --out study.db --study-name busi --top 4

Exit codes (as for every metallmix command): 0 a recommendation was printed (a labelled
fallback included) and, with --train --yes, the training run ended ok; 1 the training run
failed or diverged; 2 bad input, or --train without --yes (nothing trains without explicit
approval); 3 the environment (knowledge base, meta-model or LLM cannot be opened);
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from agent.context import Context
from agent.errors import EXIT_FAILED, EXIT_OK, TaskError, UsageError
from agent.formatting import config_text

# agent.recommend, agent.tune and agent.optuna_export are imported inside the commands: they
# load LangGraph and Optuna (seconds), which the CLI's other commands never need.

EPILOG = (
    "exit codes: 0 recommendation printed (and, with --train --yes, the run ended ok); 1 the training run failed or "
    "diverged; 2 bad input, or --train without --yes; 3 knowledge base, meta-model or LLM unavailable; 130 interrupted."
)


def register(subparsers: Any, *, run_training_job: Callable[..., Any]) -> None:
    """Add `recommend`, `tune` and `export-optuna` to the CLI's subcommands.

    Args:
        subparsers: the CLI parser's subcommands.
        run_training_job: trains an approved config and returns its record
            (`agent.cli.run_training_job`); handed in so that this module need not import the CLI.
    """
    p = subparsers.add_parser(
        "recommend",
        help="recommend a backbone and hyperparameters for a task, with a judged rationale",
        description="Recommend a pretrained backbone and hyperparameters for an image-classification task, in seconds, "
        "without running trials. Nothing trains unless --train --yes is given.",
        epilog=EPILOG,
    )
    p.add_argument("text", nargs="?", default="",
                   help='the task in words, e.g. "skin lesion dermoscopy, 8 classes, 2,000 images, '
                        'I have 15 minutes on a laptop CPU" (may be left out with --dataset)')
    p.add_argument("--dataset", help="dataset (.npz or image folder): meta-features are computed from the data")
    p.add_argument("--budget-minutes", type=float, help="training time budget in minutes (overrides the text)")
    p.add_argument("--device", type=_device, help="device to train on (overrides the text): cpu, cuda (or gpu), "
                                                  "cpu:N for a CPU of N cores, cuda:<GPU model>")
    p.add_argument("--backbones", help="comma-separated backbones to choose from (default: all)")
    p.add_argument("--modes", help="comma-separated modes to choose from: frozen, finetune, scratch (default: all)")
    p.add_argument("--max-params", type=float, help="the most parameters the backbone may have, e.g. 5e6 (a hard limit)")
    p.add_argument("--max-model-mb", type=float, help="the largest model file in MB, float32 weights (a hard limit)")
    p.add_argument("--max-memory-gb", type=float,
                   help="the most memory a run may need in GB: RAM on a CPU, GPU memory on CUDA (a hard limit)")
    p.add_argument("--plot-dir", help="write the SHAP plot (PNG) into this folder")
    p.add_argument("--json", action="store_true", help="print the recommendation as JSON")
    p.add_argument("--train", action="store_true", help="train the recommended configuration (needs --dataset and --yes)")
    p.add_argument("--yes", action="store_true", help="approve the recommended configuration for training")
    p.add_argument("--seed", type=int, default=0, help="seed of the training run")
    p.add_argument("--quiet", action="store_true", help="no training progress bar")
    p.set_defaults(func=cmd_recommend, run_training_job=run_training_job)
    _register_tune(subparsers)


def _device(value: str) -> str:
    """A --device value as the meta-model reads it ("cpu:8" -> "cpu:8 cores"); argparse says what is wrong."""
    from tools.metamodel_types import parse_device

    try:
        return parse_device(value).label
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


def _check_request(args: argparse.Namespace) -> None:
    """What `recommend` and `export-optuna` both need: a positive budget, and a task in words or data."""
    if args.budget_minutes is not None and not args.budget_minutes > 0:
        raise UsageError(f"--budget-minutes must be > 0, but got {args.budget_minutes:g}.")
    if not args.text.strip() and not args.dataset:
        raise UsageError("describe the task in TEXT, give --dataset PATH, or both (TEXT may be left out with --dataset).")


def cmd_recommend(args: argparse.Namespace) -> int:
    """Print a recommendation; with --train --yes, train it and print the run's outcome."""
    if args.yes and not args.train:
        raise UsageError("--yes approves training, so it needs --train.")
    if args.train and not args.dataset:
        raise UsageError("--train needs --dataset PATH: training runs on real data.")
    _check_request(args)

    from agent.recommend import default_recommender, render_text

    context = Context(plot_dir=args.plot_dir) if args.plot_dir else None
    try:
        rec = default_recommender(args.kb_dir).recommend(
            args.text, dataset=args.dataset, budget_minutes=args.budget_minutes, device=args.device,
            backbones=_split(args.backbones), modes=_split(args.modes), context=context,
            max_params=args.max_params, max_model_mb=args.max_model_mb, max_memory_gb=args.max_memory_gb,
        )
    except TaskError as exc:
        raise UsageError(str(exc)) from exc
    print(rec.model_dump_json(indent=1) if args.json else render_text(rec))
    if not args.train:
        return EXIT_OK
    config_json = json.dumps(rec.config.model_dump(), separators=(",", ":"))
    if not args.yes:
        raise UsageError(
            "nothing trains without explicit approval: review the recommendation above and re-run with --train --yes, "
            f"or train exactly this configuration with:\n  metallmix train --dataset {args.dataset} --config '{config_json}' --yes"
        )
    print(f"training the approved configuration {rec.config.key()} on {args.dataset}", file=sys.stderr)
    meta = rec.profile.meta
    record = args.run_training_job(
        args.dataset, rec.config, kb_dir=args.kb_dir, seed=args.seed, progress=not args.quiet and sys.stderr.isatty(),
        modality=None if meta.modality == "unknown" else meta.modality, body_part=meta.body_part,
    )
    o = record.outcome
    summary = {"record_id": record.id, "status": o.status, "val_accuracy": o.val_accuracy,
               "test_accuracy": o.test_accuracy, "expected_accuracy": rec.expected_accuracy,
               "train_seconds": o.train_seconds, "feature_seconds": o.feature_seconds,
               "expected_seconds": rec.expected_seconds, "error": o.error}
    print(json.dumps(summary, indent=1) if args.json else "  ".join(f"{k}={v}" for k, v in summary.items() if v is not None))
    return EXIT_OK if o.status == "ok" else EXIT_FAILED


# ------------------------------------------------------------------ tune, export-optuna
TUNE_EPILOG = (
    "approval: --yes approves every trial up front (within --trials and --budget-minutes); without it, a terminal "
    "asks before each trial, and anywhere else the first proposal is printed and nothing trains. exit codes: 0 tuning "
    "ran (or nothing was approved); 1 every trial failed or diverged; 2 bad input; 3 knowledge base, meta-model or "
    "LLM unavailable; 130 interrupted (the running trial is recorded as cancelled)."
)


def _register_tune(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "tune", help="iterative mode: trials proposed from the trial history, trained after approval",
        description="Tune a task trial by trial (AgentHPO): trial 1 is the zero-shot recommendation; each next trial "
        "is proposed from the trial history, the analysis of the training logs, the meta-model and SHAP, and never "
        "repeats a tried config. Stops at --trials, at --budget-minutes, or when no untried config is expected to gain.",
        epilog=TUNE_EPILOG,
    )
    p.add_argument("text", nargs="?", default="", help="the task in words (may be left out when --dataset says enough)")
    p.add_argument("--dataset", required=True, help="dataset to train on (.npz or image folder)")
    p.add_argument("--trials", type=int, default=5, help="at most this many trials (default 5)")
    p.add_argument("--budget-minutes", type=float, help="wall time of all trials together")
    p.add_argument("--device", choices=("cpu", "cuda", "gpu"))
    p.add_argument("--backbones", help="comma-separated backbones to choose from (default: all)")
    p.add_argument("--modes", help="comma-separated modes: frozen, finetune, scratch (default: all)")
    p.add_argument("--min-gain", type=float, default=None,
                   help="stop when no untried config is expected to improve the best validation accuracy by this much "
                        "(default 0.002)")
    p.add_argument("--yes", action="store_true", help="approve every trial up front")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ray", metavar="auto|HOST:PORT", default=None,
                   help="train the trials on this Ray cluster (default $METALLMIX_RAY; unset: local jobs)")
    p.add_argument("--json", action="store_true", help="print the session as JSON")
    p.add_argument("--quiet", action="store_true", help="no per-trial progress on stderr")
    p.set_defaults(func=cmd_tune)

    p = subparsers.add_parser(
        "export-optuna", help="write the recommendation and top candidates as an Optuna study (warm start for TPE)",
        description="Recommend, then create an Optuna study whose search space is MetaLLMiX's and enqueue the "
        "recommendation and the top-K candidates as its first trials; prints how to continue with TPE.",
    )
    p.add_argument("text", nargs="?", default="", help="the task in words (may be left out with --dataset)")
    p.add_argument("--dataset", help="dataset: meta-features are computed from the data")
    p.add_argument("--out", help="a new SQLite file for the study (e.g. study.db)")
    p.add_argument("--storage", help="an Optuna storage URL instead of --out (e.g. sqlite:///study.db)")
    p.add_argument("--study-name", required=True)
    p.add_argument("--top", type=int, default=5, help="candidates enqueued after the recommendation (default 5)")
    p.add_argument("--budget-minutes", type=float, help="training time budget per trial (overrides the text)")
    p.add_argument("--device", type=_device, help="as for recommend: cpu, cuda (or gpu), cpu:N, cuda:<GPU model>")
    p.add_argument("--backbones", help="comma-separated backbones (default: all)")
    p.add_argument("--modes", help="comma-separated modes (default: all)")
    p.add_argument("--json", action="store_true", help="print what was enqueued as JSON")
    p.set_defaults(func=cmd_export_optuna)


def cmd_tune(args: argparse.Namespace) -> int:
    """Tune trial by trial; nothing trains without --yes or a per-trial yes on a terminal."""
    from agent.tune import (
        DEFAULT_MIN_GAIN,
        MAX_TRIALS,
        Proposal,
        Trial,
        TuneError,
        ask_terminal,
        render_proposal,
        render_result,
        render_trial,
        tune,
    )

    if not 1 <= args.trials <= MAX_TRIALS:
        raise UsageError(f"--trials must satisfy 1 <= trials <= {MAX_TRIALS}, but got {args.trials}.")
    if args.budget_minutes is not None and not args.budget_minutes > 0:
        raise UsageError(f"--budget-minutes must be > 0, but got {args.budget_minutes:g}.")
    min_gain = DEFAULT_MIN_GAIN if args.min_gain is None else args.min_gain
    if not 0 <= min_gain <= 1:
        raise UsageError(f"--min-gain must satisfy 0 <= min_gain <= 1, but got {min_gain:g}.")
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    approve: Any = "once" if args.yes else ask_terminal if interactive else "none"

    def on_event(event: dict[str, Any]) -> None:
        if args.quiet:
            return
        if event["type"] == "proposal" and approve == "once":  # ask_terminal shows it itself
            print(render_proposal(Proposal.model_validate(event["proposal"])), file=sys.stderr)
        elif event["type"] == "job":
            print(f"  training as job {event['job_id']} ({event['run_dir']})", file=sys.stderr)
        elif event["type"] == "train" and event.get("event") == "epoch" and sys.stderr.isatty():
            val = (event.get("val") or {}).get("accuracy")
            print(f"\r  epoch {event['epoch']}/{event.get('epochs')} loss {event.get('train_loss', float('nan')):.3f}"
                  + (f" val acc {val:.3f}" if val is not None else ""), end="", file=sys.stderr, flush=True)
        elif event["type"] == "trial":
            print(("\r\x1b[K" if sys.stderr.isatty() else "") + render_trial(Trial.model_validate(event["result"])),
                  file=sys.stderr)

    from agent.recommend import default_recommender
    from tools.ray_runner import ray_address

    start_job = None
    if args.ray is not None:  # else the parts' starter, which follows $METALLMIX_RAY
        from tools.ray_jobs import ray_job_starter

        address = ray_address(args.ray)
        if address is None:
            raise UsageError("--ray needs 'auto' or HOST:PORT of a Ray head, but got an empty value.")
        start_job = ray_job_starter(address)
    try:
        result = tune(
            args.text, dataset=args.dataset, trials=args.trials, budget_minutes=args.budget_minutes,
            approve=approve, device=args.device, backbones=_split(args.backbones), modes=_split(args.modes),
            min_gain=min_gain, seed=args.seed, recommender=default_recommender(args.kb_dir), on_event=on_event,
            start_job=start_job,
        )
    except TuneError as exc:
        raise UsageError(str(exc)) from exc
    print(result.model_dump_json(indent=1) if args.json else render_result(result))
    if not result.trials:
        if result.pending is not None and not args.json:
            print(f"\nnothing trains without explicit approval: re-run with --yes to approve up to {args.trials} "
                  "trial(s), or run it in a terminal to approve each trial.", file=sys.stderr)
        return EXIT_OK
    return EXIT_OK if result.best is not None else EXIT_FAILED


def cmd_export_optuna(args: argparse.Namespace) -> int:
    """Recommend, then write the recommendation and top-K candidates as an Optuna study."""
    from agent.optuna_export import export_study, storage_url

    if args.top < 0:
        raise UsageError(f"--top must be >= 0, but got {args.top}.")
    _check_request(args)
    try:
        storage = storage_url(args.out, args.storage)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    from agent.recommend import default_recommender

    recommender = default_recommender(args.kb_dir)
    try:
        rec = recommender.recommend(
            args.text, dataset=args.dataset, budget_minutes=args.budget_minutes, device=args.device,
            backbones=_split(args.backbones), modes=_split(args.modes),
        )
    except TaskError as exc:
        raise UsageError(str(exc)) from exc
    try:
        export = export_study(rec, storage=storage, study_name=args.study_name, top_k=args.top, dataset=args.dataset,
                              metamodel=recommender.parts.get_metamodel(), kb_dir=args.kb_dir)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.json:
        print(json.dumps({"study_name": export.study_name, "storage": export.storage, "enqueued": export.enqueued},
                         indent=1))
        return EXIT_OK
    print(f"study {export.study_name!r} in {export.storage}: {len(export.enqueued)} trial(s) enqueued")
    for e in export.enqueued:
        p = e["params"]
        print(f"  {e['origin']}: {config_text(p)} (predicted test accuracy {e['predicted_test_accuracy']:.3f})")
    print("\nContinue with TPE (the enqueued trials run first):\n")
    print(export.snippet)
    return EXIT_OK


__all__ = ["cmd_export_optuna", "cmd_recommend", "cmd_tune", "register"]

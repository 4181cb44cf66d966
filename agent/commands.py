"""`metallmix recommend`: the agent's command, registered into agent.cli's parser.

    metallmix recommend "skin lesion dermoscopy, 8 classes, 2,000 images, 15 minutes on a laptop CPU"
    metallmix recommend "breast ultrasound" --dataset ../shared/data/busi_ultrasound.npz --json
    metallmix recommend "breast ultrasound" --dataset D.npz --train --yes

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
from typing import Any

from agent.cli import EXIT_FAILED, EXIT_OK, UsageError

EPILOG = (
    "exit codes: 0 recommendation printed (and, with --train --yes, the run ended ok); 1 the training run failed or "
    "diverged; 2 bad input, or --train without --yes; 3 knowledge base, meta-model or LLM unavailable; 130 interrupted."
)


def register(subparsers: Any) -> None:
    """Add `recommend` to the CLI's subcommands."""
    p = subparsers.add_parser(
        "recommend",
        help="recommend a backbone and hyperparameters for a task, with a judged rationale",
        description="Recommend a pretrained backbone and hyperparameters for an image-classification task, in seconds, "
        "without running trials. Nothing trains unless --train --yes is given.",
        epilog=EPILOG,
    )
    p.add_argument("text", help='the task in words, e.g. "skin lesion dermoscopy, 8 classes, 2,000 images, '
                                'I have 15 minutes on a laptop CPU" (may be "" with --dataset)')
    p.add_argument("--dataset", help="dataset (.npz or image folder): meta-features are computed from the data")
    p.add_argument("--budget-minutes", type=float, help="training time budget in minutes (overrides the text)")
    p.add_argument("--device", choices=("cpu", "cuda", "gpu"), help="device to train on (overrides the text)")
    p.add_argument("--backbones", help="comma-separated backbones to choose from (default: all)")
    p.add_argument("--modes", help="comma-separated modes to choose from: frozen, finetune, scratch (default: all)")
    p.add_argument("--plot-dir", help="write the SHAP plot (PNG) into this folder")
    p.add_argument("--json", action="store_true", help="print the recommendation as JSON")
    p.add_argument("--train", action="store_true", help="train the recommended configuration (needs --dataset and --yes)")
    p.add_argument("--yes", action="store_true", help="approve the recommended configuration for training")
    p.add_argument("--seed", type=int, default=0, help="seed of the training run")
    p.add_argument("--quiet", action="store_true", help="no training progress bar")
    p.set_defaults(func=cmd_recommend)


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


def cmd_recommend(args: argparse.Namespace) -> int:
    """Print a recommendation; with --train --yes, train it and print the run's outcome."""
    if args.yes and not args.train:
        raise UsageError("--yes approves training, so it needs --train.")
    if args.train and not args.dataset:
        raise UsageError("--train needs --dataset PATH: training runs on real data.")
    if args.budget_minutes is not None and not args.budget_minutes > 0:
        raise UsageError(f"--budget-minutes must be > 0, but got {args.budget_minutes:g}.")
    if not args.text.strip() and not args.dataset:
        raise UsageError('describe the task in TEXT, give --dataset PATH, or both (TEXT may be "" with --dataset).')

    from agent.context import Context
    from agent.nodes import TaskError
    from agent.recommend import default_recommender, render_text

    context = Context(plot_dir=args.plot_dir) if args.plot_dir else None
    try:
        rec = default_recommender(args.kb_dir).recommend(
            args.text, dataset=args.dataset, budget_minutes=args.budget_minutes, device=args.device,
            backbones=_split(args.backbones), modes=_split(args.modes), context=context,
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
    from agent.cli import run_training_job

    print(f"training the approved configuration {rec.config.key()} on {args.dataset}", file=sys.stderr)
    meta = rec.profile.meta
    record = run_training_job(
        args.dataset, rec.config, kb_dir=args.kb_dir, seed=args.seed, progress=not args.quiet,
        modality=None if meta.modality == "unknown" else meta.modality, body_part=meta.body_part,
    )
    o = record.outcome
    summary = {"record_id": record.id, "status": o.status, "val_accuracy": o.val_accuracy,
               "test_accuracy": o.test_accuracy, "expected_accuracy": rec.expected_accuracy,
               "train_seconds": o.train_seconds, "feature_seconds": o.feature_seconds,
               "expected_seconds": rec.expected_seconds, "error": o.error}
    print(json.dumps(summary, indent=1) if args.json else "  ".join(f"{k}={v}" for k, v in summary.items() if v is not None))
    return EXIT_OK if o.status == "ok" else EXIT_FAILED


__all__ = ["cmd_recommend", "register"]

"""`metallmix`: the command line, a thin face over tools/, knowledge/ and the agent.

Exit codes: 0 success; 1 the work ran but failed (a failed or diverged training run);
2 bad input (a usage error, bad data, an invalid configuration); 3 the environment
(a knowledge base or model that cannot be opened); 130 interrupted.
Errors are one clear message on stderr, never a traceback (set METALLMIX_DEBUG=1 for one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent.commands import register as register_agent_commands
from agent.errors import EXIT_ENV, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError
from agent.server import register as register_server_commands
from agent.server import route as route_to_server
from knowledge.targets import TO_TARGETS_HELP

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

# The imports of knowledge/, tools/ and the graph sit inside the commands that need them, so
# that `metallmix --help` and `metallmix kb stats` start without loading torch or LangGraph.


def _kb(args: argparse.Namespace, index: bool = True) -> Any:
    from knowledge.store import open_default

    return open_default(args.kb_dir, index=index)


# ---------------------------------------------------------------------- kb commands
def cmd_kb_stats(args: argparse.Namespace) -> int:
    stats = _kb(args, index=False).stats()
    if args.json:
        print(json.dumps(stats, indent=2))
        return EXIT_OK
    print(f"records: {stats['records']} ({stats['successful']} successful)")
    for key in ("statuses", "sources", "modes", "backbones", "devices", "datasets"):
        print(f"{key}: " + ", ".join(f"{k} {v}" for k, v in stats[key].items()))
    if stats["stale"]:
        print(f"stale: {stats['stale']} runs were measured before a runner fix that changes them "
              "(knowledge/runner_revisions.py); the next sweep measures them again")
    from knowledge.store import TARGET_SHARE, TARGETS

    t = stats["training"]
    more = t["finetunes_to_target"]
    print(f"fine-tunes of a pretrained backbone: {t['finetunes']} ({t['finetune_share']:.0%} of successful runs; "
          f"target {TARGET_SHARE:.0%}: " + (f"{more} more)" if more else "met)"))
    for name, d in t["per_dataset"].items():
        short = [f"{TARGETS[k] - d[k]} {what}" for k, what in (("finetune", "fine-tunes"), ("scratch_15", "long scratch runs"))
                 if d[k] < TARGETS[k]]
        print(f"  {name}: {d['finetune']} fine-tunes ({d['partial']} partial), {d['scratch_15']} scratch runs of 15+ epochs"
              + (f"; short of the targets by {' and '.join(short)}" if short else ""))
    print(f"  (targets per dataset: {TARGETS['finetune']} fine-tunes, {TARGETS['scratch_15']} scratch runs of 15+ epochs; "
          "`metallmix kb sweep --plan cpu --to-targets` runs what is missing)")
    return EXIT_OK


def cmd_kb_sweep(args: argparse.Namespace) -> int:
    from tools.ray_runner import connect, ray_address, run_sweep_ray
    from tools.sweep import (
        dataset_sizes,
        datasets_with_heads,
        plan_stale,
        plan_sweep,
        plan_to_targets,
        plan_trainable,
        run_sweep,
    )

    if args.to_targets and args.plan not in ("cpu", "gpu"):
        raise UsageError(f"--to-targets picks from the cpu or gpu plan, but --plan is {args.plan!r}; "
                         "pass --plan cpu (or gpu on a GPU machine).")
    address = ray_address(args.ray)
    if address is not None:
        connect(address)  # no ray package, or no cluster there: said before any planning

    datasets = dataset_sizes(args.data_dir)
    if args.datasets:
        wanted = set(args.datasets)
        datasets = {p: n for p, n in datasets.items() if Path(p).stem in wanted}
        unknown = wanted - {Path(p).stem for p in datasets}
        if unknown:
            raise UsageError(f"no such dataset in {args.data_dir}: {', '.join(sorted(unknown))}")
    if not datasets:
        raise UsageError(f"no .npz datasets found in {args.data_dir}; pass --data-dir with MedMNIST-layout .npz files.")
    kb = _kb(args, index=False)
    if args.plan == "stale":
        items = [i for i in plan_stale(kb.records(), args.data_dir) if i.dataset in datasets]
    elif args.plan == "frozen":
        items = plan_sweep({p: n for p, (n, _) in datasets.items()}, heads_per_feature_set=args.heads,
                           trainable_per_dataset=args.trainable, seed=args.seed)
    else:
        items = plan_trainable(datasets, device=args.plan, seed=args.seed, known=datasets_with_heads(kb.records()))
        if args.to_targets:
            items = plan_to_targets(items, kb, datasets)
    if args.limit:
        items = items[: args.limit]
    if address is not None:  # one Ray task per run; this process alone appends the records
        stats = run_sweep_ray(items, kb, address=address, max_minutes=args.max_minutes, progress=not args.quiet)
    else:
        stats = run_sweep(items, kb, workers=args.workers, max_minutes=args.max_minutes, progress=not args.quiet)
    print(json.dumps(stats))
    return EXIT_OK


def cmd_kb_export(args: argparse.Namespace) -> int:
    n = _kb(args, index=False).export(args.path)
    print(f"exported {n} records to {args.path}")
    return EXIT_OK


def cmd_kb_import(args: argparse.Namespace) -> int:
    from knowledge.store import KnowledgeBaseError

    if not Path(args.path).is_file():
        raise UsageError(f"no such file to import: {args.path}")
    try:
        n = _kb(args).import_file(args.path)
    except KnowledgeBaseError as exc:  # an invalid file is bad input; nothing was appended
        raise UsageError(str(exc)) from exc
    print(f"imported {n} new records from {args.path}")
    return EXIT_OK


def cmd_kb_rebuild(args: argparse.Namespace) -> int:
    kb = _kb(args)
    n = kb.rebuild_index()
    where = f"collection {kb.collection_name!r} on {kb.chroma_url}" if kb.chroma_url else str(kb.root / "chroma")
    print(f"rebuilt the Chroma index ({where}) from the JSONL: {n} records")
    return EXIT_OK


def cmd_kb_search(args: argparse.Namespace) -> int:
    hits = _kb(args).search(args.text, k=args.k)
    for record, dist in hits:
        o = record.outcome
        acc = f"{o.test_accuracy:.3f}" if o.test_accuracy is not None else o.status
        print(f"{dist:.3f}  {record.id[:8]}  {record.dataset.name:24s} {record.config.backbone:20s} {record.config.mode:8s} test_acc={acc}")
    return EXIT_OK


# ----------------------------------------------------------------------- training
def _json_or_file(value: str) -> str:
    """--config's text: the value itself when it is JSON (it starts with "{"), else the file it names."""
    if value.lstrip().startswith("{"):
        return value
    try:
        return Path(value).expanduser().read_text()
    except OSError as exc:
        raise UsageError(f"--config must be a JSON object or a JSON file, but {value[:80]!r} is neither "
                         f"({exc.strerror or exc}).") from exc


def _config_from_args(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from knowledge.schema import TrainConfig

    data: dict[str, Any] = {}
    if args.config:
        text = _json_or_file(args.config)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--config must be a JSON object or a JSON file: {exc}") from exc
        if not isinstance(data, dict):
            raise UsageError("--config must be a JSON object, e.g. '{\"backbone\": \"efficientnet_lite0\", \"mode\": \"frozen\"}'.")
    for field in ("backbone", "mode", "input_size", "optimizer", "learning_rate", "batch_size", "epochs",
                  "weight_decay", "dropout", "scheduler", "augmentation", "label_smoothing"):
        value = getattr(args, field, None)
        if value is not None:
            data[field] = value
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise UsageError("invalid training configuration: " + "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from exc


def run_training_job(dataset: str, config: Any, *, kb_dir: str | None, seed: int, progress: bool,
                     modality: str | None = None, body_part: str | None = None) -> Any:
    """Start a training job for an approved config, stream its progress, return its record."""
    from knowledge.store import open_default
    from tools.jobs import Job, failure_text

    kb = open_default(kb_dir, index=False)
    job = Job.start(dataset, config, seed=seed, kb_root=kb.root, modality=modality, body_part=body_part)
    print(f"job {job.id}: run folder {job.run_dir}", file=sys.stderr)
    record = job.wait(progress=progress)
    if record is None:
        raise UsageError(failure_text(job.run_dir))
    return record


def cmd_train(args: argparse.Namespace) -> int:
    config = _config_from_args(args)
    if not args.yes:
        raise UsageError(
            "nothing trains without explicit approval: review the configuration below and re-run with --yes.\n"
            + json.dumps(config.model_dump(), indent=1)
        )
    _check_dataset(args.dataset)
    record = run_training_job(args.dataset, config, kb_dir=args.kb_dir, seed=args.seed, progress=not args.quiet and sys.stderr.isatty(),
                              modality=args.modality, body_part=args.body_part)
    o = record.outcome
    summary = {"record_id": record.id, "status": o.status, "val_accuracy": o.val_accuracy, "test_accuracy": o.test_accuracy,
               "test_auc": o.test_auc, "test_f1": o.test_f1, "train_seconds": o.train_seconds,
               "feature_seconds": o.feature_seconds, "device": o.device, "error": o.error}
    print(json.dumps(summary, indent=1) if args.json else "  ".join(f"{k}={v}" for k, v in summary.items() if v is not None))
    return EXIT_OK if o.status == "ok" else EXIT_FAILED


def _check_dataset(path: str) -> None:
    from tools.datasets import DatasetError, load_dataset

    try:
        load_dataset(path)
    except DatasetError as exc:
        raise UsageError(str(exc)) from exc


def cmd_profile(args: argparse.Namespace) -> int:
    from tools.datasets import DatasetError, profile_dataset

    try:
        meta = profile_dataset(args.dataset, modality=args.modality, body_part=args.body_part)
    except DatasetError as exc:
        raise UsageError(str(exc)) from exc
    print(meta.model_dump_json(indent=1))
    return EXIT_OK


# -------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metallmix", description=__doc__.split("\n")[0])
    parser.add_argument("--kb-dir", default=None, help="knowledge base folder (default $METALLMIX_KB or ~/.metallmix/kb)")
    sub = parser.add_subparsers(dest="command", required=True)

    kb = sub.add_parser("kb", help="the knowledge base of past experiments").add_subparsers(dest="kb_command", required=True)
    p = kb.add_parser("stats", help="counts of records, datasets, backbones, modes, statuses, sources")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_kb_stats)
    p = kb.add_parser("sweep", help="run a resumable sweep over datasets x search space and append the records")
    p.add_argument("--data-dir", default=os.environ.get("METALLMIX_DATA", "../shared/data"))
    p.add_argument("--datasets", nargs="*", help="dataset names (file stems) to include; default all")
    p.add_argument("--plan", choices=("frozen", "cpu", "gpu", "stale"), default="frozen",
                   help="frozen: heads on cached features (the first seed); cpu: partial/full fine-tunes and scratch "
                        "runs, cheapest first, for background CPU time; gpu: the same, larger, for a GPU machine; "
                        "stale: this knowledge base's sweep runs measured before a runner fix that changes them, "
                        "measured again, cheapest first")
    p.add_argument("--heads", type=int, default=55, help="frozen plan: head configs per (dataset, feature set)")
    p.add_argument("--trainable", type=int, default=6, help="frozen plan: scratch/fine-tune configs per dataset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--to-targets", action="store_true", help=TO_TARGETS_HELP)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="run at most this many planned items")
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--ray", metavar="auto|HOST:PORT", default=None,
                   help="run each training run as a task on this Ray cluster (default $METALLMIX_RAY; unset: "
                        "--workers local processes)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_kb_sweep)
    p = kb.add_parser("export", help="write every record to a .jsonl or .csv file")
    p.add_argument("path")
    p.set_defaults(func=cmd_kb_export)
    p = kb.add_parser("import", help="validate and append records from a .jsonl or .csv file")
    p.add_argument("path")
    p.set_defaults(func=cmd_kb_import)
    p = kb.add_parser("rebuild", help="rebuild the Chroma index from the JSONL")
    p.set_defaults(func=cmd_kb_rebuild)
    p = kb.add_parser("search", help="the past experiments nearest to a text")
    p.add_argument("text")
    p.add_argument("-k", type=int, default=10)
    p.set_defaults(func=cmd_kb_search)

    p = sub.add_parser("profile", help="meta-features of a dataset")
    p.add_argument("dataset")
    p.add_argument("--modality")
    p.add_argument("--body-part")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("train", help="train one configuration as a job (needs --yes)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--config", help="JSON object or JSON file; flags below override its fields")
    for name, typ in (("backbone", str), ("mode", str), ("input-size", int), ("optimizer", str), ("learning-rate", float),
                      ("batch-size", int), ("epochs", int), ("weight-decay", float), ("dropout", float),
                      ("scheduler", str), ("augmentation", str), ("label-smoothing", float)):
        p.add_argument(f"--{name}", type=typ, dest=name.replace("-", "_"))
    p.add_argument("--modality")
    p.add_argument("--body-part")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--yes", action="store_true", help="approve this exact configuration for training")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    # The agent's commands (recommend, tune, export-optuna) train through this module's
    # run_training_job, handed in here (read each time the parser is built, so a test can
    # replace it).
    register_agent_commands(sub, run_training_job=run_training_job)
    register_server_commands(sub, run_cli=lambda argv: main(argv))  # serve, warm, and recommend --server
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage message
        return EXIT_USAGE if exc.code else EXIT_OK
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        # `recommend` answers through a warm server when one runs or may start (agent.server).
        routed = route_to_server(args, sys.argv[1:] if argv is None else argv)
        if routed is not None:
            return routed
        return func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # the last line of defence: a message, not a traceback
        if os.environ.get("METALLMIX_DEBUG"):
            raise
        from knowledge.store import KnowledgeBaseError
        from tools.datasets import DatasetError

        if isinstance(exc, DatasetError | ValueError):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        kind = "knowledge base" if isinstance(exc, KnowledgeBaseError) else type(exc).__name__
        print(f"error ({kind}): {exc}", file=sys.stderr)
        return EXIT_ENV


__all__ = ["EXIT_ENV", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main",
           "run_training_job"]

if __name__ == "__main__":
    sys.exit(main())

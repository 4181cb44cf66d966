"""The knowledge-base tab: the counts, the runs table with its filters, and the best run per dataset.

Plain functions over a knowledge base (`knowledge.store`'s `stats()` and `records()`), so
the screen only lays them out.
"""

from __future__ import annotations

from typing import Any

from agent.formatting import config_text

KB_COLUMNS = ["id", "dataset", "modality", "backbone", "mode", "optimizer", "learning rate", "batch", "epochs",
              "input", "status", "val acc", "test acc", "seconds", "source", "date"]
BEST_COLUMNS = ["dataset", "runs", "best test acc", "backbone", "mode", "configuration", "seconds", "record"]
# What each column of the two tables means: every name of KB_COLUMNS and BEST_COLUMNS is explained here.
COLUMN_NOTES = {
    "id": "the record's id (first 12 characters)",
    "record": "the best run's record id (first 12 characters)",
    "dataset": "the dataset the run trained on",
    "modality": "its imaging modality",
    "backbone": "the network",
    "mode": "frozen (a head on fixed features), partial or full fine-tuning, or scratch (random init)",
    "optimizer": "the optimizer",
    "learning rate": "its learning rate",
    "batch": "images per step",
    "epochs": "epochs asked for",
    "input": "input size in pixels",
    "status": "ok, diverged, failed or cancelled",
    "val acc": "accuracy on the dataset's validation split (0-1)",
    "test acc": "accuracy on its held-out test split (0-1), what recommendations are scored on",
    "best test acc": "the highest test accuracy among the dataset's successful runs",
    "runs": "all runs recorded on that dataset, any status",
    "configuration": "the best run's configuration (backbone/mode, size when not 64 px, optimizer, lr, bs, ep)",
    "seconds": "the run's training time including feature caching, on the machine it ran on",
    "source": "where the record comes from: the sweep, a user's run, or the literature",
    "date": "when it was recorded (UTC)",
}


def kb_counts_md(kb: Any) -> str:
    """Counts of the knowledge base, in Markdown."""
    s = kb.stats()

    def line(key: str) -> str:
        return ", ".join(f"{k} {v}" for k, v in s[key].items()) or "none"

    return (f"**{s['records']} runs** ({s['successful']} successful) on **{len(s['datasets'])} datasets**.\n\n"
            f"- statuses: {line('statuses')}\n- modes: {line('modes')}\n- backbones: {line('backbones')}\n"
            f"- sources: {line('sources')}\n- devices: {line('devices')}\n\n" + columns_md())


def columns_md() -> str:
    """What each column of the runs table and of the best-per-dataset table means."""
    names = list(dict.fromkeys([*KB_COLUMNS, *BEST_COLUMNS]))
    return "*Columns:* " + "; ".join(f"**{n}** {COLUMN_NOTES[n]}" for n in names) + "."


def kb_filters(kb: Any) -> dict[str, list[str]]:
    """The values each filter of the runs table can take."""
    recs = kb.records()
    return {
        "dataset": sorted({r.dataset.name for r in recs}),
        "backbone": sorted({r.config.backbone for r in recs}),
        "mode": sorted({r.config.mode for r in recs}),
        "status": sorted({r.outcome.status for r in recs}),
    }


def kb_rows(kb: Any, *, dataset: str | None = None, backbone: str | None = None, mode: str | None = None,
            status: str | None = None, limit: int = 2000) -> list[list[Any]]:
    """Runs matching the filters ("all" or None matches anything), newest first."""
    def keep(value: str, wanted: str | None) -> bool:
        return not wanted or wanted == "all" or value == wanted

    out = []
    for r in sorted(kb.records(), key=lambda r: r.provenance.date, reverse=True):
        c, o = r.config, r.outcome
        if not (keep(r.dataset.name, dataset) and keep(c.backbone, backbone) and keep(c.mode, mode)
                and keep(o.status, status)):
            continue
        out.append([r.id[:12], r.dataset.name, r.dataset.meta.modality, c.backbone, c.mode, c.optimizer, c.learning_rate,
                    c.batch_size, c.epochs, c.input_size, o.status,
                    None if o.val_accuracy is None else round(o.val_accuracy, 4),
                    None if o.test_accuracy is None else round(o.test_accuracy, 4), round(o.total_seconds, 1),
                    r.provenance.source, r.provenance.date.strftime("%Y-%m-%d %H:%M")])
        if len(out) >= limit:
            break
    return out


def kb_best_rows(kb: Any) -> list[list[Any]]:
    """Per dataset, the successful run with the highest test accuracy."""
    best: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for r in kb.records():
        counts[r.dataset.name] = counts.get(r.dataset.name, 0) + 1
        acc = r.outcome.test_accuracy
        if r.outcome.status != "ok" or acc is None:
            continue
        if r.dataset.name not in best or acc > best[r.dataset.name].outcome.test_accuracy:
            best[r.dataset.name] = r
    rows = []
    for name in sorted(counts):
        r = best.get(name)
        if r is None:
            rows.append([name, counts[name], None, "", "", "no successful run", None, ""])
            continue
        rows.append([name, counts[name], round(r.outcome.test_accuracy, 4), r.config.backbone, r.config.mode,
                     config_text(r.config), round(r.outcome.total_seconds, 1), r.id[:12]])
    return rows


__all__ = ["BEST_COLUMNS", "COLUMN_NOTES", "KB_COLUMNS", "columns_md", "kb_best_rows", "kb_counts_md", "kb_filters", "kb_rows"]

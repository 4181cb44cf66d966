"""The chat window's adapter over the compiled graph, apart from any screen layout.

The checkpointer is the source of truth of a thread: the conversation shown is rebuilt
from the thread's checkpoint history (each checkpoint is one finished node), so a page
reload or an app restart shows the same conversation and a pending approval is still
pending. The one thing the graph state has no place for, follow-up questions and their
answers, is kept in a side table (`Transcript`) anchored to the checkpoint that was
current when the question was asked.

Graph runs execute in a background thread per request (`LiveRun`), so a closed browser
tab does not stop a training run; any page of that thread can attach to it again. Every
public method returns or yields a `ChatView`: plain messages (Gradio's messages format:
dicts with `role`, `content`, optional `metadata` for collapsible "thoughts") and the
state of the approval and of training.

    adapter = ChatAdapter(graph, kb=kb, metamodel=lambda: nodes.metamodel, context=ctx)
    for view in adapter.submit(thread_id, "chest x-ray, 2 classes, 5,000 images, 10 minutes"):
        show(view.messages)
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import sqlite3
import threading
import time
import uuid
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent.context import Context
from agent.followup import (
    FollowupAnswer,
    answer_followup,
    detect_intent,
    parse_changes,
)
from agent.formatting import accuracy_text, config_text, duration_text, interval_text, markdown_table
from agent.recommendation import Recommendation
from agent.tune import TuneError, Tuner
from agent.tune_chat import TuneSession, parse_tune_command
from agent.views import Observed, TrainingView

log = logging.getLogger(__name__)

NODE_LABELS = {
    "profile": "Profiling the task",
    "retrieve": "Searching similar past experiments",
    "explain": "Scoring candidates with the meta-model",
    "reason": "Asking the LLM for a recommendation",
    "judge": "Judging the draft",
    "respond": "Writing the recommendation",
    "approve": "Waiting for your approval",
    "train": "Training",
    "record": "Recording the run in the knowledge base",
}
TERMINAL = ("ok", "diverged", "failed", "cancelled", "error")
MAX_ZIP_FILES = 200_000
MAX_ZIP_BYTES = 4 * 1024**3
# Image files are compressed already (a folder of PNG/JPEG zips at ~1:1); an archive that
# unpacks to more than this many times its packed size, beyond a few MiB, is a zip bomb.
MAX_ZIP_RATIO = 100
ZIP_RATIO_FREE_BYTES = 64 * 1024**2
_APPROVE = re.compile(r"^\s*(?:yes|y|yep|yeah|ok|okay|sure|approved?|go(?: ahead)?|do it|train(?: it)?|"
                      r"start(?: training)?|lgtm|sounds good|let'?s go)\b[^?]*$", re.I)
_REJECT = re.compile(r"^\s*(?:no|nope|reject(?:ed)?|don'?t|do not|not now|never ?mind)\b[^?]*$", re.I)
_USE_IT = re.compile(r"^\s*(?:ok,? |yes,? )?(?:use|take|adopt|apply|offer) (?:it|that|this)\b", re.I)
_QUESTION_START = re.compile(r"^\s*(?:why|what|how|which|show|compare|can|could|should|would|is|are|does|do)\b", re.I)
_TASK_FIELDS = {"modality", "body_part", "n_classes", "n_instances", "resolution"}


# ------------------------------------------------------------------------------ views
@dataclass
class ChatView:
    """Everything the chat screen shows for one thread.

    Attributes:
        thread_id: the conversation's thread id.
        messages: the conversation in Gradio's messages format (plain dicts).
        offer: the configuration awaiting approval (the interrupt's payload), or None.
        training: the latest training run of the thread (live or finished), or None.
        busy: whether a graph run of this thread is in progress.
        stalled: the thread stopped inside training (the app was restarted): `reattach` resumes it.
        notice: a short status line (e.g. why a message was not acted on).
    """

    thread_id: str
    messages: list[dict[str, Any]]
    offer: dict[str, Any] | None = None
    training: TrainingView | None = None
    busy: bool = False
    stalled: bool = False
    notice: str | None = None


# --------------------------------------------------------------------------- helpers
class JobRegistry:
    """Starts training jobs for the graph and keeps them by id, so the screen can cancel one.

    Args:
        start_job: the job starter (`tools.jobs.Job.start`'s signature); None means Job.start.
    """

    def __init__(self, start_job: Callable[..., Any] | None = None) -> None:
        self._start = start_job
        self._jobs: dict[str, Any] = {}
        self._lock = threading.Lock()

    def start(self, dataset: str, config: Any, **kwargs: Any) -> Any:
        """Start (or re-attach to) a job; same signature as `tools.jobs.Job.start`."""
        if self._start is None:
            from tools.jobs import Job

            self._start = Job.start
        job = self._start(dataset, config, **kwargs)
        with self._lock:
            self._jobs[str(job.id)] = job
        return job

    def get(self, job_id: str) -> Any | None:
        with self._lock:
            return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> bool:
        """Ask a job to stop; False when this process does not hold the job's worker."""
        job = self.get(job_id)
        if job is None or getattr(job, "proc", "absent") is None:
            return False
        job.cancel()
        return True


class Transcript:
    """Follow-up questions and answers per thread, in SQLite beside the checkpoints.

    Args:
        path: the SQLite file (the checkpointer's file is fine: this uses its own table);
            None keeps them in memory.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self._conn = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._conn:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS ui_followups (seq INTEGER PRIMARY KEY AUTOINCREMENT, thread_id TEXT NOT NULL, "
                "anchor TEXT, question TEXT NOT NULL, answer TEXT NOT NULL, created REAL NOT NULL)"
            )
            self._conn.execute("CREATE INDEX IF NOT EXISTS ui_followups_thread ON ui_followups (thread_id, seq)")

    def add(self, thread_id: str, anchor: str | None, question: str, answer: dict[str, Any]) -> None:
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT INTO ui_followups (thread_id, anchor, question, answer, created) VALUES (?, ?, ?, ?, ?)",
                (thread_id, anchor, question, json.dumps(answer, default=str), time.time()),
            )

    def entries(self, thread_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT anchor, question, answer FROM ui_followups WHERE thread_id = ? ORDER BY seq", (thread_id,)
            ).fetchall()
        return [{"anchor": a, "question": q, "answer": json.loads(ans)} for a, q, ans in rows]

    def close(self) -> None:
        self._conn.close()


class LiveRun(Observed):
    """One graph run of a thread in a background thread, observed by any number of pages."""

    def __init__(self, thread_id: str, kind: str, request: str | None, base_checkpoint: str | None) -> None:
        super().__init__()
        self.thread_id = thread_id
        self.kind = kind
        self.request = request
        self.base_checkpoint = base_checkpoint
        self.training: TrainingView | None = None
        self.error: str | None = None


def learning_curve_figure(history: list[dict[str, Any]], title: str = "") -> Any:
    """A matplotlib figure: validation accuracy (left) and losses (right) per epoch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 2.8), dpi=100)
    FigureCanvasAgg(fig)
    ax_acc, ax_loss = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]

    def series(key: str) -> tuple[list[int], list[float]]:
        pts = [(h["epoch"], h[key]) for h in history if h.get(key) is not None]
        return [p[0] for p in pts], [float(p[1]) for p in pts]

    x, y = series("val_accuracy")
    ax_acc.plot(x, y, marker="o", color="#2e7d32", label="val accuracy")
    ax_acc.set_ylim(0, 1)
    ax_acc.set_title("validation accuracy", fontsize=10)
    for key, colour in (("train_loss", "#1565c0"), ("val_loss", "#c62828")):
        x, y = series(key)
        if x:
            ax_loss.plot(x, y, marker="o", color=colour, label=key.replace("_", " "))
    ax_loss.set_title("loss", fontsize=10)
    for ax in (ax_acc, ax_loss):
        ax.set_xlabel("epoch")
        if epochs:
            ax.set_xlim(0.5, max(epochs) + 0.5)
            ax.set_xticks(sorted(set(epochs)))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_learning_curve(history: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Write the learning-curve figure as a PNG (atomically) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.png")
    learning_curve_figure(history, title).savefig(tmp, format="png")
    tmp.replace(path)
    return path


def read_job_log(run_dir: str | Path) -> TrainingView:
    """A finished (or running) job's view, rebuilt from its run folder's log."""
    view = TrainingView(job_id=Path(run_dir).name, run_dir=str(run_dir))
    path = Path(run_dir) / "log.jsonl"
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            try:
                view.apply(json.loads(line))
            except (json.JSONDecodeError, TypeError, ValueError):
                break  # a torn last line of a killed worker
    return view


def prepare_dataset(upload: str | Path, uploads_dir: str | Path) -> str:
    """Copy an uploaded .npz, or safely unpack an uploaded .zip of an image folder, into `uploads_dir`.

    Returns:
        The dataset path to give the graph (a file, or the unpacked folder).

    Raises:
        ValueError: not a .npz or .zip, an unsafe or too large archive (the message says why).
    """
    src = Path(upload)
    root = Path(uploads_dir)
    root.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with src.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", src.stem).strip("._")[:60] or "dataset"
    name = f"{stem}-{digest.hexdigest()[:8]}"
    suffix = src.suffix.lower()
    if suffix == ".npz":
        dest = root / f"{name}.npz"
        if not dest.exists():
            tmp = dest.with_name(dest.name + ".tmp")
            shutil.copyfile(src, tmp)
            tmp.replace(dest)
        return str(dest)
    if suffix != ".zip":
        raise ValueError(f"an upload must be a .npz file or a .zip of an image folder, but got {src.name!r}.")
    dest = root / name
    if not dest.exists():
        tmp = root / f".{name}.{uuid.uuid4().hex[:6]}"
        try:
            with zipfile.ZipFile(src) as z:
                infos = z.infolist()
                unpacked = sum(i.file_size for i in infos)
                if len(infos) > MAX_ZIP_FILES or unpacked > MAX_ZIP_BYTES:
                    raise ValueError(f"the zip holds more than {MAX_ZIP_FILES} files or {MAX_ZIP_BYTES >> 30} GiB; "
                                     "upload a smaller dataset or put it in an allowed data folder on the server.")
                packed = sum(i.compress_size for i in infos)
                if unpacked > ZIP_RATIO_FREE_BYTES and unpacked > MAX_ZIP_RATIO * max(packed, 1):
                    raise ValueError(f"the zip unpacks to {unpacked / 2**20:,.0f} MiB from {packed / 2**20:,.1f} MiB "
                                     f"(more than {MAX_ZIP_RATIO}x): that is a zip bomb, not a folder of images; "
                                     "refusing it.")
                for info in infos:
                    target = (tmp / info.filename).resolve()
                    if not target.is_relative_to(tmp.resolve()) or info.filename.startswith("/"):
                        raise ValueError(f"the zip entry {info.filename!r} points outside the archive; refusing it.")
                z.extractall(tmp)
        except zipfile.BadZipFile as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ValueError(f"{src.name} is not a readable zip archive ({exc}).") from exc
        except ValueError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        tmp.rename(dest)
    entries = [p for p in dest.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    if len(entries) == 1 and entries[0].is_dir():
        return str(entries[0])  # a zip of one folder: the dataset is that folder
    return str(dest)


def _error_text(error: str) -> str:
    """The message of a stored task error ("TaskError('...')" -> "...")."""
    m = re.match(r"^(\w+)\((['\"])(.*)\2\)$", error.strip(), re.S)
    if not m:
        return error
    kind, text = m.group(1), m.group(3).replace("\\'", "'").replace('\\"', '"')
    return text if kind in ("TaskError", "ValueError") else f"{kind}: {text}"


def _thought(title: str, content: str, *, duration: float | None = None, pending: bool = False,
             log_line: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"title": title, "status": "pending" if pending else "done"}
    if duration is not None:
        meta["duration"] = round(float(duration), 2)
    if log_line:
        meta["log"] = log_line
    return {"role": "assistant", "content": content or " ", "metadata": meta}


def _say(content: str) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def _user(content: str) -> dict[str, Any]:
    return {"role": "user", "content": content}


def _image(path: str, alt: str) -> dict[str, Any]:
    return {"role": "assistant", "content": {"path": path, "alt_text": alt}}


# ------------------------------------------------------------------------- rendering
def _profile_md(p: dict[str, Any]) -> tuple[str, str]:
    m = p["meta"]
    body = f" {m['body_part']}" if m.get("body_part") else ""
    title = (f"Profile: {m['modality']}{body}, {m['n_classes']} classes, {m['n_instances']:,} images"
             f" (from the {p['source']})")
    rows = [["modality", f"{m['modality']}{body}"], ["classes", m["n_classes"]], ["images", f"{m['n_instances']:,}"],
            ["resolution", f"{m['resolution']} px, {'RGB' if m['channels'] == 3 else 'grey'}"],
            ["imbalance (largest/smallest)", f"{m['imbalance_ratio']:.2f}"], ["class entropy", f"{m['class_entropy']:.2f}"],
            ["budget", duration_text(p["budget_seconds"]) if p.get("budget_seconds") else "none given"],
            ["device", p.get("device")]]
    if p.get("dataset_name"):
        rows.insert(0, ["dataset", p["dataset_name"]])
    if p.get("backbones"):
        rows.append(["allowed backbones", ", ".join(p["backbones"])])
    if p.get("modes"):
        rows.append(["allowed modes", ", ".join(p["modes"])])
    text = markdown_table(["meta-feature", "value"], rows)
    if p.get("assumed"):
        text += "\n\n**Assumed (not stated):** " + ", ".join(p["assumed"])
    for note in p.get("notes") or []:
        text += f"\n\nNote: {note}"
    return title, text


def _evidence_md(evidence: list[dict[str, Any]]) -> tuple[str, str]:
    if not evidence:
        return "Similar past runs: none found", "The knowledge base returned no similar runs."
    rows = [[e["alias"], e["dataset"], config_text(e["config"]), e["status"],
             "" if e.get("test_accuracy") is None else f"{e['test_accuracy']:.3f}", duration_text(e.get("seconds")),
             f"{e.get('distance', 0):.3f}"] for e in evidence]
    return (f"Retrieved {len(evidence)} similar past runs",
            markdown_table(["run", "dataset", "configuration", "status", "test acc", "time", "distance"], rows))


def _candidates_md(candidates: list[dict[str, Any]], explanation: dict[str, Any] | None) -> tuple[str, str]:
    rows = [[c["id"], config_text(c["config"]), f"{c['accuracy']:.3f} ({c['low']:.2f}-{c['high']:.2f})",
             duration_text(c["seconds"]), c.get("support", 0), "over budget" if c.get("over_budget") else ""]
            for c in candidates]
    text = markdown_table(["id", "configuration", "predicted test acc", "predicted time", "past runs", ""], rows)
    if explanation and explanation.get("text"):
        text += f"\n\n**SHAP of {explanation.get('candidate', 'c1')}:**\n\n" + "\n".join(
            f"- {line.lstrip('- ')}" for line in explanation["text"].splitlines())
    best = candidates[0] if candidates else None
    title = f"Meta-model: {len(candidates)} candidates" + (
        f", best {best['config']['backbone']}/{best['config']['mode']} at {best['accuracy']:.2f}" if best else "")
    return title, text


def _draft_md(draft: dict[str, Any] | None, error: str | None, attempt: int) -> tuple[str, str]:
    if draft is None:
        return f"LLM draft {attempt}: no usable answer", f"The LLM gave no usable answer: {error or 'unknown error'}"
    title = (f"LLM draft {attempt}: {draft.get('backbone')}/{draft.get('mode')} lr={draft.get('learning_rate')} "
             f"bs={draft.get('batch_size')} ep={draft.get('epochs')}")
    text = (f"Starts from **{draft.get('candidate')}**, expects test accuracy {draft.get('expected_accuracy')}, "
            f"cites {', '.join(draft.get('cite') or []) or 'nothing'}.\n\n> {draft.get('rationale', '')}")
    return title, text


def _verdict_md(v: dict[str, Any]) -> tuple[str, str]:
    state = "passed" if v.get("passed") else "failed"
    title = f"Judge: draft {v.get('attempt')} {state} ({v.get('judged_by')})"
    rows = [[c["name"], "✓" if c["ok"] else "✗", c.get("message") or ""] for c in v.get("checks") or []]
    text = markdown_table(["check", "", "message"], rows) if rows else ""
    if v.get("scores"):
        text += "\n\nLLM judge scores: " + ", ".join(f"{k} {s}/5" for k, s in v["scores"].items())
    if v.get("critique"):
        text += f"\n\nCritique: {v['critique']}"
    if v.get("judge_error"):
        text += f"\n\nThe LLM judge gave no verdict ({v['judge_error']}); the checks decided."
    return title, text


def card_md(rec: dict[str, Any], offer: dict[str, Any] | None) -> str:
    """The recommendation card: what to train, what to expect, why, and how to answer."""
    c = rec["config"]
    head = f"### Recommendation: {c['backbone']}, {c['mode']}"
    head += f" (pretrained: {rec['weights']})" if rec.get("pretrained") else " (random init)"
    lines = [head]
    if rec.get("fallback"):
        lines.append(f"> **Fallback:** the meta-model's best candidate, because {rec.get('fallback_reason')}")
    rows = [["optimizer", c["optimizer"]], ["learning rate", f"{c['learning_rate']:g}"], ["batch size", c["batch_size"]],
            ["epochs", c["epochs"]], ["input size", f"{c['input_size']} px"], ["weight decay", f"{c['weight_decay']:g}"],
            ["dropout", f"{c['dropout']:g}"], ["scheduler", c["scheduler"]], ["augmentation", c["augmentation"]],
            ["label smoothing", f"{c['label_smoothing']:g}"]]
    if c.get("freeze"):
        rows.append(["frozen share of the backbone", f"{c['freeze']:g}"])
    lines.append(markdown_table(["hyperparameter", "value"], rows))
    low, high = rec["accuracy_interval"]
    lines.append(f"**Expected test accuracy {rec['expected_accuracy']:.2f}** ({interval_text(low, high)}); "
                 f"**expected training time {duration_text(rec['expected_seconds'])}** on {rec['profile']['device']}.")
    lines.append(f"**Why:** {rec['rationale']}")
    cited = [e for e in rec.get("evidence") or [] if e.get("cited")]
    if cited:
        lines.append("**Evidence:** " + "; ".join(
            f"{e['alias']} {e['dataset']} {e['summary']} → "
            + (f"test {e['test_accuracy']:.2f}" if e.get("test_accuracy") is not None else e["status"]) for e in cited))
    for w in rec.get("warnings") or []:
        lines.append(f"⚠ {w}")
    v = rec.get("verdict") or {}
    lines.append(f"Judge: {'passed' if v.get('passed') else 'failed'} on draft {v.get('attempts')} ({v.get('judged_by')}). "
                 f"Answered in {sum(x for k, x in (rec.get('timings') or {}).items() if k != 'total'):.1f} s.")
    if offer is not None:
        lines.append(_offer_hint(offer))
    return "\n\n".join(lines)


def _offer_hint(offer: dict[str, Any]) -> str:
    where = f" on `{Path(offer['dataset']).name}`" if offer.get("dataset") else " (give a dataset to train on)"
    return (f"Nothing trains without your approval{where}: **Approve**, **Edit** (e.g. `epochs=5`) or **Reject** below, "
            "or reply *yes* / *no* / *epochs=5*. Ask *why this learning rate?*, *what if I only have 10 minutes?*, "
            "*what about resnet18?* or *show similar experiments* any time.")


def _offer_md(offer: dict[str, Any], previous: dict[str, Any] | None) -> str:
    p = offer.get("prediction") or {}
    changed = ""
    if previous and previous.get("config"):
        diffs = [f"{k} {previous['config'].get(k)} → {v}" for k, v in offer["config"].items()
                 if previous["config"].get(k) != v]
        changed = " (" + ", ".join(diffs) + ")" if diffs else ""
    text = (f"**Edited offer{changed}:** {config_text(offer['config'])}: predicted test accuracy "
            f"{accuracy_text(p.get('accuracy', float('nan')), p.get('low', float('nan')), p.get('high', float('nan')))} in "
            f"{duration_text(p.get('seconds'))}.")
    for w in offer.get("warnings") or []:
        text += f"\n\n⚠ {w}"
    return text + "\n\n" + _offer_hint(offer)


def _followup_messages(entry: dict[str, Any]) -> list[dict[str, Any]]:
    a = entry["answer"]
    out = [_user(entry["question"])]
    if a.get("kind") == "note":
        out.append(_say(a["text"]))
        return out
    if a.get("kind") == "tune":  # a finished tuning session (agent.tune_chat): its messages as streamed
        out += [m for m in a.get("messages") or [] if isinstance(m, dict) and "content" in m]
        return out
    answer = FollowupAnswer(**{k: v for k, v in a.items() if k in FollowupAnswer.__dataclass_fields__})
    out.append(_say(answer.markdown()))
    if answer.plot and Path(answer.plot).is_file():
        out.append(_image(answer.plot, "SHAP plot of the configuration discussed"))
    return out


class ThreadRenderer:
    """Turns a thread's checkpoint history (oldest first) into chat messages."""

    def __init__(self, plot_dir: str | None) -> None:
        self.plot_dir = plot_dir

    def render(self, snapshots: list[Any], followups: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        """Messages, and the checkpoint ids in order (to anchor follow-ups)."""
        messages: list[dict[str, Any]] = []
        ids: list[str] = []
        by_anchor: dict[str | None, list[dict[str, Any]]] = {}
        for entry in followups:
            by_anchor.setdefault(entry["anchor"], []).append(entry)
        for entry in by_anchor.pop(None, []):
            messages += _followup_messages(entry)
        for i, snap in enumerate(snapshots):
            cid = snap.config["configurable"]["checkpoint_id"]
            ids.append(cid)
            if i > 0:
                prev = snapshots[i - 1]
                for node in prev.next:
                    messages += self._after(node, prev.values, snap)
            for task in snap.tasks:
                if task.error:
                    messages.append(_say(f"⚠ **I could not finish this request:** {_error_text(str(task.error))}"))
            for entry in by_anchor.pop(cid, []):
                messages += _followup_messages(entry)
        for entries in by_anchor.values():  # anchors from a forked history: keep them, at the end
            for entry in entries:
                messages += _followup_messages(entry)
        return messages, ids

    def _after(self, node: str, before: dict[str, Any], snap: Any) -> list[dict[str, Any]]:
        """Messages for `node` having run: `before` is the state before it, `snap` the checkpoint after."""
        v = snap.values
        timings = v.get("timings") or {}
        if node == "__start__":
            text = v.get("task") or ""
            extra = []
            if v.get("dataset"):
                extra.append(f"dataset `{Path(str(v['dataset'])).name}`")
            for k, val in (v.get("constraints") or {}).items():
                if val not in (None, [], ""):
                    extra.append(f"{k.replace('_', ' ')} {', '.join(val) if isinstance(val, list) else val}")
            return [_user((text or "(no description)") + (f"\n\n*({'; '.join(extra)})*" if extra else ""))]
        if node == "profile" and v.get("profile"):
            title, text = _profile_md(v["profile"])
            return [_thought(title, text, duration=timings.get("profile"))]
        if node == "retrieve":
            title, text = _evidence_md(v.get("evidence") or [])
            return [_thought(title, text, duration=timings.get("retrieve"))]
        if node == "explain" and v.get("candidates"):
            title, text = _candidates_md(v["candidates"], v.get("explanation"))
            return [_thought(title, text, duration=timings.get("explain"))]
        if node == "reason":
            title, text = _draft_md(v.get("draft"), v.get("draft_error"), int(v.get("attempts") or 1))
            return [_thought(title, text, duration=(v.get("llm_seconds") or {}).get("reason"))]
        if node == "judge" and v.get("verdict"):
            title, text = _verdict_md(v["verdict"])
            return [_thought(title, text)]
        if node == "respond" and v.get("recommendation"):
            rec = v["recommendation"]
            out = [_say(card_md(rec, v.get("offer") if snap.next == ("approve",) else None))]
            if rec.get("shap_plot") and Path(rec["shap_plot"]).is_file():
                out.append(_image(rec["shap_plot"], "SHAP: what drives the predicted accuracy of this configuration"))
            return out
        if node == "approve":
            return self._after_approve(before, snap)
        if node == "train":
            return self._after_train(v.get("training") or {})
        if node == "record" and v.get("recorded"):
            r = v["recorded"]
            if not r.get("record_id"):
                return []
            idx = r.get("index") or {}
            return [_say(f"New knowledge-base record `{r['record_id']}` ({r.get('status')}); the search index now "
                         f"holds {idx.get('total', '?')} runs. Future recommendations learn from it.")]
        return []

    def _after_approve(self, before: dict[str, Any], snap: Any) -> list[dict[str, Any]]:
        v = snap.values
        old, new = before.get("offer") or {}, v.get("offer") or {}
        if snap.next == ("approve",):
            if new.get("key") != old.get("key"):
                diffs = [f"{k}={val}" for k, val in new.get("config", {}).items()
                         if (old.get("config") or {}).get(k) != val]
                return [_user("Edit: " + (", ".join(diffs) or "(no change)")), _say(_offer_md(new, old))]
            if new.get("error"):
                return [_say(f"⚠ I could not use that answer: {new['error']}")]
            return []
        decision = v.get("decision") or {}
        if snap.next == ("train",) or decision.get("status") == "approved":
            data = new.get("dataset") or (v.get("approval") or {}).get("dataset")
            return [_user("Approve"), _say(f"Approved: training **{config_text(new['config'])}** on "
                                           f"`{Path(str(data)).name}`.")]
        reason = decision.get("reason")
        return [_user("Reject" + (f": {reason}" if reason else "")),
                _say("Rejected: nothing was trained. Describe the task again, or ask for a what-if, to get another offer.")]

    def _after_train(self, training: dict[str, Any]) -> list[dict[str, Any]]:
        if not training:
            return []
        status = training.get("status")
        out: list[dict[str, Any]] = []
        if status == "ok":
            text = (f"Training finished: **test accuracy {training.get('test_accuracy'):.3f}**, validation accuracy "
                    f"{training.get('val_accuracy') or float('nan'):.3f}, {duration_text(training.get('seconds'))}.")
        elif status == "error":
            text = f"⚠ The training job failed: {training.get('error')}"
        else:
            text = f"Training ended **{status}**" + (f": {training['error']}" if training.get("error") else ".")
        out.append(_say(text))
        run_dir = training.get("run_dir")
        if run_dir and self.plot_dir:
            view = read_job_log(run_dir)
            if view.history:
                path = Path(self.plot_dir) / f"curve-{Path(run_dir).name}.png"
                try:
                    if not path.exists():
                        acc = training.get("test_accuracy")
                        save_learning_curve(view.history, path, title=f"training run {status}" + (
                            f": test accuracy {acc:.3f}" if acc is not None else ""))
                    out.append(_image(str(path), "Learning curve: validation accuracy and loss per epoch"))
                except Exception as exc:  # a picture must never lose the conversation
                    log.warning("learning curve failed: %s", exc)
        return out


# ---------------------------------------------------------------------------- adapter
class ChatAdapter:
    """The chat over a compiled graph: requests, approvals, follow-ups, live training.

    Args:
        graph: the compiled graph, with a checkpointer (the source of truth of every thread).
        kb: the knowledge base (follow-ups and the knowledge-base tab read it).
        metamodel: the meta-model, or a function returning it (loaded on first use).
        context: run settings passed to every graph run (plot_dir, allowed_data_dirs, ...).
        jobs: the job registry the graph's train node starts jobs through (for Cancel).
        transcript: where follow-ups are kept (default: in memory).
        uploads_dir: where uploaded datasets are copied or unpacked (an allowed data folder).
        followup_llm: a chat model for follow-up questions the rules do not recognise.
        weights_available: whether a backbone's pretrained weights exist here.
    """

    def __init__(
        self,
        graph: Any,
        *,
        kb: Any = None,
        metamodel: Any = None,
        context: Context | None = None,
        jobs: JobRegistry | None = None,
        transcript: Transcript | None = None,
        uploads_dir: str | Path | None = None,
        followup_llm: Any | None = None,
        weights_available: Callable[[str], bool] | None = None,
    ) -> None:
        self.graph = graph
        self.kb = kb
        self._metamodel = metamodel
        self.context = context or Context()
        self.jobs = jobs or JobRegistry()
        self.transcript = transcript or Transcript()
        self.uploads_dir = Path(uploads_dir) if uploads_dir else None
        self.followup_llm = followup_llm
        self.weights_available = weights_available
        self.renderer = ThreadRenderer(self.context.plot_dir)
        self._runs: dict[str, LiveRun] = {}
        self._tunes: dict[str, Any] = {}  # thread id -> agent.tune_chat.TuneSession (iterative mode)
        self._rendered_cache: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ state
    @staticmethod
    def new_thread_id() -> str:
        return uuid.uuid4().hex

    @staticmethod
    def config(thread_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": thread_id}}

    @property
    def metamodel(self) -> Any:
        mm = self._metamodel
        if mm is not None and callable(mm) and not hasattr(mm, "predict"):
            return mm()
        return mm

    def _snapshots(self, thread_id: str) -> list[Any]:
        return list(reversed(list(self.graph.get_state_history(self.config(thread_id)))))

    def values(self, thread_id: str) -> dict[str, Any]:
        return dict(self.graph.get_state(self.config(thread_id)).values or {})

    def _live(self, thread_id: str) -> LiveRun | None:
        with self._lock:
            run = self._runs.get(thread_id)
        return run if run is not None and not run.done else None

    def _rendered(self, thread_id: str) -> tuple[list[dict[str, Any]], Any, set[str]]:
        """(messages, latest checkpoint, nodes run in the latest request), cached per checkpoint.

        The history is re-read only when the thread has a new checkpoint or follow-up, so
        training progress (many updates, no new checkpoint) does not re-read it each time.
        """
        state = self.graph.get_state(self.config(thread_id))
        entries = self.transcript.entries(thread_id)
        # Errors and interrupts are written to the latest checkpoint after it exists: part of the key.
        key = ((state.config or {}).get("configurable", {}).get("checkpoint_id"), len(entries),
               sum(1 for t in state.tasks if t.error), sum(len(t.interrupts or ()) for t in state.tasks))
        with self._lock:
            hit = self._rendered_cache.get(thread_id)
        if hit is not None and hit[0] == key:
            return hit[1]
        snaps = self._snapshots(thread_id)
        messages, _ = self.renderer.render(snaps, entries)
        last = snaps[-1] if snaps else None
        starts = [i for i, s in enumerate(snaps) if "__start__" in s.next]
        turn = snaps[starts[-1]:] if starts else snaps  # the latest request and what followed it
        result = (messages, last, {n for s in turn[:-1] for n in s.next})
        with self._lock:
            self._rendered_cache[thread_id] = (key, result)
            self._rendered_cache.move_to_end(thread_id)
            while len(self._rendered_cache) > 256:
                self._rendered_cache.popitem(last=False)
        return result

    def view(self, thread_id: str, notice: str | None = None) -> ChatView:
        """The thread as the screen shows it now (rebuilt from its checkpoints)."""
        cached, last, ran = self._rendered(thread_id)
        messages = list(cached)
        last_id = last.config["configurable"]["checkpoint_id"] if last is not None else None
        run = self._live(thread_id)
        with self._lock:
            latest = self._runs.get(thread_id)
        offer = None
        if last is not None and last.next == ("approve",) and run is None:
            payloads = [i.value for t in last.tasks for i in (t.interrupts or ())]
            offer = payloads[0] if payloads else last.values.get("offer")
        training: TrainingView | None = None
        if run is not None and run.training is not None:
            training = replace(run.training, history=list(run.training.history))  # a snapshot, not the live object
        elif last is not None and "train" in ran and (last.values.get("training") or {}).get("run_dir"):
            done = dict(last.values["training"])
            training = read_job_log(done["run_dir"])
            training.apply({"type": "train_done", **done})
        elif last is not None and last.next == ("train",) and (last.values.get("training") or {}).get("run_dir"):
            training = read_job_log(last.values["training"]["run_dir"])
        stalled = run is None and last is not None and last.next == ("train",)
        if run is not None:
            # Until the input has gone through __start__, the checkpoints do not show the
            # request yet: show it from the run, and the first real step as pending.
            starting = last is not None and last.next == ("__start__",)
            if run.kind == "request" and (last_id == run.base_checkpoint or starting):
                messages.append(_user(run.request or ""))
            if last_id != run.base_checkpoint and last is not None and last.next and not starting:
                step, label = last.next[0], NODE_LABELS.get(last.next[0], last.next[0])
            elif run.kind == "request":
                step, label = "profile", NODE_LABELS["profile"]
            else:
                step, label = "approve", "Applying your answer"
            detail = run.training.message if step == "train" and run.training else ""
            messages.append(_thought(f"{label}…", detail or "working", pending=True))
        elif latest is not None and latest.error and not (last is not None and any(t.error for t in last.tasks)):
            notice = notice or f"The last step failed: {latest.error}"
        if stalled:
            messages.append(_say("This thread stopped inside training (the app was restarted, or the job could not be "
                                 "followed). **Resume** re-attaches to the job and records its result."))
        busy = run is not None
        tune = self._tunes.get(thread_id)
        if tune is not None and not tune.persisted:  # a tuning session not yet kept in the transcript
            messages += [_user(tune.request), *tune.messages]
            if tune.training is not None:
                training = replace(tune.training, history=list(tune.training.history))
            if not tune.done:
                busy = True
                offer = tune.offer()
                if offer is None:
                    detail = tune.training.message if tune.training is not None and not tune.training.done else "working"
                    messages.append(_thought("Tuning…", detail, pending=True))
        return ChatView(thread_id=thread_id, messages=messages, offer=offer, training=training,
                        busy=busy, stalled=stalled, notice=notice)

    def _anchor(self, thread_id: str) -> str | None:
        state = self.graph.get_state(self.config(thread_id))
        return (state.config or {}).get("configurable", {}).get("checkpoint_id")

    # ------------------------------------------------------------------- runs
    def _launch(self, thread_id: str, payload: Any, kind: str, request: str | None = None) -> LiveRun | None:
        with self._lock:
            current = self._runs.get(thread_id)
            if current is not None and not current.done:
                return None
            run = LiveRun(thread_id, kind, request, self._anchor(thread_id))
            self._runs[thread_id] = run
        threading.Thread(target=self._drive, args=(run, payload), name=f"graph-{thread_id[:8]}", daemon=True).start()
        return run

    def _drive(self, run: LiveRun, payload: Any) -> None:
        try:
            for mode, chunk in self.graph.stream(payload, self.config(run.thread_id), context=self.context,
                                                 stream_mode=["updates", "custom"]):
                if mode == "custom" and isinstance(chunk, dict) and chunk.get("type") in ("job", "train", "train_done"):
                    if run.training is None:
                        run.training = TrainingView()
                    run.training.apply(chunk)
                run.changed()
        except Exception as exc:  # shown in the chat (the checkpoint holds the task error too)
            run.error = f"{type(exc).__name__}: {exc}"
            log.info("graph run of thread %s ended with %s", run.thread_id, run.error)
        finally:
            run.done = True
            run.changed()

    def _follow(self, run: LiveRun, poll: float = 0.5) -> Iterator[ChatView]:
        seen = -1
        while True:
            seen = run.wait(seen, timeout=poll)
            finished = run.done  # read before rendering, so the last view shows the finished run
            yield self.view(run.thread_id)
            if finished:
                return

    def _follow_tune(self, session: Any, poll: float = 0.5) -> Iterator[ChatView]:
        """Stream a tuning session until it ends or waits for an answer (the answer's click follows it on)."""
        seen = -1
        while True:
            seen = session.wait(seen, timeout=poll)
            stop = session.done or session.waiting is not None
            yield self.view(session.thread_id)
            if stop:
                return

    def follow(self, thread_id: str) -> Iterator[ChatView]:
        """Attach to the thread's running graph run (after a reload); one view when none runs."""
        tune = self._tunes.get(thread_id)
        if tune is not None and not tune.done:
            yield from self._follow_tune(tune)
            return
        run = self._live(thread_id)
        if run is None:
            yield self.view(thread_id)
            return
        yield from self._follow(run)

    def _busy(self, thread_id: str) -> ChatView:
        return self.view(thread_id, notice="Still working on the previous step; wait for it (or cancel training).")

    # --------------------------------------------------------------- requests
    def start_request(self, thread_id: str, text: str, *, dataset: str | None = None,
                      constraints: dict[str, Any] | None = None) -> Iterator[ChatView]:
        """Run the graph on a new task in this thread, streaming each step."""
        inputs: dict[str, Any] = {"task": text or "", "dataset": dataset or None,
                                  "constraints": {k: v for k, v in (constraints or {}).items() if v not in (None, [], "")}}
        shown = (text or "") + (f"\n\n*(dataset `{Path(dataset).name}`)*" if dataset else "")
        run = self._launch(thread_id, inputs, "request", request=shown)
        if run is None:
            yield self._busy(thread_id)
            return
        yield from self._follow(run)

    def resume(self, thread_id: str, answer: Any) -> Iterator[ChatView]:
        """Answer the pending approval (approve / edit / reject), streaming training if it starts."""
        state = self.graph.get_state(self.config(thread_id))
        if state.next != ("approve",):
            yield self.view(thread_id, notice="There is no configuration waiting for approval in this conversation.")
            return
        from langgraph.types import Command

        run = self._launch(thread_id, Command(resume=answer), "resume")
        if run is None:
            yield self._busy(thread_id)
            return
        yield from self._follow(run)

    def _tune_waiting(self, thread_id: str) -> Any | None:
        tune = self._tunes.get(thread_id)
        return tune if tune is not None and not tune.done and tune.waiting is not None else None

    def approve(self, thread_id: str, dataset: str | None = None) -> Iterator[ChatView]:
        if (tune := self._tune_waiting(thread_id)) is not None:
            tune.answer(True)
            yield from self._follow_tune(tune)
            return
        answer: dict[str, Any] = {"action": "approve"}
        if dataset:
            answer["dataset"] = dataset
        yield from self.resume(thread_id, answer)

    def edit(self, thread_id: str, text: str) -> Iterator[ChatView]:
        """Edit the offer from "epochs=5, lr=3e-4" or a JSON object of fields."""
        changes: Any
        try:
            changes = json.loads(text) if text.strip().startswith("{") else parse_changes(text)
        except json.JSONDecodeError as exc:
            yield self.view(thread_id, notice=f"The edit is not valid JSON: {exc}")
            return
        if not isinstance(changes, dict) or not changes:
            yield self.view(thread_id, notice="Say what to change, e.g. `epochs=5`, `lr=3e-4, batch size 32` or "
                                              "`{\"epochs\": 5}`.")
            return
        yield from self.resume(thread_id, {"action": "edit", "config": changes})

    def reject(self, thread_id: str, reason: str = "") -> Iterator[ChatView]:
        if (tune := self._tune_waiting(thread_id)) is not None:
            tune.answer(False)
            yield from self._follow_tune(tune)
            return
        yield from self.resume(thread_id, {"action": "reject", "reason": reason[:500]})

    def cancel(self, thread_id: str) -> str:
        """Ask the thread's running training job to stop; returns what happened, in words."""
        tune = self._tunes.get(thread_id)
        if tune is not None and not tune.done:
            tune.cancel()
            return "Cancelling the tuning session: the running trial stops after the current batch (recorded as " \
                   "cancelled) and no further trial is proposed."
        run = self._live(thread_id)
        if run is None or run.training is None or not run.training.job_id:
            return "No training job is running in this conversation."
        if self.jobs.cancel(run.training.job_id):
            return "Cancelling: the job stops after the current batch and is recorded as cancelled."
        return "This job was not started by this app process, so it cannot be cancelled from here."

    def reattach(self, thread_id: str, wait_seconds: float = 3600.0, poll: float = 1.0,
                 idle_seconds: float = 600.0) -> Iterator[ChatView]:
        """Resume a thread stopped inside training (an app restart): wait for the job, then record it.

        Args:
            thread_id: the thread.
            wait_seconds: the longest wait for a still-running job.
            poll: seconds between looks at the job's run folder.
            idle_seconds: a job whose log has not grown for this long is taken as dead.
        """
        state = self.graph.get_state(self.config(thread_id))
        if state.next != ("train",):
            yield self.view(thread_id)
            return
        # The train node re-attaches by job id; wait until the worker has written its result, so a
        # still-running job is not mistaken for a dead one.
        from agent.nodes import job_id_for
        from knowledge.schema import TrainConfig
        from tools.jobs import runs_dir

        approval = state.values.get("approval") or {}
        if approval.get("config"):
            job_id = job_id_for(thread_id, TrainConfig.model_validate(approval["config"]))
            run_dir = Path(self.context.runs_dir or runs_dir()) / job_id
            deadline = time.monotonic() + wait_seconds
            last_size = -1
            idle_since = time.monotonic()
            while run_dir.exists() and not (run_dir / "record.json").exists() and time.monotonic() < deadline:
                size = (run_dir / "log.jsonl").stat().st_size if (run_dir / "log.jsonl").exists() else 0
                if size != last_size:
                    last_size, idle_since = size, time.monotonic()
                elif time.monotonic() - idle_since > idle_seconds:
                    break  # no progress for that long: the worker is gone
                view = self.view(thread_id, notice="Waiting for the training job to finish…")
                view.training = read_job_log(run_dir)
                yield view
                time.sleep(poll)
        run = self._launch(thread_id, None, "resume")
        if run is None:
            yield self._busy(thread_id)
            return
        yield from self._follow(run)

    # -------------------------------------------------------------- messages
    def ask(self, thread_id: str, question: str) -> ChatView:
        """Answer a follow-up question from the thread's state and keep it in the transcript."""
        answer = answer_followup(
            self.values(thread_id), question, self._safe_metamodel(), self.kb, llm=self.followup_llm,
            weights_available=self.weights_available, plot_dir=self.context.plot_dir,
            accuracy_tolerance=self.context.accuracy_tolerance, max_accuracy_gap=self.context.max_accuracy_gap,
        )
        data = answer.to_json()
        state = self.graph.get_state(self.config(thread_id))
        if answer.config and state.next == ("approve",):
            offered = (state.values.get("offer") or {}).get("config")
            if offered and offered != answer.config:
                data["text"] += "\n\nReply **use it** to offer this configuration for approval instead."
        self.transcript.add(thread_id, self._anchor(thread_id), question, data)
        return self.view(thread_id)

    def note(self, thread_id: str, text: str, reply: str) -> ChatView:
        """Keep an exchange the graph does not take part in (help, refusals) in the transcript."""
        self.transcript.add(thread_id, self._anchor(thread_id), text, {"kind": "note", "text": reply})
        return self.view(thread_id)

    def _safe_metamodel(self) -> Any:
        try:
            return self.metamodel
        except Exception as exc:  # the follow-up then says it needs the meta-model
            log.warning("meta-model unavailable for a follow-up: %s", exc)
            return None

    def _last_whatif(self, thread_id: str) -> dict[str, Any] | None:
        for entry in reversed(self.transcript.entries(thread_id)):
            cfg = entry["answer"].get("config")
            if entry["answer"].get("intent") == "what_if" and cfg:
                return cfg
        return None

    def submit(self, thread_id: str, text: str, *, dataset: str | None = None,
               constraints: dict[str, Any] | None = None) -> Iterator[ChatView]:
        """A message typed into the chat: an approval reply, a follow-up question, or a new task."""
        text = (text or "").strip()
        tune = self._tunes.get(thread_id)
        if tune is not None and not tune.done:
            if tune.waiting is not None and (_APPROVE.match(text) or _REJECT.match(text)):
                tune.answer(bool(_APPROVE.match(text)))
                yield from self._follow_tune(tune)
            elif text and not dataset and detect_intent(text).kind != "unknown":
                yield self.ask(thread_id, text)
            else:
                yield self.view(thread_id, notice="Tuning is in progress: answer its question, or Cancel it.")
            return
        if self._live(thread_id) is None and not dataset:
            command = parse_tune_command(text)
            if command is not None:
                yield from self.start_tune(thread_id, text, command)
                return
        if self._live(thread_id) is not None:
            if text and not dataset and detect_intent(text).kind != "unknown":
                yield self.ask(thread_id, text)
                return
            yield self._busy(thread_id)
            return
        if not text and not dataset:
            yield self.view(thread_id, notice="Describe your task, give a dataset, or ask a question.")
            return
        state = self.graph.get_state(self.config(thread_id))
        values = state.values or {}
        if dataset or self._looks_like_task(text):
            yield from self.start_request(thread_id, text, dataset=dataset, constraints=constraints)
            return
        if state.next == ("approve",):
            if _USE_IT.match(text):
                cfg = self._last_whatif(thread_id)
                if cfg is None:
                    yield self.note(thread_id, text, "There is no what-if configuration to use yet; ask e.g. "
                                                     "*what about resnet18?* first.")
                    return
                offered = (values.get("offer") or {}).get("config") or {}
                changes = {k: v for k, v in cfg.items() if offered.get(k) != v}
                yield from self.resume(thread_id, {"action": "edit", "config": changes or cfg})
                return
            if parse_changes(text) and not text.endswith("?") and not _QUESTION_START.match(text):
                yield from self.edit(thread_id, text)
                return
            if _APPROVE.match(text):
                yield from self.approve(thread_id)
                return
            if _REJECT.match(text):
                reason = re.sub(r"^\s*\w+[,.!:]*\s*", "", text, count=1)
                yield from self.reject(thread_id, reason)
                return
        intent = detect_intent(text)
        has_rec = bool(values.get("recommendation"))
        if intent.kind != "unknown" or has_rec:
            yield self.ask(thread_id, text)
            return
        if len(text.split()) < 4:
            yield self.note(thread_id, text, (
                "Describe your imaging task so I can recommend a model: the modality, the number of classes and "
                "images, and your time budget, e.g. *\"chest x-ray, 2 classes, 5,000 images, 10 minutes on a laptop\"*. "
                "You can also upload a .npz or a zipped image folder, or give a dataset path under Options."))
            return
        yield from self.start_request(thread_id, text, dataset=dataset, constraints=constraints)

    def start_tune(self, thread_id: str, text: str, command: Any) -> Iterator[ChatView]:
        """Iterative mode (agent.tune): trial 1 is the thread's recommendation, then LLM-proposed trials.

        The message approves every trial within its count and budget, unless it asks for
        per-trial approval ("ask before each"). A pending approval of the graph's offer is
        closed first (trial 1 trains that recommendation).
        """
        values = self.values(thread_id)
        if not values.get("recommendation"):
            yield self.note(thread_id, text, "Tuning starts from a recommendation: describe your task and give its "
                                             "dataset first, then say e.g. *tune 5 trials in 10 minutes*.")
            return
        rec = Recommendation.model_validate(values["recommendation"])
        dataset = (values.get("offer") or {}).get("dataset") or (values.get("profile") or {}).get("dataset")
        if not dataset or not self.context.allows(dataset):
            yield self.note(thread_id, text, "Tuning trains real runs, so it needs the dataset: start a new request "
                                             "with the dataset (upload it or give its path under Options).")
            return
        try:
            tuner = Tuner(values.get("task") or "", dataset=dataset, trials=command.trials,
                          budget_minutes=command.budget_minutes, recommendation=rec, llm=self.followup_llm,
                          kb=self.kb, metamodel=lambda: self.metamodel, weights_available=self.weights_available,
                          start_job=self.jobs.start, runs_dir=self.context.runs_dir, seed=self.context.seed)
        except TuneError as exc:
            yield self.note(thread_id, text, f"⚠ {exc}")
            return
        if self.graph.get_state(self.config(thread_id)).next == ("approve",):
            from langgraph.types import Command

            self.graph.invoke(Command(resume={"action": "reject", "reason": "superseded by iterative tuning (trial 1 "
                                                                           "trains this recommendation)"}),
                              self.config(thread_id), context=self.context)

        def keep(session: TuneSession) -> None:
            self.transcript.add(thread_id, self._anchor(thread_id), session.request,
                                {"kind": "tune", "messages": session.messages})
            session.persisted = True

        session = TuneSession(thread_id, text, tuner, per_trial=command.per_trial, dataset=dataset, on_done=keep)
        with self._lock:
            current = self._tunes.get(thread_id)
            if current is not None and not current.done:
                yield self._busy(thread_id)
                return
            self._tunes[thread_id] = session
        threading.Thread(target=session.drive, name=f"tune-{thread_id[:8]}", daemon=True).start()
        yield from self._follow_tune(session)

    @staticmethod
    def _looks_like_task(text: str) -> bool:
        from tools.task_text import parse_task

        if not text or _QUESTION_START.match(text):
            return False
        try:
            said = set(parse_task(text).said)
        except ValueError:
            return True  # the graph says what is wrong with it
        return bool(said & _TASK_FIELDS)

    # ---------------------------------------------------------------- uploads
    def dataset_from(self, upload: str | None, path: str | None) -> str | None:
        """The dataset for a request: an upload (copied into the uploads folder) or a server path.

        Raises:
            ValueError: a bad upload (the message says why).
        """
        if upload:
            if self.uploads_dir is None:
                raise ValueError("uploads are disabled on this server; give a dataset path instead.")
            return prepare_dataset(upload, self.uploads_dir)
        return path.strip() if path and path.strip() else None


# ------------------------------------------------------------------ knowledge-base tab
KB_COLUMNS = ["id", "dataset", "modality", "backbone", "mode", "optimizer", "learning rate", "batch", "epochs",
              "input", "status", "val acc", "test acc", "seconds", "source", "date"]


def kb_counts_md(kb: Any) -> str:
    """Counts of the knowledge base, in Markdown."""
    s = kb.stats()

    def line(key: str) -> str:
        return ", ".join(f"{k} {v}" for k, v in s[key].items()) or "none"

    return (f"**{s['records']} runs** ({s['successful']} successful) on **{len(s['datasets'])} datasets**.\n\n"
            f"- statuses: {line('statuses')}\n- modes: {line('modes')}\n- backbones: {line('backbones')}\n"
            f"- sources: {line('sources')}\n- devices: {line('devices')}")


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


BEST_COLUMNS = ["dataset", "runs", "best test acc", "backbone", "mode", "configuration", "seconds", "record"]


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


__all__ = ["BEST_COLUMNS", "ChatAdapter", "ChatView", "JobRegistry", "KB_COLUMNS", "LiveRun", "Observed", "ThreadRenderer",
           "TrainingView", "Transcript", "card_md", "kb_best_rows", "kb_counts_md", "kb_filters", "kb_rows",
           "learning_curve_figure", "prepare_dataset", "read_job_log", "save_learning_curve"]

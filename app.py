"""MetaLLMiX's chat window: a Gradio app over the recommendation graph.

    python app.py                       # http://127.0.0.1:7860, embedded LLM, threads in ~/.metallmix
    python app.py --port 8080 --auth alice:secret --data-dir /data/imaging

The window is a thin face over the compiled graph (agent.graph): a message with a task
(and optionally a dataset) runs it, each step streams as a collapsible "thought", the
recommendation comes as a card with its SHAP plot, and nothing trains until Approve. The
graph's checkpointer (SQLite, or Postgres when METALLMIX_DB is a postgresql:// URL) is the source of truth of every conversation, so a reload or
a restart of the app shows the same conversation, a pending approval still pending.

`create_app(parts, settings)` builds the window from parts made once per process (LLM,
knowledge base, meta-model, graph) and shared by every browser session; `launch()` serves
it. Each browser keeps its thread id and the ids of the threads it started (gr.BrowserState, encrypted
in its localStorage): its conversation list shows those, never another browser's.

Settings come from the command line, else the environment: METALLMIX_HOST, METALLMIX_PORT,
METALLMIX_AUTH ("user:password[,user:password]"), METALLMIX_DB, METALLMIX_DATA_DIRS
(os.pathsep-separated), METALLMIX_UPLOADS, METALLMIX_PLOTS, METALLMIX_UI_SECRET, and the
knowledge base's METALLMIX_KB.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr  # noqa: E402  (the two settings above must precede the import)

from agent.chat import (  # noqa: E402
    BEST_COLUMNS,
    KB_COLUMNS,
    ChatAdapter,
    ChatView,
    Conversations,
    JobRegistry,
    Transcript,
    kb_best_rows,
    kb_counts_md,
    kb_filters,
    kb_rows,
    panel_curve,
    remember,
)
from agent.chat.conversations import EarlyThreads  # noqa: E402
from agent.chat.transcript import is_postgres_url, open_checkpointer, redact  # noqa: E402
from agent.context import Context  # noqa: E402
from knowledge.space import BACKBONES, MODES  # noqa: E402

REPO = Path(__file__).resolve().parent
HOME = Path.home() / ".metallmix"
STORAGE_KEY = "metallmix-thread"
THREADS_KEY = "metallmix-threads"  # the browser's own thread ids: the only ones its conversation list shows
EXAMPLES = [  # varied on purpose: modality, size, device, budget, a limit, a goal
    "Breast ultrasound lesions (normal, benign, malignant), about 800 images; I have 10 minutes on a laptop CPU.",
    "Chest x-rays, pneumonia vs normal, 5,000 images at 128 px; a GPU for 30 minutes, best accuracy.",
    "Blood cell microscopy, 8 classes, 17,000 images; a model under 10M parameters, 15 minutes on CPU.",
    "Skin lesion dermoscopy, 7 classes, very imbalanced, 10,000 images; as fast as possible.",
]
MSG_LABEL = "Message (Enter sends, Shift+Enter adds a new line)"
CSS = """
#chat .message-wrap { font-size: 14px; }
/* The column beside the chat (the approval waiting for an answer, the live run) stays in view while the page
   scrolls to the message box below the chat. Gradio's container clips with overflow: hidden, which would make
   it the sticky column's scroll box; overflow: clip clips the same without being one. */
.gradio-container { overflow: clip !important; }
#side { position: sticky; top: 8px; align-self: flex-start; }
#offer { padding: 8px 12px; }
#train-progress .bar { background: #e0e0e0; border-radius: 6px; height: 14px; overflow: hidden; }
#train-progress .fill { height: 100%; background: #2e7d32; transition: width .4s; }
/* Plots in the chat (SHAP plots and learning curves, by file name: Gradio drops their alt text) at their
   natural size up to the chat's width, not Gradio's 300 px high thumbnails, so the SHAP plot's labels read. */
#chat img[src*="/shap-"], #chat img[src*="/curve-"] { max-height: none !important; max-width: 100% !important;
  width: auto; height: auto; }
/* Dark mode: the plots are drawn for a light page; inverted (hues kept) they read on a dark one. */
.dark #curve img, .dark #chat img[src*="/shap-"], .dark #chat img[src*="/curve-"] {
  filter: invert(0.9) hue-rotate(180deg); }
"""
INTRO = (
    "## MetaLLMiX\n"
    "Which pretrained model and hyperparameters for your medical-imaging task, in seconds and without trial runs, "
    "with the evidence behind it. Describe the task (modality, classes, images, time budget), optionally with a "
    "dataset, then approve the configuration to train it — or say *tune 5 trials in 10 minutes* (add *ask before "
    "each* to approve trial by trial) to iterate from it: each next trial is proposed from the trials so far."
)


# ---------------------------------------------------------------------------- settings
def _default_data_dirs() -> list[str]:
    shared = REPO.parent / "shared" / "data"
    return [str(shared)] if shared.is_dir() else []


def _secret(path: Path) -> str:
    """The key that encrypts the thread id in the browser; stable across restarts (else a
    reload after a restart could not read the thread id back)."""
    env = os.environ.get("METALLMIX_UI_SECRET")
    if env:
        return env
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = secrets.token_urlsafe(24)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value)
        return value
    except OSError:
        return secrets.token_urlsafe(24)


def parse_auth(text: str | None) -> list[tuple[str, str]] | None:
    """ "alice:pw,bob:pw2" -> [("alice", "pw"), ("bob", "pw2")]; None or "" -> None.

    Raises:
        ValueError: an entry without "user:password".
    """
    if not text or not text.strip():
        return None
    out = []
    for item in text.split(","):
        user, sep, password = item.strip().partition(":")
        if not sep or not user or not password:
            raise ValueError(f"auth must be 'user:password[,user:password]', but got an entry {item.strip()!r}.")
        out.append((user, password))
    return out


@dataclass
class AppSettings:
    """Where the app listens and keeps its data.

    Attributes:
        host: the address to bind (127.0.0.1: this machine only).
        port: the port; None lets Gradio pick from 7860 up.
        auth: users and passwords; None means no login.
        db_path: the SQLite file of the thread checkpoints (and follow-up transcript), or a
            `postgresql://` URL to keep both in Postgres (the `postgres` extra).
        data_dirs: folders a dataset path may lie in (the uploads folder is always added).
        uploads_dir: where uploaded datasets are copied or unpacked.
        plot_dir: where SHAP plots and learning curves are written (and served from).
        kb_dir: the knowledge base folder; None means knowledge.store.open_default's choice.
        runs_dir: the training jobs' run folders; None means tools.jobs.runs_dir().
        secret: encrypts the thread id kept in the browser.
        max_file_size: the largest upload Gradio accepts.
    """

    host: str = "127.0.0.1"
    port: int | None = 7860
    auth: list[tuple[str, str]] | None = None
    db_path: Path | str = field(default_factory=lambda: HOME / "threads.sqlite")
    data_dirs: list[str] = field(default_factory=_default_data_dirs)
    uploads_dir: Path = field(default_factory=lambda: HOME / "uploads")
    plot_dir: Path = field(default_factory=lambda: HOME / "plots")
    kb_dir: str | None = None
    runs_dir: str | None = None
    secret: str | None = None
    max_file_size: str = "2gb"

    def __post_init__(self) -> None:
        if self.port is not None and not 0 <= self.port <= 65535:
            raise ValueError(f"port must satisfy 0 <= port <= 65535, but got {self.port!r}.")
        if not is_postgres_url(self.db_path):  # a URL stays a string: Path() would fold its '//'
            self.db_path = Path(self.db_path).expanduser()
        self.uploads_dir = Path(self.uploads_dir).expanduser()
        self.plot_dir = Path(self.plot_dir).expanduser()
        if self.secret is None:
            self.secret = _secret(HOME / "ui-secret")

    @property
    def allowed_data_dirs(self) -> tuple[str, ...]:
        return (*self.data_dirs, str(self.uploads_dir))

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None) -> AppSettings:
        """Settings from the command line, falling back to the environment, then the defaults."""
        env = os.environ.get
        p = argparse.ArgumentParser(prog="app.py", description="MetaLLMiX chat window (Gradio).")
        p.add_argument("--host", default=env("METALLMIX_HOST", "127.0.0.1"),
                       help="address to bind (default 127.0.0.1; 0.0.0.0 exposes it to the network)")
        p.add_argument("--port", type=int, default=int(env("METALLMIX_PORT", "7860")))
        p.add_argument("--auth", default=env("METALLMIX_AUTH"), help="user:password[,user:password] to require a login")
        p.add_argument("--db", default=env("METALLMIX_DB", str(HOME / "threads.sqlite")),
                       help="SQLite file of the conversations (checkpoints), or a postgresql:// URL")
        p.add_argument("--data-dir", action="append", default=None,
                       help="folder datasets may be read from (repeatable; default ../shared/data if present)")
        p.add_argument("--uploads", default=env("METALLMIX_UPLOADS", str(HOME / "uploads")))
        p.add_argument("--plots", default=env("METALLMIX_PLOTS", str(HOME / "plots")))
        p.add_argument("--kb-dir", default=None, help="knowledge base folder (default $METALLMIX_KB or ~/.metallmix/kb)")
        args = p.parse_args(argv)
        data_dirs = args.data_dir
        if data_dirs is None:
            raw = env("METALLMIX_DATA_DIRS")
            data_dirs = [d for d in raw.split(os.pathsep) if d] if raw else _default_data_dirs()
        return cls(host=args.host, port=args.port, auth=parse_auth(args.auth), db_path=args.db,
                   data_dirs=[str(Path(d).expanduser().resolve()) for d in data_dirs], uploads_dir=Path(args.uploads),
                   plot_dir=Path(args.plots), kb_dir=args.kb_dir)


# ------------------------------------------------------------------------------- parts
@dataclass
class AppParts:
    """What the app is made of, built once per process and shared by every session.

    Attributes:
        adapter: the chat adapter over the compiled graph (with its checkpointer).
        kb: the knowledge base.
        warm_up: loads the slow parts (embedder, index, meta-model) ahead of the first request.
    """

    adapter: ChatAdapter
    kb: Any
    warm_up: Callable[[], None] | None = None


def build_parts(
    settings: AppSettings,
    *,
    llm: Any | None = None,
    judge_llm: Any | None = None,
    kb: Any | None = None,
    metamodel: Any | None = None,
    start_job: Callable[..., Any] | None = None,
    weights_available: Callable[[str], bool] | None = None,
) -> AppParts:
    """The real parts: checkpointer (SQLite or Postgres), knowledge base, chat model, graph, adapter.

    Args:
        settings: where things live.
        llm: the reasoner's chat model; None means agent.llm.get_chat_model() (embedded
            llama.cpp, or Ollama when OLLAMA_HOST is set).
        judge_llm: the judge's chat model; None reuses the default factory (or `llm`).
        kb: the knowledge base; None opens the default one (seeded on first use).
        metamodel: a fitted meta-model; None loads or fits one from the knowledge base on first use.
        start_job: the training-job starter (tests may inject one); None runs real jobs, on the Ray
            cluster METALLMIX_RAY names when it is set.
        weights_available: whether a backbone's pretrained weights exist here (default: look on disk).
    """
    from agent.graph import build_graph
    from agent.parts import Parts

    saver, _ = open_checkpointer(settings.db_path)  # first: Postgres down stops the start before anything is made
    settings.plot_dir.mkdir(parents=True, exist_ok=True)
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    if start_job is None:  # a Ray cluster's jobs when METALLMIX_RAY names one, else local subprocesses
        from tools.ray_jobs import default_job_starter

        start_job = default_job_starter()
    jobs = JobRegistry(start_job)
    parts = Parts.default(kb_dir=settings.kb_dir, llm=llm, judge_llm=judge_llm, kb=kb, metamodel=metamodel,
                          start_job=jobs.start, weights_available=weights_available)
    graph = build_graph(parts, checkpointer=saver)
    context = Context(plot_dir=str(settings.plot_dir), allowed_data_dirs=settings.allowed_data_dirs,
                      runs_dir=settings.runs_dir)
    adapter = ChatAdapter(
        graph, parts, context=context, jobs=jobs, transcript=Transcript(settings.db_path),
        uploads_dir=settings.uploads_dir, followup_llm=parts.llm,
    )

    def warm_up() -> None:
        parts.kb.search("warm up", k=1)
        parts.get_metamodel()
        from agent.recommend import warm_llm

        warm_llm(parts.llm)  # the first message then waits for neither the weights nor the system prompt

    return AppParts(adapter=adapter, kb=parts.kb, warm_up=warm_up)


# ------------------------------------------------------------------------------ screen
def _progress_html(view: ChatView) -> str:
    t = view.training
    if t is None:
        return ""
    pct = round(100 * t.fraction)
    colour = "#2e7d32" if t.status in ("ok", "training", "features", "starting") else "#c62828"
    epochs = f"epoch {t.epoch}/{t.epochs}" if t.epochs else "preparing"
    said = t.message if t.message.startswith("epoch ") else f"{epochs} · {t.message}"  # the epoch once, not twice
    return (f'<div class="bar"><div class="fill" style="width:{pct}%;background:{colour}"></div></div>'
            f'<div class="train-status" style="margin-top:6px"><b>{t.status}</b> · {said}</div>')


def _offer_text(offer: dict[str, Any]) -> str:
    from agent.formatting import config_text, duration_text

    p = offer.get("prediction") or {}
    head = (f"Trial {offer['tune_trial']} of the tuning session, awaiting your approval" if offer.get("tune_trial")
            else "Awaiting your approval")
    text = (f"**{head}:** {config_text(offer['config'])} — predicted test accuracy "
            f"{p.get('accuracy', float('nan')):.2f} in {duration_text(p.get('seconds'))}")
    text += f" on `{Path(offer['dataset']).name}`." if offer.get("dataset") else \
        ". No dataset yet: upload one or give its path under Options, then Approve."
    if offer.get("error"):
        text += f"\n\n⚠ {offer['error']}"
    return text


def _safe_filters(kb: Any) -> dict[str, list[str]]:
    try:
        return kb_filters(kb)
    except Exception:  # an unreadable knowledge base shows empty filters; its tab says what is wrong
        return {"dataset": [], "backbone": [], "mode": [], "status": []}


def _thread_key(thread: str | None, request: gr.Request | None) -> str:
    """The checkpointer's thread id: the browser's thread id, namespaced by the logged-in user."""
    user = getattr(request, "username", None) if request is not None else None
    return f"{user}:{thread}" if user else str(thread)


def request_constraints(budget_min: float | None, device: str | None, backbones: list[str] | None,
                        modes: list[str] | None, max_params_m: float | None = None,
                        max_model_mb: float | None = None, max_memory_gb: float | None = None) -> dict[str, Any]:
    """The request's constraints from the chat's Options; an empty or 0 field leaves it to the task text.

    Args:
        budget_min: the time budget in minutes.
        device: "cpu" or "cuda".
        backbones: the backbones allowed (none: all).
        modes: the modes allowed (none: all).
        max_params_m: the most parameters the backbone may have, in millions (a hard limit).
        max_model_mb: the largest model file in MB, float32 weights (a hard limit).
        max_memory_gb: the most memory a run may need in GB, RAM on a CPU and GPU memory on CUDA (a hard
            limit on tools.memory's estimate).
    """
    return {"budget_minutes": float(budget_min) if budget_min else None, "device": device or None,
            "backbones": list(backbones or []) or None, "modes": list(modes or []) or None,
            "max_params": float(max_params_m) * 1e6 if max_params_m else None,
            "max_model_mb": float(max_model_mb) if max_model_mb else None,
            "max_memory_gb": float(max_memory_gb) if max_memory_gb else None}


def create_app(parts: AppParts | Callable[[], AppParts], settings: AppSettings | None = None) -> gr.Blocks:
    """The chat window and the knowledge-base tab, over `parts` (or a factory of them).

    Args:
        parts: the shared parts (see `build_parts`), or a function that builds them.
        settings: used for the browser-state secret; None uses the defaults.
    """
    parts = parts() if callable(parts) else parts
    settings = settings or AppSettings()
    adapter = parts.adapter
    kb = parts.kb

    screens: dict[str, str] = {}  # browser session -> the thread it shows (a page follows one thread at a time)
    early = EarlyThreads()  # browser session -> the thread its first message started before the page loaded

    def render(view: ChatView, *, thread: str | None = None, clear_input: bool = False,
               last_curve: list[Any] | None = None, request: gr.Request | None = None) -> tuple[Any, ...]:
        session = getattr(request, "session_hash", None)
        if session and screens.get(session, view.thread_id) != view.thread_id:
            return (gr.skip(),) * len(chat_outputs)  # the page has moved to another conversation: this stream shows nothing more
        t = view.training
        changed, figure = panel_curve(t, last_curve)  # per run and epoch: never an earlier run's curve
        curve: Any = figure if changed else gr.skip()
        show_training = t is not None
        return (
            view.messages,
            view.notice or "",
            gr.update(visible=view.offer is not None),
            _offer_text(view.offer) if view.offer else "",
            gr.update(visible=show_training or view.stalled),
            _progress_html(view),
            curve,
            gr.update(visible=bool(t is not None and not t.done and view.busy)),
            gr.update(visible=view.stalled),
            "" if clear_input else gr.skip(),
            None if clear_input else gr.skip(),
            thread if thread is not None else gr.skip(),
            gr.update(visible=view.stoppable),
            gr.update(visible=view.offer is not None or show_training or view.stalled),
        )

    with gr.Blocks(title="MetaLLMiX", fill_width=False) as demo:
        thread = gr.BrowserState(None, storage_key=STORAGE_KEY, secret=settings.secret)
        threads = gr.BrowserState([], storage_key=THREADS_KEY, secret=settings.secret)
        listed = Conversations(adapter.graph, adapter.transcript)
        gr.Markdown(INTRO)
        with gr.Tabs():
            with gr.Tab("Chat", id="chat-tab"):
                with gr.Row(equal_height=True):
                    conversations = gr.Dropdown([], label="Your conversations (kept in this browser)", scale=5,
                                                elem_id="conversations", interactive=True)
                    new_btn = gr.Button("New conversation", size="sm", scale=1, elem_id="new-thread")
                # Beside the conversation (not below the options, off-screen at 1280x900): the approval waiting
                # for an answer on top, the live run below it; the column shows only while one of them does.
                with gr.Row(equal_height=False, elem_id="chat-row"):
                    chatbot = gr.Chatbot(label="Conversation", elem_id="chat", height=640, buttons=["copy"], scale=5,
                                         placeholder="Describe your task, e.g. *Breast ultrasound lesions (normal, "
                                                     "benign, malignant), about 800 images; I have 10 minutes on a "
                                                     "laptop CPU.*")
                    with gr.Column(visible=False, scale=1, min_width=300, elem_id="side") as side_box:
                        with gr.Group(visible=False, elem_id="approval") as approval_box:
                            offer_md = gr.Markdown(elem_id="offer")
                            edit_text = gr.Textbox(label="Edit or reason", elem_id="edit-text", lines=1,
                                                   placeholder="Edit: epochs=5, lr=3e-4 (or a reason to reject)")
                            approve_btn = gr.Button("Approve and train", variant="primary", size="md", elem_id="approve")
                            with gr.Row():
                                edit_btn = gr.Button("Edit", size="md", min_width=60, elem_id="edit")
                                reject_btn = gr.Button("Reject", variant="stop", size="md", min_width=60, elem_id="reject")
                        with gr.Column(visible=False, elem_id="training") as training_box:
                            progress = gr.HTML(elem_id="train-progress")
                            curve = gr.Plot(label="Learning curve (per epoch)", show_label=False, elem_id="curve")
                            with gr.Row():
                                cancel_btn = gr.Button("Cancel training", variant="stop", visible=False,
                                                       elem_id="cancel")
                                resume_btn = gr.Button("Resume", visible=False, elem_id="resume")
                notice = gr.Markdown(elem_id="notice")
                with gr.Row(equal_height=True):
                    # One line that grows: Gradio then sends on Enter and lets Shift+Enter add a line (with
                    # lines > 1 it does the reverse), the usual chat convention; the label says so.
                    msg = gr.Textbox(label=MSG_LABEL, lines=1, max_lines=8, scale=6, elem_id="msg", autofocus=True,
                                     placeholder="Describe your task, or ask: why this learning rate? · what about "
                                                 "resnet18? · tune 5 trials")
                    upload = gr.File(label="Dataset (.npz or .zip of an image folder)", file_types=[".npz", ".zip"],
                                     scale=2, elem_id="upload", height=130)
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                    # Shown only while a recommendation runs: ends it at the next step or LLM token.
                    stop_btn = gr.Button("Stop", variant="stop", scale=1, visible=False, elem_id="stop")
                gr.Examples([[t] for t in EXAMPLES], inputs=[msg], label="Examples: click one to put it in the message",
                            elem_id="examples", examples_per_page=len(EXAMPLES))
                with gr.Accordion("Options", open=False, elem_id="options"):
                    dataset_path = gr.Textbox(label="Dataset path on the server (inside an allowed folder: "
                                                    + ", ".join(settings.allowed_data_dirs) + ")",
                                              elem_id="dataset-path")
                    with gr.Row():
                        budget = gr.Number(label="Time budget in minutes (0: as the text says)", value=0, minimum=0,
                                           elem_id="budget")
                        device = gr.Dropdown(["", "cpu", "cuda"], value="", label="Device (empty: from the text)",
                                             elem_id="device")
                    backbones = gr.CheckboxGroup(list(BACKBONES), label="Allowed backbones (none ticked: all)",
                                                 elem_id="backbones")
                    modes = gr.CheckboxGroup(list(MODES), label="Allowed modes (none ticked: all)", elem_id="modes")
                    with gr.Row():
                        max_params = gr.Number(label="Max parameters in millions (0: as the text says)", value=0,
                                               minimum=0, elem_id="max-params")
                        max_model_mb = gr.Number(label="Max model size in MB, float32 weights (0: as the text says)",
                                                 value=0, minimum=0, elem_id="max-model-mb")
                        max_memory = gr.Number(label="Max memory for training in GB: RAM on a CPU, GPU memory on "
                                                     "CUDA (0: as the text says)", value=0, minimum=0,
                                               elem_id="max-memory-gb")
            with gr.Tab("Knowledge base", id="kb-tab"):
                kb_md = gr.Markdown(elem_id="kb-counts")
                filters = _safe_filters(kb)
                with gr.Row():
                    # Values added after start-up (a new run's dataset) are still accepted.
                    f_dataset, f_backbone, f_mode, f_status = (
                        gr.Dropdown(["all", *filters[name]], value="all", label=name.capitalize(),
                                    elem_id=f"f-{name}", allow_custom_value=True)
                        for name in ("dataset", "backbone", "mode", "status"))
                    kb_refresh = gr.Button("Refresh", elem_id="kb-refresh")
                kb_runs = gr.Dataframe(headers=KB_COLUMNS, interactive=False, max_height=420, elem_id="kb-runs",
                                       wrap=False)
                gr.Markdown("### Best configuration per dataset (by test accuracy)")
                kb_best = gr.Dataframe(headers=BEST_COLUMNS, interactive=False, elem_id="kb-best")

        chat_outputs = [chatbot, notice, approval_box, offer_md, training_box, progress, curve, cancel_btn, resume_btn,
                        msg, upload, thread, stop_btn, side_box]

        def on_load(thread_id: str | None, request: gr.Request) -> Iterator[tuple[Any, ...]]:
            # A message sent before the page had loaded (a busy machine) started its own thread: the page
            # shows that one, not a new empty one that would hide the request running.
            tid = thread_id or early.take(request.session_hash or "") or adapter.new_thread_id()
            yield from show_thread(tid, request)

        def show_thread(tid: str, request: gr.Request) -> Iterator[tuple[Any, ...]]:
            """Put thread `tid` on this page, following its live run if it has one."""
            key = _thread_key(tid, request)
            screens[request.session_hash or ""] = key
            last_curve: list[Any] = [-1]
            for view in adapter.follow(key):
                yield render(view, thread=tid, last_curve=last_curve, request=request)

        def on_switch(choice: str | None, known: list[str] | None, request: gr.Request) -> Iterator[tuple[Any, ...]]:
            if not choice or choice not in (known or []):  # only this browser's own threads open
                raise gr.Error("That conversation was not started in this browser; pick one from the list, or start "
                               "a new one.")
            yield from show_thread(choice, request)

        def list_threads(thread_id: str | None, known: list[str] | None, request: gr.Request) -> tuple[Any, Any]:
            """The browser's thread ids, the one on screen first, and the list of their conversations."""
            ids = remember(known, thread_id)
            rows = listed.listing(ids, thread_id, key=lambda t: _thread_key(t, request))
            return ids, gr.update(choices=[(c.label, c.thread_id) for c in rows], value=thread_id)

        def on_send(text: str, upload_path: str | None, path: str, budget_min: float | None, dev: str,
                    allowed_backbones: list[str], allowed_modes: list[str], max_params_m: float | None,
                    max_mb: float | None, max_gb: float | None, thread_id: str | None,
                    request: gr.Request) -> Iterator[tuple[Any, ...]]:
            tid = thread_id or adapter.new_thread_id()
            if not thread_id:  # before the page's load event gave it one
                early.put(request.session_hash or "", tid)
            key = _thread_key(tid, request)
            try:
                dataset = adapter.dataset_from(upload_path, path)
            except ValueError as exc:
                yield render(adapter.view(key, notice=f"⚠ {exc}"), thread=tid)
                return
            constraints = request_constraints(budget_min, dev, allowed_backbones, allowed_modes, max_params_m, max_mb,
                                              max_gb)
            screens[request.session_hash or ""] = key
            last_curve: list[Any] = [-1]
            first = True
            for view in adapter.submit(key, text or "", dataset=dataset, constraints=constraints):
                # A message not acted on (something runs) stays in the box: no typed word is lost.
                yield render(view, thread=tid, clear_input=first and not view.unsent, last_curve=last_curve,
                             request=request)
                first = False

        def on_approve(path: str, upload_path: str | None, thread_id: str | None,
                       request: gr.Request) -> Iterator[tuple[Any, ...]]:
            key = _thread_key(thread_id, request)
            try:
                dataset = adapter.dataset_from(upload_path, path)
            except ValueError as exc:
                yield render(adapter.view(key, notice=f"⚠ {exc}"))
                return
            last_curve: list[Any] = [-1]
            for view in adapter.approve(key, dataset):
                yield render(view, last_curve=last_curve, request=request)

        def on_edit(text: str, thread_id: str | None, request: gr.Request) -> Iterator[tuple[Any, ...]]:
            for view in adapter.edit(_thread_key(thread_id, request), text or ""):
                yield render(view)

        def on_reject(text: str, thread_id: str | None, request: gr.Request) -> Iterator[tuple[Any, ...]]:
            for view in adapter.reject(_thread_key(thread_id, request), text or ""):
                yield render(view)

        def on_cancel(thread_id: str | None, request: gr.Request) -> str:
            return adapter.cancel(_thread_key(thread_id, request))

        def on_stop(thread_id: str | None, request: gr.Request) -> str:
            return adapter.stop(_thread_key(thread_id, request))

        def on_resume(thread_id: str | None, request: gr.Request) -> Iterator[tuple[Any, ...]]:
            last_curve: list[Any] = [-1]
            for view in adapter.reattach(_thread_key(thread_id, request)):
                yield render(view, last_curve=last_curve, request=request)

        def on_new(request: gr.Request) -> tuple[Any, ...]:
            tid = adapter.new_thread_id()
            screens[request.session_hash or ""] = _thread_key(tid, request)
            return render(adapter.view(_thread_key(tid, request)), thread=tid, clear_input=True)

        def kb_view(dataset: str, backbone: str, mode: str, status: str) -> tuple[Any, ...]:
            import pandas as pd

            filters = kb_filters(kb)
            rows = kb_rows(kb, dataset=dataset, backbone=backbone, mode=mode, status=status)
            return (
                kb_counts_md(kb) + f"\n\nShowing {len(rows)} run(s).",
                pd.DataFrame(rows, columns=KB_COLUMNS),
                pd.DataFrame(kb_best_rows(kb), columns=BEST_COLUMNS),
                gr.update(choices=["all", *filters["dataset"]]),
                gr.update(choices=["all", *filters["backbone"]]),
                gr.update(choices=["all", *filters["mode"]]),
                gr.update(choices=["all", *filters["status"]]),
            )

        chat_kw: dict[str, Any] = {"concurrency_limit": 8, "show_progress": "hidden"}
        def forget(request: gr.Request) -> None:
            screens.pop(request.session_hash or "", None)
            early.forget(request.session_hash or "")

        demo.unload(forget)  # a closed page's entry goes
        listing = ([thread, threads], [threads, conversations])  # the browser's list, after each change of thread
        demo.load(on_load, [thread], chat_outputs, api_name="load", **chat_kw)
        demo.load(list_threads, *listing, api_visibility="private")
        send_inputs = [msg, upload, dataset_path, budget, device, backbones, modes, max_params, max_model_mb, max_memory,
                       thread]
        send.click(on_send, send_inputs, chat_outputs, api_name="send", **chat_kw).then(
            list_threads, *listing, api_visibility="private")
        msg.submit(on_send, send_inputs, chat_outputs, api_visibility="private", **chat_kw).then(
            list_threads, *listing, api_visibility="private")
        conversations.input(on_switch, [conversations, threads], chat_outputs, api_name="switch", **chat_kw).then(
            list_threads, *listing, api_visibility="private")
        approve_btn.click(on_approve, [dataset_path, upload, thread], chat_outputs, api_name="approve", **chat_kw)
        edit_btn.click(on_edit, [edit_text, thread], chat_outputs, api_name="edit", **chat_kw)
        reject_btn.click(on_reject, [edit_text, thread], chat_outputs, api_name="reject", **chat_kw)
        cancel_btn.click(on_cancel, [thread], [notice], api_name="cancel", concurrency_limit=None)
        stop_btn.click(on_stop, [thread], [notice], api_name="stop", concurrency_limit=None)
        resume_btn.click(on_resume, [thread], chat_outputs, api_name="resume", **chat_kw)
        new_btn.click(on_new, None, chat_outputs, api_name="new_thread").then(list_threads, *listing,
                                                                             api_visibility="private")
        kb_inputs = [f_dataset, f_backbone, f_mode, f_status]
        kb_outputs = [kb_md, kb_runs, kb_best, f_dataset, f_backbone, f_mode, f_status]
        demo.load(kb_view, kb_inputs, kb_outputs, api_name="kb")
        kb_refresh.click(kb_view, kb_inputs, kb_outputs, api_visibility="private")
        chatbot.clear(on_new, None, chat_outputs, api_visibility="private").then(list_threads, *listing,
                                                                                api_visibility="private")  # the chat's own Clear: a new conversation
        for f in kb_inputs:
            f.change(kb_view, kb_inputs, kb_outputs, api_visibility="private")
    return demo


def launch(demo: gr.Blocks, settings: AppSettings, *, block: bool = True, quiet: bool = False) -> tuple[Any, str, str]:
    """Serve the app on settings.host:settings.port (127.0.0.1 unless told otherwise)."""
    demo.queue(default_concurrency_limit=8)
    return demo.launch(
        server_name=settings.host, server_port=settings.port, auth=settings.auth,
        auth_message="MetaLLMiX: log in with the user and password the operator gave you." if settings.auth else None,
        allowed_paths=[str(settings.plot_dir)], max_file_size=settings.max_file_size, css=CSS, show_error=True,
        prevent_thread_lock=not block, quiet=quiet, footer_links=["api"], ssr_mode=False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`python app.py [--host H] [--port P] [--auth user:pw] [--db FILE] [--data-dir DIR ...]`."""
    try:
        settings = AppSettings.from_args(argv)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        parts = build_parts(settings)
    except Exception as exc:  # a model or knowledge base that cannot be opened: one clear message
        if os.environ.get("METALLMIX_DEBUG"):
            raise
        print(f"error ({type(exc).__name__}): {exc}", file=sys.stderr)
        return 3
    if parts.warm_up is not None:
        threading.Thread(target=parts.warm_up, name="warm-up", daemon=True).start()
    print(f"MetaLLMiX chat on http://{settings.host}:{settings.port}  (conversations in {redact(str(settings.db_path))}; datasets "
          f"from {', '.join(settings.allowed_data_dirs)})", file=sys.stderr)
    launch(create_app(parts, settings), settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())

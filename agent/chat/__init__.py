"""The chat: the Gradio window's adapter over the compiled graph, by concern.

    views          what the screen shows of a thread (ChatView, TrainingView, messages)
    router         which way a typed message goes, as a table of rules
    transcript     the side table of follow-ups, notes and tuning sessions (SQLite, or Postgres with METALLMIX_DB)
    conversations  a browser's list of its threads: titles and times
    plots          the learning curve, redrawn per run
    uploads        uploaded datasets and the checks on an archive
    knowledge_tab  the knowledge-base tab's counts and tables
    cards          the Markdown of each step and the recommendation card
    export         the configuration to take away: JSON, YAML, the CLI command, a Python snippet
    export         a configuration to take away: JSON, YAML, the CLI command, Python
    runs           live runs: graph runs in background threads, the training-job registry
    rendering      checkpoint history -> messages, a table from node name to renderer
    tuning         the iterative mode's sessions, shown as chat messages
    adapter        ChatAdapter: what the screen calls, and where a typed message goes

Each module imports only modules listed before it (views needs none of them, adapter all).
The names the app uses are re-exported here.
"""

from agent.chat.adapter import ChatAdapter
from agent.chat.conversations import Conversations, remember
from agent.chat.knowledge_tab import BEST_COLUMNS, KB_COLUMNS, kb_best_rows, kb_counts_md, kb_filters, kb_rows
from agent.chat.plots import learning_curve_figure, panel_curve
from agent.chat.runs import JobRegistry
from agent.chat.transcript import Transcript
from agent.chat.views import ChatView

__all__ = ["BEST_COLUMNS", "KB_COLUMNS", "ChatAdapter", "ChatView", "Conversations", "JobRegistry", "Transcript",
           "kb_best_rows", "kb_counts_md", "kb_filters", "kb_rows", "learning_curve_figure", "panel_curve", "remember"]

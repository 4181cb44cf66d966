"""The chat app served for a browser test: one place for the settings every such test uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fakes import free_port


def serve_chat(adapter: Any, tmp: Path, secret: str) -> tuple[str, Any]:
    """The chat app over `adapter`, served on 127.0.0.1 at a free port (threads, plots and uploads
    under `tmp`, data allowed under `tmp/data`): its URL and the Blocks to close."""
    import app as app_module

    settings = app_module.AppSettings(port=free_port(), db_path=tmp / "threads.sqlite", plot_dir=tmp / "plots",
                                      uploads_dir=tmp / "uploads", data_dirs=[str(tmp / "data")], secret=secret)
    demo = app_module.create_app(app_module.AppParts(adapter=adapter, kb=adapter.kb), settings)
    app_module.launch(demo, settings, block=False, quiet=True)
    return f"http://127.0.0.1:{settings.port}/", demo

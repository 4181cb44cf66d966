"""End to end in real headless Chromium: type a task, see the recommendation and its SHAP
plot, edit it to 2 epochs, approve, and watch a real training run finish.

Everything is real except the LLM (a rule-based stand-in, so the test does not depend on
llama.cpp's speed): the knowledge base (seeded, with its Chroma index), the meta-model and
its SHAP plot, and the training job (frozen efficientnet_lite0 on busi_ultrasound.npz, a
subprocess). Chromium is Debian's (`apt-get install chromium`), driven by the Python
`playwright` package; no browser is ever downloaded.

Screenshots (the recommendation with its SHAP plot, training in progress, the final page,
the knowledge-base tab) are saved in the test's tmp folder, and copied beside
$METALLMIX_E2E_SCREENSHOT when it is set (e.g. /tmp/e2e.png -> /tmp/e2e-training.png ...),
for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("METALLMIX_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
TASK = "Breast ultrasound lesions (normal, benign, malignant); I have 10 minutes on a laptop CPU."
STEP_MS = 360_000  # one step may load the embedder, the index and the meta-model on a busy 2-core machine


@pytest.fixture
def served(tmp_path: Path, shared_data: Path) -> Iterator[dict[str, Any]]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (or set METALLMIX_CHROMIUM)")
    pytest.importorskip(
        "playwright.sync_api", reason="the playwright package is not installed (pip install playwright)"
    )
    if not (shared_data / "busi_ultrasound.npz").exists():
        pytest.skip(f"busi_ultrasound.npz is not in {shared_data}")

    import app as app_module
    from knowledge.store import open_default
    from tests.fakes import ScriptChat

    settings = app_module.AppSettings(
        port=free_port(),
        db_path=tmp_path / "threads.sqlite",
        plot_dir=tmp_path / "plots",
        uploads_dir=tmp_path / "uploads",
        data_dirs=[str(shared_data)],
        kb_dir=str(tmp_path / "kb"),
        runs_dir=str(tmp_path / "runs"),
        secret="e2e-secret",
    )
    kb = open_default(settings.kb_dir)
    llm = ScriptChat()
    parts = app_module.build_parts(settings, llm=llm, judge_llm=llm, kb=kb)
    demo = app_module.create_app(parts, settings)
    app_module.launch(demo, settings, block=False, quiet=True)
    try:
        yield {"url": f"http://127.0.0.1:{settings.port}/", "kb": kb, "data": shared_data, "tmp": tmp_path}
    finally:
        demo.close()


def test_task_recommendation_shap_approval_and_training_in_chromium(served: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    dataset = str(served["data"] / "busi_ultrasound.npz")
    records_before = len(served["kb"].records())
    shot = served["tmp"] / "e2e.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(served["url"])
            chat = page.locator("#chat")

            page.locator("#msg textarea").fill(TASK)
            page.get_by_text("Options", exact=True).click()
            page.locator("#dataset-path textarea, #dataset-path input").first.fill(dataset)
            page.locator("#backbones").get_by_label("efficientnet_lite0").check()
            page.locator("#modes").get_by_label("frozen").check()
            page.locator("#send").click()

            expect(chat).to_contain_text("Recommendation: efficientnet_lite0, frozen", timeout=STEP_MS)
            expect(chat).to_contain_text("Judge: draft 1 passed")
            shap = chat.locator("img[src*='shap-']")
            expect(shap.first).to_be_visible()
            assert shap.first.evaluate("img => img.naturalWidth") > 100
            expect(page.locator("#offer")).to_contain_text("Awaiting your approval")
            page.screenshot(path=str(served["tmp"] / "e2e-recommendation.png"))

            page.locator("#edit-text textarea, #edit-text input").first.fill("epochs=2")
            page.locator("#edit").click()
            expect(chat).to_contain_text("Edited offer (epochs", timeout=60_000)
            expect(page.locator("#offer")).to_contain_text("ep=2")

            page.locator("#approve").click()
            expect(chat).to_contain_text("Approved: training", timeout=60_000)
            progress = page.locator("#train-progress")
            expect(progress).to_contain_text("epoch", timeout=STEP_MS)
            page.screenshot(path=str(served["tmp"] / "e2e-training.png"))
            expect(chat).to_contain_text("Training finished", timeout=STEP_MS)
            expect(progress).to_contain_text("epoch 2/2")
            expect(chat).to_contain_text("New knowledge-base record")
            expect(chat.locator("img[src*='curve-']").first).to_be_visible()
            page.screenshot(path=str(shot), full_page=True)

            page.reload()  # the thread id lives in the browser; the conversation comes back from the checkpoints
            expect(page.locator("#chat")).to_contain_text("Training finished", timeout=60_000)
            other = browser.new_context().new_page()  # another browser session: its own, empty conversation
            other.goto(served["url"])
            expect(other.locator("#msg textarea")).to_be_visible()
            other.wait_for_timeout(1_000)
            assert "Recommendation" not in other.locator("#chat").inner_text()

            page.get_by_role("tab", name="Knowledge base").click()
            page.locator("#kb-refresh").click()
            expect(page.locator("#kb-counts")).to_contain_text("runs")
            expect(page.locator("#kb-runs")).to_contain_text("busi_ultrasound", timeout=30_000)
            expect(page.locator("#kb-best")).to_contain_text("busi_ultrasound")
            page.screenshot(path=str(served["tmp"] / "e2e-kb.png"), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    target = os.environ.get("METALLMIX_E2E_SCREENSHOT")
    if target:  # e.g. /tmp/e2e.png: the final page there, the other steps beside it
        for png in served["tmp"].glob("e2e*.png"):
            shutil.copyfile(png, Path(target).with_name(png.name.replace("e2e", Path(target).stem, 1)))
    print(f"screenshot: {shot}")
    new = served["kb"].records()[records_before:]
    assert len(new) == 1 and new[0].config.epochs == 2 and new[0].outcome.status == "ok"
    assert new[0].config.backbone == "efficientnet_lite0" and new[0].config.mode == "frozen"

"""The chat's layout in real headless Chromium at 1280x900, light and dark (issue 17): the live run
(progress and learning curve) in the viewport beside the conversation, the SHAP plot at a width
its labels read at, plots that follow dark mode, and the list of this browser's conversations
reopening an older one. Over the scripted parts of tests/fakes.py; the SHAP plot is drawn by the
real meta-model's plotting code (tools.metamodel.MetaModel.shap_plot) from the fake's explanation.

Screenshots go to $METALLMIX_SHOTS (default /tmp/metallmix-shots): layout-<scheme>-*.png.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.serving import serve_chat
from tests.browser.test_e2e_chromium import CHROMIUM, CHROMIUM_ARGS
from tests.fakes import TASK, FakeMetaModel, make_adapter, tiny_dataset

pytestmark = [pytest.mark.browser]
SHOTS = Path(os.environ.get("METALLMIX_SHOTS", "/tmp/metallmix-shots"))
VIEW = {"width": 1280, "height": 900}


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    pytest.importorskip("playwright.sync_api")
    from tools.metamodel import MetaModel

    # The real plotting code over the fake's explanation: the PNG has the real plot's size (825 px wide).
    monkeypatch.setattr(FakeMetaModel, "shap_plot", lambda self, meta, config, path: MetaModel.shap_plot(
        self, meta, config, path))  # type: ignore[arg-type]
    gate = threading.Event()  # the training job holds after its first epoch until this is set
    adapter, _ = make_adapter(tmp_path, gate=gate)
    data = tiny_dataset(tmp_path / "data")
    url, demo = serve_chat(adapter, tmp_path, "layout-secret")
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield {"url": url, "gate": gate, "data": data}
    finally:
        gate.set()
        demo.close()


def _in_viewport(box: dict[str, float] | None) -> bool:
    return box is not None and box["y"] >= 0 and box["x"] >= 0 and box["y"] + box["height"] <= VIEW["height"] \
        and box["x"] + box["width"] <= VIEW["width"]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_live_run_beside_the_chat_readable_plots_and_the_conversation_list(served: dict[str, Any], scheme: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    shot = lambda name: str(SHOTS / f"layout-{scheme}-{name}.png")  # noqa: E731
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEW, color_scheme=scheme)
            page.set_default_timeout(30_000)
            page.goto(served["url"])
            chat = page.locator("#chat")
            expect(page.locator("#msg textarea")).to_be_visible()
            dark = page.evaluate("() => document.body.classList.contains('dark') || "
                                 "document.querySelector('.gradio-container').classList.contains('dark')")
            assert dark == (scheme == "dark"), "the page does not follow the browser's colour scheme"

            # A request with a dataset: the card's SHAP plot at (nearly) its natural 825 px width.
            page.locator("#msg textarea").fill(TASK)
            page.get_by_text("Options", exact=True).click()
            page.locator("#dataset-path textarea, #dataset-path input").first.fill(served["data"])
            page.get_by_text("Options", exact=True).click()
            page.locator("#send").click()
            expect(chat).to_contain_text("Recommendation: efficientnet_lite0", timeout=60_000)
            shap = chat.locator("img[src*='/shap-']").first
            expect(shap).to_be_visible()
            natural = shap.evaluate("img => img.naturalWidth")
            shap.scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            width = shap.evaluate("img => img.getBoundingClientRect().width")
            assert natural >= 800 and width >= 800, f"the SHAP plot shows {width:.0f} px wide (natural {natural})"
            page.screenshot(path=shot("shap"))
            if scheme == "dark":
                assert "invert" in shap.evaluate("img => getComputedStyle(img).filter")

            # Approve: the live run's progress and curve sit beside the conversation, inside the viewport.
            page.locator("#approve").click()
            progress = page.locator("#train-progress")
            expect(progress).to_contain_text("epoch 1/2", timeout=60_000)
            curve = page.locator("#curve img")
            expect(curve).to_be_visible(timeout=30_000)
            page.evaluate("() => window.scrollTo(0, 0)")
            page.wait_for_timeout(500)
            assert _in_viewport(progress.bounding_box()), progress.bounding_box()
            assert _in_viewport(curve.bounding_box()), curve.bounding_box()
            chat_box = chat.bounding_box()
            assert chat_box is not None and chat_box["y"] < VIEW["height"] / 2
            assert curve.bounding_box()["x"] > chat_box["x"] + chat_box["width"] - 5  # beside it, not below
            filt = curve.evaluate("img => getComputedStyle(img).filter")
            assert ("invert" in filt) == (scheme == "dark"), filt
            page.screenshot(path=shot("training"))
            served["gate"].set()
            expect(chat).to_contain_text("Training finished", timeout=60_000)
            expect(progress).to_contain_text("epoch 2/2")

            # A new conversation keeps the old one in the list; picking it brings its messages back.
            page.locator("#new-thread").click()
            expect(chat).not_to_contain_text("Training finished")
            expect(page.locator("#training")).to_be_hidden()
            page.get_by_text("Options", exact=True).click()
            page.locator("#dataset-path textarea, #dataset-path input").first.fill("")
            page.get_by_text("Options", exact=True).click()
            page.locator("#msg textarea").fill("hello")
            page.locator("#msg textarea").press("Enter")
            expect(chat).to_contain_text("Describe your imaging task")
            page.locator("#conversations input").click()
            options = page.get_by_role("option")
            expect(options).to_have_count(2)
            expect(options.first).to_contain_text("hello")  # the latest first
            page.screenshot(path=shot("list"))
            page.get_by_role("option", name=TASK[:25], exact=False).click()
            expect(chat).to_contain_text("Training finished", timeout=30_000)
            expect(chat).not_to_contain_text("Describe your imaging task")
            page.screenshot(path=shot("reopened"))

            # The list is this browser's: another browser sees none of these threads.
            other = browser.new_context(viewport=VIEW, color_scheme=scheme).new_page()
            other.goto(served["url"])
            expect(other.locator("#msg textarea")).to_be_visible()
            other.wait_for_timeout(1_000)
            other.locator("#conversations input").click()
            assert "hello" not in other.locator("body").inner_text() and TASK[:25] not in other.locator("body").inner_text()
        finally:
            browser.close()
    print(f"screenshots: {SHOTS}")

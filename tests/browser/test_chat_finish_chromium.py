"""The chat finished (issue 17) in real headless Chromium, over the scripted parts of tests/fakes.py
(seconds, not minutes): Enter sends and Shift+Enter adds a line, clickable examples fill the message,
every input has a label, the upload's label is not cut off, the meta-model's pick shows before the
LLM answers, and the configuration comes in a block to copy.

Screenshots go to $METALLMIX_SHOTS (default /tmp/metallmix-shots); the test prints the folder.
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
from tests.fakes import make_adapter, tiny_dataset

pytestmark = [pytest.mark.browser]
SHOTS = Path(os.environ.get("METALLMIX_SHOTS", "/tmp/metallmix-shots"))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    pytest.importorskip("playwright.sync_api")
    from tests.test_chat_finish import _gate_the_llm

    adapter, _ = make_adapter(tmp_path)
    gate = threading.Event()
    _gate_the_llm(adapter, gate)
    tiny_dataset(tmp_path / "data")
    url, demo = serve_chat(adapter, tmp_path, "finish-secret")
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield {"url": url, "gate": gate}
    finally:
        gate.set()
        demo.close()


def test_examples_labels_enter_the_pick_and_the_export_in_chromium(served: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    import app as app_module

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)
            page.goto(served["url"])
            chat = page.locator("#chat")
            box = page.get_by_label(app_module.MSG_LABEL)  # the message box is found by its label
            expect(box).to_be_visible()

            # Labels: every text box, number and dropdown has an accessible name.
            page.get_by_text("Options", exact=True).click()
            for role in ("textbox", "spinbutton", "combobox"):
                for el in page.get_by_role(role).all():
                    if el.is_visible():
                        name = el.evaluate("e => e.getAttribute('aria-label') || (e.labels && e.labels.length ? "
                                           "e.labels[0].innerText : '')")
                        assert name.strip(), f"a {role} without a label: {el.evaluate('e => e.outerHTML')[:200]}"
            upload = page.locator("#upload")
            expect(upload).to_contain_text("Click to Upload")
            label = upload.get_by_text("Dataset (.npz or .zip of an image folder)")
            clipped = label.evaluate("e => e.scrollWidth > e.clientWidth + 1")
            assert not clipped, "the upload label is cut off"
            overflow = upload.evaluate("e => [...e.querySelectorAll('*')].filter(c => c.scrollHeight > c.clientHeight + 2 "
                                       "&& getComputedStyle(c).overflowY !== 'visible').length")
            assert overflow == 0, "part of the upload box is cut off"
            page.get_by_text("Options", exact=True).click()

            # Examples fill the message.
            examples = page.locator("#examples")
            expect(examples).to_contain_text("Chest x-rays")
            page.screenshot(path=str(SHOTS / "finish-start.png"))
            examples.get_by_text(app_module.EXAMPLES[1][:30]).click()
            expect(box).to_have_value(app_module.EXAMPLES[1])

            # Shift+Enter adds a line and sends nothing; Enter sends.
            box.fill("skin lesion dermoscopy, 8 classes, 2,000 images")
            box.press("End")
            box.press("Shift+Enter")
            box.type("I have 15 minutes on a laptop CPU")
            expect(box).to_have_value("skin lesion dermoscopy, 8 classes, 2,000 images\nI have 15 minutes on a laptop CPU")
            page.wait_for_timeout(500)
            assert "dermoscopy" not in chat.inner_text()
            box.press("Enter")

            # The pick shows while the LLM is held; then the card takes its place.
            expect(chat).to_contain_text("The meta-model's pick:", timeout=30_000)
            expect(chat).to_contain_text("efficientnet_lite0/frozen")
            assert "Recommendation: efficientnet_lite0" not in chat.inner_text()
            page.screenshot(path=str(SHOTS / "finish-pick.png"))
            served["gate"].set()
            expect(chat).to_contain_text("Recommendation: efficientnet_lite0, frozen", timeout=30_000)
            expect(chat).not_to_contain_text("The meta-model's pick:")

            # The configuration to take away: a collapsible block with code blocks to copy.
            chat.get_by_text("Take this configuration away").click()
            expect(chat).to_contain_text("metallmix train --dataset")
            expect(chat).to_contain_text("from tools.jobs import Job")
            command = chat.locator("pre", has_text="metallmix train --dataset").first
            expect(command).to_be_visible()
            command.scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            page.screenshot(path=str(SHOTS / "finish-export.png"))
        finally:
            browser.close()
    print(f"screenshots: {SHOTS}")

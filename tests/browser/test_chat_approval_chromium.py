"""Approvals in the chat (issue 17's leftovers) in real headless Chromium at 1280x900, over the scripted
parts of tests/fakes.py: the pending approval (the single run's offer, and each trial of a tuning session
asked one by one) waits beside the conversation, in the viewport without scrolling; every message the user
typed ("yes", "no, too slow") shows as theirs and no other does; each trial card says that trial's own time
(its jobs train 15 s on features an earlier run extracted in 36 s, so the record's total is 51 s).

One app and one Chromium serve the module; each test opens its own browser context, so its own
localStorage and its own conversation (the tests do not depend on each other).

A message that answers nothing while a trial waits stays in the message box (with a line saying why).

Screenshots go to $METALLMIX_SHOTS (default /tmp/metallmix-shots): approval-visible-*.png,
typed-approval-*.png, trial-time-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.serving import serve_chat
from tests.browser.test_chat_layout_chromium import SHOTS, VIEW, _in_viewport
from tests.browser.test_e2e_chromium import CHROMIUM, CHROMIUM_ARGS
from tests.fakes import TASK, make_adapter, tiny_dataset

pytestmark = [pytest.mark.browser]
CACHED = {"train_seconds": 15.0, "feature_seconds": 36.0, "cache": "hit"}
OWN_TIME = "in 15 s (the backbone features came from the cache; extracting them took 36 s in an earlier run)"



@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    pytest.importorskip("playwright.sync_api")

    tmp = tmp_path_factory.mktemp("approval")
    adapter, jobs = make_adapter(tmp)
    jobs.timing = CACHED
    data = tiny_dataset(tmp / "data")
    url, demo = serve_chat(adapter, tmp, "approval-secret")
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield {"url": url, "data": data}
    finally:
        demo.close()


@pytest.fixture(scope="module")
def chromium(served: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    print(f"screenshots: {SHOTS}")


@pytest.fixture
def page(chromium: Any, served: dict[str, Any]) -> Iterator[Any]:
    """A fresh context (its own localStorage: a new conversation) on the app."""
    from playwright.sync_api import expect

    context = chromium.new_context(viewport=VIEW)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(served["url"])
    expect(page.locator("#msg textarea")).to_be_visible()
    try:
        yield page
    finally:
        context.close()


def _type(page: Any, text: str) -> None:
    box = page.locator("#msg textarea")
    box.fill(text)
    box.press("Enter")


def _recommend(page: Any, data: str) -> None:
    """Send the task with its dataset (a server path, under Options) and wait for the offer."""
    from playwright.sync_api import expect

    page.get_by_text("Options", exact=True).click()
    page.locator("#dataset-path textarea, #dataset-path input").first.fill(data)
    page.get_by_text("Options", exact=True).click()
    _type(page, TASK)
    expect(page.locator("#chat")).to_contain_text("Recommendation: efficientnet_lite0", timeout=60_000)
    expect(page.locator("#offer")).to_contain_text("Awaiting your approval")


def _approval(page: Any) -> Any:
    """The approval box (Gradio renders a Group's elem_id on two nested elements: the outer one)."""
    return page.locator("#approval").first


def _said(page: Any) -> list[str]:
    """The user's messages on screen, in order."""
    return [t.strip() for t in page.locator("#chat .message-row.user-row").all_inner_texts()]


def _scroll_chat_to(page: Any, element: Any) -> None:
    """Scroll the conversation up with the mouse wheel, as a person would, until `element` is near its top."""
    box = page.locator("#chat").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(40):
        top = element.bounding_box()["y"]
        if top >= box["y"] + 20:
            break
        page.mouse.wheel(0, max(-300, top - box["y"] - 40))
        page.wait_for_timeout(100)
    page.wait_for_timeout(300)


def _approval_in_view(page: Any) -> None:
    """The approval box, its buttons and the conversation are in the viewport, at the scroll position the page
    is at and at its top (the user reads the chat without scrolling to answer)."""
    from playwright.sync_api import expect

    expect(_approval(page)).to_be_visible()
    for where in ("as is", "top"):
        if where == "top":
            page.evaluate("() => window.scrollTo(0, 0)")
            page.wait_for_timeout(300)
        for sel in ("#offer", "#approve", "#reject", "#edit-text"):
            assert _in_viewport(page.locator(sel).bounding_box()), (where, sel, page.locator(sel).bounding_box())
        chat = page.locator("#chat").bounding_box()  # the conversation fills much of the screen beside it
        assert chat is not None and min(chat["y"] + chat["height"], VIEW["height"]) - max(chat["y"], 0) >= 450, \
            (where, chat)
        offer = _approval(page).bounding_box()
        assert offer["x"] > chat["x"] + chat["width"] - 5, "the approval is not beside the conversation"


def test_the_offer_waits_beside_the_chat_and_a_typed_yes_shows_as_typed(page: Any, served: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    _recommend(page, served["data"])
    _approval_in_view(page)
    page.screenshot(path=str(SHOTS / "approval-visible-offer.png"))

    _type(page, "yes, go ahead")
    chat = page.locator("#chat")
    expect(chat).to_contain_text("Training finished", timeout=60_000)
    expect(_approval(page)).to_be_hidden()
    assert _said(page) == [f"{TASK}\n\n(dataset {Path(served['data']).name})", "yes, go ahead"], _said(page)
    page.screenshot(path=str(SHOTS / "typed-approval-offer.png"))


def test_each_trial_waits_in_view_typed_answers_show_and_cards_say_the_trials_own_time(
        page: Any, served: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    chat, offer = page.locator("#chat"), page.locator("#offer")
    _recommend(page, served["data"])
    _type(page, "tune 3 trials, ask before each")
    expect(offer).to_contain_text("Trial 1 of the tuning session, awaiting your approval")
    _approval_in_view(page)
    page.screenshot(path=str(SHOTS / "approval-visible-trial.png"))

    # Words that answer nothing are not taken: they stay in the box, with a line saying why, and no bubble.
    _type(page, "hmm, let me think")
    expect(page.locator("#notice")).to_contain_text("Your message is still in the box")
    expect(page.locator("#msg textarea")).to_have_value("hmm, let me think")
    assert "hmm, let me think" not in _said(page)
    page.screenshot(path=str(SHOTS / "typed-approval-held.png"))

    _type(page, "yes")
    expect(offer).to_contain_text("Trial 2 of the tuning session", timeout=60_000)
    expect(chat).to_contain_text("Trial 1 result:")
    _approval_in_view(page)
    card = chat.locator(".message-row", has_text="Trial 1 result:").first
    expect(card).to_contain_text(OWN_TIME)
    assert "51 s" not in card.inner_text()
    page.screenshot(path=str(SHOTS / "typed-approval-yes.png"))

    page.locator("#approve").click()  # the button: shown as "Approve", as for the single run's offer
    expect(offer).to_contain_text("Trial 3 of the tuning session", timeout=60_000)
    _type(page, "no, too slow")
    expect(chat).to_contain_text("Tuning stopped: trial 3 not approved: too slow", timeout=60_000)
    expect(_approval(page)).to_be_hidden()
    data = Path(served["data"]).name
    assert _said(page) == [f"{TASK}\n\n(dataset {data})", "tune 3 trials, ask before each", "yes", "Approve",
                           "no, too slow"], _said(page)
    page.screenshot(path=str(SHOTS / "typed-approval-no.png"))

    cards = chat.locator(".message-row", has_text="result:")
    expect(cards).to_have_count(2)
    for text in cards.all_inner_texts():
        assert OWN_TIME in text and "51 s" not in text, text
    expect(page.locator("#train-progress")).to_contain_text(f"finished: test accuracy 0.810 {OWN_TIME}")
    page.evaluate("() => window.scrollTo(0, 0)")
    # Both cards on screen: the chat's own scroll box scrolled to the first one.
    _scroll_chat_to(page, chat.get_by_text("Trial 1 result:").first)
    page.screenshot(path=str(SHOTS / "trial-time-cards.png"))
    summary = chat.locator(".message-row", has_text="Tuning stopped").first
    expect(summary).to_contain_text("own time")
    rows = summary.locator("tbody tr").all_inner_texts()
    assert len(rows) == 2 and all(r.split("\t")[-1].strip() == "15 s" for r in rows), rows

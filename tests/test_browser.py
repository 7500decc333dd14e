"""One real browser session: headless Chromium types into the app, runs a blind A/B turn, votes, sees the reveal.

Needs Debian's ``chromium`` at /usr/bin/chromium (CI installs it); playwright's own browser
download does not work offline, so the test points playwright at that binary.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

from chatbot.app import AppConfig, ChatApp, build_app
from chatbot.app.ab_tab import HIDDEN_SETTINGS
from chatbot.app.layout import launch_options

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 60_000  # generous: 2 CPU cores shared with other work
REVEAL_SCREENSHOT = Path("/tmp/ab_reveal.png")  # kept after the run: look at it

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
]


@pytest.fixture
def served(tiny_chatbot, tmp_path):
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    config = AppConfig(model=tiny_chatbot, data_dir=tmp_path / "data", bootstrap_rounds=20)
    app = ChatApp(config)
    demo = build_app(config, app)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, url, _ = demo.launch(server_port=port, prevent_thread_lock=True, quiet=True, **launch_options(config))
    yield url, app
    demo.close()


def local_only(route) -> None:
    """Let requests to the app through; abort anything else."""
    if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
        route.continue_()
    else:
        route.abort()


def test_chat_and_ab_vote_in_a_real_browser(served, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, app = served
    expect.set_options(timeout=TIMEOUT_MS)  # assertions wait as long as actions do
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.route("**/*", local_only)  # tests never reach the network, even for a font
            page.goto(url)
            expect(page.get_by_text("dialogue checkpoint")).to_be_visible()  # the model status line

            # chat: type, press Enter, a reply appears under the message
            box = page.get_by_placeholder("Type a message and press Enter")
            box.fill("hi, how are you?")
            box.press("Enter")
            expect(page.locator('[data-testid="user"]').first).to_contain_text("hi, how are you?")
            expect(page.locator('[data-testid="bot"]').first).not_to_be_empty()
            expect(page.get_by_text("tokens/s")).to_be_visible()
            page.get_by_text("Why this reply").click()  # the candidates, the chosen one marked
            expect(page.get_by_text("rejected because")).to_be_visible()
            page.screenshot(path=tmp_path / "chat.png", full_page=True)

            # A/B, blind (the default): one message, both replies at once, sides and settings hidden
            page.get_by_role("tab", name="A/B compare").click()
            expect(page.get_by_label("Blind: random sides, settings hidden until you vote")).to_be_checked()
            box = page.get_by_placeholder("Type a message for A and B")
            box.fill("what do you do for fun?")
            box.press("Enter")
            vote = page.get_by_role("button", name="Left better")
            expect(vote).to_be_enabled()
            expect(page.get_by_text(HIDDEN_SETTINGS)).to_have_count(2)  # both panels, neutrally labelled
            expect(page.get_by_text("Settings A", exact=True)).to_have_count(0)
            expect(page.get_by_label("Left reply")).not_to_be_empty()
            expect(page.get_by_label("Right reply")).not_to_be_empty()
            page.screenshot(path=tmp_path / "ab_replies.png", full_page=True)
            vote.click()
            # the reveal: which side was which setting, how each reply was made, what differs
            expect(page.get_by_text("Vote stored.")).to_be_visible()
            expect(page.get_by_text("continues the conversation").first).to_be_visible()
            expect(page.get_by_text("Settings A", exact=True)).to_be_visible()
            expect(page.get_by_text("Left was").first).to_be_visible()
            expect(page.get_by_text("A vs B:")).to_be_visible()  # top-p against greedy: the diff
            expect(page.get_by_text("of 1 votes rated")).to_be_visible()  # the leaderboard took the vote
            page.screenshot(path=REVEAL_SCREENSHOT, full_page=True)
        finally:
            browser.close()

    [stored] = app.votes.store.votes()
    assert stored.winner == ("B" if stored.swapped else "A")  # "left" was A unless blind mode swapped
    assert stored.conversation == [{"role": "user", "content": "what do you do for fun?"}]
    assert REVEAL_SCREENSHOT.stat().st_size > 10_000

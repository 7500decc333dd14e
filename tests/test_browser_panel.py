"""The sampling panel in a real browser: a picked preset fills the controls, a strategy hides the fields it
does not use, Save as preset writes the data folder. Uses the Chromium setup of ``test_browser``."""

from __future__ import annotations

import json

import pytest

from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, local_only, pytestmark, served  # noqa: F401

assert pytestmark  # the browser marker and the skip when Chromium is missing apply here too


@pytest.mark.slow
def test_sampling_panel_in_a_real_browser(served, tmp_path):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    url, app = served
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.route("**/*", local_only)
            calls = []  # every event the page sends; an idle panel sends none
            page.on("request", lambda request: calls.append(request.url) if "/gradio_api/" in request.url else None)
            page.goto(url)
            chat = page.get_by_role("tabpanel").first  # the Chat tab's panel
            differs = chat.locator(".differs").first
            expect(differs).to_have_text("Preset top-p (unchanged)")
            expect(chat.get_by_text("Min-p", exact=True)).to_be_visible()  # its group is open for top-p
            expect(chat.get_by_text("DRY base", exact=True)).to_be_hidden()  # DRY is off

            # a preset fills every control, opens the groups it uses and shows the fields its switches turn on
            chat.get_by_label("Chat preset").click()
            page.get_by_role("option", name="dry", exact=True).click()
            expect(chat.get_by_text("DRY base", exact=True)).to_be_visible()
            expect(differs).to_have_text("Preset dry (unchanged)")
            # beam search uses no truncation: min_p's group goes, the beam group comes
            chat.get_by_label("beam", exact=True).check()
            expect(chat.get_by_text("Min-p", exact=True)).to_be_hidden()
            expect(chat.get_by_text("Beam search", exact=True)).to_be_visible()
            expect(differs).to_contain_text("strategy sample -> beam")

            chat.get_by_placeholder("new preset name", exact=True).fill("my-dry-beams")
            chat.get_by_role("button", name="Save as preset").click()
            expect(differs).to_have_text("Preset my-dry-beams (unchanged)")
            # no event re-triggers itself: once the save has settled, the page goes quiet
            page.wait_for_timeout(1000)
            settled = len(calls)
            page.wait_for_timeout(2000)
            assert calls[settled:] == [], f"the idle panel kept sending events: {calls[settled:][:3]}"
            page.screenshot(path=tmp_path / "panel.png", full_page=True)
        finally:
            browser.close()

    saved = json.loads((app.config.data_dir / "presets.json").read_text())["my-dry-beams"]
    assert (saved["strategy"], saved["dry_multiplier"]) == ("beam", 0.8)

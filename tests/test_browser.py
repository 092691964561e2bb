"""End to end in a real browser: `streamlit run app.py`, headless Chromium, two uploads on /Classify."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.app import LABELS, image_bytes

from cifarnets.perf.loadtest import CHROMIUM, CHROMIUM_ARGS

WAIT_MS = 120_000  # the first page loads torch and four models on a busy machine

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)")
def test_classify_two_uploads_in_chromium(app_url, tmp_path):
    from playwright.sync_api import sync_playwright

    files = []
    for name, fmt, seed in (("first-upload.png", "PNG", 1), ("second-upload.jpg", "JPEG", 2)):
        path = tmp_path / name
        path.write_bytes(image_bytes(fmt, size=(96, 64), seed=seed))
        files.append(path)

    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1400, "height": 1800})
        try:
            page = browser.new_page()
            outside = []  # the page must not reach the internet (fonts, icons, telemetry)
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(app_url) else None)
            page.goto(f"{app_url}/Classify")
            page.get_by_text("Upload images").first.wait_for(timeout=WAIT_MS)
            page.locator(".st-key-uploads input[type=file]").set_input_files([str(f) for f in files])
            # Bold text is the result cards' (the uploader's own file list is not): names and network labels.
            for text in [f.name for f in files] + list(LABELS):
                page.locator(f"strong:text-is('{text}')").first.wait_for(timeout=WAIT_MS)
            page.get_by_text("Summary", exact=True).wait_for(timeout=WAIT_MS)  # drawn after every card
            assert page.locator("strong:text-is('SE-ResNet')").count() == 2  # a column on each image's card
            page.screenshot(path=str(tmp_path / "classify.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "classify.png").stat().st_size > 10_000
    assert not [u for u in outside if not u.startswith(("data:", "blob:"))], outside

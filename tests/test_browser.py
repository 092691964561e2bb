"""End to end in a real browser: `streamlit run app.py`, headless Chromium, two uploads on /Classify."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from app_helpers import APP, LABELS, image_bytes, make_checkpoints

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 120_000  # the first page loads torch and four models on a busy machine

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app_url(tmp_path):
    """The app served on a free localhost port, with tiny checkpoints for all four networks."""
    port = free_port()
    env = dict(os.environ, CIFARNETS_CHECKPOINTS=str(make_checkpoints(tmp_path / "checkpoints")),
               CIFARNETS_RUNS=str(tmp_path / "runs"), CIFARNETS_DEVICE="cpu")
    log = open(tmp_path / "streamlit.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=APP.parent, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the port answers; the page itself is awaited by its text
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "streamlit.log").read_text()
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


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
            page.locator("input[type=file]").first.set_input_files([str(f) for f in files])
            # Bold text is the result cards' (the uploader's own file list is not): names and network labels.
            for text in [f.name for f in files] + list(LABELS):
                page.locator(f"strong:text-is('{text}')").first.wait_for(timeout=WAIT_MS)
            assert page.locator("strong:text-is('SE-ResNet')").count() == 2  # a column on each image's card
            page.get_by_text("Summary", exact=True).wait_for(timeout=WAIT_MS)
            page.screenshot(path=str(tmp_path / "classify.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "classify.png").stat().st_size > 10_000
    assert not [u for u in outside if not u.startswith(("data:", "blob:"))], outside

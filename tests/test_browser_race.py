"""In a real browser: the sidebar's expected time before Start, and a race of the four drawn as it runs.

Screenshots land in the test's folder, and also in $CIFARNETS_SCREENSHOTS when it is set, for a person to
look at: the estimate's caption, the race's chart inside its card, the legend not cut off.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import make_image_folder
from helpers.app import LABELS, make_checkpoints

from cifarnets.perf.loadtest import CHROMIUM, CHROMIUM_ARGS, serve
from cifarnets.runs import engine
from cifarnets.runs import race as races
from cifarnets.runs.record import LIVE

WAIT_MS = 180_000  # the first page loads torch and the networks on a busy machine
RACE_LIMIT_S = 400  # four tiny runs of three epochs, torch's start-up included, on a busy 2-core machine

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")]


def shoot(locator, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    locator.screenshot(path=str(path))
    if folder := os.environ.get("CIFARNETS_SCREENSHOTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / path.name)
    return path


def test_estimate_and_a_race_in_chromium(tmp_path):
    from playwright.sync_api import sync_playwright

    data = make_image_folder(tmp_path / "shapes", n_train=50, n_test=10)  # 150 images: one batch of the CNN's 128
    runs = tmp_path / "runs"
    env = dict(os.environ, CIFARNETS_CHECKPOINTS=str(make_checkpoints(tmp_path / "checkpoints")),
               CIFARNETS_RUNS=str(runs), CIFARNETS_DEVICE="cpu", CIFARNETS_DATA=str(data))
    with serve(env=env, log=tmp_path / "streamlit.log") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2600})  # the whole sidebar in view
            page.goto(url)
            sidebar = page.locator("[data-testid=stSidebar]")
            caption = sidebar.get_by_text("Estimated from")  # the estimate itself, once the steps are timed
            caption.wait_for(timeout=WAIT_MS)
            assert "the 150 training and 30 test images in shapes/" in caption.text_content()
            assert "Estimated from" in caption.text_content() and "cpu (" in caption.text_content()
            shoot(sidebar, tmp_path, "sidebar-estimate")

            epochs = sidebar.locator("input[aria-label='Epochs (each)']")
            epochs.fill("3")
            epochs.press("Enter")
            batch = sidebar.locator("input[aria-label='Batch size']").nth(1)  # the race's; the trainer's is first
            batch.fill("16")
            batch.press("Enter")
            page.wait_for_timeout(1500)
            sidebar.get_by_role("button", name="Start the race").click()
            sidebar.get_by_text("fast race").wait_for(timeout=WAIT_MS)
            assert sidebar.get_by_role("button", name="Start the race").is_disabled()  # one race at a time

            deadline = time.monotonic() + RACE_LIMIT_S
            while (race := races.list_races(runs)[0]).state != "finished":
                assert race.state in ("queued", *LIVE) and time.monotonic() < deadline, race.error
                time.sleep(1)
            sidebar.get_by_text("finished").first.wait_for(timeout=WAIT_MS)  # the fragment has polled it
            # the race's card: the innermost block holding its title and its chart (outer blocks come first)
            card = sidebar.locator("[data-testid=stVerticalBlock]", has_text="fast race",
                                   has=page.locator("[data-testid=stVegaLiteChart]")).last
            chart = card.locator("[data-testid=stVegaLiteChart]")
            chart.locator("svg, canvas").first.wait_for(timeout=WAIT_MS)
            page.wait_for_timeout(1500)  # the chart is laid out in the browser after the script has run
            for name in LABELS:  # the legend names all four, and the standings give each its accuracy
                assert card.get_by_text(f"{name}:").count() == 1
            chart_box, card_box = chart.bounding_box(), card.bounding_box()
            assert chart_box["x"] + chart_box["width"] <= card_box["x"] + card_box["width"]  # inside its card
            shoot(card, tmp_path, "sidebar-race")
            assert not page.locator("[data-testid=stException], [data-testid=stAlertContentError]").count()
        finally:
            browser.close()
            engine.stop(runs)

"""Public mode in Chromium: a visitor is the same visitor after a reload and in a new tab of the same browser,
with their run, its progress and their adoption; another browser, or a shared link, is someone else."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import make_image_folder
from helpers.app import make_checkpoints

from cifarnets.perf.loadtest import CHROMIUM, CHROMIUM_ARGS, serve
from cifarnets.runs import engine

WAIT_MS = 180_000  # a busy 2-core machine: torch, four networks and a trainer starting beside them
SHOTS = os.environ.get("CIFARNETS_SHOTS")  # a folder to keep the screenshots in, to look at them

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(1200),
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")]


def sidebar(page):
    return page.locator("[data-testid=stSidebar]")


def test_a_reload_keeps_the_run_its_progress_and_its_adoption(tmp_path):

    env = dict(os.environ, CIFARNETS_PUBLIC="1", CIFARNETS_CHECKPOINTS=str(make_checkpoints(tmp_path / "shipped")),
               CIFARNETS_RUNS=str(tmp_path / "runs"), CIFARNETS_DEVICE="cpu", CIFARNETS_MAX_BATCH="2",
               CIFARNETS_DATA=str(make_image_folder(tmp_path / "operator-data", n_train=200)))
    shots = Path(SHOTS or tmp_path)
    try:
        _reload_keeps_everything(env, tmp_path, shots)
    finally:
        engine.stop(tmp_path / "runs")


def _reload_keeps_everything(env: dict, tmp_path: Path, shots: Path) -> None:
    from playwright.sync_api import sync_playwright

    with serve(env=env, log=tmp_path / "streamlit.log") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        mine = browser.new_context(viewport={"width": 1400, "height": 1400})
        page = mine.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        epochs = page.get_by_label("Epochs", exact=True)
        epochs.fill("3")
        epochs.press("Enter")
        page.get_by_text("3 epochs ×").first.wait_for()
        page.get_by_role("button", name="Start training").click()
        toast = page.get_by_text(re.compile(r"^CNN joined the queue: ")).first
        toast.wait_for()
        name = re.search(r"cnn-\S+", toast.inner_text())[0]

        page.reload()  # mid-run: the trainer is still starting or training
        card = sidebar(page).get_by_text(name, exact=True)
        card.wait_for()
        live = sidebar(page).get_by_role("button", name="Cancel")
        finished = sidebar(page).get_by_role("button", name="Use for CNN in Classify")
        live.or_(finished).first.wait_for()
        was_live = live.count() > 0
        page.screenshot(path=str(shots / "visitor-after-reload.png"), full_page=True)

        other_tab = mine.new_page()  # the same browser, a new tab: the same visitor
        other_tab.goto(url)
        sidebar(other_tab).get_by_text(name, exact=True).wait_for(timeout=WAIT_MS)
        other_tab.close()

        stranger = browser.new_context(viewport={"width": 1400, "height": 1400}).new_page()  # a shared link
        stranger.goto(f"{url}/Training_curves")
        stranger.get_by_text("No runs yet", exact=False).first.wait_for(timeout=WAIT_MS)
        assert sidebar(stranger).get_by_text(name, exact=True).count() == 0

        finished.wait_for()  # the run ends; its visitor makes it the CNN that answers
        finished.click()
        confirm = sidebar(page).get_by_role("button", name="Use my run anyway")
        in_use = sidebar(page).get_by_text("CNN classifies with this run.")
        confirm.or_(in_use).first.wait_for()
        if confirm.count():
            confirm.click()
        in_use.wait_for()
        page.reload()
        sidebar(page).get_by_text("CNN classifies with this run.").wait_for()
        page.goto(f"{url}/Classify")
        page.get_by_text("Answering from your own run: CNN", exact=False).first.wait_for()
        page.screenshot(path=str(shots / "visitor-adoption-after-reload.png"), full_page=True)
        stranger.goto(f"{url}/Classify")
        stranger.get_by_text("Upload images").first.wait_for(timeout=WAIT_MS)
        assert stranger.get_by_text("Answering from your own run", exact=False).count() == 0
        browser.close()
    assert was_live, "the run had ended before the reload: this test needs a slower trainer"

"""In a real browser: the drawn architectures, the stage maps, and a view's link opened fresh elsewhere.

Screenshots land in the test's folder, and also in $CIFARNETS_SCREENSHOTS when it is set, for a person to
look at: the diagrams' labels, the shapes on their edges, the maps side by side.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]
WAIT_MS = 180_000  # the first page loads torch and the networks on a busy machine
VIEWPORT = {"width": 1500, "height": 2400}  # tall: Streamlit scrolls inside the page, not the window

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")]


def shoot(page, tmp_path: Path, name: str) -> Path:
    page.wait_for_timeout(1500)  # the diagrams are laid out in the browser after the script has run
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if folder := os.environ.get("CIFARNETS_SCREENSHOTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / path.name)
    assert path.stat().st_size > 20_000
    return path


def visible(page, selector: str):
    return page.locator(f"{selector} >> visible=true").first


def test_diagrams_stage_maps_and_a_shared_link(app_url, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            first = browser.new_context(viewport=VIEWPORT)
            page = first.new_page()
            outside = []  # nothing may come from beyond the app (fonts, the Graphviz renderer, telemetry)
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(app_url) else None)

            page.goto(f"{app_url}/Architecture")
            visible(page, "[data-testid=stGraphVizChart] svg").wait_for(timeout=WAIT_MS)
            assert "6x28x28" in visible(page, "[data-testid=stGraphVizChart] svg").text_content()  # the CNN's
            page.get_by_role("tab", name="ResNet", exact=True).click()
            visible(page, "text=identity").wait_for(timeout=WAIT_MS)  # an identity shortcut, drawn
            shoot(page, tmp_path, "architecture-blocks")

            page.get_by_role("tab", name="DenseNet", exact=True).click()
            page.locator("[data-testid=stButtonGroup] button", has_text="every layer").first.click()
            page.wait_for_function("() => location.search.includes('level=') && location.search.includes('network=')",
                                   timeout=WAIT_MS)
            visible(page, "text=conv.2").wait_for(timeout=WAIT_MS)  # a dense layer's own conv, drawn alone
            shoot(page, tmp_path, "architecture-every-layer")
            link = page.url
            assert parse_qs(urlparse(link).query) == {"network": ["DenseNet"], "level": ["every layer"]}

            fresh = browser.new_context(viewport=VIEWPORT)  # another person: no cookies, no session
            other = fresh.new_page()
            other.goto(link)
            visible(other, "text=conv.2").wait_for(timeout=WAIT_MS)
            assert other.get_by_role("tab", name="DenseNet", exact=True).get_attribute("aria-selected") == "true"
            assert "164x4x4" in visible(other, "[data-testid=stGraphVizChart] svg").text_content()
            shoot(other, tmp_path, "shared-link-opened-fresh")

            other.goto(f"{app_url}/Architecture?network=Inception")
            visible(other, "text=The link asks for the network").wait_for(timeout=WAIT_MS)
            assert other.get_by_role("tab", name="CNN", exact=True).get_attribute("aria-selected") == "true"
            fresh.close()

            page.goto(f"{app_url}/Why_they_differ?tab=What+every+stage+sees")
            visible(page, "text=Channels per stage").wait_for(timeout=WAIT_MS)
            visible(page, "text=transition2").wait_for(timeout=WAIT_MS)
            shoot(page, tmp_path, "stage-maps")
            assert not [u for u in outside if not u.startswith(("data:", "blob:"))], outside
        finally:
            browser.close()


def test_pagetime_times_home_and_a_switch_to_every_why_tab(app_url):
    """The timing tool docs/performance.md quotes: every figure it reports was taken (no timings asserted)."""
    from cifarnets.perf import pagetime

    result = pagetime.measure(app_url, repeat=1, first_after_start=True, timeout_s=WAIT_MS / 1000)
    assert result["home_first_after_start_s"] > 0 and len(result["home_warm_s"]) == 1
    assert len(result["why_first_warm_s"]) == 1
    assert list(result["why_tab_s"]) == pagetime.WHY_TABS and all(len(v) == 1 for v in result["why_tab_s"].values())
    assert "switch to Unfamiliar inputs" in pagetime.table(result)


PHONE = {"width": 390, "height": 6000}  # a phone's width; tall, since Streamlit scrolls inside the page
CHART_TABS = ("Gradient flow", "Cost", "Quality", "What they look at", "Feature reuse", "Unfamiliar inputs")


def test_why_charts_fit_a_phone_screen(tmp_path):
    """Every chart of the Why they differ page within a 390-pixel screen: faceted charts of fixed-width panels ran
    off its side, hiding the trained networks' gradients and two of DenseNet's three blocks. The shipped
    networks, whose stored measurements draw every chart (the tiny test checkpoints have none)."""
    from playwright.sync_api import sync_playwright

    from cifarnets.perf.loadtest import serve

    env = {k: v for k, v in os.environ.items() if k != "CIFARNETS_CHECKPOINTS"}
    env |= {"CIFARNETS_RUNS": str(tmp_path / "runs"), "CIFARNETS_DEVICE": "cpu"}
    with serve(env=env, log=tmp_path / "streamlit.log") as app_url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_context(viewport=PHONE).new_page()
            for tab in CHART_TABS:
                page.goto(f"{app_url}/Why_they_differ?tab={tab.replace(' ', '+')}")
                charts = page.locator("[data-testid*=VegaLiteChart]")
                charts.first.wait_for(timeout=WAIT_MS)
                page.wait_for_timeout(1500)  # Vega lays a chart out after the element appears
                boxes = [charts.nth(i).bounding_box() for i in range(charts.count())]
                shoot(page, tmp_path, f"phone-{tab.replace(' ', '-').lower()}")
                wide = [round(b["x"] + b["width"]) for b in boxes if b and b["x"] + b["width"] > PHONE["width"]]
                assert not wide, f"{tab}: charts reach {wide} px on a {PHONE['width']} px screen"
        finally:
            browser.close()

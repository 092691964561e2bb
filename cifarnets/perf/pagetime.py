"""python -m cifarnets pagetime: how long the app's pages take to answer, in a real browser.

One headless Chromium (Playwright) against the app: Home's first load after the server starts, Home
again in fresh sessions (warm), Why they differ's first load (warm), and a switch to each of its tabs.
Each figure runs from the navigation or the click to the moment the content is drawn and Streamlit's
script state is back to "notRunning" with nothing greyed out (stale): what a person waits for. Without
--url it serves `streamlit run app.py` itself on a free 127.0.0.1 port (or --port) and stops it after.
"""

from __future__ import annotations

import json
import statistics
import time

from .loadtest import CHROMIUM, CHROMIUM_ARGS, ERRORS, LoadError, check, serve

WHY_TABS = ["Gradient flow", "Cost", "Quality", "What they look at", "What every stage sees", "Feature reuse",
            "Unfamiliar inputs"]
HOME_DRAWN = "[data-testid=stMetric]"  # the four cards' figures
TAB_DRAWN = "[role=tabpanel]:not([hidden]) [data-testid=stMarkdown]"
# Streamlit marks the app root with its script state; elements of the previous run are marked stale.
IDLE = """() => {
    const app = document.querySelector('[data-testid=stApp]');
    return app && app.getAttribute('data-test-script-state') === 'notRunning'
        && !document.querySelector('[data-stale=true]') && !document.querySelector('[data-testid=stSpinner]');
}"""
# Set before a click, so a rerun that starts and ends between two polls is still seen.
WATCH = """() => {
    window.__ran = false;
    const app = document.querySelector('[data-testid=stApp]');
    new MutationObserver(() => {
        if (app.getAttribute('data-test-script-state') !== 'notRunning') window.__ran = true;
    }).observe(app, {attributes: true});
}"""


def add_parser(sub) -> None:
    p = sub.add_parser("pagetime", help="page load and tab switch times of the app, in a headless browser",
                       description=__doc__.split("\n\n")[1].replace("\n", " "))
    p.add_argument("--url", help="an app already running on this machine (default: start one)")
    p.add_argument("--port", type=int, help="the port to serve on when starting one (default: a free one)")
    p.add_argument("--repeat", type=int, default=3, help="warm loads and tab switches to time each (default 3)")
    p.add_argument("--width", type=int, default=1400, help="browser window width in px (default 1400)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_pagetime)


def cmd_pagetime(args) -> int:
    if not 1 <= args.repeat <= 20:
        raise ValueError("--repeat must be 1 to 20")
    if args.url:
        check(1, [], 600, args.url)
        result = measure(args.url, args.repeat, args.width, first_after_start=False)
    else:
        with serve(port=args.port) as url:
            result = measure(url, args.repeat, args.width, first_after_start=True)
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


def _wait(page, drawn: str, timeout_ms: float, after_click: bool = False) -> None:
    page.wait_for_selector(drawn, timeout=timeout_ms)
    if after_click:
        page.wait_for_function("() => window.__ran", timeout=timeout_ms)
    page.wait_for_function(IDLE, timeout=timeout_ms)
    if page.query_selector(ERRORS):
        raise LoadError(f"the page showed an error: {page.inner_text(ERRORS)[:300]}")


def _load(browser, url: str, drawn: str, width: int, timeout_ms: float) -> tuple[float, object]:
    """Seconds from navigating a fresh session (its own context) to the page drawn and idle; and the page."""
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    tick = time.perf_counter()
    page.goto(url)
    _wait(page, drawn, timeout_ms)
    return time.perf_counter() - tick, page


def _switch(page, label: str, timeout_ms: float) -> float:
    page.evaluate(WATCH)
    tab = page.get_by_role("tab", name=label, exact=True)
    tick = time.perf_counter()
    tab.click()
    page.wait_for_selector(f"[role=tab][aria-selected=true]:has-text('{label}')", timeout=timeout_ms)
    _wait(page, TAB_DRAWN, timeout_ms, after_click=True)
    return time.perf_counter() - tick


def measure(url: str, repeat: int = 3, width: int = 1400, first_after_start: bool = True,
            timeout_s: float = 180) -> dict:
    """{figure: seconds or a list of them}: Home cold (when the server just started), Home warm, Why they
    differ's first load warm, and each of its tabs switched to `repeat` times."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        raise LoadError("pagetime needs Playwright (pip install playwright)") from e
    ms = timeout_s * 1000
    out: dict = {"url": url, "width": width, "repeat": repeat}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            seconds, page = _load(browser, url, HOME_DRAWN, width, ms)
            page.context.close()
            out["home_first_after_start_s" if first_after_start else "home_first_s"] = seconds
            out["home_warm_s"] = []
            for _ in range(repeat):
                seconds, page = _load(browser, url, HOME_DRAWN, width, ms)
                out["home_warm_s"].append(seconds)
                page.context.close()
            out["why_first_warm_s"], out["why_tab_s"] = [], {t: [] for t in WHY_TABS}
            for _ in range(repeat):
                seconds, page = _load(browser, f"{url}/Why_they_differ", TAB_DRAWN, width, ms)
                out["why_first_warm_s"].append(seconds)
                for label in WHY_TABS[1:] + WHY_TABS[:1]:  # round the tabs and back to the first
                    out["why_tab_s"][label].append(_switch(page, label, ms))
                page.context.close()
        finally:
            browser.close()
    return out


def table(result: dict) -> str:
    def fmt(values) -> str:
        if isinstance(values, float):
            return f"{values:6.2f} s"
        return f"{statistics.median(values):6.2f} s median, {min(values):.2f}-{max(values):.2f} s ({len(values)} runs)"
    lines = [f"{result['url']} at {result['width']} px"]
    for key, name in (("home_first_after_start_s", "Home, first load after the server starts"),
                      ("home_first_s", "Home, first load of this run"), ("home_warm_s", "Home, warm"),
                      ("why_first_warm_s", "Why they differ, first load (warm)")):
        if key in result:
            lines.append(f"{name:<44} {fmt(result[key])}")
    for label, values in result.get("why_tab_s", {}).items():
        lines.append(f"{'  switch to ' + label:<44} {fmt(values)}")
    return "\n".join(lines)

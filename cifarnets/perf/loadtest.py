"""python -m cifarnets load: N browser sessions upload images on the Classify page at the same time.

One headless Chromium holds N browser contexts (each its own Streamlit session), driven together
with Playwright's async API. Each opens /Classify, uploads one image (session i takes image i of
the list, round and round) and waits for that image's result card and the Summary heading. It
measures the first page render (navigation to the uploader on screen) and the latency from upload to
results; a session is held when its page loaded, its results arrived and no error element showed.
Without --url it serves `streamlit run app.py` itself on a free 127.0.0.1 port and stops it after.

With --train the sessions are a class in public mode instead (perf/classload.py): each presses Start training
within a second of the others and waits until its run has finished, --reload K of them reloading mid-run.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import UsageError, UserError
from ..examples import list_examples
from ..models import KEYS, label
from ..paths import project_root

CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright's own download is not needed
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MAX_SESSIONS = 64
TIMEOUT_S = 300
ERRORS = "[data-testid=stException], [data-testid=stAlertContentError]"  # a traceback, or st.error


class LoadError(UserError, RuntimeError):
    """The load test cannot run here: no browser, no Playwright, or the app would not start."""


def add_parser(sub) -> None:
    p = sub.add_parser("load", help="N browser sessions classify images in the app at once: latency percentiles",
                       description=__doc__.split("\n\n")[1].replace("\n", " "))
    p.add_argument("--sessions", type=int, required=True, help=f"concurrent sessions, 1 to {MAX_SESSIONS}")
    p.add_argument("--url", help="an app already running on this machine (default: start one on a free port)")
    p.add_argument("--images", nargs="+", metavar="FILE", help="images to upload (default: the bundled examples)")
    p.add_argument("--timeout", type=float, default=TIMEOUT_S,
                   help=f"seconds for the whole run; a session not done by then is not held (default {TIMEOUT_S})")
    p.add_argument("--train", action="store_true", help="a class in public mode instead: each session presses Start "
                   "training, and waits until its run has finished")
    p.add_argument("--epochs", type=int, default=1, help="with --train: the epochs each session types in (default 1)")
    p.add_argument("--reload", type=int, default=0, metavar="K", help="with --train: K sessions reload mid-run")
    p.add_argument("--workers", type=int, help="with --train: the app's workers (default CIFARNETS_MAX_TRAINERS, 1)")
    p.add_argument("--batch-size", type=int, help="with --train: the batch size each session types in (default the "
                   "recipe's)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_load)
    return p


def cmd_load(args) -> int:
    images = [Path(f) for f in args.images] if args.images else [e.path for e in list_examples()]
    if args.url:
        result = run(args.url, args.sessions, images, args.timeout)
    else:
        check(args.sessions, images, args.timeout)
        with serve(start_timeout_s=min(120.0, args.timeout)) as url:
            result = run(url, args.sessions, images, args.timeout)
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0 if result["held"] == result["sessions"] else 1


def check(sessions: int, images: list[Path], timeout_s: float, url: str | None = None) -> None:
    if url is not None:
        host = urlsplit(url).hostname or ""
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if urlsplit(url).scheme not in ("http", "https") or not loopback:
            raise UsageError(f"refusing {url}: the load test only drives an app on this machine "
                             "(http://127.0.0.1:PORT, http://localhost:PORT or http://[::1]:PORT)")
    if not 1 <= sessions <= MAX_SESSIONS:
        raise UsageError(f"--sessions must be 1 to {MAX_SESSIONS}, not {sessions}")
    if not 0 < timeout_s <= 3600:
        raise UsageError("--timeout must be above 0 and at most 3600 seconds")
    if missing := [str(f) for f in images if not f.is_file()]:
        raise UsageError(f"no such image: {', '.join(missing)}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(app: Path | None = None, env: dict | None = None, log: Path | None = None, start_timeout_s: float = 120,
          port: int | None = None, ready: bool = False):
    """`streamlit run app.py` on 127.0.0.1 (`port`, or a free one) while the block runs, then SIGTERM (kill after
    5 s): its URL. The block starts once the port answers, which is before the app has been imported (pagetime
    measures that first load); with `ready`, once its health check answers, after the import."""
    app = app or project_root() / "app.py"
    if not app.is_file():
        raise LoadError(f"no {app} to serve: run from the repository, or give --url")
    port = port or free_port()
    out = open(log, "w+b") if log else tempfile.TemporaryFile()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=app.parent, env=env or dict(os.environ), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:  # the port answers; the page itself is awaited in the browser
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                _starting(server, out, port, start_timeout_s, deadline)
        while ready and not _healthy(port):
            _starting(server, out, port, start_timeout_s, deadline)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        out.close()


def _starting(server: subprocess.Popen, out, port: int, start_timeout_s: float, deadline: float) -> None:
    """Wait a moment more for the server to start; LoadError, with what it printed, when it died or took too long."""
    if server.poll() is not None or time.monotonic() > deadline:
        out.seek(0)
        raise LoadError(f"streamlit did not start on port {port} within {start_timeout_s:.0f} s:\n"
                        + out.read()[-2000:].decode(errors="replace")) from None
    time.sleep(0.3)


def _healthy(port: int) -> bool:
    """Streamlit's health check answers "ok" (it waits while the app is still being imported)."""
    from urllib.request import urlopen

    try:
        with urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=30) as answer:
            return answer.status == 200
    except OSError:
        return False


def run(url: str, sessions: int, images: list[Path], timeout_s: float = TIMEOUT_S) -> dict:
    """Drive `sessions` browser sessions against the app at `url`: what held, what failed and why, and the timings."""
    check(sessions, images, timeout_s, url)
    if not Path(CHROMIUM).exists():
        raise LoadError(f"the load test needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    load_before = os.getloadavg()[0]
    tick = time.monotonic()
    outcomes = asyncio.run(drive(url.rstrip("/"), sessions, images, tick + timeout_s))
    held = [o for o in outcomes if o["held"]]
    return {"url": url, "sessions": sessions, "opened": sum("first_render_ms" in o for o in outcomes),
            "held": len(held), "wall_s": round(time.monotonic() - tick, 2), "timeout_s": timeout_s,
            "cpus": os.cpu_count(), "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
            "first_render_ms": percentiles([o["first_render_ms"] for o in outcomes if "first_render_ms" in o]),
            "latency_ms": percentiles([o["latency_ms"] for o in held]),
            "failures": [{"session": o["session"], "reason": o["reason"]} for o in outcomes if not o["held"]],
            "per_session": outcomes}


@contextlib.asynccontextmanager
async def chromium():
    """One headless Chromium (Debian's) for every session of a load test, closed after."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        raise LoadError("the load test needs Playwright: pip install playwright (or pip install -e '.[dev]')") from None
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def drive(url: str, sessions: int, images: list[Path], deadline: float) -> list[dict]:
    async with chromium() as browser:
        return await asyncio.gather(*(bounded(browser, url, i, images[i % len(images)], deadline)
                                      for i in range(sessions)))


async def bounded(browser, url: str, i: int, image: Path, deadline: float) -> dict:
    """One session, stopped at the deadline; any failure becomes a reason, never an exception."""
    outcome = {"session": i, "image": image.name if image else None, "held": False,
               "stage": "opening a browser context"}
    work = session(browser, url, image, outcome)
    try:
        await asyncio.wait_for(work, max(0.0, deadline - time.monotonic()))
    except asyncio.TimeoutError:
        outcome["reason"] = f"not done before the time limit, while {outcome['stage']}"
    except Exception as e:  # noqa: BLE001 - a failed session is a measurement, not a crash
        outcome["reason"] = f"{type(e).__name__} while {outcome['stage']}: {str(e).splitlines()[0] if str(e) else ''}"
    return outcome


async def session(browser, url: str, image: Path, outcome: dict) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 1800})
    context.set_default_timeout(0)  # no Playwright timeouts (30 s each by default): the deadline alone bounds a session
    try:
        page = await context.new_page()
        outcome["stage"] = "loading /Classify"
        start = time.perf_counter()
        await page.goto(f"{url}/Classify")
        await page.get_by_text("Upload images").first.wait_for()
        outcome["first_render_ms"] = round((time.perf_counter() - start) * 1000, 1)
        outcome["stage"] = "waiting for the results"
        start = time.perf_counter()
        await page.locator(".st-key-uploads input[type=file]").set_input_files(str(image))
        # Whichever comes first: the results, or an error on the page (then waiting on would only time out).
        results = asyncio.ensure_future(_results(page, image))
        error = asyncio.ensure_future(page.locator(ERRORS).first.wait_for())
        await asyncio.wait({results, error}, return_when=asyncio.FIRST_COMPLETED)
        for task in (results, error):
            task.cancel()
        outcome["latency_ms"] = round((time.perf_counter() - start) * 1000, 1)
        if errors := await page.locator(ERRORS).all_inner_texts():
            outcome["reason"] = "the page shows an error: " + " | ".join(e.strip()[:200] for e in errors)
        else:
            outcome["held"], outcome["stage"] = True, "done"
    finally:
        await context.close()


async def _results(page, image: Path) -> None:
    # Bold text is the result card's (the uploader's file list is not): the image's name and each network.
    for text in (image.name, *map(label, KEYS)):
        await page.locator("strong", has_text=re.compile(f"^{re.escape(text)}$")).first.wait_for()
    await page.get_by_text("Summary", exact=True).wait_for()


def percentiles(values: list[float]) -> dict | None:
    """p50, p90, p99 (linear between the nearest ranks) and max; None for no values."""
    if not values:
        return None
    xs = sorted(values)

    def at(q: float) -> float:
        k = (len(xs) - 1) * q
        lo = int(k)
        hi = min(lo + 1, len(xs) - 1)
        return round(xs[lo] + (xs[hi] - xs[lo]) * (k - lo), 1)

    return {"n": len(xs), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": xs[-1]}


def table(r: dict) -> str:
    lines = [f"{r['sessions']} sessions against {r['url']}: {r['opened']} opened, {r['held']} held, "
             f"in {r['wall_s']:.1f} s ({r['cpus']} CPUs, load average {r['load_average_before']:.2f} before)",
             f"{'':<24}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}"]
    for key, name in (("first_render_ms", "first page render, ms"), ("latency_ms", "upload to results, ms")):
        p = r[key]
        lines.append(f"{name:<24}" + ("".join(f"{p[q]:>9.0f}" for q in ("p50", "p90", "p99", "max")) if p
                                      else f"{'no session got this far':>36}"))
    lines += [f"session {f['session']} not held: {f['reason']}" for f in r["failures"]]
    return "\n".join(lines)

"""python -m cifarnets load --train: a class in public mode. N browser sessions (each its own browser context, so
its own cookie and visitor) open Home, type the epochs, and press Start training within a second of each other;
each then watches its own run card in the sidebar until its run has finished, noting every place in line it was
shown. K of them reload the page once their run trains and must find it again. Every run name a session's
sidebar shows that is not its own counts as foreign.

The app is served with a runs folder of its own (loadtest.serve), in public mode, with --workers workers; the
tool stops its engine and every trainer after. The truth of who started what is the runs folder's job.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

from ..errors import UsageError
from . import loadtest
from .loadtest import CHROMIUM, LoadError, serve

RUN_NAME = re.compile(r"^[a-z_]+-[a-z]+-\d{8}-\d{6}-[0-9a-f]{4}$")
PLACE = re.compile(r"(\d+)(?:st|nd|rd|th) in line")
STATES = ("queued", "starting", "running", "testing", "stopped", "finished", "failed")
ENDED = STATES[4:]  # a run in these is over: its session stops watching
POLL_S = 1.0
LOST_AFTER_S = 60.0  # a session that cannot see its run this long (a reloaded page drawn in full) has lost it
# Twelve pages opened at once drew Home within 45 s here, all on one core of the 2-core test machine. One of twelve
# in a CI run never did, in 25 minutes, for a cause not found (its page was not kept): a page that has not drawn
# Home by LOAD_S is reloaded once, as a student would, and what it showed is kept (home_reloads, failures).
LOAD_S = 240.0
CARD = "[data-testid=stVerticalBlock]"  # a run's card is the innermost block that holds its name


def add_parser(sub) -> None:
    """The `load` command: loadtest's, with --train a class (this module)."""
    loadtest.add_parser(sub).set_defaults(func=cmd_load)


def cmd_load(args) -> int:
    if not args.train:
        return loadtest.cmd_load(args)
    if args.url:
        raise UsageError("--train serves the app itself (it counts and stops the trainers it starts): drop --url")
    loadtest.check(args.sessions, [], args.timeout)
    result = class_load(args.sessions, args.reload, args.epochs, args.timeout, args.workers, batch_size=args.batch_size)
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0 if result["finished"] == result["sessions"] and not result["lost"] else 1


def stop(started: list, grace_s: float = 30) -> None:
    """Cancel every trainer (it saves its state and exits), and kill what still runs after `grace_s`."""
    from ..runs import jobs, record

    for job in started:
        jobs.cancel(job)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(record.alive(j.pid) for j in started):
        time.sleep(0.2)
    for job in started:
        if record.alive(job.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(job.pid, signal.SIGKILL)
    time.sleep(0.5)



def class_load(sessions: int, reloads: int = 0, epochs: int = 1, timeout_s: float = 1800,
               workers: int | None = None, env: dict | None = None, batch_size: int | None = None) -> dict:
    """Serve the app in public mode and drive a class against it; the summary (see summarize)."""
    if not 0 <= reloads <= sessions:
        raise LoadError(f"--reload must be 0 to --sessions ({sessions}), not {reloads}")
    if not Path(CHROMIUM).exists():
        raise LoadError(f"the load test needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    from ..runs import engine, record

    with (tempfile.TemporaryDirectory(prefix="cifarnets-class-runs-") as runs,
          tempfile.TemporaryDirectory(prefix="cifarnets-class-server-") as server):
        served = dict(env or os.environ, CIFARNETS_RUNS=runs, CIFARNETS_PUBLIC="1")
        if workers is not None:
            served["CIFARNETS_MAX_TRAINERS"] = str(workers)
        log = Path(server) / "streamlit.log"
        tick = time.monotonic()
        try:
            # a class opens its pages once the app is up (pagetime measures the first load before that)
            with serve(env=served, log=log, start_timeout_s=min(120.0, timeout_s), ready=True) as url:
                outcomes = asyncio.run(_drive(url, sessions, reloads, epochs, batch_size, tick + timeout_s))
        finally:
            started = [r for r in record.list_runs(Path(runs), races=False) if r.pid]
            stop(started)
            engine.stop(Path(runs))
        owners = {r.name: r.owner for r in record.list_runs(Path(runs), races=False)}
        result = summarize(outcomes, owners, sessions, reloads, workers, round(time.monotonic() - tick, 1))
        if result["failures"] or result["home_reloads"]:  # what the server said, for the cause
            result["server_log_tail"] = log.read_text(errors="replace")[-3000:]
            print(f"the server's log ended:\n{result['server_log_tail']}", file=sys.stderr, flush=True)
    return result


def summarize(outcomes: list[dict], owners: dict[str, str], sessions: int, reloads: int, workers: int | None,
              wall_s: float) -> dict:
    """accepted (Start answered with a place in the queue), finished, lost (runs a session could not find again),
    foreign_visible (other sessions' runs any session saw), max_wait_s (Start to its run's start), and each
    session's places shown; `places_only_decrease` checks that no session was ever moved back."""
    waits = [o["wait_s"] for o in outcomes if o.get("wait_s") is not None]
    decreasing = all(all(a >= b for a, b in zip(o["places"], o["places"][1:], strict=False)) for o in outcomes)
    return {"sessions": sessions, "reloads": reloads, "workers": workers, "wall_s": wall_s, "cpus": os.cpu_count(),
            "accepted": sum(bool(o.get("run")) for o in outcomes),
            "finished": sum(o.get("state") == "finished" for o in outcomes),
            "lost": sum(bool(o.get("lost")) for o in outcomes),
            "foreign_visible": sum(len(o.get("foreign", [])) for o in outcomes),
            "max_wait_s": max(waits, default=None),
            "places_only_decrease": decreasing,
            "runs_in_folder": len(owners),
            "home_reloads": sum(len(o.get("home_not_drawn", [])) for o in outcomes),
            "reloads_after_end": sum(o.get("reloaded_while") in ENDED for o in outcomes),
            "failures": [{"session": o["session"], "reason": o["reason"]} for o in outcomes if o.get("reason")],
            "per_session": outcomes}


def table(r: dict) -> str:
    waits = f"{r['max_wait_s']:.0f} s" if r["max_wait_s"] is not None else "none started"
    lines = [f"A class of {r['sessions']} ({r['reloads']} reloading mid-run), {r['workers'] or 'default'} worker(s), "
             f"{r['cpus']} CPUs, {r['wall_s']:.0f} s:",
             f"  {r['accepted']} accepted, {r['finished']} finished, {r['lost']} lost, {r['foreign_visible']} foreign "
             f"run(s) visible; longest wait from Start to start {waits}; places only decreased: "
             f"{'yes' if r['places_only_decrease'] else 'NO'}"]
    if r.get("reloads_after_end"):
        lines.append(f"  {r['reloads_after_end']} of the reloads came after the run had ended: no poll saw it train")
    if r["home_reloads"]:
        lines.append(f"  {r['home_reloads']} page(s) reloaded: Home had not drawn its Start in {LOAD_S:.0f} s")
    lines += [f"  session {f['session']}: {f['reason']}" for f in r["failures"]]
    return "\n".join(lines)


async def _drive(url: str, sessions: int, reloads: int, epochs: int, batch_size: int | None,
                 deadline: float) -> list[dict]:
    async with loadtest.chromium() as browser:
        together = asyncio.Barrier(sessions)
        return await asyncio.gather(*(_bounded(browser, url, i, i < reloads, (epochs, batch_size), together,
                                               deadline) for i in range(sessions)))


async def _bounded(browser, url: str, i: int, reload: bool, choice: tuple[int, int | None], together,
                   deadline: float) -> dict:
    outcome = {"session": i, "reloads": reload, "places": [], "foreign": [], "stage": "opening a browser context"}
    try:
        await asyncio.wait_for(_student(browser, url, outcome, reload, choice, together),
                               max(0.0, deadline - time.monotonic()))
    except asyncio.TimeoutError:
        outcome["reason"] = f"not done before the time limit, while {outcome['stage']}"
    except Exception as e:  # noqa: BLE001 - a failed session is a measurement, not a crash
        outcome["reason"] = f"{type(e).__name__} while {outcome['stage']}: {str(e).splitlines()[0] if str(e) else ''}"
    if not outcome.get("pressed_together"):  # failed before the others pressed Start: let them go on without it
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(together.wait(), max(0.0, deadline - time.monotonic()))
    why = f": {outcome['reason']}" if "reason" in outcome else ""
    print(f"session {i}: {outcome.get('state') or outcome['stage']}{why}", file=sys.stderr, flush=True)
    return outcome


async def _student(browser, url: str, outcome: dict, reload: bool, choice: tuple[int, int | None], together) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(0)  # the deadline alone bounds a session
    try:
        page = await context.new_page()
        outcome["stage"] = "loading Home"
        start = page.get_by_role("button", name="Start training")
        await _load_home(page, url, start, outcome)
        epochs, batch_size = choice
        outcome["stage"] = "typing the epochs and the batch size"
        for name, value in (("Epochs", epochs), ("Batch size", batch_size)):
            if value:
                box = page.get_by_label(name, exact=True).first  # the trainer's (the race's come after)
                await box.fill(str(value))
                await box.press("Enter")
        # the estimate says it: the session's Start sends what was typed
        await page.get_by_text(f"{epochs} epoch{'s' if epochs != 1 else ''} ×").first.wait_for()
        outcome["stage"] = "waiting for the other sessions' pages"
        print(f"session {outcome['session']}: page up", file=sys.stderr, flush=True)
        await together.wait()
        outcome["pressed_together"] = True
        outcome["stage"] = "waiting for the answer to Start training"
        pressed = time.monotonic()
        await start.click()
        # The toast names the run, but lasts 4 s, and a page starved of CPU (thirty on two cores) may never draw it
        # while it shows: the run's card, the only run a new visitor's sidebar lists, says the same and stays. A
        # refusal is an error box (the caption that follows a Start is no refusal).
        toast = page.get_by_text(re.compile(r"joined the queue: ")).first
        card = page.locator("section[data-testid=stSidebar] code", has_text=RUN_NAME).first
        refused = page.locator("section[data-testid=stSidebar] [data-testid=stAlertContentError]").first
        await toast.or_(card).or_(refused).first.wait_for()  # the toast and the card often show together
        if await toast.count():
            outcome["run"] = (await toast.inner_text()).split("joined the queue: ")[-1].strip()
        elif await card.count():
            outcome["run"] = (await card.inner_text()).strip()
        else:
            outcome["reason"] = f"Start was refused: {(await refused.inner_text())[:200]}"
            return
        outcome["stage"] = "watching its run"
        await _watch(page, outcome, reload, pressed)
    finally:
        await context.close()


async def _load_home(page, url: str, start, outcome: dict) -> None:
    """Open Home until its Start shows; a page that has not drawn it in LOAD_S is reloaded once (what it showed is
    kept in outcome["home_not_drawn"]), and a second such page is a failure."""
    for attempt in (1, 2):
        try:
            # "commit", not the load event: Home is drawn by its scripts after load, so the Start is what counts
            await asyncio.wait_for(page.goto(url, wait_until="commit"), LOAD_S)
            await asyncio.wait_for(start.wait_for(), LOAD_S)
            return
        except asyncio.TimeoutError:
            seen = await _shown(page)
            outcome.setdefault("home_not_drawn", []).append(seen)
            print(f"session {outcome['session']}: Home had not drawn its Start in {LOAD_S:.0f} s (try {attempt}); "
                  f"the page showed: {seen}", file=sys.stderr, flush=True)
    raise RuntimeError(f"Home did not draw its Start in two tries of {LOAD_S:.0f} s")


async def _shown(page) -> str:
    """The page's visible text, shortened, for a report; or why it could not be read."""
    try:
        text = await asyncio.wait_for(page.inner_text("body"), 15)
    except Exception as e:  # noqa: BLE001 - a report of what went wrong must not fail itself
        return f"(its text could not be read: {type(e).__name__})"
    return _lines(text)[:400] or "(nothing)"


def _lines(text: str) -> str:
    return " · ".join(line.strip() for line in text.splitlines() if line.strip())


async def _watch(page, outcome: dict, reload: bool, pressed: float) -> None:
    """Poll the sidebar until the run has finished: the places shown, when it started, the names of other runs; a
    reload once it trains, after which its card must come back."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    own, unseen_since, reloaded = outcome["run"], time.monotonic(), False
    while True:
        names = {n.strip() for n in await page.locator("section[data-testid=stSidebar] code").all_inner_texts()}
        outcome["foreign"] = sorted(set(outcome["foreign"]) | {n for n in names if RUN_NAME.match(n) and n != own})
        card = page.locator(CARD, has=page.locator("code", has_text=own)).last
        try:
            text = await card.inner_text(timeout=10_000) if own in names else ""
        except PlaywrightTimeout:  # redrawn meanwhile: look again
            text = ""
        if not text:
            if time.monotonic() - unseen_since > LOST_AFTER_S:
                outcome["lost"] = True
                outcome["reason"] = f"its run {own} was not on its page for {LOST_AFTER_S:.0f} s"
                return
        else:
            unseen_since = time.monotonic()
            outcome["card"] = _lines(text)[:300]  # what it last read: a session that times out says where
            head = text.strip().splitlines()[0] if text.strip() else ""
            state = next((s for s in STATES if re.search(rf"\b{s}\b", head)), outcome.get("state"))
            outcome["state"] = state
            place = PLACE.search(text)
            if state == "queued" and place and outcome["places"][-1:] != [int(place.group(1))]:
                outcome["places"].append(int(place.group(1)))
            elif state != "queued" and outcome.get("wait_s") is None:
                outcome["wait_s"] = round(time.monotonic() - pressed, 1)
            ended = state in ENDED
            if ended and (reloaded or not reload):
                if state != "finished":
                    outcome["reason"] = f"its run ended {state}"
                return
            # Mid-run once its trainer is live; a run too short for any poll to see it live (tiny data, a busy
            # machine: CI once) is reloaded once it ended, and must be found again all the same.
            if reload and not reloaded and (ended or state in ("starting", "running", "testing")):
                outcome["stage"] = "reloading mid-run" if not ended else "reloading after its run ended"
                outcome["reloaded_while"] = state
                await page.reload()
                await page.get_by_role("button", name="Start training").wait_for()
                reloaded, unseen_since = True, time.monotonic()
                outcome["reloaded"] = True
                outcome["stage"] = "watching its run again"
                continue
        await asyncio.sleep(POLL_S)

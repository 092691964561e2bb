"""Your network in a real browser: an ONNX upload, a checkpoint zip and a Hub id (a local folder standing in for the
Hub, as in the Hub tests) each become a fifth column on Classify, then on the Stress test, in the same session.
Screenshots land in the test's folder (`--basetemp DIR` keeps them to look at)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.app import LABELS, image_bytes
from test_yours import raw, tiny_graph

from cifarnets.perf.loadtest import CHROMIUM, CHROMIUM_ARGS
from cifarnets.perf.pagetime import IDLE
from cifarnets.store.export import checkpoint_zip

WAIT_MS = 120_000

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")]


def _file(tmp_path: Path, way: str) -> Path | str:
    checkpoints = tmp_path / "checkpoints"  # the app_url fixture's tiny networks
    if way == "ONNX file":
        path = tmp_path / "tiny.onnx"
        path.write_bytes(raw(tiny_graph()))
        return path
    if way == "Checkpoint zip":
        path = tmp_path / "run.zip"
        path.write_bytes(checkpoint_zip(checkpoints / "resnet"))
        return path
    return str(checkpoints / "densenet")


def _upload(page, field: str, path: Path, tries: int = 3) -> None:
    """Sets the uploader's file until the app shows it, each time once the page is idle: a file set while a rerun
    redraws the uploader can be dropped with the old element (seen here once in 28 tries under load: no file
    shown). In CI, three tries once all failed; what the page showed then is kept, to say why next time."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(tries):
        page.wait_for_function(IDLE, timeout=WAIT_MS)
        uploader = page.locator(f"{field} input[type=file]")
        uploader.set_input_files([], timeout=WAIT_MS)  # a change event even for the same file again
        uploader.set_input_files(str(path), timeout=WAIT_MS)
        try:
            page.locator(field).get_by_text(path.name).wait_for(timeout=WAIT_MS // 4)
            return
        except PlaywrightTimeout:
            if attempt == tries - 1:
                shot = path.parent / f"upload-not-shown-{path.stem}.png"
                page.screenshot(path=str(shot), full_page=True)
                state = page.evaluate("() => document.querySelector('[data-testid=stApp]')"
                                      "?.getAttribute('data-test-script-state')")
                status = page.locator("[data-testid=stStatusWidget]")
                raise AssertionError(
                    f"{path.name} never showed in {field} after {tries} tries; script state {state!r}, status "
                    f"{status.inner_text() if status.count() else 'none'!r}, the field shows "
                    f"{page.locator(field).inner_text()!r}; screenshot {shot}") from None


@pytest.mark.parametrize("way", ["ONNX file", "Checkpoint zip", "Hub repository"])
def test_your_network_is_a_fifth_column_on_classify_and_the_stress_test(app_url, tmp_path, way):
    from playwright.sync_api import sync_playwright

    name = f"mine by {way.split()[0].lower()}"
    picture = tmp_path / "picture.png"
    picture.write_bytes(image_bytes("PNG", size=(96, 64), seed=3))
    source = _file(tmp_path, way)
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1400, "height": 1600})
        try:
            page = browser.new_page()
            page.goto(f"{app_url}/Classify")
            page.get_by_text("Your network: compare your own with the four").click(timeout=WAIT_MS)
            if way != "ONNX file":
                page.locator(".st-key-your_way").get_by_text(way).click()
            # Each input only once the form for that way is drawn: a value typed during the rerun would be lost.
            field = (".st-key-your_repo" if way == "Hub repository"
                     else f".st-key-your_{'onnx' if way == 'ONNX file' else 'zip'}")
            page.locator(field).wait_for(timeout=WAIT_MS)
            if way == "Hub repository":
                page.get_by_label("Repository").fill(str(source))
                page.get_by_label("Repository").press("Enter")
            else:
                _upload(page, field, Path(source))
            page.get_by_label("Its name").fill(name)
            page.get_by_label("Its name").press("Enter")
            page.get_by_role("button", name="Add it").click(timeout=WAIT_MS)
            page.get_by_text(f"Your network: {name}").wait_for(timeout=WAIT_MS)
            page.locator(".st-key-uploads input[type=file]").set_input_files(str(picture))
            for text in [*LABELS, name]:
                page.locator(f"[class*='st-key-card-'] strong:text-is('{text}')").first.wait_for(timeout=WAIT_MS)
            page.get_by_text("Summary", exact=True).wait_for(timeout=WAIT_MS)
            page.screenshot(path=str(tmp_path / "classify.png"), full_page=True)

            page.get_by_role("link", name="Stress test").first.click()  # the same session: the network stays
            page.get_by_role("heading", name="Corruptions").wait_for(timeout=WAIT_MS)
            page.locator(".st-key-grid-corrupted").get_by_text(name).first.wait_for(timeout=WAIT_MS)
            page.locator(".st-key-grid-attacked").get_by_text(name).first.wait_for(timeout=WAIT_MS)
            page.screenshot(path=str(tmp_path / "stress.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "classify.png").stat().st_size > 10_000 and (tmp_path / "stress.png").stat().st_size > 10_000


@pytest.mark.parametrize("size", ["1 MB", "45 MB"])
def test_time_from_upload_to_the_fifth_column(app_url, tmp_path, size):
    """The issue's timing: an image already classified by the four, then a model uploaded and added, until its
    column shows. About 1 MB: our ResNet exported (0.7 MB); 45 MB: a ResNet-18 (42.6 MB). Printed for the docs."""
    import time

    from playwright.sync_api import sync_playwright
    from test_yours_resnet18 import resnet18_for_cifar, student_export

    from cifarnets.store.checkpoints import load_checkpoint
    from cifarnets.yours.export import onnx_bytes

    model = tmp_path / "model.onnx"
    model.write_bytes(onnx_bytes(load_checkpoint(tmp_path / "checkpoints" / "resnet")[0]) if size == "1 MB"
                      else student_export(resnet18_for_cifar().eval()))
    picture = tmp_path / "picture.png"
    picture.write_bytes(image_bytes("PNG", size=(96, 64), seed=3))
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1400, "height": 1600})
        try:
            page = browser.new_page()
            page.goto(f"{app_url}/Classify")
            page.locator(".st-key-uploads input[type=file]").set_input_files(str(picture), timeout=WAIT_MS)
            page.locator("[class*='st-key-card-'] strong:text-is('SE-ResNet')").wait_for(timeout=WAIT_MS)
            page.get_by_text("Your network: compare your own with the four").click()
            page.get_by_label("Its name").fill("timed")
            page.get_by_label("Its name").press("Enter")
            tick = time.perf_counter()
            _upload(page, ".st-key-your_onnx", model)  # again if a rerun drops it (it did, once here)
            page.get_by_role("button", name="Add it").click(timeout=WAIT_MS)  # enabled once the file is in
            page.locator("[class*='st-key-card-'] strong:text-is('timed')").wait_for(timeout=WAIT_MS)
            seconds = time.perf_counter() - tick
        finally:
            browser.close()
    print(f"\n{model.stat().st_size / 2**20:.1f} MB model: upload to the fifth column in {seconds:.1f} s")

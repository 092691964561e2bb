"""The shipped networks' unfamiliar-input check (issues 17 and 38): their stored thresholds hold on held-out test
images and on the development set's photos, noise and flat pictures are flagged by all four at any size, and
`predict --json`, the library, the Classify page (also in Chromium) and Why they differ agree."""

from __future__ import annotations

import io
import json
import os
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from helpers.app import APP, PAGES, open_tab, texts
from helpers.pictures import noise_picture, png, text_screenshot
from PIL import Image

from cifarnets import CIFAR10_CLASSES, cli, predict
from cifarnets.data import loader, sources
from cifarnets.data.images import read_photos, to_array
from cifarnets.data.loader import batch
from cifarnets.models import KEYS
from cifarnets.predict import answers
from cifarnets.store.checkpoints import discover
from cifarnets.store.record import UNFAMILIAR
from cifarnets.unfamiliar import calibration, calibration_sentences, measure, onphotos

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints"
ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
DEVELOPMENT_SET = [ROOT.parent / "shared" / "data" / name for name in ("photos-real", "photos-more")]
OTHER = ROOT.parent / "shared" / "data" / "photos-other"
# The held-out share may fall this far under the rate: 4 standard errors of the gap between two samples,
# the images that set the threshold and those that judge it (2,000 each: 0.028). Counting the judging
# images alone (0.02), a SE-ResNet 2.05 points under failed, 3 standard errors out.
TOLERANCE = 4 * np.sqrt(calibration.RATE * (1 - calibration.RATE)
                        * (1 / measure.SIZES.choose + 1 / measure.SIZES.held_out))



# ---------------------------------------------------------------- the shipped networks

def shipped_entries() -> dict:
    entries = discover(SHIPPED)
    if not all(e.ok for e in entries.values()):
        pytest.skip("the shipped checkpoints are not all here")
    notes = predict.uncalibrated(entries)
    assert not notes, f"shipped networks without a current calibration: {notes}"
    return entries


@pytest.mark.slow
@pytest.mark.skipif(not ARCHIVE.exists(), reason=f"the CIFAR-10 archive {ARCHIVE} is not here")
def test_held_out_test_images_stay_under_the_threshold_at_the_chosen_rate():
    entries = shipped_entries()
    held_out = measure.held_out_images(sources.load(ARCHIVE))
    found = answers(entries, loader.normalize(held_out))
    for key, a in found.items():
        stored = entries[key].config[UNFAMILIAR]
        under = np.mean([not v.unfamiliar for v in a.verdicts])
        assert under >= stored["rate"] - TOLERANCE, (key, under)
        assert abs(under - stored["held_out_rate"]) <= 0.005, (key, under)  # what calibrate measured, on any CPU


@pytest.mark.slow
@pytest.mark.skipif(not all(f.is_dir() for f in DEVELOPMENT_SET), reason="the development set is not here")
def test_at_most_a_tenth_of_the_real_photos_is_flagged_as_the_app_answers_them():
    """The shipped thresholds were set with `calibrate` on the development set; the app's own path (the four
    answering together) flags what calibrate counted, and photos of other things as calibrate counted them."""
    entries = shipped_entries()
    pictures, _, _ = read_photos(DEVELOPMENT_SET, list(CIFAR10_CLASSES))
    found = answers(entries, batch([to_array(p) for p in pictures]))
    others = onphotos.read_other(OTHER) if OTHER.is_dir() else []
    found_other = answers(entries, batch([to_array(p) for p in others])) if others else {}
    for key, a in found.items():
        stored = entries[key].config[UNFAMILIAR]["photos"]
        flagged = np.mean([v.unfamiliar for v in a.verdicts])
        assert flagged <= 1 - stored["rate"] + 1e-9, (key, flagged)
        assert abs(flagged - stored["flagged"]) <= 1.5 / len(pictures), (key, flagged, stored["flagged"])
        if others:
            caught = np.mean([v.unfamiliar for v in found_other[key].verdicts])
            assert abs(caught - stored["other_flagged"]) <= 1.5 / len(others), (key, caught)


@pytest.mark.slow
def test_fresh_noise_goes_over_the_threshold_for_every_network_and_text_mostly_does_not():
    """Seeds calibrate never used. Noise at the networks' input size or under (the structure check, as blown-up
    pictures under 32 px count as structureless too) is flagged by all four. Screenshots of text are the price of
    choosing the score on photos (issue 38): the stage distance flagged all of them, the chosen score (confidence,
    the network's and the four's) flagged 1, 1, 1 and 5 of these 20 by the score alone when it was chosen
    (docs/unfamiliar.md; the 24-pixel ones Classify flags as too small). This test keeps that fact in view: if
    text is flagged again, say so in the docs."""
    entries = shipped_entries()
    noise = [noise_picture(side, side, seed) for side in (24, 32) for seed in range(100, 115)]
    noise += [noise_picture(32, 32, seed).convert("L").convert("RGB") for seed in range(10)]  # greyscale noise
    text = [text_screenshot(seed, size) for size in (24, 32) for seed in range(200, 210)]
    # Noise drawn at 24 pixels is blown up to 32 and so smoothed into blobs, which the CNN and the DenseNet score as a
    # familiar texture: Classify counts a picture under 32 px as structureless (predict.too_small), and so here.
    small = [predict.too_small(img.size) for img in noise + text]
    found = answers(entries, batch([to_array(img) for img in noise + text]), small)
    for key, a in found.items():
        missed = [i for i, v in enumerate(a.verdicts[:len(noise)]) if not v.unfamiliar]
        assert not missed, f"{key} finds {len(missed)} of {len(noise)} noise pictures familiar, e.g. {missed[:5]}"
        text_at_32 = a.verdicts[len(noise) + 10:]  # the 24-pixel screenshots are flagged as too small
        assert sum(v.unfamiliar for v in text_at_32) <= len(text_at_32) // 2, key


@pytest.mark.slow
def test_cli_library_and_page_agree(tmp_path, monkeypatch):
    """The same files through predict --json, the library and the Classify page: the same scores and flags."""
    from streamlit.testing.v1 import AppTest

    from cifarnets.ui.classify_view import FAMILIAR, UNFAMILIAR

    entries = shipped_entries()
    files = {"noise.png": png(noise_picture(32, 32, 7)), "text.png": png(text_screenshot(7)),
             "cat.jpg": (ROOT / "cifarnets" / "examples" / "photo-cat.jpg").read_bytes(),
             "frog.jpg": (ROOT / "cifarnets" / "examples" / "cifar10-test-frog.jpg").read_bytes()}
    for name, raw in files.items():
        (tmp_path / name).write_bytes(raw)

    out = io.StringIO()
    with redirect_stdout(out):
        cli.main(["predict", "--json", "--device", "cpu", "--checkpoints", str(SHIPPED),
                  *[str(tmp_path / n) for n in files]])
    from_cli = {Path(r["file"]).name: r["predictions"] for r in json.loads(out.getvalue())}

    library = predict.classify(list(files.items()), entries)
    flags = {}
    for result in library:
        for key, verdict in result.verdicts.items():
            cli_says = from_cli[result.name][key]["unfamiliar"]
            assert cli_says["flag"] == verdict.unfamiliar
            assert cli_says["score"] == pytest.approx(verdict.score, abs=1e-5)
            flags[result.name, key] = verdict.unfamiliar
    assert all(flags["noise.png", k] for k in KEYS) and not any(flags["frog.jpg", k] for k in KEYS)

    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(SHIPPED))
    monkeypatch.setenv("CIFARNETS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFARNETS_DEVICE", "cpu")
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.switch_page(PAGES["Classify"]).run()
    at.file_uploader(key="uploads").set_value([(n, raw, "image/png") for n, raw in files.items()]).run()
    assert not at.exception, [e.value for e in at.exception]
    # a card's badge holds one of the two verdicts; the line above the cards explains both
    badges = [m.value for m in at.markdown if (FAMILIAR in m.value) != (UNFAMILIAR in m.value)]
    assert len(badges) == len(files) * len(KEYS)  # one per network per image, in card order
    page = {(name, key): UNFAMILIAR in badge
            for (name, key), badge in zip([(n, k) for n in files for k in KEYS], badges, strict=True)}
    assert page == flags
    guessing = [r.name for r in library if r.guessing]
    assert "noise.png" in guessing
    # noise has no structure at all, and its caution says so rather than calling the answers guesses
    assert sum(texts(at).count(line) for line in ("Every network finds this image unlike anything",
                                                  "This picture has no structure")) == len(guessing)
    table = at.dataframe[0].value
    assert list(table["all find it unfamiliar"]) == [r.guessing for r in library]


# ---------------------------------------------------------------- in a real browser

@pytest.mark.browser
@pytest.mark.slow
def test_classify_in_chromium_a_photo_familiar_beside_noise_unfamiliar(tmp_path):
    """The shipped networks in `streamlit run`: a real photo of a cat passes, an animated noise GIF is flagged by all
    four with the notice. The screenshot stays in the test's tmp_path (pytest --basetemp to keep it at hand)."""
    from playwright.sync_api import sync_playwright

    from cifarnets.perf.loadtest import CHROMIUM, CHROMIUM_ARGS, serve

    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    shipped_entries()
    cat = tmp_path / "photo-cat.jpg"
    shutil.copy(ROOT / "cifarnets" / "examples" / "photo-cat.jpg", cat)
    noise = tmp_path / "noise.gif"
    frames = [noise_picture(32, 32, seed) for seed in range(8)]
    frames[0].save(noise, save_all=True, append_images=frames[1:], duration=120, loop=0)

    env = dict(os.environ, CIFARNETS_CHECKPOINTS=str(SHIPPED), CIFARNETS_RUNS=str(tmp_path / "runs"),
               CIFARNETS_DEVICE="cpu")
    wait = 180_000  # the first page loads torch and four networks on a busy machine
    with serve(env=env, log=tmp_path / "streamlit.log") as url, sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1500, "height": 1300})
        try:
            page = browser.new_page()
            page.goto(f"{url}/Classify")
            page.get_by_text("Upload images").first.wait_for(timeout=wait)
            page.locator(".st-key-uploads input[type=file]").set_input_files([str(cat), str(noise)])
            page.get_by_text("Summary", exact=True).wait_for(timeout=wait)  # drawn after every card
            page.get_by_text("This picture has no structure").first.wait_for(timeout=wait)
            # A card's badge is a line of its own; the line above the cards names both inside a sentence.
            lines = [line.strip() for line in page.inner_text("body").splitlines()]
            unfamiliar, familiar = lines.count("unlike CIFAR-10"), lines.count("looks like CIFAR-10")
            notices = page.get_by_text("This picture has no structure").count()
            page.screenshot(path=str(tmp_path / "classify-photo-and-noise.png"), full_page=True)
        finally:
            browser.close()
    assert (unfamiliar, familiar, notices) == (4, 4, 1)


@pytest.mark.slow
def test_why_they_differ_shows_each_networks_auroc_and_says_what_it_shows(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from cifarnets.ui.why.unfamiliar import records

    found, missing = records(shipped_entries())
    assert set(found) == {"CNN", "ResNet", "DenseNet", "SE-ResNet"} and not missing
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(SHIPPED))
    monkeypatch.setenv("CIFARNETS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFARNETS_DEVICE", "cpu")
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    at.switch_page("app_pages/4_Why_they_differ.py").run()
    open_tab(at, "Unfamiliar inputs")
    assert not at.exception, [e.value for e in at.exception]
    tab = next(t for t in at.tabs if t.label == "Unfamiliar inputs")
    said = "\n".join(m.value for m in tab.markdown)
    assert calibration_sentences.ranking(found) in said and calibration_sentences.kinds(found) in said
    # AUROC per method and network; what each flags; and photo against photo where calibrate had both kinds
    assert len(tab.get("vega_lite_chart")) == 2 + all("auroc" in r.get("photos", {}) for r in found.values())


def test_noise_blank_and_single_colour_pictures_are_flagged_by_all_four_at_any_size():
    """The first things many users try. Noise larger than 32 pixels shrinks to a fine grain that the CNN and the
    DenseNet score as texture; the structure check (unfamiliar/structure.py) flags it for every network."""
    entries = shipped_entries()
    rng = np.random.default_rng(5)
    pictures = {}
    for side in (32, 256, 1024):
        pictures[f"noise {side}"] = Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
        grey = rng.integers(0, 256, (side, side), dtype=np.uint8)
        pictures[f"grey noise {side}"] = Image.fromarray(grey).convert("RGB")
        pictures[f"blank {side}"] = Image.new("RGB", (side, side), (255, 255, 255))
        pictures[f"black {side}"] = Image.new("RGB", (side, side // 2 + 1), (0, 0, 0))
        pictures[f"colour {side}"] = Image.new("RGB", (side, side), (40, 120, 200))
    found = answers(entries, batch([to_array(p) for p in pictures.values()]))
    for key, a in found.items():
        missed = [name for name, v in zip(pictures, a.verdicts, strict=True) if not v.unfamiliar]
        assert not missed, f"{key} finds these familiar: {missed}"

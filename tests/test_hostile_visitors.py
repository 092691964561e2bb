"""Public mode against a hostile visitor (docs/reliability.md#hostile-visitors): each attack issue 42 found,
reproduced here, and what holds it."""

from __future__ import annotations

import io
import os
import threading
import time

import numpy as np
import pytest
from helpers.app import until_timed, wait_for_state
from helpers.visitors import DEAF, RUN_LIMIT, app, finished_run, live_job, sidebar_text
from PIL import Image, ImageFile

from cifarnets.data import images
from cifarnets.data.images import ImageError, decode_image, to_array
from cifarnets.paths import PublicLimits, public_limits
from cifarnets.runs import expiry, record
from cifarnets.runs import race as races
from cifarnets.runs.expiry import tidy
from cifarnets.runs.request import TrainRequest
from cifarnets.runs.visitor import Refused, Visitor
from cifarnets.training import estimate, recipes


def flat_png(side: int, mode: str = "RGBA") -> bytes:
    """A picture of `side` x `side` pixels of one colour: a file of a few hundred KB at most, whatever its size."""
    buffer = io.BytesIO()
    Image.new(mode, (side, side), 200 if mode in ("P", "L", "I;16") else (200, 30, 30, 128)[:len(mode)]).save(
        buffer, "PNG", optimize=True)
    return buffer.getvalue()


@pytest.fixture
def largest_made(monkeypatch):
    """The most pixels any image made while decoding had: each copy the decoder makes is one image made."""
    seen = [0]
    real_convert, real_new, real_transpose = Image.Image.convert, Image.new, Image.Image.transpose
    real_composite = Image.alpha_composite

    def counted(made):
        seen[0] = max(seen[0], made.size[0] * made.size[1])
        return made

    monkeypatch.setattr(Image.Image, "convert", lambda self, *a, **k: counted(real_convert(self, *a, **k)))
    monkeypatch.setattr(Image.Image, "transpose", lambda self, *a, **k: counted(real_transpose(self, *a, **k)))
    monkeypatch.setattr(Image, "new", lambda *a, **k: counted(real_new(*a, **k)))
    monkeypatch.setattr(Image, "alpha_composite", lambda a, b: counted(real_composite(a, b)))
    return seen


# ---------------------------------------------------------------- 1. a small file that costs a gigabyte

@pytest.mark.parametrize("mode", ["RGBA", "P", "I;16", "RGB", "LA"])
def test_a_huge_flat_picture_is_shrunk_before_any_copy(largest_made, mode):
    """Once decoded, the picture is shrunk before it is converted: no copy at full size (before: RGBA's
    conversion to RGB over white made four, 1 GB for a 267 KB file; `bench --memory` measures it)."""
    raw = flat_png(5000, mode)
    assert len(raw) < 300_000
    largest_made[0] = 0  # count from here: the picture above was made by the test
    img = decode_image(raw, "bomb.png")
    assert img.mode == "RGB" and min(img.size) >= images.DRAFT
    assert largest_made[0] <= images.REDUCE_ABOVE, f"a copy of {largest_made[0]:,} pixels"


def test_the_shrink_keeps_what_the_networks_see():
    """A picture shrunk on decoding is prepared as the same picture not shrunk, to within a grey level or two."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    big = Image.fromarray(small).resize((4400, 4400), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    big.save(buffer, "PNG")
    shrunk = to_array(decode_image(buffer.getvalue(), "big.png"))
    whole = to_array(big)
    assert np.abs(shrunk.astype(int) - whole.astype(int)).max() <= 2


def test_public_mode_refuses_past_its_pixel_cap_before_decoding(monkeypatch):
    monkeypatch.setenv("CIFARNETS_PUBLIC", "1")
    cap = public_limits().megapixels * 1e6
    assert cap < 7999 * 7999
    with pytest.raises(ImageError, match=r"7999x7999 = 63,984,001 pixels, over the 16,000,000 pixel limit"):
        decode_image(flat_png(7999), "bomb.png")
    monkeypatch.setenv("CIFARNETS_MAX_MEGAPIXELS", "70")
    assert decode_image(flat_png(7999), "bomb.png").size == (1142, 1142)


def test_a_camera_jpeg_is_capped_as_decoded_not_as_stored(monkeypatch):
    """A 48-megapixel phone photo is decoded at a quarter of its size: public mode's cap of 16 takes it."""
    monkeypatch.setenv("CIFARNETS_PUBLIC", "1")
    buffer = io.BytesIO()
    Image.new("RGB", (8000, 6000), (10, 120, 200)).save(buffer, "JPEG", quality=50)
    assert decode_image(buffer.getvalue(), "phone.jpg").size == (2000, 1500)


def test_large_decodes_take_turns_and_small_ones_do_not_wait(monkeypatch):
    """Two visitors' large pictures are decoded one after the other, never at once."""
    inside, most, lock = [0], [0], threading.Lock()
    real_load = ImageFile.ImageFile.load

    def slow_load(self):
        if self.size[0] * self.size[1] > images.LARGE:
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.3)
            with lock:
                inside[0] -= 1
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", slow_load)
    raw = flat_png(2500, "RGB")
    threads = [threading.Thread(target=decode_image, args=(raw, f"{i}.png")) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1


# ---------------------------------------------------------------- attack 4: one visitor holding the trainer for hours

def step_times(step_s: float):
    """An estimate's timer that times nothing: each training step takes `step_s`, the test pass nothing. The
    tests of the time limits then hold on any machine, however fast."""
    def timer(key: str, recipe_name: str, batch_size: int | None, device: str) -> estimate.StepTimes:
        batch = batch_size or recipes.get(recipe_name, key).batch_size
        return estimate.StepTimes(step_s, 0.0, batch, batch, 3, "a test's clock")
    return timer


def test_a_batch_below_the_smallest_is_refused_and_not_offered(public):
    # Issue 42, attack 4: batch size 1 was accepted, and ten epochs of a race at batch 1 take about 3 h by the
    # app's own estimate (per image, a step at batch 1 costs 4x to 15x one at 32 on this machine's CPU).
    runs = public
    v = Visitor("t" * 20, {}, True, PublicLimits(), runs)
    line = "public mode allows batches of at least 32"
    assert v.refusal(TrainRequest("cnn", batch_size=1)) == line
    assert v.refusal(races.RaceRequest("fast", 10, 1)) == line
    with pytest.raises(Refused, match=f"^{line}$"):
        v.start(races.RaceRequest("fast", 10, 1, os.environ["CIFARNETS_DATA"], "cpu"))
    assert races.list_races(runs) == [] and record.list_runs(runs) == []
    assert Visitor(runs=runs).refusal(TrainRequest("cnn", batch_size=1)) == ""  # locally, as before

    at = app()  # neither batch input offers what would be refused; the public line says the range
    assert at.number_input(key="batch-cnn-fast").min == 32 and at.number_input(key="race-batch-fast").min == 32
    assert "batches of 32 to 256" in sidebar_text(at)


def test_a_run_or_race_estimated_past_the_limit_is_refused_with_its_estimate(public, monkeypatch):
    runs, data = public, os.environ["CIFARNETS_DATA"]
    v = Visitor("t" * 20, {}, True, PublicLimits(), runs, step_times=step_times(30.0))
    # 72 training images: 2 steps of 32 an epoch, 60 s by this clock; a race trains four networks, 40 min in all
    race = races.RaceRequest("fast", 10, 32, data, "cpu")
    one = estimate.total(step_times(30.0)("cnn", "fast", 32, "cpu"), 10, estimate.data_size(data)).seconds
    assert one == 600  # the sidebar's own arithmetic (estimate.total), which the refusal uses
    line = ("This race would take about 40m 00s here by this server's estimate, over its limit of 30 min: "
            "lower the epochs, or use a larger batch.")
    assert v.refusal(race) == line
    with pytest.raises(Refused, match="^This race would take about 40m 00s"):
        v.start(race)
    assert races.list_races(runs) == []
    run = TrainRequest("cnn", "fast", 10, None, 32, data, "cpu")
    assert v.refusal(run) == ""  # one network, a quarter of it, is within the limit
    strict = Visitor("t" * 20, {}, True, PublicLimits(run_min=5), runs, step_times=step_times(30.0))
    assert strict.refusal(run).startswith("This run would take about 10m 00s here by this server's estimate, over "
                                          "its limit of 5 min")
    assert Visitor(runs=runs, step_times=step_times(30.0)).refusal(race) == ""  # locally, as before

    # The sidebar says it before Start, from the estimate it shows, and offers no Start.
    monkeypatch.setenv("CIFARNETS_MAX_RUN_MIN", "1e-9")  # any real step is longer
    at = app()
    until_timed(at.number_input(key="batch-cnn-fast").set_value(32).run())  # a batch the 72 images fill
    assert any("over its limit of" in w.value for w in at.sidebar.warning), sidebar_text(at)
    assert at.button(key="train_start").disabled


def test_a_run_or_race_past_its_deadline_stops_itself_and_says_why(public, monkeypatch):
    # The deadline is the estimate times CIFARNETS_OVERRUN, at least LEAST_ALLOWANCE_S; here both are 0, so the
    # trainer is past it at its first step, and stops there as Cancel stops it, with no browser watching.
    runs, data = public, os.environ["CIFARNETS_DATA"]
    assert expiry.allowance_s(100, PublicLimits()) == expiry.LEAST_ALLOWANCE_S == 600
    assert expiry.allowance_s(1000, PublicLimits()) == 3000
    assert expiry.allowance_s(1000, PublicLimits(overrun=2)) == 2000
    monkeypatch.setattr(expiry, "LEAST_ALLOWANCE_S", 0.0)
    at = app()
    v = Visitor(at.session_state["_owner"], {}, True, PublicLimits(), runs, step_times=step_times(0.0))
    run = v.start(TrainRequest("cnn", "fast", 3, None, 32, data, "cpu"))
    assert run.job["limit_s"] == 0 and "deadline" not in run.job  # it runs from when a worker starts the run
    run = wait_for_state(record.load_run, run.folder, ("finished", "stopped", "failed"), RUN_LIMIT)
    assert run.state == "stopped" and run.overran and run.resumable, run.error
    assert run.job["deadline"] == run.job["launched"] >= run.started
    assert (run.status.epoch, run.status.step) == (0, 1)  # after its first step, its state saved
    at.run()
    assert "Stopped: ran past this server's time limit, after epoch 0, step 1" in sidebar_text(at)

    run = v.resume(run)  # a resume is given the allowance again, from its own start
    assert run.state == "queued" and "deadline" not in run.job and not run.overran
    run = wait_for_state(record.load_run, run.folder, ("finished", "stopped", "failed"), RUN_LIMIT)
    assert run.state == "stopped" and run.overran  # one step further: the epoch's last, its test pass, then stopped
    assert run.job["deadline"] == run.job["launched"] >= run.job["resumed"]
    assert (run.status.epoch, run.status.step) == (1, 0)

    race = v.start(races.RaceRequest("fast", 3, 32, data, "cpu"))  # a race stops alike, and starts no next network
    race = wait_for_state(races.load_race, race.folder, ("finished", "stopped", "failed"), RUN_LIMIT)
    assert race.state == "stopped" and race.overran and list(race.members()) == [races.ORDER[0]]
    at.run()  # the race's card says so too
    assert sum("Stopped: ran past this server's time limit" in str(c.value) for c in at.sidebar.caption) == 2


def test_tidying_stops_a_trainer_long_past_its_deadline(runs, sleepers):
    # The gate's backstop, for a trainer that did not stop itself (stuck, or deaf to SIGTERM): every start and
    # every page drawn once a minute tidy the runs folder, which first stops it as Cancel does, then kills it.
    hour_ago = time.time() - 3600
    late = live_job(runs, sleepers, name="cnn-fast-late", job={"deadline": hour_ago, "limit_s": 600})
    deaf = live_job(runs, sleepers, name="cnn-fast-deaf", script=DEAF, job={"deadline": hour_ago, "limit_s": 600})
    later = time.time() + 3 * 3600
    on_time = live_job(runs, sleepers, name="cnn-fast-on-time", job={"deadline": later, "limit_s": 600})
    assert sleepers[1].stdout.readline() == "ready\n"
    tidy(runs, PublicLimits())
    sleepers[0].wait(timeout=10)
    late = record.load_run(late.folder)
    assert late.state == "stopped" and late.overran
    deaf = record.load_run(deaf.folder)
    assert deaf.alive and deaf.job["cancelled"]  # asked, and deaf to it
    tidy(runs, PublicLimits(), now=time.time() + 3600)  # still there a grace period later: killed
    sleepers[1].wait(timeout=10)
    deaf = record.load_run(deaf.folder)
    assert deaf.state == "stopped" and deaf.overran
    assert record.load_run(on_time.folder).alive  # within its time: left alone, then as later


def test_tidy_deletes_expired_and_oldest_runs_but_never_a_live_one(runs, sleepers):
    old = finished_run(runs, "cnn-fast-old", 0.5)
    new = finished_run(runs, "cnn-fast-new", 0.5)
    live = live_job(runs, sleepers)
    hour_ago = time.time() - 3 * 3600
    for folder in (old.folder, live.folder):
        for p in [*folder.iterdir(), folder]:
            os.utime(p, (hour_ago, hour_ago))
    assert tidy(runs, PublicLimits(run_hours=2)) == ["cnn-fast-old"]  # expired; the live one is older, and stays
    assert new.folder.exists() and live.folder.exists()
    # Past the size cap: the oldest finished runs go first, the live one never.
    finished_run(runs, "cnn-fast-newer", 0.5)
    assert tidy(runs, PublicLimits(runs_mb=1e-6)) == ["cnn-fast-new", "cnn-fast-newer"]
    assert live.folder.exists() and record.load_run(live.folder).alive


# ---------------------------------------------------------------- 8. a server path in a download

def test_a_runs_download_names_its_data_set_never_a_server_path(tiny_folder, tmp_path):
    """A run's zip says which data set it learnt from by name and hash; where the server keeps it, never."""
    import zipfile

    from cifarnets.data import sources
    from cifarnets.store.export import checkpoint_zip
    from cifarnets.training import recipes
    from cifarnets.training.fit import fit

    secret = tmp_path / "srv-secret-place"
    tiny_folder.rename(secret)
    data = sources.load(str(secret))
    fit("cnn", recipes.get("modern", "cnn", epochs=1, batch_size=16), data, tmp_path / "run", device="cpu")
    with zipfile.ZipFile(io.BytesIO(checkpoint_zip(tmp_path / "run"))) as z:
        texts = {name: z.read(name).decode("utf-8", "replace") for name in z.namelist()}
    assert '"source": "srv-secret-place"' in texts["run/config.json"] and data.fingerprint in texts["run/config.json"]
    leaked = [name for name, text in texts.items() if str(tmp_path) in text]
    assert not leaked, leaked


# ---------------------------------------------------------------- 2 and 3. caps before the bytes, on every page

@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    from helpers.app import make_checkpoints

    return make_checkpoints(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture
def public_app(tiny_checkpoints, tmp_path, monkeypatch):
    """A page of the app under AppTest, in public mode with the default caps (10 MB, 20 images)."""
    from helpers.app import APP, PAGES
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CIFARNETS_PUBLIC", "1")
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(tiny_checkpoints))
    monkeypatch.setenv("CIFARNETS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFARNETS_DEVICE", "cpu")

    def open_page(name: str) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=120).run()
        at.switch_page(PAGES[name]).run()
        assert not at.exception, [e.value for e in at.exception]
        return at
    return open_page


def test_within_caps_judges_sizes_alone_and_refuses_past_the_count():
    from types import SimpleNamespace

    from cifarnets.paths import PublicLimits
    from cifarnets.ui.pictures import within_caps

    def unread(name, size):  # a file whose bytes must not be touched
        return SimpleNamespace(name=name, size=size, getvalue=lambda: pytest.fail("read"))

    limits = PublicLimits(upload_mb=1, images=3)
    files = [unread(f"{i}.png", 1000) for i in range(2)] + [unread("big.png", 2**20 + 1)]
    kept, refused = within_caps(files, limits)
    assert [f.name for f in kept] == ["0.png", "1.png"] and refused == [
        "big.png: 1.0 MB, over this demo's limit of 1 MB per image"]
    kept, refused = within_caps(files + [unread("3.png", 10)], limits)
    assert kept == [] and refused == ["This demo takes at most 3 images at once, and 4 came: none was read. "
                                      "Choose fewer."]


def test_more_uploads_than_the_cap_are_refused_unread_and_the_uploader_empties(public_app):
    at = public_app("Classify")
    at.file_uploader(key="uploads").set_value([(f"{i}.png", b"\x89PNG" + bytes(i), "image/png")
                                               for i in range(21)]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == ["This demo takes at most 20 images at once, and 21 came: none was read. "
                                           "Choose fewer."]
    assert at.file_uploader(key="uploads__1").value in (None, [])  # a fresh, empty uploader


@pytest.mark.parametrize("page,key", [("Stress test", "stress_upload"), ("Classify", "uploads")])
def test_every_page_refuses_a_file_over_the_public_cap_before_decoding_it(public_app, page, key):
    at = public_app(page)
    big = b"\x89PNG\r\n\x1a\n" + bytes(11 * 2**20)
    at.file_uploader(key=key).set_value(("big.png", big, "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == ["big.png: 11.5 MB, over this demo's limit of 10 MB per image"]

"""Public mode (CIFARNETS_PUBLIC=1): a visitor's runs and choices are their own, every Start waits its turn in
view, and a class of twelve loses nothing. Also, locally, the way back from one's own run to the shipped network.
The bounds on what one visitor can start (attack 4) are with the other attacks, in test_hostile_visitors.py."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import make_image_folder
from helpers.app import PAGES, image_bytes, make_checkpoints, texts, wait_for_state
from helpers.visitors import RUN_LIMIT, app, finished_run, sidebar_text

from cifarnets.paths import PublicLimits, public_limits
from cifarnets.perf import classload
from cifarnets.perf.loadtest import CHROMIUM
from cifarnets.runs import engine, expiry, record
from cifarnets.runs import race as races
from cifarnets.runs import visitor as visitors
from cifarnets.runs.expiry import tidy
from cifarnets.runs.record import JOB_FILE
from cifarnets.runs.request import TrainRequest
from cifarnets.runs.visitor import Refused, Visitor
from cifarnets.unfamiliar.calibration import redo_command


def test_two_sessions_see_cancel_resume_and_adopt_only_their_own(public):
    runs = public
    a, b = app(), app()
    assert "Public demo: your runs and your choices here are yours alone" in sidebar_text(a)
    a.number_input(key="epochs-cnn-fast").set_value(1)
    a.number_input(key="batch-cnn-fast").set_value(32)  # the smallest public mode allows: 2 steps an epoch
    a.selectbox(key="train_device").set_value("cpu")
    a.button(key="train_start").click().run()
    assert not a.exception and not a.sidebar.error, [e.value for e in a.sidebar.error]
    [run] = record.list_runs(runs)
    assert run.owner == a.session_state["_owner"] != b.session_state["_owner"]
    run = wait_for_state(record.load_run, run.folder, ("finished", "failed"), RUN_LIMIT)
    assert run.state == "finished", run.error

    a.run()
    b.run()
    assert run.name in sidebar_text(a) and f"use-{run.name}" in [x.key for x in a.button]
    assert run.name not in sidebar_text(b) and f"use-{run.name}" not in [x.key for x in b.button]
    b.switch_page(PAGES["Training curves"]).run()
    assert not b.exception and run.name not in texts(b)  # nor its curves, its table row or its download

    # B, even with a crafted request naming A's run, can neither cancel, resume nor adopt it.
    visitor_b = Visitor(b.session_state["_owner"], {}, True, PublicLimits(), runs)
    assert visitor_b.list_runs() == []
    for act in (visitor_b.cancel, visitor_b.resume, visitor_b.adopt):
        with pytest.raises(Refused, match="not one of your runs"):
            act(run)

    # A adopts it: A's Classify answers with it and says so; B's still uses the shipped network.
    a.button(key=f"use-{run.name}").click().run()
    assert not a.exception
    assert record.active(runs) == {}  # nothing server-wide
    a.switch_page(PAGES["Classify"]).run()
    assert "Answering from your own run: CNN" in texts(a)
    a.file_uploader(key="uploads").set_value(("x.png", image_bytes(), "image/png")).run()
    assert "CNN · your run, " in texts(a)
    b.switch_page(PAGES["Classify"]).run()
    b.file_uploader(key="uploads").set_value(("x.png", image_bytes(), "image/png")).run()
    assert "· your run" not in texts(b) and "Answering from your own run" not in texts(b)


def test_a_start_joins_the_queue_shows_its_place_and_can_leave_it(public, monkeypatch):
    """No worker takes runs (an operator's engine, its workers elsewhere): the run waits, its card says where, Start
    is off while it waits (one per visitor), and Leave takes it out."""
    monkeypatch.setenv("CIFARNETS_ENGINE", engine.start(public, workers=0))
    at = app()
    assert "every Start joins one queue" in sidebar_text(at)
    at.number_input(key="epochs-cnn-fast").set_value(1)
    at.button(key="train_start").click().run()
    assert not at.exception and not at.sidebar.error, [e.value for e in at.sidebar.error]
    [run] = record.list_runs(public)
    assert run.state == "queued"
    at.run()
    text = sidebar_text(at)
    assert ":gray-badge[queued]" in text and "1st in line; no worker takes runs" in text
    assert "You have a run waiting or training" in text and at.button(key="train_start").disabled
    assert at.button(key="race_start").disabled  # a race is a run too
    at.button(key=f"leave-{run.name}").click().run()
    assert record.list_runs(public) == [] and not at.button(key="train_start").disabled
    assert not at.button(key="race_start").disabled


def test_a_browser_is_one_visitor_across_sessions_and_a_stranger_is_not(public, tmp_path):
    """Two sessions with the browser's cookie (a reload, a new tab) are one visitor, its runs and its adoptions;
    a session without it (another browser, a shared link) is another. The server keeps only a hash."""
    first = {}
    me = Visitor.of_session(first, public)
    secret = first[visitors.SECRET_KEY]
    assert len(secret) == 22 and me.token == visitors.owner_id(secret) and secret not in me.token
    run = finished_run(public, "cnn-fast-mine", 0.5, owner=me.token)
    me.adopt(run)
    again = Visitor.of_session({}, public, cookie=secret)  # the reload
    assert again.token == me.token and [r.name for r in again.list_runs()] == ["cnn-fast-mine"]
    assert again.adopted() == {"cnn": run.folder}
    assert secret not in (run.folder / JOB_FILE).read_text()
    for cookie in (None, "", "x" * 21, "x" * 22 + "'", visitors.owner_id(secret), "../../" + "a" * 16):
        stranger = Visitor.of_session({}, public, cookie=cookie)
        assert stranger.token != me.token and stranger.list_runs() == [] and stranger.adopted() == {}, cookie
        with pytest.raises(Refused, match="not one of your runs"):
            stranger.cancel(run)
    again.drop("cnn")
    assert me.adopted() == {}
    me.adopt(run)
    tidy(public, PublicLimits(run_hours=1), now=time.time() + 2 * 3600)  # the run and then its adoption go
    assert not (public / "cnn-fast-mine").exists() and not list((public / expiry.VISITORS).glob("*.json"))


def test_without_the_operators_data_the_sidebar_says_so_and_offers_no_start(runs, monkeypatch, tmp_path):
    """Public mode never downloads on a visitor's Start: with no data here it says so in words for the page (it
    said "...pass --data PATH (or set CIFARNETS_DATA=PATH)..." after a failed download, cut mid-word)."""
    monkeypatch.setenv("CIFARNETS_PUBLIC", "1")
    monkeypatch.setenv("CIFARNETS_DATA", str(tmp_path / "not-provided-yet"))
    at = app()
    assert not at.exception, [e.value for e in at.exception]
    assert visitors.NO_DATA in [w.value for w in at.sidebar.warning]
    assert at.button(key="train_start").disabled and "--data" not in sidebar_text(at)
    assert Visitor.of_session({}, runs).refusal(TrainRequest("cnn", batch_size=64)) == visitors.NO_DATA
    monkeypatch.setenv("CIFARNETS_DATA", str(make_image_folder(tmp_path / "operator-data")))
    assert Visitor.of_session({}, runs).has_data()


def test_public_limits_come_from_their_variables(monkeypatch):
    monkeypatch.setenv("CIFARNETS_MAX_TRAINERS", "0")
    monkeypatch.setenv("CIFARNETS_MAX_EPOCHS", "3")
    monkeypatch.setenv("CIFARNETS_RUN_HOURS", "0.5")
    monkeypatch.setenv("CIFARNETS_MIN_BATCH", "64")
    monkeypatch.setenv("CIFARNETS_MAX_RUN_MIN", "20")
    monkeypatch.setenv("CIFARNETS_OVERRUN", "2.5")
    assert public_limits() == PublicLimits(trainers=0, epochs=3, run_hours=0.5, min_batch=64, run_min=20, overrun=2.5)
    for var, bad in (("CIFARNETS_MAX_EPOCHS", "0"), ("CIFARNETS_MAX_BATCH", "many"), ("CIFARNETS_RUNS_MB", "-1"),
                     ("CIFARNETS_MIN_BATCH", "0"), ("CIFARNETS_MAX_RUN_MIN", "0"), ("CIFARNETS_OVERRUN", "no")):
        monkeypatch.setenv(var, bad)
        with pytest.raises(ValueError, match=f"^{var} must be a"):
            public_limits()
        monkeypatch.delenv(var)
    # The smallest batch never above the largest: an operator's small CIFARNETS_MAX_BATCH lowers the default
    # smallest with it, and one set above the largest is a mistake to name.
    monkeypatch.setenv("CIFARNETS_MAX_BATCH", "4")
    assert public_limits().min_batch == 4
    monkeypatch.setenv("CIFARNETS_MIN_BATCH", "8")
    with pytest.raises(ValueError, match="^CIFARNETS_MIN_BATCH .* above CIFARNETS_MAX_BATCH"):
        public_limits()


def test_over_cap_epochs_batch_and_any_path_are_refused(public, tmp_path):
    runs = public
    v = Visitor("t" * 20, {}, True, PublicLimits(epochs=3, batch_size=64), runs)
    ok = TrainRequest("cnn", "fast", 3, None, 64, os.environ["CIFARNETS_DATA"], "cpu")
    assert v.refusal(ok) == ""
    assert v.refusal(TrainRequest("cnn", epochs=4)) == "public mode allows at most 3 epochs"
    assert v.refusal(TrainRequest("cnn", batch_size=65)) == "public mode allows batches of at most 64"
    assert v.refusal(races.RaceRequest("fast", epochs=4)) == "public mode allows at most 3 epochs"
    there, missing = make_image_folder(tmp_path / "there"), tmp_path / "missing"
    said = {v.refusal(TrainRequest("cnn", data=str(p))) for p in (there, missing, "/etc", "../../x")}
    assert said == {"public mode trains only on the data this server provides: no paths"}  # the same for any path
    with pytest.raises(Refused):
        v.start(TrainRequest("cnn", data=str(there)))
    assert record.list_runs(runs) == []

    at = app()  # no path box, no data choice, and the inputs stop at the caps
    assert not [r for r in at.radio if r.key == "train_data"]
    assert not [t for t in at.text_input if t.key == "train_data_path"]
    assert at.number_input(key="epochs-cnn-fast").max == 10 and at.number_input(key="batch-cnn-fast").max == 256


def test_the_calibrate_hint_names_no_server_folder_in_public_mode(monkeypatch, tmp_path):
    folder = tmp_path / "secret-runs" / "cnn-fast" / "cnn"
    assert str(folder.parent) in redo_command(folder)  # locally the command is one to paste
    monkeypatch.setenv("CIFARNETS_PUBLIC", "1")
    assert "secret-runs" not in redo_command(folder) and "--checkpoints RUN_FOLDER" in redo_command(folder)


def test_local_data_choice_opens_on_cifar10(runs, monkeypatch, tmp_path):
    monkeypatch.delenv("CIFARNETS_DATA", raising=False)
    at = app()
    radio = at.radio(key="train_data")
    assert radio.value == "download" and radio.options[-1] == "a path on this machine"
    assert "CIFAR-10, downloaded into ./data (about 170 MB, once" in radio.options[0]
    assert not [t for t in at.text_input if t.key == "train_data_path"]
    # a data set someone named in $CIFARNETS_DATA comes first: they chose it
    monkeypatch.setenv("CIFARNETS_DATA", str(tmp_path / "shapes"))
    radio = app().radio(key="train_data")
    assert radio.value == "env" and radio.options[1].startswith("CIFAR-10")


def test_offline_without_cifar10_start_says_so_in_words_for_the_page(runs, monkeypatch, tmp_path):
    """The download is checked when Start is pressed (a connection on every page drawn would reach the network
    for nothing): offline, the run is not made, and the line names no flag."""
    from cifarnets.data import sources
    from cifarnets.ui import sidebar

    monkeypatch.delenv("CIFARNETS_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./data here
    monkeypatch.setattr(sources, "can_download", lambda timeout_s=2.0: False)
    at = app()
    assert at.radio(key="train_data").value == "download"
    assert "needs internet" in at.radio(key="train_data").options[0]  # said before Start too
    at.button(key="train_start").click().run()
    assert [e.value for e in at.sidebar.error] == [sidebar.OFFLINE]
    assert "--data" not in sidebar.OFFLINE and "CIFARNETS_DATA" not in sidebar.OFFLINE
    assert record.list_runs(runs) == []


def test_a_weaker_run_asks_first_and_the_way_back_is_one_button(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("CIFARNETS_CHECKPOINTS", str(make_checkpoints(tmp_path / "shipped")))  # CNN: 50%
    weak = finished_run(runs, "cnn-fast-weak", 0.1)
    at = app()
    at.button(key=f"use-{weak.name}").click().run()
    assert record.active(runs) == {}  # not yet: it scores below the network it replaces
    [warning] = [w.value for w in at.sidebar.warning]
    assert warning == ("Below the network it would replace in Classify (test accuracy as Classify answers): CNN: "
                       "10.0%, against 50.0% for the shipped network now.")
    at.button(key=f"use-{weak.name}-no").click().run()
    assert record.active(runs) == {} and not at.sidebar.warning
    at.button(key=f"use-{weak.name}").click().run()
    at.button(key=f"use-{weak.name}-yes").click().run()
    assert record.active(runs) == {"cnn": weak.folder}

    at.run()  # Home and Classify name the source; Classify has the way back
    assert "CNN · your run, 10.0%" in [s.value for s in at.subheader]
    at.switch_page(PAGES["Classify"]).run()
    assert "Answering from your own run: CNN (`cnn-fast-weak`, 10.0%)" in texts(at)
    at.file_uploader(key="uploads").set_value(("x.png", image_bytes(), "image/png")).run()
    assert "**CNN · your run, 10.0%**" in texts(at)
    at.button(key="classify-back-cnn").click().run()
    assert record.active(runs) == {}
    assert "· your run" not in texts(at) and "Answering from your own run" not in texts(at)

    # A better run needs no second step; the run card's own back button undoes it.
    strong = finished_run(runs, "cnn-fast-strong", 0.9)
    at.run()
    at.button(key=f"use-{strong.name}").click().run()
    assert record.active(runs) == {"cnn": strong.folder}
    at.button(key=f"back-{strong.name}").click().run()
    assert record.active(runs) == {}


@pytest.mark.browser
@pytest.mark.load
@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)")
def test_a_class_of_twelve_all_train_and_three_reloads_lose_nothing(tmp_path):
    """python -m cifarnets load --train: twelve browser sessions press Start within a second of each other, three
    reload mid-run; every run is accepted, waits its turn on the one worker, and finishes; each session finds its
    own run again, sees no other, and is shown places that only go down. (A page that has not drawn Home in
    classload.LOAD_S is reloaded once, as a student would: one CI run had a page that never did, cause unknown. A
    reloading session that never saw its run train reloads once it ended: CI once had two reloads of three.)"""
    env = dict(os.environ, CIFARNETS_DATA=str(make_image_folder(tmp_path / "operator-data")),
               CIFARNETS_CHECKPOINTS=str(make_checkpoints(tmp_path / "shipped")), CIFARNETS_DEVICE="cpu",
               CIFARNETS_MIN_BATCH="8")
    result = classload.class_load(12, reloads=3, epochs=1, timeout_s=1500, workers=1, env=env, batch_size=8)
    assert (result["accepted"], result["finished"], result["lost"], result["foreign_visible"]) == (12, 12, 0, 0), \
        result["failures"]
    assert result["places_only_decrease"] and result["runs_in_folder"] == 12
    assert sum(o.get("reloaded", False) for o in result["per_session"]) == 3
    assert max(len(o["places"]) for o in result["per_session"]) > 1  # someone waited and saw the line move
    assert "12 accepted, 12 finished, 0 lost, 0 foreign" in classload.table(result)

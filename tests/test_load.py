"""The load test: three browser sessions classify at once against the app with tiny checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cifarnets import cli
from cifarnets.examples import list_examples
from cifarnets.perf import loadtest
from cifarnets.perf.loadtest import CHROMIUM


@pytest.mark.browser
@pytest.mark.load
@pytest.mark.slow
@pytest.mark.timeout(1800)  # on this project's starved 2-core machine, torch and Chromium load slowly
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)")
def test_three_sessions_all_held(app_url):
    images = [e.path for e in list_examples()][:3]  # one photo and two CIFAR-10 images, say: one each
    result = loadtest.run(app_url, 3, images, timeout_s=900)
    assert (result["sessions"], result["opened"], result["held"]) == (3, 3, 3), result["failures"]
    assert sorted(s["image"] for s in result["per_session"]) == sorted(p.name for p in images)
    for key in ("first_render_ms", "latency_ms"):
        p = result[key]
        assert p["n"] == 3
        assert all(math.isfinite(p[q]) and p[q] > 0 for q in ("p50", "p90", "p99", "max"))
        assert p["p50"] <= p["p90"] <= p["p99"] <= p["max"]
    assert "3 held" in loadtest.table(result)


@pytest.mark.parametrize("url", ["http://example.com:8501", "http://10.0.0.7:8501", "http://0.0.0.0:8501",
                                 "file:///etc/passwd", "http://127.0.0.1.example.com/"])
def test_only_this_machine_is_loaded(url, capsys):
    with pytest.raises(ValueError, match="refusing"):
        loadtest.run(url, 3, [list_examples()[0].path])
    assert cli.main(["load", "--sessions", "3", "--url", url]) == 1
    assert "error: refusing" in capsys.readouterr().err


def test_bounds():
    image = [list_examples()[0].path]
    for sessions, timeout in ((0, 10), (loadtest.MAX_SESSIONS + 1, 10), (3, 0)):
        with pytest.raises(ValueError):
            loadtest.run("http://127.0.0.1:9", sessions, image, timeout)
    with pytest.raises(ValueError, match="no such image"):
        loadtest.run("http://127.0.0.1:9", 1, [Path("missing.png")])
    assert loadtest.percentiles([]) is None
    assert loadtest.percentiles([4.0, 1.0, 3.0, 2.0]) == {"n": 4, "p50": 2.5, "p90": 3.7, "p99": 4.0, "max": 4.0}

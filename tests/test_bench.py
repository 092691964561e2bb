"""`python -m cifarnets bench` runs end to end on tiny settings and prints the JSON issue 6 asks for.

No timing is asserted here: speed is measured by the benchmark itself, never judged by a test.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                        "CIFARNETS_CHECKPOINTS": str(tmp_path / "no-checkpoints")}
    # From an empty folder, with an empty checkpoints folder: no ./data and no networks, so generated images and
    # fresh networks.
    return subprocess.run([sys.executable, "-m", "cifarnets", "bench", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


def test_bench_prints_the_issue_json_on_tiny_settings(tmp_path):
    done = bench(tmp_path, "--model", "cnn", "--steps", "2", "--batch-size", "32", "--device", "cpu",
                 "--cold-starts", "1", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert set(result["cnn"]) >= {"ours_img_s", "reference_img_s", "ratio", "ours_img_per_cpu_s",
                                  "reference_img_per_cpu_s", "cpu_ratio", "gflop_per_img", "ours_pct_of_peak"}
    assert result["cnn"]["gflop_per_img"] > result["cnn"]["gflop_fwd_per_img"] > 0
    # the share of peak is against the precision training computes in, whose peak is always measured
    assert result["precision"] in result["peak_gflop_per_cpu_s"] and "fp32" in result["peak_gflop_per_cpu_s"]
    # Both figures are printed rounded (to 0.1 and 0.01), so they agree to half that step, however small they are.
    assert result["cnn"]["ours_pct_of_peak"] == pytest.approx(
        100 * result["cnn"]["ours_gflop_per_cpu_s"] / result["peak_gflop_per_cpu_s"][result["precision"]], abs=0.051)
    assert result["cnn"]["ratio"] == pytest.approx(result["cnn"]["ours_img_s"] / result["cnn"]["reference_img_s"],
                                                   rel=0.01, abs=0.0051)
    assert result["infer_ms_all4"] > 0 and result["cold_start_s"] > 0
    # answering a split: the batch in use measured beside the 1,000 all devices used before
    assert set(result["split_ms_per_image"]) == {str(result["split_batch"]), "1000"}
    assert result["device"].startswith("cpu (") and result["threads"] >= 1  # names the CPU and its instructions
    assert result["data"].startswith("generated") and set(result["models_from"].values()) == {"fresh"}
    assert not {"resnet", "densenet", "se_resnet"} & set(result), "--model cnn measures the CNN alone"


def test_bench_on_a_named_data_set_that_is_missing_says_so(tmp_path):
    done = bench(tmp_path, "--model", "cnn", "--steps", "1", "--data", str(tmp_path / "nowhere"))
    assert done.returncode == 1 and done.stderr.startswith("error:") and "nowhere" in done.stderr

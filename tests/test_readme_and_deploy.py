"""The README and the deploy files agree with each other and with the repository: what a fresh clone,
CI, a Hugging Face Space and the Dockerfile each read from them."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from huggingface_hub.repocard import metadata_load

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCKERFILE = (ROOT / "Dockerfile").read_text()
FULL_SUITE = 'pip install -e ".[dev]" && python -m pytest'


def test_ci_runs_the_readmes_test_command():
    """.ci/run takes its command from the README's `## Run the tests` section: the front matter and the
    fast-loop line beside it must not change which command that is."""
    ci = (ROOT / ".ci" / "run").read_text()
    extract = next(line for line in ci.splitlines() if line.startswith("cmd=$("))
    run = subprocess.run(["bash", "-c", f"{extract}\nprintf %s \"$cmd\""], cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert run.stdout == FULL_SUITE


def test_readme_front_matter_configures_a_docker_space_on_the_apps_port():
    meta = metadata_load(README)  # as the Hub reads it
    assert meta["sdk"] == "docker" and meta["title"] == "cifarnets"
    port = meta["app_port"]
    assert f"EXPOSE {port}\n" in DOCKERFILE and f'"--server.port={port}"' in DOCKERFILE


def test_dockerfile_takes_torch_and_torchvision_bounds_from_requirements():
    """The CPU-only index must serve exactly torch and torchvision, within requirements.txt's bounds."""
    pattern = shlex.split(re.search(r"grep -E ('[^']+') requirements\.txt", DOCKERFILE).group(1))[0]
    run = subprocess.run(["grep", "-E", pattern, "requirements.txt"], cwd=ROOT, capture_output=True, text=True,
                         timeout=30)
    picked = [re.match(r"[A-Za-z0-9_.-]+", line).group(0) for line in run.stdout.splitlines()]
    assert picked == ["torch", "torchvision"]


def test_readme_points_only_inside_the_repository():
    assert "../" not in README.read_text()


def test_every_local_link_in_the_readme_and_docs_leads_somewhere():
    pages = [README, *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for link in re.findall(r"\]\(([^)#\s]+)\)", page.read_text()):
            if not link.startswith(("http://", "https://")) and not (page.parent / link).exists():
                broken.append(f"{page.relative_to(ROOT)}: {link}")
    assert not broken

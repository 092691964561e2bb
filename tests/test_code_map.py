"""docs/code.md stays true: every file and folder it names exists, each folder's line names only modules that
are there, and its lines run in the order of tests/test_layers.py's LAYERS, lowest first, with every layer on
a line of its own or shared."""

from __future__ import annotations

import re
from pathlib import Path

from test_layers import LAYERS, RANK

ROOT = Path(__file__).resolve().parents[1]
UNLISTED = {"cifarnets", "__main__"}  # the package's own __init__ and `python -m`'s entry


def rows() -> list[tuple[list[str], str]]:
    """(the paths in the first column, the second column) for each line of the map's table."""
    found = []
    for line in (ROOT / "docs" / "code.md").read_text().splitlines():
        if line.startswith("| `"):
            first, second = line.split(" | ", 1)
            found.append((re.findall(r"`([^`]+)`", first), second))
    return found


def paths(names: list[str]) -> list[Path]:
    """`cifarnets/errors.py`, `paths.py`: a bare name sits in the folder of the path before it."""
    out, folder = [], ROOT
    for name in names:
        path = (ROOT / name) if "/" in name.rstrip("/") or name.endswith("/") or not out else folder / name
        out.append(path)
        folder = path.parent
    return out


def part(path: Path) -> str | None:
    """The LAYERS part a path of cifarnets/ belongs to (store.fileio before store), or None outside it."""
    try:
        rel = path.relative_to(ROOT / "cifarnets")
    except ValueError:
        return None
    dotted = ".".join(rel.with_suffix("").parts)
    return next((p for p in (dotted, dotted.split(".")[0]) if p in RANK), None)


def test_every_file_and_folder_the_map_names_exists():
    missing = [str(p.relative_to(ROOT)) for names, _ in rows() for p in paths(names) if not p.exists()]
    assert rows() and not missing, f"docs/code.md names what is not there: {missing}"


def test_a_folders_line_names_only_its_own_modules():
    """A module named in a folder's description (`record.py`) is a file of that folder, one with a folder
    (`store/runfolder.py`) a file of cifarnets/: a module moved or deleted leaves the map false."""
    wrong = []
    for names, text in rows():
        for folder in (p for p in paths(names) if p.is_dir() and p.parent.name == "cifarnets"):
            for module in re.findall(r"\b([\w/]+\.py)\b", text):  # `store/runfolder.py`: from cifarnets/
                where = ROOT / "cifarnets" / module if "/" in module else folder / module
                wrong += [] if where.exists() else [f"{folder.name}: {module}"]
    assert not wrong, f"docs/code.md describes modules that are not there: {wrong}"


def test_the_map_runs_in_the_layers_order_and_names_every_layer():
    order = [part(p) for names, _ in rows() for p in paths(names)]
    ranks = [RANK[p] for p in order if p is not None]
    assert ranks == sorted(ranks), f"docs/code.md's lines are not in LAYERS order: {[p for p in order if p]}"
    unmapped = set(LAYERS) - UNLISTED - set(order)
    assert not unmapped, f"layers with no line in docs/code.md: {unmapped}"

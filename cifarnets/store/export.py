"""Results a user takes away: tables as CSV, and a finished run's checkpoint as a zip of its files."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

from .checkpoints import checkpoint_files


def rows_csv(rows: list[dict]) -> bytes:
    """A table (one dict a row) as UTF-8 CSV; the columns are every key, in the order they first appear."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def checkpoint_zip(folder: str | Path) -> bytes:
    """The checkpoint's files (checkpoints.checkpoint_files: weights, config, histories, a card) under one
    folder named after it, read whole, so a run never leaks its resume state, status or lock."""
    folder = Path(folder)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in checkpoint_files(folder):
            z.writestr(f"{folder.name}/{path.name}", path.read_bytes())
    return buf.getvalue()

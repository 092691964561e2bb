"""Training histories -> one long table (network, source, epoch, metric, split, value) that charts can facet,
and one history row as a line of text (epoch_line: what `train` and `race` print after each epoch).

Sources: each shipped checkpoint's own history, the report recipe's history where a checkpoint
carries one (report_history.json), and the user's runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..models import KEYS, label
from .record import CheckpointError, CheckpointRecord
from .runfolder import HISTORY_FILE, REPORT_HISTORY_FILE, read_history

# metric -> (train column, test column) in a history row
METRICS = {"loss": ("train_loss", "test_loss"), "accuracy": ("train_acc", "test_acc")}


def epoch_line(row: dict, epochs: int) -> str:
    """One history row as the shell prints it after each epoch."""
    return (f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.2%}  "
            f"test loss {row['test_loss']:.4f} acc {row['test_acc']:.2%}  lr {row['lr']:.4g}  "
            f"{row['seconds']:.0f}s  {row['images_per_s']:.0f} img/s")


@dataclass
class Curve:
    key: str  # network
    source: str  # where the history comes from, as a person reads it
    rows: list[dict]
    # The checkpoint's test accuracy as Classify answers (all views), where the curve is a checkpoint's: the rows'
    # test_acc is of each image alone, a point or two lower, and must not pass for the run's accuracy.
    answered: float | None = None


def _recipe_and_accuracy(folder: Path) -> tuple[str, float | None]:
    try:
        config = CheckpointRecord.read(folder).config
    except CheckpointError:
        return "", None
    recipe, metrics = config.get("recipe"), config.get("metrics")
    acc = metrics.get("test_acc") if isinstance(metrics, dict) else None
    return (recipe.get("name", "") if isinstance(recipe, dict) else "",
            float(acc) if isinstance(acc, (int, float)) and not isinstance(acc, bool) else None)


def shipped_curves(checkpoints: Path) -> list[Curve]:
    """Each network's shipped history, and beside it the report recipe's, where the checkpoint has one."""
    curves = []
    for key in KEYS:
        folder = Path(checkpoints) / key
        rows = read_history(folder, HISTORY_FILE)
        if rows:
            recipe, acc = _recipe_and_accuracy(folder)
            curves.append(Curve(key, f"shipped ({recipe} recipe)" if recipe else "shipped", rows, acc))
        report = read_history(folder, REPORT_HISTORY_FILE)
        if report:
            curves.append(Curve(key, "shipped (report recipe)", report))
    return curves


def spread(curves: list[Curve], factor: int = 4) -> bool:
    """Whether the longest history is at least `factor` times the shortest: a linear epoch axis would then
    squeeze the short ones into its first sliver."""
    lengths = [len(c.rows) for c in curves if c.rows]
    return bool(lengths) and max(lengths) >= factor * min(lengths)


def long_rows(curves: list[Curve]) -> list[dict]:
    """One row per (curve, epoch, metric, split) with a finite value; what Altair's encodings want."""
    out = []
    for curve in curves:
        for row in curve.rows:
            if not isinstance(row, dict) or "epoch" not in row:
                continue
            for metric, columns in METRICS.items():
                for split, column in zip(("train", "test"), columns, strict=True):
                    value = row.get(column)
                    if isinstance(value, (int, float)) and value == value:  # skips NaN
                        out.append({"network": label(curve.key), "source": curve.source, "epoch": int(row["epoch"]),
                                    "metric": metric, "split": split, "value": float(value)})
    return out


def best(rows: list[dict]) -> dict | None:
    """The epoch with the highest test accuracy, for a one-line summary."""
    scored = [r for r in rows if isinstance(r.get("test_acc"), (int, float))]
    return max(scored, key=lambda r: r["test_acc"]) if scored else None

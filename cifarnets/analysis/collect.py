"""Everything the Why they differ page shows, gathered: per network its checkpoint, stored measurements and
history; the joint measurements; and the rows each chart draws. Plain data in, plain rows out."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from .. import CIFAR10_CLASSES
from ..models import ALL_KEYS, build, label, spec
from ..store.checkpoints import Entry
from ..store.record import CheckpointError, CheckpointRecord
from ..store.runfolder import MODEL_FILE, read_history
from ..training.recipes import recorded
from . import analysisfile
from .cost import checkpoint_bytes, static_cost
from .gradients import depth_rows

INIT, TRAINED = "at initialisation", "after training"


@dataclass
class Network:
    key: str
    folder: Path
    trained: bool  # a checkpoint is there
    config: dict = field(default_factory=dict)
    record: dict | None = None  # analysis.json
    stale: bool = False  # analysis.json was computed from another checkpoint
    history: list[dict] = field(default_factory=list)

    @property
    def label(self) -> str:
        return label(self.key)

    @property
    def ours(self) -> bool:
        return not spec(self.key).in_report

    @property
    def fresh_record(self) -> dict | None:
        """The stored measurements, when they belong to the checkpoint now in the folder."""
        return None if self.stale else self.record


def _config(folder: Path) -> dict:
    try:
        return CheckpointRecord.read(folder).config
    except CheckpointError:
        return {}


def collect(checkpoints: Path, entries: dict[str, Entry]) -> dict[str, Network]:
    """The four networks as the app loaded them (their folder may be a user's run), then ours from `checkpoints`."""
    out = {}
    for key in ALL_KEYS:
        entry = entries.get(key)
        folder = Path(entry.path) if entry else Path(checkpoints) / key
        trained = entry.ok if entry else (folder / MODEL_FILE).exists()
        config = (entry.config if entry and entry.ok else _config(folder)) if trained else {}
        record = analysisfile.read(folder)
        # untrained, a record is current when it was measured untrained too (it names no checkpoint)
        stale = bool(record) and (CheckpointRecord(folder, config).stale(record.get("checkpoint")) if trained
                                  else record.get("checkpoint") is not None)
        out[key] = Network(key, folder, trained, config, record, stale,
                           read_history(folder) if trained else [])
    return out


# ---------------------------------------------------------------- gradient flow

def gradient_sources(net: Network) -> dict[str, dict[str, float]]:
    """{moment: {layer: norm}}: stored measurements first, else what the trainer recorded in the history.

    An untrained network's stored record (checkpoint None) is still current: initial gradients need no training.
    """
    grads = (net.fresh_record or {}).get("gradients", {})
    first, last = (net.history[0], net.history[-1]) if net.history else ({}, {})
    found = {INIT: grads.get("init") or first.get("grad_norms_init"),
             TRAINED: grads.get("trained") or last.get("grad_norms")}
    return {moment: norms for moment, norms in found.items() if isinstance(norms, dict) and norms}


def _classes(net: Network) -> int:
    return len(net.config.get("classes", range(10)))


def gradient_rows(networks: dict[str, Network]) -> list[dict]:
    """One row per (network, moment, layer): depth, kind, gradient norm and RMS per weight."""
    rows = []
    for net in networks.values():
        for moment, norms in gradient_sources(net).items():
            rows += [r | {"network": net.label, "moment": moment} for r in depth_rows(net.key, norms, _classes(net))]
    return rows


def epoch_gradient_rows(net: Network) -> list[dict]:
    """Main-path rows per recorded epoch of the training history; epoch 0 is the initialisation."""
    first = net.history[0] if net.history else {}
    snapshots = [(0, first["grad_norms_init"])] if isinstance(first.get("grad_norms_init"), dict) else []
    snapshots += [(row.get("epoch", i + 1), row["grad_norms"]) for i, row in enumerate(net.history)
                  if isinstance(row.get("grad_norms"), dict)]
    return [r | {"network": net.label, "epoch": epoch} for epoch, norms in snapshots
            for r in depth_rows(net.key, norms, _classes(net)) if r["kind"] in ("conv", "linear")]


# ---------------------------------------------------------------- cost and quality

@functools.lru_cache(maxsize=16)
def _static_cost(key: str, num_classes: int) -> tuple[int, int]:
    c = static_cost(build(key, num_classes))
    return c["params"], c["macs"]


def cost_rows(networks: dict[str, Network]) -> list[dict]:
    """One row per network: parameters and MACs (from the architecture), latency (stored: it depends on the
    architecture and the device only, so a record of an older checkpoint still holds), size, accuracy."""
    rows = []
    for net in networks.values():
        params, macs = _static_cost(net.key, _classes(net))
        record = net.record or {}
        size = checkpoint_bytes(net.folder) if net.trained else None
        row = {"network": net.label, "ours": net.ours, "params": params, "macs": macs,
               "checkpoint_kb": size / 1024 if size else None,
               "test_acc": net.config.get("metrics", {}).get("test_acc") if net.trained else None,
               "device": record.get("device")}
        row["latency_together"] = record.get("cost", {}).get("latency_together", False)
        for batch, seconds in record.get("cost", {}).get("latency_s", {}).items():
            row[f"latency_ms_{batch}"] = seconds * 1e3
        rows.append(row)
    return rows


def quality_records(networks: dict[str, Network]) -> dict[str, dict]:
    """{network label: quality summary on the test split}, for the networks with current measurements."""
    return {net.label: net.fresh_record["quality"] for net in networks.values()
            if net.fresh_record and "quality" in net.fresh_record}


def photo_records(networks: dict[str, Network]) -> dict[str, dict]:
    """{network label: quality summary on real photos} (analyze's `quality_photos`), for the networks with
    current measurements made the way Classify prepares a photo now."""
    def current(net: Network) -> bool:
        preparation = net.fresh_record.get("quality_photos", {}).get("preparation")
        return isinstance(preparation, str) and not CheckpointRecord(net.folder, net.config).stale(
            {"preparation": preparation})

    return {net.label: net.fresh_record["quality_photos"] for net in networks.values()
            if net.fresh_record and current(net)}


def recipes(networks: dict[str, Network]) -> dict[str, dict]:
    """{label: the recipe its config.json records} for the trained networks that record one."""
    return {net.label: recorded(net.config["recipe"]) for net in networks.values()
            if isinstance(net.config.get("recipe"), dict)}


def label_smoothing(networks: dict[str, Network]) -> dict[str, float]:
    return {name: float(recipe.get("label_smoothing") or 0) for name, recipe in recipes(networks).items()}


def classes_of(networks: dict[str, Network]) -> list[str]:
    for net in networks.values():
        if net.config.get("classes"):
            return list(net.config["classes"])
    return list(CIFAR10_CLASSES)


def per_class_rows(records: dict[str, dict], classes: list[str]) -> list[dict]:
    return [{"network": n, "class": c, "accuracy": a} for n, r in records.items()
            for c, a in zip(classes, r["per_class"], strict=False)]


def confusion_rows(matrix: list[list[int]], classes: list[str]) -> list[dict]:
    return [{"true": classes[t], "predicted": classes[p], "count": n, "share": n / max(sum(row), 1)}
            for t, row in enumerate(matrix) for p, n in enumerate(row)]


def reliability_rows(records: dict[str, dict]) -> list[dict]:
    return [{"network": n} | b for n, r in records.items() for b in r["reliability"]]

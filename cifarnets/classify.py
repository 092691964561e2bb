"""Many images, four networks: each image's top-5 per network, whether each network finds the image
unfamiliar, and a summary that marks disagreement.

The Classify page's logic. Images that cannot be read get their one-line reason and take no part
in the batch; every other image is classified in one batch, by every loaded network.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .checkpoints import Entry
from .images import ImageError
from .predict import Prepared, answers, batch, prepare, top_k
from .unfamiliar import calibration
from .unfamiliar.calibration import Verdict


@dataclass
class Result:
    name: str
    prepared: Prepared | None = None
    error: str = ""
    top5: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # network key -> [(class, prob)]
    verdicts: dict[str, Verdict | None] = field(default_factory=dict)  # network key -> verdict; None: uncalibrated

    @property
    def ok(self) -> bool:
        return self.prepared is not None

    def top1(self, key: str) -> tuple[str, float] | None:
        return self.top5[key][0] if self.top5.get(key) else None

    @property
    def disagree(self) -> bool:
        """The networks' top-1 labels are not all the same."""
        return len({t[0][0] for t in self.top5.values() if t}) > 1

    @property
    def guessing(self) -> bool:
        """Every network that answered finds the image unfamiliar (and each of them can tell)."""
        return bool(self.verdicts) and all(v is not None and v.unfamiliar for v in self.verdicts.values())


def classify(files: list[tuple[str, bytes]], entries: dict[str, Entry], k: int = 5) -> list[Result]:
    """(name, raw bytes) pairs -> one Result each, in the same order."""
    results = []
    for name, raw in files:
        try:
            results.append(Result(name, prepare(raw, name)))
        except ImageError as e:
            results.append(Result(name, error=str(e)))
    ready = [r for r in results if r.ok]
    if ready:
        found = answers(entries, batch([r.prepared.pixels for r in ready]))
        for i, result in enumerate(ready):
            result.top5 = {key: top_k(a.probs[i], entries[key].classes, k) for key, a in found.items()}
            result.verdicts = {key: a.verdicts[i] if a.verdicts else None for key, a in found.items()}
    return results


def uncalibrated(entries: dict[str, Entry]) -> dict[str, str]:
    """Loaded networks that cannot say whether an input is unfamiliar -> why, in one line."""
    found = {key: calibration.load(e) for key, e in entries.items() if e.ok}
    return {key: why for key, why in found.items() if isinstance(why, str)}


def summary_rows(results: list[Result], labels: dict[str, str]) -> list[dict]:
    """Image x network -> 'label (probability)', and whether the networks disagree on that image."""
    rows = []
    for r in results:
        if not r.ok:
            continue
        row = {"image": r.name}
        for key, name in labels.items():
            top = r.top1(key)
            row[name] = f"{top[0]} ({top[1]:.0%})" if top else "-"
        row["networks disagree"] = r.disagree
        row["all find it unfamiliar"] = r.guessing
        rows.append(row)
    return rows


def enlarge(pixels: np.ndarray, size: int = 128) -> Image.Image:
    """The 32x32 input blown up with hard pixel edges, so a person sees exactly what the networks see."""
    return Image.fromarray(pixels).resize((size, size), Image.Resampling.NEAREST)


def preview(image: Image.Image, side: int = 480) -> Image.Image:
    """A copy small enough to send to the browser; a 12-megapixel photo need not travel whole."""
    small = image.copy()
    small.thumbnail((side, side), Image.Resampling.LANCZOS)
    return small


def unique_names(names: list[str]) -> list[str]:
    """Two uploads called image.png stay apart: the second becomes 'image.png (2)'."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    return out

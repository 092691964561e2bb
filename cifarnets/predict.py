"""Any image -> the 32x32 tensor the networks see -> every network's answer, and whether it finds the image
unfamiliar.

For the Classify page and `predict` alike: images that cannot be read get their one-line reason and take no
part in the batch; every other image is classified in one batch, by every loaded network.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .answering import answer
from .data.images import MAX_BYTES, SIZE, ImageError, crop_box, decode_image, to_array
from .data.loader import batch
from .store.checkpoints import Entry
from .unfamiliar import calibration
from .unfamiliar.calibration import Verdict
from .unfamiliar.scores import view_outputs
from .unfamiliar.structure import structureless

PREVIEW = 1024  # longest side of the picture kept for display; the full decode is dropped


def centre_square(width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom): the part of a picture the networks see, by images.PREPARATION's rule (the
    whole centre square, as wide as the shorter side: images.crop_box). A test holds the two together."""
    return crop_box(width, height)


def too_small(size: tuple[int, int]) -> bool:
    """Narrower than CIFAR-10's own 32 pixels on a side: blown up into a smear of a few big pixels, like no training
    image, so every network's answer to it is unfounded (an 8x8 noise picture got "truck" at up to 88%)."""
    return min(size) < SIZE


@dataclass
class Prepared:
    name: str
    image: Image.Image  # upright RGB, shrunk to at most PREVIEW pixels a side: what the user gave, for display
    pixels: np.ndarray  # (32, 32, 3) uint8: what the networks see
    size: tuple[int, int] = (SIZE, SIZE)  # the decoded picture's width and height, before any shrinking
    box: tuple[int, int, int, int] = (0, 0, SIZE, SIZE)  # the part of it the networks see, in its own pixels

    @property
    def seen_share(self) -> float:
        """The share of the picture's area that the networks see (1.0: all of it)."""
        left, top, right, bottom = self.box
        return (right - left) * (bottom - top) / (self.size[0] * self.size[1])

    @property
    def too_small(self) -> bool:
        return too_small(self.size)


def prepare(raw: bytes, name: str) -> Prepared:
    """Decode and shrink one uploaded file; raises ImageError with a one-line reason, and nothing else.

    Only a preview is kept: a 64-megapixel upload decodes to 192 MB, and an app with many sessions
    must not hold that per image.
    """
    image = decode_image(raw, name)
    pixels = to_array(image)
    size = image.size
    image.thumbnail((PREVIEW, PREVIEW), Image.Resampling.LANCZOS)
    return Prepared(name, image, pixels, size, centre_square(*size))


def read_file(path: str | Path, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of one file, refusing anything that is not a regular file or is over the upload cap."""
    path = Path(path)
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise ImageError(f"{path} is a folder, not an image")
        if not stat.S_ISREG(st.st_mode):  # a FIFO blocks and /dev/zero never ends: never read them
            raise ImageError(f"{path} is not a regular file")
        if st.st_size > max_bytes:
            raise ImageError(f"{path.name} is {st.st_size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit")
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)  # bounded even if the file grows while we read it
        if len(raw) > max_bytes:
            raise ImageError(f"{path.name} is over the {max_bytes / 2**20:.0f} MB limit")
        return raw
    except IsADirectoryError:
        raise ImageError(f"{path} is a folder, not an image") from None
    except FileNotFoundError:
        raise ImageError(f"{path} does not exist") from None
    except OSError as e:
        raise ImageError(f"{path} cannot be read ({e.strerror or e})") from None


@torch.no_grad()
def probabilities(entries: dict[str, Entry], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Softmax (N, classes) averaged over the views, of every loaded network; networks without a checkpoint are
    left out."""
    out = {}
    for key, entry in entries.items():
        if entry.ok:
            device = next(entry.model.parameters()).device
            out[key] = answer(entry.model, x.to(device))[1].cpu()
    return out


def own_note(entry: Entry) -> str:
    """Why a network brought in by a visitor has no unfamiliar-input check, in words (yours/: a visitor cannot
    run the command that calibrates it); "" for the others, and for one that came with a fitting calibration."""
    return getattr(entry, "no_calibration", "")


@dataclass
class Answer:
    """One network's answer to a batch, and whether it finds each input unfamiliar."""

    probs: torch.Tensor  # (N, classes), averaged over the views: the same numbers probabilities() gives
    verdicts: list[Verdict] | None  # one per input; None when the network has no usable calibration
    note: str = ""  # why there are no verdicts, in one line that says what to run


@torch.no_grad()
def answers(entries: dict[str, Entry], x: torch.Tensor, small: list[bool] | None = None) -> dict[str, Answer]:
    """Every loaded network's answer, and its verdict from the same forward pass over the same views.

    The unfamiliarity score is judged on every view the answer is made from (the image, its mirror image and
    both shifted): a network that is sure of a picture but not of its mirror image has not recognised it.
    `small`: which inputs were blown up from a picture smaller than 32x32 (too_small), unfamiliar to all alike.
    """
    out = {}
    plain = structureless(x).tolist()  # no structure at all: unfamiliar to every network alike
    if small:
        plain = [p or s for p, s in zip(plain, small, strict=True)]
    seen = {key: view_outputs(entry.model, x.to(next(entry.model.parameters()).device))
            for key, entry in entries.items() if entry.ok}
    # The networks answering together, averaged: what the calibrated "together" score reads (scores.TOGETHER)
    together = torch.stack([v.answer for v in seen.values()]).mean(0) if seen else None
    for key, v in seen.items():
        entry = entries[key]
        found = own_note(entry) or calibration.load(entry)
        if isinstance(found, str):
            out[key] = Answer(v.answer, None, found)
            continue
        try:
            out[key] = Answer(v.answer, calibration.verdicts(found, v, plain, together))
        except ValueError as e:
            out[key] = Answer(v.answer, None, f"{e}; redo it with `{calibration.redo_command(entry.path)}`")
    return out


def unfamiliar_json(answer: Answer, row: int) -> dict:
    """What `predict --json` says of one input: the score, the threshold and the flag, or why there is none."""
    if answer.verdicts is None:
        return {"flag": None, "note": answer.note}
    return answer.verdicts[row].as_dict()


def top_k(probs: torch.Tensor, classes: list[str], k: int = 5) -> list[tuple[str, float]]:
    p, i = probs.topk(min(k, len(classes)))
    return [(classes[j], round(float(q), 4)) for q, j in zip(p, i, strict=True)]


def predict_files(paths: list[str], entries: dict[str, Entry],
                  change: Callable[[np.ndarray], np.ndarray] | None = None) -> list[dict]:
    """One result per path, in order: predictions of every loaded network, or the reason it failed.
    `change`, when given, turns each image's 32x32 pixels into what the networks see (a corruption, an attack)."""
    results: list[dict] = []
    ready: list[tuple[int, np.ndarray, bool]] = []  # only the 32x32 pixels: many large files must not pile up
    for path in paths:
        try:
            image = decode_image(read_file(path), Path(path).name)
            pixels = to_array(image)
            ready.append((len(results), change(pixels) if change else pixels, too_small(image.size)))
            results.append({"file": path})
        except ImageError as e:
            results.append({"file": path, "error": str(e)})
    if ready:
        found = answers(entries, batch([pixels for _, pixels, _ in ready]), [small for _, _, small in ready])
        for row, (i, _, _) in enumerate(ready):
            results[i]["predictions"] = {
                key: {"label": (top := top_k(a.probs[row], entries[key].classes))[0][0], "prob": top[0][1],
                      "top5": top, "unfamiliar": unfamiliar_json(a, row)}
                for key, a in found.items()}
    return results


# ---------------------------------------------------------------- many images, four networks (Classify)

GUESSING = ("Every network finds this image unlike anything it was trained on: the answers below are guesses, "
            "however sure the bars look.")
CONFIDENT = 0.5  # a top answer at or above this probability reads as sure of itself
# Under this share of the picture seen, the crop gets a caution of its own. A picture twice as wide as high still
# is answered from its centre square: on the 136 real photos that wide (photos-real and photos-more), answering
# from squares across the whole width, averaged, was no clear gain (paired 90% intervals per network, in points:
# CNN -8.1 to +2.2, ResNet +0.0 to +7.4, DenseNet -0.7 to +5.1, SE-ResNet +0.0 to +5.9), and would cost a
# forward pass per square.
HALF = 0.5


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

    def cautions(self, labels: dict[str, str]) -> list[str]:
        """Where the networks are known to be unreliable, what a student should read before any answer: a
        picture too small or with no structure, one most networks find unfamiliar, confident disagreement.
        `labels`: network key -> its name."""
        out = []
        checked = [v for v in self.verdicts.values() if v is not None]
        meaningless = self.prepared.too_small or any(v.plain for v in checked)
        if self.prepared.too_small:
            w, h = self.prepared.size
            out.append(f"This picture is only {w}x{h} pixels. Blown up {SIZE / min(w, h):.0f} times to the 32x32 the "
                       "networks take, it is a smear of a few big pixels, unlike any picture they learnt from: every "
                       "answer below is meaningless, however sure it looks.")
        elif any(v.plain for v in checked):
            out.append("This picture has no structure (noise, or one flat colour): there is nothing in it to "
                       "recognise, and every answer below is meaningless, however sure it looks.")
        elif self.guessing:
            out.append(GUESSING)
        elif len(checked) > 2 and (n := sum(v.unfamiliar for v in checked)) > len(checked) / 2:
            out.append(f"{n} of the {len(checked)} networks find this image unlike anything they learnt from: "
                       "treat every answer below as a guess, the others' too.")
        if self.prepared.seen_share < HALF:
            out.append(f"The networks see only the middle {self.prepared.seen_share:.0%} of this picture, the square "
                       "marked on it: they answer for that part alone. Crop the picture to what you mean, and upload "
                       "that.")
        sure = {key: top for key, top in ((k, self.top1(k)) for k in self.top5) if top and top[1] >= CONFIDENT}
        if len({top[0] for top in sure.values()}) > 1 and not meaningless:  # of a meaningless input, said already
            said = ", ".join(f"{labels.get(k, k)} {top[0]} ({top[1]:.0%})" for k, top in sure.items())
            out.append(f"The networks disagree, each of them sure: {said}. At least one confident answer is wrong "
                       "here, so a high probability does not mean a right answer.")
        return out


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
        found = answers(entries, batch([r.prepared.pixels for r in ready]), [r.prepared.too_small for r in ready])
        for i, result in enumerate(ready):
            result.top5 = {key: top_k(a.probs[i], entries[key].classes, k) for key, a in found.items()}
            result.verdicts = {key: a.verdicts[i] if a.verdicts else None for key, a in found.items()}
    return results


def uncalibrated(entries: dict[str, Entry]) -> dict[str, str]:
    """Loaded networks that cannot say whether an input is unfamiliar -> why, in one line."""
    found = {key: own_note(e) or calibration.load(e) for key, e in entries.items() if e.ok}
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


def unique_names(names: list[str]) -> list[str]:
    """Two uploads called image.png stay apart: the second becomes 'image.png (2)'."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    return out

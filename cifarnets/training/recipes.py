"""Named training recipes, as plain data: `report` reproduces the report, `modern` trains long for our
shipped checkpoints, `fast` reaches the report's accuracy in a few epochs.

A recipe is per network, since the report trained each one its own way. Anything a user can
override from the CLI or the sidebar (epochs, lr, batch size) is a field here.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import MISSING, asdict, dataclass, fields, replace

from ..errors import UnknownName, UsageError
from ..models import spec

# The fields that take one of a few words, and the words.
CHOICES = {"optimizer": ("sgd", "adam"), "schedule": ("constant", "step", "onecycle"),
           "pad_mode": ("constant", "reflect"), "flip": ("random", "alternate")}


@dataclass(frozen=True)
class Recipe:
    name: str
    optimizer: str  # "sgd" | "adam"
    lr: float  # the peak learning rate
    epochs: int
    batch_size: int = 128
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0  # applied to weights only, never to biases or BatchNorm
    schedule: str = "constant"  # "constant" | "step" | "onecycle"
    step_epochs: int = 10  # "step": multiply by gamma every step_epochs epochs
    gamma: float = 0.1
    warmup: float = 0.0  # "onecycle": fraction of each cycle's steps spent ramping up linearly
    # "onecycle" with warm restarts (SGDR): (epoch, peak lr) where each further cosine cycle starts.
    # The cycles before a restart are exactly the shorter recipe's, so a finished run continues into
    # the longer recipe with --resume; an --epochs override drops the restarts it does not reach.
    restarts: tuple[tuple[int, float], ...] = ()
    label_smoothing: float = 0.0
    augment: bool = True  # random crop (padded by `pad`) + horizontal flip
    pad: int = 4  # translation by up to this many pixels each way
    pad_mode: str = "constant"  # "constant": black edges; "reflect": the image mirrored at its edges
    # > 0: each image also shrunk by a random share up to this (0.25: to 24-32 pixels across), its edges
    # reflected around it, as objects in photos are framed looser than CIFAR-10's (docs/photos.md)
    zoom_out: float = 0.0
    cutout: int = 0  # > 0: a square of this many pixels a side blanked at a random place in each image
    # Photo-like changes (docs/photos.md, "Training for photos"): > 0 turns each on.
    crop_scale: float = 0.0  # random-resized crop: a random share of the image's area, from this to 1, enlarged back
    jitter: float = 0.0  # colour jitter: brightness, contrast and saturation each times a random 1 +- this
    blur: float = 0.0  # this share of images shrunk to 20-28 pixels and enlarged back (a soft photo)
    augmix: int = 0  # > 0: AugMix at this severity (1-10; the paper's 3), each image blended with random edits
    # a checkpoint folder (or a shipped network's key) whose weights the run starts from: fine-tuning
    init: str = ""
    flip: str = "random"  # "random": each image mirrored with p 1/2 each epoch; "alternate": every other epoch
    bias_lr_scale: float = 1.0  # BatchNorm weights and biases step at this multiple of the lr (no weight decay)
    ema: float = 0.0  # > 0: an exponential average of the weights (this decay per step) is evaluated and saved
    # trained networks' keys, "+" between several (an ensemble: their answers averaged): what they answer is
    # distilled into this one (Hinton et al. 2015)
    teacher: str = ""
    distill_weight: float = 0.0  # share of the loss that is the teacher's softened answers
    distill_temperature: float = 4.0
    # "live": the teachers answer every augmented batch. "fixed": they answer each training image once,
    # before training, averaged with its mirror image's answer; a step then costs no teacher forward,
    # but the answer is the uncropped image's
    distill_targets: str = "live"
    note: str = ""  # what the report said, and what we assumed where it was silent

    def __post_init__(self) -> None:
        """The one check of what a user may set (--epochs, --batch-size, --lr, --set, the sidebar): every
        recipe is made here or by replace(), so a bad value is refused before any data is loaded."""
        # lr 0 is allowed: a run that only measures, or that carries weights over unchanged (--init)
        if self.epochs < 1 or self.batch_size < 1 or not self.lr >= 0:
            raise UsageError(f"epochs and batch size must be at least 1 and the learning rate not below 0, not "
                             f"{self.epochs}, {self.batch_size} and {self.lr}")
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise UsageError(f"unknown {name} {getattr(self, name)!r}: {' or '.join(allowed)}")
        if not 0 <= self.augmix <= 10:
            raise UsageError(f"augmix is AugMix's severity, 1 to 10 (0: off), not {self.augmix}")
        for key in self.teachers:
            spec(key)  # an unknown network's key is the user's mistake, said in one line

    def lr_at(self, step: int, steps_per_epoch: int) -> float:
        """The learning rate for optimizer step `step` (0-based) of the whole run."""
        total = max(1, self.epochs * steps_per_epoch)
        if self.schedule == "constant":
            return self.lr
        if self.schedule == "step":
            return self.lr * self.gamma ** (step // (self.step_epochs * steps_per_epoch))
        if self.schedule == "onecycle":
            cycles = [(0, self.lr)] + [(e * steps_per_epoch, lr) for e, lr in self.restarts if 0 < e < self.epochs]
            i = bisect.bisect_right([start for start, _ in cycles], step) - 1
            start, peak = cycles[i]
            end = cycles[i + 1][0] if i + 1 < len(cycles) else total
            return _cycle(step - start, end - start, peak, self.warmup)
        raise AssertionError(f"schedule {self.schedule!r}")  # refused in __post_init__

    @property
    def teachers(self) -> list[str]:
        return [key for key in self.teacher.split("+") if key]

    def to_dict(self) -> dict:
        return asdict(self)


def _cycle(step: int, total: int, peak: float, warmup: float) -> float:
    """Linear warm-up over the first `warmup` fraction of `total` steps, then cosine decay to zero."""
    warm = max(1, int(warmup * total))
    if step < warm:
        return peak * (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, total - warm))
    return peak * 0.5 * (1 + math.cos(math.pi * t))


_REPORT_NOTE = ("The report gives {given}; it is silent on {silent}, so we assume {assumed}.")

REPORT = {
    "cnn": Recipe(
        "report", "adam", 1e-3, epochs=10, batch_size=64, augment=False,
        note=_REPORT_NOTE.format(given="Adam, lr 0.001, 10 epochs", silent="batch size and augmentation",
                                 assumed="batch 64 and no augmentation, as in PyTorch's CIFAR-10 tutorial "
                                         "it builds on")),
    "resnet": Recipe(
        "report", "adam", 1e-3, epochs=20, batch_size=128, augment=True,
        note=_REPORT_NOTE.format(given="20 epochs and >80% with no overfitting yet",
                                 silent="optimizer, batch size and augmentation",
                                 assumed="the CNN's Adam at lr 0.001, batch 128, and crop+flip (without it a "
                                         "ResNet overfits well before 20 epochs)")),
    "densenet": Recipe(
        "report", "adam", 1e-3, epochs=20, batch_size=128, augment=False,
        note=_REPORT_NOTE.format(given=">75% with the test loss rising late (overfitting)",
                                 silent="optimizer, epochs and augmentation",
                                 assumed="Adam at lr 0.001, batch 128, 20 epochs like the ResNet, and no "
                                         "augmentation, which is what lets it overfit")),
    "se_resnet": Recipe(
        "report", "sgd", 0.1, epochs=20, batch_size=128, momentum=0.9, weight_decay=5e-4,
        schedule="step", step_epochs=10, gamma=0.1, augment=True,
        note=_REPORT_NOTE.format(given="SGD with a learning-rate scheduler, >80%, converged",
                                 silent="the schedule, epochs and batch size",
                                 assumed="lr 0.1, momentum 0.9, weight decay 5e-4, StepLR x0.1 every 10 epochs, "
                                         "20 epochs, batch 128, crop+flip")),
}

# The shipped checkpoints: one long cycle of SGD with Nesterov momentum (5% warm-up, cosine to 0),
# label smoothing 0.1 and weight decay 5e-4, batch 128. Translation by 4 with reflected edges (the
# networks with BatchNorm overfit: 96% on the training split against 87% on the test split after
# 100 epochs of crop+flip with black edges). The CNN and the DenseNet, which underfit, get the fast
# recipe's lighter translation by 2, and the DenseNet learns mostly from what the three shipped ResNets
# answer together (distillation from their ensemble, answers fixed before training so a step runs no
# teacher; over 150 epochs); the CNN gained 0.5 and no photos from distillation, so it learns alone
# (docs/training.md). The three ResNets (the plain twin for a like-for-like comparison, the SE-ResNet
# likewise) still overfit (95% on the training split against 88% on the test split), so they train 150
# epochs with cutout. Our first shipped checkpoints used batch 256, lr 0.2 and warm restarts.
_MODERN = Recipe("modern", "sgd", 0.1, epochs=100, batch_size=128, nesterov=True, weight_decay=5e-4,
                 schedule="onecycle", warmup=0.05, label_smoothing=0.1, augment=True, pad=4, pad_mode="reflect",
                 note="Ours, long: SGD+Nesterov, one cycle (5% warm-up, cosine to 0), label smoothing 0.1, wd 5e-4, "
                      "batch 128, crop (translation by 4, reflected edges) + flip.")
_CUTOUT = replace(_MODERN, epochs=150, cutout=8,
                  note=_MODERN.note + " Cutout: an 8-pixel square blanked at a random place in each image.")
_LIGHT = replace(_MODERN, pad=2, note=_MODERN.note.replace("translation by 4", "translation by 2"))
MODERN = {
    "cnn": replace(_LIGHT, epochs=60, lr=0.05),
    "resnet": _CUTOUT,
    "densenet": replace(_LIGHT, epochs=150, teacher="resnet+se_resnet+resnet_plain", distill_weight=0.8,
                        distill_temperature=4.0, distill_targets="fixed",
                        note=_LIGHT.note + " 80% of the loss is the answers of the shipped ResNet, SE-ResNet and "
                                           "ResNet without shortcuts averaged, each training image answered "
                                           "once before training (as the app answers), softened at "
                                           "temperature 4 (distillation)."),
    "se_resnet": _CUTOUT,
}

# Few epochs to the report's accuracy, the architectures unchanged: what the fastest CIFAR-10 trainers
# (airbench, hlb-CIFAR10) get from the procedure rather than the hardware. One short cycle, alternating
# flips (every image seen both ways, one per epoch), translation by 2 with reflected edges (black
# edges from a pad of 4 cost the CNN 3.4 points in 5 epochs), and for the networks with BatchNorm a
# batch of 128 (more steps per epoch) with stronger label smoothing. What each choice measured, and
# what did not help, is in docs/training.md; `python -m cifarnets speedrun` measures it again.
_FAST = Recipe("fast", "sgd", 0.15, epochs=5, batch_size=128, nesterov=True, weight_decay=5e-4,
               schedule="onecycle", warmup=0.1, label_smoothing=0.2, augment=True, pad=2, pad_mode="reflect",
               flip="alternate",
               note="Ours, for few epochs: SGD+Nesterov, one short cycle (10% warm-up, cosine to 0), label smoothing "
                    "0.2, wd 5e-4, batch 128, alternating flips, translation by 2 with reflected edges.")
FAST = {
    "cnn": replace(_FAST, lr=0.05, label_smoothing=0.1,
                   note=_FAST.note.replace("label smoothing 0.2", "label smoothing 0.1")),
    "resnet": _FAST,
    "densenet": _FAST,
    "se_resnet": _FAST,
}

RECIPES = {"fast": FAST, "modern": MODERN, "report": REPORT}


def get(name: str, key: str, **overrides) -> Recipe:
    """The recipe `name` for network `key`, with any non-None overrides (epochs=..., lr=..., batch_size=...).
    Its note, which describes the recipe as written and which a run's config.json keeps, then also says
    what was changed, so a checkpoint trained with `--set teacher=...` never reads as the plain recipe."""
    if name not in RECIPES:
        raise UnknownName(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    recipe = RECIPES[name].get(key)
    if recipe is None:
        raise UnknownName(f"recipe {name!r} has no entry for network {key!r}")
    changed = replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    said = [f"{k}={getattr(changed, k)}" for k in overrides if getattr(changed, k) != getattr(recipe, k)]
    return replace(changed, note=f"{recipe.note} Changed for this run: {', '.join(said)}.") if said else changed


def recorded(recipe: dict) -> dict:
    """A recipe as a config.json records it, with the fields added since that run filled in with their
    defaults, which is what the run had (no `cutout` recorded: it trained without)."""
    return {f.name: f.default for f in fields(Recipe) if f.default is not MISSING} | recipe


def settings(pairs: list[str]) -> dict:
    """`--set FIELD=VALUE` pairs (train, speedrun) as typed overrides for `get`."""
    types = {f.name: f.type for f in fields(Recipe)}
    out = {}
    for setting in pairs:
        name, sep, text = setting.partition("=")
        if not sep or name not in types or name in ("name", "note", "restarts"):
            raise UsageError(f"--set {setting!r}: FIELD=VALUE with a recipe field, e.g. flip=random or ema=0.99")
        kind = types[name]
        try:
            out[name] = (text.lower() in ("1", "true", "yes") if kind == "bool" else
                         int(text) if kind == "int" else float(text) if kind == "float" else text)
        except ValueError:
            number = "a whole number" if kind == "int" else "a number"
            raise UsageError(f"--set {setting!r}: {name} takes {number}") from None
    return out

"""What starts a training run: TrainRequest, as job.json keeps it and as the child's command line says it, built by
TrainRequest.of from the sidebar's form or from a race's RaceRequest.member; and why one cannot start (check).
record.py reads a run's folder back; jobs.py starts the child this describes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from ..models import KEYS, label
from ..paths import DEFAULT_DATA
from ..training import recipes


def given(data, kind: type) -> dict:
    """The fields of the request dataclass `kind` in a JSON object (job.json's "request", race.json's)."""
    known = {f.name for f in fields(kind)}
    return {k: v for k, v in data.items() if k in known} if isinstance(data, dict) else {}


def absolute_data(data: str | None) -> str | None:
    """The child runs in the project root, not here: give it an absolute path."""
    return str(Path(data).expanduser().resolve()) if data and data != DEFAULT_DATA else data


def optional(value, kind: type):
    """A form's value as a request holds it: None for "the recipe's own" (an empty box's None or "")."""
    return None if value is None or value == "" else kind(value)


@dataclass(frozen=True)
class TrainRequest:
    """How a run is started; None means the recipe's own value (or the CLI's default data)."""

    model: str
    recipe: str = "fast"
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    data: str | None = None
    device: str = "auto"
    seed: int = 0

    @classmethod
    def of(cls, model: str, recipe: str = "fast", *, epochs=None, lr=None, batch_size=None, data: str | None = None,
           device: str = "auto", seed: int = 0) -> TrainRequest:
        """The one way a request is built from what a form or a race gives (numbers as widgets hand them back)."""
        return cls(model, recipe, optional(epochs, int), optional(lr, float), optional(batch_size, int), data,
                   device, int(seed))

    @classmethod
    def from_json(cls, data) -> TrainRequest:
        """As job.json keeps it (asdict); a key it does not know, from another version, is left out."""
        return cls(**given(data, cls))

    def argv(self, out: Path, resume: bool = False) -> list[str]:
        args = ["train", "--model", self.model, "--recipe", self.recipe, "--out", str(out),
                "--device", self.device, "--seed", str(self.seed)]
        for flag, value in (("--epochs", self.epochs), ("--lr", self.lr), ("--batch-size", self.batch_size),
                            ("--data", self.data)):
            if value is not None and value != "":
                args += [flag, str(value)]
        return args + (["--resume"] if resume else [])

    def planned(self) -> recipes.Recipe:
        """The recipe as this run trains it: the named one for its network, with the request's values."""
        return recipes.get(self.recipe, self.model, epochs=self.epochs, lr=self.lr, batch_size=self.batch_size)


def device_choices() -> list[str]:
    """What the trainer can be asked to run on here."""
    import torch

    return (["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
            + (["mps"] if torch.backends.mps.is_available() else []))


def check(request: TrainRequest) -> str:
    """Why this request cannot start, in one line; "" when it can. The trainer checks the rest itself."""
    if request.model not in KEYS:
        return f"unknown network {request.model!r}"
    if request.epochs is not None and request.epochs < 1 or request.batch_size is not None and request.batch_size < 1:
        return "epochs and batch size must be at least 1"
    if request.lr is not None and not request.lr > 0:
        return "the learning rate must be above 0"
    if request.data is not None and request.data != DEFAULT_DATA:
        if not request.data.strip():
            return "enter the path of the training data (an image-folder tree, or an archive of one)"
        if not Path(request.data).expanduser().exists():
            return f"{request.data} does not exist on this machine"
    if request.recipe not in recipes.RECIPES:
        return f"unknown recipe {request.recipe!r}; choose one of {', '.join(recipes.RECIPES)}"
    return distillation_problem(request)


def distillation_problem(request: TrainRequest) -> str:
    """Why the request's recipe cannot distil from its teacher: the teacher cannot be loaded, or was trained
    on other classes than the data's, where the data's folder names tell them without decoding it (the
    trainer checks every source again); "" otherwise."""
    recipe = recipes.get(request.recipe, request.model)
    if not recipe.teacher:
        return ""
    from ..data.sources import list_classes  # here, not above: importing the job runner must not load torch
    from ..training.distill import teacher_problem

    problem = teacher_problem(recipe, list_classes(request.data))
    return f"{label(request.model)}: {problem}" if problem else ""

"""The networks a recipe distils from: checked, loaded, and where the recipe fixes their answers, those
answers for every training image. The loss that uses them is step.Objective.

A recipe names its teachers by key, several joined by "+" (an ensemble, whose answer is the average of
theirs: step.mean_answer). They come from the checkpoints folder and must know the data's classes in its
order, since a teacher's answer is a target only for images of its classes.
"""

from __future__ import annotations

import torch

from ..answering import MIRRORED, logits_of_views, split_batch
from ..data.loader import DeviceLoader
from ..data.sources import Split
from ..models import MODELS, label
from ..paths import checkpoints_dir
from ..store.checkpoints import load_checkpoint
from ..store.record import CheckpointError, CheckpointRecord
from ..store.runfolder import TrainingError
from .recipes import Recipe
from .step import CHANNELS_LAST, mean_answer, place

TARGETS = ("live", "fixed")  # Recipe.distill_targets


def load_teachers(recipe: Recipe, dev: torch.device, classes: list[str]) -> tuple[list[torch.nn.Module], dict | None]:
    """(the teachers in eval mode on `dev`, what a checkpoint's config records of them); ([], None) without."""
    if not recipe.teachers:
        return [], None
    problem = teacher_problem(recipe, classes)
    if problem:
        raise TrainingError(problem)
    models, records = [], []
    for key in recipe.teachers:
        folder = checkpoints_dir() / key
        try:
            model, config = load_checkpoint(folder, dev, expected_key=key)
        except CheckpointError as e:
            raise TrainingError(_unloadable(recipe, key, e)) from None
        models.append(place(model, dev).eval())
        records.append({"model": key, "folder": str(folder), "test_acc": config.get("metrics", {}).get("test_acc"),
                        "epochs": config.get("epochs"), "date": config.get("date")})
    # One teacher keeps the record it always had; an ensemble lists its members under its name.
    record = records[0] if len(records) == 1 else {"model": recipe.teacher, "members": records}
    return models, record | {"targets": recipe.distill_targets}


def teacher_problem(recipe: Recipe, classes: list[str] | None) -> str:
    """Why `recipe` cannot distil on data of these classes (None: not known yet), in one line; "" when it can
    or has no teacher. Reads the teachers' configs alone, so the sidebar can say it before a run starts."""
    if recipe.teachers and recipe.distill_targets not in TARGETS:
        return f"distill_targets is {recipe.distill_targets!r}: {' or '.join(TARGETS)}"
    for key in recipe.teachers:
        folder = checkpoints_dir() / key
        try:
            config = CheckpointRecord.read(folder).config
        except CheckpointError as e:
            return _unloadable(recipe, key, e)
        if classes is not None and config["classes"] != list(classes):
            return (f"the {recipe.name} recipe distils from the {_name(key)} in {folder}, which was trained on "
                    f"other classes than this data's ({', '.join(classes[:4])}{', ...' if len(classes) > 4 else ''}); "
                    "choose a recipe without a teacher, such as fast")
    return ""


@torch.no_grad()
def fixed_answers(teachers: list[torch.nn.Module], split: Split, dev: torch.device) -> torch.Tensor:
    """Every image's answer from the teachers (fp32, each image with its mirror image: the views the shipped
    DenseNet learnt from), averaged over the teachers: (N, classes) log-probabilities, in the split's order."""
    out = []
    for xb, _ in DeviceLoader(split, split_batch(dev), dev, train=False, channels_last=CHANNELS_LAST).batches():
        views = [view for teacher in teachers
                 for view in logits_of_views(teacher, xb, MIRRORED).view(MIRRORED, len(xb), -1)]
        out.append(mean_answer(views))
    return torch.cat(out)


def _name(key: str) -> str:
    return label(key) if key in MODELS else repr(key)


def _unloadable(recipe: Recipe, key: str, error: CheckpointError) -> str:
    return f"the {recipe.name} recipe distils from the {_name(key)}, which cannot be loaded: {error}"

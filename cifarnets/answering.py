"""How a network answers an image, the same everywhere: in fp32, averaged over views of the image.

The app, `predict`, `evaluate`, the accuracy a checkpoint claims and the unfamiliar-input check all
answer through here, so what one shows is what the others give.
"""

from __future__ import annotations

import torch

from .device import exact_fp32
from .errors import UsageError

# Answers are computed in fp32 on every machine, whatever autocast is open around the call: a CPU
# with native bf16 and one without (where bf16 is emulated) then give the same answers, and the
# accuracy a checkpoint claims is the accuracy of the answers users get. bf16 is for training speed.
PRECISION = "fp32"


# How many views of an image make a network's answer, everywhere: the app, `predict`, `evaluate` and the
# accuracy a checkpoint claims. The image and its mirror image, then both shifted a pixel along each diagonal
# (views_of): every network trained on mirrored and shifted images, so these are as much its input as the
# original, and since every view comes with its mirror, an image and its mirror image get the same answer.
# On the test split 10 views beat 2 by 0.4 to 0.9 points for each shipped network; 6 (two diagonals) did
# as well but answered a mirrored image differently, and 18 (every shift) no better. On our real photos they
# are within that check's noise of 2 (docs/training.md, "Views").
VIEWS = 10
MAX_VIEWS = 10
# The image and its mirror: what fit() answers between epochs (the curves' "mirrored" accuracy), at a fifth
# of VIEWS' cost, and how a teacher's fixed answers are made (distill.fixed_answers).
MIRRORED = 2
# Where each shifted pair's window starts in the image padded by a pixel: (0, 0) shows it a pixel down and
# to the right. Mirroring a view turns one diagonal into the other, so the four make a set that mirrors into
# itself.
_CORNERS = ((0, 0), (2, 2), (0, 2), (2, 0))


def views_in_words(views: int) -> str:
    """How an answer of `views` views was made, in words, for a printout or a model card."""
    if views == 1:
        return "each image alone"
    if views == 2:
        return "each image averaged with its mirror image"
    return f"each image averaged over {views} views, mirrored and shifted a pixel diagonally"


def split_batch(device: torch.device) -> int:
    """Images per forward when answering a whole split (evaluation after each epoch, `evaluate`, the
    analyses, fixed distillation targets). On the CPU few: with the views of 1,000 images the activations
    overflow its caches and every image costs more (one thread of an AMD EPYC, AVX2: a ResNet answers an
    image in 4.0 ms at 200, 6.6 ms at 1,000; a DenseNet in 0.9 and 1.5 ms). A GPU wants many at once."""
    return 200 if device.type == "cpu" else 1000


def views_of(x: torch.Tensor, n: int = VIEWS) -> torch.Tensor:
    """(n * N, C, H, W): the first n of the images, their mirror images, and both shifted a pixel down-right,
    up-left, up-right and down-left in turn (the edges reflected), one view after another."""
    if not 1 <= n <= MAX_VIEWS:
        raise UsageError(f"views: 1 to {MAX_VIEWS}, not {n}")
    out = [x, x.flip(3)]
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect") if n > 2 else None
    for top, left in _CORNERS[:(n - 1) // 2]:
        shifted = padded[..., top:top + h, left:left + w]
        out += [shifted, shifted.flip(3)]
    return torch.cat(out[:n])


def answer(model: torch.nn.Module, x: torch.Tensor, views: int = VIEWS) -> tuple[torch.Tensor, torch.Tensor]:
    """(softmax of each image alone, softmax averaged over `views` views), both (N, classes), in PRECISION.

    The second is the network's answer. The first is kept for the training curves, which stay
    comparable with the report's single-view figures.
    """
    per_view = logits_of_views(model, x, views).view(views, len(x), -1)
    return torch.softmax(per_view[0], dim=-1), average(per_view)


def logits_of_views(model: torch.nn.Module, x: torch.Tensor, views: int = VIEWS,
                    intermediates: bool = False):
    """The model's output for views_of(x, views), in PRECISION whatever autocast is open around the call:
    the logits, or with `intermediates` everything forward_intermediates hands back."""
    if x.device.type == "cuda":
        exact_fp32()
    with torch.autocast(x.device.type, enabled=False):
        batch = views_of(x.float(), views)
        if intermediates:
            return model.forward_intermediates(batch)
        # A mirror pair at a time: a whole split's batch (answering.split_batch) times every view would
        # overflow a CPU's caches and cost more per image.
        return torch.cat([model(pair).float() for pair in batch.split(MIRRORED * len(x))])


def average(logits: torch.Tensor) -> torch.Tensor:
    """(views, N, classes) logits -> the answer: their softmax averaged over the views, (N, classes)."""
    return torch.softmax(logits.float(), dim=-1).mean(0)

"""How a network answers an image, the same everywhere: in fp32, averaged over views of the image.

The app, `predict`, `evaluate`, the accuracy a checkpoint claims and the unfamiliar-input check all
answer through here, so what one shows is what the others give.
"""

from __future__ import annotations

import torch

# Answers are computed in fp32 on every machine, whatever autocast is open around the call: a CPU
# with native bf16 and one without (where bf16 is emulated) then give the same answers, and the
# accuracy a checkpoint claims is the accuracy of the answers users get. bf16 is for training speed.
PRECISION = "fp32"


# How many views of an image make a network's answer, everywhere: the app, `predict`, `evaluate` and the
# accuracy a checkpoint claims. Every network trained on mirrored images, so the mirror is as much its
# input as the original; averaging the two is worth about a point (ResNet 86.15% -> 87.48% at 40 epochs)
# for twice the inference. More views (the pair shifted by a pixel) are measured in docs/training.md.
VIEWS = 2
MAX_VIEWS = 6


def split_batch(device: torch.device) -> int:
    """Images per forward when answering a whole split (evaluation after each epoch, `evaluate`, the
    analyses, fixed distillation targets). On the CPU few: with the views of 1,000 images the activations
    overflow its caches and every image costs more (one thread of an AMD EPYC, AVX2: a ResNet answers an
    image in 4.0 ms at 200, 6.6 ms at 1,000; a DenseNet in 0.9 and 1.5 ms). A GPU wants many at once."""
    return 200 if device.type == "cpu" else 1000


def views_of(x: torch.Tensor, n: int = VIEWS) -> torch.Tensor:
    """(n * N, C, H, W): the first n of the images, their mirror images, both shifted a pixel down and
    right, and both shifted a pixel up and left (the edges reflected), one view after another."""
    if not 1 <= n <= MAX_VIEWS:
        raise ValueError(f"views: 1 to {MAX_VIEWS}, not {n}")
    out = [x, x.flip(3)]
    if n > 2:
        h, w = x.shape[-2:]
        padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
        for corner in (0, 2):  # the window's top-left corner in the padded image: shifts of +1 and -1
            shifted = padded[..., corner:corner + h, corner:corner + w]
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
    with torch.autocast(x.device.type, enabled=False):
        batch = views_of(x.float(), views)
        return model.forward_intermediates(batch) if intermediates else model(batch).float()


def average(logits: torch.Tensor) -> torch.Tensor:
    """(views, N, classes) logits -> the answer: their softmax averaged over the views, (N, classes)."""
    return torch.softmax(logits.float(), dim=-1).mean(0)

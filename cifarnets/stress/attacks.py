"""Adversarial examples under an L-infinity bound: FGSM (Goodfellow et al., 2015) and PGD (Madry et al., 2018).

Both work on pixels in [0, 1] and attack the answer as the app gives it: the softmax averaged over the
views (answering.answer), so a perturbation that fools one view but not the average does not count.
The loss is the cross-entropy of that averaged answer against the label attacked (the network's own
clean answer, unless told otherwise).

The networks are the ones every session shares, so an attack must leave them exactly as it found them:
the gradient is taken with torch.autograd.grad with respect to the input alone (nothing lands in a
parameter's .grad), the model stays in eval mode, and no hook is registered. PGD starts at the image
itself (no random start), so the same image gives the same perturbation in every thread.

Budgets are whole steps of 1/255, and the perturbed image is rounded to whole pixel values: what is
judged is exactly the image a user downloads, and rounding keeps every pixel within the budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..answering import VIEWS, answer, logits_of_views
from ..data.loader import normalize
from ..errors import UsageError

EPS_MAX = 16  # the largest budget the per-image search tries, in 1/255
PGD_STEPS = 10
TRANSFER_EPS = (1, 2, 4, 8)


def _answer_of(model: torch.nn.Module, pixels: torch.Tensor, views: int) -> torch.Tensor:
    """(N, classes) averaged softmax of images given as floats in [0, 255], differentiable in `pixels`."""
    logits = logits_of_views(model, normalize(pixels), views).view(views, len(pixels), -1)
    return torch.softmax(logits, dim=-1).mean(0)


def input_gradient(model: torch.nn.Module, pixels: torch.Tensor, labels: torch.Tensor,
                   views: int = VIEWS) -> torch.Tensor:
    """d(cross-entropy of the averaged answer)/d(pixels), for (N, 3, H, W) float pixels in [0, 255]."""
    return _gradient_and_answer(model, pixels, labels, views)[0]


def _gradient_and_answer(model: torch.nn.Module, pixels: torch.Tensor, labels: torch.Tensor,
                         views: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The input gradient, and the answer (N, classes) the same forward pass gave."""
    with torch.enable_grad():
        x = pixels.detach().clone().requires_grad_(True)
        p = _answer_of(model, x, views)
        loss = torch.nn.functional.nll_loss(torch.log(p.clamp_min(1e-12)), labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad, p.detach()


def _to_pixels(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float [0, 255]."""
    return x.float()


def _bounded(adv: torch.Tensor, clean: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Project onto the L-infinity ball of radius eps (per image, in pixel values) and the valid range."""
    return torch.min(torch.max(adv, clean - eps), clean + eps).clamp(0, 255)


def _eps_tensor(eps, n: int) -> torch.Tensor:
    return torch.as_tensor(eps, dtype=torch.float32).expand(n).reshape(n, 1, 1, 1).clone()


def fgsm(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, eps,
         views: int = VIEWS) -> torch.Tensor:
    """uint8 (N, 3, H, W) images -> uint8 images perturbed one step of eps/255 along the gradient's sign.
    `eps`: one budget in 1/255 for all, or one per image."""
    return fgsm_ladder(model, images, labels, [eps], views)[0]


def fgsm_ladder(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, budgets,
                views: int = VIEWS) -> list[torch.Tensor]:
    """FGSM at several budgets from one gradient: the step's direction does not depend on its size."""
    clean = _to_pixels(images)
    sign = input_gradient(model, clean, labels, views).sign()
    out = []
    for eps in budgets:
        e = _eps_tensor(eps, len(images))
        out.append(_bounded(clean + e * sign, clean, e).round().to(torch.uint8))
    return out


def pgd(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, eps, steps: int = PGD_STEPS,
        views: int = VIEWS, early: bool = False) -> torch.Tensor:
    """uint8 images -> uint8 images after `steps` signed-gradient steps of 2.5 eps / steps each, projected back
    into the eps/255 ball every step (Madry et al.'s step size). With `early`, stop as soon as every image's
    answer has left its label: the forward pass each step makes anyway says so, at no extra cost."""
    clean = _to_pixels(images)
    e = _eps_tensor(eps, len(images))
    alpha = 2.5 * e / steps
    adv = clean.clone()
    for _ in range(steps):
        grad, p = _gradient_and_answer(model, adv, labels, views)
        if early and bool((p.argmax(1) != labels).all()):
            break
        adv = _bounded(adv + alpha * grad.sign(), clean, e)
    return adv.round().to(torch.uint8)


@torch.no_grad()
def answers(model: torch.nn.Module, images: torch.Tensor, views: int = VIEWS) -> torch.Tensor:
    """(N, classes): the app's answer to uint8 images."""
    return answer(model, normalize(images), views)[1]


@dataclass
class Broken:
    """The smallest budget that changes one network's answer to one image, and what it then says."""

    eps: int | None  # in 1/255; None: no budget up to EPS_MAX changed it
    image: torch.Tensor  # (3, H, W) uint8: the perturbed image (the clean one when eps is None)
    label: int  # its answer to that image
    prob: float


def smallest_eps(model: torch.nn.Module, image: torch.Tensor, steps: int = PGD_STEPS, eps_max: int = EPS_MAX,
                 views: int = VIEWS) -> Broken:
    """The smallest budget (1/255 steps, up to eps_max) at which PGD changes the network's answer to one uint8
    (3, H, W) image. Budgets double (1, 2, 4, ...) until one breaks it, then a bisection between the last two
    finds the smallest: about 2 log2(eps_max) attacks rather than eps_max, each stopping at the step that breaks
    the answer."""
    x = image.unsqueeze(0)
    clean = answers(model, x, views)[0]
    target = clean.argmax().view(1)

    def attempt(eps: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        adv = pgd(model, x, target, eps, steps, views, early=True)
        p = answers(model, adv, views)[0]
        return (adv[0], p) if p.argmax() != target[0] else None

    low, high, found = 0, 1, None
    while high <= eps_max and (hit := attempt(high)) is None:
        low, high = high, high * 2
    if high > eps_max:  # the doubling overshot: try the largest budget itself
        high = eps_max
        hit = attempt(eps_max) if low < eps_max else None
        if hit is None:
            return Broken(None, image.clone(), int(target), float(clean.max()))
    found = (high, hit)
    while high - low > 1:  # a break at `high`, none at `low`
        mid = (low + high) // 2
        hit = attempt(mid)
        if hit is None:
            low = mid
        else:
            high, found = mid, (mid, hit)
    eps, (adv, p) = found
    return Broken(eps, adv, int(p.argmax()), float(p.max()))


def parse(spec: str) -> tuple[str, int]:
    """'pgd:8' -> ('pgd', 8), for `predict --attack`; a one-line ValueError otherwise."""
    kind, _, level = spec.partition(":")
    if kind not in ("fgsm", "pgd") or not level.isdigit() or not 0 <= int(level) <= 255:
        raise UsageError(f"--attack {spec!r}: give fgsm:EPS or pgd:EPS, EPS in 1/255 from 0 to 255")
    return kind, int(level)


def amplified(adv: torch.Tensor, clean: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The perturbation as a picture: grey where nothing changed, scaled so the largest change reaches full
    brightness; and that scale."""
    delta = adv.float() - clean.float()
    largest = float(delta.abs().max())
    scale = max(1, int(127 // largest)) if largest else 1
    return (128 + delta * scale).clamp(0, 255).to(torch.uint8), scale

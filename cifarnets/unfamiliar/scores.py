"""Four ways to score how unfamiliar an input is to a trained network, none of which retrains it.

Every score is higher for stranger inputs, and is taken on the views every answer is made from
(answering.VIEWS: the image, its mirror image and both shifted a pixel), from the same forward pass:
- msp: one minus the top probability of the answer averaged over the views, the very number the bars
  show (Hendrycks & Gimpel, 2017);
- energy: minus the log-sum-exp of the logits (Liu et al., 2020), averaged over the views;
- mahalanobis: the distance of the penultimate features (what the classifier reads) to the nearest
  class mean, under one covariance that the classes share, fitted on the training split (Lee et al.,
  2018, last layer only), averaged over the views;
- stages: the same distance at every stage too, on each channel's mean and spread over the image,
  each stage's distance in units of its spread on training images, averaged over the stages (Lee et
  al.'s feature ensemble, with equal weights: weights fitted on unfamiliar data would be tuned to
  the very inputs we then test on);
- together: the entropy of the networks' answers averaged, the networks that answer together (Classify's
  four): the same score for each of them;
- with_together: the entropy of the network's own answer plus the four's (both in nats, so no weights to
  fit). On real photos, telling a photo of one of the ten classes from a photo of something else, the
  four's answer says more than most networks' own (docs/unfamiliar.md).
Forward passes run in the answers' precision (answering.PRECISION, fp32); distances in
float64 on the CPU, so MPS (no float64) and CUDA give the CPU's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..answering import VIEWS, average, logits_of_views
from ..models.common import eval_mode

METHODS = {"msp": "maximum softmax probability", "energy": "energy score",
           "mahalanobis": "Mahalanobis distance on the penultimate features",
           "stages": "Mahalanobis distance at every stage",
           "together": "entropy of the networks' answer together",
           "with_together": "entropy of its own answer and of the networks' together, added"}
FITTED = ("mahalanobis", "stages")  # the methods that need statistics of the training split
TOGETHER = ("together", "with_together")  # the methods scored on the answer of every network answering, averaged
FEATURES = "features"  # the penultimate features' layer name, beside the stages'


@dataclass
class ViewOutputs:
    """What one pass over several views of N images hands back, split by view: (views, N, ...)."""

    logits: torch.Tensor
    layers: dict[str, torch.Tensor]  # FEATURES and every stage's channel means and spreads, (views, N, D)

    @property
    def answer(self) -> torch.Tensor:
        """The network's answer (N, classes), computed as everywhere else (answering.average)."""
        return average(self.logits)

    @staticmethod
    def cat(parts: list[ViewOutputs]) -> ViewOutputs:
        return ViewOutputs(torch.cat([p.logits for p in parts], 1),
                     {k: torch.cat([p.layers[k] for p in parts], 1) for k in parts[0].layers})


def channel_stats(stage: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 2C): each channel's mean and standard deviation over the image."""
    return torch.cat([stage.mean((2, 3)), stage.std((2, 3), correction=0)], dim=1)


@torch.no_grad()
def view_outputs(model: torch.nn.Module, x: torch.Tensor, n: int = VIEWS) -> ViewOutputs:
    """One pass of the `n` views of `x` every answer is made from, in the answers' precision, through `model`:
    what the scores need, on the CPU."""
    with eval_mode(model):
        out = logits_of_views(model, x, n, intermediates=True)
    layers = {FEATURES: out.features} | {name: channel_stats(s) for name, s in out.stages.items()}
    return ViewOutputs(out.logits.float().reshape(n, len(x), -1).cpu(),
                 {k: v.float().reshape(n, len(x), -1).cpu() for k, v in layers.items()})


@dataclass
class Gaussians:
    """One layer's class means (classes, D) and the inverse of their shared covariance (D, D), float64;
    `scale`: the mean and standard deviation of the distance on training images the fit did not see."""

    means: torch.Tensor
    precision: torch.Tensor
    scale: tuple[float, float] = (0.0, 1.0)

    def distance(self, v: torch.Tensor) -> torch.Tensor:
        """(views, N, D) vectors -> (N,) distance to the nearest class mean, averaged over the views."""
        d = v.double()[..., None, :] - self.means  # (views, N, classes, D)
        squared = torch.einsum("...cd,de,...ce->...c", d, self.precision, d)
        return squared.clamp_min(0).min(dim=-1).values.sqrt().mean(0)

    def standardised(self, v: torch.Tensor) -> torch.Tensor:
        mean, std = self.scale
        return (self.distance(v) - mean) / std


def fit_gaussians(v: torch.Tensor, labels: torch.Tensor, classes: int) -> Gaussians:
    """Class means and their shared covariance from (views, N, D) training vectors and (N,) labels."""
    f = v.double().reshape(-1, v.shape[-1])
    labels = labels.cpu().repeat(v.shape[0])
    if not all((labels == c).any() for c in range(classes)):
        raise ValueError("every class needs training images to fit its mean")
    means = torch.stack([f[labels == c].mean(0) for c in range(classes)])
    centred = f - means[labels]
    covariance = centred.T @ centred / len(f)
    # A channel that never varies (a ReLU unit dead on every image) makes the covariance singular: the
    # pseudo-inverse ignores that direction instead of dividing by zero.
    # Kept to float32's precision (computed with in float64): what is stored is exactly what was calibrated
    # with, at half the size (the DenseNet's stage statistics are 2.4 MB in float64).
    return Gaussians(as_stored(means), as_stored(torch.linalg.pinv(covariance, hermitian=True)))


def as_stored(t: torch.Tensor) -> torch.Tensor:
    return t.float().double()


def fit(train: ViewOutputs, labels: torch.Tensor, apart: ViewOutputs, classes: int) -> dict[str, Gaussians]:
    """Every layer's Gaussians from `train`, each scaled by its distances on `apart` (other training images)."""
    fitted = {}
    for name, v in train.layers.items():
        g = fit_gaussians(v, labels, classes)
        d = g.distance(apart.layers[name])
        g.scale = (float(d.mean()), float(d.std()))
        fitted[name] = g
    return fitted


def score(method: str, v: ViewOutputs, fitted: dict[str, Gaussians] | None = None,
          together: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) float64 scores of one method; higher means more unfamiliar. `together`: (N, classes), the answers of
    the networks answering together, averaged (the TOGETHER methods need it)."""
    if method == "msp":
        return 1 - v.answer.max(dim=-1).values.double()
    if method in TOGETHER:
        if together is None:
            raise ValueError(f"the {METHODS[method]} needs the answers of the networks answering together")
        four = entropy(together)
        return four if method == "together" else four + entropy(v.answer)
    if method == "energy":
        return (-torch.logsumexp(v.logits.double(), dim=-1)).mean(0)
    if method in FITTED:
        if not fitted:
            raise ValueError(f"the {METHODS[method]} needs statistics fitted on the training split")
        if method == "mahalanobis":
            return fitted[FEATURES].distance(v.layers[FEATURES])
        return torch.stack([g.standardised(v.layers[name]) for name, g in fitted.items()]).mean(0)
    raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """(N, classes) probabilities -> (N,) their entropy in nats, float64: 0 when sure, log(classes) when uniform."""
    p = probs.double()
    return -(p * p.clamp_min(1e-12).log()).sum(-1)


def auroc(familiar: np.ndarray, unfamiliar: np.ndarray) -> float:
    """The chance that an unfamiliar input scores above a familiar one (ties count half): 0.5 is a coin toss."""
    familiar, unfamiliar = np.asarray(familiar, float), np.asarray(unfamiliar, float)
    if not len(familiar) or not len(unfamiliar):
        raise ValueError("AUROC needs familiar and unfamiliar scores")
    # Mann-Whitney: the unfamiliar inputs' rank sum among all scores, tied scores sharing their mean rank.
    _, group, counts = np.unique(np.concatenate([familiar, unfamiliar]), return_inverse=True, return_counts=True)
    last = np.cumsum(counts)
    ranks = ((last - counts + 1 + last) / 2)[group]
    n = len(unfamiliar)
    return float((ranks[len(familiar):].sum() - n * (n + 1) / 2) / (n * len(familiar)))

"""Pictures with no structure at all: one flat colour, or noise whose neighbouring pixels are unrelated.

Every photo, and every CIFAR-10 image, has neighbouring pixels that go together: a surface, an edge, a
sky. Noise has none, and a blank or single-colour picture has nothing to relate. The networks' own score
misses some of these (a 256x256 noise picture shrinks to fine texture that the CNN and the DenseNet take
for fur or grass), so this check, on the 32x32 input every network sees, flags them for all four alike.
Both measures are unchanged by the per-channel normalisation the input already has.
"""

from __future__ import annotations

import torch

# Measured on the 10,000 test images and the 60 real photos (docs/unfamiliar.md, "Structureless pictures").
MIN_CORRELATION = 0.3  # under this mean neighbour correlation: noise
MIN_SPREAD = 0.02  # under this spread (in units of CIFAR-10's channel spread): one flat colour


def spread(x: torch.Tensor) -> torch.Tensor:
    """(N,) the largest channel's standard deviation over each image's pixels."""
    return x.flatten(2).std(2).amax(1)


def neighbour_correlation(x: torch.Tensor) -> torch.Tensor:
    """(N,) the correlation of each pixel with its right and lower neighbour, per channel, averaged; 1 for a
    flat image (nothing varies, nothing is unrelated)."""
    def corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = a.flatten(2) - a.flatten(2).mean(2, keepdim=True), b.flatten(2) - b.flatten(2).mean(2, keepdim=True)
        den = (a.square().sum(2) * b.square().sum(2)).sqrt()
        return torch.where(den > 1e-12, (a * b).sum(2) / den.clamp_min(1e-12), torch.ones_like(den))

    x = x.float()
    return ((corr(x[..., :, :-1], x[..., :, 1:]) + corr(x[..., :-1, :], x[..., 1:, :])) / 2).mean(1)


def structureless(x: torch.Tensor) -> torch.Tensor:
    """(N,) bool: the normalised 32x32 inputs that are one flat colour or noise."""
    return (spread(x) < MIN_SPREAD) | (neighbour_correlation(x) < MIN_CORRELATION)

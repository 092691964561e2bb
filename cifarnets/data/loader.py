"""Cached uint8 images -> the networks' input: normalisation, augmentation as tensor ops on whole batches,
and batches on the device (DeviceLoader), for training, evaluation and every measurement alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from ..errors import UsageError
from .sources import Split

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N,3,H,W) -> float, standardised with CIFAR-10's channel statistics."""
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    # (x/255 - mean)/std as one multiply-add: a quarter of the passes over the batch, about 4x faster.
    return torch.addcmul(-mean / std, x.float(), 1 / (255 * std))


def batch(pixels: list[np.ndarray]) -> torch.Tensor:
    """(N, 3, 32, 32) normalised float tensor from 32x32x3 uint8 arrays."""
    x = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()
    return normalize(x)


def _pad(x: torch.Tensor, pad: int, mode: str) -> torch.Tensor:
    """(B, C, H, W) uint8 padded by `pad` on every side: zeros, or the image mirrored at its edges."""
    if mode == "constant":
        return torch.nn.functional.pad(x, (pad, pad, pad, pad))
    if mode != "reflect":
        raise UsageError(f"unknown padding {mode!r}: constant or reflect")
    # reflection by concatenation: PyTorch's reflect padding has no uint8 kernel
    x = torch.cat([x[..., 1:pad + 1].flip(-1), x, x[..., -pad - 1:-1].flip(-1)], -1)
    return torch.cat([x[..., 1:pad + 1, :].flip(-2), x, x[..., -pad - 1:-1, :].flip(-2)], -2)


def augment(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int = 4,
            mode: str = "constant") -> torch.Tensor:
    """Random crop of the padded image and horizontal flip, for a whole uint8 batch at once.

    offsets: (B, 2) ints in [0, 2*pad]; flips: (B,) bools. With zero padding, the same result as
    torchvision's RandomCrop(32, padding=4) + RandomHorizontalFlip applied per image, with no
    per-image Python; "reflect" pads with the mirrored edge instead of black, as fast CIFAR trainers do.
    """
    b, c, h, w = x.shape
    hp, wp = h + 2 * pad, w + 2 * pad
    padded = _pad(x, pad, mode).reshape(b, c, hp * wp)
    # One gather over each padded image's flattened pixels, with one index per output pixel shared by the
    # channels: about 4x faster on the CPU than indexing with four broadcast index tensors.
    cols = torch.arange(w, device=x.device)
    cols = torch.where(flips[:, None], cols.flip(0), cols).view(b, 1, w)
    rows = (torch.arange(h, device=x.device) * wp).view(1, h, 1)
    index = (offsets[:, 0] * wp + offsets[:, 1]).view(b, 1, 1) + rows + cols  # (B, H, W) into hp*wp
    return padded.gather(2, index.view(b, 1, h * w).expand(b, c, h * w)).view(b, c, h, w)


def zoom_out(x: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Each uint8 image shrunk by its factor in `scales` (1: unchanged; 0.75: to 24 pixels across), centred
    with its edges reflected around it: the object smaller in the frame, as in a photo taken from further off."""
    theta = torch.zeros(len(x), 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / scales
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    out = torch.nn.functional.grid_sample(x.float(), grid, mode="bilinear", padding_mode="reflection",
                                          align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def resized_crop(x: torch.Tensor, areas: torch.Tensor, aspects: torch.Tensor, places: torch.Tensor) -> torch.Tensor:
    """Each image's crop of `areas` of it (aspect ratio `aspects`, its centre at `places` in [0, 1] of the room
    left), enlarged back to the full size: the random-resized crop of ImageNet training (Szegedy et al. 2015),
    as a batched bilinear resample. A crop side over the image's is capped at it."""
    w = (areas * aspects).sqrt().clamp(max=1.0)  # shares of the width and height the crop spans
    h = (areas / aspects).sqrt().clamp(max=1.0)
    theta = torch.zeros(len(x), 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 1, 1] = w, h
    theta[:, 0, 2] = (1 - w) * (2 * places[:, 0] - 1)  # in [-1, 1] grid units: anywhere the crop fits
    theta[:, 1, 2] = (1 - h) * (2 * places[:, 1] - 1)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border",
                                           align_corners=False)


def down_up(x: torch.Tensor, chosen: torch.Tensor, side: int) -> torch.Tensor:
    """The `chosen` images shrunk to `side` pixels (antialiased) and enlarged back: a photo's detail lost
    the way a small or soft picture loses it, which CIFAR-10's sharp 32x32 images never show."""
    out = x.float()
    if chosen.any():
        small = torch.nn.functional.interpolate(out[chosen], size=(side, side), mode="bilinear", antialias=True,
                                                align_corners=False)
        out[chosen] = torch.nn.functional.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return out


def colour_jitter(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast and saturation of each image (0-255 values) scaled by its three `factors`
    (B, 3), in that order, as torchvision's ColorJitter does: photos vary in exposure, white balance and
    colour far more than CIFAR-10's images."""
    f = factors.view(len(x), 3, 1, 1, 1).unbind(1)
    x = x.float() * f[0]
    grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    x = grey.mean((2, 3), keepdim=True) + (x - grey.mean((2, 3), keepdim=True)) * f[1]
    grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    return (grey + (x - grey) * f[2]).clamp_(0, 255)


def aug_mix(x: torch.Tensor, severity: int, seed: int, group: int = 16) -> torch.Tensor:
    """AugMix (Hendrycks et al. 2020) on uint8 images: each a blend of itself with three chains of 1-3 random
    operations (autocontrast, equalize, rotate, solarize, shear, translate, posterize) at up to `severity`,
    torchvision's implementation, without the paper's consistency loss. A chain's operations are drawn per
    group of `group` images (its blend weights per image): one call per image costs 2-3 ms, one per group of
    16 about 0.3 ms an image. Seeded by `seed`, so a resumed run draws what it would have drawn."""
    from torchvision.transforms import v2  # only runs that ask for it pay the import

    mix = v2.AugMix(severity=severity)
    with torch.random.fork_rng(devices=[]):  # the global generator, which torchvision draws from, left as it was
        torch.manual_seed(seed)
        return torch.cat([mix(part) for part in x.split(group)])


def cut_out(x: torch.Tensor, centres: torch.Tensor, side: int) -> torch.Tensor:
    """Each normalised image with a `side`-pixel square around its (row, col) in `centres` set to zero, the
    data's mean; a square near an edge is clipped by it (Cutout: DeVries & Taylor 2017)."""
    h, w = x.shape[-2:]
    top_left = (centres - side // 2).view(len(x), 2, 1)
    rows = torch.arange(h, device=x.device).view(1, h) - top_left[:, 0]
    cols = torch.arange(w, device=x.device).view(1, w) - top_left[:, 1]
    inside = ((rows >= 0) & (rows < side))[:, :, None] & ((cols >= 0) & (cols < side))[:, None, :]
    return x.masked_fill(inside[:, None], 0.0)


class DeviceLoader:
    """A split moved to the device once; batches are index gathers there, augmentation included.

    With `world > 1` (DDP), every rank walks the same global permutation and takes its own
    disjoint slice of each global batch, so `batch_size` is the global batch. With `soft` (a row per
    image: the teachers' fixed answers), each batch also carries its images' rows: (x, y, soft).
    """

    def __init__(self, split: Split, batch_size: int, device: torch.device | str, *, train: bool,
                 augment: bool = False, pad: int = 4, pad_mode: str = "constant", flip: str = "random",
                 zoom: float = 0.0, cutout: int = 0, crop_scale: float = 0.0, jitter: float = 0.0,
                 blur: float = 0.0, augmix: int = 0, rank: int = 0, world: int = 1,
                 channels_last: bool = False, soft: torch.Tensor | None = None) -> None:
        self.x = split.x.to(device)
        self.y = split.y.to(device)
        self.soft = soft.to(device) if soft is not None else None
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.train, self.augment = train, augment and train
        if flip not in ("random", "alternate"):
            raise UsageError(f"unknown flip {flip!r}: random or alternate")
        self.pad, self.pad_mode, self.flip, self.zoom, self.cutout = pad, pad_mode, flip, zoom, cutout
        self.crop_scale, self.jitter, self.blur, self.augmix = crop_scale, jitter, blur, augmix
        self.rank, self.world = rank, world
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    @classmethod
    def for_recipe(cls, recipe, split: Split, device: torch.device | str, *, batch_size: int | None = None,
                   **kw) -> DeviceLoader:
        """The training loader a recipe (training.recipes.Recipe) asks for, all its augmentation included: the
        one constructor the trainer, the time estimate and the bench share, so that what they time is the step
        a run takes. batch_size: other than the recipe's (the estimate times a smaller one on a CPU)."""
        return cls(split, batch_size or recipe.batch_size, device, train=True, augment=recipe.augment,
                   pad=recipe.pad, pad_mode=recipe.pad_mode, flip=recipe.flip, zoom=recipe.zoom_out,
                   cutout=recipe.cutout, crop_scale=recipe.crop_scale, jitter=recipe.jitter, blur=recipe.blur,
                   augmix=recipe.augmix, **kw)

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def batches(self, epoch: int = 0, seed: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
        """Batches of one epoch, from step `start` on; the epoch's order depends only on (seed, epoch)."""
        n = len(self.y)
        if self.train:
            g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=g)
            offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=g)
            flips = torch.rand(n, generator=g) < 0.5
            if self.flip == "alternate":  # a fixed random half mirrored in even epochs, the other half in odd ones
                first = torch.rand(n, generator=torch.Generator().manual_seed(seed * 1_000_003 - 1)) < 0.5
                flips = first[order] ^ bool(epoch % 2)
            # drawn only when asked for, so recipes without it keep their exact sequence of crops and flips
            scales = 1 - self.zoom * torch.rand(n, generator=g) if self.zoom else None
            centres = torch.randint(0, self.x.shape[-1], (n, 2), generator=g) if self.cutout else None
            photo = self._photo_draws(n, g)
            order, offsets, flips = order.to(self.device), offsets.to(self.device), flips.to(self.device)
        else:
            order = torch.arange(n, device=self.device)
        for step in range(start, len(self)):
            idx = order[step * self.batch_size:(step + 1) * self.batch_size][self.rank::self.world]
            xb = self.x[idx]
            if self.augment:
                sel = slice(step * self.batch_size, (step + 1) * self.batch_size)
                xb = augment(xb, offsets[sel][self.rank::self.world], flips[sel][self.rank::self.world],
                             self.pad, self.pad_mode)
                if scales is not None:
                    xb = zoom_out(xb, scales[sel][self.rank::self.world].to(self.device))
                if self.augmix:
                    xb = aug_mix(xb, self.augmix, (seed * 1_000_003 + epoch) * 100_003 + step)
                xb = self._photo(xb, {k: v[sel][self.rank::self.world].to(self.device) for k, v in photo.items()},
                                 step)
            xb = normalize(xb)
            if self.augment and centres is not None:
                xb = cut_out(xb, centres[sel][self.rank::self.world].to(self.device), self.cutout)
            xb = xb.contiguous(memory_format=self.memory_format)
            yield (xb, self.y[idx]) if self.soft is None else (xb, self.y[idx], self.soft[idx])

    def _photo_draws(self, n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        """Each image's random draws for the photo-like changes the recipe asks for (none drawn otherwise)."""
        draws = {}
        if self.crop_scale:
            draws["areas"] = self.crop_scale + (1 - self.crop_scale) * torch.rand(n, generator=g)
            draws["aspects"] = torch.exp((torch.rand(n, generator=g) * 2 - 1) * math.log(4 / 3))
            draws["places"] = torch.rand(n, 2, generator=g)
        if self.blur:
            draws["blurred"] = torch.rand(n, generator=g) < self.blur
        if self.jitter:
            draws["colour"] = 1 + self.jitter * (torch.rand(n, 3, generator=g) * 2 - 1)
        return draws

    def _photo(self, xb: torch.Tensor, d: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        if "areas" in d:
            xb = resized_crop(xb, d["areas"], d["aspects"], d["places"])
        if "blurred" in d:  # one size a batch (20 to 28 pixels), so the batch shrinks in one call
            xb = down_up(xb, d["blurred"], 20 + (step * 5) % 9)
        if "colour" in d:
            xb = colour_jitter(xb, d["colour"])
        return xb

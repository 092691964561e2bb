"""The report's small DenseNet: a 7x7 stem and three dense blocks of three layers (growth 12)."""

import torch
from torch import nn

from .common import Intermediates


class DenseLayer(nn.Module):
    """BN-ReLU-3x3 conv producing `growth_rate` new channels, concatenated to its input."""

    def __init__(self, in_channels: int, growth_rate: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(),
            nn.Conv2d(in_channels, growth_rate, kernel_size=3, padding=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(x)], 1)


class DenseBlock(nn.Module):
    def __init__(self, in_channels: int, num_layers: int, growth_rate: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(in_channels + i * growth_rate, growth_rate) for i in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class TransitionLayer(nn.Module):
    """BN-ReLU-1x1 conv to set the channel count, then 2x2 average pooling to halve the resolution."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.downsample = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(),
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            nn.AvgPool2d(2, 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x)


class SimpleDenseNet(nn.Module):
    def __init__(self, growth_rate: int = 12, num_layers: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        g, n = growth_rate, num_layers
        # The channel counts are the report's: 64 -> 100, transition to 128 -> 164, to 64 -> 100.
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False),  # 32 -> 16
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),  # 16 -> 8
            DenseBlock(64, n, g),
            TransitionLayer(64 + n * g, 128),  # 8 -> 4
            DenseBlock(128, n, g),
            TransitionLayer(128 + n * g, 64),  # 4 -> 2
            DenseBlock(64, n, g),
            nn.AdaptiveAvgPool2d((1, 1)),
        )
        self.classifier = nn.Linear(64 + n * g, num_classes)

    # What each module of `features` is, as a stage; the stem's conv and pool are one stage, and the
    # final pooling none.
    STAGES = (None, "stem", "block1", "transition1", "block2", "transition2", "block3", None)

    def forward_intermediates(self, x: torch.Tensor) -> Intermediates:
        stages = {}
        for name, module in zip(self.STAGES, self.features, strict=True):
            x = module(x)
            if name:
                stages[name] = x
        features = torch.flatten(x, 1)
        return Intermediates(self.classifier(features), stages, features, {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_intermediates(x).logits


def densenet(num_classes: int = 10) -> SimpleDenseNet:
    return SimpleDenseNet(12, 3, num_classes)

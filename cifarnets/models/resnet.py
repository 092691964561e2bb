"""The report's small ResNet: a 3x3 stem and three stages of two basic residual blocks."""

import torch
import torch.nn.functional as F
from torch import nn

from .common import Intermediates


def projection_shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """Identity where shapes match; a strided 1x1 conv + BN where the block changes them."""
    if stride == 1 and in_channels == out_channels:
        return nn.Sequential()
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN, plus the shortcut, then ReLU. `shortcut=False` makes it a plain block
    (ours, for the plain ResNet): no addition and no projection, so nothing unused counts or prints."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = projection_shortcut(in_channels, out_channels, stride) if shortcut else None

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))

    def forward_with_gate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The block's output, and its SE gate (N, C) where it has one (ResidualBlockSE)."""
        return self(x), None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.residual(x)
        return F.relu(r if self.shortcut is None else r + self.shortcut(x))


class ResNet(nn.Module):
    STAGES = ("layer1", "layer2", "layer3")

    def __init__(self, block: type[nn.Module] = ResidualBlock, num_blocks=(2, 2, 2), num_classes: int = 10,
                 shortcut: bool = True) -> None:
        super().__init__()
        self.in_channels = 16
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(block, 16, num_blocks[0], 1, shortcut)
        self.layer2 = self._make_layer(block, 32, num_blocks[1], 2, shortcut)
        self.layer3 = self._make_layer(block, 64, num_blocks[2], 2, shortcut)
        self.fc = nn.Linear(64, num_classes)

    def _make_layer(self, block, out_channels: int, n: int, stride: int, shortcut: bool) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(block(self.in_channels, out_channels, s) if shortcut
                          else block(self.in_channels, out_channels, s, shortcut=False))
            self.in_channels = out_channels
        return nn.Sequential(*layers)

    def forward_intermediates(self, x: torch.Tensor) -> Intermediates:
        x = F.relu(self.bn1(self.conv1(x)))
        stages, gates = {"stem": x}, {}
        for name in self.STAGES:
            for i, block in enumerate(getattr(self, name)):
                x, gate = block.forward_with_gate(x)
                if gate is not None:
                    gates[f"{name}.{i}"] = gate
            stages[name] = x
        features = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return Intermediates(self.fc(features), stages, features, gates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_intermediates(x).logits


def resnet(num_classes: int = 10) -> ResNet:
    return ResNet(ResidualBlock, (2, 2, 2), num_classes)

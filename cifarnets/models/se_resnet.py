"""The report's SE-ResNet: the small ResNet with a squeeze-and-excitation block on every residual branch."""

import torch
import torch.nn.functional as F
from torch import nn

from .resnet import ResidualBlock, ResNet


class SEBlock(nn.Module):
    """Channel attention: squeeze (global average) -> bottleneck MLP -> sigmoid gate per channel."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.fc2 = nn.Linear(channels // reduction, channels)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The per-channel weights in (0, 1), shape (N, C): what the block attends to."""
        y = torch.flatten(self.avg_pool(x), 1)
        return torch.sigmoid(self.fc2(F.relu(self.fc1(y))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)[:, :, None, None]


class ResidualBlockSE(ResidualBlock):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, stride)
        # Re-register the shortcut after `se` so the printout lists them in the report's order.
        shortcut = self.shortcut
        del self.shortcut
        self.se = SEBlock(out_channels)
        self.shortcut = shortcut

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(super().residual(x))

    def forward_with_gate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        branch = super().residual(x)  # before the SE block scales it
        gate = self.se.gate(branch)
        return F.relu(branch * gate[:, :, None, None] + self.shortcut(x)), gate


class ResNetSE(ResNet):
    def __init__(self, num_blocks=(2, 2, 2), num_classes: int = 10) -> None:
        super().__init__(ResidualBlockSE, num_blocks, num_classes)


def se_resnet(num_classes: int = 10) -> ResNetSE:
    return ResNetSE((2, 2, 2), num_classes)

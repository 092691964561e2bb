"""Ours, not the report's: its ResNet with every shortcut removed, a plain network of the same depth.

It exists to test the report's depth argument (shortcuts keep gradients flowing) against a network
that differs from the ResNet in nothing else: same stem, same 14 weight layers on the main path, same
channels and strides. Only the two strided 1x1 projection shortcuts go, so it has 2,752 fewer parameters.
"""

import torch
import torch.nn.functional as F

from .resnet import ResidualBlock, ResNet


class PlainBlock(ResidualBlock):
    """A residual block without its shortcut: conv-BN-ReLU-conv-BN-ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, stride)
        del self.shortcut  # not kept as an unused module: it would count parameters and print

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.residual(x))


class PlainResNet(ResNet):
    def __init__(self, num_blocks=(2, 2, 2), num_classes: int = 10) -> None:
        super().__init__(PlainBlock, num_blocks, num_classes)


def resnet_plain(num_classes: int = 10) -> PlainResNet:
    return PlainResNet((2, 2, 2), num_classes)

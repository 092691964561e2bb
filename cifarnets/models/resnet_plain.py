"""Ours, not the report's: its ResNet with every shortcut removed, a plain network of the same depth.

It exists to test the report's depth argument (shortcuts keep gradients flowing) against a network
that differs from the ResNet in nothing else: same stem, same 14 weight layers on the main path, same
channels and strides. Only the two strided 1x1 projection shortcuts go, so it has 2,752 fewer parameters.
"""

from .resnet import ResidualBlock, ResNet


def resnet_plain(num_classes: int = 10) -> ResNet:
    return ResNet(ResidualBlock, (2, 2, 2), num_classes, shortcut=False)

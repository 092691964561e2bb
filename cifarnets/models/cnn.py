"""The report's plain CNN: two 5x5 convolutions and three fully connected layers (LeNet-5 style)."""

import torch
import torch.nn.functional as F
from torch import nn

from .common import Intermediates


class Net(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward_intermediates(self, x: torch.Tensor) -> Intermediates:
        conv1 = F.relu(self.conv1(x))  # 32 -> 28
        conv2 = F.relu(self.conv2(self.pool(conv1)))  # 14 -> 10
        x = torch.flatten(self.pool(conv2), 1)  # 16 x 5 x 5
        features = F.relu(self.fc2(F.relu(self.fc1(x))))
        return Intermediates(self.fc3(features), {"conv1": conv1, "conv2": conv2}, features, {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_intermediates(x).logits


def cnn(num_classes: int = 10) -> Net:
    return Net(num_classes)

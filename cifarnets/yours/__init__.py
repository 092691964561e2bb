"""Your network beside the four: any CIFAR-10 classifier brought in (an ONNX file, a cifarnets checkpoint, a Hub
repository), checked as data, and answered with the same pipelines as the four (docs/yours.md)."""

from .load import load_network
from .network import YourNetwork

__all__ = ["YourNetwork", "load_network"]

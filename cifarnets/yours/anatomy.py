"""What Architecture shows of your network: its layer table (shapes and parameters, traced on one image) and its
multiply-accumulates, from the same tracer and counter as the four's, on a private copy."""

from __future__ import annotations

import copy

from ..analysis.cost import macs
from ..diagram import architecture
from .network import YourNetwork


def layer_rows(network: YourNetwork, depth: int | None = None) -> list[dict]:
    """The layer table of its torch module ([] when only onnxruntime runs it). The tracer hooks the copy only."""
    if network.module is None:
        return []
    return architecture.layer_table(copy.deepcopy(network.module), depth)


def total_macs(network: YourNetwork) -> int | None:
    """Multiply-accumulates for one 32x32 image, in its convolutions and linear layers; None without a module."""
    if network.module is None:
        return None
    return sum(macs(network.module).values())


def printout(network: YourNetwork) -> str:
    return str(network.module) if network.module is not None else ""

"""DenseNet feature reuse, as in Huang et al. (2017), Fig. 5: how much weight each layer puts on each earlier one.

Inside a dense block every layer sees the block's input and every earlier layer's 12 new channels.
For each consumer (the block's layers, then the transition or classifier after it) and each source,
the mean absolute weight over the source's input channels. These are raw weights, as in the paper:
the BatchNorm in front of each convolution rescales channels and is not folded in.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.densenet import DenseBlock, SimpleDenseNet, TransitionLayer


def _per_input_channel(weight: torch.Tensor) -> torch.Tensor:
    """Mean |w| for each input channel of a conv (out, in, k, k) or linear (out, in) weight."""
    w = weight.detach().float().abs()
    return w.transpose(0, 1).reshape(w.shape[1], -1).mean(1)


def _sources(per_channel: torch.Tensor, c0: int, growth: int) -> list[float]:
    """Mean over the block input's c0 channels, then over each earlier layer's `growth` channels."""
    out = [float(per_channel[:c0].mean())]
    for start in range(c0, per_channel.numel(), growth):
        out.append(float(per_channel[start:start + growth].mean()))
    return out


def feature_reuse(model: SimpleDenseNet) -> list[dict]:
    """Rows {block, consumer, consumer_index, source, source_index, mean_abs_weight}, block by block."""
    feats = list(model.features)
    rows: list[dict] = []
    blocks = [i for i, m in enumerate(feats) if isinstance(m, DenseBlock)]
    for b, i in enumerate(blocks, start=1):
        block: DenseBlock = feats[i]
        first: nn.Conv2d = block.layers[0].conv[2]
        c0, growth = first.in_channels, first.out_channels
        consumers = [(f"layer {j + 1}", layer.conv[2].weight) for j, layer in enumerate(block.layers)]
        after = feats[i + 1] if i + 1 < len(feats) else None
        consumers.append(("transition", after.downsample[2].weight) if isinstance(after, TransitionLayer)
                         else ("classifier", model.classifier.weight))
        for ci, (name, weight) in enumerate(consumers):
            values = _sources(_per_input_channel(weight), c0, growth)
            for si, value in enumerate(values):
                # relative: to the row's strongest source, as the paper's heat map is read (a classifier's
                # weights are an order larger than a convolution's, so raw values would hide the convolutions)
                rows.append({"block": b, "consumer": name, "consumer_index": ci,
                             "source": "block input" if si == 0 else f"layer {si}", "source_index": si,
                             "mean_abs_weight": round(value, 5), "relative": round(value / max(values), 4)})
    return rows

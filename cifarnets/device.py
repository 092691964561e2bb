"""Which device to run on, how to say which one it was, and which precision to compute in there."""

import contextlib
import os

import torch


def pick(name: str = "auto") -> torch.device:
    """`auto`: CUDA, then Apple's MPS, then the CPU. Asking for a device that is not there is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA GPU here; use --device auto or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps was asked for, but this machine has no MPS; use --device auto or cpu")
    return device


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        n = torch.get_num_threads()
        return f"cpu ({n} thread{'s' if n != 1 else ''})"
    return device.type


def bf16_ok(device: torch.device) -> bool:
    """bf16 autocast where the hardware has it: CUDA, and CPUs with native bf16 (AVX512-BF16, AMX).

    On this project's AVX512-BF16 CPU it trains the ResNet 1.6x faster than fp32 (`cifarnets bench`).
    CIFARNETS_BF16=0 turns it off.
    """
    if os.environ.get("CIFARNETS_BF16", "1") == "0":
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def autocast(device: torch.device):
    if bf16_ok(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()

"""Which device to run on, how to say which one it was, and which precision to compute in there."""

import contextlib
import functools
import platform

import torch

from .errors import UsageError
from .paths import bf16_allowed


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
        raise UsageError("--device cuda was asked for, but PyTorch sees no CUDA GPU here; use --device auto or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError("--device mps was asked for, but this machine has no MPS; use --device auto or cpu")
    return device


def machine_name(device: torch.device) -> str:
    """The machine a measurement ran on, in words: the GPU's name, or the CPU's model, instruction set and threads."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        n = torch.get_num_threads()
        return f"cpu ({cpu_model()}, {instruction_set()}, {n} thread{'s' if n != 1 else ''})"
    return device.type


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """(model name, flags) of the first processor in /proc/cpuinfo, read once; ("", {}) where there is none."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, frozenset(flags)


def cpu_model() -> str:
    return _cpuinfo()[0] or platform.processor() or platform.machine()


def instruction_set() -> str:
    """What PyTorch computes with here: its vector kernels (AVX2, AVX512...), and whether bf16 is native
    (AVX512-BF16, AMX) or emulated, which makes bf16 hundreds of times slower."""
    flags = _cpuinfo()[1]
    extras = [name for flag, name in (("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX")) if flag in flags]
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return " + ".join([torch.backends.cpu.get_cpu_capability()] + extras) + ("" if native else ", bf16 emulated")


def bf16_ok(device: torch.device) -> bool:
    """bf16 autocast for training, where the hardware has it: CUDA, and CPUs with native bf16 (AVX512-BF16, AMX).

    Never for answers: those are fp32 everywhere (answering.PRECISION), so that every CPU gives the same ones.

    On this project's AVX512-BF16 CPU it trains the ResNet 1.6x faster than fp32 (`cifarnets bench`).
    CIFARNETS_BF16=0 turns it off.
    """
    if not bf16_allowed():
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def exact_fp32() -> None:
    """fp32 on a GPU means fp32, as on a CPU: PyTorch lets cuDNN compute fp32 convolutions in TF32 by default
    (a 10-bit mantissa: up to 5e-4 relative error in each product), so a GPU's answers would differ from every
    CPU's and from the accuracy a checkpoint claims. Set for the whole process, not around a call: a flag
    flipped and restored by one thread would change another's answer midway (the app answers from many).
    bf16 autocast, what training computes in, is untouched; TF32 exists only on GPUs that have bf16. The
    legacy flags: they work on every PyTorch we meet, and mixing them with the newer fp32_precision ones is an
    error."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def autocast(device: torch.device):
    if bf16_ok(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def training_precision(device: torch.device) -> str:
    """The precision a training step computes in on `device`: what its speed is to be compared against."""
    return "bf16" if bf16_ok(device) else "fp32"

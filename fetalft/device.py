"""Device and precision: the fast path on every machine, and a switch back to plain fp32.

On CUDA, fp16 autocast with a gradient scaler (the T4 has fp16 tensor cores). On a CPU,
bf16 autocast only where it is measured to be faster: CPU flags do not tell. On the 2-core
AMD EPYC of session 2 (AVX512-BF16) bf16 trained the whole-decoder strategy 2.5x faster than
fp32; on the 2-core Intel Xeon of session 3, with the same flag and no AMX, 1.5x slower
(``benchmarks/results/strategy_speed.json``). Both paths use channels_last memory, which
oneDNN and cuDNN convolutions prefer.
"""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass

import torch
from torch import nn

#: "auto": the fastest measured path; "fp32": plain fp32; "bf16": bf16 autocast regardless.
PRECISIONS = ("auto", "fp32", "bf16")
PRECISION_LABELS = {None: "fp32", torch.float16: "fp16-autocast", torch.bfloat16: "bf16-autocast"}


def cpu_has_bf16() -> bool:
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def conv_step_seconds(rounds: int = 5) -> dict[torch.dtype | None, float]:
    """Best time of a training step of a small U-Net decoder block, in fp32 and in bf16.

    3x3 convolutions, BatchNorm and ReLU at batch 10, forward and backward: the work that
    dominates training a decoder, small enough to time in about a second. The two precisions
    alternate and the minimum is kept, so a busy moment of the machine hits both alike.
    """
    torch.manual_seed(0)
    block = nn.Sequential(
        nn.Conv2d(64, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1),
    ).to(memory_format=torch.channels_last)
    x = torch.randn(10, 64, 48, 48).to(memory_format=torch.channels_last)

    def step(dtype: torch.dtype | None) -> float:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
            out = block(x)
        out.float().square().mean().backward()
        return time.perf_counter() - started

    dtypes = (None, torch.bfloat16)
    for dtype in dtypes:  # warm-up: oneDNN picks its kernels
        step(dtype)
    times: dict[torch.dtype | None, list[float]] = {dtype: [] for dtype in dtypes}
    for _ in range(rounds):
        for dtype in dtypes:
            times[dtype].append(step(dtype))
    return {dtype: min(values) for dtype, values in times.items()}


@functools.cache
def bf16_pays_off() -> bool:
    """Whether bf16 autocast trains faster than fp32 on this CPU, measured once per process.

    bf16 must win by 10%, so timing noise keeps the exact fp32 path.
    """
    if not cpu_has_bf16():
        return False
    seconds = conv_step_seconds()
    return seconds[torch.bfloat16] < 0.9 * seconds[None]


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype | None  # autocast dtype; None means plain fp32

    @classmethod
    def choose(cls, precision: str = "auto", device: str | None = None) -> Runtime:
        if precision not in PRECISIONS:
            raise ValueError(
                f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}"
            )
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if precision == "fp32":
            return cls(dev, None)
        if precision == "bf16":
            return cls(dev, torch.bfloat16)
        if dev.type == "cuda":
            return cls(dev, torch.float16)
        return cls(dev, torch.bfloat16 if bf16_pays_off() else None)

    @property
    def precision(self) -> str:
        return PRECISION_LABELS[self.dtype]

    def with_precision(self, label: str) -> Runtime:
        """The same device with the precision named by ``label`` (a :attr:`precision` value)."""
        dtypes = {name: dtype for dtype, name in PRECISION_LABELS.items()}
        return Runtime(self.device, dtypes[label])

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling is needed for fp16 only; for bf16 and fp32 the scaler is a no-op."""
        return torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(self.device, memory_format=torch.channels_last, non_blocking=True)

"""Device and precision: the fast path on every machine, and a switch back to plain fp32.

On CUDA, fp16 autocast with a gradient scaler (the T4 has fp16 tensor cores); on a CPU with
native bf16 (AVX512-BF16 / AMX), bf16 autocast, which is about 4x faster than fp32 on the
2-core machine this book was made on. Both use channels_last memory, which oneDNN and cuDNN
convolutions prefer.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

PRECISIONS = ("auto", "fp32")


def cpu_has_bf16() -> bool:
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


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
        if dev.type == "cuda":
            return cls(dev, torch.float16)
        return cls(dev, torch.bfloat16 if cpu_has_bf16() else None)

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.float16: "fp16-autocast", torch.bfloat16: "bf16-autocast"}[
            self.dtype
        ]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling is needed for fp16 only; for bf16 and fp32 the scaler is a no-op."""
        return torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(self.device, memory_format=torch.channels_last, non_blocking=True)

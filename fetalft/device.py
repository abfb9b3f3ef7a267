"""Device and precision: the fast path on every machine, and a switch back to plain fp32.

On CUDA, fp16 autocast with a gradient scaler (the T4 has fp16 tensor cores). On a CPU,
bf16 autocast where this kind of CPU was measured to train faster with it, decided from the
CPU's features and never by timing: a timing taken while another job ran once picked fp32
for a run and changed its numbers. Both paths use channels_last memory, which oneDNN and
cuDNN convolutions prefer.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path

import torch

#: "auto": the fast path for this machine; "fp32": plain fp32; "bf16": bf16 autocast regardless.
PRECISIONS = ("auto", "fp32", "bf16")
PRECISION_LABELS = {None: "fp32", torch.float16: "fp16-autocast", torch.bfloat16: "bf16-autocast"}
CPUINFO = Path("/proc/cpuinfo")


def cpu_features(cpuinfo: str | None = None) -> tuple[str, frozenset[str]]:
    """The CPU's vendor (``vendor_id``) and feature flags, from Linux's ``/proc/cpuinfo``.

    Empty on other systems (and there ``auto`` means fp32 on a CPU). ``cpuinfo`` is the
    file's text, for tests.
    """
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text()
        except OSError:
            return "", frozenset()
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first processor speaks for all
    return fields.get("vendor_id", ""), frozenset(fields.get("flags", "").split())


def bf16_expected_faster(vendor: str, flags: frozenset[str]) -> bool:
    """Whether bf16 autocast trains faster than fp32 on a CPU with these features.

    From this project's measurements (``benchmarks/results/strategy_speed.json``, NOTES.md):

    - ``amx_bf16`` (Intel AMX, tiles built for bf16 matrix work): session 1's AMX Xeon
      trained the decoder at 29.2 img/s at 256 px, the fastest CPU seen here (no fp32 row);
    - ``avx512_bf16`` on AMD (Zen 4 and later): the 2-core EPYC of session 2, 2.5x faster;
    - ``avx512_bf16`` on Intel without AMX: the 2-core Xeon of session 3, 1.5x *slower*;
    - no bf16 instructions at all: bf16 is emulated, so fp32.
    """
    if "amx_bf16" in flags:
        return True
    return "avx512_bf16" in flags and vendor == "AuthenticAMD"


@functools.cache
def bf16_pays_off() -> bool:
    """:func:`bf16_expected_faster` for this machine's CPU (read once per process)."""
    return bf16_expected_faster(*cpu_features())


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

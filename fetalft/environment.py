"""What a result was measured on: versions, hardware, precision, time and memory."""

from __future__ import annotations

import platform
import resource
import sys
from importlib import metadata

import torch

PACKAGES = (
    "fetalft",
    "torch",
    "segmentation-models-pytorch",
    "timm",
    "albumentations",
    "numpy",
    "opencv-python-headless",
)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process: GPU memory allocated on CUDA, resident set size on CPU.

    On Linux the CPU figure is ``VmHWM``, which starts afresh in a new program; ``ru_maxrss``
    would carry over the peak of the parent that forked it (benchmarks spawn one subprocess
    per configuration so that each has its own peak).
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak, so that one run in a process of many reports its own.

    On CPU this needs Linux (``/proc/self/clear_refs``); elsewhere the peak stays the
    process's, which is an upper bound.
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM to the current resident set size
    except OSError:
        pass


def describe(device: torch.device) -> dict:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": gpu,
        "hardware": gpu or f"CPU: {cpu_name()}, {torch.get_num_threads()} threads",
        "versions": versions(),
    }

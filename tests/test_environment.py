"""fetalft.environment: what a result records about the machine it ran on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fetalft.environment import (
    PACKAGES,
    cpu_name,
    describe,
    peak_memory_mb,
    reset_peak_memory,
    versions,
)


def test_versions_name_every_package() -> None:
    found = versions()
    assert set(found) == set(PACKAGES)
    assert found["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert found["fetalft"] != "not installed"


def test_describe_cpu() -> None:
    info = describe(torch.device("cpu"))
    assert info["device"] == "cpu"
    assert info["gpu"] is None
    assert info["cpu"] == cpu_name() and info["cpu"]
    assert info["cpu_threads"] == torch.get_num_threads()
    assert info["hardware"] == f"CPU: {cpu_name()}, {torch.get_num_threads()} threads"
    assert json.loads(json.dumps(info)) == info  # goes into environment.json as it is


def test_peak_memory_is_the_resident_set_on_cpu() -> None:
    cpu = torch.device("cpu")
    reset_peak_memory(cpu)  # the peak starts afresh at the current resident set
    before = peak_memory_mb(cpu)
    assert 10 < before < 1_000_000  # MiB, not KiB or bytes
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    rose = peak_memory_mb(cpu) - before
    del block
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("resetting the peak needs Linux; elsewhere it is the process's")
    assert 60 < rose < 100  # the 64 MiB block, in MiB, plus a little
    assert peak_memory_mb(cpu) == pytest.approx(before + rose, abs=8)  # a peak: kept after del

"""fetalft.environment: what a result records about the machine it ran on."""

from __future__ import annotations

import json

import torch

from fetalft.environment import PACKAGES, cpu_name, describe, peak_memory_mb, versions


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
    before = peak_memory_mb(torch.device("cpu"))
    assert 10 < before < 1_000_000  # MiB, not KiB or bytes
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    assert peak_memory_mb(torch.device("cpu")) >= before
    del block

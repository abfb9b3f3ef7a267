"""fetalft.device: the fast path (bf16 / fp16 autocast, channels_last) and the fp32 switch."""

from __future__ import annotations

import contextlib

import pytest
import torch

from fetalft import device
from fetalft.device import PRECISIONS, Runtime


def test_fp32_is_plain_fp32() -> None:
    runtime = Runtime.choose("fp32", "cpu")
    assert runtime.dtype is None
    assert runtime.precision == "fp32"
    assert isinstance(runtime.autocast(), contextlib.nullcontext)
    assert not runtime.grad_scaler().is_enabled()
    conv = torch.nn.Conv2d(3, 4, 3)
    with runtime.autocast():
        assert conv(torch.randn(1, 3, 8, 8)).dtype == torch.float32


@pytest.mark.parametrize("has_bf16", [True, False])
def test_auto_on_cpu_uses_bf16_when_the_cpu_has_it(
    monkeypatch: pytest.MonkeyPatch, has_bf16: bool
) -> None:
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: has_bf16)
    runtime = Runtime.choose("auto", "cpu")
    assert runtime.device == torch.device("cpu")
    assert runtime.dtype == (torch.bfloat16 if has_bf16 else None)
    assert runtime.precision == ("bf16-autocast" if has_bf16 else "fp32")
    assert not runtime.grad_scaler().is_enabled()  # no loss scaling for bf16
    conv = torch.nn.Conv2d(3, 4, 3)
    with runtime.autocast():
        out = conv(torch.randn(1, 3, 8, 8))
    assert out.dtype == (torch.bfloat16 if has_bf16 else torch.float32)


def test_auto_follows_this_machine() -> None:
    runtime = Runtime.choose()
    expected_device = "cuda" if torch.cuda.is_available() else "cpu"
    assert runtime.device.type == expected_device
    if expected_device == "cpu":
        assert (runtime.dtype == torch.bfloat16) == device.cpu_has_bf16()


def test_cuda_uses_fp16_autocast() -> None:
    runtime = Runtime.choose("auto", "cuda")  # constructing it needs no GPU
    assert runtime.dtype == torch.float16
    assert runtime.precision == "fp16-autocast"
    assert Runtime.choose("fp32", "cuda").dtype is None


def test_unknown_precision_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown precision 'fp16'; choose one of auto, fp32"):
        Runtime.choose("fp16")
    assert PRECISIONS == ("auto", "fp32")


def test_to_device_uses_channels_last() -> None:
    runtime = Runtime.choose("fp32", "cpu")
    x = runtime.to_device(torch.randn(2, 3, 8, 8))
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert x.device.type == "cpu"

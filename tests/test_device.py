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


@pytest.mark.parametrize("pays_off", [True, False])
def test_auto_on_cpu_uses_bf16_where_it_pays_off(
    monkeypatch: pytest.MonkeyPatch, pays_off: bool
) -> None:
    monkeypatch.setattr(device, "bf16_pays_off", lambda: pays_off)
    runtime = Runtime.choose("auto", "cpu")
    assert runtime.device == torch.device("cpu")
    assert runtime.dtype == (torch.bfloat16 if pays_off else None)
    assert runtime.precision == ("bf16-autocast" if pays_off else "fp32")
    assert not runtime.grad_scaler().is_enabled()  # no loss scaling for bf16
    conv = torch.nn.Conv2d(3, 4, 3)
    with runtime.autocast():
        out = conv(torch.randn(1, 3, 8, 8))
    assert out.dtype == (torch.bfloat16 if pays_off else torch.float32)


@pytest.mark.parametrize(
    ("has_bf16", "fp32_ms", "bf16_ms", "expected"),
    [
        (True, 100, 40, True),  # the AMD EPYC of session 2: bf16 2.5x faster
        (True, 100, 150, False),  # the Intel Xeon of session 3: bf16 slower
        (True, 100, 95, False),  # within the 10% margin: keep exact fp32
        (False, 100, 40, False),  # no bf16 instructions: never, whatever a timing says
    ],
)
def test_bf16_pays_off_only_when_measured_faster(
    monkeypatch: pytest.MonkeyPatch, has_bf16: bool, fp32_ms: float, bf16_ms: float, expected: bool
) -> None:
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: has_bf16)
    monkeypatch.setattr(
        device, "conv_step_seconds", lambda: {None: fp32_ms / 1e3, torch.bfloat16: bf16_ms / 1e3}
    )
    device.bf16_pays_off.cache_clear()
    try:
        assert device.bf16_pays_off() is expected
    finally:
        device.bf16_pays_off.cache_clear()


def test_conv_step_seconds_times_both_precisions() -> None:
    seconds = device.conv_step_seconds(rounds=1)
    assert set(seconds) == {None, torch.bfloat16}
    assert all(0 < value < 10 for value in seconds.values())


@pytest.mark.parametrize(
    ("has_cuda", "pays_off", "expected"),
    [
        (False, False, ("cpu", None, "fp32")),
        (False, True, ("cpu", torch.bfloat16, "bf16-autocast")),
        (True, False, ("cuda", torch.float16, "fp16-autocast")),  # the CPU timing is not asked
        (True, True, ("cuda", torch.float16, "fp16-autocast")),
    ],
)
def test_auto_follows_the_machine(
    monkeypatch: pytest.MonkeyPatch, has_cuda: bool, pays_off: bool, expected: tuple
) -> None:
    """With no arguments: CUDA with fp16 when there is a GPU, else the CPU, in bf16 only
    where bf16 was measured to pay off."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: has_cuda)
    asked = []
    monkeypatch.setattr(device, "bf16_pays_off", lambda: asked.append(1) or pays_off)
    runtime = Runtime.choose()
    assert (runtime.device.type, runtime.dtype, runtime.precision) == expected
    assert bool(asked) == (not has_cuda)


def test_cuda_uses_fp16_autocast() -> None:
    runtime = Runtime.choose("auto", "cuda")  # constructing it needs no GPU
    assert runtime.dtype == torch.float16
    assert runtime.precision == "fp16-autocast"
    assert Runtime.choose("fp32", "cuda").dtype is None


def test_unknown_precision_lists_the_valid_ones() -> None:
    with pytest.raises(
        ValueError, match="unknown precision 'fp16'; choose one of auto, fp32, bf16"
    ):
        Runtime.choose("fp16")
    assert PRECISIONS == ("auto", "fp32", "bf16")


def test_bf16_forces_bf16_autocast_on_any_device() -> None:
    assert Runtime.choose("bf16", "cpu").precision == "bf16-autocast"
    assert Runtime.choose("bf16", "cuda").precision == "bf16-autocast"


def test_with_precision_switches_the_dtype_only() -> None:
    runtime = Runtime.choose("fp32", "cpu")
    for label in ("bf16-autocast", "fp16-autocast", "fp32"):
        switched = runtime.with_precision(label)
        assert (switched.device, switched.precision) == (runtime.device, label)


def test_to_device_uses_channels_last() -> None:
    runtime = Runtime.choose("fp32", "cpu")
    x = runtime.to_device(torch.randn(2, 3, 8, 8))
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert x.device.type == "cpu"

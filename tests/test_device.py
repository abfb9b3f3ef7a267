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


def cpuinfo(vendor: str, *flags: str) -> str:
    """Two processors of a /proc/cpuinfo, as Linux writes it."""
    block = (
        f"processor\t: {{}}\nvendor_id\t: {vendor}\nflags\t\t: fpu sse2 avx2 {' '.join(flags)}\n"
    )
    return "\n".join(block.format(i) for i in range(2))


@pytest.mark.parametrize(
    ("vendor", "flags", "expected"),
    [
        ("AuthenticAMD", ("avx512f", "avx512_bf16"), True),  # session 2's EPYC: 2.5x faster
        ("GenuineIntel", ("avx512f", "avx512_bf16"), False),  # session 3's Xeon: 1.5x slower
        ("GenuineIntel", ("avx512_bf16", "amx_tile", "amx_bf16"), True),  # an AMX Xeon
        ("AuthenticAMD", ("avx512f",), False),  # no bf16 instructions: emulated
        ("", (), False),  # not Linux: nothing known, plain fp32
    ],
)
def test_bf16_is_chosen_from_the_cpus_features_not_by_timing(
    vendor: str, flags: tuple[str, ...], expected: bool
) -> None:
    found_vendor, found_flags = device.cpu_features(cpuinfo(vendor, *flags) if vendor else "")
    assert found_vendor == vendor and set(flags) <= found_flags
    assert device.bf16_expected_faster(found_vendor, found_flags) is expected


def test_choosing_the_precision_leaves_the_random_state_alone() -> None:
    """The old timing seeded torch's global generator as a side effect."""
    device.bf16_pays_off.cache_clear()
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    Runtime.choose("auto", "cpu")
    assert torch.equal(torch.rand(3), expected)


def test_cpu_features_of_this_machine_are_read_without_private_torch_apis(monkeypatch) -> None:
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    device.bf16_pays_off.cache_clear()
    try:
        assert isinstance(device.bf16_pays_off(), bool)
    finally:
        device.bf16_pays_off.cache_clear()


@pytest.mark.parametrize(
    ("has_cuda", "pays_off", "expected"),
    [
        (False, False, ("cpu", None, "fp32")),
        (False, True, ("cpu", torch.bfloat16, "bf16-autocast")),
        (True, False, ("cuda", torch.float16, "fp16-autocast")),  # the CPU is not asked
        (True, True, ("cuda", torch.float16, "fp16-autocast")),
    ],
)
def test_auto_follows_the_machine(
    monkeypatch: pytest.MonkeyPatch, has_cuda: bool, pays_off: bool, expected: tuple
) -> None:
    """With no arguments: CUDA with fp16 when there is a GPU, else the CPU, in bf16 only
    where its features say bf16 pays off."""
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

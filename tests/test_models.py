"""fetalft.models and fetalft.unet: architectures, parameter counts, encoder weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fetalft import paper
from fetalft.models import (
    DECODER_CHANNELS,
    WeightsError,
    build_model,
    count_parameters,
    default_encoder_weights,
    load_encoder_state,
    mobilenet_unet,
    parameter_table,
    weights_source,
)
from fetalft.settings import ENCODER_WEIGHTS_ENV
from fetalft.unet import UNet

# Exact counts (smp 0.6.0); see the reference notes.
UNET_TOTAL = 31_037_633
UNET_ENCODER = 18_847_168  # four levels and the bottleneck
UNET_DECODER = 12_190_400
MOBILENET_TOTAL = 6_628_945
MOBILENET_ENCODER = 2_223_872
MOBILENET_BLOCKS = (3_761_152, 479_744, 124_672, 32_384, 6_976)
MOBILENET_HEAD = 145

#: Encoders whose smp 0.6 counts disagree with the paper's table (smp 0.3.3) by more than 0.01M.
DIFFERENT_IN_SMP_06 = {"efficientnet-b1"}


@pytest.fixture(scope="module")
def unet() -> UNet:
    return UNet()


@pytest.fixture(scope="module")
def mobilenet() -> torch.nn.Module:
    return mobilenet_unet(None)


def test_classic_unet_has_the_papers_parameter_count(unet: UNet) -> None:
    assert count_parameters(unet) == UNET_TOTAL
    assert count_parameters(unet.encoder) == UNET_ENCODER
    assert count_parameters(unet.decoder) == UNET_DECODER
    assert count_parameters(unet.segmentation_head) == UNET_TOTAL - UNET_ENCODER - UNET_DECODER
    assert count_parameters(unet.segmentation_head) == 64 + 1  # 1x1 conv, 64 -> 1 class


@pytest.mark.parametrize("size", [(32, 32), (64, 48)])
def test_classic_unet_keeps_the_input_size(unet: UNet, size: tuple[int, int]) -> None:
    with torch.no_grad():
        out = unet.eval()(torch.randn(2, 3, *size))
    assert out.shape == (2, 1, *size)


def test_mobilenet_unet_counts_match_the_reference(mobilenet: torch.nn.Module) -> None:
    assert count_parameters(mobilenet) == MOBILENET_TOTAL
    assert count_parameters(mobilenet.encoder) == MOBILENET_ENCODER
    blocks = tuple(count_parameters(block) for block in mobilenet.decoder.blocks)
    assert blocks == MOBILENET_BLOCKS
    assert count_parameters(mobilenet.segmentation_head) == MOBILENET_HEAD
    assert count_parameters(mobilenet.decoder) == sum(MOBILENET_BLOCKS)


def smp_unet_decoder_parameters(channels: tuple[int, ...]) -> int:
    """smp's U-Net decoder with a MobileNetV2 encoder, counted by hand from its layout.

    Each block concatenates the upsampled input with the encoder's skip at that scale and
    applies two 3x3 convolutions without bias, each followed by BatchNorm (weight and bias);
    the head is a 3x3 convolution to one class, with a bias. The encoder's stages give 1,280 channels at
    the bottom and skips of 96, 32, 24 and 16 channels (none at full size).
    """
    inputs = (1280, *channels[:-1])
    skips = (96, 32, 24, 16, 0)
    blocks = sum(
        9 * (cin + skip) * out + 2 * out + 9 * out * out + 2 * out
        for cin, skip, out in zip(inputs, skips, channels, strict=True)
    )
    return blocks + 9 * channels[-1] + 1


def test_decoder_widths_count_as_worked_by_hand() -> None:
    """The hand count reproduces the paper's 4,405,073 for the wide decoder, so it can be
    trusted for the slim one, which must leave room for the encoder in a 4.4 M budget."""
    wide = smp_unet_decoder_parameters(DECODER_CHANNELS["wide"])
    assert wide == MOBILENET_TOTAL - MOBILENET_ENCODER
    for decoder, channels in DECODER_CHANNELS.items():
        net = mobilenet_unet(None, decoder)
        decoder_and_head = count_parameters(net) - count_parameters(net.encoder)
        assert decoder_and_head == smp_unet_decoder_parameters(channels), decoder
        assert count_parameters(net.encoder) == MOBILENET_ENCODER
    assert smp_unet_decoder_parameters(DECODER_CHANNELS["slim"]) + MOBILENET_ENCODER <= 4_405_073


def test_slim_decoder_keeps_the_output_shape() -> None:
    with torch.no_grad():
        out = build_model("mobilenet_v2", None, "slim").eval()(torch.randn(1, 3, 64, 96))
    assert out.shape == (1, 1, 64, 96)


def test_unknown_or_misplaced_decoder_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown decoder 'narrow'; choose one of wide, slim"):
        mobilenet_unet(None, "narrow")
    with pytest.raises(ValueError, match="decoder 'slim' is for the MobileNetV2 U-Net"):
        build_model("unet", None, "slim")


def test_mobilenet_unet_output_shape(mobilenet: torch.nn.Module) -> None:
    with torch.no_grad():
        out = mobilenet.eval()(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 1, 64, 64)


def test_count_parameters_trainable_only(mobilenet: torch.nn.Module) -> None:
    model = mobilenet_unet(None)
    model.encoder.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == MOBILENET_TOTAL - MOBILENET_ENCODER
    assert count_parameters(model) == MOBILENET_TOTAL


@pytest.mark.slow
def test_parameter_table_matches_the_paper_where_smp_agrees() -> None:
    table = parameter_table().set_index("encoder_name")
    assert set(table.index) == set(paper.PARAMETERS)
    assert table["total_M"].is_monotonic_increasing
    columns = ("total", "decoder", "encoder")
    error = {c: (table[f"{c}_M"] - table[f"paper_{c}_M"]).abs() for c in columns}
    mismatched = {name for name in table.index if any(error[c][name] > 0.01 for c in columns)}
    assert mismatched == DIFFERENT_IN_SMP_06
    for name in ("mobilenet_v2", "resnet18", "resnet50", "vgg16", "none"):
        assert name not in mismatched
    assert table.loc["none", "total_M"] == pytest.approx(UNET_TOTAL / 1e6)
    assert table.loc["mobilenet_v2", "encoder_M"] == pytest.approx(MOBILENET_ENCODER / 1e6)
    # smp 0.6's efficientnet-b1 encoder is 0.41M larger than the one the paper counted
    assert table.loc["efficientnet-b1", "encoder_M"] - 6.101 == pytest.approx(0.412, abs=0.001)


# -- encoder weights -----------------------------------------------------------------------


def test_local_weights_file_loads_into_the_encoder(imagenet_weights: Path) -> None:
    state = torch.load(imagenet_weights, map_location="cpu", weights_only=True)
    model = mobilenet_unet(imagenet_weights)
    encoder_state = model.encoder.state_dict()
    encoder_keys = {k for k in state if not k.startswith("classifier.")}
    assert set(encoder_state) == encoder_keys
    for key in ("features.0.0.weight", "features.18.1.bias", "features.9.conv.1.0.weight"):
        assert torch.equal(encoder_state[key], state[key])
    assert count_parameters(model) == MOBILENET_TOTAL
    assert not torch.equal(
        mobilenet_unet(None).encoder.state_dict()["features.0.0.weight"],
        state["features.0.0.weight"],
    )


def test_build_model_passes_a_weights_file_on(imagenet_weights: Path) -> None:
    state = torch.load(imagenet_weights, map_location="cpu", weights_only=True)
    model = build_model("mobilenet_v2", str(imagenet_weights))
    assert torch.equal(model.encoder.features[0][0].weight, state["features.0.0.weight"])


def _not_a_state_dict(path: Path) -> None:
    path.write_bytes(b"this is not a torch file")


def _wrong_state_dict(path: Path) -> None:
    torch.save({"features.0.0.weight": torch.zeros(3)}, path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (None, "not found"),
        (_not_a_state_dict, "cannot read"),
        (_wrong_state_dict, "not a MobileNetV2"),
    ],
    ids=["missing", "garbage", "wrong-keys"],
)
def test_bad_weights_file_raises_weights_error_naming_it(
    tmp_path: Path, make, message: str
) -> None:
    path = tmp_path / "my_weights.pth"
    if make is not None:
        make(path)
    with pytest.raises(WeightsError, match=message) as info:
        mobilenet_unet(path)
    assert "my_weights.pth" in str(info.value)


def test_load_encoder_state_error_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"missing\.pth"):
        load_encoder_state(mobilenet_unet(None).encoder, tmp_path / "missing.pth")


def test_build_model_architectures() -> None:
    assert isinstance(build_model("unet"), UNet)
    assert count_parameters(build_model("mobilenet_v2")) == MOBILENET_TOTAL


def test_build_model_rejects_unknown_architecture() -> None:
    with pytest.raises(ValueError, match="unknown architecture 'resnet18'") as info:
        build_model("resnet18")
    assert "'unet'" in str(info.value)
    assert "mobilenet_v2" in str(info.value)


@pytest.mark.parametrize(
    ("weights", "label"),
    [
        (None, "random"),
        ("random", "random"),
        ("imagenet", "imagenet (smp download)"),
        ("/some/where/w.pth", "file:w.pth"),
    ],
)
def test_weights_source_labels(weights, label: str) -> None:
    assert weights_source(weights) == label


def test_default_encoder_weights_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENCODER_WEIGHTS_ENV, raising=False)
    assert default_encoder_weights() == "imagenet"
    monkeypatch.setenv(ENCODER_WEIGHTS_ENV, "/data/w.pth")
    assert default_encoder_weights() == "/data/w.pth"

"""The networks: the classic U-Net baseline and smp's U-Net with a MobileNetV2 encoder.

ImageNet weights for the encoder come from one of three places:

- ``"imagenet"``: smp's own download (what a Colab user gets),
- a local state-dict file (argument or ``$FETALFT_ENCODER_WEIGHTS``), for offline machines,
- ``None`` / ``"random"``: random initialisation, the paper's control rows.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import segmentation_models_pytorch as smp
import torch
from torch import nn

from fetalft import paper, settings
from fetalft.unet import UNet

ENCODER = "mobilenet_v2"
#: Channels of the five decoder blocks, deepest first. "wide" is smp's default, the paper's
#: network (4.41 M decoder parameters with the head); "slim" halves the first four (1.91 M),
#: so that decoder and encoder together (4.14 M) train within the whole decoder's budget.
DECODER_CHANNELS = {"wide": (256, 128, 64, 32, 16), "slim": (128, 64, 32, 16, 16)}


class WeightsError(ValueError):
    """Encoder weights that cannot be found or loaded."""


def default_encoder_weights() -> str:
    """``$FETALFT_ENCODER_WEIGHTS`` if set (a local file), else smp's ``"imagenet"`` download."""
    return settings.current().encoder_weights


def weights_source(weights: str | os.PathLike | None) -> str:
    """A label for results: ``imagenet (smp download)``, ``random`` or ``file:<name>``."""
    if weights in (None, "random"):
        return "random"
    if weights == "imagenet":
        return "imagenet (smp download)"
    return f"file:{Path(weights).name}"


def load_encoder_state(encoder: nn.Module, path: str | os.PathLike) -> None:
    """Load a torchvision-format MobileNetV2 state dict into an smp encoder (classifier dropped)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"encoder weights file {path} not found; pass an existing .pth file, "
            f"unset {settings.ENCODER_WEIGHTS_ENV}, or use encoder_weights='imagenet' to download."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsError(f"cannot read encoder weights {path}: {error}") from error
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise WeightsError(
            f"{path} is not a MobileNetV2 state dict in torchvision format: {error}"
        ) from error


def decoder_channels(decoder: str) -> tuple[int, ...]:
    """The channels of a named decoder width; an unknown name lists the known ones."""
    try:
        return DECODER_CHANNELS[decoder]
    except KeyError:
        raise ValueError(
            f"unknown decoder {decoder!r}; choose one of {', '.join(DECODER_CHANNELS)}"
        ) from None


def mobilenet_unet(
    encoder_weights: str | os.PathLike | None = "imagenet", decoder: str = "wide"
) -> smp.Unet:
    """``smp.Unet("mobilenet_v2", classes=1)`` with the requested encoder weights and decoder."""
    channels = decoder_channels(decoder)
    smp_weights = "imagenet" if encoder_weights == "imagenet" else None
    model = smp.Unet(ENCODER, encoder_weights=smp_weights, classes=1, decoder_channels=channels)
    if encoder_weights not in (None, "random", "imagenet"):
        load_encoder_state(model.encoder, encoder_weights)
    return model


def build_model(
    architecture: str, encoder_weights: str | os.PathLike | None = None, decoder: str = "wide"
) -> nn.Module:
    """``"unet"`` (classic, from scratch) or ``"mobilenet_v2"`` (smp U-Net, ``decoder`` wide
    or slim: :data:`DECODER_CHANNELS`)."""
    if architecture == "unet":
        if decoder != "wide":
            raise ValueError(
                f"decoder {decoder!r} is for the MobileNetV2 U-Net; the classic U-Net has "
                "one width (leave decoder at 'wide')"
            )
        return UNet()
    if architecture == ENCODER:
        return mobilenet_unet(encoder_weights, decoder)
    raise ValueError(f"unknown architecture {architecture!r}; choose 'unet' or '{ENCODER}'")


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def parameter_table() -> pd.DataFrame:
    """Total, decoder and encoder parameters of ``Unet`` for the paper's 13 encoders, built offline.

    Decoder counts include the segmentation head, as the paper's do. Columns with ``paper_``
    give the paper's published values (smp 0.3.3, :data:`fetalft.paper.PARAMETERS`) beside
    the ones measured here.
    """
    rows = []
    for name, (paper_total, paper_decoder, paper_encoder) in paper.PARAMETERS.items():
        model = UNet() if name == "none" else smp.Unet(name, encoder_weights=None, classes=1)
        encoder = count_parameters(model.encoder)
        total = count_parameters(model)
        rows.append(
            {
                "encoder_name": name,
                "total_M": total / 1e6,
                "decoder_M": (total - encoder) / 1e6,
                "encoder_M": encoder / 1e6,
                "paper_total_M": paper_total,
                "paper_decoder_M": paper_decoder,
                "paper_encoder_M": paper_encoder,
            }
        )
        del model
    return pd.DataFrame(rows).sort_values("total_M", ignore_index=True)

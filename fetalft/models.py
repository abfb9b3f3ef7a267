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


def mobilenet_unet(encoder_weights: str | os.PathLike | None = "imagenet") -> smp.Unet:
    """``smp.Unet("mobilenet_v2", classes=1)`` with the requested encoder weights."""
    if encoder_weights in (None, "random"):
        return smp.Unet(ENCODER, encoder_weights=None, classes=1)
    if encoder_weights == "imagenet":
        return smp.Unet(ENCODER, encoder_weights="imagenet", classes=1)
    model = smp.Unet(ENCODER, encoder_weights=None, classes=1)
    load_encoder_state(model.encoder, encoder_weights)
    return model


def build_model(architecture: str, encoder_weights: str | os.PathLike | None = None) -> nn.Module:
    """``"unet"`` (classic, from scratch) or ``"mobilenet_v2"`` (smp U-Net)."""
    if architecture == "unet":
        return UNet()
    if architecture == ENCODER:
        return mobilenet_unet(encoder_weights)
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

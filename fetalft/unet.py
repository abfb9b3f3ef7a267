"""The classic U-Net (Ronneberger et al. 2015) that the paper trains from scratch as its baseline.

Four encoder levels (64-128-256-512 features), a 1024-feature bottleneck and four decoder
levels, each a double 3x3 convolution with BatchNorm; padded convolutions so the output has
the input's size. This is the layout of the authors' code and has 31.04M parameters
(encoder with bottleneck 18.846M, decoder 12.19M), as in the paper's table.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

FEATURES = (64, 128, 256, 512)


class DoubleConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Module):
    """Transposed-convolution upsampling, concatenation with the skip, double convolution."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNetEncoder(nn.Module):
    def __init__(self, in_channels: int = 3, features: tuple[int, ...] = FEATURES) -> None:
        super().__init__()
        channels = (in_channels, *features)
        self.levels = nn.ModuleList(DoubleConv(i, o) for i, o in itertools.pairwise(channels))
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(features[-1], 2 * features[-1])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        for level in self.levels:
            x = level(x)
            skips.append(x)
            x = self.pool(x)
        return [*skips, self.bottleneck(x)]


class UNetDecoder(nn.Module):
    def __init__(self, features: tuple[int, ...] = FEATURES) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(UpBlock(2 * f, f) for f in reversed(features))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        *skips, x = features
        for block, skip in zip(self.blocks, reversed(skips), strict=True):
            x = block(x, skip)
        return x


class UNet(nn.Module):
    """Classic U-Net with ``encoder``/``decoder``/``segmentation_head`` like smp models."""

    def __init__(
        self, in_channels: int = 3, classes: int = 1, features: tuple[int, ...] = FEATURES
    ) -> None:
        super().__init__()
        self.encoder = UNetEncoder(in_channels, features)
        self.decoder = UNetDecoder(features)
        self.segmentation_head = nn.Conv2d(features[0], classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.segmentation_head(self.decoder(self.encoder(x)))

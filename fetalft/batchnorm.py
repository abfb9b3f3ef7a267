"""Making BatchNorm-folded ImageNet weights trainable.

The offline MobileNetV2 weights (converted from Google's 8-bit TFLite model) have every
BatchNorm folded into the preceding convolution: BN is the identity plus a bias, with
running mean 0 and variance 1. That is exact in eval mode, but in train mode BN normalises
with batch statistics and throws the folded scale away, wrecking the pretrained features.

The fix: measure each BN input's real per-channel mean and variance on training images,
store them as running statistics, and set ``weight = sqrt(var + eps)``, ``bias += mean``.
Eval-mode outputs stay bit-for-bit the same function, and train mode now normalises the way
the original network did. Only needed when the encoder itself is trained; frozen encoders
stay in eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fetalft.data import Scan, ScanDataset, eval_transform

CALIBRATION_IMAGES = 32


def batchnorms(module: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def is_folded(module: nn.Module) -> bool:
    """True for folded weights: every BN has unit scale, zero running mean, and some bias."""
    layers = batchnorms(module)
    return (
        bool(layers)
        and all(torch.all(bn.weight == 1) and torch.all(bn.running_mean == 0) for bn in layers)
        and any(torch.any(bn.bias != 0) for bn in layers)
    )


@torch.no_grad()
def recalibrate_folded_batchnorm(encoder: nn.Module, scans: Sequence[Scan]) -> bool:
    """Unfold BN statistics from up to 32 scans; no-op (False) unless the weights are folded."""
    if not is_folded(encoder):
        return False
    stats: dict[nn.BatchNorm2d, tuple[torch.Tensor, torch.Tensor]] = {}

    def record(bn: nn.BatchNorm2d, inputs: tuple[torch.Tensor], _output: torch.Tensor) -> None:
        x = inputs[0].double()
        stats[bn] = (x.mean(dim=(0, 2, 3)).float(), x.var(dim=(0, 2, 3), unbiased=False).float())

    layers = batchnorms(encoder)
    hooks = [bn.register_forward_hook(record) for bn in layers]
    was_training = encoder.training
    try:
        encoder.eval()
        images = torch.stack(
            [
                ScanDataset(scans, eval_transform())[i][0]
                for i in range(min(len(scans), CALIBRATION_IMAGES))
            ]
        )
        device = next(encoder.parameters()).device
        encoder(images.to(device))
    finally:
        for hook in hooks:
            hook.remove()
        encoder.train(was_training)
    for bn in layers:
        mean, var = stats[bn]
        scale = torch.sqrt(var + bn.eps)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.weight.copy_(scale)
        bn.bias.add_(mean.to(bn.bias.dtype))
    return True

"""fetalft.batchnorm: making BatchNorm-folded ImageNet weights trainable without changing them."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from fetalft import hc18
from fetalft.batchnorm import batchnorms, is_folded, recalibrate_folded_batchnorm
from fetalft.data import ScanDataset, eval_transform, load_scans, select_records
from fetalft.models import mobilenet_unet


@pytest.fixture(scope="module")
def scans(synthetic_hc18: Path) -> list:
    records = hc18.load_records("training", synthetic_hc18)
    return load_scans(select_records(records, "train", limit=12), 64, progress=False)


def batch(scans) -> torch.Tensor:
    dataset = ScanDataset(scans, eval_transform())
    return torch.stack([dataset[i][0] for i in range(len(scans))])


def folded_encoder() -> nn.Module:
    """A random MobileNetV2 encoder with its BatchNorm folded the way the offline file is."""
    torch.manual_seed(0)
    encoder = mobilenet_unet(None).encoder
    with torch.no_grad():
        for bn in batchnorms(encoder):
            bn.weight.fill_(1)
            bn.bias.normal_(0, 0.1)
            bn.running_mean.zero_()
            bn.running_var.fill_(1 - bn.eps)
    return encoder.eval()


def test_random_weights_are_not_folded() -> None:
    assert not is_folded(mobilenet_unet(None).encoder)
    assert not is_folded(nn.Conv2d(3, 3, 1))  # no BatchNorm at all


def test_the_offline_imagenet_weights_are_folded(imagenet_weights: Path) -> None:
    assert is_folded(mobilenet_unet(imagenet_weights).encoder)


def test_recalibration_keeps_eval_outputs_and_fixes_train_mode(scans) -> None:
    encoder = folded_encoder()
    assert is_folded(encoder)
    x = batch(scans)
    with torch.no_grad():
        before = encoder(x)[-1]
        folded_train = copy.deepcopy(encoder).train()(x)[-1]
    assert not torch.allclose(folded_train, before, atol=1e-2)  # the problem being fixed

    assert recalibrate_folded_batchnorm(encoder, scans) is True
    assert not encoder.training  # mode restored
    assert not is_folded(encoder)
    with torch.no_grad():
        after = encoder(x)[-1]
        train_mode = copy.deepcopy(encoder).train()(x)[-1]
    scale = before.abs().max()
    assert torch.allclose(after, before, atol=1e-4 * scale)  # eval: the same function
    # train mode on the calibration images now normalises as the original network did
    assert torch.allclose(train_mode, before, atol=1e-2 * scale)
    assert recalibrate_folded_batchnorm(encoder, scans) is False  # once is enough


def test_recalibration_leaves_unfolded_weights_alone(scans) -> None:
    encoder = mobilenet_unet(None).encoder.train()
    state = copy.deepcopy(encoder.state_dict())
    assert recalibrate_folded_batchnorm(encoder, scans) is False
    assert encoder.training
    assert all(torch.equal(v, state[k]) for k, v in encoder.state_dict().items())


def test_recalibrating_the_offline_weights(scans, imagenet_weights: Path) -> None:
    encoder = mobilenet_unet(imagenet_weights).encoder.eval()
    x = batch(scans)
    with torch.no_grad():
        before = encoder(x)[-1]
        assert recalibrate_folded_batchnorm(encoder, scans)
        after = encoder(x)[-1]
    assert torch.allclose(after, before, atol=1e-4 * before.abs().max())

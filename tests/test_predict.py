"""fetalft.predict: the mask and measurement of a new scan from a network's raw logits."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fetalft.metrics import segmentation_metrics
from fetalft.predict import MaskPredictor
from fetalft.synthetic import synthetic_scan

SIZE = 64


class UnsureNetwork(MaskPredictor):
    """Answers +margin on the reference head (squeezed to the network size), -margin elsewhere."""

    image_size = SIZE

    def __init__(self, reference: np.ndarray, margin: float) -> None:
        small = cv2.resize(reference.astype(np.float32), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        self.logits_ = np.where(small >= 0.5, margin, -margin).astype(np.float32)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        assert batch.shape[1:] == (3, SIZE, SIZE)
        return np.repeat(self.logits_[None, None], len(batch), axis=0)


@pytest.fixture(scope="module")
def scan():
    return synthetic_scan(np.random.default_rng(4), (270, 400))


@pytest.mark.parametrize("margin", [0.2, 10.0])
def test_mask_and_measurement_from_logits_near_zero(scan, margin: float) -> None:
    """+-0.2 logits give the same mask and HC as saturated +-10 ones: the threshold is 0."""
    truth = scan.ellipse.to_mask(scan.image.shape)
    mask, measurement = UnsureNetwork(truth, margin).measure(scan.image, scan.pixel_size_mm)
    assert mask.shape == scan.image.shape
    assert segmentation_metrics(mask, truth)["dice"] > 0.97
    assert measurement.measurable
    assert measurement.hc_mm == pytest.approx(scan.hc_mm, rel=0.02)


def test_unsure_and_sure_logits_give_identical_masks(scan) -> None:
    truth = scan.ellipse.to_mask(scan.image.shape)
    unsure = UnsureNetwork(truth, 0.2).mask(scan.image)
    sure = UnsureNetwork(truth, 10.0).mask(scan.image)
    np.testing.assert_array_equal(unsure, sure)


def test_slightly_negative_logits_are_no_head(scan) -> None:
    truth = scan.ellipse.to_mask(scan.image.shape)
    network = UnsureNetwork(truth, 0.2)
    network.logits_ = np.full_like(network.logits_, -0.2)
    mask, measurement = network.measure(scan.image, scan.pixel_size_mm)
    assert not mask.any()
    assert not measurement.measurable

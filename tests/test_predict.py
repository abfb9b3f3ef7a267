"""fetalft.predict: the mask and measurement of a new scan from a network's raw logits."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from fetalft import predict
from fetalft.biometry import measure_head
from fetalft.ellipse import Ellipse
from fetalft.hc18 import HC18Error
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


# -- a user's scan: checked before OpenCV or a model sees it -------------------------------------


def test_before_loading_runs_only_for_input_that_reaches_the_model(
    scan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI names the model it uses in ``before_loading``: never for refused input, and
    before the model is loaded otherwise."""
    path = tmp_path / "scan.png"
    cv2.imwrite(str(path), scan.image)
    events = []
    network = UnsureNetwork(scan.ellipse.to_mask(scan.image.shape), 10.0)

    def load(checkpoint, *args, **kwargs):
        events.append("load")
        return network

    def announce() -> None:
        events.append("announce")

    monkeypatch.setattr(predict.Predictor, "from_checkpoint", load)
    with pytest.raises(HC18Error, match="--pixel-size"):
        predict.predict_file(path, 5.0, "best.pt", before_loading=announce)
    too_small = predict.predict_file(path, 0.02, "best.pt", before_loading=announce)
    assert not too_small.measurable and "8 mm across" in too_small.reason  # 400 px x 0.02 mm
    assert events == []
    found = predict.predict_file(path, scan.pixel_size_mm, "best.pt", before_loading=announce)
    assert found.measurable
    assert events == ["announce", "load"]


def test_read_scan_leaves_opencvs_log_level_as_it_was(scan, tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    cv2.imwrite(str(path), scan.image)
    logging = cv2.utils.logging
    before = logging.getLogLevel()
    np.testing.assert_array_equal(predict.read_scan(path), scan.image)
    assert logging.getLogLevel() == before
    with pytest.raises(HC18Error, match="not a valid PNG"):
        predict.read_scan(_text_file(tmp_path))
    assert logging.getLogLevel() == before


def _text_file(folder: Path) -> Path:
    path = folder / "notes.png"
    path.write_text("not a picture")
    return path


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_image_without_read_permission_is_named_with_the_reason(scan, tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    cv2.imwrite(str(path), scan.image)
    path.chmod(0)
    with pytest.raises(predict.ImageError, match=f"cannot open image {path} .Permission denied"):
        predict.check_image_file(path)


def test_a_head_filling_most_of_the_image_is_refused(scan) -> None:
    """The issue's "share of the image" rule, upper end (the lower end: test_biometry): an
    ellipse over 80% of the frame is mostly guessed outline, so predict reports no HC."""
    head = Ellipse(200, 135, 205, 140, 0.0)  # a little past each edge of the 400 x 270 scan
    share = math.pi * 205 * 140 / (400 * 270)  # the ellipse's area by formula: 83.5%
    mask = head.to_mask(scan.image.shape)
    assert measure_head(mask, 0.3).measurable  # the study's own rules would score it
    _, measurement = UnsureNetwork(mask, 10.0).measure(scan.image, 0.3)
    assert not measurement.measurable
    said = re.fullmatch(
        r"the ellipse covers ([\d.]+)% of the image, outside 1%-80%", measurement.reason
    )
    assert said, measurement.reason
    assert float(said[1]) == pytest.approx(100 * share, abs=0.5)  # fitted through a 64 x 64 mask


class SoftSidedHead(MaskPredictor):
    """A stand-in network whose head (radius 100 px) has a faint side drawn inside."""

    image_size = (64, 64)

    def __init__(self, logits: np.ndarray, clear_fit: bool) -> None:
        self._logits, self.clear_fit = logits, clear_fit

    def original_logits(self, image: np.ndarray) -> np.ndarray:
        return self._logits


def test_measure_fits_the_clear_outline_only_when_asked(soft_sided_head) -> None:
    logits = soft_sided_head((400, 400), (200.0, 200.0), 100.0, 60.0, 20.0)
    image = np.random.default_rng(1).integers(0, 200, (400, 400), dtype=np.uint8)
    true_hc = 2 * math.pi * 100.0 * 0.15  # the circle's perimeter in mm, by hand
    mask, clear = SoftSidedHead(logits, clear_fit=True).measure(image, 0.15)
    _, every = SoftSidedHead(logits, clear_fit=False).measure(image, 0.15)
    assert mask.tolist() == (logits > 0).astype(np.uint8).tolist()
    assert clear.hc_mm == pytest.approx(true_hc, rel=0.002)
    assert every.hc_mm < 0.99 * true_hc

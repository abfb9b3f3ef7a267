"""fetalft.metrics: per-image segmentation and HC18 challenge metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fetalft.biometry import Measurement
from fetalft.ellipse import Ellipse
from fetalft.metrics import (
    challenge_metrics,
    ellipse_dice,
    hausdorff_mm,
    segmentation_metrics,
    summarize,
)

SHAPE = (300, 400)
PIXEL_MM = 0.2


def circle(radius: float, cx: float = 200, cy: float = 150) -> Ellipse:
    return Ellipse(cx, cy, radius, radius, 0.0)


def measured(ellipse: Ellipse, pixel_size_mm: float = PIXEL_MM) -> Measurement:
    return Measurement(True, ellipse, pixel_size_mm)


# --------------------------------------------------------------------------- segmentation


def test_segmentation_metrics_on_hand_computed_masks() -> None:
    pred = np.array([[1, 1, 0], [0, 0, 0]])
    truth = np.array([[1, 0, 0], [1, 0, 0]])
    # tp = 1, fp = 1, fn = 1, tn = 3
    metrics = segmentation_metrics(pred, truth)
    assert metrics["pixel_accuracy"] == pytest.approx(4 / 6)
    assert metrics["dice"] == pytest.approx(2 / 4)
    assert metrics["iou"] == pytest.approx(1 / 3)
    assert metrics["miou"] == pytest.approx((1 / 3 + 3 / 5) / 2)


def test_miou_is_mean_of_foreground_and_background_iou() -> None:
    pred = np.zeros((4, 4), np.uint8)
    pred[:2, :2] = 1  # 4 pixels
    truth = np.zeros((4, 4), np.uint8)
    truth[:2, :3] = 1  # 6 pixels; tp = 4, fn = 2, tn = 10
    metrics = segmentation_metrics(pred, truth)
    assert metrics["iou"] == pytest.approx(4 / 6)
    assert metrics["miou"] == pytest.approx((4 / 6 + 10 / 12) / 2)
    assert metrics["miou"] != pytest.approx(metrics["iou"])


def test_perfect_prediction_scores_one() -> None:
    truth = circle(50).to_mask(SHAPE)
    assert segmentation_metrics(truth, truth) == pytest.approx(
        dict.fromkeys(("pixel_accuracy", "dice", "iou", "miou"), 1.0)
    )


def test_both_empty_masks_agree_perfectly() -> None:
    empty = np.zeros((5, 7), np.uint8)
    assert segmentation_metrics(empty, empty) == {
        "pixel_accuracy": 1.0,
        "dice": 1.0,
        "iou": 1.0,
        "miou": 1.0,
    }


def test_empty_prediction_of_a_head_scores_zero_overlap() -> None:
    truth = np.zeros((10, 10), np.uint8)
    truth[2:5, 2:5] = 1
    metrics = segmentation_metrics(np.zeros_like(truth), truth)
    assert metrics["dice"] == 0.0
    assert metrics["iou"] == 0.0
    assert metrics["pixel_accuracy"] == pytest.approx(91 / 100)
    assert metrics["miou"] == pytest.approx(91 / 100 / 2)


def test_any_positive_value_counts_as_foreground() -> None:
    pred = np.array([[0.0, 3.5], [255.0, -1.0]])
    truth = np.array([[0, 1], [1, 0]], np.uint8)
    assert segmentation_metrics(pred, truth)["dice"] == 1.0


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(5, 4\)"):
        segmentation_metrics(np.zeros((4, 5)), np.zeros((5, 4)))


# --------------------------------------------------------------------------- challenge


def test_df_is_positive_when_prediction_is_too_big() -> None:
    truth, pred = circle(50), circle(53)
    metrics = challenge_metrics(measured(pred), truth, PIXEL_MM, SHAPE)
    expected = 2 * math.pi * 3 * PIXEL_MM
    assert metrics["df_mm"] == pytest.approx(expected)
    assert metrics["adf_mm"] == pytest.approx(expected)


def test_df_is_negative_when_prediction_is_too_small() -> None:
    truth, pred = circle(50), circle(46)
    metrics = challenge_metrics(measured(pred), truth, PIXEL_MM, SHAPE)
    assert metrics["df_mm"] == pytest.approx(-2 * math.pi * 4 * PIXEL_MM)
    assert metrics["adf_mm"] == pytest.approx(-metrics["df_mm"])


def test_hausdorff_of_concentric_circles_is_radius_difference() -> None:
    assert hausdorff_mm(circle(50), circle(53)) == pytest.approx(3.0)
    metrics = challenge_metrics(measured(circle(53)), circle(50), PIXEL_MM, SHAPE)
    assert metrics["hausdorff_mm"] == pytest.approx(3.0 * PIXEL_MM)


def test_hausdorff_of_shifted_circles_is_the_shift() -> None:
    assert hausdorff_mm(circle(40, cx=100), circle(40, cx=107)) == pytest.approx(7.0, abs=1e-3)


def test_hausdorff_is_symmetric_for_nested_ellipses() -> None:
    outer, inner = Ellipse(200, 150, 80, 60, 0.3), Ellipse(200, 150, 70, 60, 0.3)
    assert hausdorff_mm(outer, inner) == pytest.approx(hausdorff_mm(inner, outer))
    assert hausdorff_mm(outer, inner) == pytest.approx(10.0, abs=1e-3)


def test_ellipse_dice_of_concentric_circles() -> None:
    expected = 2 * 50**2 / (50**2 + 53**2)
    assert ellipse_dice(circle(50), circle(53), SHAPE) == pytest.approx(expected, abs=0.005)
    assert ellipse_dice(circle(50), circle(50), SHAPE) == 1.0


def test_perfect_measurement_has_zero_error() -> None:
    truth = Ellipse(200, 150, 90, 70, 1.0)
    metrics = challenge_metrics(measured(truth), truth, PIXEL_MM, SHAPE)
    assert metrics == pytest.approx(
        {"df_mm": 0.0, "adf_mm": 0.0, "hausdorff_mm": 0.0, "ellipse_dice": 1.0}
    )


def test_unmeasurable_prediction_gives_nan_distances_and_zero_dice() -> None:
    failed = Measurement(False, reason="no head found")
    metrics = challenge_metrics(failed, circle(50), PIXEL_MM, SHAPE)
    assert math.isnan(metrics["df_mm"])
    assert math.isnan(metrics["adf_mm"])
    assert math.isnan(metrics["hausdorff_mm"])
    assert metrics["ellipse_dice"] == 0.0


# --------------------------------------------------------------------------- summary


def test_summarize_reports_mean_sd_n_and_failures() -> None:
    per_image = pd.DataFrame(
        {
            "name": ["a", "b", "c"],
            "dice": [0.9, 0.8, 0.7],
            "adf_mm": [1.0, 3.0, math.nan],
        }
    )
    summary = summarize(per_image)
    assert list(summary.index) == ["dice", "adf_mm"]
    assert summary.loc["dice", "mean"] == pytest.approx(0.8)
    assert summary.loc["dice", "sd"] == pytest.approx(0.1)
    assert summary.loc["dice", "n"] == 3
    assert summary.loc["dice", "n_nan"] == 0
    assert summary.loc["adf_mm", "mean"] == pytest.approx(2.0)
    assert summary.loc["adf_mm", "sd"] == pytest.approx(math.sqrt(2))
    assert summary.loc["adf_mm", "n"] == 2
    assert summary.loc["adf_mm", "n_nan"] == 1


def test_summarize_selected_columns_only() -> None:
    per_image = pd.DataFrame({"dice": [0.5, 1.0], "iou": [0.2, 0.4], "extra": [9, 9]})
    summary = summarize(per_image, columns=("iou",))
    assert list(summary.index) == ["iou"]
    assert summary.loc["iou", "mean"] == pytest.approx(0.3)


# --------------------------------------------------------------------------- Hausdorff, asymmetric
# Every case above is symmetric (the two directed distances are equal), so a one-directional
# distance would pass them. Here the two directions differ by a factor of three.


def brute_force_hausdorff(first: Ellipse, second: Ellipse, n: int = 4000) -> float:
    """max over both outlines of the distance to the nearest point of the other, via cdist."""
    from scipy.spatial.distance import cdist

    distances = cdist(first.points(n), second.points(n))
    return max(distances.min(axis=1).max(), distances.min(axis=0).max())


def test_hausdorff_of_a_small_blob_far_from_the_outline_takes_the_longer_direction() -> None:
    """A circle of radius 5 centred 30 px right of a radius-50 circle's centre, worked by hand:
    blob -> outline is at most 50 - (30 - 5) = 25 (the blob's point nearest the big centre);
    outline -> blob is 50 + 30 - 5 = 75 (the big circle's leftmost point). Hausdorff: 75."""
    blob, head = circle(5, cx=230), circle(50, cx=200)
    assert hausdorff_mm(blob, head) == pytest.approx(75.0, abs=1e-3)
    assert hausdorff_mm(head, blob) == pytest.approx(75.0, abs=1e-3)
    for pred, truth in ((blob, head), (head, blob)):
        metrics = challenge_metrics(measured(pred), truth, PIXEL_MM, SHAPE)
        assert metrics["hausdorff_mm"] == pytest.approx(75.0 * PIXEL_MM, abs=1e-3)


@pytest.mark.parametrize(
    ("pred", "truth"),
    [
        (Ellipse(150, 120, 12, 8, 0.4), Ellipse(200, 150, 90, 60, 2.0)),  # small blob off-centre
        (Ellipse(200, 150, 90, 60, 2.0), Ellipse(150, 120, 12, 8, 0.4)),
        (Ellipse(230, 155, 20, 15, 0.3), Ellipse(200, 150, 90, 60, 0.0)),  # nested, off-centre
    ],
)
def test_hausdorff_matches_brute_force_on_asymmetric_pairs(pred: Ellipse, truth: Ellipse) -> None:
    from scipy.spatial.distance import cdist

    d = cdist(pred.points(4000), truth.points(4000))
    forward, backward = d.min(axis=1).max(), d.min(axis=0).max()
    assert abs(forward - backward) > 5  # really asymmetric: one direction alone is wrong
    assert hausdorff_mm(pred, truth) == pytest.approx(brute_force_hausdorff(pred, truth), abs=0.05)

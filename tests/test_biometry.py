"""fetalft.biometry: from a mask or an annotation outline to HC and gestational age."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fetalft.biometry import (
    AnnotationError,
    Measurement,
    boundary_points,
    ellipse_from_outline,
    hadlock_ga_weeks,
    largest_component,
    mask_from_outline,
    measure_head,
)
from fetalft.ellipse import Ellipse
from fetalft.synthetic import draw_outline

SHAPE = (540, 800)  # HC18's usual (H, W)
PIXEL_MM = 0.15


def true_hc_mm(ellipse: Ellipse, pixel_size_mm: float = PIXEL_MM) -> float:
    """The ellipse's perimeter in mm by numerical integration of the arc length, not by
    Ramanujan's formula that the code under test uses."""
    from scipy.integrate import quad

    a, b = ellipse.a * pixel_size_mm, ellipse.b * pixel_size_mm
    length, _ = quad(lambda t: math.hypot(a * math.sin(t), b * math.cos(t)), 0, 2 * math.pi)
    return length


def assert_not_measurable(result: Measurement) -> None:
    assert not result.measurable
    assert result.reason
    assert math.isnan(result.hc_mm)
    assert math.isnan(result.ga_weeks)
    assert result.ellipse_px is None
    assert str(result).startswith("not measurable")


# --------------------------------------------------------------------------- measure_head


#: Heads of several sizes and orientations inside an 800x540 scan.
HEADS = [
    Ellipse(400, 270, 210, 160, 0.0),
    Ellipse(380, 260, 190, 150, 0.5),
    Ellipse(420, 280, 160, 120, 2.3),
    Ellipse(300, 250, 120, 95, 1.4),
]


@pytest.mark.parametrize(
    "head",
    HEADS,
    ids=lambda e: f"a{e.a:.0f}_angle{e.angle:.1f}",
)
def test_measure_head_on_filled_ellipse(head: Ellipse) -> None:
    result = measure_head(head.to_mask(SHAPE), PIXEL_MM)
    assert result.measurable
    assert result.hc_mm == pytest.approx(true_hc_mm(head), abs=0.05)
    assert result.ellipse_px.cx == pytest.approx(head.cx, abs=0.5)
    assert result.ellipse_px.cy == pytest.approx(head.cy, abs=0.5)
    assert result.pixel_size_mm == PIXEL_MM
    assert result.ga_weeks == pytest.approx(hadlock_ga_weeks(result.hc_mm))


def test_measure_head_accepts_any_positive_values_as_head() -> None:
    head = Ellipse(400, 270, 200, 150, 0.2)
    as_logits_above_zero = head.to_mask(SHAPE).astype(np.float32) * 7.5
    result = measure_head(as_logits_above_zero, PIXEL_MM)
    assert result.hc_mm == pytest.approx(true_hc_mm(head), abs=0.05)


def test_empty_mask_is_not_measurable() -> None:
    assert_not_measurable(measure_head(np.zeros(SHAPE, np.uint8), PIXEL_MM))


def test_tiny_speck_is_not_measurable() -> None:
    mask = np.zeros(SHAPE, np.uint8)
    mask[100:105, 200:206] = 1
    result = measure_head(mask, PIXEL_MM)
    assert_not_measurable(result)
    assert "30 pixels" in result.reason


def test_mask_filling_the_whole_image_is_not_measurable() -> None:
    """All of its boundary lies on the image border, so nothing is left to fit."""
    assert_not_measurable(measure_head(np.ones(SHAPE, np.uint8), PIXEL_MM))


@pytest.mark.parametrize(
    "head",
    [Ellipse(60, 270, 220, 160, 0.3), Ellipse(400, 500, 180, 140, 2.8)],
    ids=["left_border", "bottom_border"],
)
def test_head_cut_by_the_border_is_measured_accurately(head: Ellipse) -> None:
    mask = head.to_mask(SHAPE)
    assert mask[:, 0].any() or mask[-1, :].any()  # really cut by the border
    result = measure_head(mask, PIXEL_MM)
    assert result.measurable
    assert result.hc_mm == pytest.approx(true_hc_mm(head), abs=0.15)  # from part of the outline


def test_boundary_points_leave_out_the_image_border() -> None:
    mask = Ellipse(60, 270, 220, 160, 0.3).to_mask(SHAPE)
    points = boundary_points(mask)
    height, width = SHAPE
    assert len(points) > 500
    assert points[:, 0].min() > 0
    assert points[:, 0].max() < width - 1
    assert points[:, 1].min() > 0
    assert points[:, 1].max() < height - 1


def test_boundary_points_of_empty_mask() -> None:
    assert boundary_points(np.zeros((20, 30), np.uint8)).shape == (0, 2)


def test_largest_component_is_used_when_there_is_noise() -> None:
    head = Ellipse(350, 250, 180, 140, 0.6)
    mask = head.to_mask(SHAPE)
    mask[10:60, 700:790] = 1  # a big false positive in a corner
    mask[500:520, 20:40] = 1
    rng = np.random.default_rng(0)
    mask[rng.integers(0, SHAPE[0], 300), rng.integers(0, SHAPE[1], 300)] = 1  # speckle
    result = measure_head(mask, PIXEL_MM)
    assert result.measurable
    assert result.hc_mm == pytest.approx(true_hc_mm(head), abs=0.05)


def test_largest_component_keeps_only_the_biggest_blob() -> None:
    mask = np.zeros((20, 20), np.uint8)
    mask[1:4, 1:4] = 1
    mask[10:18, 10:18] = 255
    blob = largest_component(mask)
    assert blob.dtype == np.uint8
    assert blob.sum() == 64
    assert blob[10:18, 10:18].all()
    assert not blob[1:4, 1:4].any()


def test_largest_component_joins_diagonal_neighbours() -> None:
    mask = np.eye(6, dtype=np.uint8)
    assert largest_component(mask).sum() == 6


@pytest.mark.parametrize("pixel_size", [0.0, -0.1, math.nan, math.inf])
def test_measure_head_rejects_bad_pixel_size(pixel_size: float) -> None:
    with pytest.raises(ValueError, match="pixel size"):
        measure_head(np.zeros((10, 10), np.uint8), pixel_size)


def test_measure_head_rejects_non_2d_mask() -> None:
    with pytest.raises(ValueError, match="2-D"):
        measure_head(np.zeros((1, 10, 10), np.uint8), PIXEL_MM)


def test_measurement_str_reports_hc_and_ga() -> None:
    result = Measurement(True, Ellipse(0, 0, 500, 500, 0), 0.1)  # HC = 100 pi mm
    assert str(result) == "HC 314.2 mm, gestational age 35.2 weeks (Hadlock)"


# --------------------------------------------------------------------------- Hadlock


@pytest.mark.parametrize(
    ("hc_mm", "weeks"),
    [
        # 8.96 + 0.540 * HC_cm + 0.0003 * HC_cm**3, worked out by hand
        (100.0, 8.96 + 5.40 + 0.30),  # 14.66
        (175.0, 8.96 + 9.45 + 1.6078125),  # 20.0178
        (200.0, 8.96 + 10.80 + 2.40),  # 22.16
        (300.0, 8.96 + 16.20 + 8.10),  # 33.26
    ],
)
def test_hadlock_gestational_age(hc_mm: float, weeks: float) -> None:
    assert hadlock_ga_weeks(hc_mm) == pytest.approx(weeks, abs=1e-9)


def test_hadlock_increases_with_hc() -> None:
    hcs = np.linspace(50, 350, 31)
    assert np.all(np.diff([hadlock_ga_weeks(hc) for hc in hcs]) > 0)


# --------------------------------------------------------------------------- annotations


@pytest.mark.parametrize("angle", [0.0, 0.7, 2.2])
def test_ellipse_from_outline_recovers_drawn_ellipse(angle: float) -> None:
    truth = Ellipse(390, 260, 200, 150, angle)
    found = ellipse_from_outline(draw_outline(truth, SHAPE))
    assert found.perimeter == pytest.approx(truth.perimeter, rel=1e-3)
    assert (found.cx, found.cy) == pytest.approx((truth.cx, truth.cy), abs=0.1)


def test_mask_from_outline_fills_an_outline_that_leaves_the_image() -> None:
    truth = Ellipse(30, 270, 200, 150, 0.2)
    mask = mask_from_outline(draw_outline(truth, SHAPE))
    assert mask.shape == SHAPE
    assert mask.sum() == pytest.approx(truth.to_mask(SHAPE).sum(), rel=0.01)


@pytest.mark.parametrize("n_pixels", [0, 1, 5])
def test_ellipse_from_outline_on_near_empty_image_names_the_source(n_pixels: int) -> None:
    outline = np.zeros((50, 60), np.uint8)
    outline[10, 10 : 10 + n_pixels] = 255
    with pytest.raises(AnnotationError) as info:
        ellipse_from_outline(outline, source="042_HC_Annotation.png")
    assert "042_HC_Annotation.png" in str(info.value)
    assert f"{n_pixels} outline pixels" in str(info.value)


# --------------------------------------------------------------------------- HC, independently


@pytest.mark.parametrize(
    "head",
    [
        *HEADS,
        Ellipse(401.3, 268.7, 199.6, 151.2, 0.93),  # off the pixel grid
        Ellipse(60, 270, 220, 160, 0.3),  # cut by the left border
    ],
    ids=lambda e: f"a{e.a:.0f}_angle{e.angle:.2f}",
)
def test_hc_of_a_rasterised_head_is_its_true_perimeter_within_0_05_mm(head: Ellipse) -> None:
    """Half a pixel of bias in the traced outline (e.g. edge-pixel centres instead of the
    edge) costs about 0.4 mm here; the unbiased outline lands within 0.05 mm."""
    result = measure_head(head.to_mask(SHAPE), PIXEL_MM)
    assert result.measurable
    assert result.hc_mm == pytest.approx(true_hc_mm(head), abs=0.05)


def test_boundary_points_lie_on_the_pixel_edge_not_on_edge_pixel_centres() -> None:
    """A filled square of pixels 10..29: its edge is at 9.5 and 29.5, half a pixel outside
    the centres of its edge pixels."""
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 1
    points = boundary_points(mask)
    assert points[:, 0].min() == pytest.approx(9.5)
    assert points[:, 0].max() == pytest.approx(29.5)
    assert points[:, 1].min() == pytest.approx(9.5)
    assert points[:, 1].max() == pytest.approx(29.5)

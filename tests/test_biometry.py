"""fetalft.biometry: from a mask or an annotation outline to HC and gestational age."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
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
    measure_plausible_head,
    plausible,
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


# --------------------------------------------------------------------------- plausibility


def refused(result: Measurement, *words: str) -> None:
    """Not measurable, no HC or age, and a reason holding every one of ``words``."""
    assert not result.measurable
    assert math.isnan(result.hc_mm) and math.isnan(result.ga_weeks)
    assert str(result) == f"not measurable: {result.reason}"
    for word in words:
        assert word in result.reason, result.reason


def test_a_plausible_head_is_reported_with_hc_and_age() -> None:
    head = HEADS[0]
    result = measure_plausible_head(head.to_mask(SHAPE), PIXEL_MM)
    assert result == measure_head(head.to_mask(SHAPE), PIXEL_MM)
    assert result.hc_mm == pytest.approx(true_hc_mm(head), abs=0.05)
    assert result.ga_weeks == pytest.approx(hadlock_ga_weeks(true_hc_mm(head)), abs=0.01)


def test_a_sliver_at_the_border_is_not_a_head() -> None:
    """The issue's all-white scan: the network marked a 69 x 1.6 mm sliver at the top edge."""
    sliver = Ellipse(400, 6, 230, 5, 0.0)
    mask = sliver.to_mask(SHAPE)
    assert measure_head(mask, 0.15).measurable  # the study's own rules take it
    refused(measure_plausible_head(mask, 0.15), "short axis is 0.0", "flatter than a head")


@pytest.mark.parametrize(
    ("shape", "pixel_size_mm", "across_mm"),
    [((4000, 4000), 0.2, 800), (SHAPE, 1.0, 800), (SHAPE, 0.02, 16)],
    ids=["4000px-at-0.2mm", "800px-at-1mm", "800px-at-0.02mm"],
)
def test_a_pixel_size_that_does_not_fit_the_image_is_refused(
    shape: tuple[int, int], pixel_size_mm: float, across_mm: float
) -> None:
    height, width = shape
    head = Ellipse(width / 2, height / 2, width / 5, width / 6, 0.3)
    # a 4000x4000 ellipse mask takes seconds to draw, and the pixel size is checked first
    mask = head.to_mask(shape) if height < 1000 else np.ones(shape, np.uint8)
    refused(
        measure_plausible_head(mask, pixel_size_mm),  # checked before the mask is looked at
        f"{across_mm} mm across",
        "check the pixel size",
    )


@pytest.mark.parametrize(
    ("pixel_size_mm", "head", "hc_limit"),
    [
        (0.45, Ellipse(400, 270, 210, 160, 0.2), "400"),
        (0.025, Ellipse(400, 270, 200, 150, 0), "30"),
    ],
    ids=["too-large", "too-small"],
)
def test_hc_outside_the_range_of_real_heads_is_refused(
    pixel_size_mm: float, head: Ellipse, hc_limit: str
) -> None:
    hc = true_hc_mm(head, pixel_size_mm)
    assert not 30 <= hc <= 400  # the test's own premise, from the integrated perimeter
    refused(
        measure_plausible_head(head.to_mask(SHAPE), pixel_size_mm),
        f"HC {hc:.1f} mm",
        f"{hc_limit}",
        "range of real heads",
    )


def test_a_head_too_small_for_the_image_is_refused() -> None:
    tiny = Ellipse(400, 270, 22, 17, 0.0)  # 0.27% of the image, above measure_head's 0.2%
    assert measure_head(tiny.to_mask(SHAPE), PIXEL_MM).measurable
    refused(measure_plausible_head(tiny.to_mask(SHAPE), PIXEL_MM), "covers 0.3% of the image")


def test_a_head_mostly_out_of_view_is_refused() -> None:
    """Centred 40 px inside the right edge: measure_head keeps it (over half in view),
    a reported HC needs 80%."""
    head = Ellipse(760, 270, 150, 120, 0.0)
    # the share in view, counted on the outline's arc length by an independent route
    t = np.linspace(0, 2 * np.pi, 100_000, endpoint=False)
    x = head.cx + head.a * np.cos(t)
    speed = np.hypot(head.a * np.sin(t), head.b * np.cos(t))
    in_view = float(np.sum(speed * (x <= 799)) / np.sum(speed))
    assert 0.5 < in_view < 0.8
    assert measure_head(head.to_mask(SHAPE), PIXEL_MM).measurable
    result = measure_plausible_head(head.to_mask(SHAPE), PIXEL_MM)
    refused(result, "of the head outline is in the image")
    assert result.ellipse_px is not None  # kept, so an overlay can show what was refused


@pytest.mark.parametrize("weeks", [11.0, 13.9, 42.1, 45.0])
def test_no_gestational_age_outside_the_weeks_hadlock_fitted(weeks: float) -> None:
    """HC is reported, the age is not, and the text says why."""
    from scipy.optimize import brentq

    hc = brentq(lambda h: hadlock_ga_weeks(h) - weeks, 1, 1000)  # the HC of that age
    assert 30 <= hc <= 400  # a head that is measured, just not aged
    result = Measurement(True, Ellipse(0, 0, hc / (2 * math.pi), hc / (2 * math.pi), 0), 1.0)
    assert result.hc_mm == pytest.approx(hc)
    assert math.isnan(result.ga_weeks)
    assert "14-42 weeks" in result.ga_problem
    assert str(result).startswith(f"HC {hc:.1f} mm; no gestational age: HC {hc:.1f} mm is")


@pytest.mark.parametrize("weeks", [14.0, 20.0, 42.0])
def test_gestational_age_inside_the_weeks_hadlock_fitted(weeks: float) -> None:
    from scipy.optimize import brentq

    hc = brentq(lambda h: hadlock_ga_weeks(h) - weeks, 1, 1000)
    result = Measurement(True, Ellipse(0, 0, hc / (2 * math.pi), hc / (2 * math.pi), 0), 1.0)
    assert result.ga_weeks == pytest.approx(weeks, abs=1e-6)
    assert result.ga_problem == ""


def test_a_refused_measurement_keeps_no_number() -> None:
    head = HEADS[0]
    accepted = measure_head(head.to_mask(SHAPE), PIXEL_MM)
    result = plausible(accepted, (54, 80))  # the same ellipse claimed for a tiny image
    assert not result.measurable and result.ellipse_px == accepted.ellipse_px
    assert math.isnan(result.hc_mm) and result.ga_problem == "no head circumference"


def test_refusal_reasons_of_a_per_image_table() -> None:
    """One row reported, one refused as a sliver, one that the study already could not measure."""
    from fetalft.biometry import UNMEASURED, refusal_reasons

    head, sliver = HEADS[0], Ellipse(400, 6, 230, 5, 0.0)
    columns = ("name", "measurable", "pixel_size_mm", "pred_cx", "pred_cy", "pred_a", "pred_b")
    table = pd.DataFrame(
        [
            ("a", True, PIXEL_MM, head.cx, head.cy, head.a, head.b, head.angle),
            ("b", True, PIXEL_MM, sliver.cx, sliver.cy, sliver.a, sliver.b, sliver.angle),
            ("c", False, PIXEL_MM, *[np.nan] * 5),
        ],
        columns=[*columns, "pred_angle"],
    )
    reasons = refusal_reasons(table, dict.fromkeys("abc", SHAPE))
    assert reasons.iloc[0] == ""
    assert "flatter than a head" in reasons.iloc[1]
    assert reasons.iloc[2] == UNMEASURED


def test_a_flat_ellipse_is_not_a_head() -> None:
    """What the shipped model drew on an all-white image: semi-axes 286 x 150 px, a ratio of
    0.52, below every HC18 expert ellipse (0.66 at the least)."""
    flat = Ellipse(426, 261, 286, 150, 0.01)
    assert measure_head(flat.to_mask(SHAPE), 0.15).measurable
    refused(measure_plausible_head(flat.to_mask(SHAPE), 0.15), "short axis is 0.52")


@pytest.mark.parametrize("level", [0, 255])
def test_a_uniform_image_is_no_scan(level: int) -> None:
    from fetalft.biometry import image_problem

    assert f"grey level {level}" in image_problem(np.full(SHAPE, level, np.uint8))
    speckle = np.random.default_rng(0).integers(0, 256, SHAPE, dtype=np.uint8)
    assert image_problem(speckle) == ""

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
    clear_boundary,
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


# --------------------------------------------------------------------------- mutation survivors
# Tests added after mutation testing (docs/mutation.md): each kills a mutant that survived.


def square_edge(rows: range, cols: range) -> set[tuple[float, float]]:
    """The marching-squares outline of a square of pixels (``rows`` x ``cols``) in a 40x40
    image, worked out by hand: the level-0.5 points half a pixel outside the square, on the
    grid lines through pixel centres, leaving out every point on the image border (row or
    column 0 or 39): there the square is cut, not bounded by an edge."""
    top, bottom, left, right = rows[0] - 0.5, rows[-1] + 0.5, cols[0] - 0.5, cols[-1] + 0.5
    points = {(x, y) for x in cols for y in (top, bottom)}
    points |= {(x, y) for y in rows for x in (left, right)}
    return {(x, y) for x, y in points if 0 < x < 39 and 0 < y < 39}


@pytest.mark.parametrize("side", ["left", "right", "top", "bottom"])
def test_boundary_points_stop_at_every_border_but_keep_the_edge_up_to_it(side: str) -> None:
    """A square cut by one border: its edge is traced right up to the last pixel column (or
    row) inside the image, and no point lies on the border itself."""
    rows, cols = {
        "left": (range(10, 30), range(0, 20)),
        "right": (range(10, 30), range(20, 40)),
        "top": (range(0, 20), range(10, 30)),
        "bottom": (range(20, 40), range(10, 30)),
    }[side]
    mask = np.zeros((40, 40), np.uint8)
    mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = 1
    points = {(float(x), float(y)) for x, y in boundary_points(mask)}
    assert points == square_edge(rows, cols)


def test_largest_component_of_an_empty_mask_is_an_empty_uint8_mask() -> None:
    blob = largest_component(np.zeros((7, 9), np.float32))
    assert blob.dtype == np.uint8 and blob.shape == (7, 9) and not blob.any()


def test_measure_head_refuses_a_mask_that_is_not_elliptical() -> None:
    """A plus sign of two 400 x 80 px bars: no ellipse covers it well (the fit's Dice is
    far below 0.8, so a formula that inflated the Dice, e.g. union for intersection or a
    wrong factor, would let it through)."""
    mask = np.zeros(SHAPE, np.uint8)
    mask[230:310, 200:600] = 1
    mask[70:470, 360:440] = 1
    result = measure_head(mask, PIXEL_MM)
    assert_not_measurable(result)
    assert result.measurable is False
    dice = float(result.reason.removeprefix("mask is not elliptical (ellipse fit Dice ")[:-1])
    assert dice < 0.8


def test_measure_head_refuses_a_head_mostly_out_of_view() -> None:
    """Centred 21 px beyond the right edge: measured along the ellipse's angle parameter
    (as measure_head samples it), the share of the outline with x <= 799 is
    1 - acos(-21 / 150) / pi = 45.5%, under the 50% measure_head needs."""
    head = Ellipse(820, 270, 150, 120, 0.0)
    in_view = 1 - math.acos((799 - head.cx) / head.a) / math.pi
    assert 0.45 < in_view < 0.5
    result = measure_head(head.to_mask(SHAPE), PIXEL_MM)
    assert_not_measurable(result)
    assert result.measurable is False
    assert result.reason.endswith("of the fitted head outline is in the image")
    shown = float(result.reason.removeprefix("only ").split("%")[0]) / 100
    assert shown == pytest.approx(in_view, abs=0.015)  # the fit sees only part of the head


def test_not_measurable_is_false_not_merely_falsy() -> None:
    """``measurable`` becomes a table column (fetalft.evaluate); None would turn it to object."""
    cases = [
        measure_head(np.zeros(SHAPE, np.uint8), PIXEL_MM),  # no head
        measure_head(np.ones(SHAPE, np.uint8), PIXEL_MM),  # no boundary to fit
        measure_plausible_head(HEADS[0].to_mask(SHAPE), 1.0),  # field of view
        plausible(measure_head(HEADS[0].to_mask(SHAPE), PIXEL_MM), (54, 80)),
    ]
    assert [case.measurable for case in cases] == [False] * 4


def test_a_refusal_keeps_the_pixel_size_so_its_ellipse_can_be_drawn_in_mm() -> None:
    accepted = measure_head(HEADS[0].to_mask(SHAPE), PIXEL_MM)
    refused_plausibly = plausible(accepted, (54, 80))
    assert refused_plausibly.pixel_size_mm == PIXEL_MM
    assert refused_plausibly.ellipse_mm == accepted.ellipse_mm
    wrong_scale = measure_plausible_head(HEADS[0].to_mask(SHAPE), 1.0)
    assert wrong_scale.pixel_size_mm == 1.0


def test_field_of_view_message_names_width_by_height_and_its_limits_are_inclusive() -> None:
    from fetalft.biometry import field_of_view_problem

    message = field_of_view_problem((540, 800), 1.0)
    assert message.startswith("a 800x540-pixel image at 1 mm per pixel would be 800 mm")
    assert message.endswith("check the pixel size")
    assert field_of_view_problem((540, 800), 0.5) == ""  # exactly 400 mm across
    assert field_of_view_problem((540, 800), 0.025) == ""  # exactly 20 mm across
    assert field_of_view_problem((540, 800), 0.5001) != ""


def test_annotation_thinner_than_a_head_is_refused_with_its_width() -> None:
    """A drawn ellipse 2 px in semi-minor axis (4 px wide): a line, not a head outline."""
    outline = draw_outline(Ellipse(390, 260, 200, 2, 0.3), SHAPE)
    with pytest.raises(
        AnnotationError, match=r"^thin\.png: the outline fits an ellipse only"
    ) as info:
        ellipse_from_outline(outline, source="thin.png")
    width = float(str(info.value).split("only ")[1].split(" pixels")[0])
    # 2 x the drawn 2 px semi-axis, widened by the 2 px pen (its pixels reach out to b = 3)
    assert 4.0 <= width <= 6.0
    assert str(info.value).endswith("Check that this is an HC18 annotation.")


def test_an_annotation_of_any_positive_value_is_an_outline() -> None:
    """0/1 outlines work like HC18's 0/255 ones."""
    truth = Ellipse(390, 260, 200, 150, 0.7)
    outline = draw_outline(truth, SHAPE)
    as_ones = ellipse_from_outline((outline > 0).astype(np.uint8))
    assert as_ones == ellipse_from_outline(outline)


def test_an_annotation_of_exactly_six_outline_pixels_is_fitted() -> None:
    """Six points on an ellipse determine it (five would too): no refusal at the minimum."""
    truth = Ellipse(30, 20, 20, 12, 0.0)
    outline = np.zeros((40, 60), np.uint8)
    for t in np.linspace(0, 2 * np.pi, 6, endpoint=False):
        x, y = truth.cx + truth.a * np.cos(t), truth.cy + truth.b * np.sin(t)
        outline[round(y), round(x)] = 255
    assert np.count_nonzero(outline) == 6
    found = ellipse_from_outline(outline)
    assert (found.cx, found.cy) == pytest.approx((truth.cx, truth.cy), abs=1.0)


def test_mask_from_outline_names_the_source_of_a_bad_annotation() -> None:
    with pytest.raises(
        AnnotationError, match=r"^042_HC_Annotation\.png has 0 outline pixels"
    ) as info:
        mask_from_outline(np.zeros((50, 60), np.uint8), source="042_HC_Annotation.png")
    assert str(info.value).endswith(
        "expected a thin white ellipse on black. Check that this is an HC18 annotation."
    )


@pytest.mark.parametrize("function", [ellipse_from_outline, mask_from_outline])
def test_an_annotation_without_a_source_is_called_annotation(function) -> None:
    with pytest.raises(AnnotationError, match=r"^annotation has 0 outline pixels"):
        function(np.zeros((50, 60), np.uint8))


def test_an_outline_opencv_cannot_fit_is_an_annotation_error_naming_the_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OpenCV's degenerate answers (a zero or infinite axis) are test_ellipse.py's; here,
    that such a failure reaches the user as an AnnotationError that names the file."""
    import fetalft.biometry
    from fetalft.ellipse import EllipseFitError

    def degenerate(points: np.ndarray) -> Ellipse:
        raise EllipseFitError("degenerate ellipse fit")

    monkeypatch.setattr(fetalft.biometry, "fit_ellipse", degenerate)
    outline = draw_outline(Ellipse(390, 260, 200, 150, 0.3), SHAPE)
    with pytest.raises(
        AnnotationError, match=r"^x\.png: degenerate ellipse fit; the outline is not"
    ):
        ellipse_from_outline(outline, source="x.png")


def test_refusal_reasons_keep_the_tables_index_and_every_row() -> None:
    """A filtered table (index 5, 7, 9) whose unmeasurable row comes first."""
    from fetalft.biometry import UNMEASURED, refusal_reasons

    head, sliver = HEADS[0], Ellipse(400, 6, 230, 5, 0.0)
    table = pd.DataFrame(
        {
            "name": ["c", "a", "b"],
            "measurable": [False, True, True],
            "pixel_size_mm": [PIXEL_MM] * 3,
            "pred_cx": [np.nan, head.cx, sliver.cx],
            "pred_cy": [np.nan, head.cy, sliver.cy],
            "pred_a": [np.nan, head.a, sliver.a],
            "pred_b": [np.nan, head.b, sliver.b],
            "pred_angle": [np.nan, head.angle, sliver.angle],
        },
        index=[5, 7, 9],
    )
    reasons = refusal_reasons(table, dict.fromkeys("abc", SHAPE))
    assert reasons.name == "refusal_reason"
    assert list(reasons.index) == [5, 7, 9]
    assert reasons[5] == UNMEASURED and reasons[7] == ""
    assert "flatter than a head" in reasons[9]


def test_clear_boundary_leaves_out_the_points_with_the_weakest_edge() -> None:
    # logits 0.5 x^2: np.gradient's central difference along x is exactly x, across y 0
    logits = 0.5 * np.tile(np.arange(20.0) ** 2, (12, 1))
    points = np.stack([np.arange(1.0, 11.0), np.full(10, 5.0)], axis=1)  # x = 1..10
    kept = clear_boundary(points, logits, share=0.2)
    # edge strengths 1..10; their 20% quantile is 2.8: x = 3..10 stay
    assert kept[:, 0].tolist() == list(range(3, 11))
    assert len(clear_boundary(points, logits, share=0.0)) == 10
    with pytest.raises(ValueError, match="share"):
        clear_boundary(points, logits, share=1.0)


def test_the_clear_fit_measures_the_skull_where_a_soft_side_drifts_inside(
    soft_sided_head,
) -> None:
    # a 60-degree side (a sixth of the outline) drawn up to 20 px inside a head of 100 px
    logits = soft_sided_head((400, 400), (200.0, 200.0), 100.0, 60.0, 20.0)
    mask = (logits > 0).astype(np.uint8)
    true_hc = 2 * math.pi * 100.0 * PIXEL_MM  # the circle's perimeter, by hand
    every_point = measure_head(mask, PIXEL_MM)
    clear = measure_head(mask, PIXEL_MM, logits)
    # all points: the soft side pulls the ellipse in by more than 1% of HC
    assert every_point.hc_mm < 0.99 * true_hc
    # the clear fit leaves the soft side out and finds the skull within 0.2%
    assert clear.hc_mm == pytest.approx(true_hc, rel=0.002)

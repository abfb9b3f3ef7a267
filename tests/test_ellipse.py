"""fetalft.ellipse: fitting, conventions, perimeter and rasterisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from fetalft.ellipse import Ellipse, EllipseFitError, fit_ellipse, outline_points


def angle_difference(first: float, second: float) -> float:
    """Smallest difference of two axis directions (angles are only defined modulo pi)."""
    diff = (first - second) % math.pi
    return min(diff, math.pi - diff)


def assert_same_ellipse(found: Ellipse, truth: Ellipse, tol: float = 1e-3) -> None:
    """Centre and axes within ``tol`` pixels, axis direction within ``tol`` radians."""
    assert found.cx == pytest.approx(truth.cx, abs=tol)
    assert found.cy == pytest.approx(truth.cy, abs=tol)
    assert found.a == pytest.approx(truth.a, abs=tol)
    assert found.b == pytest.approx(truth.b, abs=tol)
    assert angle_difference(found.angle, truth.angle) < tol


def integrated_perimeter(a: float, b: float) -> float:
    """Arc length of the ellipse by numerical integration of |d(point)/dt|."""
    length, _ = quad(lambda t: math.hypot(a * math.sin(t), b * math.cos(t)), 0, 2 * math.pi)
    return length


HEAD_LIKE = [
    Ellipse(200, 140, 90, 60, 0.0),
    Ellipse(400, 270, 210, 160, 0.3),
    Ellipse(150, 100, 70, 55, 1.2),
    Ellipse(300, 250, 120, 100, math.pi / 2),
    Ellipse(250, 200, 110, 80, 2.6),
]


# --------------------------------------------------------------------------- fitting


@pytest.mark.parametrize("truth", HEAD_LIKE, ids=lambda e: f"angle{e.angle:.2f}")
def test_fit_recovers_ellipse_from_its_points(truth: Ellipse) -> None:
    assert_same_ellipse(fit_ellipse(truth.points(360)), truth)


@pytest.mark.parametrize("truth", HEAD_LIKE[1:], ids=lambda e: f"angle{e.angle:.2f}")
def test_fit_recovers_ellipse_from_a_third_of_its_arc(truth: Ellipse) -> None:
    arc = truth.points(720)[:240]
    assert_same_ellipse(fit_ellipse(arc), truth, tol=1e-2)


def test_fit_tolerates_pixel_noise() -> None:
    truth = Ellipse(300, 200, 150, 110, 0.7)
    rng = np.random.default_rng(0)
    noisy = truth.points(2000) + rng.normal(0, 0.5, size=(2000, 2))
    found = fit_ellipse(noisy)
    assert_same_ellipse(found, truth, tol=0.2)
    assert found.perimeter == pytest.approx(truth.perimeter, rel=1e-3)


def test_fit_returns_ordered_axes_and_folded_angle() -> None:
    truth = Ellipse(100, 100, 60, 30, 2.0)
    found = fit_ellipse(truth.points(100))
    assert found.a >= found.b
    assert 0 <= found.angle < math.pi


@pytest.mark.parametrize("count", [0, 1, 5])
def test_fit_with_too_few_points_raises(count: int) -> None:
    points = Ellipse(50, 50, 20, 10, 0.0).points(count) if count else np.empty((0, 2))
    with pytest.raises(EllipseFitError, match=f"got {count}"):
        fit_ellipse(points)


def test_fit_of_identical_points_raises() -> None:
    with pytest.raises(EllipseFitError, match="degenerate"):
        fit_ellipse(np.ones((20, 2)))


def test_outline_points_are_x_then_y() -> None:
    image = np.zeros((10, 20), np.uint8)
    image[2, 15] = 255
    image[7, 3] = 1
    assert sorted(map(tuple, outline_points(image))) == [(3.0, 7.0), (15.0, 2.0)]


# --------------------------------------------------------------------------- conventions


def test_normalized_swaps_axes_and_turns_angle_by_a_quarter() -> None:
    e = Ellipse.normalized(1, 2, 30, 50, 0.25)
    assert (e.a, e.b) == (50, 30)
    assert e.angle == pytest.approx(0.25 + math.pi / 2)


@pytest.mark.parametrize("angle", [-0.5, math.pi, 7.0, -4.0])
def test_normalized_folds_angle_into_zero_to_pi(angle: float) -> None:
    e = Ellipse.normalized(0, 0, 5, 3, angle)
    assert 0 <= e.angle < math.pi
    assert angle_difference(e.angle, angle) < 1e-12


@pytest.mark.parametrize("angle", [0.0, 0.4, 1.3, 2.9])
def test_swapped_description_is_the_same_ellipse(angle: float) -> None:
    """(r1, r2, angle) and (r2, r1, angle + pi/2) draw identical outlines."""
    first = Ellipse.normalized(10, 20, 8, 5, angle)
    second = Ellipse.normalized(10, 20, 5, 8, angle + math.pi / 2)
    assert_same_ellipse(first, second, tol=1e-9)


def test_angle_turns_a_axis_from_x_towards_y() -> None:
    """With angle pi/4 the long axis ends at (+x, +y), i.e. down-right in an image."""
    e = Ellipse(0, 0, 10, 2, math.pi / 4)
    x, y = e.points(8)[0]  # t = 0 is the end of the a axis
    assert x == pytest.approx(10 / math.sqrt(2))
    assert y == pytest.approx(10 / math.sqrt(2))


@pytest.mark.parametrize(
    "values",
    [
        (0, 0, 3, 5, 0),
        (0, 0, 5, 0, 0),
        (0, 0, 5, -1, 0),
        (math.nan, 0, 5, 3, 0),
        (0, 0, 5, 3, math.inf),
    ],
)
def test_invalid_ellipse_is_rejected(values: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="not a valid ellipse"):
        Ellipse(*values)


def test_points_lie_on_the_ellipse() -> None:
    e = Ellipse(40, 30, 25, 12, 1.1)
    x, y = e.points(50).T
    cos, sin = math.cos(e.angle), math.sin(e.angle)
    u = (x - e.cx) * cos + (y - e.cy) * sin
    v = -(x - e.cx) * sin + (y - e.cy) * cos
    np.testing.assert_allclose((u / e.a) ** 2 + (v / e.b) ** 2, 1.0, atol=1e-12)


# --------------------------------------------------------------------------- perimeter


@pytest.mark.parametrize("radius", [1.0, 37.5, 250.0])
def test_perimeter_of_circle(radius: float) -> None:
    assert Ellipse(0, 0, radius, radius, 0).perimeter == pytest.approx(2 * math.pi * radius)


@pytest.mark.parametrize(("a", "b"), [(90, 60), (210, 160), (100, 99), (120, 70)])
def test_perimeter_matches_integration_for_head_shapes(a: float, b: float) -> None:
    assert Ellipse(0, 0, a, b, 0).perimeter == pytest.approx(integrated_perimeter(a, b), rel=1e-9)


def test_perimeter_stays_close_for_elongated_ellipse() -> None:
    """Ramanujan's formula is only approximate far from a circle: 1.2e-5 off at a/b = 10."""
    assert Ellipse(0, 0, 10, 1, 0).perimeter == pytest.approx(integrated_perimeter(10, 1), rel=5e-5)


def test_scaled_changes_units_but_not_angle() -> None:
    e = Ellipse(100, 50, 80, 60, 0.9)
    mm = e.scaled(0.15)
    assert (mm.cx, mm.cy, mm.a, mm.b) == pytest.approx((15, 7.5, 12, 9))
    assert mm.angle == e.angle
    assert mm.perimeter == pytest.approx(0.15 * e.perimeter)


# --------------------------------------------------------------------------- masks


@pytest.mark.parametrize("truth", HEAD_LIKE, ids=lambda e: f"angle{e.angle:.2f}")
def test_mask_area_is_close_to_pi_a_b(truth: Ellipse) -> None:
    mask = truth.to_mask((600, 900))
    assert mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 1}
    assert mask.sum() == pytest.approx(truth.area, rel=0.01)


def test_mask_is_clipped_when_ellipse_leaves_the_image() -> None:
    quarter_outside = Ellipse(0, 0, 100, 80, 0.0)
    mask = quarter_outside.to_mask((200, 300))
    assert mask.shape == (200, 300)
    assert mask.sum() == pytest.approx(quarter_outside.area / 4, rel=0.03)
    assert mask[0, 0] == 1
    assert mask[0, :].any()
    assert mask[:, 0].any()


def test_mask_of_ellipse_outside_the_image_is_empty() -> None:
    assert Ellipse(-500, -500, 100, 80, 0.3).to_mask((100, 100)).sum() == 0


def test_mask_uses_pixel_centres() -> None:
    """A circle of radius 1 at a pixel centre holds exactly that pixel and its 4 neighbours."""
    mask = Ellipse(2, 2, 1, 1, 0).to_mask((5, 5))
    expected = np.zeros((5, 5), np.uint8)
    expected[2, 1:4] = 1
    expected[1:4, 2] = 1
    np.testing.assert_array_equal(mask, expected)


# --------------------------------------------------------------------------- masks, independently


def cv2_filled(ellipse: Ellipse, shape: tuple[int, int]) -> np.ndarray:
    """The same ellipse filled by OpenCV's polygon rasteriser (1/16 px fixed point): an
    independent drawing with OpenCV's own rotation convention (degrees, +x towards +y)."""
    import cv2

    canvas = np.zeros(shape, np.uint8)
    scale = 16
    cv2.ellipse(
        canvas,
        (round(ellipse.cx * scale), round(ellipse.cy * scale)),
        (round(ellipse.a * scale), round(ellipse.b * scale)),
        math.degrees(ellipse.angle),
        0,
        360,
        1,
        -1,
        cv2.LINE_8,
        4,
    )
    return canvas


@pytest.mark.parametrize(
    "truth",
    [*HEAD_LIKE, Ellipse(310.4, 220.7, 160.3, 90.2, 0.45), Ellipse(280, 240, 200, 120, 2.75)],
    ids=lambda e: f"angle{e.angle:.2f}",
)
def test_mask_matches_an_opencv_drawing_of_the_same_ellipse(truth: Ellipse) -> None:
    """Differences are allowed only on the outline (the two rasterisers round edges
    differently), never a mirrored or turned ellipse, which differs over large areas."""
    shape = (600, 900)
    ours, theirs = truth.to_mask(shape), cv2_filled(truth, shape)
    differ = ours != theirs
    assert differ.sum() < truth.perimeter
    # every disagreeing pixel lies within one pixel of the true outline
    ys, xs = np.nonzero(differ)
    grown = Ellipse(truth.cx, truth.cy, truth.a + 1.5, truth.b + 1.5, truth.angle)
    shrunk = Ellipse(truth.cx, truth.cy, truth.a - 1.5, truth.b - 1.5, truth.angle)
    assert grown.contains(xs, ys).all() and not shrunk.contains(xs, ys).any()


def test_mask_of_a_rotated_ellipse_holds_its_axis_ends_and_not_their_mirror() -> None:
    """Long axis along 30 degrees (down-right in an image): the axis ends are head, the
    mirrored points (long axis up-right) are not."""
    e = Ellipse(200, 200, 100, 20, math.radians(30))
    mask = e.to_mask((400, 400))
    c, s = math.cos(e.angle), math.sin(e.angle)
    for r in (-90, -50, 50, 90):  # along the long axis
        assert mask[round(200 + r * s), round(200 + r * c)] == 1
        assert mask[round(200 - r * s), round(200 + r * c)] == 0  # mirrored across y


# --------------------------------------------------------------------------- mutation survivors
# Tests added after mutation testing (docs/mutation.md): each kills a mutant that survived.


def test_fit_of_exactly_six_points_recovers_the_ellipse() -> None:
    """Five parameters, so six points on an ellipse are enough (and are accepted)."""
    truth = Ellipse(50, 40, 30, 20, 0.7)
    assert_same_ellipse(fit_ellipse(truth.points(6)), truth)


def test_fit_of_a_sub_pixel_ellipse_is_not_called_degenerate() -> None:
    """Axes below one pixel are small, not degenerate: only zero or non-finite axes are."""
    truth = Ellipse(5, 5, 0.4, 0.3, 0.2)
    assert_same_ellipse(fit_ellipse(truth.points(20)), truth, tol=1e-4)


@pytest.mark.parametrize(
    "axes", [(5.0, 0.0), (0.0, 5.0), (math.inf, 5.0), (5.0, math.nan)], ids=str
)
def test_fit_with_a_zero_or_non_finite_axis_is_a_fit_error(monkeypatch, axes) -> None:
    """Whatever OpenCV returns for a degenerate outline, callers get EllipseFitError (which
    biometry turns into "not measurable"), not the ValueError of an invalid Ellipse."""
    import cv2

    monkeypatch.setattr(cv2, "fitEllipseDirect", lambda points: ((10.0, 10.0), axes, 0.0))
    with pytest.raises(EllipseFitError, match="degenerate"):
        fit_ellipse(Ellipse(50, 40, 30, 20, 0.7).points(20))


@pytest.mark.parametrize("n", [4, 7, 360])
def test_points_go_once_round_the_outline_at_equal_steps(n: int) -> None:
    """On a circle of radius r the n points are its n-th roots of unity: consecutive points
    (the last one followed by the first) are 2 r sin(pi / n) apart, and none repeats."""
    r = 10.0
    points = Ellipse(3, 4, r, r, 0.0).points(n)
    steps = np.linalg.norm(np.roll(points, -1, axis=0) - points, axis=1)
    np.testing.assert_allclose(steps, 2 * r * math.sin(math.pi / n), rtol=1e-12)
    np.testing.assert_allclose(points[0], (3 + r, 4), atol=1e-12)


@pytest.mark.parametrize(
    ("slope", "intercept"), [(0.0, 10.0), (1.0, 0.5), (0.3, 1.7), (-2.5, 400.0)], ids=str
)
def test_fit_of_collinear_points_is_a_fit_error(slope: float, intercept: float) -> None:
    """Before, OpenCV's needle came back as an "ellipse" (50 points on y = 10 over 49 px:
    a = 19.4, b = 0.05). Points on one line fit no ellipse."""
    x = np.linspace(0.0, 49.0, 50)
    with pytest.raises(EllipseFitError, match="one straight line"):
        fit_ellipse(np.stack([x, slope * x + intercept], axis=1))
    vertical = np.stack([np.full(30, 7.0), np.arange(30.0)], axis=1)
    with pytest.raises(EllipseFitError, match="one straight line"):
        fit_ellipse(vertical)


def test_a_thin_ellipse_is_not_called_collinear() -> None:
    """Flat is not degenerate: 200 px long, 1 px wide still fits."""
    truth = Ellipse(100, 50, 100, 0.5, 0.3)
    assert_same_ellipse(fit_ellipse(truth.points(360)), truth, tol=1e-3)


def _band(height: int, width: int, rows: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[:rows] = 1
    return mask


def _corner(height: int, width: int, n: int) -> np.ndarray:
    y, x = np.ogrid[:height, :width]
    return ((x + y) <= n).astype(np.uint8)


@pytest.mark.parametrize(
    "mask",
    [_band(540, 800, 2), _band(540, 800, 20), _band(800, 540, 3), _corner(540, 800, 300)],
    ids=["band-2", "band-20", "band-portrait", "corner"],
)
def test_masks_whose_outline_is_a_straight_line_stay_not_measurable(mask: np.ndarray) -> None:
    """The masks that reach fit_ellipse with collinear points (a band across the whole image,
    a corner triangle: the image border removes the rest of the outline) were refused
    before by the ellipse-fit Dice (0.0-0.4, under 0.8), now by the fit. measure_head,
    which the study scores, gives the same result: not measurable, no ellipse."""
    from fetalft.biometry import boundary_points, largest_component, measure_head

    points = boundary_points(largest_component(mask))
    assert len(points) > 100
    with pytest.raises(EllipseFitError, match="one straight line"):
        fit_ellipse(points)
    result = measure_head(mask, 0.15)
    assert not result.measurable and result.ellipse_px is None

"""Ellipses: fitting them to points, drawing them, and measuring their perimeter.

The head circumference in HC18 is the perimeter of an ellipse fitted to the skull outline,
so one small, exact ellipse type serves the annotations (outline to filled mask), the
predictions (mask to ellipse) and the challenge submission (ellipse in millimetres).

Convention, used everywhere in fetalft and in the submission file: image coordinates with x
to the right and y down, pixel centres at integer coordinates; ``a >= b`` are the semi-axes;
``angle`` (radians, in [0, pi)) turns the ``a`` axis from +x towards +y. A point at parameter t
is ``(cx + a cos t cos angle - b sin t sin angle, cy + a cos t sin angle + b sin t cos angle)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

#: Fewer points than this cannot pin down an ellipse's five parameters robustly.
MIN_FIT_POINTS = 6


class EllipseFitError(ValueError):
    """No ellipse can be fitted (too few or degenerate points)."""


@dataclass(frozen=True)
class Ellipse:
    cx: float
    cy: float
    a: float
    b: float
    angle: float

    def __post_init__(self) -> None:
        values = (self.cx, self.cy, self.a, self.b, self.angle)
        if not all(math.isfinite(v) for v in values) or self.b <= 0 or self.a < self.b:
            raise ValueError(f"not a valid ellipse (need finite values and a >= b > 0): {self}")

    @classmethod
    def normalized(cls, cx: float, cy: float, r1: float, r2: float, angle: float) -> Ellipse:
        """Build from semi-axes in any order and any angle: sorts axes, folds angle to [0, pi)."""
        if r1 < r2:
            r1, r2, angle = r2, r1, angle + math.pi / 2
        return cls(float(cx), float(cy), float(r1), float(r2), float(angle % math.pi))

    @property
    def perimeter(self) -> float:
        """Ramanujan's second approximation (relative error below 1e-9 for HC18's shapes)."""
        a, b = self.a, self.b
        h = ((a - b) / (a + b)) ** 2
        return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))

    @property
    def area(self) -> float:
        return math.pi * self.a * self.b

    def scaled(self, factor: float) -> Ellipse:
        """The same ellipse in other units, e.g. ``scaled(pixel_size_mm)`` gives millimetres."""
        return Ellipse(
            self.cx * factor, self.cy * factor, self.a * factor, self.b * factor, self.angle
        )

    def points(self, n: int = 720) -> np.ndarray:
        """``n`` points along the outline as an ``(n, 2)`` array of (x, y)."""
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        x = self.cx + self.a * np.cos(t) * cos - self.b * np.sin(t) * sin
        y = self.cy + self.a * np.cos(t) * sin + self.b * np.sin(t) * cos
        return np.stack([x, y], axis=1)

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether points (x, y) lie inside or on the ellipse."""
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        u = (x - self.cx) * cos + (y - self.cy) * sin
        v = -(x - self.cx) * sin + (y - self.cy) * cos
        return (u / self.a) ** 2 + (v / self.b) ** 2 <= 1.0

    def to_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """Filled ``(H, W)`` uint8 mask (0/1) of the pixels whose centres lie inside.

        Computed analytically rather than with a polygon fill, so an ellipse that leaves the
        image is simply clipped and the mask is exact to the pixel centre.
        """
        height, width = shape
        y, x = np.ogrid[:height, :width]
        return self.contains(x.astype(np.float64), y.astype(np.float64)).astype(np.uint8)


def fit_ellipse(points: np.ndarray) -> Ellipse:
    """Least-squares ellipse through ``(N, 2)`` (x, y) points (Fitzgibbon's direct method).

    OpenCV's direct fit always returns an ellipse, never a hyperbola, and reproduces the
    HC18 reference head circumferences within 0.05 mm from the annotation outlines.
    Points on one straight line raise :class:`EllipseFitError`: OpenCV would return a
    needle whose length and width mean nothing.
    """
    given = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    points = given.astype(np.float32)
    if len(points) < MIN_FIT_POINTS:
        raise EllipseFitError(
            f"need at least {MIN_FIT_POINTS} points to fit an ellipse, got {len(points)}"
        )
    # The spread of the points along their main axis and across it: none across means one
    # straight line, where OpenCV returns a needle of arbitrary length and a width of noise.
    along, across = np.linalg.svd(given - given.mean(axis=0), compute_uv=False)[:2]
    if not across > 1e-9 * along:
        raise EllipseFitError(
            f"points are degenerate: all {len(points)} lie on one straight line, which no "
            "ellipse fits"
        )
    (cx, cy), (width, height), angle_deg = cv2.fitEllipseDirect(points)
    if not (width > 0 and height > 0 and math.isfinite(width * height)):
        raise EllipseFitError(f"points are degenerate (fitted axes {width:.3g} x {height:.3g})")
    # OpenCV's RotatedRect: `width` lies along `angle_deg`, turning from +x towards +y.
    return Ellipse.normalized(cx, cy, width / 2, height / 2, math.radians(angle_deg))


def outline_points(outline: np.ndarray) -> np.ndarray:
    """(x, y) coordinates of the nonzero pixels of an outline image."""
    ys, xs = np.nonzero(outline)
    return np.stack([xs, ys], axis=1).astype(np.float64)

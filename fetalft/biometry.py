"""From a segmentation to the clinical numbers: ellipse, head circumference, gestational age.

Sonographers measure the head circumference (HC) by placing an ellipse on the skull; HC18's
reference values are perimeters of such ellipses. fetalft does the same with a network's
mask: keep the largest blob, fit an ellipse to its boundary at the original image
resolution, and convert to millimetres with the image's pixel size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage
from skimage import measure

from fetalft.ellipse import MIN_FIT_POINTS, Ellipse, EllipseFitError, fit_ellipse, outline_points

#: A "head" smaller than this fraction of the image is noise, not a measurable skull.
MIN_HEAD_FRACTION = 0.002
#: The fitted ellipse must overlap the blob it was fitted to at least this well (Dice);
#: below it the blob is not head-shaped and any circumference would be invented.
MIN_ELLIPSE_AGREEMENT = 0.8
#: At least this fraction of the fitted outline must lie in the image: a head mostly out of
#: view would be measured by extrapolation.
MIN_VISIBLE_OUTLINE = 0.5
#: An annotation ellipse thinner than this (semi-minor axis, pixels) is a line, not a head.
MIN_SEMI_AXIS_PX = 3.0


class AnnotationError(ValueError):
    """An HC18 annotation holds no usable ellipse outline."""


def ellipse_from_outline(outline: np.ndarray, source: str = "annotation") -> Ellipse:
    """The ellipse drawn as a thin outline in an HC18 annotation image.

    Fitting the outline pixels (rather than filling the closed curve) also recovers the four
    HC18 ellipses that leave the image (186_HC, 346_HC, 628_2HC, 787_HC), whose outlines
    are not closed.
    """
    points = outline_points(outline > 0)
    if len(points) < MIN_FIT_POINTS:
        raise AnnotationError(
            f"{source} has {len(points)} outline pixels, too few for an ellipse; "
            "expected a thin white ellipse on black. Check that this is an HC18 annotation."
        )
    try:
        ellipse = fit_ellipse(points)
    except EllipseFitError as error:
        raise AnnotationError(f"{source}: {error}; the outline is not an ellipse.") from error
    if ellipse.b < MIN_SEMI_AXIS_PX:
        raise AnnotationError(
            f"{source}: the outline fits an ellipse only {2 * ellipse.b:.1f} pixels wide; "
            "expected a head outline. Check that this is an HC18 annotation."
        )
    return ellipse


def mask_from_outline(outline: np.ndarray, source: str = "annotation") -> np.ndarray:
    """Filled 0/1 head mask of an annotation, the same size as the annotation."""
    return ellipse_from_outline(outline, source).to_mask(outline.shape[:2])


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected foreground blob of a binary mask, as a 0/1 uint8 array."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        (mask > 0).astype(np.uint8), connectivity=8
    )
    if count <= 1:
        return np.zeros(mask.shape, np.uint8)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == biggest).astype(np.uint8)


def boundary_points(blob: np.ndarray) -> np.ndarray:
    """Sub-pixel outline of a blob, leaving out where the image border cuts it.

    The outline is traced at level 0.5 between pixel centres (marching squares), where the
    mask's edge really is: fitting the centres of the edge pixels instead would put the
    ellipse half a pixel inside and bias every head circumference low (by ~0.4 mm on HC18).
    Holes are filled first, so only the outer boundary counts. Where the skull leaves the
    image, the contour simply stops at the border, so the cut is never mistaken for skull.
    """
    filled = ndimage.binary_fill_holes(blob > 0)
    contours = measure.find_contours(filled.astype(np.float32), 0.5)
    if not contours:
        return np.empty((0, 2))
    points = np.concatenate(contours)[:, ::-1].astype(np.float64)  # (row, col) -> (x, y)
    height, width = blob.shape
    inside = (
        (points[:, 0] > 0)
        & (points[:, 0] < width - 1)
        & (points[:, 1] > 0)
        & (points[:, 1] < height - 1)
    )
    return points[inside]


def hadlock_ga_weeks(hc_mm: float) -> float:
    """Gestational age in weeks from HC (Hadlock et al. 1984: 8.96 + 0.540 HC + 0.0003 HC^3, HC in cm)."""
    hc_cm = hc_mm / 10
    return 8.96 + 0.540 * hc_cm + 0.0003 * hc_cm**3


@dataclass(frozen=True)
class Measurement:
    """A head measurement, or the reason there is none (``measurable`` is False)."""

    measurable: bool
    ellipse_px: Ellipse | None = None
    pixel_size_mm: float | None = None
    reason: str = ""

    @property
    def ellipse_mm(self) -> Ellipse | None:
        return self.ellipse_px.scaled(self.pixel_size_mm) if self.ellipse_px else None

    @property
    def hc_mm(self) -> float:
        """Head circumference in mm; NaN when not measurable (never an invented number)."""
        return self.ellipse_mm.perimeter if self.ellipse_px else math.nan

    @property
    def ga_weeks(self) -> float:
        return hadlock_ga_weeks(self.hc_mm) if self.measurable else math.nan

    def __str__(self) -> str:
        if not self.measurable:
            return f"not measurable: {self.reason}"
        return f"HC {self.hc_mm:.1f} mm, gestational age {self.ga_weeks:.1f} weeks (Hadlock)"


def measure_head(mask: np.ndarray, pixel_size_mm: float) -> Measurement:
    """Fit the head ellipse to a binary mask (original resolution) and measure it.

    ``mask`` is anything where ``> 0`` means head (a 0/1 mask, or logits thresholded by
    the caller). Returns a not-measurable result when no plausible head is present.
    """
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    if not (pixel_size_mm > 0 and math.isfinite(pixel_size_mm)):
        raise ValueError(f"pixel size must be a positive number of mm, got {pixel_size_mm!r}")
    blob = largest_component(mask)
    area = int(blob.sum())
    if area < MIN_HEAD_FRACTION * mask.size:
        return Measurement(False, reason=f"no head found (largest blob {area} pixels)")
    points = boundary_points(blob)
    try:
        ellipse = fit_ellipse(points)
    except EllipseFitError as error:
        return Measurement(False, reason=f"boundary is not elliptical ({error})")
    height, width = mask.shape
    x, y = ellipse.points(360).T
    visible = np.mean((x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1))
    if visible < MIN_VISIBLE_OUTLINE:
        return Measurement(
            False, reason=f"only {visible:.0%} of the fitted head outline is in the image"
        )
    fitted = ellipse.to_mask(mask.shape)
    agreement = 2 * np.count_nonzero(fitted & blob) / (np.count_nonzero(fitted) + area)
    if agreement < MIN_ELLIPSE_AGREEMENT:
        return Measurement(
            False, reason=f"mask is not elliptical (ellipse fit Dice {agreement:.2f})"
        )
    return Measurement(True, ellipse, float(pixel_size_mm))

"""The HC18 challenge submission file: one fitted ellipse per test image, in millimetres.

Format (hc18.grand-challenge.org): a CSV with header
``filename,center_x_mm,center_y_mm,semi_axes_a_mm,semi_axes_b_mm,angle_rad`` and one row for
each of the 335 test images. Centre and semi-axes are in mm (pixels times the image's pixel
size), the angle in radians, with fetalft's ellipse convention (see :mod:`fetalft.ellipse`):
image axes, x right and y down, angle turning the ``a`` axis from +x towards +y.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from fetalft import hc18
from fetalft.biometry import Measurement
from fetalft.ellipse import Ellipse
from fetalft.io import write_csv_atomic

COLUMNS = (
    "filename",
    "center_x_mm",
    "center_y_mm",
    "semi_axes_a_mm",
    "semi_axes_b_mm",
    "angle_rad",
)


class SubmissionError(ValueError):
    """A submission file that the challenge would reject."""


def submission_table(measurements: Mapping[str, Measurement]) -> pd.DataFrame:
    """Rows for ``{filename: measurement}``; an unmeasurable image is an error, not a blank row.

    The challenge needs an ellipse for every image, so the caller must decide what to submit
    for a failed image rather than have a made-up ellipse slip in.
    """
    failed = [name for name, m in measurements.items() if not m.measurable]
    if failed:
        raise SubmissionError(
            f"{len(failed)} images have no measurable head ({', '.join(failed[:5])}); "
            "the submission needs an ellipse for every image."
        )
    rows = []
    for filename, m in measurements.items():
        e = m.ellipse_mm
        rows.append((filename, e.cx, e.cy, e.a, e.b, e.angle))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def fallback_ellipse_mm(
    image_shape: tuple[int, int], pixel_size_mm: float, hc_mm: float
) -> Ellipse:
    """A stand-in for an image where no plausible head was found: a circle of perimeter
    ``hc_mm`` at the image centre. Used only so the file has a row; counted and reported."""
    height, width = image_shape
    radius = hc_mm / (2 * math.pi)
    return Ellipse(
        (width - 1) / 2 * pixel_size_mm, (height - 1) / 2 * pixel_size_mm, radius, radius, 0.0
    )


def submission_with_fallback(
    measured: Mapping[str, tuple[Measurement, tuple[int, int]]],
    records: Sequence[hc18.Record],
    fallback_hc_mm: float,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The submission table for :func:`fetalft.predict.predict_test_set`'s output.

    The challenge needs an ellipse for every image; where the model measured no plausible
    head, the row holds :func:`fallback_ellipse_mm`, and the second value maps that file
    name to the reason (why the measurement was refused).
    """
    pixel_sizes = {r.image_path.name: r.pixel_size_mm for r in records}
    fixed, fallbacks = {}, {}
    for filename, (measurement, shape) in measured.items():
        if not measurement.measurable:
            fallbacks[filename] = measurement.reason
            pixel = pixel_sizes[filename]
            ellipse_mm = fallback_ellipse_mm(shape, pixel, fallback_hc_mm)
            measurement = Measurement(True, ellipse_mm.scaled(1 / pixel), pixel)
        fixed[filename] = measurement
    return submission_table(fixed), fallbacks


def fallbacks_path(path: str | os.PathLike) -> Path:
    """Where :func:`write_fallbacks` lists the fallback rows of the submission at ``path``:
    beside it, ``submission.csv`` -> ``submission.fallbacks.csv``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.fallbacks.csv")


def write_fallbacks(path: str | os.PathLike, fallbacks: Mapping[str, str]) -> Path:
    """List the images of the submission at ``path`` whose row is the fallback circle, with
    the reason each measurement was refused, beside it (:func:`fallbacks_path`).

    Why a second file: the challenge's CSV has no column to say which rows were measured, so
    without this list a reader of a committed submission cannot tell a made-up circle from a
    head. Written every time, empty when every head was measured, so that an old list never
    stays beside a new submission."""
    table = pd.DataFrame(list(fallbacks.items()), columns=["filename", "reason"])
    return write_csv_atomic(fallbacks_path(path), table)


def check_submission(table: pd.DataFrame, expected_files: Sequence[str] | None = None) -> None:
    """Raise :class:`SubmissionError` naming the problem if ``table`` is not a valid submission."""
    if tuple(table.columns) != COLUMNS:
        raise SubmissionError(f"columns are {list(table.columns)}; expected {list(COLUMNS)}")
    if table["filename"].duplicated().any():
        dupes = table.loc[table["filename"].duplicated(), "filename"].tolist()
        raise SubmissionError(f"duplicate rows for {dupes[:5]}")
    if expected_files is not None:
        missing = sorted(set(expected_files) - set(table["filename"]))
        extra = sorted(set(table["filename"]) - set(expected_files))
        if missing or extra:
            raise SubmissionError(f"missing rows for {missing[:5]}; unexpected rows {extra[:5]}")
    numbers = table[list(COLUMNS[1:])]
    if not numbers.map(lambda v: isinstance(v, int | float) and math.isfinite(v)).all().all():
        raise SubmissionError("every centre, semi-axis and angle must be a finite number")
    if (table["semi_axes_a_mm"] <= 0).any() or (table["semi_axes_b_mm"] <= 0).any():
        raise SubmissionError("semi-axes must be positive")
    if ((table["angle_rad"] < 0) | (table["angle_rad"] >= math.pi + 1e-9)).any():
        raise SubmissionError("angles must lie in [0, pi) radians")


def write_submission(
    path: str | os.PathLike, table: pd.DataFrame, expected_files: Sequence[str] | None = None
) -> Path:
    """Check, then write atomically."""
    check_submission(table, expected_files)
    # Six decimals would print an angle within 5e-7 of pi as 3.141593 > pi: write 0, the same axis.
    table = table.assign(
        angle_rad=table["angle_rad"].where(table["angle_rad"].round(6) < math.pi, 0.0)
    )
    return write_csv_atomic(path, table, float_format="%.6f")


def read_submission(path: str | os.PathLike) -> pd.DataFrame:
    return pd.read_csv(path)


def ellipse_from_row(row: Mapping, pixel_size_mm: float) -> Ellipse:
    """A submission row back to an ellipse in pixels (for redrawing over the image)."""
    return Ellipse(
        row["center_x_mm"],
        row["center_y_mm"],
        row["semi_axes_a_mm"],
        row["semi_axes_b_mm"],
        row["angle_rad"],
    ).scaled(1 / pixel_size_mm)

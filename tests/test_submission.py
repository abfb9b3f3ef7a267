"""fetalft.submission: the HC18 challenge CSV, its checks, and its angle convention."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from fetalft import hc18
from fetalft.biometry import Measurement, ellipse_from_outline
from fetalft.ellipse import Ellipse
from fetalft.submission import (
    COLUMNS,
    SubmissionError,
    check_submission,
    ellipse_from_row,
    read_submission,
    submission_table,
    write_submission,
)
from fetalft.synthetic import draw_outline

HEADER = "filename,center_x_mm,center_y_mm,semi_axes_a_mm,semi_axes_b_mm,angle_rad"
ELLIPSES = {
    "000_HC.png": (Ellipse(400, 270, 200, 150, 0.3), 0.12),
    "001_HC.png": (Ellipse(380, 250, 180, 140, 2.5), 0.2),
    "001_2HC.png": (Ellipse(420, 280, 150, 120, 0.0), 0.0691),
}


def measurements() -> dict[str, Measurement]:
    return {name: Measurement(True, e, px) for name, (e, px) in ELLIPSES.items()}


def valid_table() -> pd.DataFrame:
    return submission_table(measurements())


def with_value(column: str, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(table: pd.DataFrame) -> pd.DataFrame:
        table = table.astype({column: object}) if isinstance(value, str) else table
        table.loc[1, column] = value
        return table

    return change


# --------------------------------------------------------------------------- writing


def test_table_is_in_millimetres() -> None:
    table = valid_table()
    assert tuple(table.columns) == COLUMNS
    row = table.iloc[0]
    assert row["center_x_mm"] == pytest.approx(400 * 0.12)
    assert row["semi_axes_a_mm"] == pytest.approx(200 * 0.12)
    assert row["semi_axes_b_mm"] == pytest.approx(150 * 0.12)
    assert row["angle_rad"] == pytest.approx(0.3)


def test_writer_round_trip(tmp_path: Path) -> None:
    path = write_submission(tmp_path / "submission.csv", valid_table(), list(ELLIPSES))
    assert path.read_text().splitlines()[0] == HEADER
    back = read_submission(path)
    check_submission(back, list(ELLIPSES))
    pd.testing.assert_frame_equal(back, valid_table(), check_dtype=False, atol=1e-6)
    for row in back.to_dict("records"):
        truth, pixel_size = ELLIPSES[row["filename"]]
        again = ellipse_from_row(row, pixel_size)
        assert (again.cx, again.cy, again.a, again.b) == pytest.approx(
            (truth.cx, truth.cy, truth.a, truth.b), abs=1e-4
        )
        assert again.angle == pytest.approx(truth.angle, abs=1e-6)


def test_angle_just_below_pi_stays_below_pi_in_the_file(tmp_path: Path) -> None:
    """OpenCV gives float32 degrees: 89.99999 deg on the short axis becomes pi - 1.3e-7 rad,
    which six decimals would print as 3.141593 > pi. The file must still pass its check."""
    almost_vertical = math.radians(float(np.nextafter(np.float32(90), np.float32(0))))
    ellipse = Ellipse.normalized(400, 270, 150, 200, almost_vertical)
    assert math.pi - ellipse.angle < 5e-7
    table = submission_table({"000_HC.png": Measurement(True, ellipse, 0.1)})
    back = read_submission(write_submission(tmp_path / "s.csv", table))
    check_submission(back)
    turn = ellipse_from_row(back.iloc[0], 0.1).angle - ellipse.angle
    assert abs(math.sin(turn)) < 1e-6  # the same axis direction (angles are modulo pi)


def test_unmeasurable_image_is_an_error() -> None:
    cases = measurements() | {"002_HC.png": Measurement(False, reason="no head found")}
    with pytest.raises(SubmissionError, match=r"1 images .*002_HC\.png"):
        submission_table(cases)


def test_invalid_table_is_not_written(tmp_path: Path) -> None:
    table = with_value("angle_rad", -1.0)(valid_table())
    with pytest.raises(SubmissionError):
        write_submission(tmp_path / "submission.csv", table)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- checks


FINITE = r"^every centre, semi-axis and angle must be a finite number$"
POSITIVE = r"^semi-axes must be positive$"
ANGLE = r"^angles must lie in \[0, pi\) radians$"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.rename(columns={"angle_rad": "angle_deg"}), "columns"),
        (lambda t: t[[COLUMNS[0], *COLUMNS[2:], COLUMNS[1]]], "columns"),
        (lambda t: pd.concat([t, t.iloc[[0]]], ignore_index=True), "duplicate.*000_HC.png"),
        (with_value("center_x_mm", math.nan), FINITE),
        (with_value("center_y_mm", math.inf), FINITE),
        (with_value("semi_axes_b_mm", "wide"), FINITE),
        (with_value("semi_axes_a_mm", 0.0), POSITIVE),
        (with_value("semi_axes_b_mm", 0.0), POSITIVE),
        (with_value("semi_axes_b_mm", -2.0), POSITIVE),
        (with_value("angle_rad", -0.1), ANGLE),
        (with_value("angle_rad", 3.2), ANGLE),
        (with_value("angle_rad", 180.0), ANGLE),
    ],
    ids=[
        "renamed_column",
        "reordered_columns",
        "duplicate",
        "nan",
        "inf",
        "text",
        "zero_axis",
        "zero_b_axis",
        "negative_axis",
        "negative_angle",
        "angle_above_pi",
        "angle_in_degrees",
    ],
)
def test_check_submission_rejects(
    change: Callable[[pd.DataFrame], pd.DataFrame], message: str
) -> None:
    with pytest.raises(SubmissionError, match=message):
        check_submission(change(valid_table()))


def test_check_submission_accepts_valid_table() -> None:
    check_submission(valid_table(), list(ELLIPSES))


def test_check_submission_rejects_missing_files() -> None:
    with pytest.raises(SubmissionError, match=r"missing rows for \['002_HC.png'\]"):
        check_submission(valid_table(), [*ELLIPSES, "002_HC.png"])


def test_check_submission_rejects_extra_files() -> None:
    with pytest.raises(SubmissionError, match=r"unexpected rows \['001_2HC.png'\]"):
        check_submission(valid_table(), ["000_HC.png", "001_HC.png"])


# --------------------------------------------------------------------------- angle convention


def mean_distance_to_outline(annotation: np.ndarray, ellipse: Ellipse) -> float:
    """Mean distance (px) from the annotation's pixels to ``ellipse`` redrawn like HC18's."""
    redrawn = draw_outline(ellipse, annotation.shape)
    distance = cv2.distanceTransform((redrawn == 0).astype(np.uint8), cv2.DIST_L2, 5)
    return float(distance[annotation > 0].mean())


def mirrored_angle(ellipse: Ellipse) -> Ellipse:
    """The same ellipse read with the other common convention (angle towards -y)."""
    return Ellipse(ellipse.cx, ellipse.cy, ellipse.a, ellipse.b, (-ellipse.angle) % math.pi)


def clearly_rotated(ellipse: Ellipse) -> bool:
    """Far enough from axis-aligned (or round) that mirroring moves the outline > 5 px."""
    return abs(math.sin(2 * ellipse.angle)) * (ellipse.a - ellipse.b) > 5


def check_angle_convention(records: Sequence[hc18.Record], tmp_path: Path) -> int:
    """Annotation -> fitted ellipse -> submission CSV (mm) -> ellipse (px) -> redrawn outline.

    Asserts the redrawn outline lies on every annotation, and that mirroring the angle misses
    every clearly rotated one. Returns how many were clearly rotated.
    """
    annotations = {f"{r.name}.png": hc18.read_gray(r.annotation_path) for r in records}
    pixel_sizes = {f"{r.name}.png": r.pixel_size_mm for r in records}
    fitted = {
        name: Measurement(True, ellipse_from_outline(outline, name), pixel_sizes[name])
        for name, outline in annotations.items()
    }
    path = write_submission(tmp_path / "submission.csv", submission_table(fitted), list(fitted))
    rotated = 0
    for row in read_submission(path).to_dict("records"):
        name = row["filename"]
        ellipse = ellipse_from_row(row, pixel_sizes[name])
        assert mean_distance_to_outline(annotations[name], ellipse) < 1.0, name
        if clearly_rotated(ellipse):
            rotated += 1
            assert mean_distance_to_outline(annotations[name], mirrored_angle(ellipse)) > 1.0, name
    return rotated


def test_angle_convention_on_synthetic_annotations(synthetic_hc18: Path, tmp_path: Path) -> None:
    records = hc18.load_records("training", synthetic_hc18)
    assert check_angle_convention(records, tmp_path) >= 5


@pytest.mark.realdata
def test_angle_convention_on_real_annotations(real_hc18: Path, tmp_path: Path) -> None:
    records = hc18.load_records("training", real_hc18)[::25]  # 40 images, heads in all poses
    assert len(records) == 40
    assert check_angle_convention(records, tmp_path) >= 10


def test_fallback_rows_are_centred_circles_of_the_given_hc_with_their_reason(
    synthetic_hc18: Path,
) -> None:
    """One measured head is submitted as measured; a refused one becomes a centred circle
    whose perimeter is the fallback HC, and its reason is returned beside the table."""
    from fetalft.submission import submission_with_fallback

    records = hc18.load_records("test", synthetic_hc18)[:2]
    pixel = [r.pixel_size_mm for r in records]
    head = Ellipse(200, 130, 90, 70, 0.4)
    refused = Measurement(False, head, pixel[1], "the ellipse covers 0.1% of the image")
    measured = {
        records[0].image_path.name: (Measurement(True, head, pixel[0]), (270, 400)),
        records[1].image_path.name: (refused, (270, 400)),
    }
    table, fallbacks = submission_with_fallback(measured, records, fallback_hc_mm=150.0)
    assert fallbacks == {records[1].image_path.name: "the ellipse covers 0.1% of the image"}
    kept, circle = table.iloc[0], table.iloc[1]
    assert kept["semi_axes_a_mm"] == pytest.approx(90 * pixel[0])
    assert circle["semi_axes_a_mm"] == circle["semi_axes_b_mm"]
    assert 2 * math.pi * circle["semi_axes_a_mm"] == pytest.approx(150.0)
    assert circle["center_x_mm"] == pytest.approx(199.5 * pixel[1])  # (400 - 1) / 2 pixels
    assert circle["center_y_mm"] == pytest.approx(134.5 * pixel[1])


# --------------------------------------------------------------------------- mutation survivors
# Tests added after mutation testing (docs/mutation.md): each kills a mutant that survived.


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("semi_axes_a_mm", 0.5),  # positive is positive, however small
        ("semi_axes_b_mm", 0.5),
        ("angle_rad", math.pi - 1e-12),  # below pi is inside [0, pi)
        ("angle_rad", 0.0),
    ],
)
def test_check_submission_accepts_values_at_the_edge_of_the_rules(
    column: str, value: float
) -> None:
    check_submission(with_value(column, value)(valid_table()), list(ELLIPSES))


def test_write_submission_refuses_a_table_missing_an_expected_file(tmp_path: Path) -> None:
    with pytest.raises(SubmissionError, match=r"missing rows for \['002_HC.png'\]"):
        write_submission(tmp_path / "s.csv", valid_table(), [*ELLIPSES, "002_HC.png"])
    assert list(tmp_path.iterdir()) == []


def test_the_file_writes_every_number_with_six_decimals(tmp_path: Path) -> None:
    """Micrometres in mm and microradians: enough for the challenge, and the precision that
    write_submission's angle-below-pi rounding assumes."""
    table = valid_table().assign(center_x_mm=[1 / 3, 2.0, 12.3456789])
    lines = write_submission(tmp_path / "s.csv", table).read_text().splitlines()
    for line in lines[1:]:
        for number in line.split(",")[1:]:
            assert re.fullmatch(r"\d+\.\d{6}", number), line
    assert lines[1].split(",")[1] == "0.333333"


def test_error_messages_name_at_most_five_files() -> None:
    names = [f"{i:03d}_HC.png" for i in range(7)]
    table = submission_table(
        {name: Measurement(True, Ellipse(40, 30, 20, 10, 0.5), 0.1) for name in names}
    )
    with pytest.raises(SubmissionError, match=re.escape(f"missing rows for {names[:5]};")):
        check_submission(table.iloc[:0], names)
    with pytest.raises(SubmissionError, match=re.escape(f"unexpected rows {names[:5]}")):
        check_submission(table, [])
    doubled = pd.concat([table, table], ignore_index=True)
    with pytest.raises(SubmissionError, match=re.escape(f"duplicate rows for {names[:5]}")):
        check_submission(doubled)
    refused = {name: Measurement(False, reason="no head") for name in names}
    with pytest.raises(SubmissionError) as info:
        submission_table(refused)
    assert str(info.value) == (
        f"7 images have no measurable head ({', '.join(names[:5])}); "
        "the submission needs an ellipse for every image."
    )

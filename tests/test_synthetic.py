"""fetalft.synthetic: the look-alike data's reference numbers, checked against formulas."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import quad

from fetalft import hc18
from fetalft.biometry import ellipse_from_outline
from fetalft.synthetic import _names, synthetic_scan, write_synthetic_hc18


def arc_length_mm(a_px: float, b_px: float, pixel_size_mm: float) -> float:
    """Perimeter of an ellipse by integrating |d(point)/dt| over t (not Ramanujan's formula)."""
    a, b = a_px * pixel_size_mm, b_px * pixel_size_mm
    length, _ = quad(lambda t: math.hypot(a * math.sin(t), b * math.cos(t)), 0, 2 * math.pi)
    return length


@pytest.mark.parametrize("seed", range(5))
def test_synthetic_hc_is_the_arc_length_of_its_ellipse(seed: int) -> None:
    scan = synthetic_scan(np.random.default_rng(seed))
    e = scan.ellipse
    assert scan.hc_mm == pytest.approx(arc_length_mm(e.a, e.b, scan.pixel_size_mm), abs=1e-6)
    # head-like and HC18-like: 50 to 350 mm, pixel sizes 0.08 to 0.25 mm
    assert 0.08 <= scan.pixel_size_mm <= 0.25
    assert 1.1 <= e.a / e.b <= 1.4 + 1e-12


def test_synthetic_csv_holds_each_scans_arc_length(tmp_path: Path) -> None:
    """Regenerate the scans from the seed and compare the CSV's HC with the integral."""
    root = write_synthetic_hc18(tmp_path / "hc18", n_train=10, n_test=2, seed=7)
    table = pd.read_csv(root / hc18.TRAIN_CSV)
    rng = np.random.default_rng(7)
    names = _names(10, rng, 0)
    assert [f"{n}.png" for n in names] == list(table["filename"])
    for i, row in table.iterrows():
        scan = synthetic_scan(rng, (270, 400), leave_image=i % 8 == 7)
        e = scan.ellipse
        assert row["pixel size(mm)"] == pytest.approx(scan.pixel_size_mm, rel=1e-12)
        expected = arc_length_mm(e.a, e.b, scan.pixel_size_mm)
        assert row["head circumference (mm)"] == pytest.approx(expected, abs=0.005 + 1e-9)


def test_synthetic_annotation_is_the_ellipse_of_the_csv(tmp_path: Path) -> None:
    """The drawn outline, fitted back, gives the CSV's HC (as HC18's annotations do)."""
    root = write_synthetic_hc18(tmp_path / "hc18", n_train=8, n_test=1, seed=3)
    for record in hc18.load_records("training", root):
        ellipse = ellipse_from_outline(hc18.read_gray(record.annotation_path))
        measured = arc_length_mm(ellipse.a, ellipse.b, record.pixel_size_mm)
        assert measured == pytest.approx(record.hc_mm, abs=0.15), record.name

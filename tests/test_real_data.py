"""Checks against the real HC18 training set (skipped when it is not available)."""

from __future__ import annotations

import math
import struct
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import binary_fill_holes

from fetalft import hc18
from fetalft.biometry import ellipse_from_outline
from fetalft.data import load_scans
from fetalft.ellipse import Ellipse
from fetalft.split import ROLES, committed_splits, exams_on_both_sides, splits_table

pytestmark = pytest.mark.realdata

BORDER_CASES = ("186_HC", "346_HC", "628_2HC", "787_HC")
USUAL_SHAPE = (540, 800)  # (H, W)


@dataclass(frozen=True)
class Fit:
    record: hc18.Record
    shape: tuple[int, int]  # of the annotation, (H, W)
    ellipse: Ellipse  # fitted to the annotation outline, pixels


@pytest.fixture(scope="module")
def records(real_hc18: Path) -> list[hc18.Record]:
    return hc18.load_records("training", real_hc18)


@pytest.fixture(scope="module")
def fits(records: list[hc18.Record]) -> dict[str, Fit]:
    """The ellipse of each of the 999 annotations (read once for the whole module)."""
    result = {}
    for record in records:
        outline = hc18.read_gray(record.annotation_path)
        result[record.name] = Fit(record, outline.shape, ellipse_from_outline(outline, record.name))
    return result


def png_size(path: Path) -> tuple[int, int]:
    """(H, W) of a PNG from its IHDR header, without decoding the image."""
    with open(path, "rb") as handle:
        header = handle.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", header[16:24])
    return height, width


def filled_mask_near_head(fit: Fit) -> tuple[np.ndarray, tuple[int, int]]:
    """The filled mask ``ellipse.to_mask(shape)`` cropped to the head's bounding box.

    Rasterising only the box is four times faster than the whole image, which keeps the
    999-image loop short; the crop's (x0, y0) is returned to compare it with the full mask.
    """
    e, (height, width) = fit.ellipse, fit.shape
    half_w = math.hypot(e.a * math.cos(e.angle), e.b * math.sin(e.angle))
    half_h = math.hypot(e.a * math.sin(e.angle), e.b * math.cos(e.angle))
    x0, x1 = max(0, math.floor(e.cx - half_w)), min(width, math.ceil(e.cx + half_w) + 1)
    y0, y1 = max(0, math.floor(e.cy - half_h)), min(height, math.ceil(e.cy + half_h) + 1)
    shifted = Ellipse(e.cx - x0, e.cy - y0, e.a, e.b, e.angle)
    return shifted.to_mask((max(0, y1 - y0), max(0, x1 - x0))), (x0, y0)


def is_single_blob(mask: np.ndarray) -> bool:
    count, _ = cv2.connectedComponents(mask, connectivity=8)
    return count == 2  # background and one blob


def touches_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def names_from_csv(root: Path) -> list[str]:
    table = pd.read_csv(root / hc18.TRAIN_CSV)
    return [Path(f).stem for f in table["filename"]]


# --------------------------------------------------------------------------- annotations


def test_training_set_has_999_records(records: list[hc18.Record]) -> None:
    assert len(records) == 999
    assert len({r.name for r in records}) == 999


def test_fitted_ellipses_reproduce_csv_head_circumference(fits: dict[str, Fit]) -> None:
    differences = {
        name: abs(fit.ellipse.scaled(fit.record.pixel_size_mm).perimeter - fit.record.hc_mm)
        for name, fit in fits.items()
    }
    worst = max(differences, key=differences.get)
    print(f"largest |HC fit - HC csv|: {differences[worst]:.4f} mm ({worst})")
    assert differences[worst] < 0.1


def test_all_filled_masks_are_non_empty_single_blobs(fits: dict[str, Fit]) -> None:
    bad = []
    for name, fit in fits.items():
        mask, _ = filled_mask_near_head(fit)
        if mask.size == 0 or not is_single_blob(mask):
            bad.append(name)
    assert bad == []


@pytest.mark.parametrize(
    "name", ["000_HC", "010_2HC", "063_3HC", "500_HC", "805_HC", *BORDER_CASES]
)
def test_head_crop_equals_the_full_filled_mask(fits: dict[str, Fit], name: str) -> None:
    full = fits[name].ellipse.to_mask(fits[name].shape)
    crop, (x0, y0) = filled_mask_near_head(fits[name])
    height, width = crop.shape
    np.testing.assert_array_equal(full[y0 : y0 + height, x0 : x0 + width], crop)
    assert full.sum() == crop.sum()


@pytest.mark.parametrize("name", BORDER_CASES)
def test_border_case_is_filled_beyond_hole_filling(fits: dict[str, Fit], name: str) -> None:
    fit = fits[name]
    mask = fit.ellipse.to_mask(fit.shape)
    outline = hc18.read_gray(fit.record.annotation_path)
    hole_filled = binary_fill_holes(outline > 0)
    assert touches_border(mask)
    assert is_single_blob(mask)
    assert mask.sum() > 0.1 * mask.size
    assert mask.sum() > 5 * hole_filled.sum()  # hole filling leaves only the open outline


def test_hole_filling_works_for_a_closed_outline(fits: dict[str, Fit]) -> None:
    """Contrast for the border cases: on an ordinary annotation both fills agree."""
    fit = fits["000_HC"]
    mask = fit.ellipse.to_mask(fit.shape)
    hole_filled = binary_fill_holes(hc18.read_gray(fit.record.annotation_path) > 0)
    assert not touches_border(mask)
    assert mask.sum() == pytest.approx(hole_filled.sum(), rel=0.05)  # fill keeps the line


# --------------------------------------------------------------------------- splits


def test_committed_split_covers_exactly_the_999_names(real_hc18: Path) -> None:
    table = committed_splits()
    assert sorted(table["name"]) == sorted(names_from_csv(real_hc18))
    assert not table["name"].duplicated().any()


@pytest.mark.parametrize("kind", ["exam", "leaky"])
def test_committed_split_sizes(kind: str) -> None:
    counts = Counter(committed_splits()[f"{kind}_split"])
    assert counts["test"] == 200
    assert counts["train"] + counts["val"] == 799


@pytest.mark.parametrize(("a", "b"), list(combinations(ROLES, 2)))
def test_committed_exam_split_shares_no_exam(a: str, b: str) -> None:
    table = committed_splits()
    roles = dict(zip(table["name"], table["exam_split"], strict=True))
    assert exams_on_both_sides(roles, a, b) == set()


def test_committed_split_equals_regenerated_split(real_hc18: Path) -> None:
    regenerated = splits_table(names_from_csv(real_hc18))
    pd.testing.assert_frame_equal(regenerated, committed_splits(), check_dtype=False)


def test_leaky_split_has_test_images_with_a_sibling_in_train() -> None:
    table = committed_splits()
    train_exams = set(table.loc[table["leaky_split"] == "train", "exam"])
    test = table[table["leaky_split"] == "test"]
    with_sibling = test[test["exam"].isin(train_exams)]
    print(f"leaky split: {len(with_sibling)} of {len(test)} test images have a sibling in train")
    assert len(with_sibling) > 0


# --------------------------------------------------------------------------- image sizes


def test_image_sizes_vary_and_annotations_match_them(fits: dict[str, Fit]) -> None:
    sizes = {name: png_size(fit.record.image_path) for name, fit in fits.items()}
    assert len(set(sizes.values())) > 1
    assert Counter(sizes.values())[USUAL_SHAPE] < 999
    assert all(sizes[name] == fit.shape for name, fit in fits.items())


def test_load_scans_handles_images_that_are_not_800x540(fits: dict[str, Fit]) -> None:
    odd = [fit for fit in fits.values() if fit.shape != USUAL_SHAPE]
    assert odd
    scans = load_scans([fit.record for fit in odd], 64, progress=False)
    for fit, scan in zip(odd, scans, strict=True):
        assert scan.original_shape == fit.shape
        assert scan.image.shape == scan.mask.shape == (64, 64)
        assert scan.mask.any()
        assert scan.hc_mm == pytest.approx(fit.record.hc_mm, abs=0.1)


# --------------------------------------------------------------------------- plausibility


def test_every_expert_ellipse_passes_every_plausibility_rule(fits: dict[str, Fit]) -> None:
    """The rules that refuse a prediction in predict and submit never refuse an expert."""
    from fetalft.biometry import HC_RANGE_MM, implausibility

    refused = {
        name: problem
        for name, fit in fits.items()
        if (problem := implausibility(fit.ellipse, fit.shape, fit.record.pixel_size_mm))
    }
    assert not refused, list(refused.items())[:5]
    # the expert HCs from the CSV, a route independent of the fitted ellipses
    hcs = [fit.record.hc_mm for fit in fits.values()]
    assert HC_RANGE_MM[0] < min(hcs) and max(hcs) < HC_RANGE_MM[1]
    ratios = [fit.ellipse.b / fit.ellipse.a for fit in fits.values()]
    print(
        f"HC18 experts: HC {min(hcs)}-{max(hcs)} mm, axis ratio {min(ratios):.2f}-{max(ratios):.2f}"
    )


def test_read_gray_reads_hc18_pngs_as_opencv_always_did(records: list[hc18.Record]) -> None:
    """read_gray handles 16-bit PNGs now; HC18's 8-bit ones must read exactly as before
    (cv2.IMREAD_GRAYSCALE), or the study's inputs would change. Every 10th image."""
    for record in records[::10]:
        before = cv2.imread(str(record.image_path), cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(hc18.read_gray(record.image_path), before), record.name

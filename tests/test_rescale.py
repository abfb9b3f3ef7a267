"""fetalft.rescale: predictions averaged over input scales, resumable records."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import ellipe

from fetalft import hc18, rescale
from fetalft.data import load_scans, select_records
from fetalft.device import Runtime
from fetalft.study import RunSpec

#: The stub network's head radius (normalised image coordinates) at each input height.
RADIUS_AT_HEIGHT = {128: 0.4, 160: 0.5, 192: 0.75}


class ScaleDependentHead(torch.nn.Module):
    """Logits ``radius - distance from the centre`` in normalised coordinates of the pixel
    centres, so the head is the same ellipse in the original image at every input size,
    except that its radius depends on the input's height (:data:`RADIUS_AT_HEIGHT`)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, _, height, width = images.shape
        v = (torch.arange(height) + 0.5) / height * 2 - 1
        u = (torch.arange(width) + 0.5) / width * 2 - 1
        distance = torch.hypot(u[None, :], v[:, None])
        return (RADIUS_AT_HEIGHT[height] - distance).expand(n, 1, height, width)


def perimeter(a: float, b: float) -> float:
    """An ellipse's circumference by the complete elliptic integral (not Ramanujan's
    formula, which fetalft.ellipse uses)."""
    a, b = max(a, b), min(a, b)
    return 4 * a * ellipe(1 - (b / a) ** 2)


def test_scaled_size_keeps_the_aspect_ratio_in_multiples_of_32() -> None:
    assert rescale.scaled_size((320, 480), 0.8) == (256, 384)
    assert rescale.scaled_size((320, 480), 1.2) == (384, 576)
    assert rescale.scaled_size((320, 480), 1.0) == (320, 480)
    assert rescale.scaled_size(160, 1.2) == (192, 192)


@pytest.mark.parametrize(("size", "scale"), [((320, 480), 0.9), (64, 0.8), ((256, 384), 1.1)])
def test_scaled_size_refuses_a_size_the_network_cannot_take(size, scale: float) -> None:
    with pytest.raises(ValueError, match=re.escape(f"{scale:g} x ")) as info:
        rescale.scaled_size(size, scale)
    assert "multiples of 32" in str(info.value)


def test_the_average_is_of_the_logits_at_each_scale_resized_to_the_original(
    synthetic_hc18: Path,
) -> None:
    """Each pass draws an ellipse of its own radius; the average of the logits (linear in
    the radius) draws the mean radius, 0.55: a vote of the masks would give 0.5, one scale
    fed three times 0.5 too."""
    records = select_records(hc18.load_records("training", synthetic_hc18), "val", limit=3)
    runtime = Runtime.choose("fp32")
    scans = {
        rescale.label(scale): load_scans(records, rescale.scaled_size(160, scale), False)
        for scale in rescale.SCALES
    }
    scored = rescale.score_scales(ScaleDependentHead(), scans, runtime, 2, tta=True)
    assert sorted(scored["scales"].unique()) == sorted(["average", "0.8", "1", "1.2"])
    assert len(scored) == 4 * len(records)
    radii = {"average": np.mean(list(RADIUS_AT_HEIGHT.values())), "0.8": 0.4, "1": 0.5, "1.2": 0.75}
    for record in records:
        height, width = hc18.read_gray(record.image_path).shape
        pixel_mm = record.pixel_size_mm
        for scales, radius in radii.items():
            row = scored[(scored["name"] == record.name) & (scored["scales"] == scales)]
            expected = perimeter(radius * width / 2, radius * height / 2) * pixel_mm
            assert row["hc_pred_mm"].item() == pytest.approx(expected, rel=2e-3), scales


def test_a_pasted_scan_is_scored_on_its_own_pixels_of_the_canvas(synthetic_hc18: Path) -> None:
    """Scans at 128 x 128 pasted into a 160 x 160 canvas: the stub draws its radius for a
    160-high input, 0.5 of the canvas's half-size, which is 0.5 x 160 / 128 of the pasted
    scan's. Scoring the whole canvas, or resizing it instead of cropping, would be 20% off."""
    records = select_records(hc18.load_records("training", synthetic_hc18), "val", limit=3)
    small = load_scans(records, 128, False)
    scored = rescale.score_pasted(
        ScaleDependentHead(), small, 160, Runtime.choose("fp32"), 2, tta=True
    )
    assert (scored["scales"] == rescale.PASTED).all() and len(scored) == len(records)
    radius = RADIUS_AT_HEIGHT[160] * 160 / 128
    for record in records:
        height, width = hc18.read_gray(record.image_path).shape
        row = scored[scored["name"] == record.name]
        expected = perimeter(radius * width / 2, radius * height / 2) * record.pixel_size_mm
        assert row["hc_pred_mm"].item() == pytest.approx(expected, rel=2e-3)


def test_a_scan_larger_than_the_canvas_is_refused(synthetic_hc18: Path) -> None:
    records = select_records(hc18.load_records("training", synthetic_hc18), "val", limit=1)
    large = load_scans(records, 192, False)
    with pytest.raises(ValueError, match="192 x 192 do not fit a 160 x 160 canvas"):
        rescale.score_pasted(ScaleDependentHead(), large, 160, Runtime.choose("fp32"), 2, False)


@pytest.fixture(scope="module")
def finished(
    tmp_path_factory: pytest.TempPathFactory, synthetic_hc18: Path, finished_smoke_runs
) -> dict[str, Path]:
    """Two seeds of a finished smoke run at 160 x 160 (0.8 and 1.2 of it are multiples of
    32); seed 1 has lost its checkpoint."""
    settings = (("image_size", 160),)
    lost = RunSpec("decoder-0-4", 1, settings=settings)
    specs = [RunSpec("decoder-0-4", 0, settings=settings), lost]
    runs = finished_smoke_runs(tmp_path_factory.mktemp("rescale"), synthetic_hc18, specs, [lost])
    return {**runs, "run": specs[0].name}


def rescale_smoke(finished: dict[str, Path]):
    return rescale.rescale_runs(
        finished["run"],
        profile="smoke",
        results_dir=finished["results"],
        checkpoint_dir=finished["checkpoints"],
        data_dir=finished["data"],
        progress=False,
    )


def test_rescale_records_each_scale_and_the_runs_own_scale_reproduces_it(finished) -> None:
    written, skipped = rescale_smoke(finished)
    folder = rescale.multi_scale_folder(
        "smoke", finished["run"], 0, results_dir=finished["results"]
    )
    assert written == [folder / "multi_scale.json"] and skipped == [1]
    record = json.loads((folder / "multi_scale.json").read_text())
    assert record["input_sizes"] == {
        "0.8": [128, 128],
        "1": [160, 160],
        "1.2": [192, 192],
        "0.8 pasted": [160, 160],
    }
    assert set(record["val"]) == {"average", "0.8", "1", "1.2", "0.8 pasted"}
    # the run's own size alone is what the study recorded for its validation images
    metrics = json.loads(
        (finished["results"] / "smoke" / finished["run"] / "seed-0" / "metrics.json").read_text()
    )
    assert record["val"]["1"]["dice"]["mean"] == pytest.approx(
        metrics["val"]["dice"]["mean"], rel=1e-9
    )
    assert record["recorded_val_adf_mm"] == metrics["val"]["adf_mm"]["mean"] or np.isnan(
        metrics["val"]["adf_mm"]["mean"]
    )
    images = rescale.load_multi_scale("smoke", finished["run"], results_dir=finished["results"])
    assert len(images) == 5 * metrics["n_val"] and (images["seed"] == 0).all()


def test_rescale_keeps_a_finished_seed(finished) -> None:
    rescale_smoke(finished)
    folder = rescale.multi_scale_folder(
        "smoke", finished["run"], 0, results_dir=finished["results"]
    )
    before = (folder / "multi_scale.json").stat().st_mtime_ns
    rescale_smoke(finished)
    assert (folder / "multi_scale.json").stat().st_mtime_ns == before


def test_load_multi_scale_is_empty_when_nothing_was_scored(tmp_path: Path) -> None:
    assert rescale.load_multi_scale("smoke", "decoder-0-4", results_dir=tmp_path).empty
    assert isinstance(rescale.load_multi_scale("smoke", "x", results_dir=tmp_path), pd.DataFrame)


@pytest.mark.parametrize(
    "recorded",
    [
        ("average", "1.2", "1", "0.8 pasted", "0.8"),
        ("average", "1.2", "1", "0.8"),  # a record made before the pasted row
    ],
)
def test_scale_table_averages_each_seeds_mean_and_sums_the_failures(recorded) -> None:
    rows = []
    for seed, adf in ((0, [1.0, 5.0, np.nan]), (1, [2.0, 2.0, 2.0])):
        for scales in recorded:
            for name, error in zip("abc", adf, strict=True):
                rows.append(
                    {
                        "seed": seed,
                        "scales": scales,
                        "name": name,
                        "dice": 0.9,
                        "adf_mm": error,
                        "df_mm": -error,
                    }
                )
    table = rescale.scale_table(pd.DataFrame(rows))
    order = ["0.8", "0.8 pasted", "1", "1.2", "average"]
    assert list(table.index) == [row for row in order if row in recorded]
    # the mean of seed 0's two measured images (3.0) and seed 1's three (2.0), 2.5: not
    # the 2.4 of the five pooled
    assert table.loc["1", "val ADF (mm)"] == pytest.approx(2.5)
    assert table.loc["1", "mean signed difference (mm)"] == pytest.approx(-2.5)
    assert table.loc["1", "val Dice (%)"] == pytest.approx(90.0)
    assert (table["failures"] == 1).all()

"""fetalft.refit: a finished run scored again with the clear fit, resumable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fetalft import refit
from fetalft.runfiles import load_per_image
from fetalft.study import RunSpec


@pytest.fixture(scope="module")
def finished(
    tmp_path_factory: pytest.TempPathFactory, synthetic_hc18: Path, finished_smoke_runs
) -> dict[str, Path]:
    """Two seeds of a finished smoke run on synthetic scans; seed 1 has lost its checkpoint."""
    lost = RunSpec("decoder-0-4", 1)
    specs = [RunSpec("decoder-0-4", 0), lost]
    return finished_smoke_runs(tmp_path_factory.mktemp("refit"), synthetic_hc18, specs, [lost])


def refit_smoke(finished: dict[str, Path], run: str = "decoder-0-4"):
    return refit.refit_runs(
        run,
        profile="smoke",
        results_dir=finished["results"],
        checkpoint_dir=finished["checkpoints"],
        data_dir=finished["data"],
        progress=False,
    )


def test_refit_scores_each_share_and_reproduces_the_recorded_fit(finished) -> None:
    written, skipped = refit_smoke(finished)
    folder = finished["results"] / "checks" / "clear-fit" / "smoke" / "decoder-0-4" / "seed-0"
    assert written == [folder / "clear_fit.json"] and skipped == [1]
    per_image = pd.read_csv(folder / "per_image.csv")
    # validation: every share; test: no share (the recorded fit) and the chosen one
    assert sorted(per_image.loc[per_image["role"] == "val", "share"].unique()) == list(refit.SHARES)
    test = per_image[per_image["role"] == "test"]
    assert sorted(test["share"].unique()) == [0.0, refit.WEAK_EDGE_SHARE]
    # share 0 is what the study recorded: the same masks (Dice) and HCs (or none), image by
    # image (a smoke model rarely finds a head; the real runs' test checks the HCs too)
    recorded = load_per_image("smoke", "decoder-0-4", [0], results_dir=finished["results"])
    recorded = recorded.set_index("name")
    again = test[test["share"] == 0].set_index("name")
    assert len(again) == len(recorded) > 0
    for column in ("dice", "hc_pred_mm"):
        np.testing.assert_allclose(
            again[column].to_numpy(float),
            recorded.loc[again.index, column].to_numpy(float),
            rtol=1e-9,
        )
    images = refit.load_refit_images("smoke", "decoder-0-4", results_dir=finished["results"])
    assert len(images) == len(per_image) and (images["seed"] == 0).all()
    # the recorded fit of one split, as chapter 8's paired test reads it
    kept = refit.recorded_fit("smoke", "decoder-0-4", "test", results_dir=finished["results"])
    pd.testing.assert_frame_equal(
        kept.drop(columns="seed"), again.reset_index()[kept.columns.drop("seed")]
    )
    val = refit.recorded_fit("smoke", "decoder-0-4", results_dir=finished["results"])
    assert len(val) == len(per_image[per_image["role"] == "val"]) // len(refit.SHARES)
    assert (val["role"] == "val").all() and (val["share"] == 0).all()
    table = refit.load_refits("smoke", "decoder-0-4", results_dir=finished["results"])
    assert len(table) == len(refit.SHARES) + 2
    assert set(table["split"]) == {"val", "test"} and (table["seed"] == 0).all()


def test_refit_keeps_a_finished_seed(finished) -> None:
    refit_smoke(finished)
    record = refit.refit_folder("smoke", "decoder-0-4", 0, results_dir=finished["results"])
    before = (record / "clear_fit.json").stat().st_mtime_ns
    refit_smoke(finished)
    assert (record / "clear_fit.json").stat().st_mtime_ns == before


def test_refit_of_an_unknown_run_names_it(finished) -> None:
    with pytest.raises(refit.RunNotFinished, match="no-such-run"):
        refit_smoke(finished, "no-such-run")


def test_load_refits_is_empty_when_nothing_was_refitted(tmp_path: Path) -> None:
    assert refit.load_refits("smoke", "decoder-0-4", results_dir=tmp_path).empty
    assert refit.load_refit_images("smoke", "decoder-0-4", results_dir=tmp_path).empty
    assert refit.recorded_fit("smoke", "decoder-0-4", results_dir=tmp_path).empty

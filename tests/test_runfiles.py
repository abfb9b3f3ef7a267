"""The run-folder layout (:mod:`fetalft.runfiles`): paths and the loaders of a run's records.

The run folders are written by hand here (:func:`tests.test_report.write_run`, spelling the
layout out itself), so a loader that looked in the wrong place or misread a file would fail.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from fetalft import runfiles
from fetalft.runfiles import load_per_image, load_runs
from fetalft.settings import CHECKPOINTS_ENV, RESULTS_ENV
from fetalft.study import RunSpec
from tests.test_report import NAN, PROFILE, scores, write_run


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return tmp_path / "results"


def test_roots_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RESULTS_ENV, raising=False)
    monkeypatch.delenv(CHECKPOINTS_ENV, raising=False)
    assert runfiles.results_root() == Path("results")
    assert runfiles.checkpoints_root() == Path("checkpoints")
    monkeypatch.setenv(RESULTS_ENV, "/x/r")
    monkeypatch.setenv(CHECKPOINTS_ENV, "/x/c")
    assert runfiles.results_root() == Path("/x/r")
    assert runfiles.checkpoints_root() == Path("/x/c")
    assert runfiles.results_root("given") == Path("given")


def test_paths_of_one_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RESULTS_ENV, "/x/r")
    monkeypatch.setenv(CHECKPOINTS_ENV, "/x/c")
    assert runfiles.run_folder("cpu", "decoder-4--leaky", 2) == Path(
        "/x/r/cpu/decoder-4--leaky/seed-2"
    )
    assert runfiles.run_folder("cpu", "b", 0, results_dir="r") == Path("r/cpu/b/seed-0")
    assert runfiles.checkpoint_path("cpu", "b", 10) == Path("/x/c/cpu/b/seed-10/best.pt")
    assert runfiles.scoring_path("cpu", "b", 1) == Path(
        "/x/r/checks/scoring/cpu/b/seed-1/scoring.json"
    )
    assert runfiles.checks_folder("precision") == Path("/x/r/checks/precision")
    assert runfiles.seed_of(Path("/x/r/cpu/b/seed-10")) == 10


def test_one_runs_records_are_read_from_its_folder(results: Path) -> None:
    history = pd.DataFrame({"epoch": [1, 2], "val_dice": [0.5, 0.6]})
    folder = write_run(results, RunSpec("decoder-4", 3), test={"adf_mm": NAN}, history=history)
    (folder / "environment.json").write_text(json.dumps({"peak_memory_mb": 1500.0}))
    assert folder == runfiles.run_folder(PROFILE, "decoder-4", 3, results_dir=results)
    assert runfiles.is_finished(folder) and not runfiles.is_finished(folder.parent)
    metrics = runfiles.load_metrics(PROFILE, "decoder-4", 3, results_dir=results)
    assert metrics["test"]["adf_mm"]["mean"] is None  # JSON null, as a real run writes it
    loaded = runfiles.load_history(PROFILE, "decoder-4", 3, results_dir=results)
    assert loaded["val_dice"].tolist() == [0.5, 0.6]
    environment = runfiles.load_environment(PROFILE, "decoder-4", 3, results_dir=results)
    assert environment == {"peak_memory_mb": 1500.0}
    with pytest.raises(FileNotFoundError):
        runfiles.load_environment(PROFILE, "decoder-4", 7, results_dir=results)


def test_scoring_files_are_found_per_run_and_seed(results: Path) -> None:
    for run, seed in [("b", 1), ("a", 0)]:
        path = runfiles.scoring_path(PROFILE, run, seed, results_dir=results)
        path.parent.mkdir(parents=True)
        path.write_text("{}")
    found = runfiles.scoring_files(PROFILE, results_dir=results)
    assert [p.relative_to(results).parts[3:5] for p in found] == [("a", "seed-0"), ("b", "seed-1")]


def test_load_runs_sorts_by_run_then_seed(results: Path) -> None:
    for strategy, seed in [("decoder-4", 1), ("decoder-0-4", 1), ("decoder-4", 0)]:
        write_run(results, RunSpec(strategy, seed))
    runs = load_runs(PROFILE, results)
    assert list(zip(runs["run"], runs["seed"], strict=True)) == [
        ("decoder-0-4", 1),
        ("decoder-4", 0),
        ("decoder-4", 1),
    ]


@pytest.mark.parametrize("other_dice", [0.8, NAN], ids=["other-run-measured", "all-null"])
def test_load_runs_reads_a_null_test_mean_as_nan(results: Path, other_dice: float) -> None:
    """Runs write ``null`` for a metric no image could be measured on; the column must be a
    float column holding NaN, even when every run has ``null`` there."""
    folder = write_run(results, RunSpec("decoder-4", 0), test={"dice": NAN, "adf_mm": NAN})
    write_run(results, RunSpec("decoder-4", 1), test={"dice": other_dice, "adf_mm": 2.0})
    assert '"mean": null' in (folder / "metrics.json").read_text()
    runs = load_runs(PROFILE, results)
    assert runs["dice"].dtype == float
    assert math.isnan(runs["dice"].iloc[0])
    assert runs["adf_mm"].tolist() == [pytest.approx(NAN, nan_ok=True), 2.0]


def test_load_per_image_orders_seeds_numerically(results: Path) -> None:
    for seed in (10, 2):
        write_run(results, RunSpec("decoder-4", seed), per_image=scores([seed / 100]))
    per_image = load_per_image(PROFILE, "decoder-4", results_dir=results)
    assert per_image["seed"].tolist() == [2, 10]
    assert per_image["dice"].tolist() == [0.02, 0.1]


def test_load_per_image_without_finished_seed_raises(results: Path) -> None:
    write_run(results, RunSpec("decoder-4", 0))  # metrics.json but no per_image.csv
    with pytest.raises(FileNotFoundError, match="seed-0"):
        load_per_image(PROFILE, "decoder-4", results_dir=results)
    with pytest.raises(FileNotFoundError, match="no finished seeds"):
        load_per_image(PROFILE, "decoder-0-4", results_dir=results)

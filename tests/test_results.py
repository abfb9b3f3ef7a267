"""The committed study results: every run folder complete, labelled and self-consistent.

The book reads these files and nothing else, so a half-written or mislabelled run would
put a wrong number in the book. Skipped where the repository holds no results.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fetalft.evaluate import PROTOCOLS
from fetalft.metrics import CHALLENGE_METRICS, SEGMENTATION_METRICS

RESULTS = Path(__file__).resolve().parents[1] / "results"
RUN_FILES = ("metrics.json", "per_image.csv", "history.csv", "environment.json")
LABELS = ("run", "strategy", "seed", "profile", "image_size", "epochs", "split", "train_fraction")
LABELS += ("n_train", "n_test", "weights", "precision", "hardware", "wall_seconds", "best_epoch")

run_folders = sorted(p.parent for p in RESULTS.rglob("seed-*/metrics.json"))


def strict(text: str) -> dict:
    def reject(constant: str):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


pytestmark = pytest.mark.skipif(not run_folders, reason="no committed runs under results/")


@pytest.mark.parametrize("folder", run_folders, ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_run_is_complete_and_consistent(folder: Path) -> None:
    assert all((folder / name).is_file() for name in RUN_FILES), sorted(folder.iterdir())
    metrics = strict((folder / "metrics.json").read_text())
    assert all(label in metrics for label in LABELS)
    assert folder.name == f"seed-{metrics['seed']}"
    assert folder.parent.name == metrics["run"]
    assert folder.parent.parent.name == metrics["profile"]

    per_image = pd.read_csv(folder / "per_image.csv")
    assert len(per_image) == metrics["n_test"] == metrics["test"]["dice"]["n"]
    assert per_image["name"].is_unique
    for metric in SEGMENTATION_METRICS:
        assert per_image[metric].between(0, 1).all()
        assert per_image[metric].mean() == pytest.approx(metrics["test"][metric]["mean"])
    measured = per_image["adf_mm"].notna().sum()
    assert metrics["test"]["adf_mm"]["n"] == measured
    assert set(CHALLENGE_METRICS) <= set(metrics["test"])

    history = pd.read_csv(folder / "history.csv")
    assert list(history["epoch"]) == list(range(1, metrics["epochs"] + 1))
    assert history["val_dice"].max() == pytest.approx(metrics["best_val_dice"])
    assert history.loc[history["val_dice"].idxmax(), "epoch"] == metrics["best_epoch"]

    environment = strict((folder / "environment.json").read_text())
    assert environment["precision"] == metrics["precision"]
    assert environment["hardware"] == metrics["hardware"]


scoring_files = sorted(RESULTS.rglob("seed-*/scoring.json"))


@pytest.mark.skipif(not scoring_files, reason="no re-scored runs under results/")
@pytest.mark.parametrize("path", scoring_files, ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_rescoring_belongs_to_its_run_and_reproduces_it(path: Path) -> None:
    """A re-scored run scores its recorded predictions again: same images, same numbers."""
    record = strict(path.read_text())
    seed, run, profile = path.parent, path.parent.parent, path.parent.parent.parent
    assert (record["run"], f"seed-{record['seed']}", record["profile"]) == (
        run.name,
        seed.name,
        profile.name,
    )
    metrics = strict((RESULTS / profile.name / run.name / seed.name / "metrics.json").read_text())
    assert record["n_test"] == metrics["n_test"]
    assert record["recorded_dice"] == metrics["test"]["dice"]["mean"]
    assert [score["protocol"] for score in record["scores"]] == list(PROTOCOLS.values())
    if (record["hardware"], record["precision"]) == (metrics["hardware"], metrics["precision"]):
        original = record["scores"][0]
        for metric in SEGMENTATION_METRICS:
            assert original[metric] == pytest.approx(metrics["test"][metric]["mean"], abs=1e-6)

"""fetalft.rescore: finished runs scored again under the paper's protocol, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fetalft import rescore
from fetalft.__main__ import main
from fetalft.evaluate import PROTOCOLS
from fetalft.profiles import get_profile
from fetalft.report import paper_table
from fetalft.runfiles import load_runs
from fetalft.study import RunSpec, Study

SMOKE = get_profile("smoke")


@pytest.fixture(scope="module")
def finished(
    tmp_path_factory: pytest.TempPathFactory, synthetic_hc18: Path, finished_smoke_runs
) -> dict[str, Path]:
    """Two finished smoke runs on synthetic scans; decoder-4 has lost its checkpoint."""
    lost = RunSpec("decoder-4", 0)
    specs = [RunSpec("decoder-0-4", 0), lost]
    return finished_smoke_runs(tmp_path_factory.mktemp("rescore"), synthetic_hc18, specs, [lost])


def rescore_smoke(finished: dict[str, Path], runs: list[str] | None = None):
    return rescore.rescore_runs(
        SMOKE,
        runs=runs,
        results_dir=finished["results"],
        checkpoint_dir=finished["checkpoints"],
        data_dir=finished["data"],
        progress=False,
    )


def test_rescoring_reproduces_the_recorded_test_dice(finished) -> None:
    written, skipped = rescore_smoke(finished)
    assert skipped == ["decoder-4 seed 0"]
    assert written == [
        finished["results"]
        / "checks"
        / "scoring"
        / "smoke"
        / "decoder-0-4"
        / "seed-0"
        / "scoring.json"
    ]
    record = json.loads(written[0].read_text())
    recorded = load_runs("smoke", finished["results"]).set_index("run").loc["decoder-0-4"]
    assert record["n_test"] == recorded["n_test"] > 0
    assert record["precision"] == record["recorded_precision"] == "fp32"
    assert [s["protocol"] for s in record["scores"]] == list(PROTOCOLS.values())
    scores = rescore.load_scores("smoke", finished["results"])
    assert len(scores) == len(PROTOCOLS)
    assert rescore.reproduction_gap(scores) < 1e-6


def test_rescoring_keeps_finished_files(finished) -> None:
    written, _ = rescore_smoke(finished, ["decoder-0-4"])
    before = written[0].stat().st_mtime_ns
    again, _ = rescore_smoke(finished, ["decoder-0-4"])
    assert again == written and again[0].stat().st_mtime_ns == before


def test_rescoring_an_unknown_run_names_it(finished) -> None:
    with pytest.raises(ValueError, match="decoder-9"):
        rescore_smoke(finished, ["decoder-9"])


def test_protocol_table_has_a_column_per_protocol_and_the_change(finished) -> None:
    rescore_smoke(finished)
    scores = rescore.load_scores("smoke", finished["results"])
    table = rescore.protocol_table(scores, load_runs("smoke", finished["results"]))
    assert list(table.index) == ["decoder-0-4"]
    assert list(table.columns) == [
        "seeds",
        rescore.EVERY_SEED_COLUMN,
        *PROTOCOLS.values(),
        "authors - fetalft (dice points)",
    ]
    row = table.loc["decoder-0-4"]
    assert row["seeds"] == "0"
    assert row[rescore.EVERY_SEED_COLUMN] == pytest.approx(row[PROTOCOLS["original"]], abs=0.006)
    change = row[PROTOCOLS["authors"]] - row[PROTOCOLS["original"]]
    assert row["authors - fetalft (dice points)"] == pytest.approx(change, abs=0.011)
    assert rescore.protocol_table(scores.iloc[0:0], load_runs("smoke", finished["results"])).empty


def test_rescore_command_reports_what_it_could_not_score(finished, capsys) -> None:
    args = ["rescore", "--profile", "cpu", "--results-dir", str(finished["results"])]
    assert main([*args, "--checkpoint-dir", str(finished["checkpoints"]), "--quiet"]) == 0
    assert "no run could be re-scored" in capsys.readouterr().out


def test_whole_protocol_table_sets_the_paper_protocol_against_fetalft() -> None:
    """Hand-made scores: exam runs 0.90 and 0.92, leaky seeds 0.94 (fetalft), 0.96 (authors)."""
    runs = pd.DataFrame(
        {
            "run": ["decoder-0-4", "decoder-0-4", "decoder-0-4--leaky"],
            "strategy": "decoder-0-4",
            "seed": [0, 1, 0],
            "split": ["exam", "exam", "leaky"],
            "train_fraction": 1.0,
            "head_trainable": False,
            "dice": [0.90, 0.92, 0.94],
        }
    )
    scores = pd.DataFrame(
        {
            "run": "decoder-0-4--leaky",
            "seed": 0,
            "split": "leaky",
            "protocol": list(PROTOCOLS.values()),
            "dice": [0.94, 0.95, 0.96],
        }
    )
    row = rescore.whole_protocol_table(scores, runs).loc["decoder-0-4"]
    assert row["exam split, fetalft"] == pytest.approx(91.0)
    assert row["exam seeds"] == "0, 1" and row["leaky seeds"] == "0"  # seed ids on both sides
    assert row["leaky split, fetalft"] == pytest.approx(94.0)
    assert row["leaky split, authors"] == pytest.approx(96.0)
    assert row["leak + scoring (dice points)"] == pytest.approx(5.0)
    assert row["paper"] == paper_table().set_index("strategy").loc["decoder-0-4", "dice"]
    exam_only = scores.assign(split="exam", run="decoder-0-4")
    assert rescore.whole_protocol_table(exam_only, runs).empty


def test_protocol_table_shows_every_seed_beside_a_partial_rescoring() -> None:
    """decoder-0-4 ran seeds 0-1 (Dice 0.90, 0.92) but only seed 1 was re-scored: the table
    sets the recorded mean over both seeds beside it (chapter 7's caption says why)."""
    runs = pd.DataFrame(
        {
            "run": "decoder-0-4",
            "strategy": "decoder-0-4",
            "seed": [0, 1],
            "dice": [0.90, 0.92],
        }
    )
    scores = pd.DataFrame(
        {
            "run": "decoder-0-4",
            "seed": 1,
            "protocol": list(PROTOCOLS.values()),
            "dice": [0.92, 0.925, 0.93],
        }
    )
    table = rescore.protocol_table(scores, runs)
    row = table.loc["decoder-0-4"]
    assert row["seeds"] == "1"
    assert row[rescore.EVERY_SEED_COLUMN] == pytest.approx(91.0)
    assert row[PROTOCOLS["original"]] == pytest.approx(92.0)
    assert row["authors - fetalft (dice points)"] == pytest.approx(1.0)


def test_an_ablation_run_is_rescored_at_its_own_image_size(
    tmp_path, synthetic_hc18, monkeypatch
) -> None:
    """A run made with ``--set image_size=...`` must be scored on images of that size, not
    at the profile's default size."""
    results, checkpoints = tmp_path / "results", tmp_path / "checkpoints"
    spec = RunSpec("decoder-0-4", 0, settings=(("image_size", 32),))
    Study(
        SMOKE,
        data_dir=synthetic_hc18,
        results_dir=results,
        checkpoint_dir=checkpoints,
        encoder_weights="random",
        precision="fp32",
        progress=False,
    ).run_all([spec])
    recorded = load_runs("smoke", results)
    assert recorded["settings"].tolist() == [(("image_size", 32),)]
    sizes = []
    scans = Study.scans

    def spy(self, spec, role):
        loaded = scans(self, spec, role)
        sizes.extend({scan.image.shape[-2:] for scan in loaded})
        return loaded

    monkeypatch.setattr(Study, "scans", spy)
    written, skipped = rescore.rescore_runs(
        SMOKE,
        results_dir=results,
        checkpoint_dir=checkpoints,
        data_dir=synthetic_hc18,
        progress=False,
    )
    assert skipped == [] and len(written) == 1
    assert sizes == [(32, 32)]

"""fetalft.gap: the paper's numbers explained factor by factor, on hand-made runs."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from fetalft import gap
from fetalft.evaluate import PROTOCOLS
from fetalft.report import paper_table

PAPER = paper_table().set_index("strategy")["dice"]


def runs_frame(dice_by_run: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for run, dices in dice_by_run.items():
        for seed, dice in enumerate(dices):
            rows.append({"run": run, "strategy": run.split("--")[0], "seed": seed, "dice": dice})
    return pd.DataFrame(rows)


def scores_frame(run: str, original: float, authors: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run": run,
            "seed": 1,
            "protocol": [PROTOCOLS["original"], PROTOCOLS["network"], PROTOCOLS["authors"]],
            "dice": [original, (original + authors) / 2, authors],
        }
    )


def test_every_factor_measured_adds_up_by_hand() -> None:
    runs = runs_frame(
        {
            "decoder-0-2": [0.60, 0.70],  # ours 65.00
            "decoder-0-2--leaky": [0.66],  # leak +1.00
            "decoder-0-2--random-bn-train": [0.90, 0.92, 0.94],  # +27.00
            "decoder-0-2--head": [0.80],  # the other head: 80.00
        }
    )
    scores = scores_frame("decoder-0-2", original=0.65, authors=0.665)  # scoring +1.50
    row = gap.gap_table(runs, scores).loc["decoder-0-2"]
    assert row["ours"] == pytest.approx(65.0) and row["seeds"] == "0, 1"
    assert row["leak"] == pytest.approx(1.0)
    assert row["scoring"] == pytest.approx(1.5)
    assert row["random BatchNorm"] == pytest.approx(27.0)
    assert row["explained"] == pytest.approx(94.5)
    assert row["remaining"] == pytest.approx(95.34 - 94.5)  # the paper's 95.34
    assert row["not measured"] == ""
    assert row["head"] == "frozen"
    assert row["head change"] == pytest.approx(-15.0)  # frozen (65) minus trainable (80)


def test_a_factor_without_runs_is_not_measured_never_zero() -> None:
    runs = runs_frame({"encoder": [0.70], "decoder-0-4": [0.96]})
    table = gap.gap_table(runs, pd.DataFrame())
    encoder = table.loc["encoder"]
    assert math.isnan(encoder["leak"]) and math.isnan(encoder["scoring"])
    assert math.isnan(encoder["random BatchNorm"])
    assert encoder["not measured"] == "leak, scoring, random BatchNorm"
    assert encoder["explained"] == pytest.approx(70.0)  # nothing added
    assert encoder["remaining"] == pytest.approx(PAPER["encoder"] - 70.0)


def test_a_strategy_without_frozen_random_layers_has_nothing_to_normalise() -> None:
    runs = runs_frame({"decoder-0-4": [0.96, 0.97], "decoder-0-4--frozen-head": [0.95]})
    table = gap.gap_table(runs, pd.DataFrame())
    row = table.loc["decoder-0-4"]
    assert row["random BatchNorm"] == 0.0
    assert row["not measured"] == "leak, scoring"
    assert row["head"] == "trains"
    assert row["head change"] == pytest.approx(1.5)  # 96.5 with the head, 95 without


def test_rows_follow_the_papers_order_and_only_runs_made() -> None:
    runs = runs_frame({"decoder-0-4": [0.9], "baseline": [0.97], "decoder-4": [0.4]})
    assert list(gap.gap_table(runs, pd.DataFrame()).index) == [
        "baseline",
        "decoder-4",
        "decoder-0-4",
    ]
    assert gap.gap_table(runs.iloc[0:0], pd.DataFrame()).empty


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("baseline", False),
        ("decoder-0-4", False),
        ("random-decoder-0-4", True),  # its random encoder is frozen
        ("encoder", True),
        ("decoder-0-2", True),
        ("decoder-4", True),  # blocks 0-3 frozen at random initialisation
    ],
)
def test_has_frozen_random_layers(strategy: str, expected: bool) -> None:
    assert gap.has_frozen_random_layers(strategy) is expected


def test_findings_say_what_the_table_shows() -> None:
    runs = runs_frame(
        {
            "decoder-0-4": [0.961],  # paper 96.28: remaining +0.18, explained
            "decoder-0-2": [0.70],  # paper 95.34
            "decoder-0-2--random-bn-train": [0.80],  # +10.00
            "encoder": [0.70],  # paper 96.22
            "encoder--random-bn-train": [0.60],  # -10.00
        }
    )
    table = gap.gap_table(runs, scores_frame("decoder-0-4", 0.96, 0.965))
    text = gap.findings(table)
    assert "1 of the 3 rows within 2 Dice points of the paper (decoder-0-4)" in text
    # encoder: 70.00 plus -10.00 explained against the paper's 96.22
    assert "encoder (+36.22)" in text and "decoder-0-2 (+15.34)" in text
    assert "by -10.00 to +10.00 points; it helps 1 of the 2 strategies (decoder-0-2)" in text
    assert "The authors' scoring adds +0.50 to +0.50 points in the 1 row where measured" in text
    assert "The leak" not in text  # not measured, so not said
    assert gap.findings(pd.DataFrame()).startswith("No main-table runs")

"""The tables as the book shows them (:mod:`fetalft.tables`), on hand-made run folders.

The numbers behind each expected cell are chosen by hand in the test (``write_run``), so a
table that showed the wrong run, unit or rounding would fail.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fetalft import report, tables
from fetalft.runfiles import load_runs
from fetalft.study import RunSpec
from tests.test_report import PROFILE, write_run


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return tmp_path / "results"


def test_style_table_highlights_named_rows_keeps_values_on_one_line_and_captions() -> None:
    table = pd.DataFrame({"run": ["baseline", "decoder-0-4"], "Dice (%)": ["1 ± 2", "3 ± 4"]})
    html = tables.style_table(table, "the caption", highlight=["decoder-0-4"]).to_html()
    assert "<caption>the caption</caption>" in html
    assert "white-space: nowrap" in html
    assert tables._keep_on_one_line("95.91 ± 0.34") and tables._keep_on_one_line(3.5)
    assert not tables._keep_on_one_line("not measured")
    assert html.count(tables.HIGHLIGHT.split(";")[0]) == 1  # one CSS rule for the row's cells
    assert 'class="dataframe fetalft-table"' in html
    assert ">0</th>" not in html  # row numbers hidden
    multi = pd.DataFrame(
        {"x": [1.234, 2.0]},
        index=pd.MultiIndex.from_tuples([("leaky split", "a"), ("head", "b")]),
    )
    styled = tables.style_table(multi, highlight=["b"]).to_html()
    assert "1.23" in styled and tables.HIGHLIGHT.split(";")[0] in styled


def test_variant_display_groups_kinds_and_keeps_the_change(results: Path) -> None:
    for seed in (0, 1):
        write_run(results, RunSpec("decoder-0-4", seed), test={"dice": 0.9, "adf_mm": 3.0})
        write_run(
            results,
            RunSpec("decoder-0-4", seed, split="leaky"),
            test={"dice": 0.91, "adf_mm": 2.5},
        )
    write_run(results, RunSpec("decoder-0-4", 0, train_fraction=0.1), test={"dice": 0.8})
    variants = report.variant_table(report.summarize_runs(load_runs(PROFILE, results)))
    table = tables.variant_display(variants)
    assert table.index.names == ["change", "run"]
    row = table.loc[("leaky split", "decoder-0-4")]
    assert row["seeds"] == "2 / 2"
    assert (row["Dice (%)"], row["change (points)"]) == ("91.00 ± 0.00", "+1.00")
    assert (row["abs. HC error (mm)"], row["change (mm)"]) == ("2.50 ± 0.00", "-0.50")
    assert ("10% of training images", "decoder-0-4") in table.index
    leaky = variants[variants["variant"] == "leaky"]
    assert list(tables.variant_display(leaky).index) == ["decoder-0-4"]
    assert tables.variant_caption(leaky).startswith("Each run with one change (leaky split)")


@pytest.fixture
def shown(monkeypatch) -> list:
    """What the show_* helpers pass to IPython's display, in order."""
    import IPython.display

    displayed = []
    monkeypatch.setattr(IPython.display, "display", displayed.append)
    return displayed


def test_show_table_titles_styles_and_says_when_empty(shown: list, capsys) -> None:
    tables.show_table(pd.DataFrame(), "nothing yet", "a caption")
    assert capsys.readouterr().out == "nothing yet\n" and not shown

    indexed = pd.DataFrame({"dice": [0.9]}, index=pd.Index([0.5], name="fraction"))
    tables.show_table(indexed, "", "test Dice (%)")
    assert "test Dice (%)" in shown[-1].to_html()
    tables.show_table(indexed, "")
    assert shown[-1] is indexed  # no caption asked: the frame as it is

    tables.show_table(pd.DataFrame({"dice": [0.9]}), "", None)
    assert "row0_col0" in shown[-1].to_html() and "0.90" in shown[-1].to_html()


def test_show_validation_drops_the_run_names_and_signs_the_changes(shown: list, capsys) -> None:
    tables.show_validation(pd.DataFrame(), "not finished", "a caption")
    assert capsys.readouterr().out == "not finished\n" and not shown
    table = pd.DataFrame(
        {
            "change": ["the recipe", "input 320 x 480"],
            "val Dice (%)": [97.0, 97.456],
            "val ADF (mm)": [2.0, 1.8],
            "ADF change (mm)": [0.0, -0.2],
            "run": ["decoder-0-4", "decoder-0-4--image-size-320x480"],
        }
    )
    tables.show_validation(table, "", "Validation images (80)")
    html = shown[-1].to_html()
    assert "Validation images (80)" in html and "97.46" in html and "-0.20" in html
    assert "+0.00" in html and "decoder-0-4--image-size" not in html


def test_show_paired_signs_the_change_and_prints_when_empty(shown: list, capsys) -> None:
    tables.show_paired(pd.DataFrame(), "nothing re-scored", "a caption")
    assert capsys.readouterr().out == "nothing re-scored\n" and not shown
    table = pd.DataFrame(
        {"images": [80], "mean change (mm)": [-0.0512], "p": [0.37944], "passes the bar": [False]},
        index=pd.Index(["encoder at 3e-4"], name="candidate"),
    )
    tables.show_paired(table, "", "Each candidate")
    html = shown[-1].to_html()
    assert "Each candidate" in html and "-0.05" in html and "0.379" in html
    assert ">no<" in html and "False" not in html


def test_data_efficiency_keeps_strategies_run_at_several_fractions(results: Path) -> None:
    write_run(results, RunSpec("decoder-0-4", 0), test={"dice": 0.9}, n_train=700)
    write_run(
        results, RunSpec("decoder-0-4", 0, train_fraction=0.5), test={"dice": 0.8}, n_train=350
    )
    write_run(results, RunSpec("decoder-0-4", 0, split="leaky", train_fraction=0.5))
    write_run(results, RunSpec("decoder-4", 0), n_train=700)  # one fraction only: left out
    write_run(results, RunSpec("decoder-4", 0, train_fraction=0.5, head_trainable=True))
    frozen = {"head_trainable": False}
    write_run(results, RunSpec("decoder-0-4", 0, **frozen), test={"dice": 0.85}, n_train=700)
    half_frozen = RunSpec("decoder-0-4", 0, train_fraction=0.5, **frozen)
    write_run(results, half_frozen, test={"dice": 0.75}, n_train=350)
    table = tables.data_efficiency(report.summarize_runs(load_runs(PROFILE, results)))
    assert list(table.columns) == ["decoder-0-4", "decoder-0-4--frozen-head"]
    assert list(table.index) == [(1.0, "700"), (0.5, "350")]
    assert table["decoder-0-4"].tolist() == ["90.00 (1 seed)", "80.00 (1 seed)"]
    assert table["decoder-0-4--frozen-head"].tolist() == ["85.00 (1 seed)", "75.00 (1 seed)"]


def test_paper_data_efficiency_reads_like_ours_with_the_papers_numbers() -> None:
    table = tables.paper_data_efficiency()
    assert list(table.index) == [(1.0, "799"), (0.5, "399"), (0.3, "239"), (0.1, "79")]
    assert table["baseline"].tolist() == [95.56, 94.75, 91.26, 88.9]
    assert table["decoder-0-4"].tolist() == [96.28, 95.66, 94.02, 92.19]
    assert table.index.names == ["train_fraction", "training_images"]

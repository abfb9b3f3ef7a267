"""The tables as the book shows them (:mod:`fetalft.tables`), on hand-made run folders.

The numbers behind each expected cell are chosen by hand in the test (``write_run``), so a
table that showed the wrong run, unit or rounding would fail.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from fetalft import report, tables
from fetalft.runfiles import load_runs
from fetalft.strategies import STRATEGIES
from fetalft.study import RunSpec
from tests.test_report import NAN, PROFILE, scores, write_run
from tests.test_report import summary as summary  # a fixture


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return tmp_path / "results"


def test_results_table_shows_mean_sd_over_seeds(summary: pd.DataFrame) -> None:
    table = tables.results_table(summary, metrics=("dice", "adf_mm", "iou")).set_index("run")
    assert list(table.columns) == ["trainable", "seeds", "Dice (%)", "abs. HC error (mm)"]
    assert table.loc["decoder-0-4", "Dice (%)"] == "93.00 ± 3.61"
    assert table.loc["decoder-0-4", "abs. HC error (mm)"] == "2.00 ± 1.00"
    assert table.loc["decoder-0-4", "trainable"] == "4,400,000"
    assert table.loc["decoder-0-4", "seeds"] == "0, 1, 2"
    assert table.loc["decoder-4", "Dice (%)"] == "40.00 (1 seed)"
    assert table.loc["decoder-4", "abs. HC error (mm)"] == "n/a"


def test_results_table_names_shared_seeds_once_in_its_caption(summary: pd.DataFrame) -> None:
    same = summary[summary["run"] == "decoder-0-4"]
    assert "seeds" not in tables.results_table(same).columns
    caption = tables.results_caption(same, best="decoder-0-4")
    assert caption == (
        "Test metrics, mean ± sd over seeds 0, 1, 2; each seed's value is its mean over 3 "
        "test images. Highlighted: decoder-0-4, the best strategy on validation."
    )


def test_comparison_display_pairs_the_paper_with_ours(summary: pd.DataFrame) -> None:
    summary = summary.assign(pixel_accuracy_mean=0.95, pixel_accuracy_sd=NAN, iou_mean=0.9)
    summary = summary.assign(iou_sd=NAN)
    table = tables.comparison_display(tables.comparison_table(summary))
    assert list(table.index) == list(STRATEGIES)
    assert list(table.columns.get_level_values(1)) == ["paper", "ours"] * 2
    ours = table.loc["decoder-0-4"]
    assert ours[("Dice (%)", "paper")] == "96.28 ± 0.38"
    assert ours[("Dice (%)", "ours")] == "93.00 ± 3.61"
    assert ours[("'mIoU' = fg IoU (%)", "ours")] == "90.00 (1 seed)"
    wide = tables.comparison_display(tables.comparison_table(summary), trainable=True)
    assert wide.loc["decoder-0-4", ("trainable", "ours")] == "4.40M"
    assert "seeds 0, 1, 2, scored per image" in tables.comparison_caption(summary)


def test_test_summary_shows_percent_and_a_null_mean_as_nan(results: Path) -> None:
    """A metric no test image could be measured on is ``null`` in metrics.json."""
    folder = write_run(results, RunSpec("decoder-4", 0), test={"dice": 0.9, "adf_mm": NAN})
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["test"]["adf_mm"]["mean"] is None
    table = tables.test_summary(metrics)
    assert list(table.index) == ["Dice (%)", "abs. HC error (mm)"]
    assert table.loc["Dice (%)", "mean"] == pytest.approx(90.0)
    assert table.loc["Dice (%)", "sd over images"] == pytest.approx(1.0)
    assert math.isnan(table.loc["abs. HC error (mm)", "mean"])
    assert math.isnan(table.loc["abs. HC error (mm)", "sd over images"])
    assert table["images"].tolist() == [3, 0]
    assert table["no value (n_nan)"].tolist() == [0, 3]


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


def test_paired_table_gives_each_metric_in_its_unit(results: Path) -> None:
    write_run(results, RunSpec("decoder-0-4", 0), per_image=scores([0.9, 0.8]))
    write_run(results, RunSpec("baseline", 0), per_image=scores([0.8, 0.7]))
    comparisons = report.paired_comparisons(
        PROFILE, "decoder-0-4", "baseline", ("dice",), results_dir=results
    )
    row = tables.paired_table([*comparisons, "a sentence"]).loc["Dice (%)"]
    assert (row["decoder-0-4"], row["baseline"]) == ("85.00", "75.00")
    assert (row["difference"], row["95% CI"]) == ("+10.00 points", "[+10.00, +10.00]")
    assert (row["images"], row["seeds"]) == (2, "0")


def test_efficiency_display_labels_rows_by_images_and_share() -> None:
    table = tables.efficiency_display(tables.paper_data_efficiency())
    assert list(table.index) == ["799 (100%)", "399 (50%)", "239 (30%)", "79 (10%)"]


def test_rerun_display_puts_machine_and_precision_in_one_cell(results: Path, tmp_path) -> None:
    reruns = tmp_path / "reruns"
    hardware = "CPU: Intel(R) Xeon(R) Processor, 2 threads"
    write_run(results, RunSpec("encoder", 0), test={"dice": 0.8, "adf_mm": 5.0}, precision="bf16")
    write_run(reruns, RunSpec("encoder", 0), test={"dice": 0.7, "adf_mm": 6.5}, hardware=hardware)
    table = tables.rerun_display(
        report.rerun_comparison(load_runs(PROFILE, results), load_runs(PROFILE, reruns))
    )
    row = table.loc[("encoder", 0)]
    assert row[("study", "machine, precision")] == "test CPU, bf16"
    assert row[("re-run", "machine, precision")] == "Intel Xeon, 2 threads, fp32"
    assert row[("change", "Dice (%)")] == "-10.00"


def test_labels_table_lists_every_label_and_the_seeds(results: Path) -> None:
    for seed in (0, 1):
        write_run(results, RunSpec("decoder-0-4", seed), precision=["fp32", "bf16"][seed])
    table = tables.labels_table(load_runs(PROFILE, results)).set_index("label")["value"]
    assert table["precision"] == "fp32 | bf16"
    assert table["test images"] == "3"
    assert table["seeds"] == "0, 1"


def test_short_run_tables_split_what_ran_from_the_dice_in_percent() -> None:
    accuracy = pd.DataFrame(
        {
            "setting": ["decoder-0-4, 2 epochs", "decoder-0-4, 2 epochs"],
            "weights": ["file:w.pth", "file:w.pth"],
            "repeats": [1, 3],
            "Dice: authors": [float("nan"), 0.82],
            "Dice: fetalft": [0.8178, 0.8185],
        },
        index=pd.Index(
            ["CPU: AMD EPYC, 2 threads", "CPU: Intel(R) Xeon(R) Processor, 2 threads"],
            name="benchmark machine",
        ),
    )
    setup, dice = tables.short_run_tables(accuracy)
    assert list(setup.index) == ["1", "2"]  # shown, not hidden like row numbers
    assert list(setup["machine"]) == ["AMD EPYC, 2 threads", "Intel Xeon, 2 threads"]
    assert list(dice.columns) == ["authors", "fetalft"]
    assert dice.loc["2", "fetalft"] == pytest.approx(81.8)


def test_show_table_titles_styles_and_says_when_empty(monkeypatch, capsys) -> None:
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    tables.show_table(pd.DataFrame(), "nothing yet", "a caption")
    assert capsys.readouterr().out == "nothing yet\n" and not shown

    indexed = pd.DataFrame({"dice": [0.9]}, index=pd.Index([0.5], name="fraction"))
    tables.show_table(indexed, "", "test Dice (%)")
    assert "test Dice (%)" in shown[-1].to_html()
    tables.show_table(indexed, "")
    assert shown[-1] is indexed  # no caption asked: the frame as it is

    tables.show_table(pd.DataFrame({"dice": [0.9]}), "", None)
    assert "row0_col0" in shown[-1].to_html() and "0.90" in shown[-1].to_html()


def test_comparison_table_sets_our_default_runs_beside_the_paper(summary: pd.DataFrame) -> None:
    summary = summary.assign(pixel_accuracy_mean=0.95, pixel_accuracy_sd=NAN, iou_mean=0.9)
    summary = summary.assign(iou_sd=NAN)
    table = tables.comparison_table(summary).set_index("strategy")
    assert list(table.index) == list(STRATEGIES)
    ours = table.loc["decoder-0-4"]
    assert ours["paper Dice"] == "96.28 ± 0.38"
    assert ours["our Dice"] == "93.00 ± 3.61"
    assert ours["our seeds"] == 3
    assert ours["our trainable"] == "4.40M"
    # decoder-4's default run, not its leaky variant (Dice 50)
    assert table.loc["decoder-4", "our Dice"] == "40.00 (1 seed)"
    assert table.loc["baseline", "our Dice"] == "not run yet"
    assert table.loc["baseline", "our seeds"] == 0


def test_metric_definitions_are_in_percent(summary: pd.DataFrame) -> None:
    summary = summary.assign(pixel_accuracy_mean=0.95, iou_mean=0.875, miou_mean=0.9)
    table = tables.metric_definitions(summary)
    assert table.loc["decoder-0-4"].tolist() == [95.0, 93.0, 87.5, 90.0]


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

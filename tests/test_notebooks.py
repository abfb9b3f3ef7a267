"""The helpers the chapters call (fetalft.book, the widgets), headless and on synthetic data.

nbmake proves that every chapter runs; these tests pin down what the chapters rely on:
the widgets react to clicks without a browser, the dataset helpers degrade on synthetic
data, and the chapter-6 submission path produces a valid file.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from fetalft import book as chapter
from fetalft import hc18, plots, report, runfiles, tables
from fetalft.predict import predict_test_set
from fetalft.profiles import get_profile
from fetalft.submission import check_submission, submission_with_fallback


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def parts() -> pd.DataFrame:
    return report.strategy_parts()


def test_strategy_explorer_follows_ticks_and_presets(parts: pd.DataFrame) -> None:
    from fetalft.widgets import StrategyExplorer

    explorer = StrategyExplorer(parts)
    whole = explorer.trainable
    assert explorer.preset.value == "decoder-0-4"
    for name, box in explorer.checkboxes.items():
        box.value = name in {"decoder.0", "decoder.1", "decoder.2"}
    assert explorer.preset.value == "decoder-0-2"
    assert explorer.trainable < whole
    explorer.checkboxes["head"].value = True
    assert explorer.preset.value == "(custom)"
    explorer.preset.value = "decoder-4"
    assert explorer.trainable_parts == {"decoder.4"}
    assert "trainable" in explorer.summary.value
    assert explorer.figure().axes
    assert "application/vnd.jupyter.widget-view+json" in displayed(explorer)


def displayed(obj) -> dict:
    """The mime bundle IPython's ``display(obj)`` publishes (as a notebook would store it)."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import display
    from IPython.utils.capture import capture_output

    InteractiveShell.instance()  # display() only publishes inside a shell
    with capture_output() as captured:
        display(obj)
    assert len(captured.outputs) == 1, captured.outputs
    return captured.outputs[0].data


def test_widgets_work_with_this_ipywidgets() -> None:
    """fetalft needs ipywidgets >= 7.7 (Colab preinstalls 7.7.1; pip keeps it): the
    requirement's lower bound is a version these tests pass with. Run them with 7.7.1 first
    on PYTHONPATH to check that version (see tests/test_colab.py's module docstring)."""
    import ipywidgets
    from packaging.version import Version

    from fetalft.widgets import StrategyExplorer

    assert Version(ipywidgets.__version__) >= Version("7.7")
    explorer = StrategyExplorer()
    assert displayed(explorer)["application/vnd.jupyter.widget-view+json"]["model_id"] == (
        explorer.widget.model_id
    )


def test_parameter_reduction_is_the_papers_claim(parts: pd.DataFrame) -> None:
    reduction = report.parameter_reduction(parts)
    assert round(100 * reduction["reduction"], 1) == 85.8


def test_split_summary_counts_the_leak() -> None:
    counts, siblings = chapter.split_summary()
    assert set(counts.index) == {"exam", "leaky"}
    assert (counts.sum(axis=1) == 999).all()
    assert siblings["exam"] == 0 and siblings["leaky"] > 0
    assert plots.split_overview(counts, siblings).axes


def test_dataset_helpers_on_synthetic_data(synthetic_hc18) -> None:
    records = hc18.load_records("training", synthetic_hc18)
    cases = chapter.border_cases(records)  # no HC18 names: the first record stands in
    assert len(cases) == 1 and cases[0].fill_fraction > 0.5
    picks = chapter.gallery(records, 4)
    assert [r.hc_mm for r in picks] == sorted(r.hc_mm for r in picks)
    check = chapter.expert_hc_check(records[:5])
    assert check["difference_mm"].abs().max() < 0.5
    steps = chapter.measurement_steps(records[0])
    assert steps.measurement.measurable and steps.figure().axes


def test_smoke_study_feeds_results_chapters(synthetic_hc18, tmp_path, monkeypatch, capsys) -> None:
    """The results chapters' path end to end on a tiny synthetic study: tables, browser,
    predictor and a valid submission for every test image."""
    monkeypatch.setenv("FETALFT_DATA_DIR", str(synthetic_hc18))
    monkeypatch.setenv("FETALFT_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("FETALFT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("FETALFT_ENCODER_WEIGHTS", "random")
    book = chapter.setup("smoke", show=False)
    specs = report.smoke_results_specs()
    assert report.smoke_study(book, specs) == []
    runs = runfiles.load_runs("smoke", book.results_dir)
    summary = report.summarize_runs(report.main_runs(runs))
    assert set(summary["run"]) == {"decoder-0-4", "decoder-4"}
    assert not tables.metric_definitions(summary).empty
    assert report.best_run(runs) in {"decoder-0-4", "decoder-4"}
    assert plots.dice_vs_parameters(summary, report.paper_table()).axes

    from fetalft.widgets import PredictionBrowser

    browser = PredictionBrowser("smoke", book.data_dir, book.results_dir)
    browser.index.value = browser.index.max
    assert browser.figure().axes

    predictor = chapter.predictor_for(book, runs)
    assert predictor is not None
    # without the best run's checkpoint the next best serves, and the chapter says so
    top = runs[report.is_main_variant(runs)].sort_values("best_val_dice").iloc[-1]
    runfiles.checkpoint_path(
        "smoke", top["run"], top["seed"], checkpoint_dir=book.checkpoint_dir
    ).unlink()
    capsys.readouterr()
    assert chapter.predictor_for(book, runs) is not None
    assert f"the best on validation, {top['run']} seed {top['seed']}" in capsys.readouterr().out
    test_records = book.records("test")
    measured = predict_test_set(predictor, test_records, progress=False)
    table, fallbacks = submission_with_fallback(measured, test_records, 150.0)
    check_submission(table, [r.image_path.name for r in test_records])
    assert set(fallbacks) <= set(table["filename"])
    assert len(chapter.submission_items(table, test_records, fallbacks, 3)) == 3


def test_empty_profile_says_so(tmp_path) -> None:
    runs = runfiles.load_runs("cpu", tmp_path)
    assert runs.empty
    assert "No run of the cpu profile has finished" in report.coverage_message(
        runs, get_profile("cpu")
    )
    summary = report.summarize_runs(report.main_runs(runs))
    assert (tables.comparison_table(summary)["our Dice"] == "not run yet").all()
    assert report.best_run(runs) is None
    assert plots.dice_vs_parameters(summary, report.paper_table()).axes
    assert tables.data_efficiency(summary).empty and report.variant_table(summary).empty

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
from fetalft import hc18, report, runfiles, tables
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
    import ipywidgets as W
    from packaging.version import Version

    from fetalft.widgets import Explorer

    assert Version(W.__version__) >= Version("7.7")

    class Ticks(Explorer):  # the controls chapter 3's strategy explorer is made of
        def __init__(self) -> None:
            self.output = W.Output()
            menu = W.Dropdown(options=["(custom)", "decoder-4"], value="decoder-4")
            ticks = [W.Checkbox(value=True, description="decoder.4", indent=False)]
            row = W.HBox(ticks, layout=W.Layout(flex_flow="row wrap"))
            self.widget = W.VBox([menu, row, W.HTML("<b>6,976</b>"), self.output])

    explorer = Ticks()
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
    """The results chapters' path end to end on a tiny synthetic study: the best run, its
    predictor and a valid submission for every test image (the chapters check their own
    tables, figures and browser)."""
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
    assert report.best_run(runs) in {"decoder-0-4", "decoder-4"}

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


def test_empty_profile_says_so(tmp_path) -> None:
    runs = runfiles.load_runs("cpu", tmp_path)
    assert runs.empty
    assert "No run of the cpu profile has finished" in report.coverage_message(
        runs, get_profile("cpu")
    )
    summary = report.summarize_runs(report.main_runs(runs))
    assert report.best_run(runs) is None
    assert tables.data_efficiency(summary).empty and report.variant_table(summary).empty

"""Figures read well on the book's page: text as large as the body's small print, and value
axes chosen for the data (tests/test_book.py checks the page layout itself)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fetalft import plots

RUNS = ["baseline", "encoder", "decoder-0", "decoder-2-4", "decoder-4", "decoder-0-4"]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def shown_width_px(fig) -> int:
    """The width of the PNG the notebook embeds (matplotlib-inline: 100 dpi, tight box)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return Image.open(buffer).width


def history() -> pd.DataFrame:
    epochs = np.arange(1, 21)
    return pd.DataFrame(
        {
            "epoch": epochs,
            "train_loss": np.linspace(0.5, 0.05, 20),
            "val_dice": 0.90 + 0.07 * (1 - np.exp(-epochs / 4)),
            "lr": 1e-3 * np.cos(np.linspace(0, 1.5, 20)) ** 2,
        }
    )


def summary() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run": RUNS,
            "dice_mean": np.linspace(0.9555, 0.9695, len(RUNS)),
            "dice_sd": np.full(len(RUNS), 0.002),
        }
    )


def metrics_table() -> pd.DataFrame:
    return pd.DataFrame(
        {"Dice": [97.15, 96.90], "IoU": [94.50, 94.00], "mIoU": [96.80, 96.50]},
        index=["decoder-0-4", "baseline"],
    )


def test_rendered_text_matches_the_png_the_page_shows() -> None:
    """A 13-inch figure with 10 pt text, as the chapters drew them, is shrunk to the column:
    its text ends up about half the size of the page's small print."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    for ax in axes:
        ax.set_xlabel("epoch", fontsize=10)
        ax.tick_params(labelsize=10)
    width = shown_width_px(fig)
    assert width > 1000
    assert plots.rendered_text_px(fig) == pytest.approx(10 / 72 * 100 * 688 / width, rel=0.02)
    assert plots.rendered_text_px(fig) < plots.SMALLEST_TEXT_PX


@pytest.mark.parametrize(
    "draw",
    [
        lambda: plots.training_curves(history(), "decoder-0-4, seed 0 (cpu profile)"),
        lambda: plots.metric_bars(summary(), "dice"),
        lambda: plots.grouped_bars(metrics_table(), "percent", "four metrics"),
        lambda: plots.grouped_bars(pd.concat([metrics_table()] * 2), "percent"),
    ],
    ids=["training_curves", "metric_bars", "grouped_bars", "grouped_bars-many-groups"],
)
def test_figure_fits_the_page_with_readable_text(draw) -> None:
    fig = draw()
    assert shown_width_px(fig) <= 688, "wider than the text column: shrunk on the page"
    assert plots.rendered_text_px(fig) >= plots.SMALLEST_TEXT_PX


def test_metric_axis_spans_the_data_not_zero_to_a_hundred() -> None:
    paper = pd.DataFrame({"strategy": RUNS, "dice": np.linspace(95.2, 96.3, len(RUNS))})
    fig = plots.metric_bars(summary(), "dice", paper)
    low, high = fig.axes[0].get_xlim()
    # every mean ± sd and every paper point is inside, with little more than that around it
    assert low <= 95.2 and high >= 96.95 + 0.2
    assert low > 94.5 and high < 97.7


def test_grouped_axis_spans_the_data_and_labels_each_value() -> None:
    fig = plots.grouped_bars(metrics_table(), "percent")
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert 93.0 < low <= 94.0 and 97.15 <= high < 99.0
    labels = {text.get_text() for text in ax.texts}
    assert {"97.15", "94.00", "96.50"} <= labels


def test_data_limits_pad_the_span() -> None:
    assert plots.data_limits([95.0, 96.4]) == pytest.approx((95.0 - 0.168, 96.4 + 0.168))
    assert plots.data_limits([96.0], [0.5], min_span=0.1) == pytest.approx((95.38, 96.62))
    assert plots.data_limits([97.0], min_span=1.0) == pytest.approx((96.38, 97.62))
    assert plots.data_limits([np.nan]) == (0.0, 1.0)


def test_figures_keep_showing_in_a_notebook_after_a_readable_one(tmp_path, monkeypatch) -> None:
    """The page-width font sizes must not disturb Jupyter's inline backend: with
    ``plt.rc_context`` every figure after the first readable one silently went missing."""
    import nbformat
    from nbclient import NotebookClient

    setup = (
        "import numpy as np, pandas as pd\n"
        "from fetalft import plots\n"
        "h = pd.DataFrame({'epoch': np.arange(1, 6), 'train_loss': np.linspace(0.5, 0.1, 5),\n"
        "                  'val_dice': np.linspace(0.8, 0.9, 5), 'lr': np.full(5, 1e-3)})"
    )
    draw = "plots.training_curves(h, 'x');"
    cells = [nbformat.v4.new_code_cell(code) for code in (setup, draw, draw, "print(1)")]
    notebook = nbformat.v4.new_notebook(cells=cells)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # CI sets Agg; the kernel inherits it
    NotebookClient(notebook, timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = [
        sum("image/png" in output.get("data", {}) for output in cell.outputs)
        for cell in notebook.cells[1:3]
    ]
    assert shown == [1, 1]

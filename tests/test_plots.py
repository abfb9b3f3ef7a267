"""Figures read well on the book's page: text as large as the body's small print, and value
axes chosen for the data (tests/test_book.py checks the page layout itself, and that every
figure on every page, also those a chapter draws in its own code, is shown unshrunk)."""

from __future__ import annotations

import inspect
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from fetalft import plots
from fetalft.ellipse import Ellipse


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


# ------------------------------------------------------------ every figure function, synthetic
SHAPE = (270, 400)  # an HC18 scan's aspect (540 x 800), halved


def scan() -> np.ndarray:
    rows, cols = np.mgrid[: SHAPE[0], : SHAPE[1]]
    return (127 + 100 * np.sin(rows / 17) * np.cos(cols / 23)).astype(np.uint8)


def head(shift: float = 0.0) -> Ellipse:
    return Ellipse(cx=200 + shift, cy=135, a=110, b=80, angle=0.3)


def images(n: int, title: str = "012_2HC: HC 176 mm") -> list[dict]:
    return [
        {"image": scan(), "truth": head(), "pred": head(4), "ellipse": head(4), "title": title}
        for _ in range(n)
    ]


def per_image(n: int = 60) -> pd.DataFrame:
    true = np.linspace(60, 340, n)
    return pd.DataFrame({"hc_true_mm": true, "hc_pred_mm": true + np.sin(true) * 3 + 1})


FIGURES = {
    "training_curves": lambda: plots.training_curves(history(), "decoder-0-4, seed 0 (cpu)"),
    "prediction_panel": lambda: plots.prediction_panel(scan(), head(), None, "no head"),
    "example_predictions": lambda: plots.example_predictions(
        images(3, "012_2HC (seed 2): Dice 97.1%, HC error +2.3 mm")
    ),
    "hc_agreement": lambda: plots.hc_agreement(per_image(), "decoder-0-4 (cpu profile)"),
    "mask_to_measurement": lambda: plots.mask_to_measurement(
        scan(),
        head().to_mask(SHAPE),
        head().to_mask(SHAPE),
        head().points(90),
        head(2),
        head(),
        "HC 176.2 mm (expert 175.0 mm), GA 19.8 weeks",
    ),
}


def figure_functions() -> set[str]:
    """The public functions of :mod:`fetalft.plots` that return a figure."""
    return {
        name
        for name, function in inspect.getmembers(plots, inspect.isfunction)
        if function.__module__ == plots.__name__
        and not name.startswith("_")
        and inspect.signature(function).return_annotation in (Figure, "Figure")
    }


def smallest_text_pt(fig) -> float:
    """The smallest font size (points) of any text the figure draws."""
    fig.canvas.draw()
    return min(
        text.get_fontsize()
        for text in fig.findobj(Text)
        if text.get_visible() and text.get_text().strip()
    )


def test_every_figure_function_has_a_case() -> None:
    assert figure_functions() == {case.split("-")[0] for case in FIGURES}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_every_figure_fits_the_page_with_text_as_large_as_the_small_print(name: str) -> None:
    """The page shows a figure at 100 dpi, shrunk to the 688 px column if wider; its smallest
    text must then be at least the page's small print (14 px: pre and tables are 0.875em of
    the 16 px body, measured in Chromium), less half a pixel for rounding."""
    fig = FIGURES[name]()
    width = shown_width_px(fig)
    assert width <= 688, f"{name} is {width} px wide: the page shrinks it to 688 px"
    shown_px = smallest_text_pt(fig) / 72 * 100 * min(1.0, 688 / width)
    assert shown_px >= 13.5, f"{name}: smallest text {shown_px:.1f} px on the page"


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

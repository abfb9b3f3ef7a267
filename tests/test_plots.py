"""Figures read well on the book's page: text as large as the body's small print, and value
axes chosen for the data (tests/test_book.py checks the page layout itself)."""

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


def parts() -> pd.DataFrame:
    """Every strategy's parts as :func:`fetalft.report.strategy_parts` lists them, with
    parameter counts of the size the real network has (millions down to a hundred)."""
    from fetalft.strategies import STRATEGIES

    sizes = {"encoder": 2.2e6, "head": 145}
    sizes |= {f"decoder.{i}": 3.76e6 / 8.6**i for i in range(5)}
    rows = [
        {
            "strategy": name,
            "part": part,
            "parameters": int(size),
            "trainable": "all" in strategy.trainable or part in strategy.trainable,
        }
        for name, strategy in STRATEGIES.items()
        for part, size in sizes.items()
    ]
    return pd.DataFrame(rows)


def results(n: int = len(RUNS)) -> pd.DataFrame:
    return summary().assign(trainable_parameters=np.geomspace(7e3, 3.1e7, n))


def paper() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "strategy": RUNS,
            "dice": np.linspace(95.2, 96.3, len(RUNS)),
            "dice_sd": 0.3,
            "paper_trainable_M": np.geomspace(7e-3, 31, len(RUNS)),
        }
    )


def per_image(n: int = 60) -> pd.DataFrame:
    true = np.linspace(60, 340, n)
    return pd.DataFrame({"hc_true_mm": true, "hc_pred_mm": true + np.sin(true) * 3 + 1})


def dataset() -> pd.DataFrame:
    hc = np.linspace(60, 340, 200)
    return pd.DataFrame({"hc_mm": hc, "pixel_size_mm": hc / 1500, "ga_weeks": 10 + hc / 12})


def sota_table() -> pd.DataFrame:
    from fetalft import sota

    ours = pd.DataFrame(
        {
            "name": ["baseline", "decoder-0-4"],
            "trainable_params_m": [31.0, 4.4],
            "dice_pct": [96.96, 95.91],
            "adf_mm": [2.93, 3.62],
        }
    )
    return sota.with_fetalft(sota.published_methods(), ours)


def augment(image: np.ndarray, mask: np.ndarray) -> dict:
    """A stand-in for the training transform: the normalised tensor and mask it returns."""
    import torch

    from fetalft.data import IMAGENET_MEAN, IMAGENET_STD

    channel = (image[:256, :256] / 255.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    return {"image": torch.tensor(np.stack([channel] * 3)), "mask": mask[:256, :256]}


FIGURES = {
    "scan_gallery": lambda: plots.scan_gallery(
        [scan()] * 8, [head()] * 8, [item["title"] for item in images(8)]
    ),
    "annotation_to_mask": lambda: plots.annotation_to_mask(
        scan(), scan() > 250, scan() > 200, head().to_mask(SHAPE), "012_2HC: outline not closed"
    ),
    "hc_distribution": lambda: plots.hc_distribution(dataset()),
    "hc_vs_pixel_size": lambda: plots.hc_vs_pixel_size(dataset()),
    "split_overview": lambda: plots.split_overview(
        pd.DataFrame(
            {"train": [749, 749], "val": [125, 125], "test": [125, 125]},
            index=["image-level", "exam-level"],
        ),
        pd.Series([58, 0], index=["image-level", "exam-level"]),
    ),
    "augmentation_grid": lambda: plots.augmentation_grid(scan(), head().to_mask(SHAPE), augment),
    "strategy_diagrams": lambda: plots.strategy_diagrams(parts()),
    "trainable_bars": lambda: plots.trainable_bars(parts()),
    "encoder_parameters": lambda: plots.encoder_parameters(
        pd.DataFrame(
            {
                "encoder_name": [f"efficientnet-b{i}" for i in range(13)],
                "encoder_M": np.linspace(2.2, 63, 13),
                "decoder_M": np.linspace(4.4, 9, 13),
                "paper_total_M": np.linspace(6.6, 70, 13),
            }
        )
    ),
    "training_curves": lambda: plots.training_curves(history(), "decoder-0-4, seed 0 (cpu)"),
    "selection_curves": lambda: plots.selection_curves(
        history().assign(
            val_dice_original=history()["val_dice"], val_hc_error_mm=np.linspace(4, 2, 20)
        ),
        "The recipe, seed 0: validation scores per epoch",
    ),
    "metric_bars": lambda: plots.metric_bars(summary(), "dice", paper()),
    "dice_vs_parameters": lambda: plots.dice_vs_parameters(results(), paper()),
    "prediction_panel": lambda: plots.prediction_panel(scan(), head(), None, "no head"),
    "example_predictions": lambda: plots.example_predictions(
        images(3, "012_2HC (seed 2): Dice 97.1%, HC error +2.3 mm")
    ),
    "hc_agreement": lambda: plots.hc_agreement(per_image(), "decoder-0-4 (cpu profile)"),
    "paired_differences": lambda: plots.paired_differences(
        pd.Series(np.linspace(0.9, 0.99, 50)),
        pd.Series(np.linspace(0.89, 0.985, 50)),
        ("decoder-0-4", "baseline"),
        "Dice",
    ),
    "mask_to_measurement": lambda: plots.mask_to_measurement(
        scan(),
        head().to_mask(SHAPE),
        head().to_mask(SHAPE),
        head().points(90),
        head(2),
        head(),
        "HC 176.2 mm (expert 175.0 mm), GA 19.8 weeks",
    ),
    "hadlock_curve": lambda: plots.hadlock_curve(np.linspace(60, 340, 50), dataset().head(5)),
    "submission_examples": lambda: plots.submission_examples(images(8, "512_HC (fallback)")),
    "grouped_bars": lambda: plots.grouped_bars(metrics_table(), "percent", "four metrics"),
    "grouped_bars-many-groups": lambda: plots.grouped_bars(pd.concat([metrics_table()] * 2), "%"),
    "sota_figure": lambda: plots.sota_figure(sota_table()),
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

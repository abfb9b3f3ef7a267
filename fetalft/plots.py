"""Figures of the fetalft book. Each function draws one figure and returns it.

Plotting only: the numbers come from :mod:`fetalft.report`, :mod:`fetalft.book` and the
package's other modules, so a figure can be redrawn from committed result files alone.
A figure only one chapter draws is on that chapter's page, in a hidden cell, drawn with the
helpers, sizes and colours here.
Colours are consistent across chapters: reference (expert) in magenta, prediction in green,
trainable parts in orange, frozen parts in blue.
"""

from __future__ import annotations

import functools
import math
import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fetalft.ellipse import Ellipse

TRUTH = "#d62dc6"
PRED = "#2ca02c"
TRAINS = "#f28e2b"
FROZEN = "#a0cbe8"
PAPER = "#7f7f7f"
OURS = "#4e79a7"

#: The book's text column at a 1280 px window is about 688 px; figures are shown at 100 dpi
#: (matplotlib-inline's default), so a figure wider than this is shrunk on the page.
PAGE_WIDTH_IN = 6.7
#: The smallest text a figure uses (ticks, legends, labels in a plot, titles of image panels):
#: 10 pt at 100 dpi is 13.9 px, as large as the page's small print (code input and output,
#: tables: 0.875em of the 16 px body, 14 px in Chromium).
SMALL_PT = 10
#: Font sizes of the figures drawn for the page's width (see :func:`readable`).
READABLE = {
    "font.size": 11,
    "axes.titlesize": 11,
    "axes.labelsize": 11,
    "xtick.labelsize": SMALL_PT,
    "ytick.labelsize": SMALL_PT,
    "legend.fontsize": SMALL_PT,
    "figure.titlesize": 11,
}


def readable(draw):
    """Draw with :data:`READABLE` font sizes: a figure sized for :data:`PAGE_WIDTH_IN` is
    shown unshrunk, so its text is as large on the page as the body's small print."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        # only these keys, not plt.rc_context: restoring every rcParam after a figure made in
        # the context stops Jupyter's inline backend from showing the figures of later cells
        saved = {key: plt.rcParams[key] for key in READABLE}
        plt.rcParams.update(READABLE)
        try:
            return draw(*args, **kwargs)
        finally:
            plt.rcParams.update(saved)

    return wrapper


def data_limits(values, errors=None, pad: float = 0.12, min_span: float = 1.0):
    """Axis limits around ``values`` (± ``errors``) with ``pad`` of the span on each side:
    ranges chosen for the data, so a 1.4-point gap is not drawn on a 0-100 axis."""
    values = np.asarray(values, dtype=float)
    errors = np.zeros_like(values) if errors is None else np.nan_to_num(np.asarray(errors, float))
    finite = np.isfinite(values)
    if not finite.any():
        return 0.0, 1.0
    low = float(np.min((values - errors)[finite]))
    high = float(np.max((values + errors)[finite]))
    span = max(high - low, min_span)
    middle = (low + high) / 2
    return middle - span / 2 - pad * span, middle + span / 2 + pad * span


def outline(ax, ellipse: Ellipse | None, color: str, label: str | None = None, lw: float = 1.5):
    """Draw ``ellipse`` (pixels) closed on ``ax``; nothing for ``None`` (no head was found)."""
    if ellipse is None:
        return
    points = ellipse.points(360)
    points = np.vstack([points, points[:1]])
    ax.plot(points[:, 0], points[:, 1], color=color, lw=lw, label=label)


def wrap(text: str, width_in: float, size: float = SMALL_PT) -> str:
    """``text`` broken into lines no wider than ``width_in`` inches at ``size`` points (about
    0.52 em a character in DejaVu Sans): the title of a narrow panel stays over its panel."""
    chars = max(8, int(width_in * 72 / (0.52 * size)))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def axis_width_in(ax) -> float:
    """The width of ``ax`` in inches as laid out so far (tight_layout may change it a little)."""
    return ax.get_position().width * ax.figure.get_figwidth()


def image_axis(ax, image: np.ndarray, title: str = "") -> None:
    """A grey scan on ``ax`` without axes, its title wrapped to the panel at the small print."""
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    ax.set_title(wrap(title, axis_width_in(ax)), fontsize=SMALL_PT)
    ax.set_axis_off()


def image_grid(n: int, ncols: int, aspect: float = 0.7, title_lines: int = 1):
    """A figure of the page's width with ``n`` image panels in rows of ``ncols``; ``aspect`` is
    an image's height over its width, ``title_lines`` the lines of text above each panel."""
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    row_in = PAGE_WIDTH_IN / ncols * aspect + 0.2 * title_lines + 0.1
    fig, axes = plt.subplots(nrows, ncols, figsize=(PAGE_WIDTH_IN, row_in * nrows), squeeze=False)
    # panels as wide as they will be after tight_layout, so titles wrap to their real width
    fig.subplots_adjust(left=0.01, right=0.99, wspace=0.08)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    return fig, axes


def millions(n: float) -> str:
    """``4404928 -> '4.40M'``, ``6976 -> '6,976'``."""
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{int(n):,}"


# --------------------------------------------------------------------------- training


@readable
def training_curves(history: pd.DataFrame, title: str = "") -> Figure:
    """Training loss, validation Dice (best epoch marked) and learning rate per epoch, drawn
    at the page's width so its text reads at the size of the body's small print."""
    fig, axes = plt.subplots(1, 3, figsize=(PAGE_WIDTH_IN, 2.9))
    axes[0].plot(history["epoch"], history["train_loss"], marker="o", ms=4, color=OURS)
    axes[0].set_title("training loss (BCE)")
    axes[1].plot(history["epoch"], 100 * history["val_dice"], marker="o", ms=4, color=PRED)
    best = history.loc[history["val_dice"].idxmax()]
    axes[1].scatter(
        [best["epoch"]], [100 * best["val_dice"]], s=120, facecolors="none", edgecolors="black"
    )
    # in the panel's lower right corner, where a rising Dice curve leaves room
    axes[1].text(
        0.97,
        0.05,
        f"kept: epoch {int(best['epoch'])}",
        transform=axes[1].transAxes,
        ha="right",
        va="bottom",
    )
    axes[1].set_title("validation Dice (%)")
    lr = history["lr"].astype(float)
    power = int(np.floor(np.log10(lr.abs().max()))) if (lr.abs().max() or 0) > 0 else 0
    axes[2].plot(history["epoch"], lr / 10.0**power, marker="o", ms=4, color=PAPER)
    # the power of ten in the title, not as matplotlib's offset text crowding the title
    axes[2].set_title("learning rate" + (f" (x 1e{power})" if power else ""))
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- results


@readable
def prediction_panel(
    image: np.ndarray,
    truth: Ellipse,
    pred: Ellipse | None,
    title: str = "",
    ax=None,
) -> Figure:
    """One test image with the expert's ellipse (magenta) and the model's fitted one (green)."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.6))
    else:
        fig = ax.figure
    image_axis(ax, image, title)
    outline(ax, truth, TRUTH, "expert")
    outline(ax, pred, PRED, "model")
    if pred is None:
        ax.text(10, 30, "no head found", color="yellow", va="top")
    ax.set_xlim(0, image.shape[1])
    ax.set_ylim(image.shape[0], 0)
    return fig


def overlap_panel(shape: tuple[int, int], truth: Ellipse, pred: Ellipse | None, ax) -> None:
    """Agreement of the filled ellipses: both (white), expert only (magenta), model only (green)."""
    t = truth.to_mask(shape).astype(bool)
    p = pred.to_mask(shape).astype(bool) if pred is not None else np.zeros(shape, bool)
    rgb = np.zeros((*shape, 3))
    rgb[t & p] = 1.0
    rgb[t & ~p] = (0.84, 0.18, 0.78)
    rgb[~t & p] = (0.17, 0.63, 0.17)
    ax.imshow(rgb)
    title = "overlap: both / expert only / model only"
    ax.set_title(wrap(title, axis_width_in(ax)), fontsize=SMALL_PT)
    ax.set_axis_off()


@readable
def example_predictions(items: Sequence[dict], ncols: int = 3) -> Figure:
    """Several :func:`prediction_panel`s; each item has image, truth, pred, title."""
    fig, axes = image_grid(len(items), ncols, title_lines=3)
    for ax, item in zip(axes.flat, items, strict=False):
        prediction_panel(item["image"], item["truth"], item["pred"], item["title"], ax=ax)
    handles = [
        plt.Line2D([], [], color=TRUTH, label="expert"),
        plt.Line2D([], [], color=PRED, label="model"),
    ]
    fig.legend(handles=handles, loc="lower center", ncols=2, frameon=False)
    fig.tight_layout(rect=(0, 0.35 / fig.get_figheight(), 1, 1))
    return fig


@readable
def hc_agreement(per_image: pd.DataFrame, title: str = "") -> Figure:
    """Predicted against expert HC, and the Bland-Altman plot of their difference."""
    data = per_image.dropna(subset=["hc_pred_mm"])
    fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH_IN, 3.8))
    ax = axes[0]
    ax.scatter(data["hc_true_mm"], data["hc_pred_mm"], s=10, alpha=0.6, color=OURS)
    low = float(min(data["hc_true_mm"].min(), data["hc_pred_mm"].min()))
    high = float(max(data["hc_true_mm"].max(), data["hc_pred_mm"].max()))
    ax.plot([low, high], [low, high], color="black", lw=0.8)
    ax.set_xlabel("expert HC (mm)")
    ax.set_ylabel("predicted HC (mm)")
    ax = axes[1]
    mean = (data["hc_true_mm"] + data["hc_pred_mm"]) / 2
    diff = data["hc_pred_mm"] - data["hc_true_mm"]
    bias, sd = diff.mean(), diff.std(ddof=1)
    ax.scatter(mean, diff, s=10, alpha=0.6, color=OURS)
    ax.axhline(bias, color="black", lw=0.8, label=f"bias {bias:+.2f} mm")
    for limit in (bias - 1.96 * sd, bias + 1.96 * sd):
        ax.axhline(limit, color="black", lw=0.8, ls="--")
    ax.set_xlabel("mean of expert and\npredicted HC (mm)")
    ax.set_ylabel("predicted - expert (mm)")
    ax.set_title(f"limits of agreement\n{bias - 1.96 * sd:+.1f} to {bias + 1.96 * sd:+.1f} mm")
    ax.legend(loc="upper left")
    if title:
        fig.suptitle(wrap(title, PAGE_WIDTH_IN, plt.rcParams["figure.titlesize"]))
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- biometry


@readable
def mask_to_measurement(
    image: np.ndarray,
    mask: np.ndarray,
    blob: np.ndarray,
    points: np.ndarray,
    ellipse: Ellipse | None,
    truth: Ellipse | None,
    text: str,
) -> Figure:
    """The biometry pipeline in four panels, two by two: image, mask, largest blob and its
    boundary, ellipse."""
    fig, axes = image_grid(4, 2, aspect=image.shape[0] / image.shape[1], title_lines=2)
    axes = axes.flat
    image_axis(axes[0], image, "scan")
    axes[1].imshow(mask, cmap="gray")
    axes[1].set_title("network mask (original size)", fontsize=SMALL_PT)
    axes[2].imshow(blob, cmap="gray")
    if len(points):
        axes[2].plot(points[:, 0], points[:, 1], ".", ms=1, color=PRED)
    axes[2].set_title("largest blob and its boundary", fontsize=SMALL_PT)
    image_axis(axes[3], image, text)
    outline(axes[3], truth, TRUTH, "expert")
    outline(axes[3], ellipse, PRED, "fitted")
    axes[3].legend(loc="lower right")
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    return fig

"""Figures of the fetalft book. Each function draws one figure and returns it.

Plotting only: the numbers come from :mod:`fetalft.report`, :mod:`fetalft.book` and the
package's other modules, so a figure can be redrawn from committed result files alone.
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
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

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


def _outline(ax, ellipse: Ellipse | None, color: str, label: str | None = None, lw: float = 1.5):
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


def _axis_width_in(ax) -> float:
    """The width of ``ax`` in inches as laid out so far (tight_layout may change it a little)."""
    return ax.get_position().width * ax.figure.get_figwidth()


def _image_axis(ax, image: np.ndarray, title: str = "") -> None:
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    ax.set_title(wrap(title, _axis_width_in(ax)), fontsize=SMALL_PT)
    ax.set_axis_off()


def _image_grid(n: int, ncols: int, aspect: float = 0.7, title_lines: int = 1):
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


# --------------------------------------------------------------------------- dataset


@readable
def scan_gallery(
    images: Sequence[np.ndarray],
    ellipses: Sequence[Ellipse | None],
    titles: Sequence[str],
    ncols: int = 4,
) -> Figure:
    """Ultrasound images with the expert's ellipse drawn over them."""
    fig, axes = _image_grid(len(images), ncols, title_lines=2)
    for ax, image, ellipse, title in zip(axes.flat, images, ellipses, titles, strict=False):
        _image_axis(ax, image, title)
        _outline(ax, ellipse, TRUTH)
    fig.tight_layout()
    return fig


@readable
def annotation_to_mask(
    image: np.ndarray, outline: np.ndarray, filled: np.ndarray, mask: np.ndarray, title: str
) -> Figure:
    """One annotation four ways: image, outline, hole-filled outline, ellipse-fitted mask
    (two by two: four in a row would be too small to see the outline at the page's width)."""
    fig, axes = _image_grid(4, 2, aspect=image.shape[0] / image.shape[1], title_lines=2)
    axes = axes.flat
    _image_axis(axes[0], image, title)
    panels = (
        (outline, "annotation (outline)"),
        (filled, "hole filling"),
        (mask, "fitted ellipse mask"),
    )
    for ax, (picture, label) in zip(axes[1:], panels, strict=True):
        ax.imshow(picture > 0, cmap="gray", vmin=0, vmax=1)
        ax.set_title(
            wrap(f"{label}: {100 * (picture > 0).mean():.1f}% of pixels", _axis_width_in(ax)),
            fontsize=SMALL_PT,
        )
        ax.set_axis_off()
    fig.tight_layout()
    return fig


@readable
def hc_distribution(table: pd.DataFrame) -> Figure:
    """Histograms of expert HC (mm), pixel size (mm) and Hadlock gestational age (weeks)."""
    fig, axes = plt.subplots(1, 3, figsize=(PAGE_WIDTH_IN, 2.9))
    columns = (
        ("hc_mm", "head circumference (mm)"),
        ("pixel_size_mm", "pixel size (mm)"),
        ("ga_weeks", "gestational age, Hadlock (weeks)"),
    )
    for ax, (column, label) in zip(axes, columns, strict=True):
        ax.hist(table[column], bins=40, color=OURS)
        ax.set_xlabel(wrap(label, _axis_width_in(ax), plt.rcParams["axes.labelsize"]))
        ax.set_title(f"median {table[column].median():.2f}")
    axes[0].set_ylabel("images")
    fig.tight_layout()
    return fig


@readable
def hc_vs_pixel_size(table: pd.DataFrame) -> Figure:
    """Pixel size against head circumference: sonographers zoom out as the head grows."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.scatter(table["hc_mm"], table["pixel_size_mm"], s=6, alpha=0.5, color=OURS)
    ax.set_xlabel("head circumference (mm)")
    ax.set_ylabel("pixel size (mm)")
    fig.tight_layout()
    return fig


@readable
def split_overview(counts: pd.DataFrame, siblings: pd.Series) -> Figure:
    """Images per role for each split, and test images with a same-exam scan in training.

    ``counts``: index split kind, columns roles; ``siblings``: per split kind, the number of
    test images whose exam also has a training or validation image. One panel above the
    other, each as wide as the page.
    """
    row_in = 0.45 * len(counts) + 1.1
    fig, axes = plt.subplots(2, 1, figsize=(PAGE_WIDTH_IN, 2 * row_in))
    left = np.zeros(len(counts))
    colors = {"train": OURS, "val": "#59a14f", "test": "#e15759"}
    for role in counts.columns:
        axes[0].barh(counts.index, counts[role], left=left, color=colors.get(role), label=role)
        for y, (x0, w) in enumerate(zip(left, counts[role], strict=True)):
            axes[0].text(x0 + w / 2, y, str(int(w)), ha="center", va="center", color="white")
        left += counts[role].to_numpy()
    axes[0].set_xlabel("images")
    # above the panel, right of its title: inside it would cover the bars
    axes[0].legend(loc="lower right", bbox_to_anchor=(1, 1), ncols=3, frameon=False)
    axes[0].set_title("images per role", loc="left")
    axes[1].barh(siblings.index, siblings.to_numpy(), color="#e15759")
    for y, v in enumerate(siblings.to_numpy()):
        axes[1].text(v, y, f" {int(v)}", va="center")
    axes[1].set_xlabel("test images with a same-exam scan in training")
    axes[1].set_xlim(0, max(1, siblings.max()) * 1.25)
    axes[1].set_title("leakage", loc="left")
    fig.tight_layout()
    return fig


@readable
def augmentation_grid(image: np.ndarray, mask: np.ndarray, transform, n: int = 6) -> Figure:
    """``n`` draws of ``transform`` on one image and its mask, shown de-normalised."""
    from fetalft.data import IMAGENET_MEAN, IMAGENET_STD

    fig, axes = _image_grid(n + 1, 4, aspect=0.8)
    axes = axes.flat
    axes[0].imshow(image, cmap="gray")
    axes[0].contour(mask, levels=[0.5], colors=[TRUTH], linewidths=1)
    axes[0].set_title("original", fontsize=SMALL_PT)
    for i, ax in enumerate(axes[1 : n + 1]):
        out = transform(image=image, mask=mask)
        tensor = out["image"].numpy()
        picture = tensor[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
        ax.imshow(picture, cmap="gray", vmin=0, vmax=1)
        ax.contour(np.asarray(out["mask"]), levels=[0.5], colors=[TRUTH], linewidths=1)
        ax.set_title(f"draw {i + 1}", fontsize=SMALL_PT)
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- models


def freezing_diagram(
    ax, parts: pd.DataFrame, title: str = "", pretrained: bool = True, fontsize: float = SMALL_PT
) -> None:
    """Draw one network as a U: encoder down the left, decoder blocks up the right, head.

    ``parts`` has columns ``part, parameters, trainable`` (one strategy of
    :func:`fetalft.report.strategy_parts`). Orange parts train, blue hatched parts are frozen.
    The encoder is one part in every strategy, so its levels share a colour; dashed arrows
    are the skip connections. A schematic: block sizes are not to scale. Labels take two
    lines (name, parameters) so that a diagram half the page wide holds them at ``fontsize``.
    """
    from fetalft.report import part_order

    table = parts.set_index("part")
    order = part_order(table.index)
    decoders = [p for p in order if p.startswith("decoder")]
    nd = len(decoders)
    width, height, step = 1.55, 0.8, 1.2  # box size and the distance of two levels

    def box(x, y, part, text, w=width, h=height):
        trains = bool(table.loc[part, "trainable"])
        ax.add_patch(
            FancyBboxPatch(
                (x - w / 2, y - h / 2),
                w,
                h,
                boxstyle="round,pad=0.02,rounding_size=0.12",
                facecolor=TRAINS if trains else FROZEN,
                edgecolor="#333333",
                hatch=None if trains else "//",
                lw=0.8,
            )
        )
        ax.text(
            x,
            y,
            text,
            ha="center",
            va="center",
            fontsize=fontsize,
            linespacing=1.0,
            bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.75},
        )

    def arrow(p, q, dashed=False):
        ax.add_patch(
            FancyArrowPatch(
                p,
                q,
                arrowstyle="-|>",
                mutation_scale=7,
                lw=0.7,
                color="#555555",
                linestyle=(0, (3, 2)) if dashed else "-",
            )
        )

    init = "ImageNet" if pretrained else "random"
    enc_xy = [(-2.7 + 0.28 * i, -step * i) for i in range(nd)]
    dec_xy = [(2.7 - 0.28 * i, -step * i) for i in range(nd)]  # index: level from the top
    bottom = (0.0, -step * nd - 0.15)
    for i, (x, y) in enumerate(enc_xy):
        box(x, y, "encoder", f"enc {i + 1}")
        below = enc_xy[i + 1] if i + 1 < nd else (bottom[0] - 0.9, bottom[1] + 0.4)
        arrow((x, y - height / 2), (below[0], below[1] + height / 2))
    encoder = table.loc["encoder", "parameters"]
    box(*bottom, "encoder", f"encoder ({init})\n{millions(encoder)}", w=3.6, h=0.9)
    for j, part in enumerate(decoders):  # decoder.0 is the deepest: bottom of the right side
        x, y = dec_xy[nd - 1 - j]
        label = part.replace("decoder.", "dec ")
        box(x, y, part, f"{label}\n{millions(table.loc[part, 'parameters'])}")
        if j == 0:
            arrow((bottom[0] + 0.9, bottom[1] + 0.4), (x, y - height / 2))
        else:
            below = dec_xy[nd - j]
            arrow((below[0], below[1] + height / 2), (x, y - height / 2))
        ex, ey = enc_xy[nd - 1 - j]
        arrow((ex + width / 2, ey), (x - width / 2, y), dashed=True)
    hx, hy = dec_xy[0][0], step
    box(hx, hy, "head", f"head\n{millions(table.loc['head', 'parameters'])}")
    arrow((dec_xy[0][0], dec_xy[0][1] + height / 2), (hx, hy - height / 2))
    trainable = int(table.loc[table["trainable"], "parameters"].sum())
    total = int(table["parameters"].sum())
    ax.set_title(
        f"{title}\ntrains {millions(trainable)} of {millions(total)} "
        f"({100 * trainable / total:.1f}%)",
        fontsize=fontsize + 1,
    )
    ax.set_xlim(-3.6, 3.6)
    ax.set_ylim(bottom[1] - 0.55, step + 0.5)
    ax.set_axis_off()


def freezing_legend(fig: Figure) -> None:
    fig.legend(
        handles=[
            Patch(facecolor=TRAINS, edgecolor="#333333", label="trains"),
            Patch(facecolor=FROZEN, edgecolor="#333333", hatch="///", label="frozen"),
        ],
        loc="lower center",
        ncols=2,
        frameon=False,
    )


@readable
def strategy_diagrams(
    parts: pd.DataFrame, strategies: Sequence[str] | None = None, ncols: int = 2
) -> Figure:
    """The paper's Figure 1a for every strategy, drawn from the registry: two diagrams a row,
    so that each is half the page wide and its labels read at the page's small print."""
    from fetalft.strategies import STRATEGIES

    names = list(strategies or dict.fromkeys(parts["strategy"]))
    ncols = min(ncols, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(PAGE_WIDTH_IN, 3.5 * nrows + 0.4), squeeze=False
    )
    for ax in axes.flat[len(names) :]:
        ax.set_axis_off()
    for ax, name in zip(axes.flat, names, strict=False):
        strategy = STRATEGIES[name]
        freezing_diagram(
            ax,
            parts[parts["strategy"] == name],
            f"{name}",
            pretrained=strategy.pretrained,
        )
    freezing_legend(fig)
    fig.tight_layout(rect=(0, 0.4 / fig.get_figheight(), 1, 1))
    return fig


@readable
def trainable_bars(parts: pd.DataFrame) -> Figure:
    """Trainable and frozen parameters per strategy (log scale: they span 4 decades)."""
    totals = (
        parts.assign(kind=np.where(parts["trainable"], "trainable", "frozen"))
        .pivot_table(index="strategy", columns="kind", values="parameters", aggfunc="sum")
        .reindex(list(dict.fromkeys(parts["strategy"])))
        .fillna(0)
    )
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH_IN, 0.4 * len(totals) + 1.0))
    y = np.arange(len(totals))
    ax.barh(y - 0.2, totals["trainable"], height=0.4, color=TRAINS, label="trainable")
    ax.barh(y + 0.2, totals.get("frozen", 0), height=0.4, color=FROZEN, hatch="///", label="frozen")
    for yi, value in zip(y, totals["trainable"], strict=True):
        ax.text(value, yi - 0.2, f" {millions(value)}", va="center", fontsize=SMALL_PT)
    ax.set_yticks(y, totals.index)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(1e3, 2e8)
    ax.set_xlabel("parameters (log scale)")
    ax.legend(loc="lower right", bbox_to_anchor=(1, 1), ncols=2, frameon=False)  # off the bars
    fig.tight_layout()
    return fig


@readable
def encoder_parameters(table: pd.DataFrame) -> Figure:
    """Encoder and decoder parameters of ``Unet`` with 13 encoders: ours (bars) vs paper (dots)."""
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH_IN, 0.3 * len(table) + 1.2))
    y = np.arange(len(table))
    ax.barh(y, table["encoder_M"], color=FROZEN, label="encoder (measured)")
    ax.barh(y, table["decoder_M"], left=table["encoder_M"], color=TRAINS, label="decoder + head")
    ax.scatter(table["paper_total_M"], y, color="black", marker="|", s=120, label="paper total")
    ax.set_yticks(y, table["encoder_name"])
    ax.invert_yaxis()
    ax.set_xlabel("parameters (millions)")
    ax.legend(loc="lower right", bbox_to_anchor=(1, 1), ncols=3, frameon=False)  # off the bars
    fig.tight_layout()
    return fig


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


@readable
def selection_curves(history: pd.DataFrame, title: str = "") -> Figure:
    """Validation Dice and HC error per epoch, each with the epoch it would keep, and the
    learning rate: how choosing the epoch by millimetres differs from choosing it by Dice.
    One panel above the other on a shared epoch axis, each as wide as the page."""
    fig, axes = plt.subplots(3, 1, figsize=(PAGE_WIDTH_IN, 6.4), sharex=True)
    panels = (
        (axes[0], 100 * history["val_dice_original"], "validation Dice (%)", "max"),
        (axes[1], history["val_hc_error_mm"], "validation HC error (mm)", "min"),
    )
    for ax, values, label, best in panels:
        ax.plot(history["epoch"], values, marker="o", color=OURS)
        kept = values.idxmax() if best == "max" else values.idxmin()
        ax.scatter(
            [history.loc[kept, "epoch"]],
            [values[kept]],
            s=140,
            facecolors="none",
            edgecolors="black",
            zorder=3,
        )
        late = history.loc[kept, "epoch"] > 0.75 * history["epoch"].max()
        ax.annotate(
            f"best: epoch {int(history.loc[kept, 'epoch'])}",
            (history.loc[kept, "epoch"], values[kept]),
            textcoords="offset points",
            xytext=(0, 14),  # clear of the circle around the point
            ha="right" if late else "center",  # a late epoch's label would leave the panel
        )
        ax.margins(y=0.25)  # room above the points for the label
        ax.set_title(label, loc="left")
    axes[2].plot(history["epoch"], history["lr"], marker="o", color=PAPER)
    axes[2].set_title("learning rate after epoch", loc="left")
    axes[2].set_xlabel("epoch")
    axes[2].xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- results


@readable
def metric_bars(
    summary: pd.DataFrame, metric: str = "dice", paper: pd.DataFrame | None = None
) -> Figure:
    """Mean (dot) and sd over seeds (error bar) of one metric per run; the paper beside it.

    Dots, not bars: the runs differ by a point or two, so the axis spans the data (a bar's
    length would have to start at zero and hide those differences)."""
    from fetalft.report import METRIC_LABELS, display_scale

    scale = display_scale(metric)
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH_IN, 0.34 * len(summary) + 1.3))
    y = np.arange(len(summary))
    means = summary[f"{metric}_mean"].to_numpy(dtype=float) * scale
    sds = summary[f"{metric}_sd"].fillna(0).to_numpy(dtype=float) * scale
    ax.errorbar(means, y, xerr=sds, fmt="o", color=OURS, capsize=3, label="this book (mean ± sd)")
    shown = list(means - sds) + list(means + sds)
    if paper is not None and metric in ("dice", "pixel_accuracy"):
        column = {"dice": "dice", "pixel_accuracy": "pa"}[metric]
        values = summary["run"].map(paper.set_index("strategy")[column]).to_numpy(dtype=float)
        ax.scatter(values, y, marker="D", color="black", zorder=3, label="paper (other protocol)")
        shown += list(values)
    low, high = data_limits(shown, min_span=0.5 if scale == 100 else 0.05)
    ax.set_xlim(low, min(high, 100.5) if scale == 100 else high)  # no percent past 100
    ax.set_yticks(y, summary["run"])
    ax.set_ylim(len(summary) - 0.5, -0.5)
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel(METRIC_LABELS[metric])
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


@readable
def dice_vs_parameters(summary: pd.DataFrame, paper: pd.DataFrame | None = None) -> Figure:
    """Test Dice against trainable parameters: ours (mean ± sd over seeds) and the paper's."""
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH_IN, 4.4))
    if summary.empty:  # no runs yet: the paper's points alone, and say so
        summary = pd.DataFrame(columns=["run", "trainable_parameters", "dice_mean", "dice_sd"])
        ax.set_title("no runs of this profile yet: the paper's points only")
    ax.errorbar(
        summary["trainable_parameters"],
        100 * summary["dice_mean"],
        yerr=100 * summary["dice_sd"].fillna(0),
        fmt="o",
        color=OURS,
        capsize=3,
        label="this book (mean ± sd over seeds)",
    )
    if paper is not None:
        ax.errorbar(
            paper["paper_trainable_M"] * 1e6,
            paper["dice"],
            yerr=paper["dice_sd"],
            fmt="D",
            mfc="none",
            color=PAPER,
            capsize=2,
            label="paper (leaky split, 512 px, T4)",
        )
    ax.set_xscale("log")
    # run names a line apart at least (runs with similar parameter counts share an x)
    fig.tight_layout()
    low, high = ax.get_ylim()
    line = 1.3 * SMALL_PT / 72 / (ax.get_position().height * fig.get_figheight()) * (high - low)
    dice = list(100 * summary["dice_mean"].astype(float))
    for row, y, y_text in zip(
        summary.itertuples(index=False),
        dice,
        _within(_spread(dice, line), (low, high), line),
        strict=True,
    ):
        ax.annotate(
            row.run,
            (row.trainable_parameters, y),
            xytext=(row.trainable_parameters * 1.15, y_text),
            textcoords="data",
            fontsize=SMALL_PT,
            va="center",
            arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6},
        )
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel("test Dice (%)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


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
    _image_axis(ax, image, title)
    _outline(ax, truth, TRUTH, "expert")
    _outline(ax, pred, PRED, "model")
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
    ax.set_title(wrap(title, _axis_width_in(ax)), fontsize=SMALL_PT)
    ax.set_axis_off()


@readable
def example_predictions(items: Sequence[dict], ncols: int = 3) -> Figure:
    """Several :func:`prediction_panel`s; each item has image, truth, pred, title."""
    fig, axes = _image_grid(len(items), ncols, title_lines=3)
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


@readable
def paired_differences(
    per_image_a: pd.Series, per_image_b: pd.Series, labels, metric: str
) -> Figure:
    """Per-image metric of two runs on the same images (one dot per image)."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.scatter(per_image_b, per_image_a, s=10, alpha=0.6, color=OURS)
    low = float(min(per_image_a.min(), per_image_b.min()))
    ax.plot([low, 1], [low, 1], color="black", lw=0.8)
    ax.set_xlabel(f"{labels[1]}: {metric}")
    ax.set_ylabel(f"{labels[0]}: {metric}")
    ax.set_title("one dot per test image;\nabove the line: first run better")
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
    fig, axes = _image_grid(4, 2, aspect=image.shape[0] / image.shape[1], title_lines=2)
    axes = axes.flat
    _image_axis(axes[0], image, "scan")
    axes[1].imshow(mask, cmap="gray")
    axes[1].set_title("network mask (original size)", fontsize=SMALL_PT)
    axes[2].imshow(blob, cmap="gray")
    if len(points):
        axes[2].plot(points[:, 0], points[:, 1], ".", ms=1, color=PRED)
    axes[2].set_title("largest blob and its boundary", fontsize=SMALL_PT)
    _image_axis(axes[3], image, text)
    _outline(axes[3], truth, TRUTH, "expert")
    _outline(axes[3], ellipse, PRED, "fitted")
    axes[3].legend(loc="lower right")
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


@readable
def hadlock_curve(hc_mm: np.ndarray, marks: pd.DataFrame | None = None) -> Figure:
    """Hadlock's gestational age curve, with measured heads marked."""
    from fetalft.biometry import hadlock_ga_weeks

    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(hc_mm, [hadlock_ga_weeks(h) for h in hc_mm], color="black", lw=1)
    if marks is not None:
        ax.scatter(marks["hc_mm"], marks["ga_weeks"], color=PRED, zorder=3, s=20)
    ax.set_xlabel("head circumference (mm)")
    ax.set_ylabel("gestational age (weeks)")
    fig.tight_layout()
    return fig


@readable
def submission_examples(items: Sequence[dict], ncols: int = 4) -> Figure:
    """Test images with the submitted ellipse (no reference exists for them)."""
    fig, axes = _image_grid(len(items), ncols, title_lines=2)
    for ax, item in zip(axes.flat, items, strict=False):
        _image_axis(ax, item["image"], item["title"])
        _outline(ax, item["ellipse"], PRED)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- reproducibility


@readable
def grouped_bars(table: pd.DataFrame, ylabel: str, title: str = "") -> Figure:
    """A small table as dots: rows are groups on the x axis, columns are dots side by side,
    each labelled with its value.

    Dots, not bars, and a value axis chosen for the data: the values may differ by a point
    where a bar would have to start at zero. The figure keeps to the page's width."""
    n = len(table.columns)
    width = min(PAGE_WIDTH_IN, max(4.5, 0.6 * n * len(table) + 1.5))
    fig, ax = plt.subplots(figsize=(width, 3.8), layout="constrained")
    x = np.arange(len(table))
    step = 0.8 / max(n, 1)
    crowded = n * len(table) > 6  # horizontal labels of neighbouring dots would overlap
    palette = [OURS, TRAINS, PRED, PAPER]
    for i, column in enumerate(table.columns):
        values = table[column].to_numpy(dtype=float)
        offset = x + (i - (n - 1) / 2) * step
        ax.plot(offset, values, "o", ms=7, label=str(column), color=palette[i % 4])
        for xi, v in zip(offset, values, strict=True):
            if np.isfinite(v):
                ax.annotate(
                    f"{v:.2f}",
                    (xi, v),
                    textcoords="offset points",
                    xytext=(0, 7),
                    ha="center",
                    va="bottom",
                    rotation=90 if crowded else 0,  # upright labels stay in their own column
                )
    low, high = data_limits(table.to_numpy(dtype=float).ravel())
    ax.set_ylim(low, high + (0.3 if crowded else 0.15) * (high - low))  # room for the labels
    ax.set_yticks([t for t in ax.get_yticks() if low <= t <= high])  # no ticks past the data
    ax.set_xlim(-0.5, len(table) - 0.5)
    ax.set_xticks(x, table.index)
    ax.grid(axis="y", alpha=0.3)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    long_names = sum(len(str(c)) for c in table.columns) > 40
    fig.legend(loc="outside lower center", ncols=2 if long_names else n, frameon=False)
    return fig


# --------------------------------------------------------------------------- state of the art


def _spread(values: Sequence[float], gap: float) -> list[float]:
    """Label positions near ``values`` but at least ``gap`` apart (same order as given)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    placed: dict[int, float] = {}
    last = -math.inf
    for i in order:
        placed[i] = max(values[i], last + gap)
        last = placed[i]
    shift = (max(placed.values()) - max(values)) / 2 if placed else 0.0
    return [placed[i] - shift for i in range(len(values))]


def _within(ys: list[float], limits: tuple[float, float], gap: float) -> list[float]:
    """Label positions ``ys`` shifted together so that none sits within half a ``gap`` of the
    axis' ``limits`` (when they fit): a label at the edge would run into the tick labels."""
    if not ys:
        return ys
    low, high = limits[0] + gap / 2, limits[1] - gap / 2
    shift = max(0.0, low - min(ys)) or min(0.0, high - max(ys))
    return [y + shift for y in ys]


def _label_room_in(ax, x: float, strip: bool) -> float:
    """Inches a point's label has in :func:`sota_figure`: right of the point in the strip and
    below 10M parameters, left of it above (the main panel's x axis is log 1-200)."""
    width = _axis_width_in(ax)
    if strip:
        return width - 0.4
    share = math.log(x) / math.log(200.0)
    return max(1.2, (share if x > 10 else 1 - share) * width - 0.3)


@readable
def sota_figure(table: pd.DataFrame) -> Figure:
    """Published HC18 results and fetalft's, by trainable parameters: Dice (top) and ADF (bottom).

    ``table`` is :func:`fetalft.sota.published_methods` (optionally through
    :func:`fetalft.sota.with_fetalft`). Marker shape says where a result was scored: circles on
    the challenge's hidden test set, squares on a split of the training images, diamonds for
    fetalft's exam-level split. Methods whose parameter count no source states sit in the
    "not stated" strip on the left; a count the paper cites but no source confirms is drawn
    hollow at that count. Methods with no value for a panel's metric are listed under the figure.
    The figure is the page's width: labels of the points wrap onto two lines and are spaced by
    their height in inches, so they stay apart at the page's small print.
    """
    from matplotlib.ticker import FuncFormatter

    from fetalft.sota import CHALLENGE

    def style(row) -> dict:
        if row.group == "fetalft":
            return {"marker": "D", "color": OURS}
        if row.test_set == CHALLENGE:
            return {"marker": "o", "color": PRED}
        return {"marker": "s", "color": TRAINS}

    metrics = [("dice_pct", "Dice (%)", 2), ("adf_mm", "ADF (mm)", 2)]
    listed: list[str] = []
    for column, ylabel, _ in metrics:
        missing = table[table[column].isna()]
        if len(missing):
            names = [
                row.label
                + (
                    f" (IoU {row.iou_pct:.2f}%)"
                    if column == "dice_pct" and pd.notna(row.iou_pct)
                    else ""
                )
                + (
                    f" [{row.cited_params_m:g}M parameters as cited by the paper]"
                    if column == "dice_pct" and pd.notna(row.cited_params_m)
                    else ""
                )
                for row in missing.itertuples(index=False)
            ]
            listed.append(f"No {ylabel.split(' ')[0]} stated: " + "; ".join(names) + ".")
    note = "\n".join(wrap(line, PAGE_WIDTH_IN - 0.3) for line in listed)
    line_in = 1.25 * SMALL_PT / 72  # the height of one line of small print
    note_in = (note.count("\n") + 1) * line_in + 0.15 if listed else 0.0
    scored = table["dice_pct"].notna() | table["adf_mm"].notna()
    hollow = table["trainable_params_m"].isna() & table["cited_params_m"].notna() & scored
    legend_in = (2 + int(hollow.any()) + int((table["group"] == "fetalft").any())) * line_in
    panel_in, between_in = 3.3, 1.0  # a panel's height; its x label and the next one's title
    height = legend_in + 0.45 + 2 * panel_in + between_in + 0.55 + note_in
    fig = plt.figure(figsize=(PAGE_WIDTH_IN, height))
    grid = fig.add_gridspec(
        2, 2, width_ratios=[2.5, 3.2], wspace=0.04, hspace=between_in / panel_in
    )
    fig.subplots_adjust(
        top=1 - (legend_in + 0.45) / height,
        bottom=(note_in + 0.55) / height,
        left=0.11,
        right=0.98,
    )
    for r, (column, ylabel, digits) in enumerate(metrics):
        strip = fig.add_subplot(grid[r, 0])
        main = fig.add_subplot(grid[r, 1], sharey=strip)
        rows = table[table[column].notna()]
        values = rows[column].astype(float)
        if len(values):
            low, high = values.min(), values.max()
            pad = max(0.15 * (high - low), 0.25 if column == "dice_pct" else 0.1)
            strip.set_ylim(low - pad, high + pad)
        span = strip.get_ylim()[1] - strip.get_ylim()[0]

        placed = {"strip": [], "main": []}
        for row in rows.itertuples(index=False):
            kind = style(row)
            params = row.trainable_params_m
            value = getattr(row, column)
            label = f"{row.label}: {value:.{digits}f}"
            if pd.notna(params):
                main.plot(params, value, ls="none", ms=8, **kind)
                placed["main"].append((params, value, label))
            elif pd.notna(row.cited_params_m):
                main.plot(row.cited_params_m, value, ls="none", ms=8, mfc="none", **kind)
                placed["main"].append((row.cited_params_m, value, f"{label}\n(params as cited)"))
            else:
                strip.plot(0.0, value, ls="none", ms=8, **kind)
                placed["strip"].append((0.0, value, label))
        for where, ax in (("strip", strip), ("main", main)):
            texts = [wrap(p[2], _label_room_in(ax, p[0], where == "strip")) for p in placed[where]]
            lines = max((t.count("\n") + 1 for t in texts), default=1)
            gap = (lines * line_in + 0.05) / panel_in * span  # one label's height, in data
            ys = _within(_spread([p[1] for p in placed[where]], gap=gap), ax.get_ylim(), gap)
            for (x, y, _), text, y_text in zip(placed[where], texts, ys, strict=True):
                right = where == "main" and x > 10
                if where == "strip":
                    anchor = (x + 0.08, y_text)
                else:
                    anchor = (x / 1.2, y_text) if right else (x * 1.2, y_text)
                ax.annotate(
                    text,
                    (x, y),
                    xytext=anchor,
                    textcoords="data",
                    fontsize=SMALL_PT,
                    va="center",
                    ha="right" if right else "left",
                    arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6},
                )

        strip.set_xlim(-0.1, 1.5)
        strip.set_xticks([0.0], ["not stated"])
        strip.set_ylabel(ylabel)
        strip.set_title("parameters not stated", fontsize=SMALL_PT)
        main.set_xscale("log")
        main.set_xlim(1.0, 200.0)
        main.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        main.tick_params(axis="y", labelleft=False)
        main.set_xlabel("trainable parameters (millions, log scale)")
        main.grid(True, which="major", alpha=0.3)
        main.set_title(
            f"{'higher' if column == 'dice_pct' else 'lower'} is better",
            fontsize=SMALL_PT,
            loc="right",
        )

    handles = [
        plt.Line2D(
            [], [], ls="none", marker="o", color=PRED, ms=8, label=f"scored on the {CHALLENGE}"
        ),
        plt.Line2D(
            [],
            [],
            ls="none",
            marker="s",
            color=TRAINS,
            ms=8,
            label="scored on a split of the 999 training images",
        ),
    ]
    if hollow.any():
        handles.append(
            plt.Line2D(
                [],
                [],
                ls="none",
                marker="s",
                mfc="none",
                color=TRAINS,
                ms=8,
                label="parameter count as cited by the paper, unverified",
            )
        )
    if (table["group"] == "fetalft").any():
        handles.append(
            plt.Line2D(
                [], [], ls="none", marker="D", color=OURS, ms=8, label="fetalft, exam-level split"
            )
        )
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.02, 0.995), frameon=False)
    if listed:
        fig.text(0.02, 0.1 / height, note, fontsize=SMALL_PT, va="bottom")
    return fig

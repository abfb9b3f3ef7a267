"""The tables as the book shows them: styled, captioned, narrow enough for the page.

:mod:`fetalft.report` computes (summaries over seeds, paired comparisons, variants);
this module only lays its results out for reading: one label per column, ``mean ± sd`` in
one cell, percentages as ``%``, a caption that says what the numbers are over, the best
row highlighted. Nothing here computes a number a chapter's prose relies on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from fetalft import paper
from fetalft.report import (
    LABEL_COLUMNS,
    METRIC_LABELS,
    METRICS,
    PERCENT_METRICS,
    PairedComparison,
    display_scale,
    format_mean_sd,
    paper_table,
)

#: Cells up to this many characters never wrap in :func:`style_table` (numbers, mean ± sd).
NOWRAP_CHARACTERS = 24


def _keep_on_one_line(value: object) -> bool:
    """Whether :func:`style_table` keeps a cell on one line: numbers, a short text holding a
    number (``"95.91 ± 0.34"``) or a very short word."""
    if not isinstance(value, str):
        return True
    has_digit = any(c.isdigit() for c in value)
    return len(value) <= 8 or (has_digit and len(value) <= NOWRAP_CHARACTERS)


#: How :func:`style_table` marks a highlighted row (the best strategy, chosen on validation).
HIGHLIGHT = "background-color: rgba(255, 193, 7, 0.28); font-weight: 600;"


def style_table(
    table: pd.DataFrame,
    caption: str | None = None,
    highlight: Iterable[str] = (),
    precision: int = 2,
):
    """``table`` as the book shows it: a pandas Styler with the theme's table look, numbers
    to ``precision`` digits, values kept on one line (``95.91 ± 0.34`` never breaks), the
    caption above the table it belongs to, and every row named in ``highlight`` shaded.

    A row is named by its index label (any level of a MultiIndex) or, for a table without
    a meaningful index, by its first column.
    """
    highlight = set(highlight)
    plain_index = isinstance(table.index, pd.RangeIndex)
    style = table.style.format(precision=precision, na_rep="n/a")
    if plain_index:  # row numbers say nothing: leave them out
        style = style.hide(axis="index")
    style = style.set_table_attributes('class="dataframe fetalft-table"').set_table_styles(
        [
            # the size of code output (the page's small print): a results table fits the column
            {"selector": "", "props": "font-size: 0.875em;"},
            {
                "selector": "caption",
                "props": "caption-side: top; text-align: left; "
                "padding: 0 0 0.4em 0; white-space: normal;",
            },
        ]
    )

    # numbers and short values ("95.91 ± 0.34", "97.00 (1 seed)") never break; words wrap,
    # anywhere if they must (a file name has no space to break at)
    style = style.map(
        lambda v: "white-space: nowrap;" if _keep_on_one_line(v) else "overflow-wrap: anywhere;"
    )

    def names(row: pd.Series) -> set:
        if plain_index:
            return {row.iloc[0]}
        return set(row.name) if isinstance(row.name, tuple) else {row.name}

    if highlight:
        style = style.apply(
            lambda row: [HIGHLIGHT if names(row) & highlight else ""] * len(row), axis=1
        )
    return style.set_caption(caption) if caption else style


def results_table(
    summary: pd.DataFrame, metrics: Sequence[str] = METRICS, trainable: bool = True
) -> pd.DataFrame:
    """The summary as a readable table: one row per run, ``mean ± sd`` over seeds.

    A ``seeds`` column appears only when the runs were not all repeated with the same seeds
    (otherwise :func:`results_caption` names them once); ``trainable`` adds the trainable
    parameter count.
    """
    if summary.empty:
        return pd.DataFrame()
    table = pd.DataFrame({"run": summary["run"]})
    if trainable:
        table["trainable"] = summary["trainable_parameters"].map("{:,}".format)
    if summary["seeds"].nunique() > 1:
        table["seeds"] = summary["seeds"]
    for metric in metrics:
        if f"{metric}_mean" not in summary:
            continue
        scale = display_scale(metric)
        table[METRIC_LABELS[metric]] = [
            format_mean_sd(m, s, scale)
            for m, s in zip(summary[f"{metric}_mean"], summary[f"{metric}_sd"], strict=True)
        ]
    return table


def results_caption(summary: pd.DataFrame, best: str | None = None, what: str = "Test") -> str:
    """The caption of :func:`results_table`: what the numbers are, over which seeds and
    images, and which row is highlighted."""
    if summary.empty:
        return ""
    seeds = sorted(set(summary["seeds"]))
    over = f"seeds {seeds[0]}" if len(seeds) == 1 else "seeds (column seeds)"
    images = ", ".join(str(n) for n in sorted(set(summary.get("n_test", pd.Series(dtype=int)))))
    caption = f"{what} metrics, mean ± sd over {over}; each seed's value is its mean over "
    caption += f"{images} test images" if images else "the test images"
    if best is not None and best in set(summary["run"]):
        caption += f". Highlighted: {best}, the best strategy on validation"
    return caption + "."


def comparison_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper's numbers beside ours for each strategy of its table, in its order.

    The paper's "mIoU" is compared with our foreground IoU (what its code computed). A
    strategy without finished runs says so instead of showing a number.
    :func:`comparison_display` lays it out narrow enough for the page.
    """
    reported = paper_table()
    ours = (
        summary[summary["run"] == summary["strategy"]].set_index("strategy")
        if not summary.empty
        else pd.DataFrame()
    )
    rows = []
    for p in reported.itertuples(index=False):
        row = {
            "strategy": p.strategy,
            "trains": p.trains,
            "encoder": p.encoder,
            "paper trainable": f"{p.paper_trainable_M:g}M",
            "paper PA": f"{p.pa:.2f} ± {p.pa_sd:.2f}",
            "paper Dice": f"{p.dice:.2f} ± {p.dice_sd:.2f}",
            "paper 'mIoU' (fg IoU)": f"{p.fg_iou:.2f} ± {p.fg_iou_sd:.2f}",
        }
        if p.strategy in ours.index:
            o = ours.loc[p.strategy]
            row.update(
                {
                    "our trainable": f"{o['trainable_parameters'] / 1e6:#.3g}M",
                    "our seeds": int(o["n_seeds"]),
                    "our PA": format_mean_sd(o["pixel_accuracy_mean"], o["pixel_accuracy_sd"], 100),
                    "our Dice": format_mean_sd(o["dice_mean"], o["dice_sd"], 100),
                    "our fg IoU": format_mean_sd(o["iou_mean"], o["iou_sd"], 100),
                }
            )
        else:
            row.update(
                {
                    "our trainable": "",
                    "our seeds": 0,
                    "our PA": "not run yet",
                    "our Dice": "not run yet",
                    "our fg IoU": "not run yet",
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


def comparison_display(table: pd.DataFrame, trainable: bool = False) -> pd.DataFrame:
    """:func:`comparison_table` narrow enough for the page: one row per strategy, the
    paper's number and ours side by side under Dice and the paper's "mIoU" (our foreground
    IoU), and under the trainable parameters if ``trainable``."""
    if table.empty:
        return table
    pairs = {
        "trainable": ("paper trainable", "our trainable"),
        "Dice (%)": ("paper Dice", "our Dice"),
        "'mIoU' = fg IoU (%)": ("paper 'mIoU' (fg IoU)", "our fg IoU"),
    }
    if not trainable:
        pairs.pop("trainable")
    out = pd.DataFrame(index=pd.Index(table["strategy"], name="strategy"))
    for group, (theirs, ours) in pairs.items():
        out[(group, "paper")] = table[theirs].to_numpy()
        out[(group, "ours")] = table[ours].to_numpy()
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out


def comparison_caption(summary: pd.DataFrame) -> str:
    """The caption of :func:`comparison_table`: the two protocols in one line each."""
    main = summary[summary["run"] == summary["strategy"]] if not summary.empty else summary
    ids = sorted({int(seed) for seeds in main["seeds"] for seed in str(seeds).split(", ")})
    seeds = ", ".join(map(str, ids)) if ids else "none yet"
    return (
        "The paper: image-level split, 512 px, 20 epochs, four repeats, scored pooled per batch "
        f"at 512 px. Ours: exam-level split, this profile, seeds {seeds}, scored per image "
        "at the original size. Mean ± sd over repeats."
    )


def labels_table(runs: pd.DataFrame) -> pd.DataFrame:
    """How the runs were made, one label a row (profile, data, image size, epochs, hardware,
    split, images...), then the seeds."""
    if runs.empty:
        return pd.DataFrame()
    names = {
        "image_size": "image size (px, square)",
        "n_train": "training images",
        "n_val": "validation images",
        "n_test": "test images",
    }
    rows = {}
    for label in LABEL_COLUMNS:
        if label in runs:
            rows[names.get(label, label)] = " | ".join(
                dict.fromkeys(runs[label].dropna().astype(str))
            )
    rows["seeds"] = ", ".join(map(str, sorted(set(runs["seed"]))))
    return pd.DataFrame({"label": list(rows), "value": list(rows.values())})


#: How the book names each kind of variant (the first suffix of a run name).
VARIANT_LABELS = {
    "leaky": "leaky split",
    "head": "head trains",
    "frozen-head": "head frozen",
    "random-bn-train": "random BN by batch",
}


def variant_label(variant: str) -> str:
    """``train10pct`` -> ``10% of the training images``; other suffixes by :data:`VARIANT_LABELS`."""
    if variant.startswith("train") and variant.endswith("pct"):
        return f"{variant[5:-3]}% of training images"
    return VARIANT_LABELS.get(variant, variant)


def variant_display(variants: pd.DataFrame, metrics: Sequence[str] = ("dice", "adf_mm")):
    """:func:`fetalft.report.variant_table` narrow enough for the page. One row per variant run, named by
    the run it differs from in one respect (:func:`fetalft.report.split_variant`) and grouped by that
    respect (:func:`variant_label`) when there are several: the variant's value, the change
    from that run, and the seeds of both (``"3 / 1"``: that run's, the variant's)."""
    if variants.empty:
        return pd.DataFrame()
    names = {"dice": "Dice (%)", "adf_mm": "abs. HC error (mm)"}
    units = {"dice": "points", "adf_mm": "mm"}
    kinds = variants["variant"].map(variant_label).to_numpy()
    index = pd.MultiIndex.from_arrays(
        [kinds, variants["default run"].to_numpy()], names=["change", "run"]
    )
    table = pd.DataFrame(index=index)
    table["seeds"] = [
        f"{d} / {v}"
        for d, v in zip(variants["default seeds"], variants["variant seeds"], strict=True)
    ]
    for metric in metrics:
        if f"variant {metric}" not in variants:
            continue
        label = names.get(metric, METRIC_LABELS.get(metric, metric))
        table[label] = variants[f"variant {metric}"].to_numpy()
        table[f"change ({units.get(metric, '')})".replace(" ()", "")] = variants[
            f"{metric} change"
        ].to_numpy()
    if len(set(kinds)) == 1:
        return table.droplevel("change")
    return table.sort_index(level=0, sort_remaining=False, kind="stable")


def variant_caption(variants: pd.DataFrame) -> str:
    """The caption of :func:`variant_display`."""
    if variants.empty:
        return ""
    kinds = sorted(set(variants["variant"].map(variant_label)))
    change = kinds[0] if len(kinds) == 1 else "the change on the left"
    return (
        f"Each run with one change ({change}) against the same run without it. Value of the "
        "changed run, mean ± sd over seeds; change = changed minus unchanged (a difference "
        "of means); seeds = unchanged / changed."
    )


def paired_table(comparisons: Sequence[PairedComparison | str]) -> pd.DataFrame:
    """Paired comparisons as rows (metric): both runs' means, the difference and its
    interval in the metric's display unit, the images and seeds behind them."""
    rows = []
    for c in comparisons:
        if isinstance(c, str):
            continue
        scale = display_scale(c.metric)
        unit = "points" if c.metric in PERCENT_METRICS else "mm"
        rows.append(
            {
                "metric": METRIC_LABELS.get(c.metric, c.metric),
                c.run_a: f"{c.mean_a * scale:.2f}",
                c.run_b: f"{c.mean_b * scale:.2f}",
                "difference": f"{c.difference * scale:+.2f} {unit}",
                f"{c.confidence:.0%} CI": f"[{c.ci_low * scale:+.2f}, {c.ci_high * scale:+.2f}]",
                "images": c.n_images,
                "seeds": ", ".join(map(str, c.seeds)),
            }
        )
    return pd.DataFrame(rows).set_index("metric") if rows else pd.DataFrame()


def data_efficiency(summary: pd.DataFrame, metric: str = "dice") -> pd.DataFrame:
    """Mean ± sd of ``metric`` per run family and training fraction, on the exam split.

    A family is a run name without its ``--trainNNpct`` suffix (``baseline``,
    ``decoder-0-4``, ``decoder-0-4--frozen-head``); families run at one fraction only are
    left out.
    """
    if summary.empty:
        return pd.DataFrame()
    rows = summary[summary["split"] == "exam"]
    rows = rows.assign(family=rows["run"].str.replace(r"--train\d+pct", "", regex=True))
    fractions = rows.groupby("family")["train_fraction"].nunique()
    rows = rows[rows["family"].isin(fractions[fractions > 1].index)]
    if rows.empty:
        return pd.DataFrame()
    scale = display_scale(metric)
    table = rows.assign(
        value=[
            format_mean_sd(m, s, scale)
            for m, s in zip(rows[f"{metric}_mean"], rows[f"{metric}_sd"], strict=True)
        ],
        training_images=rows["n_train"].astype(str),
    )
    wide = table.pivot_table(
        index=["train_fraction", "training_images"],
        columns="family",
        values="value",
        aggfunc="first",
    ).sort_index(ascending=False)
    wide.columns.name = "strategy"
    return wide


def paper_data_efficiency() -> pd.DataFrame:
    """The paper's Dice (%) per training fraction (:data:`fetalft.paper.DATA_EFFICIENCY`),
    its main table giving the full-data row.

    Laid out like :func:`data_efficiency`, so the two tables read side by side.
    """
    full = paper_table().set_index("strategy")["dice"]
    columns = {
        strategy: {1.0: full[strategy], **by_fraction}
        for strategy, by_fraction in paper.DATA_EFFICIENCY.items()
    }
    table = pd.DataFrame(columns)
    table.index = pd.MultiIndex.from_tuples(
        [(f, str(int(f * paper.TRAIN_IMAGES))) for f in table.index],
        names=["train_fraction", "training_images"],
    )
    table.columns.name = "strategy"
    return table.sort_index(ascending=False)


def efficiency_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`data_efficiency` (or :func:`paper_data_efficiency`) with one readable row label:
    ``72 (10%)``, training images and their share."""
    if table.empty:
        return table
    out = table.copy()
    out.index = pd.Index(
        [f"{images} ({fraction:.0%})" for fraction, images in table.index], name="training images"
    )
    return out


def short_hardware(label: str) -> str:
    """``CPU: Intel(R) Xeon(R) Processor, 2 threads`` -> ``Intel Xeon, 2 threads``."""
    text = str(label).removeprefix("CPU: ").replace("(R)", "").replace("(TM)", "")
    return " ".join(text.replace(" Processor", "").split())


def rerun_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`fetalft.report.rerun_comparison` narrow enough for the page: where each side ran (machine and
    precision in one cell), its Dice and HC error, and the change."""
    if table.empty:
        return table
    out = pd.DataFrame(index=table.index)
    for side in ("study", "re-run"):
        out[(side, "machine, precision")] = [
            f"{short_hardware(h)}, {p}"
            for h, p in zip(table[f"hardware ({side})"], table[f"precision ({side})"], strict=True)
        ]
        for metric in ("dice", "adf_mm"):
            if f"{metric} ({side})" in table:
                out[(side, METRIC_LABELS[metric])] = table[f"{metric} ({side})"]
    for metric in ("dice", "adf_mm"):
        if f"{metric} change" in table:
            out[("change", METRIC_LABELS[metric])] = table[f"{metric} change"].map("{:+.2f}".format)
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out


def test_summary(metrics: dict) -> pd.DataFrame:
    """A run's test-set summary (``metrics.json``): mean, sd, images and failures per metric,
    fractions in percent (a ``null`` mean, no measurable image, shows as NaN)."""
    test = pd.DataFrame.from_dict(metrics["test"], orient="index").astype(float)
    scale = [display_scale(metric) for metric in test.index]
    table = pd.DataFrame(
        {
            "mean": test["mean"] * scale,
            "sd over images": test["sd"] * scale,
            "images": test["n"].astype(int),
            "no value (n_nan)": test["n_nan"].astype(int),
        }
    )
    table.index = [METRIC_LABELS.get(metric, metric) for metric in test.index]
    table.index.name = "metric"
    return table.round(2)


def challenge_table(per_image: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The HC18 challenge metrics of several runs side by side: one column per run with
    ``mean ± sd`` over its test images and seeds, and how many images had no measurable
    head. ``per_image`` maps a run name to its :func:`fetalft.runfiles.load_per_image` frame."""
    from fetalft.metrics import CHALLENGE_METRICS, summarize

    labels = {
        "df_mm": "DF: HC error (mm)",
        "adf_mm": "ADF: abs. HC error (mm)",
        "hausdorff_mm": "Hausdorff (mm)",
        "ellipse_dice": "ellipse Dice (%)",
    }
    columns = {}
    for run, frame in per_image.items():
        table = summarize(frame, CHALLENGE_METRICS)
        values = [
            format_mean_sd(row["mean"], row["sd"], display_scale(metric))
            for metric, row in table.iterrows()
        ]
        failures = int(table["n_nan"].max())
        seeds = frame["seed"].nunique() if "seed" in frame else 1
        images = frame["name"].nunique() if "name" in frame else len(frame)
        header = f"{run} ({images} images x {seeds} seed{'s' if seeds > 1 else ''})"
        columns[header] = [*values, str(failures)]
    index = [labels[m] for m in CHALLENGE_METRICS] + ["no head found"]
    return pd.DataFrame(columns, index=pd.Index(index, name="metric"))


def short_run_tables(accuracy: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`fetalft.speed.accuracy_table` as two tables that fit the page: what each
    recording ran (machine, setting, weights, repeats) and its validation Dice per arm in
    percent, both indexed by the recording's number."""
    if accuracy.empty:
        return accuracy, accuracy
    numbers = pd.Index([str(n) for n in range(1, len(accuracy) + 1)], name="recording")
    machines = [short_hardware(i[-1] if isinstance(i, tuple) else i) for i in accuracy.index]
    setup = pd.DataFrame(
        {
            "machine": machines,
            **{
                c: accuracy[c].to_numpy()
                for c in ("setting", "weights", "repeats")
                if c in accuracy
            },
        },
        index=numbers,
    )
    arms = [c for c in accuracy.columns if c.startswith("Dice: ")]
    dice = pd.DataFrame(
        {c.removeprefix("Dice: "): accuracy[c].to_numpy() * 100 for c in arms}, index=numbers
    )
    return setup, dice.round(1)


def show_table(
    table: pd.DataFrame, empty: str, caption: str | None = None, highlight: Iterable[str] = ()
):
    """Display ``table`` titled ``caption`` (its rows named in ``highlight`` highlighted,
    see :func:`style_table`), or print ``empty`` when there is nothing yet."""
    from IPython.display import display

    if table is None or table.empty:
        print(empty)
    elif caption is None and not highlight and not isinstance(table.index, pd.RangeIndex):
        display(table)  # nothing to add: pandas' own rendering of the frame
    else:
        display(style_table(table, caption, highlight))


def metric_definitions(summary: pd.DataFrame) -> pd.DataFrame:
    """The same predictions under four definitions: what the paper's "mIoU" really was.

    Pixel accuracy counts background; Dice and foreground IoU count the head only; mIoU
    averages foreground and background IoU. All per image, mean over seeds, in percent.
    """
    if summary.empty:
        return pd.DataFrame()
    columns = {
        "pixel_accuracy_mean": "PA",
        "dice_mean": "Dice",
        "iou_mean": "foreground IoU (the paper's 'mIoU')",
        "miou_mean": "mIoU (fg and bg averaged)",
    }
    table = summary.set_index("run")[list(columns)].rename(columns=columns) * 100
    return table.round(2)

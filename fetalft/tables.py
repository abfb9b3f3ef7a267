"""The tables as the book shows them: styled, captioned, narrow enough for the page.

:mod:`fetalft.report` computes (summaries over seeds, paired comparisons, variants);
this module only lays its results out for reading: one label per column, ``mean ± sd`` in
one cell, percentages as ``%``, a caption that says what the numbers are over, the best
row highlighted. Nothing here computes a number a chapter's prose relies on. A table (or
caption) only one chapter shows is laid out on that chapter's page, in a hidden cell.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from fetalft import paper
from fetalft.report import METRIC_LABELS, display_scale, format_mean_sd, paper_table

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


def short_hardware(label: str) -> str:
    """``CPU: Intel(R) Xeon(R) Processor, 2 threads`` -> ``Intel Xeon, 2 threads``."""
    text = str(label).removeprefix("CPU: ").replace("(R)", "").replace("(TM)", "")
    return " ".join(text.replace(" Processor", "").split())


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


#: How chapter 8's validation tables print their scores: two decimals, changes signed.
VALIDATION_FORMATS = {
    "val Dice (%)": "{:.2f}",
    "val ADF (mm)": "{:.2f}",
    "Dice change": "{:+.2f}",
    "ADF change (mm)": "{:+.2f}",
}


def show_validation(table: pd.DataFrame, empty: str, caption: str) -> None:
    """Display one of chapter 8's validation tables (:func:`fetalft.recipe.ablation_table`,
    :func:`fetalft.recipe.candidate_table`) without its run names, which the ``change``
    column says in words, or print ``empty`` when its runs have not finished."""
    from IPython.display import display

    if table.empty:
        print(empty)
        return
    styled = table.drop(columns="run").style.format(VALIDATION_FORMATS).hide(axis="index")
    display(styled.set_caption(caption))


PAIRED_FORMATS = {
    "mean change (mm)": "{:+.2f}",
    "p": "{:.3f}",
    "passes the bar": lambda passes: "yes" if passes else "no",
}


def show_paired(table: pd.DataFrame, empty: str, caption: str) -> None:
    """Display chapter 8's paired comparison (:func:`fetalft.recipe.paired_table`), or
    print ``empty`` when no candidate has been re-scored image by image yet."""
    from IPython.display import display

    if table.empty:
        print(empty)
        return
    display(table.style.format(PAIRED_FORMATS).set_caption(caption))

"""The book's key findings in words, every number computed from the recorded runs.

Chapter 5 computes :func:`key_findings` from the committed runs and glues each sentence
into its "Key findings" box with myst-nb's ``glue``; the introduction pastes the same keys
from chapter 5 and chapter 7 pastes its own. So a number in the prose is never typed by
hand and cannot disagree with the tables beside it.

"Best" has one meaning throughout the book: **the best strategy** is the fine-tuning
strategy with the highest mean *validation* Dice over its seeds (:func:`fetalft.report.best_run`,
which leaves out the from-scratch baseline it is compared with). The test images never
choose anything.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import pandas as pd

from fetalft import paper, report
from fetalft.strategies import get_strategy
from fetalft.study import RunSpec

#: A row of the paper's table counts as explained when the measured factors bring ours
#: within this many Dice points of it (as in :func:`fetalft.gap.findings`).
CLOSE = 2.0
NOT_MEASURED = "not measured in this profile yet"


def percent(mean: float, sd: float = math.nan) -> str:
    """``"95.91 ± 0.34%"``, ``"97.00% (1 seed)"`` without an sd, ``"n/a"`` without a mean."""
    if mean is None or math.isnan(mean):
        return "n/a"
    if sd is None or math.isnan(sd):
        return f"{100 * mean:.2f}% (1 seed)"
    return f"{100 * mean:.2f} ± {100 * sd:.2f}%"


def seeds_text(seeds) -> str:
    """``"seed 0"`` or ``"seeds 0, 1, 2"``."""
    seeds = list(seeds)
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def interval(comparison: report.PairedComparison, unit: str) -> str:
    """``"-1.05 points (95% CI -1.78 to -0.47)"`` in the metric's display unit."""
    scale = report.display_scale(comparison.metric)
    return (
        f"{comparison.difference * scale:+.2f}{unit} ({comparison.confidence:.0%} CI "
        f"{comparison.ci_low * scale:+.2f} to {comparison.ci_high * scale:+.2f})"
    )


def magnitude(comparison: report.PairedComparison, unit: str, more: str, less: str) -> str:
    """The difference in words: ``"1.05 points lower (95% CI 0.47 to 1.78)"`` when the
    interval lies on one side of zero, the signed :func:`interval` otherwise."""
    if not comparison.excludes_zero:
        return f"{interval(comparison, unit)}, an interval that holds zero"
    scale = report.display_scale(comparison.metric)
    low, high = sorted(abs(v) * scale for v in (comparison.ci_low, comparison.ci_high))
    word = more if comparison.difference > 0 else less
    return (
        f"{abs(comparison.difference) * scale:.2f}{unit} {word} "
        f"({comparison.confidence:.0%} CI {low:.2f} to {high:.2f})"
    )


def _paired(profile, run_a, run_b, metric, *, results_dir) -> report.PairedComparison | None:
    try:
        return report.paired_comparison(profile, run_a, run_b, metric, results_dir=results_dir)
    except (ValueError, FileNotFoundError):
        return None


def _main_summary(runs: pd.DataFrame) -> pd.DataFrame:
    summary = report.summarize_runs(report.main_runs(runs))
    return summary.set_index("run") if not summary.empty else summary


def won(runs: pd.DataFrame, profile: str, *, results_dir=None) -> str:
    """What won: the best strategy against the from-scratch U-Net, paired over test images."""
    best = report.best_run(runs)
    summary = _main_summary(runs)
    if best is None or summary.empty or "baseline" not in summary.index:
        return f"The best strategy against the from-scratch U-Net: {NOT_MEASURED}."
    dice = _paired(profile, best, "baseline", "dice", results_dir=results_dir)
    if dice is None:
        return f"{best} against the from-scratch U-Net: no test images in common."
    if not dice.excludes_zero:
        lead = f"Neither {best} nor the from-scratch U-Net is clearly ahead"
    elif dice.difference < 0:
        lead = "The from-scratch U-Net wins"
    else:
        lead = f"{best} beats the from-scratch U-Net"
    b, s = summary.loc[best], summary.loc["baseline"]
    text = (
        f"{lead}. {best}, the best fine-tuning strategy on validation, scores "
        f"{magnitude(dice, ' Dice points', 'higher', 'lower')} on the test images "
        f"({percent(b['dice_mean'], b['dice_sd'])} against "
        f"{percent(s['dice_mean'], s['dice_sd'])}; paired over {dice.n_images} images, "
        f"{seeds_text(dice.seeds)})"
    )
    adf = _paired(profile, best, "baseline", "adf_mm", results_dir=results_dir)
    if adf is not None:
        text += (
            f", and its head circumference error is {magnitude(adf, ' mm', 'larger', 'smaller')}"
        )
    reduction = 1 - b["trainable_parameters"] / s["trainable_parameters"]
    return (
        f"{text}, while it trains {reduction:.1%} fewer parameters "
        f"({int(b['trainable_parameters']):,} against {int(s['trainable_parameters']):,})."
    )


def less_data(runs: pd.DataFrame) -> str:
    """The best strategy against the baseline at every training-set size both were run at."""
    best = report.best_run(runs)
    if best is None or runs.empty:
        return f"Less training data: {NOT_MEASURED}."
    summary = report.summarize_runs(runs)
    exam = summary[(summary["split"] == "exam") & summary["strategy"].isin([best, "baseline"])]
    # the strategy's own run family: the run itself and its --trainNNpct variants
    family = exam[exam["run"].str.replace(r"--train\d+pct", "", regex=True) == exam["strategy"]]
    table = family.pivot_table(
        index=["train_fraction", "n_train"], columns="strategy", values="dice_mean"
    )
    table = table.dropna() if {best, "baseline"} <= set(table.columns) else pd.DataFrame()
    if len(table) < 2:
        return f"Less training data: {NOT_MEASURED}."
    ahead = table["baseline"] > table[best]
    sizes = [str(n) for _, n in table.index.sort_values()]
    sizes = ", ".join(sizes[:-1]) + f" and all {sizes[-1]}"
    if ahead.all():
        verdict = f"the from-scratch U-Net stays ahead of {best}"
    elif not ahead.any():
        verdict = f"{best} stays ahead of the from-scratch U-Net"
    else:
        verdict = f"the lead between {best} and the from-scratch U-Net changes"
    fraction, images = table.index.min()
    rows = family[family["train_fraction"] == fraction].set_index("strategy")
    text = (
        f"At every training-set size measured ({sizes} images), {verdict}: with {images} "
        f"images ({fraction:.0%}) the baseline scores "
        f"{percent(rows.loc['baseline', 'dice_mean'], rows.loc['baseline', 'dice_sd'])} test "
        f"Dice, {best} {percent(rows.loc[best, 'dice_mean'], rows.loc[best, 'dice_sd'])}"
    )
    reported = paper.DATA_EFFICIENCY
    if best in reported and fraction in reported[best] and fraction in reported["baseline"]:
        text += (
            f" (the paper, at {fraction:.0%} of its images: baseline "
            f"{reported['baseline'][fraction]:.2f}%, {best} {reported[best][fraction]:.2f}%)"
        )
    return text + "."


def leak(runs: pd.DataFrame, siblings: int | None = None) -> str:
    """What the paper's image-level split is worth: each main run against its leaky twin."""
    variants = report.variant_table(report.summarize_runs(runs)) if not runs.empty else None
    if variants is None or variants.empty:
        return f"The leak: {NOT_MEASURED}."
    rows = variants[
        (variants["variant"] == "leaky") & (variants["default run"] == variants["strategy"])
    ]
    rows = rows[rows["dice change"] != "n/a"]
    if rows.empty:
        return f"The leak: {NOT_MEASURED}."
    parts = [
        f"{row['strategy']} {row['dice change']} ({row['variant seeds']} "
        f"seed{'s' if row['variant seeds'] > 1 else ''})"
        for _, row in rows.iterrows()
    ]
    where = (
        f", where {siblings} test images have a scan of the same exam in training,"
        if siblings
        else ""
    )
    changes = [float(v) for v in rows["dice change"]]
    return (
        f"Training and testing on the paper's image-level split{where} moves test Dice by "
        f"{min(changes):+.2f} to {max(changes):+.2f} points: {', '.join(parts)}."
    )


def sibling_effect(breakdown: pd.DataFrame) -> str:
    """Within the leaky test sets (:func:`fetalft.report.leak_table`): do the images with a
    sibling scan in training score higher than the others, run by run?"""
    if breakdown.empty:
        return f"The leaky test images by sibling: {NOT_MEASURED}."
    dice = breakdown["Dice (%)"].unstack("test images")
    with_, without = "sibling in training", "no sibling in training"
    if not {with_, without} <= set(dice.columns):
        return f"The leaky test images by sibling: {NOT_MEASURED}."
    change = (dice[with_] - dice[without]).dropna()
    if (change < 0).all():
        verdict = "score lower, not higher, than the others"
    elif (change > 0).all():
        verdict = "score higher than the others"
    else:
        verdict = "score higher in some runs and lower in others"
    return (
        f"In {'every' if len(change) > 1 else 'the'} leaky run, the test images with a "
        f"sibling in training {verdict}: "
        + ", ".join(f"{run} {value:+.2f}" for run, value in change.items())
        + " Dice points."
    )


def scoring(runs: pd.DataFrame, scores: pd.DataFrame) -> str:
    """What the authors' scoring (squeezed masks, pooled over batches) adds to ours."""
    from fetalft import rescore

    if scores is None or scores.empty or runs.empty:
        return f"The authors' scoring: {NOT_MEASURED}."
    table = rescore.protocol_table(scores, runs)
    if table.empty:
        return f"The authors' scoring: {NOT_MEASURED}."
    change = table[rescore.CHANGE_COLUMN.format(metric="dice")]
    text = (
        f"Scoring the same predictions the authors' way (at the network's input size, pooled "
        f"over batches of ten) adds {change.min():+.2f} ({change.idxmin()}) to "
        f"{change.max():+.2f} Dice points ({change.idxmax()})"
    )
    best = report.best_run(runs)
    whole = rescore.whole_protocol_table(scores, runs)
    if best in whole.index:
        row = whole.loc[best]
        text += (
            f"; with the leak as well, {best} scores {row['leaky split, authors']:.2f}% "
            f"against the paper's {row['paper']:.2f}%"
        )
    return text + "."


def head(runs: pd.DataFrame, profile: str, *, results_dir=None) -> str:
    """What the head the authors froze or trained is worth, for the best strategy (paired)
    and for the partial-decoder strategies (difference of means)."""
    best = report.best_run(runs)
    if best is None:
        return f"The head: {NOT_MEASURED}."
    trains = get_strategy(best).head_trainable
    other = RunSpec(best, 0, head_trainable=not trains).name
    sentences = []
    dice = _paired(profile, other, best, "dice", results_dir=results_dir)
    if dice is not None:
        if dice.excludes_zero:
            low, high = sorted(abs(v) * 100 for v in (dice.ci_low, dice.ci_high))
            change = (
                f"{'gains' if dice.difference > 0 else 'costs'} {abs(dice.difference) * 100:.2f}"
                f" Dice points ({dice.confidence:.0%} CI {low:.2f} to {high:.2f})"
            )
        else:
            change = (
                f"changes test Dice by {interval(dice, ' points')}, an interval that holds zero"
            )
        what = "Freezing" if trains else "Training"
        authors = "trains it" if trains else "freezes it"
        sentences.append(
            f"{what} {best}'s segmentation head (the authors' code {authors}) {change}, "
            f"paired over {dice.n_images} test images"
        )
    variants = report.variant_table(report.summarize_runs(runs)) if not runs.empty else None
    if variants is not None and not variants.empty:
        rows = variants[
            (variants["variant"] == "head")
            & (variants["default run"] == variants["strategy"])
            & (variants["dice change"] != "n/a")
        ]
        if len(rows):
            change = rows.set_index("strategy")["dice change"].astype(float)
            sentences.append(
                f"in the {len(change)} strategies whose head the authors' code froze and "
                f"that were run both ways, training it moves Dice by {change.min():+.2f} "
                f"({change.idxmin()}) to {change.max():+.2f} points ({change.idxmax()})"
            )
    if not sentences:
        return f"The head: {NOT_MEASURED}."
    text = "; ".join(sentences)
    return text[0].upper() + text[1:] + "."


def unexplained(runs: pd.DataFrame, scores: pd.DataFrame, close: float = CLOSE) -> str:
    """The rows of the paper's table that the measured factors leave far from ours."""
    from fetalft import gap

    main = report.main_runs(runs)
    if main.empty:
        return f"The paper's table row by row: {NOT_MEASURED}."
    table = gap.gap_table(runs, scores if scores is not None else pd.DataFrame())
    remaining = table["remaining"]
    near = remaining[remaining.abs() <= close]
    below = remaining[remaining > close].sort_values(ascending=False)
    above = remaining[remaining < -close].sort_values()
    text = (
        f"The measured factors bring {len(near)} of the {len(table)} rows of the paper's "
        f"table within {close:g} Dice points of ours"
        + (f" ({', '.join(near.index)})" if len(near) else "")
    )

    def listing(values: pd.Series) -> str:
        items = [f"{abs(v):.2f} ({name})" for name, v in values.items()]
        items[-1] = items[-1].replace(" (", " points (", 1)
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

    gaps = []
    if len(below):
        gaps.append(f"more than ours plus every measured factor, by {listing(below)}")
    if len(above):
        gaps.append(f"{'or ' if gaps else ''}less, by {listing(above)}")
    if gaps:
        text += "; for the others the paper reports " + ", ".join(gaps)
        text += ". Nothing measured here explains these gaps"
    return text + "."


def random_bn(runs: pd.DataFrame) -> str:
    """What frozen never-trained layers normalising each batch (the authors' BatchNorm) do,
    strategy by strategy: each ``--random-bn-train`` run against its default run."""
    variants = report.variant_table(report.summarize_runs(runs)) if not runs.empty else None
    if variants is None or variants.empty:
        return f"Frozen random BatchNorm by batch: {NOT_MEASURED}."
    rows = variants[
        (variants["variant"] == "random-bn-train")
        & (variants["default run"] == variants["strategy"])
        & (variants["dice change"] != "n/a")
    ]
    if rows.empty:
        return f"Frozen random BatchNorm by batch: {NOT_MEASURED}."
    change = rows.set_index("strategy")["dice change"].astype(float)
    raised = change[change > 0]
    seeds = sorted(set(rows["variant seeds"]))
    text = (
        f"Over {' or '.join(map(str, seeds))} seeds, normalising the frozen random layers by "
        f"batch lowers the mean test Dice of {int((change < 0).sum())} of the {len(change)} "
        "strategies that have such layers"
    )
    if len(raised):
        text += " and raises " + ", ".join(f"{n} ({v:+.2f})" for n, v in raised.items())
    else:
        text += " and raises none"
    return text + f"; the changes run from {change.min():+.2f} to {change.max():+.2f} points."


def change_range(text: str) -> str:
    """``"+0.04 to +0.11 points"`` out of a finding that states a range, or the finding's
    "not measured" when it has none."""
    import re

    found = re.search(r"([+-]\d+\.\d+)(?: \([^)]*\))? to ([+-]\d+\.\d+)", text)
    return f"{found.group(1)} to {found.group(2)} points" if found else NOT_MEASURED


def test_siblings(kind: str = "leaky", roles: tuple[str, ...] = ("train",)) -> int:
    """Test images of the committed ``kind`` split with a scan of the same exam in one of
    ``roles`` (``("train", "val")``: the paper's 799 training images)."""
    from fetalft.split import committed_splits

    table = committed_splits()
    column = f"{kind}_split"
    exams = set(table.loc[table[column].isin(roles), "exam"])
    return int(table.loc[table[column] == "test", "exam"].isin(exams).sum())


def key_findings(
    runs: pd.DataFrame,
    scores: pd.DataFrame | None,
    profile: str,
    *,
    results_dir: str | os.PathLike | None = None,
) -> dict[str, str]:
    """Every finding of the book's "Key findings" boxes, keyed by its glue name.

    ``runs`` from :func:`fetalft.runfiles.load_runs`, ``scores`` from
    :func:`fetalft.rescore.load_scores` (may be empty). A finding whose runs are missing
    says so instead of giving a number.
    """
    scores = scores if scores is not None else pd.DataFrame()
    best = report.best_run(runs)
    texts = {
        "best_strategy": best or "none yet",
        "finding_won": won(runs, profile, results_dir=results_dir),
        "finding_less_data": less_data(runs),
        "finding_leak": leak(runs, test_siblings()),
        "finding_scoring": scoring(runs, scores),
        "finding_head": head(runs, profile, results_dir=results_dir),
        "finding_random_bn": random_bn(runs),
        "finding_unexplained": unexplained(runs, scores),
        "siblings_train": str(test_siblings()),
        "siblings_train_or_val": str(test_siblings(roles=("train", "val"))),
    }
    texts["leak_range"] = change_range(texts["finding_leak"])
    texts["scoring_range"] = change_range(texts["finding_scoring"])
    return texts


# --------------------------------------------------------------------------- glue

#: myst-nb's mime prefix for outputs glued with ``display=False``.
GLUE_PREFIX = "application/papermill.record/"


def glue(name: str, variable, display: bool = True) -> None:
    """myst-nb's ``glue``, or an output in exactly its format where myst-nb is not
    installed (Colab), so that a chapter runs anywhere and the book still finds the keys."""
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        from IPython.core.formatters import format_display_data
        from IPython.display import display as ipy_display

        mimebundle, metadata = format_display_data(variable)
        prefix = "" if display else GLUE_PREFIX
        metadata["scrapbook"] = {"name": name, "mime_prefix": prefix}
        ipy_display({prefix + k: v for k, v in mimebundle.items()}, raw=True, metadata=metadata)
    else:
        myst_glue(name, variable, display=display)


class Sentence:
    """Text that pastes as plain prose: ``text/plain`` for ``{glue:text}`` and escaped
    ``text/html`` for ``{glue}``, which myst-nb pastes without the bold it gives
    ``{glue:text}``, in the same chapter and from another one (``path::key``)."""

    def __init__(self, text: str) -> None:
        self.text = str(text)

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        import html

        return html.escape(self.text, quote=False)


def glue_all(texts: Mapping[str, str]) -> None:
    """Glue every text under its key as a :class:`Sentence`, without showing it (the prose
    pastes it with ``{glue}`key```)."""
    for name, text in texts.items():
        glue(name, Sentence(text), display=False)

"""Results for the book: runs aggregated over seeds, the paper beside them, paired comparisons.

Everything reads the study's run folders (``results/<profile>/<run>/seed-<k>/``, see
:mod:`fetalft.study`), so a chapter shows whatever has finished and says what has not. One
run name is one strategy and variant (``decoder-0-4``, ``decoder-0-4--leaky``, ...); its
seeds are repeats. Means and standard deviations are over seeds, each seed's value being
its mean over the test images, the same aggregation as the paper's table (whose protocol
differs: see :func:`paper_table`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fetalft.metrics import CHALLENGE_METRICS, SEGMENTATION_METRICS
from fetalft.profiles import Profile
from fetalft.strategies import STRATEGIES
from fetalft.study import RunSpec, load_results, results_root

METRICS = SEGMENTATION_METRICS + CHALLENGE_METRICS
#: Metrics that are fractions (shown in percent, like the paper's table).
PERCENT_METRICS = (*SEGMENTATION_METRICS, "ellipse_dice")


def display_scale(metric: str) -> int:
    """100 for a fraction shown in percent (or Dice points), 1 for a length in mm."""
    return 100 if metric in PERCENT_METRICS else 1


METRIC_LABELS = {
    "pixel_accuracy": "PA (%)",
    "dice": "Dice (%)",
    "iou": "IoU (%)",
    "miou": "mIoU (%)",
    "df_mm": "HC error (mm)",
    "adf_mm": "abs. HC error (mm)",
    "hausdorff_mm": "Hausdorff (mm)",
    "ellipse_dice": "ellipse Dice (%)",
}
#: Labels that describe how a run was made; shown with every result.
LABEL_COLUMNS = (
    "profile",
    "data",
    "image_size",
    "epochs",
    "precision",
    "weights",
    "hardware",
    "split",
    "n_train",
    "n_val",
    "n_test",
)
#: The study the smoke profile runs for the results chapter: cheap, two seeds so that the
#: standard deviation over seeds is exercised.
SMOKE_STRATEGIES = ("decoder-0-4", "decoder-4")
SMOKE_SEEDS = (0, 1)


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
            {"selector": "", "props": "font-size: 0.9em;"},
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


# --------------------------------------------------------------------------- loading


def load_runs(profile: str, results_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per finished run folder of ``profile`` (empty frame when there are none).

    Metric columns are floats: a ``null`` test mean (no measurable image) is NaN, also when
    every run has ``null`` there (pandas would otherwise keep a column of ``None``).
    """
    runs = load_results(profile, results_dir)
    if runs.empty:
        return runs
    runs = runs.astype(dict.fromkeys([m for m in METRICS if m in runs], float))
    return runs.sort_values(["run", "seed"], ignore_index=True)


def is_main_variant(runs: pd.DataFrame) -> pd.Series:
    """Rows of the paper's main table: each strategy as the authors ran it (exam split, all
    training images, their head, fetalft's frozen BatchNorm), i.e. run names without a
    variant suffix."""
    return runs["run"] == runs["strategy"]


def split_variant(run: str) -> tuple[str, str]:
    """``(base run, variant)``: a run name without its first variant suffix, and that suffix.

    ``decoder-0-4--leaky--frozen-head`` is the ``leaky`` variant of
    ``decoder-0-4--frozen-head``, so every variant is compared with the run that differs
    from it in that one respect. A run without a suffix is its own base (variant ``""``).
    """
    strategy, *suffixes = run.split("--")
    if not suffixes:
        return run, ""
    return "--".join([strategy, *suffixes[1:]]), suffixes[0]


def run_folder(
    profile: str, run: str, seed: int, results_dir: str | os.PathLike | None = None
) -> Path:
    return results_root(results_dir) / profile / run / f"seed-{seed}"


def load_per_image(
    profile: str,
    run: str,
    seeds: Iterable[int] | None = None,
    results_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Every test image of a run, one row per image and seed (column ``seed``)."""
    base = results_root(results_dir) / profile / run
    folders = (
        [base / f"seed-{s}" for s in seeds]
        if seeds is not None
        else sorted(base.glob("seed-*"), key=lambda p: int(p.name.split("-")[1]))
    )
    frames = []
    for folder in folders:
        path = folder / "per_image.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run {run} has no finished {folder.name}")
        frame = pd.read_csv(path)
        frame.insert(0, "seed", int(folder.name.split("-")[1]))
        frames.append(frame)
    if not frames:
        raise FileNotFoundError(f"no finished seeds of run {run!r} under {base}")
    return pd.concat(frames, ignore_index=True)


def load_history(
    profile: str, run: str, seed: int, results_dir: str | os.PathLike | None = None
) -> pd.DataFrame:
    """Per-epoch loss, validation Dice, learning rate and speed of one run."""
    return pd.read_csv(run_folder(profile, run, seed, results_dir) / "history.csv")


def load_metrics(
    profile: str, run: str, seed: int, results_dir: str | os.PathLike | None = None
) -> dict:
    return json.loads((run_folder(profile, run, seed, results_dir) / "metrics.json").read_text())


# --------------------------------------------------------------------------- aggregation


def _unique(values: pd.Series) -> object:
    """The single value of a column, or the distinct values joined when they differ."""
    distinct = list(dict.fromkeys(values.dropna().tolist()))
    if len(distinct) == 1:
        return distinct[0]
    return " | ".join(map(str, distinct))


def summarize_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds per run name (``<metric>_mean``, ``<metric>_sd``, ``n_seeds``).

    The sd is the sample sd (ddof=1) over seeds, NaN with one seed. Label columns keep their
    value, or all distinct values joined with ``|`` if the seeds disagree.
    """
    if runs.empty:
        return pd.DataFrame()
    rows = []
    for run, group in runs.groupby("run", sort=False):
        row = {
            "run": run,
            "strategy": group["strategy"].iloc[0],
            "paper_label": group["paper_label"].iloc[0],
            "train_fraction": group["train_fraction"].iloc[0],
            "head_trainable": bool(group["head_trainable"].iloc[0]),
            "n_seeds": len(group),
            "seeds": ", ".join(str(s) for s in sorted(group["seed"])),
            "trainable_parameters": int(group["trainable_parameters"].iloc[0]),
            "total_parameters": int(group["total_parameters"].iloc[0]),
        }
        row.update({label: _unique(group[label]) for label in LABEL_COLUMNS if label in group})
        for metric in METRICS:
            if metric in group:
                values = group[metric].astype(float)
                row[f"{metric}_mean"] = values.mean()
                row[f"{metric}_sd"] = values.std(ddof=1) if len(values) > 1 else math.nan
        row["wall_seconds_mean"] = group["wall_seconds"].mean()
        row["best_epoch"] = ", ".join(str(e) for e in group["best_epoch"])
        rows.append(row)
    summary = pd.DataFrame(rows)
    order = {name: i for i, name in enumerate(STRATEGIES)}
    summary["_order"] = summary["strategy"].map(order)
    return summary.sort_values(["_order", "run"], ignore_index=True).drop(columns="_order")


def compute_time(runs: pd.DataFrame) -> pd.DataFrame:
    """What the recorded study cost: runs and wall-clock hours per hardware and precision.

    Per hardware, because the study was run over several sessions on different machines;
    the sum is the time those machines spent, not what one machine would need.
    """
    if runs.empty:
        return pd.DataFrame()
    grouped = runs.groupby(["hardware", "precision"])["wall_seconds"]
    table = pd.DataFrame({"runs": grouped.size(), "hours": grouped.sum() / 3600})
    table.loc[("all", ""), :] = [len(runs), runs["wall_seconds"].sum() / 3600]
    return table.astype({"runs": int}).round({"hours": 2})


def format_mean_sd(mean: float, sd: float, scale: float = 1.0, digits: int = 2) -> str:
    """``"96.28 ± 0.38"``; a single seed has no sd and shows as ``"96.28 (1 seed)"``."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    if sd is None or math.isnan(sd):
        return f"{mean * scale:.{digits}f} (1 seed)"
    return f"{mean * scale:.{digits}f} ± {sd * scale:.{digits}f}"


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


def paper_table() -> pd.DataFrame:
    """The paper's reported table (its Table 2) from the strategy registry.

    Different protocol from fetalft's: 799/200 image-level split with test leakage, 512x512,
    20 epochs on a T4, four repeats, metrics pooled per batch at 512x512, and its "mIoU" is
    the foreground IoU.
    """
    rows = []
    for s in STRATEGIES.values():
        pa, pa_sd, dice, dice_sd, miou, miou_sd = s.paper_results
        rows.append(
            {
                "strategy": s.name,
                "trains": s.label,
                "encoder": "none"
                if s.architecture == "unet"
                else ("ImageNet" if s.pretrained else "random"),
                "paper_trainable_M": s.paper_trainable,
                "pa": pa,
                "pa_sd": pa_sd,
                "dice": dice,
                "dice_sd": dice_sd,
                "fg_iou": miou,
                "fg_iou_sd": miou_sd,
            }
        )
    return pd.DataFrame(rows)


def comparison_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper's numbers beside ours for each strategy of its table, in its order.

    The paper's "mIoU" is compared with our foreground IoU (what its code computed). A
    strategy without finished runs says so instead of showing a number.
    :func:`comparison_display` lays it out narrow enough for the page.
    """
    paper = paper_table()
    ours = (
        summary[summary["run"] == summary["strategy"]].set_index("strategy")
        if not summary.empty
        else pd.DataFrame()
    )
    rows = []
    for p in paper.itertuples(index=False):
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
    for group, (paper, ours) in pairs.items():
        out[(group, "paper")] = table[paper].to_numpy()
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


def describe_labels(runs: pd.DataFrame) -> str:
    """One line saying how the runs were made: profile, size, epochs, hardware, split..."""
    if runs.empty:
        return "no runs"
    parts = []
    for label in LABEL_COLUMNS:
        if label not in runs:
            continue
        values = list(dict.fromkeys(runs[label].dropna().astype(str)))
        text = " | ".join(values)
        parts.append(
            {
                "image_size": f"{text} px square",
                "epochs": f"{text} epochs",
                "n_train": f"train {text}",
                "n_val": f"val {text}",
                "n_test": f"test {text} images",
                "split": f"{text} split",
            }.get(label, f"{label} {text}")
        )
    seeds = sorted(set(runs["seed"]))
    parts.append(f"seeds {', '.join(map(str, seeds))}")
    return "; ".join(parts)


def labels_table(runs: pd.DataFrame) -> pd.DataFrame:
    """How the runs were made, one label a row (what :func:`describe_labels` says in a line)."""
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


# --------------------------------------------------------------------------- coverage


def coverage(runs: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """The paper's table x the profile's seeds: ``done`` or ``missing`` for each cell."""
    done = set()
    if not runs.empty:
        main = runs[is_main_variant(runs)]
        done = set(zip(main["strategy"], main["seed"], strict=True))
    table = pd.DataFrame(
        {
            f"seed {seed}": ["done" if (s, seed) in done else "missing" for s in STRATEGIES]
            for seed in profile.seeds
        },
        index=pd.Index(list(STRATEGIES), name="strategy"),
    )
    return table


def missing_runs(runs: pd.DataFrame, profile: Profile) -> list[str]:
    """``strategy seed k`` for every main-table run of the profile not finished yet."""
    table = coverage(runs, profile)
    return [
        f"{strategy} {column}"
        for strategy, row in table.iterrows()
        for column, state in row.items()
        if state == "missing"
    ]


def coverage_message(runs: pd.DataFrame, profile: Profile) -> str:
    """A plain sentence on how much of the study has finished."""
    missing = missing_runs(runs, profile)
    total = len(STRATEGIES) * len(profile.seeds)
    if not missing:
        return f"All {total} main-table runs of the {profile.name} profile have finished."
    done = total - len(missing)
    if done == 0:
        return (
            f"No run of the {profile.name} profile has finished yet, so this chapter has no "
            f"numbers of its own to show: run `python -m fetalft study --profile "
            f"{profile.name}` (chapter 4) and execute the chapter again."
        )
    return (
        f"{done} of {total} main-table runs of the {profile.name} profile have finished; "
        f"missing: {', '.join(missing)}. Numbers below cover only the finished runs."
    )


# --------------------------------------------------------------------------- comparisons


@dataclass(frozen=True)
class PairedComparison:
    """``run_a`` minus ``run_b`` on the same test images, with a bootstrap interval."""

    run_a: str
    run_b: str
    metric: str
    seeds: tuple[int, ...]
    n_images: int
    n_dropped: int  # images without a value in one of the runs (unmeasurable heads)
    mean_a: float
    mean_b: float
    difference: float
    ci_low: float
    ci_high: float
    confidence: float
    n_boot: int

    @property
    def excludes_zero(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0

    def __str__(self) -> str:
        scale, unit = (100, " points") if self.metric in PERCENT_METRICS else (1, " mm")
        return (
            f"{self.metric}: {self.run_a} {self.mean_a * scale:.2f} vs {self.run_b} "
            f"{self.mean_b * scale:.2f}; difference {self.difference * scale:+.2f}{unit}, "
            f"{self.confidence:.0%} bootstrap CI [{self.ci_low * scale:+.2f}, "
            f"{self.ci_high * scale:+.2f}] over {self.n_images} test images "
            f"(seeds {', '.join(map(str, self.seeds))} averaged per image"
            + (f"; {self.n_dropped} images without a value left out" if self.n_dropped else "")
            + ")"
        )


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampling the items)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        raise ValueError("cannot bootstrap an empty sample")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def paired_comparison(
    profile: str,
    run_a: str,
    run_b: str,
    metric: str = "dice",
    results_dir: str | os.PathLike | None = None,
    n_boot: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Compare two runs image by image on the test images both were scored on.

    Each run's metric is first averaged over the seeds the two runs share, per image; the
    difference per image is then bootstrapped over images. Both runs must use the same test
    set (same split), otherwise there is nothing to pair.
    """
    a = load_per_image(profile, run_a, results_dir=results_dir)
    b = load_per_image(profile, run_b, results_dir=results_dir)
    seeds = tuple(sorted(set(a["seed"]) & set(b["seed"])))
    if not seeds:
        raise ValueError(f"{run_a} and {run_b} have no seed in common")
    per_a = a[a["seed"].isin(seeds)].groupby("name")[metric].mean()
    per_b = b[b["seed"].isin(seeds)].groupby("name")[metric].mean()
    if set(per_a.index) != set(per_b.index):
        raise ValueError(
            f"{run_a} and {run_b} were scored on different test images (different splits?); "
            "a paired comparison needs the same images."
        )
    both = pd.DataFrame({"a": per_a, "b": per_b}).dropna()
    diff = (both["a"] - both["b"]).to_numpy()
    low, high = bootstrap_ci(diff, n_boot, confidence, seed)
    return PairedComparison(
        run_a,
        run_b,
        metric,
        seeds,
        len(both),
        len(per_a) - len(both),
        float(both["a"].mean()),
        float(both["b"].mean()),
        float(diff.mean()),
        low,
        high,
        confidence,
        n_boot,
    )


def variant_table(
    summary: pd.DataFrame, metrics: Sequence[str] = ("dice", "adf_mm")
) -> pd.DataFrame:
    """Each variant run beside the run it differs from in one respect (:func:`split_variant`).

    Per metric: both runs' mean ± sd over seeds and the change (variant minus default, in
    Dice points or mm). For the leaky split that change is what the leak is worth; the two
    test sets differ, so it is a difference of means, not a paired comparison. Metrics the
    runs did not record are left out.
    """
    if summary.empty:
        return pd.DataFrame()
    metrics = [m for m in metrics if f"{m}_mean" in summary.columns]
    by_run = summary.set_index("run")
    rows = []
    for run in summary["run"]:
        default, variant = split_variant(run)
        if not variant:
            continue
        base = by_run.loc[default] if default in by_run.index else None
        var = by_run.loc[run]
        row = {"run": run, "strategy": var["strategy"], "variant": variant, "default run": default}
        for metric in metrics:
            scale = display_scale(metric)
            mean, sd = f"{metric}_mean", f"{metric}_sd"
            row[f"default {metric}"] = (
                format_mean_sd(base[mean], base[sd], scale) if base is not None else "not run yet"
            )
            row[f"variant {metric}"] = format_mean_sd(var[mean], var[sd], scale)
            change = (var[mean] - base[mean]) * scale if base is not None else float("nan")
            row[f"{metric} change"] = "n/a" if math.isnan(change) else f"{change:+.2f}"
        row["default seeds"] = int(base["n_seeds"]) if base is not None else 0
        row["variant seeds"] = int(var["n_seeds"])
        rows.append(row)
    return pd.DataFrame(rows)


def leak_breakdown(per_image: pd.DataFrame, metrics: Sequence[str] = ("dice", "adf_mm")):
    """Split a leaky-split run's test images into those with and without a sibling scan
    (same exam) in training; mean of each metric per group (seeds averaged per image)."""
    from fetalft.split import committed_splits

    table = committed_splits()
    train_exams = set(table.loc[table["leaky_split"] == "train", "exam"])
    exams = dict(zip(table["name"], table["exam"], strict=True))
    per_name = per_image.groupby("name")[list(metrics)].mean()
    sibling = per_name.index.map(lambda n: exams.get(n) in train_exams)
    per_name = per_name.assign(
        group=np.where(sibling, "sibling in training", "no sibling in training")
    )
    out = per_name.groupby("group")[list(metrics)].agg(["mean", "count"])
    return out


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
    """:func:`variant_table` narrow enough for the page. One row per variant run, named by
    the run it differs from in one respect (:func:`split_variant`) and grouped by that
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


def leak_table(
    profile: str, runs: Sequence[str], results_dir: str | os.PathLike | None = None
) -> pd.DataFrame:
    """:func:`leak_breakdown` of several leaky-split runs in one table, in percent and mm:
    rows (run, group), columns images, Dice (%) and abs. HC error (mm)."""
    frames = {}
    for run in runs:
        out = leak_breakdown(load_per_image(profile, run, results_dir=results_dir))
        frames[run] = pd.DataFrame(
            {
                "images": out[("dice", "count")].astype(int),
                "Dice (%)": out[("dice", "mean")] * 100,
                "abs. HC error (mm)": out[("adf_mm", "mean")],
            }
        )
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, names=["run", "test images"])
    return table.round(2)


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


# --------------------------------------------------------------------------- epochs


def epoch_choice(
    runs: pd.DataFrame, profile: str, results_dir: str | os.PathLike | None = None
) -> pd.DataFrame:
    """Validation Dice of the best epoch (kept) and of the last epoch (what the paper kept)."""
    rows = []
    for row in runs.itertuples(index=False):
        history = load_history(profile, row.run, row.seed, results_dir)
        best = history.loc[history["val_dice"].idxmax()]
        last = history.iloc[-1]
        rows.append(
            {
                "run": row.run,
                "seed": row.seed,
                "best epoch": int(best["epoch"]),
                "last epoch": int(last["epoch"]),
                "val Dice best": best["val_dice"],
                "val Dice last": last["val_dice"],
                "gain": best["val_dice"] - last["val_dice"],
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- checkpoints


def checkpoint_path(checkpoint_dir: str | os.PathLike, profile: str, run: str, seed: int) -> Path:
    return Path(checkpoint_dir) / profile / run / f"seed-{seed}" / "best.pt"


@dataclass(frozen=True)
class CheckpointChoice:
    """The run whose ``best.pt`` serves, and the run that was best on validation overall.

    They differ when the best run's checkpoint is on another machine (checkpoints are not
    committed), and a reader should be told so.
    """

    row: object  # the chosen run's row of load_runs (a namedtuple)
    path: Path
    best_on_validation: object

    @property
    def is_best(self) -> bool:
        top = self.best_on_validation
        return (top.run, top.seed) == (self.row.run, self.row.seed)


def best_checkpoint(
    runs: pd.DataFrame, checkpoint_dir: str | os.PathLike, profile: str
) -> CheckpointChoice | None:
    """The finished main-table run with the best *validation* Dice that has a ``best.pt``.

    Chosen on validation, never on test. ``None`` when no such run left a checkpoint.
    """
    if runs.empty:
        return None
    candidates = runs[is_main_variant(runs)].sort_values("best_val_dice", ascending=False)
    rows = list(candidates.itertuples(index=False))
    for row in rows:
        path = checkpoint_path(checkpoint_dir, profile, row.run, row.seed)
        if path.is_file():
            return CheckpointChoice(row, path, rows[0])
    return None


# --------------------------------------------------------------------------- smoke


def smoke_study(book, specs: Sequence[RunSpec]) -> list[RunSpec]:
    """Train ``specs`` if and only if the profile is ``smoke``; return those still missing.

    The results chapters never train in a real profile: they show what the study has made.
    In the smoke profile they make a tiny study of their own so that CI exercises them.
    """
    if book.profile.name == "smoke":
        study = book.study(progress=False)
        study.run_all(list(specs))
    root = Path(book.results_dir)
    return [s for s in specs if not (s.folder(root, book.profile) / "metrics.json").exists()]


def smoke_results_specs() -> list[RunSpec]:
    from fetalft.study import plan

    return plan(SMOKE_STRATEGIES, SMOKE_SEEDS)


# --------------------------------------------------------------------------- parameters


def strategy_parts(head_trainable: bool | None = None) -> pd.DataFrame:
    """Every strategy's parts with their parameter counts and whether they train.

    Straight from the registry (:mod:`fetalft.strategies`): one network per architecture is
    built with random weights (offline) and cut into the parts the strategies name. Columns:
    ``strategy, architecture, pretrained, part, parameters, trainable``.
    """
    from fetalft.models import build_model, count_parameters
    from fetalft.strategies import model_parts, trainable_parts

    nets = {}
    rows = []
    for strategy in STRATEGIES.values():
        if strategy.architecture not in nets:
            nets[strategy.architecture] = build_model(strategy.architecture, None)
        net = nets[strategy.architecture]
        trains = trainable_parts(strategy, net, head_trainable)
        for part, module in model_parts(net).items():
            rows.append(
                {
                    "strategy": strategy.name,
                    "architecture": strategy.architecture,
                    "pretrained": strategy.pretrained,
                    "part": part,
                    "parameters": count_parameters(module),
                    "trainable": part in trains,
                }
            )
    return pd.DataFrame(rows)


def part_order(parts: Iterable[str]) -> list[str]:
    """Parts in data-flow order: encoder, decoder blocks deepest first, head."""

    def key(part: str) -> tuple[int, int]:
        if part == "encoder":
            return (0, 0)
        if part.startswith("decoder"):
            return (1, int(part.split(".")[1]) if "." in part else 0)
        return (2, 0)

    return sorted(parts, key=key)


def parameter_reduction(
    parts: pd.DataFrame, strategy: str = "decoder-0-4", reference: str = "baseline"
) -> dict:
    """Trainable parameters of ``strategy`` against all of ``reference``'s (the 85.8% claim)."""
    trainable = int(parts[(parts["strategy"] == strategy) & parts["trainable"]]["parameters"].sum())
    total_ref = int(parts[parts["strategy"] == reference]["parameters"].sum())
    return {
        "strategy": strategy,
        "trainable": trainable,
        "reference": reference,
        "reference_trainable": total_ref,
        "reduction": 1 - trainable / total_ref,
    }


# --------------------------------------------------------------------------- book helpers


def main_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the paper's main table (see :func:`is_main_variant`); empty stays empty."""
    return runs if runs.empty else runs[is_main_variant(runs)].reset_index(drop=True)


def smoke_book_specs() -> list[RunSpec]:
    """The smoke study of the results chapters: the main runs, one baseline run (for the
    paired comparison) and runs of each variant (leaky split, half the training images,
    the other head, frozen random BatchNorm by batch), so every table and figure has
    something to show."""
    from fetalft.study import plan

    return [
        *smoke_results_specs(),
        *plan(["baseline"], SMOKE_SEEDS[:1]),
        *plan(["decoder-0-4"], SMOKE_SEEDS, split="leaky"),
        *plan(["decoder-0-4"], SMOKE_SEEDS[:1], train_fraction=0.5),
        *plan(["decoder-4"], SMOKE_SEEDS[:1], head_trainable=True),
        *plan(["decoder-0-4"], SMOKE_SEEDS[:1], head_trainable=False),
        *plan(["decoder-4"], SMOKE_SEEDS[:1], random_bn="train"),
    ]


def best_run(runs: pd.DataFrame, exclude: Sequence[str] = ("baseline",)) -> str | None:
    """The main-table run with the best mean *validation* Dice over seeds (never test)."""
    main = main_runs(runs)
    if main.empty:
        return None
    main = main[~main["run"].isin(exclude)]
    if main.empty:
        return None
    return str(main.groupby("run")["best_val_dice"].mean().idxmax())


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


#: The paper's training-set-size table: test Dice (%) with part of its 799 training images,
#: on its leaky 200-image test set (reported without a spread).
PAPER_TRAIN_IMAGES = 799
PAPER_DATA_EFFICIENCY = {
    "baseline": {0.5: 94.75, 0.3: 91.26, 0.1: 88.9},
    "decoder-0-4": {0.5: 95.66, 0.3: 94.02, 0.1: 92.19},
}


def paper_data_efficiency() -> pd.DataFrame:
    """The paper's Dice (%) per training fraction, its main table giving the full-data row.

    Laid out like :func:`data_efficiency`, so the two tables read side by side.
    """
    full = paper_table().set_index("strategy")["dice"]
    columns = {
        strategy: {1.0: full[strategy], **by_fraction}
        for strategy, by_fraction in PAPER_DATA_EFFICIENCY.items()
    }
    table = pd.DataFrame(columns)
    table.index = pd.MultiIndex.from_tuples(
        [(f, str(int(f * PAPER_TRAIN_IMAGES))) for f in table.index],
        names=["train_fraction", "training_images"],
    )
    table.columns.name = "strategy"
    return table.sort_index(ascending=False)


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


def epoch_gain(choice: pd.DataFrame) -> pd.DataFrame:
    """:func:`epoch_choice` per run: how often the best epoch was not the last, and the gain."""
    if choice.empty:
        return pd.DataFrame()
    grouped = choice.assign(not_last=choice["best epoch"] != choice["last epoch"]).groupby("run")
    return pd.DataFrame(
        {
            "seeds": grouped.size(),
            "best epoch not last": grouped["not_last"].sum(),
            "mean val Dice gain (points)": 100 * grouped["gain"].mean(),
        }
    ).round(3)


#: Where re-runs of finished runs under other labels are kept (``<results>/checks/<name>``),
#: apart from the study so that no chapter table counts them twice.
RERUNS_DIR = Path("checks")


def rerun_comparison(
    runs: pd.DataFrame, reruns: pd.DataFrame, metrics: Sequence[str] = ("dice", "adf_mm")
) -> pd.DataFrame:
    """Each re-run beside the original run of the same strategy, variant and seed.

    The study's seeds were not all run on one machine in one precision, so the spread over
    seeds mixes the seed with the machine and precision. Re-running a seed under the other
    labels separates them: a change between a run and its re-run is what the labels alone do.
    """
    if runs.empty or reruns.empty:
        return pd.DataFrame()
    keys = ["run", "seed"]
    labels = ["hardware", "precision"]
    metrics = [m for m in metrics if m in runs.columns and m in reruns.columns]
    both = runs[keys + labels + metrics].merge(
        reruns[keys + labels + metrics], on=keys, suffixes=(" (study)", " (re-run)")
    )
    for metric in metrics:
        scale = display_scale(metric)
        for side in (" (study)", " (re-run)"):
            both[metric + side] = both[metric + side] * scale
        both[f"{metric} change"] = both[f"{metric} (re-run)"] - both[f"{metric} (study)"]
    return both.set_index(keys).round(2)


def short_hardware(label: str) -> str:
    """``CPU: Intel(R) Xeon(R) Processor, 2 threads`` -> ``Intel Xeon, 2 threads``."""
    text = str(label).removeprefix("CPU: ").replace("(R)", "").replace("(TM)", "")
    return " ".join(text.replace(" Processor", "").split())


def rerun_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`rerun_comparison` narrow enough for the page: where each side ran (machine and
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
    head. ``per_image`` maps a run name to its :func:`load_per_image` frame."""
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


def per_image_mean(
    profile: str, run: str, metric: str = "dice", results_dir: str | os.PathLike | None = None
) -> pd.Series:
    """One run's ``metric`` per test image, averaged over its seeds (index: image name)."""
    return load_per_image(profile, run, results_dir=results_dir).groupby("name")[metric].mean()


def paired_comparisons(
    profile: str,
    run_a: str,
    run_b: str,
    metrics: Sequence[str] = ("dice", "adf_mm"),
    results_dir: str | os.PathLike | None = None,
) -> list[PairedComparison | str]:
    """:func:`paired_comparison` for several metrics; a metric that no test image has in
    both runs (e.g. no measurable head anywhere) gives a sentence saying so instead."""
    out: list[PairedComparison | str] = []
    for metric in metrics:
        try:
            out.append(paired_comparison(profile, run_a, run_b, metric, results_dir))
        except ValueError as error:
            if "empty sample" not in str(error):
                raise
            out.append(f"{metric}: no test image has a value in both {run_a} and {run_b}")
    return out

"""Results for the book: runs aggregated over seeds, the paper beside them, paired comparisons.

Everything reads the study's run folders (``results/<profile>/<run>/seed-<k>/``, read by
:mod:`fetalft.runfiles`), so a chapter shows whatever has finished and says what has not. One
run name is one strategy and variant (``decoder-0-4``, ``decoder-0-4--leaky``, ...); its
seeds are repeats. Means and standard deviations are over seeds, each seed's value being
its mean over the test images, the same aggregation as the paper's table (whose protocol
differs: see :func:`paper_table`). :mod:`fetalft.tables` lays the results out for the page.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fetalft import paper
from fetalft.metrics import CHALLENGE_METRICS, SEGMENTATION_METRICS
from fetalft.profiles import Profile
from fetalft.runfiles import checkpoint_path, is_finished, load_history, load_per_image
from fetalft.strategies import STRATEGIES
from fetalft.study import RunSpec

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


# --------------------------------------------------------------------------- run names


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


def paper_table() -> pd.DataFrame:
    """The paper's reported table (its Table 2, :data:`fetalft.paper.RESULTS`) beside the
    registry's description of each strategy.

    Different protocol from fetalft's (see :mod:`fetalft.paper`); its "mIoU" is the
    foreground IoU, so the column is called ``fg_iou`` here.
    """
    rows = []
    for s in STRATEGIES.values():
        reported = paper.RESULTS[s.name]
        rows.append(
            {
                "strategy": s.name,
                "trains": s.label,
                "encoder": s.encoder_init,
                "paper_trainable_M": reported.trainable_m,
                "pa": reported.pa,
                "pa_sd": reported.pa_sd,
                "dice": reported.dice,
                "dice_sd": reported.dice_sd,
                "fg_iou": reported.miou,
                "fg_iou_sd": reported.miou_sd,
            }
        )
    return pd.DataFrame(rows)


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


@dataclass(frozen=True, kw_only=True)
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
    values: np.ndarray, *, n_boot: int = 10_000, confidence: float = 0.95, seed: int = 0
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
    *,
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
    low, high = bootstrap_ci(diff, n_boot=n_boot, confidence=confidence, seed=seed)
    return PairedComparison(
        run_a=run_a,
        run_b=run_b,
        metric=metric,
        seeds=seeds,
        n_images=len(both),
        n_dropped=len(per_a) - len(both),
        mean_a=float(both["a"].mean()),
        mean_b=float(both["b"].mean()),
        difference=float(diff.mean()),
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        n_boot=n_boot,
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


def leak_table(
    profile: str, runs: Sequence[str], *, results_dir: str | os.PathLike | None = None
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


# --------------------------------------------------------------------------- epochs


def epoch_choice(
    runs: pd.DataFrame, profile: str, *, results_dir: str | os.PathLike | None = None
) -> pd.DataFrame:
    """Validation Dice of the best epoch (kept) and of the last epoch (what the paper kept)."""
    rows = []
    for row in runs.itertuples(index=False):
        history = load_history(profile, row.run, row.seed, results_dir=results_dir)
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


@dataclass(frozen=True, kw_only=True)
class CheckpointChoice:
    """The run whose ``best.pt`` serves, and the run that was best on validation overall.

    They differ when the best run's checkpoint is on another machine (checkpoints are not
    committed), and a reader should be told so.
    """

    row: object  # the chosen run's row of fetalft.runfiles.load_runs (a namedtuple)
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
        path = checkpoint_path(profile, row.run, row.seed, checkpoint_dir=checkpoint_dir)
        if path.is_file():
            return CheckpointChoice(row=row, path=path, best_on_validation=rows[0])
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
    return [s for s in specs if not is_finished(s.folder(Path(book.results_dir), book.profile))]


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


def paired_comparisons(
    profile: str,
    run_a: str,
    run_b: str,
    metrics: Sequence[str] = ("dice", "adf_mm"),
    *,
    results_dir: str | os.PathLike | None = None,
) -> list[PairedComparison | str]:
    """:func:`paired_comparison` for several metrics; a metric that no test image has in
    both runs (e.g. no measurable head anywhere) gives a sentence saying so instead."""
    out: list[PairedComparison | str] = []
    for metric in metrics:
        try:
            out.append(paired_comparison(profile, run_a, run_b, metric, results_dir=results_dir))
        except ValueError as error:
            if "empty sample" not in str(error):
                raise
            out.append(f"{metric}: no test image has a value in both {run_a} and {run_b}")
    return out

"""Chapter 8: a recipe that measures heads, and what each of its parts is worth.

The ``cpu-hc`` profile (:mod:`fetalft.profiles`) is the recipe. Each ablation run undoes
one part of it (its settings are in its name; seed 0) and is compared with the recipe's
own seed-0 run, on the validation images only: the test images choose nothing. Two parts
need no run of their own: every run is scored with and without flips, and the epoch that
validation Dice would have picked is read from the run's history, which scores each epoch
both ways.
"""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path

import pandas as pd
from scipy.stats import wilcoxon

from fetalft import hc18, report
from fetalft.book import project_root
from fetalft.profiles import size_label
from fetalft.runfiles import load_history, load_metrics

PROFILE = "cpu-hc"
RECIPE_RUN = "decoder-0-4"
#: Runs that go beyond the recipe toward the chapter's goal (a larger input, more epochs)
#: rather than undo one part of it: compared with the recipe on validation, not ablations.
CANDIDATE_RUNS = (
    "decoder-0-4--epochs-20--image-size-320x480",
    "decoder-0-4--augment-strong",
    "decoder-0-4--augment-strong--epochs-20--image-size-320x480",
    "decoder-0-4--augment-strong--decoder-slim--encoder-lr-0.0001--epochs-20--image-size-320x480",
    "decoder-0-4--augment-strong--decoder-slim--encoder-lr-0.0003--epochs-20--image-size-320x480",
    "decoder-0-4--augment-strong--decoder-slim--encoder-lr-0.0001--epochs-20--image-size-384x576",
    "decoder-0-4--augment-strong--decoder-slim--encoder-lr-0.0001--epochs-30--image-size-320x480",
    "decoder-0-4--augment-strong--decoder-slim--ema-0.995--encoder-lr-0.0001--epochs-20"
    "--image-size-320x480",
)
#: The first final model: the candidate that won on validation (seed 0, chapter 8's "Both
#: at once"), chosen before any of its test scores was read; its seeds 1 and 2 came after.
#: It trains the wide decoder only; the clear fit's share was chosen on its validation.
FROZEN_ENCODER_RUN = CANDIDATE_RUNS[2]
#: The final model: the same settings with the 4.4 M budget spent differently, a slim
#: decoder and the ImageNet encoder trained at a tenth of the decoder's rate (chapter 8's
#: "Training the encoder too"), chosen on validation against the first final model.
FINAL_RUN = CANDIDATE_RUNS[3]
#: The final model's settings with the encoder at three times its rate (3e-4), tried after
#: the final model's three seeds, on validation against it (seed 0).
ENCODER_RATE_RUN = CANDIDATE_RUNS[4]
#: The final model's settings at a larger input (384 x 576), tried after the faster encoder,
#: on validation against the final model (seed 0) under :func:`paired_change`'s bar.
LARGER_INPUT_RUN = CANDIDATE_RUNS[5]
#: The final model's settings trained for 30 epochs instead of 20 (the cosine schedule
#: stretched over them), tried after the larger input, under the same bar.
LONGER_RUN = CANDIDATE_RUNS[6]
#: The final model's settings with a moving average of the weights (decay 0.995, about 200
#: of its 1,440 steps) validated, kept and tested, tried after the longer run, same bar.
AVERAGED_RUN = CANDIDATE_RUNS[7]
#: The bar of :func:`paired_change`: a candidate's gain counts when a one-sided paired
#: test on the validation images gives a p-value below this.
PAIRED_P = 0.05
#: The from-scratch U-Net trained with the final model's settings (input, epochs,
#: augmentation): it trains all of itself already, so the decoder width and the encoder's
#: rate, settings of the MobileNetV2 U-Net, do not apply to it.
FINAL_BASELINE_RUN = "baseline--augment-strong--epochs-20--image-size-320x480"
#: The labels that make up a recipe, and how a difference in each is said in the table.
RECIPE_LABELS = {
    "image_size": lambda v: f"input {size_label(v)}",
    "lr": lambda v: f"learning rate {v:g}",
    "warmup_epochs": lambda v: f"{v} warm-up epoch{'s' if v != 1 else ''}",
    "loss": lambda v: f"loss {v}",
    "select_by": lambda v: f"best epoch by validation {'HC error' if v == 'hc' else 'Dice'}",
    "tta": lambda v: "flips averaged" if v else "no flips",
    "head_trainable": lambda v: "head trained" if v else "head frozen at random",
    "epochs": lambda v: f"{v} epochs",
    "augment": lambda v: (
        "stronger augmentation (scale, shift, brightness, contrast, gamma)"
        if v == "strong"
        else "the paper's augmentation"
    ),
    "decoder": lambda v: "slim decoder" if v == "slim" else "the paper's decoder",
    "encoder_lr": lambda v: f"encoder trained at {v:g}" if v else "encoder frozen",
    "ema": lambda v: f"weights averaged (decay {v:g})" if v else "last step's weights",
}
#: What runs recorded before a label existed did: they are read as this.
LABEL_DEFAULTS = {"augment": "paper", "decoder": "wide", "encoder_lr": 0.0, "ema": 0.0}


def _label(row: pd.Series, label: str) -> object:
    """A run's label; a run recorded before the label existed reads as LABEL_DEFAULTS."""
    value = row.get(label)
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return LABEL_DEFAULTS[label] if missing else value


def changes(row: pd.Series, recipe: pd.Series) -> str:
    """What an ablation run does differently from the recipe, in words."""
    differ = [label for label in RECIPE_LABELS if _label(row, label) != _label(recipe, label)]
    return "; ".join(RECIPE_LABELS[label](_label(row, label)) for label in differ) or "the recipe"


def _validation_row(
    *, change: str, dice: float, adf: float, failures: int, epoch: str, run: str
) -> dict:
    return {
        "change": change,
        "val Dice (%)": 100 * dice,
        "val ADF (mm)": adf,
        "failures": failures,
        "best epoch": epoch,
        "run": run,
    }


def ablation_table(
    runs: pd.DataFrame, *, results_dir: str | os.PathLike | None = None, seed: int = 0
) -> pd.DataFrame:
    """One row per change to the recipe, scored on the validation images (``seed``).

    ``runs`` is :func:`fetalft.runfiles.load_runs` of the profile. Columns: the change, the
    validation Dice and ADF at the chosen epoch (at original resolution), the images without
    a measurable head, the chosen epoch, and the difference from the recipe. Empty when the
    recipe's run is not finished.
    """
    if runs.empty:
        return pd.DataFrame()
    runs = runs[(runs["seed"] == seed) & (runs["strategy"] == RECIPE_RUN)]
    runs = runs[~runs["run"].isin(CANDIDATE_RUNS)]
    if RECIPE_RUN not in set(runs["run"]):
        return pd.DataFrame()
    recipe = runs[runs["run"] == RECIPE_RUN].iloc[0]
    metrics = load_metrics(PROFILE, RECIPE_RUN, seed, results_dir=results_dir)
    rows = [
        _validation_row(
            change="the recipe",
            dice=recipe["val_dice"],
            adf=recipe["val_adf_mm"],
            failures=metrics["val"]["adf_mm"]["n_nan"],
            epoch=f"{recipe['best_epoch']} of {recipe['epochs']}",
            run=RECIPE_RUN,
        )
    ]
    if "val_without_tta" in metrics:
        plain = metrics["val_without_tta"]
        rows.append(
            _validation_row(
                change="no flips (same weights)",
                dice=plain["dice"]["mean"],
                adf=plain["adf_mm"]["mean"],
                failures=plain["adf_mm"]["n_nan"],
                epoch=f"{recipe['best_epoch']} of {recipe['epochs']}",
                run=RECIPE_RUN,
            )
        )
    history = load_history(PROFILE, RECIPE_RUN, seed, results_dir=results_dir)
    if recipe["select_by"] == "hc" and "val_adf_mm" in history:
        by_dice = history.loc[history["val_dice"].idxmax()]
        rows.append(
            _validation_row(
                change="best epoch by validation Dice",
                dice=by_dice["val_dice_original"],
                adf=by_dice["val_adf_mm"],
                failures=int(by_dice["val_failures"]),
                epoch=f"{int(by_dice['epoch'])} of {recipe['epochs']}",
                run=RECIPE_RUN,
            )
        )
    for _, row in runs[runs["run"] != RECIPE_RUN].iterrows():
        failures = load_metrics(PROFILE, row["run"], seed, results_dir=results_dir)["val"]
        rows.append(
            _validation_row(
                change=changes(row, recipe),
                dice=row["val_dice"],
                adf=row["val_adf_mm"],
                failures=failures["adf_mm"]["n_nan"],
                epoch=f"{row['best_epoch']} of {row['epochs']}",
                run=row["run"],
            )
        )
    return _relative_to_first(pd.DataFrame(rows))


def _relative_to_first(table: pd.DataFrame) -> pd.DataFrame:
    """Add each row's Dice and ADF change from the first row (the recipe's)."""
    first = table.iloc[0]
    table["Dice change"] = table["val Dice (%)"] - first["val Dice (%)"]
    table["ADF change (mm)"] = table["val ADF (mm)"] - first["val ADF (mm)"]
    return table


def candidate_table(
    runs: pd.DataFrame,
    candidate: str = CANDIDATE_RUNS[0],
    *,
    against: str = RECIPE_RUN,
    results_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """A candidate of :data:`CANDIDATE_RUNS` beside the run it must beat (the recipe, or an
    earlier winner), on the validation images.

    Three rows: the run it must beat, the epoch the recipe's rule keeps for the candidate
    (the smallest HC error, a head with no measurable ellipse counting as its whole HC), and
    the candidate's epoch with the smallest ADF of the heads it did measure, which that rule
    may pass over. Same columns as :func:`ablation_table`; empty until the recipe, the run
    to beat and the candidate have finished.
    """
    if runs.empty:
        return pd.DataFrame()
    seeded = runs[runs["seed"] == seed]
    found, base, recipe = (seeded[seeded["run"] == run] for run in (candidate, against, RECIPE_RUN))
    if found.empty or base.empty or recipe.empty:
        return pd.DataFrame()
    run, base, recipe = found.iloc[0], base.iloc[0], recipe.iloc[0]
    change = changes(run, base)
    history = load_history(PROFILE, candidate, seed, results_dir=results_dir)
    closest = history.loc[history["val_adf_mm"].idxmin()]

    def kept(row: pd.Series, change: str) -> dict:
        failures = load_metrics(PROFILE, row["run"], seed, results_dir=results_dir)["val"]
        return _validation_row(
            change=change,
            dice=row["val_dice"],
            adf=row["val_adf_mm"],
            failures=failures["adf_mm"]["n_nan"],
            epoch=f"{row['best_epoch']} of {row['epochs']}",
            run=row["run"],
        )

    rows = [
        kept(base, "the recipe" if against == RECIPE_RUN else changes(base, recipe)),
        kept(run, change),
        _validation_row(
            change=f"{change}; the epoch with the lowest ADF",
            dice=closest["val_dice_original"],
            adf=closest["val_adf_mm"],
            failures=int(closest["val_failures"]),
            epoch=f"{int(closest['epoch'])} of {run['epochs']}",
            run=candidate,
        ),
    ]
    return _relative_to_first(pd.DataFrame(rows))


def paired_change(candidate: pd.DataFrame, reference: pd.DataFrame) -> pd.Series:
    """Does a candidate measure the same validation heads better than the run it must beat?

    ``candidate`` and ``reference`` hold one row per image (``name``, ``adf_mm``), scored
    the same way. Why a paired test: the gain the chapter looks for (tenths of a millimetre)
    is smaller than how much the error differs from one image to the next, but each image
    is measured by both runs, so the question is whether the candidate's error is lower on
    the same images more often and by more than chance would make it. The one-sided
    Wilcoxon signed-rank test asks exactly that, without assuming the differences are
    normal (a few hard scans dominate them).

    Returns the number of images both runs measured, the failures of each (images with no
    measurable ellipse, left out of the pairs), the mean paired ADF change (candidate minus
    reference, mm), the images where the candidate is closer, and the p-value.
    """
    names = [table["name"] for table in (candidate, reference)]
    if any(n.duplicated().any() for n in names) or set(names[0]) != set(names[1]):
        raise ValueError(
            "paired_change needs the same images once each in both tables; got "
            f"{len(candidate)} rows ({names[0].nunique()} images) and {len(reference)} rows "
            f"({names[1].nunique()} images), {len(set(names[0]) ^ set(names[1]))} in one only"
        )
    pairs = pd.DataFrame(
        {
            "candidate": candidate.set_index("name")["adf_mm"],
            "reference": reference.set_index("name")["adf_mm"],
        }
    )
    measured = pairs.dropna()
    change = measured["candidate"] - measured["reference"]
    return pd.Series(
        {
            "images": len(measured),
            "candidate failures": int(pairs["candidate"].isna().sum()),
            "reference failures": int(pairs["reference"].isna().sum()),
            "mean change (mm)": change.mean(),
            "candidate closer": int((change < 0).sum()),
            "p": wilcoxon(change, alternative="less").pvalue,
        }
    )


def paired_table(candidates: dict[str, pd.DataFrame], reference: pd.DataFrame) -> pd.DataFrame:
    """:func:`paired_change` of each candidate's images (named by the keys) against the
    same ``reference``, a row each, and whether it passes the chapter's bar: a lower ADF
    on the same images with p below :data:`PAIRED_P`. Candidates with no images yet are
    left out; empty when none has any."""
    rows = {
        name: paired_change(images, reference)
        for name, images in candidates.items()
        if not images.empty
    }
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows).T.rename_axis("candidate")
    counts = ["images", "candidate failures", "reference failures", "candidate closer"]
    table[counts] = table[counts].astype(int)
    table["passes the bar"] = (table["mean change (mm)"] < 0) & (table["p"] < PAIRED_P)
    return table


def final_table(
    cpu_hc_runs: pd.DataFrame,
    cpu_runs: pd.DataFrame,
    runs: tuple[str, ...] = (
        FINAL_RUN,
        FROZEN_ENCODER_RUN,
        RECIPE_RUN,
        FINAL_BASELINE_RUN,
        "baseline",
    ),
    results_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """The final model, the recipe and the from-scratch U-Net on the test images, beside
    the paper's protocol.

    One row per profile and run that has finished seeds (mean ± sd over seeds; failures
    summed over seeds), in the order of ``runs``. The ``cpu`` profile is the paper's
    protocol on a CPU (192 x 192, 8 epochs, 1e-4).
    """
    rows = []
    for profile, table in ((PROFILE, cpu_hc_runs), ("cpu", cpu_runs)):
        if table.empty:
            continue
        for run in runs:
            group = table[table["run"] == run]
            if group.empty:
                continue
            first = group.iloc[0]
            failures = sum(
                load_metrics(profile, run, seed, results_dir=results_dir)["test"]["adf_mm"]["n_nan"]
                for seed in group["seed"]
            )
            rows.append(
                {
                    "profile": profile,
                    "run": run,
                    "input": size_label(first["image_size"]),
                    "epochs": int(first["epochs"]),
                    "augmentation": _label(first, "augment"),
                    "seeds": ", ".join(map(str, sorted(group["seed"]))),
                    "trainable": int(first["trainable_parameters"]),
                    "Dice (%)": report.format_mean_sd(*_mean_sd(group["dice"]), scale=100),
                    "ADF (mm)": report.format_mean_sd(*_mean_sd(group["adf_mm"])),
                    "failures": failures,
                    "minutes per run": group["wall_seconds"].mean() / 60,
                    "dice": group["dice"].mean(),
                    "adf_mm": group["adf_mm"].mean(),
                }
            )
    return pd.DataFrame(rows)


def epoch_minutes(
    runs: pd.DataFrame, run: str, *, results_dir: str | os.PathLike | None = None
) -> float:
    """Training minutes of one epoch of ``run``: the median epoch of its least-shared seed.

    Why not the wall time: some runs shared the 2-core CPU with other work for part of
    their epochs, and some were paused and resumed. A seed's median epoch shrugs off a few
    slow epochs, and the seed with the smallest median is the one that shared the least.
    """
    seeds = runs.loc[runs["run"] == run, "seed"] if len(runs) else []
    if len(seeds) == 0:
        raise ValueError(f"no finished seed of {run} in the {PROFILE} runs")
    medians = [
        load_history(PROFILE, run, int(seed), results_dir=results_dir)["train_seconds"].median()
        for seed in seeds
    ]
    return min(medians) / 60


def _mean_sd(values: pd.Series) -> tuple[float, float]:
    values = values.astype(float)
    return values.mean(), values.std(ddof=1) if len(values) > 1 else float("nan")


#: Where each split's scores with and without the flips sit in :func:`fetalft.runfiles.load_runs`.
_FLIP_COLUMNS = {"val": ("val_", "val_without_tta_"), "test": ("", "test_without_tta_")}


def flip_effect(runs: pd.DataFrame) -> pd.DataFrame:
    """What averaging the flips changes, run by run, with the same weights.

    One row per run and seed of ``runs`` (:func:`fetalft.runfiles.load_runs`) that was
    scored both ways: for the validation and the test images, the change that the flips
    make to the mean signed HC difference (``val DF change (mm)``; negative: the flips
    measure heads smaller) and to the ADF (``val ADF change (mm)``; negative: they help).

    Why: every run is scored with and without the flips, so each run is a paired
    experiment on the same weights and images; across runs, the sign of the DF change says
    whether the flips only smooth the outline or also move it.
    """
    needed = [
        f"{prefix}{metric}"
        for pair in _FLIP_COLUMNS.values()
        for prefix in pair
        for metric in ("df_mm", "adf_mm")
    ]
    if runs.empty or not set(needed) <= set(runs.columns):
        return pd.DataFrame()
    scored = runs.dropna(subset=needed)
    table = scored[["run", "seed"]].reset_index(drop=True)
    for split, (flips, plain) in _FLIP_COLUMNS.items():
        for metric, label in (("df_mm", "DF"), ("adf_mm", "ADF")):
            change = scored[f"{flips}{metric}"] - scored[f"{plain}{metric}"]
            table[f"{split} {label} change (mm)"] = change.to_numpy()
    return table


def worst_images(per_image: pd.DataFrame, n: int = 6) -> pd.DataFrame:
    """The ``n`` test images with the largest HC error (a failure counts as the worst)."""
    key = per_image["adf_mm"].fillna(float("inf"))
    return per_image.loc[key.sort_values(ascending=False).index[:n]]


def error_by_head_size(
    per_image: pd.DataFrame, edges_mm: tuple[float, ...] = (100.0, 200.0)
) -> pd.DataFrame:
    """Where the millimetres come from: test images grouped by the expert's HC.

    One row per band of expert HC (below the first edge, between edges, from the last one
    up), over every image and seed in ``per_image``: image-runs, failures (no measurable
    head), mean and median ADF of the measured heads, the mean error as a share of the
    head's HC, and the band's share of the summed absolute error of all measured heads.

    Why: a small head can miss by a large share of its HC while a large head's few-per-cent
    error carries more millimetres; the bands show which one limits the mean.
    """
    bounds = (0.0, *edges_mm, math.inf)
    labels = [f"under {edges_mm[0]:g} mm"]
    labels += [f"{lo:g}-{hi:g} mm" for lo, hi in itertools.pairwise(edges_mm)]
    labels += [f"{edges_mm[-1]:g} mm and over"]
    band = pd.cut(per_image["hc_true_mm"], bounds, right=False, labels=labels)
    adf = per_image["adf_mm"].astype(float)
    groups = per_image.assign(band=band, adf=adf, share=adf / per_image["hc_true_mm"])
    table = groups.groupby("band", observed=False).agg(
        images=("adf", "size"),
        failures=("adf", lambda values: int(values.isna().sum())),
        adf_mean=("adf", "mean"),
        adf_median=("adf", "median"),
        share_mean=("share", "mean"),
        adf_sum=("adf", "sum"),
    )
    table["share_mean"] *= 100
    table["adf_sum"] *= 100 / table["adf_sum"].sum()
    return table.rename(
        columns={
            "adf_mean": "mean ADF (mm)",
            "adf_median": "median ADF (mm)",
            "share_mean": "mean error (% of HC)",
            "adf_sum": "share of all the mm (%)",
        }
    ).rename_axis("expert HC")


def error_share(per_image: pd.DataFrame, n: int = 10) -> float:
    """Share of the total absolute HC error carried by the ``n`` worst measured images."""
    errors = per_image["adf_mm"].dropna().sort_values(ascending=False)
    return float(errors.head(n).sum() / errors.sum())


def seed_agreement(per_image: pd.DataFrame) -> pd.Series:
    """How closely the seeds agree with one another, against how closely with the expert.

    Over the images that every seed in ``per_image`` measured: ``between seeds (mm)``, the
    mean absolute HC difference of two seeds on one image (every pair of seeds);
    ``one seed's ADF (mm)``, the mean over seeds of each seed's ADF; and ``ADF of the
    seeds' mean HC (mm)``, the ADF of the seeds' average.

    Why: when the seeds agree far better than each agrees with the expert, the error that
    is left is the same training making the same mistake on the same scan, not the luck of
    one run, and averaging seeds (an ensemble) cannot remove it.
    """
    hc = per_image.pivot(index="name", columns="seed", values="hc_pred_mm").dropna()
    if hc.shape[1] < 2:
        raise ValueError(
            f"seed agreement needs at least two seeds, got {list(hc.columns)}; train more seeds."
        )
    truth = per_image.groupby("name")["hc_true_mm"].first().loc[hc.index]
    between = [(hc[a] - hc[b]).abs() for a, b in itertools.combinations(hc.columns, 2)]
    return pd.Series(
        {
            "images": len(hc),
            "between seeds (mm)": pd.concat(between).mean(),
            "one seed's ADF (mm)": hc.sub(truth, axis=0).abs().mean().mean(),
            "ADF of the seeds' mean HC (mm)": (hc.mean(axis=1) - truth).abs().mean(),
        }
    )


def exam_pairs(per_image: pd.DataFrame) -> pd.DataFrame:
    """Every pair of scans of one exam in ``per_image`` (one seed), with the HC difference
    between the two by the expert and by the model (NaN where the model found no head).

    Why: HC18 holds several scans of some exams, each annotated on its own. How far the
    expert's two measurements of one head lie apart is a yardstick for the model's error
    on one scan, and whether the model's difference follows the expert's shows that it
    measures each scan rather than a typical head.
    """
    scans = per_image.set_index("name")
    pairs = hc18.exam_pairs(scans.index)
    first, second = [a for a, _ in pairs], [b for _, b in pairs]

    def difference(column: str) -> list[float]:
        return list(scans.loc[first, column].to_numpy() - scans.loc[second, column].to_numpy())

    return pd.DataFrame(
        {
            "exam": [hc18.exam_id(name) for name in first],
            "first": first,
            "second": second,
            "expert difference (mm)": difference("hc_true_mm"),
            "model difference (mm)": difference("hc_pred_mm"),
        }
    )


def committed_results() -> Path:
    """The repository's ``results/`` folder: the committed study, whatever the profile.

    Why not ``$FETALFT_RESULTS_DIR``: this chapter's runs take hours, so every reader and
    every CI run shows the recorded ones rather than waiting for new ones.
    """
    root = project_root() or project_root(Path(__file__).parent)
    return (root or Path.cwd()) / "results"

"""fetalft.report on hand-made run folders: known numbers in, known tables out.

Every run folder here is written by hand (``metrics.json``, ``per_image.csv``,
``history.csv``) with the same atomic writers the study uses, so no model is trained and
every expected value can be checked by eye.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from fetalft import report
from fetalft.io import write_csv_atomic, write_json_atomic
from fetalft.profiles import Profile
from fetalft.runfiles import checkpoint_path, load_runs
from fetalft.strategies import STRATEGIES
from fetalft.study import RunSpec

PROFILE = "tiny"
TINY = Profile(PROFILE, image_size=32, epochs=1, seeds=(0, 1))
NAN = float("nan")


def metric_summary(mean: float) -> dict[str, float | int]:
    """A metric's test summary over three images; NaN: none of them could be measured."""
    if math.isnan(mean):
        return {"mean": NAN, "sd": NAN, "n": 0, "n_nan": 3}
    return {"mean": mean, "sd": 0.01, "n": 3, "n_nan": 0}


def write_run(
    results: Path,
    spec: RunSpec,
    *,
    test: dict[str, float] | None = None,
    best_val_dice: float = 0.9,
    per_image: pd.DataFrame | None = None,
    history: pd.DataFrame | None = None,
    **labels: object,
) -> Path:
    """A finished run folder as :meth:`fetalft.study.Study.run` writes it; ``test`` holds the
    test mean of each metric (NaN is written as JSON ``null``, like a real run)."""
    metrics = {
        "run": spec.name,
        "strategy": spec.strategy,
        "paper_label": STRATEGIES[spec.strategy].label,
        "seed": spec.seed,
        "profile": PROFILE,
        "image_size": 32,
        "epochs": 1,
        "split": spec.split,
        "train_fraction": spec.train_fraction,
        "head_trainable": spec.head_trainable,
        "random_bn": spec.random_bn,
        "data": "synthetic",
        "n_train": 6,
        "n_val": 3,
        "n_test": 3,
        "weights": "random",
        "precision": "fp32",
        "hardware": "test CPU",
        "trainable_parameters": 4_400_000,
        "total_parameters": 6_600_000,
        "best_epoch": 1,
        "best_val_dice": best_val_dice,
        "wall_seconds": 10.0,
        **labels,
        "test": {metric: metric_summary(mean) for metric, mean in (test or {"dice": 0.9}).items()},
    }
    folder = results / PROFILE / spec.name / f"seed-{spec.seed}"
    write_json_atomic(folder / "metrics.json", metrics)
    if per_image is not None:
        write_csv_atomic(folder / "per_image.csv", per_image)
    if history is not None:
        write_csv_atomic(folder / "history.csv", history)
    return folder


def scores(values: Sequence[float], metric: str = "dice") -> pd.DataFrame:
    """A ``per_image.csv`` of test images ``000_HC``, ``001_HC``, ... with one metric."""
    return pd.DataFrame({"name": [f"{i:03d}_HC" for i in range(len(values))], metric: values})


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return tmp_path / "results"


# --------------------------------------------------------------------------- loading


# --------------------------------------------------------------------------- aggregation


def test_summarize_runs_gives_mean_and_sample_sd_over_seeds(results: Path) -> None:
    for seed, dice in enumerate([0.90, 0.92, 0.97]):
        write_run(results, RunSpec("decoder-0-4", seed), test={"dice": dice}, best_epoch=seed + 1)
    [row] = report.summarize_runs(load_runs(PROFILE, results)).to_dict("records")
    assert row["n_seeds"] == 3
    assert row["seeds"] == "0, 1, 2"
    assert row["best_epoch"] == "1, 2, 3"
    assert row["dice_mean"] == pytest.approx(0.93)
    assert row["dice_sd"] == pytest.approx(math.sqrt(0.0013))  # ddof=1: (9+1+16)e-4 / 2


def test_summarize_runs_sd_is_nan_with_one_seed(results: Path) -> None:
    write_run(results, RunSpec("decoder-4", 0), test={"dice": 0.4})
    summary = report.summarize_runs(load_runs(PROFILE, results))
    assert summary.loc[0, "dice_mean"] == pytest.approx(0.4)
    assert math.isnan(summary.loc[0, "dice_sd"])


def test_summarize_runs_skips_a_null_seed_in_the_mean(results: Path) -> None:
    write_run(results, RunSpec("decoder-4", 0), test={"dice": 0.4, "adf_mm": NAN})
    write_run(results, RunSpec("decoder-4", 1), test={"dice": 0.6, "adf_mm": 3.0})
    summary = report.summarize_runs(load_runs(PROFILE, results))
    assert summary.loc[0, "adf_mm_mean"] == pytest.approx(3.0)
    assert math.isnan(summary.loc[0, "adf_mm_sd"])


def test_summarize_runs_joins_labels_the_seeds_disagree_on(results: Path) -> None:
    write_run(results, RunSpec("decoder-4", 0), hardware="CPU A", n_train=6)
    write_run(results, RunSpec("decoder-4", 1), hardware="CPU B", n_train=6)
    [row] = report.summarize_runs(load_runs(PROFILE, results)).to_dict("records")
    assert row["hardware"] == "CPU A | CPU B"
    assert row["n_train"] == 6
    assert row["precision"] == "fp32"


def test_summarize_runs_follows_the_strategy_registry(results: Path) -> None:
    for spec in [
        RunSpec("decoder-0-4", 0, split="leaky"),
        RunSpec("decoder-0-4", 0),
        RunSpec("decoder-4", 0),
        RunSpec("baseline", 0),
    ]:
        write_run(results, spec)
    summary = report.summarize_runs(load_runs(PROFILE, results))
    # registry order: baseline ... decoder-4, decoder-0-4; a variant after its default
    assert summary["run"].tolist() == ["baseline", "decoder-4", "decoder-0-4", "decoder-0-4--leaky"]


@pytest.mark.parametrize(
    ("mean", "sd", "scale", "digits", "expected"),
    [
        (0.9628, 0.0038, 100, 2, "96.28 ± 0.38"),
        (0.9628, NAN, 100, 2, "96.28 (1 seed)"),
        (0.9628, None, 100, 2, "96.28 (1 seed)"),
        (2.345, 0.5, 1, 1, "2.3 ± 0.5"),
        (NAN, NAN, 100, 2, "n/a"),
        (None, None, 1, 2, "n/a"),
    ],
)
def test_format_mean_sd(
    mean: float | None, sd: float | None, scale: float, digits: int, expected: str
) -> None:
    assert report.format_mean_sd(mean, sd, scale, digits) == expected


@pytest.fixture
def summary(results: Path) -> pd.DataFrame:
    """decoder-0-4 over three seeds (Dice 93.00 ± 3.61, HC error 2 ± 1 mm), decoder-4 once."""
    for seed, (dice, adf) in enumerate([(0.90, 1.0), (0.92, 2.0), (0.97, 3.0)]):
        write_run(results, RunSpec("decoder-0-4", seed), test={"dice": dice, "adf_mm": adf})
    write_run(
        results,
        RunSpec("decoder-4", 0),
        test={"dice": 0.4, "adf_mm": NAN},
        trainable_parameters=6_976,
    )
    write_run(results, RunSpec("decoder-4", 0, split="leaky"), test={"dice": 0.5, "adf_mm": 9.0})
    return report.summarize_runs(load_runs(PROFILE, results))


# --------------------------------------------------------------------------- comparisons


def test_bootstrap_ci_of_a_constant_is_that_constant() -> None:
    low, high = report.bootstrap_ci([0.25] * 8, n_boot=200)
    assert low == high == 0.25


def test_bootstrap_ci_is_reproducible_and_brackets_the_mean() -> None:
    values = [0.1, 0.3, 0.2, 0.5, 0.4, 0.0]
    low, high = report.bootstrap_ci(values, n_boot=2_000, seed=3)
    assert (low, high) == report.bootstrap_ci(values, n_boot=2_000, seed=3)
    assert 0.0 < low < 0.25 < high < 0.5


def test_bootstrap_ci_of_nothing_raises() -> None:
    with pytest.raises(ValueError, match="empty sample"):
        report.bootstrap_ci([])


def test_paired_comparison_finds_a_known_constant_difference(results: Path) -> None:
    base = [0.5, 0.625, 0.25, 0.375, 0.125, 0.0]
    write_run(results, RunSpec("decoder-0-4", 0), per_image=scores([b + 0.25 for b in base]))
    write_run(results, RunSpec("decoder-4", 0), per_image=scores(base))
    result = report.paired_comparison(PROFILE, "decoder-0-4", "decoder-4", results_dir=results)
    assert result.difference == pytest.approx(0.25)
    assert result.ci_low <= 0.25 <= result.ci_high
    assert result.excludes_zero
    assert (result.n_images, result.n_dropped, result.seeds) == (6, 0, (0,))
    assert result.mean_a - result.mean_b == pytest.approx(0.25)
    assert "difference +25.00 points" in str(result)


def test_paired_comparison_of_identical_runs_contains_zero(results: Path) -> None:
    values = [0.9, 0.7, 0.8, 0.95]
    for strategy in ("decoder-0-4", "decoder-4"):
        write_run(results, RunSpec(strategy, 0), per_image=scores(values))
    result = report.paired_comparison(PROFILE, "decoder-0-4", "decoder-4", results_dir=results)
    assert result.ci_low <= 0 <= result.ci_high
    assert not result.excludes_zero


def test_paired_comparison_of_differences_around_zero_contains_zero(results: Path) -> None:
    base = [0.5, 0.6, 0.7, 0.8, 0.5, 0.6, 0.7, 0.8]
    shift = [0.1, -0.1, 0.05, -0.05, 0.02, -0.02, 0.1, -0.1]
    write_run(results, RunSpec("decoder-0-4", 0), per_image=scores(base))
    write_run(
        results,
        RunSpec("decoder-4", 0),
        per_image=scores([b + s for b, s in zip(base, shift, strict=True)]),
    )
    result = report.paired_comparison(PROFILE, "decoder-0-4", "decoder-4", results_dir=results)
    assert result.difference == pytest.approx(0.0)
    assert result.ci_low < 0 < result.ci_high


def test_paired_comparison_averages_only_the_shared_seeds(results: Path) -> None:
    """decoder-0-4's seed 1 has no partner in decoder-4 and must not move the difference."""
    write_run(results, RunSpec("decoder-0-4", 0), per_image=scores([0.8, 0.9]))
    write_run(results, RunSpec("decoder-0-4", 1), per_image=scores([0.0, 0.0]))
    write_run(results, RunSpec("decoder-4", 0), per_image=scores([0.7, 0.8]))
    result = report.paired_comparison(PROFILE, "decoder-0-4", "decoder-4", results_dir=results)
    assert result.seeds == (0,)
    assert result.mean_a == pytest.approx(0.85)
    assert result.difference == pytest.approx(0.1)


def test_paired_comparison_without_a_shared_seed_raises(results: Path) -> None:
    write_run(results, RunSpec("decoder-0-4", 0), per_image=scores([0.8]))
    write_run(results, RunSpec("decoder-4", 1), per_image=scores([0.7]))
    with pytest.raises(ValueError, match="no seed in common"):
        report.paired_comparison(PROFILE, "decoder-0-4", "decoder-4", results_dir=results)


def test_paired_comparison_refuses_different_test_images(results: Path) -> None:
    """An image scored by only one run means different test sets: nothing to pair."""
    write_run(results, RunSpec("decoder-0-4", 0), per_image=scores([0.8, 0.9, 0.7]))
    write_run(results, RunSpec("decoder-4", 0), per_image=scores([0.8, 0.9]))
    with pytest.raises(ValueError, match="different test images"):
        report.paired_comparison(PROFILE, "decoder-0-4", "decoder-4", results_dir=results)


def test_paired_comparison_leaves_out_images_without_a_value(results: Path) -> None:
    """An unmeasurable head (NaN in per_image.csv) in either run drops that image, counted."""
    write_run(results, RunSpec("decoder-0-4", 0), per_image=scores([1.0, 2.0, NAN], "adf_mm"))
    write_run(results, RunSpec("decoder-4", 0), per_image=scores([3.0, 4.0, 5.0], "adf_mm"))
    result = report.paired_comparison(
        PROFILE, "decoder-0-4", "decoder-4", "adf_mm", results_dir=results
    )
    assert (result.n_images, result.n_dropped) == (2, 1)
    assert result.difference == pytest.approx(-2.0)
    assert "1 images without a value left out" in str(result)


def test_paired_comparisons_says_so_when_no_image_has_a_value(results: Path) -> None:
    frame = scores([0.8, 0.9]).assign(adf_mm=NAN)
    for strategy in ("decoder-0-4", "decoder-4"):
        write_run(results, RunSpec(strategy, 0), per_image=frame)
    dice, adf = report.paired_comparisons(PROFILE, "decoder-0-4", "decoder-4", results_dir=results)
    assert isinstance(dice, report.PairedComparison)
    assert adf == "adf_mm: no test image has a value in both decoder-0-4 and decoder-4"


def test_leak_breakdown_splits_test_images_by_sibling_in_training() -> None:
    """014_2HC and 017_HC are leaky-split test images whose exam has a scan in training;
    008_HC and 021_HC are not (committed split). Seeds are averaged per image first."""
    per_image = pd.DataFrame(
        {
            "seed": [0, 1, 0, 0, 0, 1],
            "name": ["014_2HC", "014_2HC", "017_HC", "008_HC", "021_HC", "021_HC"],
            "dice": [0.9, 0.7, 0.9, 0.5, 0.6, 0.8],
            "adf_mm": [1.0, 3.0, 4.0, 10.0, 20.0, 20.0],
        }
    )
    out = report.leak_breakdown(per_image)
    sibling, alone = out.loc["sibling in training"], out.loc["no sibling in training"]
    assert sibling[("dice", "mean")] == pytest.approx(0.85)
    assert sibling[("adf_mm", "mean")] == pytest.approx(3.0)
    assert sibling[("dice", "count")] == 2  # images, not rows
    assert alone[("dice", "mean")] == pytest.approx(0.6)
    assert alone[("adf_mm", "mean")] == pytest.approx(15.0)
    assert alone[("adf_mm", "count")] == 2


def test_variant_table_sets_each_variant_beside_its_default(results: Path) -> None:
    for seed, dice in enumerate([0.9, 0.92]):
        write_run(results, RunSpec("decoder-0-4", seed), test={"dice": dice})
    write_run(results, RunSpec("decoder-0-4", 0, split="leaky"), test={"dice": 0.95})
    write_run(results, RunSpec("decoder-4", 0, head_trainable=True), test={"dice": 0.6})
    summary = report.summarize_runs(load_runs(PROFILE, results))
    table = report.variant_table(summary, metrics=("dice",))
    assert table.to_dict("records") == [
        {
            "run": "decoder-4--head",
            "strategy": "decoder-4",
            "variant": "head",
            "default run": "decoder-4",
            "default dice": "not run yet",
            "variant dice": "60.00 (1 seed)",
            "dice change": "n/a",
            "default seeds": 0,
            "variant seeds": 1,
        },
        {
            "run": "decoder-0-4--leaky",
            "strategy": "decoder-0-4",
            "variant": "leaky",
            "default run": "decoder-0-4",
            "default dice": "91.00 ± 1.41",
            "variant dice": "95.00 (1 seed)",
            "dice change": "+4.00",
            "default seeds": 2,
            "variant seeds": 1,
        },
    ]


def test_a_variant_of_a_variant_is_compared_with_the_run_it_differs_from_in_one_respect(
    results: Path,
) -> None:
    """The leak under the frozen head is leaky-frozen minus exam-frozen, not minus the
    main run (which trains the head)."""
    write_run(results, RunSpec("decoder-0-4", 0), test={"dice": 0.97})
    write_run(results, RunSpec("decoder-0-4", 0, head_trainable=False), test={"dice": 0.90})
    frozen_leaky = RunSpec("decoder-0-4", 0, split="leaky", head_trainable=False)
    write_run(results, frozen_leaky, test={"dice": 0.93})
    summary = report.summarize_runs(load_runs(PROFILE, results))
    rows = report.variant_table(summary, metrics=("dice",)).set_index("variant")
    assert rows.loc["leaky", "default run"] == "decoder-0-4--frozen-head"
    assert rows.loc["leaky", "dice change"] == "+3.00"
    assert rows.loc["frozen-head", "default run"] == "decoder-0-4"
    assert rows.loc["frozen-head", "dice change"] == "-7.00"


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        ("decoder-0-4", ("decoder-0-4", "")),
        ("decoder-0-4--leaky", ("decoder-0-4", "leaky")),
        ("decoder-0-4--leaky--frozen-head", ("decoder-0-4--frozen-head", "leaky")),
        ("decoder-0--head--random-bn-train", ("decoder-0--random-bn-train", "head")),
    ],
)
def test_split_variant(run: str, expected: tuple[str, str]) -> None:
    assert report.split_variant(run) == expected


def test_variant_table_states_the_change_in_mm_for_head_circumference(results: Path) -> None:
    write_run(results, RunSpec("baseline", 0), test={"dice": 0.9, "adf_mm": 3.0})
    write_run(results, RunSpec("baseline", 0, split="leaky"), test={"dice": 0.9, "adf_mm": 2.5})
    summary = report.summarize_runs(load_runs(PROFILE, results))
    (row,) = report.variant_table(summary).to_dict("records")
    assert (row["default adf_mm"], row["variant adf_mm"]) == ("3.00 (1 seed)", "2.50 (1 seed)")
    assert row["adf_mm change"] == "-0.50"
    assert row["dice change"] == "+0.00"
    assert "hausdorff_mm change" not in row  # not recorded by these runs


def test_rerun_comparison_pairs_each_rerun_with_its_study_run(results: Path, tmp_path) -> None:
    reruns = tmp_path / "reruns"
    write_run(results, RunSpec("encoder", 0), test={"dice": 0.8, "adf_mm": 5.0}, precision="bf16")
    write_run(results, RunSpec("encoder", 1), test={"dice": 0.6, "adf_mm": 9.0})
    write_run(reruns, RunSpec("encoder", 0), test={"dice": 0.7, "adf_mm": 6.5}, precision="fp32")
    table = report.rerun_comparison(load_runs(PROFILE, results), load_runs(PROFILE, reruns))
    assert list(table.index) == [("encoder", 0)]  # seed 1 has no re-run
    row = table.loc[("encoder", 0)]
    assert (row["precision (study)"], row["precision (re-run)"]) == ("bf16", "fp32")
    assert row["dice (study)"] == pytest.approx(80.0)
    assert row["dice change"] == pytest.approx(-10.0)
    assert row["adf_mm change"] == pytest.approx(1.5)
    assert report.rerun_comparison(load_runs(PROFILE, results), pd.DataFrame()).empty


# --------------------------------------------------------------------------- coverage


def test_is_main_variant_means_exam_split_all_images_paper_head(results: Path) -> None:
    specs = [
        RunSpec("decoder-4", 0),
        RunSpec("decoder-4", 0, split="leaky"),
        RunSpec("decoder-4", 0, train_fraction=0.5),
        RunSpec("decoder-4", 0, head_trainable=True),
        RunSpec("decoder-4", 0, random_bn="train"),
        RunSpec("decoder-0-4", 0, head_trainable=True),  # its own head: the main run
        RunSpec("decoder-0-4", 0, head_trainable=False),
    ]
    for spec in specs:
        write_run(results, spec)
    runs = load_runs(PROFILE, results)
    assert runs.loc[report.is_main_variant(runs), "run"].tolist() == ["decoder-0-4", "decoder-4"]


def test_missing_runs_lists_main_table_cells_not_finished(results: Path) -> None:
    """A variant (here decoder-4 on the leaky split) does not fill its strategy's cell."""
    done = [RunSpec(name, seed) for name in STRATEGIES for seed in TINY.seeds]
    done.remove(RunSpec("decoder-4", 1))
    done.remove(RunSpec("baseline", 0))
    for spec in [*done, RunSpec("decoder-4", 1, split="leaky")]:
        write_run(results, spec)
    runs = load_runs(PROFILE, results)
    assert report.missing_runs(runs, TINY) == ["baseline seed 0", "decoder-4 seed 1"]
    message = report.coverage_message(runs, TINY)
    assert message.startswith("18 of 20 main-table runs of the tiny profile have finished")
    assert "missing: baseline seed 0, decoder-4 seed 1" in message


def test_coverage_message_when_all_or_nothing_has_finished(results: Path) -> None:
    assert "No run of the tiny profile has finished" in report.coverage_message(
        load_runs(PROFILE, results), TINY
    )
    for name in STRATEGIES:
        for seed in TINY.seeds:
            write_run(results, RunSpec(name, seed))
    runs = load_runs(PROFILE, results)
    assert report.missing_runs(runs, TINY) == []
    assert report.coverage_message(runs, TINY) == (
        "All 20 main-table runs of the tiny profile have finished."
    )


# --------------------------------------------------------------------------- choosing


def test_best_run_is_chosen_on_validation_never_on_test(results: Path) -> None:
    """decoder-4 wins on test Dice, decoder-0-4 on mean validation Dice: decoder-0-4."""
    for seed, val in enumerate([0.90, 0.80]):
        write_run(results, RunSpec("decoder-0-4", seed), best_val_dice=val, test={"dice": 0.5})
    for seed, val in enumerate([0.95, 0.70]):  # better single seed, worse mean
        write_run(results, RunSpec("decoder-4", seed), best_val_dice=val, test={"dice": 0.99})
    assert report.best_run(load_runs(PROFILE, results)) == "decoder-0-4"


def test_best_run_ignores_baseline_and_variants(results: Path) -> None:
    write_run(results, RunSpec("decoder-4", 0), best_val_dice=0.5)
    write_run(results, RunSpec("baseline", 0), best_val_dice=0.99)
    write_run(results, RunSpec("decoder-0-4", 0, split="leaky"), best_val_dice=0.99)
    runs = load_runs(PROFILE, results)
    assert report.best_run(runs) == "decoder-4"
    assert report.best_run(runs, exclude=()) == "baseline"
    assert report.best_run(runs, exclude=("baseline", "decoder-4")) is None


def test_best_checkpoint_skips_runs_whose_best_pt_is_missing(results: Path, tmp_path: Path) -> None:
    """Ranked on validation Dice: decoder-2-4 has the best test Dice and must not win."""
    checkpoints = tmp_path / "checkpoints"
    write_run(results, RunSpec("decoder-0-4", 1), best_val_dice=0.95)  # no best.pt
    write_run(results, RunSpec("decoder-4", 0), best_val_dice=0.90)
    write_run(results, RunSpec("decoder-2-4", 0), best_val_dice=0.85, test={"dice": 0.99})
    write_run(results, RunSpec("decoder-0-4", 0, split="leaky"), best_val_dice=0.99)
    runs = load_runs(PROFILE, results)
    assert report.best_checkpoint(runs, checkpoints, PROFILE) is None
    for run in ("decoder-4", "decoder-2-4", "decoder-0-4--leaky"):
        path = checkpoint_path(PROFILE, run, 0, checkpoint_dir=checkpoints)
        path.parent.mkdir(parents=True)
        path.write_bytes(b"")
    choice = report.best_checkpoint(runs, checkpoints, PROFILE)
    assert (choice.row.run, choice.row.seed) == ("decoder-4", 0)
    assert choice.path == checkpoints / PROFILE / "decoder-4" / "seed-0" / "best.pt"
    # the leaky run does not count; decoder-0-4 seed 1 was best but its best.pt is elsewhere
    assert (choice.best_on_validation.run, choice.best_on_validation.seed) == ("decoder-0-4", 1)
    assert not choice.is_best


def test_epoch_choice_compares_best_and_last_epoch(results: Path) -> None:
    history = pd.DataFrame(
        {"epoch": [1, 2, 3], "train_loss": [0.5, 0.4, 0.3], "val_dice": [0.8, 0.9, 0.85]}
    )
    write_run(results, RunSpec("decoder-4", 0), history=history)
    choice = report.epoch_choice(load_runs(PROFILE, results), PROFILE, results_dir=results)
    [row] = choice.to_dict("records")
    assert (row["best epoch"], row["last epoch"]) == (2, 3)
    assert row["gain"] == pytest.approx(0.05)
    gain = report.epoch_gain(choice).loc["decoder-4"]
    assert gain["best epoch not last"] == 1
    assert gain["mean val Dice gain (points)"] == pytest.approx(5.0)


# --------------------------------------------------------------------------- one run


def test_compute_time_sums_wall_hours_per_hardware(results: Path) -> None:
    for seed, hardware, seconds in (
        (0, "CPU A", 1800.0),
        (1, "CPU A", 3600.0),
        (2, "CPU B", 900.0),
    ):
        spec = RunSpec("decoder-4", seed)
        write_run(results, spec, hardware=hardware, wall_seconds=seconds)
    table = report.compute_time(load_runs(PROFILE, results))
    assert table.loc[("CPU A", "fp32")].tolist() == [2, 1.5]
    assert table.loc[("CPU B", "fp32")].tolist() == [1, 0.25]
    assert table.loc[("all", "")].tolist() == [3, 1.75]
    assert report.compute_time(pd.DataFrame()).empty


# --------------------------------------------------------------------------- display


def test_leak_table_is_in_percent_and_mm_per_run_and_group(results: Path) -> None:
    per_image = pd.DataFrame(
        {"name": ["014_2HC", "008_HC"], "dice": [0.9, 0.5], "adf_mm": [1.0, 10.0]}
    )
    write_run(results, RunSpec("decoder-0-4", 0, split="leaky"), per_image=per_image)
    table = report.leak_table(PROFILE, ["decoder-0-4--leaky"], results_dir=results)
    row = table.loc[("decoder-0-4--leaky", "sibling in training")]
    assert (row["images"], row["Dice (%)"], row["abs. HC error (mm)"]) == (1, 90.0, 1.0)
    assert report.leak_table(PROFILE, [], results_dir=results).empty

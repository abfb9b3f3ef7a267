"""fetalft.recipe (chapter 8) on hand-made run folders: known numbers in, known tables out.

Every run folder is written by hand as :meth:`fetalft.study.Study.run` writes it
(``metrics.json`` with "test", "val", "val_without_tta" summaries, ``history.csv`` with the
original-resolution validation columns, ``per_image.csv``, ``environment.json``), so no
model is trained and every expected number below is worked out by hand in a comment.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pandas as pd
import pytest

from fetalft import recipe
from fetalft.io import write_csv_atomic, write_json_atomic
from fetalft.runfiles import load_per_image, load_runs
from fetalft.study import RunSpec

NAN = float("nan")
REPO_RESULTS = Path(__file__).resolve().parents[1] / "results"
FROZEN_HEAD = "decoder-0-4--frozen-head"
PAPER_SCHEDULE = "decoder-0-4--lr-0.0001--warmup-epochs-0"
SQUARE = "decoder-0-4--image-size-320"

#: The cpu-hc recipe as a run records it (image_size is a list in JSON).
RECIPE = {
    "image_size": [256, 384],
    "epochs": 5,
    "lr": 1e-3,
    "warmup_epochs": 1,
    "loss": "bce+dice",
    "select_by": "hc",
    "tta": True,
    "head_trainable": True,
}


def summary(dice: float, adf_mm: float, failures: int, n: int = 80) -> dict:
    """A metrics.json summary of Dice and ADF over ``n`` images, ``failures`` without a head."""
    return {
        "dice": {"mean": dice, "sd": 0.02, "n": n, "n_nan": 0},
        "adf_mm": {"mean": adf_mm, "sd": 1.5, "n": n - failures, "n_nan": failures},
    }


def write_run(
    results: Path,
    profile: str,
    run: str,
    seed: int,
    *,
    test: dict,
    strategy: str = "decoder-0-4",
    best_epoch: int = 4,
    wall_seconds: float = 3600.0,
    history: pd.DataFrame | None = None,
    per_image: pd.DataFrame | None = None,
    environment: dict | None = None,
    **labels: object,
) -> Path:
    """A finished run folder; ``labels`` and extra summaries ("val", ...) go into metrics.json."""
    metrics = {
        "run": run,
        "strategy": strategy,
        "paper_label": "decoder 0-4" if strategy == "decoder-0-4" else "baseline",
        "seed": seed,
        "profile": profile,
        "split": "exam",
        "train_fraction": 1.0,
        "random_bn": "eval",
        "data": "HC18",
        "n_train": 719,
        "n_val": 80,
        "n_test": 200,
        "weights": "file:mobilenet_v2.pth",
        "precision": "bf16-autocast",
        "hardware": "CPU: AMD EPYC, 2 threads",
        "trainable_parameters": 4_405_073 if strategy == "decoder-0-4" else 31_037_633,
        "total_parameters": 6_628_945 if strategy == "decoder-0-4" else 31_037_633,
        "best_epoch": best_epoch,
        "best_val_dice": 0.97,
        "wall_seconds": wall_seconds,
        **labels,
        "test": test,
    }
    folder = results / profile / run / f"seed-{seed}"
    write_json_atomic(folder / "metrics.json", metrics)
    if history is not None:
        write_csv_atomic(folder / "history.csv", history)
    if per_image is not None:
        write_csv_atomic(folder / "per_image.csv", per_image)
    write_json_atomic(
        folder / "environment.json",
        environment or {"wall_seconds": wall_seconds, "peak_memory_mb": 1500.0},
    )
    return folder


#: The recipe's seed-0 history: validation Dice (network size) is best at epoch 3, the
#: validation HC error (failures counted) at epoch 4, which the run therefore kept.
RECIPE_HISTORY = pd.DataFrame(
    {
        "epoch": [1, 2, 3, 4, 5],
        "train_loss": [0.50, 0.30, 0.20, 0.15, 0.12],
        "val_dice": [0.9400, 0.9650, 0.9730, 0.9720, 0.9725],
        "val_dice_original": [0.9380, 0.9640, 0.9701, 0.9712, 0.9708],
        "val_adf_mm": [4.00, 2.60, 2.45, 2.10, 2.20],
        "val_failures": [3, 1, 2, 1, 1],
        "val_hc_error_mm": [9.0, 3.2, 4.1, 2.7, 2.9],
        "lr": [1e-3, 9e-4, 6e-4, 3e-4, 0.0],
        "train_seconds": [600.0] * 5,
        "images_per_second": [1.2] * 5,
    }
)

#: A seed's test images: a failure (no head), then errors 9.1 and 7.2 mm are the worst.
PER_IMAGE = pd.DataFrame(
    {
        "name": [f"{i:03d}_HC" for i in range(8)],
        "dice": [0.97, 0.40, 0.93, 0.98, 0.95, 0.96, 0.90, 0.975],
        "df_mm": [1.5, NAN, -7.2, 0.3, 4.4, -2.0, 9.1, -0.8],
        "adf_mm": [1.5, NAN, 7.2, 0.3, 4.4, 2.0, 9.1, 0.8],
    }
)


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """cpu-hc: the recipe (3 seeds), three ablations (seed 0), the baseline; cpu: the paper's
    protocol (old-style runs without recipe labels), decoder-0-4 (3 seeds), baseline (2)."""
    root = tmp_path / "results"
    # recipe, seed 0: validation with flips (the HC-best epoch 4 of the history) and without
    write_run(
        root,
        "cpu-hc",
        "decoder-0-4",
        0,
        test=summary(0.97, 2.0, 0, 200),
        val=summary(0.9712, 2.10, 1),
        val_without_tta=summary(0.9690, 2.35, 2),
        test_without_tta=summary(0.9680, 2.30, 1, 200),
        history=RECIPE_HISTORY,
        per_image=PER_IMAGE,
        environment={"wall_seconds": 3000.0, "peak_memory_mb": 2048.0, "device": "cpu"},
        wall_seconds=3000.0,
        **RECIPE,
    )
    for seed, dice, adf, failures, wall in ((1, 0.96, 2.5, 2, 3600.0), (2, 0.98, 3.0, 1, 4200.0)):
        write_run(
            root,
            "cpu-hc",
            "decoder-0-4",
            seed,
            test=summary(dice, adf, failures, 200),
            val=summary(0.95, 3.0, 4),  # other seeds never enter the ablation
            history=RECIPE_HISTORY,
            wall_seconds=wall,
            **RECIPE,
        )
    write_run(
        root,
        "cpu-hc",
        PAPER_SCHEDULE,
        0,
        test=summary(0.96, 2.9, 0, 200),
        val=summary(0.9655, 2.80, 3),
        best_epoch=5,
        **{**RECIPE, "lr": 1e-4, "warmup_epochs": 0},
    )
    write_run(
        root,
        "cpu-hc",
        FROZEN_HEAD,
        0,
        test=summary(0.965, 2.6, 0, 200),
        val=summary(0.9698, 2.25, 0),
        best_epoch=3,
        **{**RECIPE, "head_trainable": False},
    )
    write_run(
        root,
        "cpu-hc",
        SQUARE,
        0,
        test=summary(0.962, 2.7, 0, 200),
        val=summary(0.9660, 2.50, 1),
        best_epoch=4,
        **{**RECIPE, "image_size": 320},
    )
    write_run(
        root,
        "cpu-hc",
        "baseline",
        0,
        strategy="baseline",
        test=summary(0.965, 2.8, 1, 200),
        val=summary(0.9800, 1.90, 0),  # a different strategy: never an ablation row
        wall_seconds=7200.0,
        **RECIPE,
    )
    # the paper's protocol on a CPU, written as its committed runs are (no recipe labels)
    cpu = {"image_size": 192, "epochs": 8, "head_trainable": True}
    for seed, dice, adf, failures, wall in (
        (0, 0.96, 3.4, 1, 150.0),
        (1, 0.95, 3.9, 0, 165.0),
        (2, 0.955, 4.4, 0, 180.0),
    ):
        test = summary(dice, adf, failures, 200)
        write_run(root, "cpu", "decoder-0-4", seed, test=test, wall_seconds=wall, **cpu)
    for seed, dice, adf, failures, wall in ((0, 0.97, 2.9, 0, 600.0), (1, 0.96, 3.0, 2, 660.0)):
        test = summary(dice, adf, failures, 200)
        write_run(
            root, "cpu", "baseline", seed, test=test, strategy="baseline", wall_seconds=wall, **cpu
        )
    return root


def cpu_hc(results: Path) -> pd.DataFrame:
    return load_runs("cpu-hc", results)


# --------------------------------------------------------------------------- ablation


#: A candidate whose measured heads get closer late but which loses one head from epoch 3
#: on: the rule (failures counted as their whole HC) keeps epoch 2; the lowest ADF is epoch 4.
CANDIDATE = recipe.CANDIDATE_RUNS[0]
CANDIDATE_HISTORY = RECIPE_HISTORY.assign(
    val_dice_original=[0.9390, 0.9650, 0.9690, 0.9730, 0.9720],
    val_adf_mm=[3.90, 2.50, 2.00, 1.80, 1.90],
    val_failures=[0, 0, 1, 1, 1],
    val_hc_error_mm=[3.90, 2.50, 4.60, 4.40, 4.50],
)


def with_candidate(results: Path) -> Path:
    write_run(
        results,
        "cpu-hc",
        CANDIDATE,
        0,
        test=summary(0.99, 1.0, 0, 200),  # the test images choose nothing: never shown
        val=summary(0.9650, 2.50, 0),
        best_epoch=2,
        history=CANDIDATE_HISTORY,
        **{**RECIPE, "image_size": [320, 480], "epochs": 20},
    )
    return results


STRONG = recipe.CANDIDATE_RUNS[1]


def with_strong_augmentation(results: Path) -> Path:
    """The second candidate: the recipe with stronger augmentation, labelled so, with the
    recipe's history (lowest ADF 2.10 mm at epoch 4)."""
    write_run(
        results,
        "cpu-hc",
        STRONG,
        0,
        test=summary(0.98, 1.0, 0, 200),
        val=summary(0.9700, 2.00, 0),
        best_epoch=4,
        history=RECIPE_HISTORY,
        **{**RECIPE, "augment": "strong"},
    )
    return results


def test_a_candidate_is_not_an_ablation_row(results: Path) -> None:
    runs = cpu_hc(with_strong_augmentation(with_candidate(results)))
    table = recipe.ablation_table(runs, results_dir=results)
    assert not {CANDIDATE, STRONG} & set(table["run"])
    assert len(table) == 6  # the recipe, its two free rows, three ablation runs


def test_candidate_table_gives_the_kept_epoch_and_the_lowest_adf_epoch(results: Path) -> None:
    table = recipe.candidate_table(cpu_hc(with_candidate(results)), results_dir=results)
    assert list(table["run"]) == ["decoder-0-4", CANDIDATE, CANDIDATE]
    assert list(table["change"]) == [
        "the recipe",
        "input 320 x 480; 20 epochs",
        "input 320 x 480; 20 epochs; the epoch with the lowest ADF",
    ]
    assert list(table["best epoch"]) == ["4 of 5", "2 of 20", "4 of 20"]
    # recipe: val 97.12% / 2.10 mm, 1 failure; kept epoch from metrics.json; lowest ADF
    # from the history's row of epoch 4 (1.80 mm, Dice 97.30% at original size, 1 failure)
    assert table["val Dice (%)"].tolist() == pytest.approx([97.12, 96.50, 97.30])
    assert table["val ADF (mm)"].tolist() == pytest.approx([2.10, 2.50, 1.80])
    assert table["failures"].tolist() == [1, 0, 1]
    assert table["ADF change (mm)"].tolist() == pytest.approx([0.0, 0.40, -0.30])
    assert table["Dice change"].tolist() == pytest.approx([0.0, -0.62, 0.18])


def test_a_candidate_is_judged_against_an_earlier_winner_in_the_words_of_its_changes(
    results: Path,
) -> None:
    """The encoder candidate is compared with the first final model, not the recipe: its
    change is the decoder and the encoder's rate only, and the first row says how the
    earlier winner differs from the recipe."""
    both = {**RECIPE, "image_size": [320, 480], "epochs": 20, "augment": "strong"}
    write_run(
        with_candidate(results),
        "cpu-hc",
        recipe.FROZEN_ENCODER_RUN,
        0,
        test=summary(0.98, 1.0, 0, 200),
        val=summary(0.9700, 2.30, 0),
        best_epoch=4,
        history=RECIPE_HISTORY,
        **both,
    )
    write_run(
        results,
        "cpu-hc",
        recipe.FINAL_RUN,
        0,
        test=summary(0.99, 1.0, 0, 200),
        val=summary(0.9710, 1.90, 0),
        best_epoch=2,
        history=CANDIDATE_HISTORY,
        **both,
        decoder="slim",
        encoder_lr=1e-4,
    )
    table = recipe.candidate_table(
        cpu_hc(results), recipe.FINAL_RUN, against=recipe.FROZEN_ENCODER_RUN, results_dir=results
    )
    assert list(table["run"]) == [recipe.FROZEN_ENCODER_RUN, recipe.FINAL_RUN, recipe.FINAL_RUN]
    assert list(table["change"]) == [
        "input 320 x 480; 20 epochs; stronger augmentation (scale, shift, brightness, "
        "contrast, gamma)",
        "slim decoder; encoder trained at 0.0001",
        "slim decoder; encoder trained at 0.0001; the epoch with the lowest ADF",
    ]
    assert table["val ADF (mm)"].tolist() == pytest.approx([2.30, 1.90, 1.80])
    assert table["ADF change (mm)"].tolist() == pytest.approx([0.0, -0.40, -0.50])
    assert table["Dice change"].tolist() == pytest.approx([0.0, 0.10, 0.30])
    # until the earlier winner has finished there is nothing to judge against
    missing = recipe.candidate_table(
        cpu_hc(results), recipe.FINAL_RUN, against="decoder-0-4--loss-bce", results_dir=results
    )
    assert missing.empty


def test_each_candidate_has_a_table_of_its_own(results: Path) -> None:
    runs = cpu_hc(with_strong_augmentation(with_candidate(results)))
    first = recipe.candidate_table(runs, results_dir=results)
    assert list(first["run"]) == ["decoder-0-4", CANDIDATE, CANDIDATE]
    table = recipe.candidate_table(runs, STRONG, results_dir=results)
    assert list(table["run"]) == ["decoder-0-4", STRONG, STRONG]
    change = "stronger augmentation (scale, shift, brightness, contrast, gamma)"
    assert list(table["change"]) == [
        "the recipe",
        change,
        f"{change}; the epoch with the lowest ADF",
    ]
    # kept epoch from its metrics.json (97.00% / 2.00 mm); lowest ADF: the history's epoch 4
    assert table["val ADF (mm)"].tolist() == pytest.approx([2.10, 2.00, 2.10])
    assert table["ADF change (mm)"].tolist() == pytest.approx([0.0, -0.10, 0.0])
    assert list(table["best epoch"]) == ["4 of 5", "4 of 5", "4 of 5"]


def test_candidate_table_is_empty_without_a_candidate(results: Path) -> None:
    assert recipe.candidate_table(cpu_hc(results), results_dir=results).empty
    with_candidate(results)
    assert recipe.candidate_table(cpu_hc(results), STRONG, results_dir=results).empty
    assert recipe.candidate_table(load_runs("cpu-hc", results / "none"), STRONG).empty


def test_ablation_table_rows_are_the_recipe_its_free_ablations_and_one_per_run(
    results: Path,
) -> None:
    table = recipe.ablation_table(cpu_hc(results), results_dir=results)
    assert list(table.columns) == [
        "change",
        "val Dice (%)",
        "val ADF (mm)",
        "failures",
        "best epoch",
        "run",
        "Dice change",
        "ADF change (mm)",
    ]
    # the recipe itself, then the two parts that need no run of their own, in this order
    assert table["change"].tolist()[:3] == [
        "the recipe",
        "no flips (same weights)",
        "best epoch by validation Dice",
    ]
    assert table["run"].tolist()[:3] == ["decoder-0-4"] * 3
    # one row per seed-0 ablation run, none for the baseline or the recipe's other seeds
    assert len(table) == 6
    assert sorted(table["run"].tolist()[3:]) == sorted([FROZEN_HEAD, PAPER_SCHEDULE, SQUARE])


def test_ablation_changes_name_exactly_what_differs_from_the_recipe(results: Path) -> None:
    table = recipe.ablation_table(cpu_hc(results), results_dir=results).set_index("run")
    assert table.loc[PAPER_SCHEDULE, "change"] == "learning rate 0.0001; 0 warm-up epochs"
    assert table.loc[FROZEN_HEAD, "change"] == "head frozen at random"
    assert table.loc[SQUARE, "change"] == "input 320 x 320"


def expected_rows() -> dict[str, tuple[float, float, int, str]]:
    """Validation Dice (%), ADF (mm), failures and best epoch of each row, by hand.

    The recipe: its "val" summary (97.12 %, 2.10 mm, 1 failure) at its kept epoch 4 of 5.
    No flips: its "val_without_tta" summary, same epoch. Best epoch by Dice: history row 3
    (val_dice 0.9730 is the largest), whose original-resolution columns are 97.01 %,
    2.45 mm, 2 failures. Each ablation: its own "val" summary and best epoch.
    """
    return {
        "the recipe": (97.12, 2.10, 1, "4 of 5"),
        "no flips (same weights)": (96.90, 2.35, 2, "4 of 5"),
        "best epoch by validation Dice": (97.01, 2.45, 2, "3 of 5"),
        "head frozen at random": (96.98, 2.25, 0, "3 of 5"),
        "learning rate 0.0001; 0 warm-up epochs": (96.55, 2.80, 3, "5 of 5"),
        "input 320 x 320": (96.60, 2.50, 1, "4 of 5"),
    }


def test_ablation_values_failures_and_best_epochs(results: Path) -> None:
    table = recipe.ablation_table(cpu_hc(results), results_dir=results).set_index("change")
    expected = expected_rows()
    assert set(table.index) == set(expected)
    for change, (dice, adf, failures, epoch) in expected.items():
        row = table.loc[change]
        assert row["val Dice (%)"] == pytest.approx(dice, abs=1e-9), change
        assert row["val ADF (mm)"] == pytest.approx(adf, abs=1e-9), change
        assert row["failures"] == failures, change
        assert row["best epoch"] == epoch, change


def test_ablation_changes_are_relative_to_the_recipe_row(results: Path) -> None:
    """Dice change in points and ADF change in mm, each row minus the recipe (97.12, 2.10)."""
    table = recipe.ablation_table(cpu_hc(results), results_dir=results).set_index("change")
    expected = {
        "the recipe": (0.0, 0.0),
        "no flips (same weights)": (-0.22, 0.25),  # 96.90 - 97.12, 2.35 - 2.10
        "best epoch by validation Dice": (-0.11, 0.35),  # 97.01 - 97.12, 2.45 - 2.10
        "head frozen at random": (-0.14, 0.15),  # 96.98 - 97.12, 2.25 - 2.10
        "learning rate 0.0001; 0 warm-up epochs": (-0.57, 0.70),  # 96.55 - 97.12, 2.80 - 2.10
        "input 320 x 320": (-0.52, 0.40),  # 96.60 - 97.12, 2.50 - 2.10
    }
    for change, (dice, adf) in expected.items():
        assert table.loc[change, "Dice change"] == pytest.approx(dice, abs=1e-9), change
        assert table.loc[change, "ADF change (mm)"] == pytest.approx(adf, abs=1e-9), change


def test_ablation_table_reads_only_the_asked_seed(results: Path) -> None:
    """Seed 1 has a recipe run (scored with flips only) and no ablation runs."""
    table = recipe.ablation_table(cpu_hc(results), results_dir=results, seed=1)
    assert table["change"].tolist() == ["the recipe", "best epoch by validation Dice"]
    assert table.iloc[0]["val Dice (%)"] == pytest.approx(95.0, abs=1e-9)
    assert table.iloc[0]["failures"] == 4


def test_ablation_table_is_empty_without_the_recipe_run(results: Path) -> None:
    runs = cpu_hc(results)
    runs = runs[~((runs["run"] == "decoder-0-4") & (runs["seed"] == 0))]
    assert recipe.ablation_table(runs, results_dir=results).empty


def test_ablation_table_is_empty_when_the_profile_has_no_runs(tmp_path: Path) -> None:
    """Before the study (no results/cpu-hc at all), chapter 8 calls this on load_runs' empty
    frame, which has no columns."""
    runs = load_runs("cpu-hc", tmp_path)
    assert runs.empty
    assert recipe.ablation_table(runs, results_dir=tmp_path).empty


def test_changes_says_each_label_in_words() -> None:
    recipe_row = pd.Series({**RECIPE, "image_size": (256, 384)}, dtype=object)
    assert recipe.changes(recipe_row, recipe_row) == "the recipe"
    other = pd.Series(
        {
            **RECIPE,
            "image_size": 192,
            "warmup_epochs": 1,
            "loss": "bce",
            "select_by": "dice",
            "tta": False,
            "epochs": 8,
        },
        dtype=object,
    )
    assert recipe.changes(other, recipe_row) == (
        "input 192 x 192; loss bce; best epoch by validation Dice; no flips; 8 epochs"
    )
    two_warmups = pd.Series({**RECIPE, "image_size": (256, 384), "warmup_epochs": 2}, dtype=object)
    assert recipe.changes(two_warmups, recipe_row) == "2 warm-up epochs"
    # runs recorded before the augment label existed used the paper's augmentation
    strong = pd.Series({**RECIPE, "image_size": (256, 384), "augment": "strong"}, dtype=object)
    assert "augment" not in recipe_row
    assert recipe.changes(strong, recipe_row) == (
        "stronger augmentation (scale, shift, brightness, contrast, gamma)"
    )
    assert recipe.changes(recipe_row, strong) == "the paper's augmentation"
    both = pd.Series({**RECIPE, "image_size": (320, 480), "epochs": 20, "augment": "strong"})
    assert recipe.changes(both, recipe_row) == (
        "input 320 x 480; 20 epochs; "
        "stronger augmentation (scale, shift, brightness, contrast, gamma)"
    )
    unlabelled = pd.Series({**RECIPE, "image_size": (256, 384), "augment": float("nan")})
    assert recipe.changes(unlabelled, recipe_row) == "the recipe"
    # runs recorded before the ema label existed validated the last step's weights
    averaged = pd.Series({**RECIPE, "image_size": (256, 384), "ema": 0.995}, dtype=object)
    assert recipe.changes(averaged, recipe_row) == "weights averaged (decay 0.995)"
    assert recipe.changes(recipe_row, averaged) == "last step's weights"


# --------------------------------------------------------------------------- final table


FINAL_COLUMNS = [
    "profile",
    "run",
    "input",
    "epochs",
    "augmentation",
    "seeds",
    "trainable",
    "Dice (%)",
    "ADF (mm)",
    "failures",
    "minutes per run",
    "dice",
    "adf_mm",
]


def test_final_table_gives_mean_sd_over_seeds_for_both_profiles(results: Path) -> None:
    table = recipe.final_table(cpu_hc(results), load_runs("cpu", results), results_dir=results)
    assert list(table.columns) == FINAL_COLUMNS
    assert list(zip(table["profile"], table["run"], strict=True)) == [
        ("cpu-hc", "decoder-0-4"),
        ("cpu-hc", "baseline"),
        ("cpu", "decoder-0-4"),
        ("cpu", "baseline"),
    ]
    rows = table.set_index(["profile", "run"])
    # cpu-hc decoder-0-4: Dice 0.97, 0.96, 0.98 -> 97.00 +- 1.00; ADF 2.0, 2.5, 3.0 -> 2.50 +-
    # 0.50; failures 0 + 2 + 1 = 3; wall 3000, 3600, 4200 s -> 60 minutes
    ours = rows.loc[("cpu-hc", "decoder-0-4")]
    assert ours["input"] == "256 x 384"
    assert ours["epochs"] == 5
    assert ours["augmentation"] == "paper"  # recorded before the label existed
    assert ours["seeds"] == "0, 1, 2"
    assert ours["trainable"] == 4_405_073
    assert ours["Dice (%)"] == "97.00 ± 1.00"
    assert ours["ADF (mm)"] == "2.50 ± 0.50"
    assert ours["failures"] == 3
    assert ours["minutes per run"] == pytest.approx(60.0, abs=1e-9)
    assert ours["dice"] == pytest.approx(0.97, abs=1e-12)
    assert ours["adf_mm"] == pytest.approx(2.5, abs=1e-12)
    # cpu-hc baseline: one seed, no sd; 7200 s
    base = rows.loc[("cpu-hc", "baseline")]
    assert (base["seeds"], base["Dice (%)"], base["ADF (mm)"]) == (
        "0",
        "96.50 (1 seed)",
        "2.80 (1 seed)",
    )
    assert (base["failures"], base["trainable"]) == (1, 31_037_633)
    assert base["minutes per run"] == pytest.approx(120.0, abs=1e-9)
    # cpu decoder-0-4: Dice 0.96, 0.95, 0.955 -> 95.50 +- 0.50; ADF 3.4, 3.9, 4.4 -> 3.90 +-
    # 0.50; failures 1 + 0 + 0; wall 150, 165, 180 s -> 2.75 minutes
    paper = rows.loc[("cpu", "decoder-0-4")]
    assert (paper["input"], paper["epochs"]) == ("192 x 192", 8)
    assert (paper["Dice (%)"], paper["ADF (mm)"]) == ("95.50 ± 0.50", "3.90 ± 0.50")
    assert paper["failures"] == 1
    assert paper["minutes per run"] == pytest.approx(2.75, abs=1e-9)
    # cpu baseline: Dice 0.97, 0.96 -> 96.50 +- 0.71 (sd sqrt(0.00005)); ADF 2.9, 3.0 ->
    # 2.95 +- 0.07; failures 0 + 2; wall 600, 660 s -> 10.5 minutes
    scratch = rows.loc[("cpu", "baseline")]
    assert (scratch["seeds"], scratch["Dice (%)"], scratch["ADF (mm)"]) == (
        "0, 1",
        "96.50 ± 0.71",
        "2.95 ± 0.07",
    )
    assert scratch["failures"] == 2
    assert scratch["minutes per run"] == pytest.approx(10.5, abs=1e-9)


def test_final_run_names_are_those_the_study_gives_its_settings() -> None:
    """The names chapter 8 looks up are the folders a study of these settings writes."""
    settings = (("image_size", (320, 480)), ("epochs", 20), ("augment", "strong"))
    budget = (("decoder", "slim"), ("encoder_lr", 1e-4))
    assert RunSpec("decoder-0-4", 0, settings=settings).name == recipe.FROZEN_ENCODER_RUN
    assert RunSpec("decoder-0-4", 0, settings=settings + budget).name == recipe.FINAL_RUN
    assert RunSpec("baseline", 0, settings=settings).name == recipe.FINAL_BASELINE_RUN
    faster = (("decoder", "slim"), ("encoder_lr", 3e-4))
    assert RunSpec("decoder-0-4", 0, settings=settings + faster).name == recipe.ENCODER_RATE_RUN
    larger = (("image_size", (384, 576)), ("epochs", 20), ("augment", "strong"), *budget)
    assert RunSpec("decoder-0-4", 0, settings=larger).name == recipe.LARGER_INPUT_RUN
    longer = (("image_size", (320, 480)), ("epochs", 30), ("augment", "strong"), *budget)
    assert RunSpec("decoder-0-4", 0, settings=longer).name == recipe.LONGER_RUN
    averaged = (("image_size", (320, 480)), ("epochs", 20), ("augment", "strong"), *budget)
    averaged += (("ema", 0.995),)
    assert RunSpec("decoder-0-4", 0, settings=averaged).name == recipe.AVERAGED_RUN
    chapter_8s = {
        recipe.FINAL_RUN,
        recipe.FROZEN_ENCODER_RUN,
        recipe.ENCODER_RATE_RUN,
        recipe.LARGER_INPUT_RUN,
        recipe.LONGER_RUN,
        recipe.AVERAGED_RUN,
    }
    assert chapter_8s <= set(recipe.CANDIDATE_RUNS)


def test_final_table_puts_the_final_model_and_its_baseline_first(results: Path) -> None:
    final = {**RECIPE, "image_size": [320, 480], "epochs": 20, "augment": "strong"}
    for seed, dice, adf, failures in ((0, 0.975, 1.9, 0), (1, 0.971, 2.1, 1)):
        test = summary(dice, adf, failures, 200)
        write_run(results, "cpu-hc", recipe.FINAL_RUN, seed, test=test, **final)
    write_run(
        results, "cpu-hc", recipe.FROZEN_ENCODER_RUN, 0, test=summary(0.965, 2.6, 1, 200), **final
    )
    test = summary(0.972, 2.2, 2, 200)
    write_run(
        results,
        "cpu-hc",
        recipe.FINAL_BASELINE_RUN,
        0,
        strategy="baseline",
        test=test,
        wall_seconds=18000.0,
        **final,
    )
    table = recipe.final_table(cpu_hc(results), load_runs("cpu", results), results_dir=results)
    assert table["run"].tolist() == [
        recipe.FINAL_RUN,
        recipe.FROZEN_ENCODER_RUN,
        "decoder-0-4",
        recipe.FINAL_BASELINE_RUN,
        "baseline",
        "decoder-0-4",
        "baseline",
    ]
    rows = table.set_index(["profile", "run"])
    ours = rows.loc[("cpu-hc", recipe.FINAL_RUN)]
    # Dice 0.975, 0.971 -> 97.30 +- 0.28 (sd 0.004 / sqrt 2); ADF 1.9, 2.1 -> 2.00 +- 0.14
    assert (ours["input"], ours["epochs"], ours["augmentation"]) == ("320 x 480", 20, "strong")
    assert (ours["seeds"], ours["Dice (%)"], ours["ADF (mm)"]) == (
        "0, 1",
        "97.30 ± 0.28",
        "2.00 ± 0.14",
    )
    assert ours["failures"] == 1
    scratch = rows.loc[("cpu-hc", recipe.FINAL_BASELINE_RUN)]
    assert (scratch["trainable"], scratch["augmentation"], scratch["failures"]) == (
        31_037_633,
        "strong",
        2,
    )
    assert scratch["minutes per run"] == pytest.approx(300.0, abs=1e-9)


def test_final_table_leaves_out_a_profile_without_runs(results: Path, tmp_path: Path) -> None:
    table = recipe.final_table(
        cpu_hc(results), load_runs("cpu", tmp_path / "none"), results_dir=results
    )
    assert table["profile"].tolist() == ["cpu-hc", "cpu-hc"]
    assert recipe.final_table(
        load_runs("cpu-hc", tmp_path / "none"),
        load_runs("cpu", tmp_path / "none"),
        results_dir=tmp_path / "none",
    ).empty


def test_epoch_minutes_is_the_median_epoch_of_the_least_shared_seed(results: Path) -> None:
    # seed 0: epochs of 600, 900, 600, 3000 (shared), 600 s -> median 600 s; seed 1: 300,
    # 400, 500, 350, 2000 s -> median 400 s = 6.67 min, the smaller: the seed that shared less
    for seed, seconds in ((0, [600, 900, 600, 3000, 600]), (1, [300, 400, 500, 350, 2000])):
        history = RECIPE_HISTORY.assign(train_seconds=[float(s) for s in seconds])
        test = summary(0.97, 2.0, 0, 200)
        write_run(results, "cpu-hc", "decoder-0-4", seed, test=test, history=history, **RECIPE)
    runs = cpu_hc(results)
    runs = runs[~((runs["run"] == "decoder-0-4") & (runs["seed"] == 2))]
    assert recipe.epoch_minutes(runs, "decoder-0-4", results_dir=results) == pytest.approx(
        400 / 60, abs=1e-12
    )
    with pytest.raises(ValueError, match="no finished seed of nothing-yet"):
        recipe.epoch_minutes(runs, "nothing-yet", results_dir=results)


# --------------------------------------------------------------------------- test images


def test_worst_images_puts_a_failure_first_then_the_largest_errors() -> None:
    worst = recipe.worst_images(PER_IMAGE, n=3)
    assert worst["name"].tolist() == ["001_HC", "006_HC", "002_HC"]  # no head, 9.1, 7.2 mm
    assert list(worst.columns) == list(PER_IMAGE.columns)  # whole rows, for the pictures
    assert worst["df_mm"].tolist()[1:] == [9.1, -7.2]
    # default n = 6: then 4.4, 2.0, 1.5 mm
    assert recipe.worst_images(PER_IMAGE)["name"].tolist() == [
        "001_HC",
        "006_HC",
        "002_HC",
        "004_HC",
        "005_HC",
        "000_HC",
    ]


def test_error_share_of_the_worst_measured_images() -> None:
    # measured errors 1.5, 7.2, 0.3, 4.4, 2.0, 9.1, 0.8 sum to 25.3 mm; the failure is left out
    assert recipe.error_share(PER_IMAGE, n=2) == pytest.approx((9.1 + 7.2) / 25.3, abs=1e-12)
    assert recipe.error_share(PER_IMAGE, n=1) == pytest.approx(9.1 / 25.3, abs=1e-12)
    assert recipe.error_share(PER_IMAGE) == pytest.approx(1.0, abs=1e-12)  # 10 > 7 measured


def test_error_by_head_size_groups_by_the_experts_hc() -> None:
    per_image = PER_IMAGE.assign(hc_true_mm=[80.0, 90.0, 150.0, 199.9, 200.0, 300.0, 100.0, 250.0])
    table = recipe.error_by_head_size(per_image)
    assert table.index.tolist() == ["under 100 mm", "100-200 mm", "200 mm and over"]
    rows = table.to_dict("index")
    # under 100: 000 (1.5 of 80) and 001 (no head): 2 images, 1 failure, ADF 1.5, 1.875%
    assert rows["under 100 mm"]["images"] == 2 and rows["under 100 mm"]["failures"] == 1
    assert rows["under 100 mm"]["mean ADF (mm)"] == pytest.approx(1.5, abs=1e-12)
    assert rows["under 100 mm"]["mean error (% of HC)"] == pytest.approx(1.875, abs=1e-9)
    # 100-200 (100 counts here, 199.9 too): 002 7.2/150, 003 0.3/199.9, 006 9.1/100
    middle = rows["100-200 mm"]
    assert (middle["images"], middle["failures"]) == (3, 0)
    assert middle["mean ADF (mm)"] == pytest.approx((7.2 + 0.3 + 9.1) / 3, abs=1e-12)
    assert middle["median ADF (mm)"] == pytest.approx(7.2, abs=1e-12)
    share = 100 * (7.2 / 150 + 0.3 / 199.9 + 9.1 / 100) / 3
    assert middle["mean error (% of HC)"] == pytest.approx(share, abs=1e-9)
    # 200 and over (200 counts here): 004 4.4/200, 005 2.0/300, 007 0.8/250
    large = rows["200 mm and over"]
    assert large["images"] == 3
    assert large["mean ADF (mm)"] == pytest.approx((4.4 + 2.0 + 0.8) / 3, abs=1e-12)
    assert large["median ADF (mm)"] == pytest.approx(2.0, abs=1e-12)
    # of the 25.3 mm of all measured errors: 1.5, 16.6 and 7.2 mm
    shares = table["share of all the mm (%)"].tolist()
    assert shares == pytest.approx([100 * 1.5 / 25.3, 100 * 16.6 / 25.3, 100 * 7.2 / 25.3])
    # one edge: two bands
    assert recipe.error_by_head_size(per_image, (150.0,)).index.tolist() == [
        "under 150 mm",
        "150 mm and over",
    ]


def test_seed_agreement_compares_seeds_with_one_another_and_with_the_expert() -> None:
    per_image = pd.DataFrame(
        {
            "name": ["A", "B", "C"] * 3,
            "seed": [0] * 3 + [1] * 3 + [2] * 3,
            "hc_true_mm": [100.0, 200.0, 51.0] * 3,
            "hc_pred_mm": [101.0, 201.0, NAN, 103.0, 196.0, 50.0, 102.0, 198.0, 52.0],
        }
    )
    agreement = recipe.seed_agreement(per_image)
    # C is left out (seed 0 found no head): A and B only
    assert agreement["images"] == 2
    # seed pairs (0,1): 2 and 5; (0,2): 1 and 3; (1,2): 1 and 2 -> 14 / 6
    assert agreement["between seeds (mm)"] == pytest.approx(14 / 6, abs=1e-12)
    # seed 0: (1 + 1) / 2; seed 1: (3 + 4) / 2; seed 2: (2 + 2) / 2 -> mean 6.5 / 3
    assert agreement["one seed's ADF (mm)"] == pytest.approx(6.5 / 3, abs=1e-12)
    # A: mean 102 -> 2; B: mean 595 / 3 -> 5 / 3 off 200
    assert agreement["ADF of the seeds' mean HC (mm)"] == pytest.approx((2 + 5 / 3) / 2, abs=1e-12)
    with pytest.raises(ValueError, match="at least two seeds"):
        recipe.seed_agreement(per_image[per_image["seed"] == 1])


def test_exam_pairs_pairs_every_two_scans_of_one_exam() -> None:
    per_image = pd.DataFrame(
        {
            "name": ["010_HC", "011_HC", "010_2HC", "012_HC", "010_3HC", "012_2HC"],
            "hc_true_mm": [150.0, 170.0, 155.0, 80.0, 149.0, 90.0],
            "hc_pred_mm": [151.0, 171.0, 153.0, 82.0, 150.0, NAN],
        }
    )
    pairs = recipe.exam_pairs(per_image)
    # exam 010 has three scans (three pairs), 012 two (one pair), 011 one (none)
    assert pairs[["exam", "first", "second"]].values.tolist() == [
        ["010", "010_HC", "010_2HC"],
        ["010", "010_HC", "010_3HC"],
        ["010", "010_2HC", "010_3HC"],
        ["012", "012_HC", "012_2HC"],
    ]
    assert pairs["expert difference (mm)"].tolist() == pytest.approx([-5.0, 1.0, 6.0, -10.0])
    model = pairs["model difference (mm)"]
    assert model[:3].tolist() == pytest.approx([-2.0, 1.0, 3.0])
    assert math.isnan(model[3])  # the model found no head in 012_2HC
    assert recipe.exam_pairs(per_image.iloc[:2]).empty  # two exams, one scan each


def test_per_image_of_the_recipe_reads_back_for_the_chapter(results: Path) -> None:
    per_image = load_per_image("cpu-hc", "decoder-0-4", [0], results_dir=results)
    assert recipe.error_share(per_image, n=2) == pytest.approx(16.3 / 25.3, abs=1e-12)
    assert math.isnan(recipe.worst_images(per_image, n=1)["adf_mm"].iloc[0])


# --------------------------------------------------------------------------- files


def test_committed_results_is_the_repository_results_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert recipe.committed_results().resolve() == REPO_RESULTS
    monkeypatch.chdir(tmp_path)  # outside the clone: found from the package's own location
    assert recipe.committed_results().resolve() == REPO_RESULTS
    assert (REPO_RESULTS / "cpu").is_dir()  # the committed study, whatever $FETALFT_RESULTS_DIR


def test_committed_results_ignores_the_results_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FETALFT_RESULTS_DIR", str(tmp_path))
    assert recipe.committed_results().resolve() == REPO_RESULTS


def signed(dice: float, df_mm: float, adf_mm: float, n: int = 80) -> dict:
    """A summary with the mean signed HC difference too (``df_mm``), no failures."""
    return {**summary(dice, adf_mm, 0, n), "df_mm": {"mean": df_mm, "sd": 2.0, "n": n, "n_nan": 0}}


def test_flip_effect_is_the_paired_change_the_flips_make_per_run_and_split(tmp_path: Path) -> None:
    root = tmp_path / "results"
    # seed 0: flips move val DF +0.10 -> -0.40 and ADF 2.00 -> 2.25; test DF 0.30 -> -0.20,
    # ADF 2.60 -> 2.50. seed 1: val DF -0.20 -> -1.00, ADF 2.40 -> 2.30; test DF 0.00 ->
    # -0.50, ADF 2.70 -> 2.90.
    for seed, val, plain_val, test, plain_test in (
        (0, (-0.40, 2.25), (0.10, 2.00), (-0.20, 2.50), (0.30, 2.60)),
        (1, (-1.00, 2.30), (-0.20, 2.40), (-0.50, 2.90), (0.00, 2.70)),
    ):
        write_run(
            root,
            "cpu-hc",
            "decoder-0-4",
            seed,
            test=signed(0.97, *test, n=200),
            val=signed(0.97, *val),
            val_without_tta=signed(0.97, *plain_val),
            test_without_tta=signed(0.97, *plain_test, n=200),
            **RECIPE,
        )
    # a run without the flips is scored one way only: no row
    write_run(
        root,
        "cpu-hc",
        "decoder-0-4--no-flips",
        0,
        test=signed(0.97, 0.1, 2.0, n=200),
        val=signed(0.97, 0.1, 2.0),
        **{**RECIPE, "tta": False},
    )
    table = recipe.flip_effect(load_runs("cpu-hc", root))
    assert table[["run", "seed"]].values.tolist() == [["decoder-0-4", 0], ["decoder-0-4", 1]]
    assert table["val DF change (mm)"].tolist() == pytest.approx([-0.50, -0.80], abs=1e-12)
    assert table["val ADF change (mm)"].tolist() == pytest.approx([0.25, -0.10], abs=1e-12)
    assert table["test DF change (mm)"].tolist() == pytest.approx([-0.50, -0.50], abs=1e-12)
    assert table["test ADF change (mm)"].tolist() == pytest.approx([-0.10, 0.20], abs=1e-12)


def test_flip_effect_is_empty_without_runs_scored_both_ways(results: Path, tmp_path: Path) -> None:
    assert recipe.flip_effect(pd.DataFrame()).empty
    # the fixture's runs have no signed difference (df_mm) recorded: nothing to compare
    assert recipe.flip_effect(cpu_hc(results)).empty


def exact_one_sided_p(differences: list[float]) -> float:
    """The signed-rank test by enumeration: the share of the 2^n sign patterns (each
    equally likely when neither run is better) whose sum of positive ranks is no larger
    than the one observed. An independent route to scipy's exact p-value."""
    ranks = pd.Series([abs(d) for d in differences]).rank().tolist()
    observed = sum(r for r, d in zip(ranks, differences, strict=True) if d > 0)
    patterns = itertools.product((0, 1), repeat=len(ranks))
    at_most = sum(
        sum(r for r, s in zip(ranks, signs, strict=True) if s) <= observed for signs in patterns
    )
    return at_most / 2 ** len(ranks)


def images(adf: list[float], start: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {"name": [f"{i:03d}_HC" for i in range(start, start + len(adf))], "adf_mm": adf}
    )


def test_paired_change_counts_every_image_better_as_one_chance_in_two_to_the_n() -> None:
    reference = images([2.0 + 0.1 * i for i in range(10)])
    candidate = images([1.9 + 0.1 * i - 0.01 * i for i in range(10)])
    change = recipe.paired_change(candidate, reference)
    assert change["p"] == pytest.approx(1 / 1024, rel=1e-9)
    assert change["candidate closer"] == 10
    assert change["mean change (mm)"] == pytest.approx(-0.1 - 0.01 * 4.5, abs=1e-12)


def test_paired_change_p_matches_enumerating_the_sign_patterns() -> None:
    differences = [-0.31, 0.12, -0.05, -0.44, 0.27, -0.18, -0.02, 0.09, -0.36, -0.23, 0.15, -0.4]
    reference = images([2.0 + 0.05 * i for i in range(12)])
    candidate = reference.assign(adf_mm=reference["adf_mm"] + differences)
    # Rows in another order: the images are paired by name, not by position.
    change = recipe.paired_change(candidate.iloc[::-1], reference)
    assert change["p"] == pytest.approx(exact_one_sided_p(differences), rel=1e-9)
    assert 0.01 < change["p"] < 0.1  # neither trivially small nor large: a real check
    assert change["candidate closer"] == 8
    assert change["mean change (mm)"] == pytest.approx(sum(differences) / 12, abs=1e-12)


def test_paired_change_leaves_out_failures_and_counts_them() -> None:
    reference = images([2.0, 2.1, float("nan"), 2.3, 2.4, 2.5])
    candidate = images([1.9, float("nan"), 2.0, 2.2, 2.3, 2.6])
    change = recipe.paired_change(candidate, reference)
    assert (change["images"], change["candidate failures"], change["reference failures"]) == (
        4,
        1,
        1,
    )
    assert change["mean change (mm)"] == pytest.approx((-0.1 - 0.1 - 0.1 + 0.1) / 4, abs=1e-12)


def test_paired_change_refuses_tables_of_different_images() -> None:
    with pytest.raises(ValueError, match="same images once each"):
        recipe.paired_change(images([1.0, 2.0], start=0), images([1.0, 2.0], start=1))
    with pytest.raises(ValueError, match="same images once each"):
        recipe.paired_change(images([1.0, 2.0, 3.0]), images([1.0, 2.0]))


def test_paired_table_has_a_row_per_candidate_with_images_and_says_which_pass() -> None:
    reference = images([2.0 + 0.1 * i for i in range(10)])
    better = reference.assign(adf_mm=reference["adf_mm"] - 0.05 - 0.01 * reference.index)
    worse = reference.assign(adf_mm=reference["adf_mm"] + 0.05 + 0.01 * reference.index)
    table = recipe.paired_table(
        {"better": better, "worse": worse, "not run": pd.DataFrame()}, reference
    )
    assert list(table.index) == ["better", "worse"]
    assert table["passes the bar"].tolist() == [True, False]
    assert table.loc["better", "p"] == pytest.approx(1 / 1024, rel=1e-9)
    assert table.loc["worse", "candidate closer"] == 0 and table["images"].tolist() == [10, 10]
    assert recipe.paired_table({"not run": pd.DataFrame()}, reference).empty

"""The committed study results: every run folder complete, labelled and self-consistent.

The book reads these files and nothing else, so a half-written or mislabelled run would
put a wrong number in the book. Skipped where the repository holds no results.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from fetalft.evaluate import PROTOCOLS
from fetalft.hc18 import load_records
from fetalft.metrics import CHALLENGE_METRICS, SEGMENTATION_METRICS
from fetalft.profiles import PROFILES, SETTINGS, with_settings
from fetalft.recipe import (
    AVERAGED_RUN,
    ENCODER_RATE_RUN,
    FINAL_BASELINE_RUN,
    FINAL_RUN,
    FROZEN_ENCODER_RUN,
    LABEL_DEFAULTS,
    LARGER_INPUT_RUN,
    LONGER_RUN,
    RECIPE_RUN,
)
from fetalft.study import RunSpec
from fetalft.submission import check_submission, fallbacks_path, read_submission

RESULTS = Path(__file__).resolve().parents[1] / "results"
RUN_FILES = ("metrics.json", "per_image.csv", "history.csv", "environment.json")
LABELS = ("run", "strategy", "seed", "profile", "image_size", "epochs", "split", "train_fraction")
LABELS += ("n_train", "n_test", "weights", "precision", "hardware", "wall_seconds", "best_epoch")

run_folders = sorted(p.parent for p in RESULTS.rglob("seed-*/metrics.json"))


def strict(text: str) -> dict:
    def reject(constant: str):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


pytestmark = pytest.mark.skipif(not run_folders, reason="no committed runs under results/")


@pytest.mark.parametrize("folder", run_folders, ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_run_is_complete_and_consistent(folder: Path) -> None:
    assert all((folder / name).is_file() for name in RUN_FILES), sorted(folder.iterdir())
    metrics = strict((folder / "metrics.json").read_text())
    assert all(label in metrics for label in LABELS)
    assert folder.name == f"seed-{metrics['seed']}"
    assert folder.parent.name == metrics["run"]
    assert folder.parent.parent.name == metrics["profile"]

    per_image = pd.read_csv(folder / "per_image.csv")
    assert len(per_image) == metrics["n_test"] == metrics["test"]["dice"]["n"]
    assert per_image["name"].is_unique
    for metric in SEGMENTATION_METRICS:
        assert per_image[metric].between(0, 1).all()
        assert per_image[metric].mean() == pytest.approx(metrics["test"][metric]["mean"])
    measured = per_image["adf_mm"].notna().sum()
    assert metrics["test"]["adf_mm"]["n"] == measured
    assert set(CHALLENGE_METRICS) <= set(metrics["test"])

    history = pd.read_csv(folder / "history.csv")
    assert list(history["epoch"]) == list(range(1, metrics["epochs"] + 1))
    # the kept epoch is the best on validation by the run's own criterion (runs before the
    # cpu-hc profile have no select_by: they chose by Dice)
    if metrics.get("select_by", "dice") == "hc":
        best = history.loc[history["val_hc_error_mm"].idxmin()]
        assert best["epoch"] == metrics["best_epoch"]
        assert best["val_dice"] == pytest.approx(metrics["best_val_dice"])
        assert best["val_hc_error_mm"] == pytest.approx(metrics["best_val_hc_error_mm"], rel=1e-6)
    else:
        assert metrics.get("select_by", "dice") == "dice"
        assert history["val_dice"].max() == pytest.approx(metrics["best_val_dice"])
        assert history.loc[history["val_dice"].idxmax(), "epoch"] == metrics["best_epoch"]

    environment = strict((folder / "environment.json").read_text())
    assert environment["precision"] == metrics["precision"]
    assert environment["hardware"] == metrics["hardware"]


def as_json(value: object) -> object:
    """``value`` as metrics.json holds it (tuples become lists)."""
    return json.loads(json.dumps(value))


hc_folders = sorted(p.parent for p in (RESULTS / "cpu-hc").glob("*/seed-*/metrics.json"))


@pytest.mark.skipif(not hc_folders, reason="no cpu-hc runs under results/ yet")
def label(record: dict, key: str) -> object:
    """A recorded setting; runs recorded before it existed did what its default does now."""
    return record[key] if key in record else LABEL_DEFAULTS[key]


@pytest.mark.parametrize("folder", hc_folders, ids=lambda p: str(p.relative_to(RESULTS)))
def test_cpu_hc_run_is_labelled_with_its_recipe(folder: Path) -> None:
    """A cpu-hc run: its recipe is the profile's with the run's settings applied (none for
    the final configuration), recorded in its name, in metrics.json and in environment.json
    (profile and training config); its validation and test are scored as the recipe says."""
    metrics = strict((folder / "metrics.json").read_text())
    environment = strict((folder / "environment.json").read_text())
    assert metrics["profile"] == "cpu-hc"
    settings = {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in metrics["settings"].items()
    }
    assert set(settings) <= set(SETTINGS)
    recipe = with_settings(PROFILES["cpu-hc"], tuple(settings.items()))
    # the folder's name is the run's: strategy, variant and its settings
    spec = RunSpec(
        metrics["strategy"],
        metrics["seed"],
        metrics["split"],
        metrics["train_fraction"],
        metrics["head_trainable"],
        metrics["random_bn"],
        tuple(settings.items()),
    )
    assert spec.name == metrics["run"] == folder.parent.name
    for key in SETTINGS:
        assert label(metrics, key) == as_json(getattr(recipe, key)), key
    if "image_size" not in settings:
        assert metrics["image_size"] == [256, 384]
    if "tta" not in settings:
        assert metrics["tta"] is True
    if "select_by" not in settings:
        assert metrics["select_by"] == "hc"
    assert isinstance(metrics["tta"], bool)

    profile = environment["profile"]
    assert profile["name"] == "cpu-hc"
    for key in (*SETTINGS, "batch_size"):
        assert label(profile, key) == as_json(getattr(recipe, key)), key
    config = environment["config"]
    for key in SETTINGS:
        assert label(config, key) == label(metrics, key), key
    assert (config["strategy"], config["seed"]) == (metrics["strategy"], metrics["seed"])

    # validation is scored for the ablation tables; without flips too when the recipe flips
    expected = {"test", "val"} | ({"val_without_tta", "test_without_tta"} if recipe.tta else set())
    present = {
        key for key in ("test", "val", "val_without_tta", "test_without_tta") if key in metrics
    }
    assert present == expected
    for key in expected:
        assert {"dice", "adf_mm"} <= set(metrics[key]), key
    assert metrics["val"]["dice"]["n"] == metrics["n_val"]
    if recipe.tta:
        assert metrics["test_without_tta"]["dice"]["n"] == metrics["n_test"]
    # The selection error counts an unmeasured head as its whole reference HC: the ADF of the
    # measured heads, plus a whole head (HC18's heads are 40-350 mm) per failure.
    adf = metrics["val"]["adf_mm"]
    assert adf["n"] + adf["n_nan"] == metrics["n_val"]
    if adf["n_nan"] == 0:
        assert metrics["best_val_hc_error_mm"] == pytest.approx(adf["mean"], rel=1e-9)
    else:
        failures_mm = metrics["best_val_hc_error_mm"] * metrics["n_val"] - adf["mean"] * adf["n"]
        assert 40 * adf["n_nan"] < failures_mm < 350 * adf["n_nan"]

    history = pd.read_csv(folder / "history.csv")
    if recipe.select_by == "hc":
        assert {"val_dice_original", "val_adf_mm", "val_failures", "val_hc_error_mm"} <= set(
            history.columns
        )
        best = history.set_index("epoch").loc[metrics["best_epoch"]]
        assert best["val_dice_original"] == pytest.approx(metrics["val"]["dice"]["mean"], rel=1e-6)
        assert best["val_failures"] == metrics["val"]["adf_mm"]["n_nan"]


scoring_files = sorted(RESULTS.rglob("seed-*/scoring.json"))


@pytest.mark.skipif(not scoring_files, reason="no re-scored runs under results/")
@pytest.mark.parametrize("path", scoring_files, ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_rescoring_belongs_to_its_run_and_reproduces_it(path: Path) -> None:
    """A re-scored run scores its recorded predictions again: same images, same numbers."""
    record = strict(path.read_text())
    seed, run, profile = path.parent, path.parent.parent, path.parent.parent.parent
    assert (record["run"], f"seed-{record['seed']}", record["profile"]) == (
        run.name,
        seed.name,
        profile.name,
    )
    metrics = strict((RESULTS / profile.name / run.name / seed.name / "metrics.json").read_text())
    assert record["n_test"] == metrics["n_test"]
    assert record["recorded_dice"] == metrics["test"]["dice"]["mean"]
    assert [score["protocol"] for score in record["scores"]] == list(PROTOCOLS.values())
    if (record["hardware"], record["precision"]) == (metrics["hardware"], metrics["precision"]):
        original = record["scores"][0]
        for metric in SEGMENTATION_METRICS:
            assert original[metric] == pytest.approx(metrics["test"][metric]["mean"], abs=1e-6)


@pytest.mark.parametrize("run", [FINAL_RUN, FROZEN_ENCODER_RUN])
def test_chapter_8s_final_models_have_their_three_seeds(run: str) -> None:
    """Chapter 8 reports each final model as the mean of seeds 0, 1 and 2: all three are
    committed, each with the settings in the run's name, and within the issue's budget of
    4.4 M trained parameters."""
    final = RESULTS / "cpu-hc" / run
    if not final.is_dir():
        pytest.skip(f"results/cpu-hc/{run} is not committed")
    records = [strict(p.read_text()) for p in sorted(final.glob("seed-*/metrics.json"))]
    assert [r["seed"] for r in records] == [0, 1, 2]
    budget = {"decoder": "slim", "encoder_lr": 1e-4} if run == FINAL_RUN else {}
    for record in records:
        assert (record["image_size"], record["epochs"], record["augment"]) == (
            [320, 480],
            20,
            "strong",
        )
        assert record["settings"] == {
            "augment": "strong",
            "epochs": 20,
            "image_size": [320, 480],
            **budget,
        }
        assert record["trainable_parameters"] <= 4_405_073


@pytest.mark.parametrize(
    ("run", "change"),
    [
        (ENCODER_RATE_RUN, {"encoder_lr": 3e-4}),
        (LARGER_INPUT_RUN, {"image_size": [384, 576]}),
        (LONGER_RUN, {"epochs": 30}),
        (AVERAGED_RUN, {"ema": 0.995}),
    ],
    ids=["faster encoder", "larger input", "longer training", "averaged weights"],
)
def test_chapter_8s_candidates_differ_from_the_final_model_in_one_setting(
    run: str, change: dict
) -> None:
    """Chapter 8 compares each candidate with the final model on validation: one seed, the
    final model's settings but one, within the same budget."""
    folder = RESULTS / "cpu-hc" / run
    if not folder.is_dir():
        pytest.skip(f"results/cpu-hc/{run} is not committed")
    (record,) = [strict(p.read_text()) for p in folder.glob("seed-*/metrics.json")]
    final = strict((RESULTS / "cpu-hc" / FINAL_RUN / "seed-0" / "metrics.json").read_text())
    assert record["seed"] == 0
    assert record["settings"] == {**final["settings"], **change}
    assert record["image_size"] == change.get("image_size", final["image_size"])
    assert record["trainable_parameters"] == final["trainable_parameters"] <= 4_405_073


def test_chapter_8s_from_scratch_comparison_is_trained_as_the_final_model() -> None:
    """Chapter 8 compares the final model with the U-Net trained from scratch "under the
    same settings": the two differ in the network (and so the trainable parameters) only."""
    scratch = RESULTS / "cpu-hc" / FINAL_BASELINE_RUN / "seed-0" / "metrics.json"
    final = RESULTS / "cpu-hc" / FINAL_RUN / "seed-0" / "metrics.json"
    for path in (scratch, final):
        if not path.is_file():
            pytest.skip(f"{path.relative_to(RESULTS)} is not committed")
    ours = strict(final.read_text())
    theirs = strict(scratch.read_text())
    assert (theirs["strategy"], ours["strategy"]) == ("baseline", "decoder-0-4")
    same = ("image_size", "epochs", "lr", "warmup_epochs", "loss", "select_by")
    same += ("tta", "augment", "split", "n_train", "n_val", "n_test", "precision")
    for key in same:
        assert theirs[key] == ours[key], key
    # the decoder's width and the encoder's rate are settings of the MobileNetV2 U-Net only
    budget = ("decoder", "encoder_lr")
    assert theirs["settings"] == {k: v for k, v in ours["settings"].items() if k not in budget}
    assert theirs["weights"] == "random"  # from scratch: no ImageNet encoder
    # every parameter trained, of the same network as the recipe's from-scratch run
    under_recipe = strict((RESULTS / "cpu-hc" / "baseline" / "seed-0" / "metrics.json").read_text())
    assert theirs["trainable_parameters"] == theirs["total_parameters"]
    assert theirs["total_parameters"] == under_recipe["total_parameters"]


submissions = sorted(RESULTS.glob("*/submission.csv"))
CHAPTER_8_SUBMISSION = RESULTS / "cpu-hc" / "submission.csv"


@pytest.mark.skipif(not submissions, reason="no committed submission files")
@pytest.mark.parametrize("path", submissions, ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_submission_is_a_challenge_file(path: Path) -> None:
    """A book's submission file: the challenge's columns, one row per hidden test image."""
    table = read_submission(path)
    check_submission(table)
    assert len(table) == 335
    assert table["filename"].str.fullmatch(r"\d{3}_\d?HC\.png").all()


def test_chapter_8s_submission_lists_exactly_its_fallback_rows() -> None:
    """Chapter 8 says how many of the 335 rows are not measurements, from the list beside the
    file. A fallback row is a circle (equal semi-axes, angle 0) of the median training HC;
    a measured head, fitted to thousands of outline points, never has semi-axes equal to the
    micrometre. So the circles in the file, found without the list, must be the list."""
    table = read_submission(CHAPTER_8_SUBMISSION)
    listed = pd.read_csv(fallbacks_path(CHAPTER_8_SUBMISSION))
    circles = table[
        (table["semi_axes_a_mm"] == table["semi_axes_b_mm"]) & (table["angle_rad"] == 0)
    ]
    assert sorted(circles["filename"]) == sorted(listed["filename"])
    assert (listed["reason"].str.len() > 0).all()
    assert circles["semi_axes_a_mm"].nunique() <= 1  # one median HC for all of them


@pytest.mark.realdata
def test_chapter_8s_fallback_circles_have_the_median_training_hc(real_hc18: Path) -> None:
    """The circle's perimeter, 2 pi r, read from the expert HCs of HC18's CSV directly."""
    listed = set(pd.read_csv(fallbacks_path(CHAPTER_8_SUBMISSION))["filename"])
    if not listed:
        pytest.skip("every head of the committed submission was measured")
    radii = (
        read_submission(CHAPTER_8_SUBMISSION)
        .set_index("filename")
        .loc[sorted(listed), "semi_axes_a_mm"]
    )
    median = pd.read_csv(real_hc18 / "training_set_pixel_size_and_HC.csv").iloc[:, 2].median()
    assert 2 * math.pi * radii.to_numpy() == pytest.approx(median, abs=1e-4)


@pytest.mark.realdata
@pytest.mark.parametrize("path", submissions, ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_submission_names_exactly_hc18s_test_images(path: Path, real_hc18: Path) -> None:
    expected = [record.image_path.name for record in load_records("test", real_hc18)]
    check_submission(read_submission(path), expected)


CLEAR_FIT = RESULTS / "checks" / "clear-fit" / "cpu-hc"


@pytest.mark.parametrize(
    ("run", "seeds"),
    [
        (FINAL_RUN, 3),
        (FROZEN_ENCODER_RUN, 3),
        (FINAL_BASELINE_RUN, 1),
        (ENCODER_RATE_RUN, 1),
        (LARGER_INPUT_RUN, 1),
        (LONGER_RUN, 1),
        (AVERAGED_RUN, 1),
    ],
)
def test_the_clear_fit_was_chosen_on_validation_and_reproduces_the_recorded_fit(
    run: str, seeds: int
) -> None:
    from fetalft.biometry import WEAK_EDGE_SHARE
    from fetalft.refit import SHARES

    records = sorted((CLEAR_FIT / run).glob("seed-*/clear_fit.json"))
    if not records:
        pytest.skip(f"{run} was not re-fitted")
    assert len(records) == seeds, records
    val_adf = {f"{share:g}": [] for share in SHARES}
    for path in records:
        record = strict(path.read_text())
        assert record["run"] == run and record["chosen_share"] == WEAK_EDGE_SHARE
        # the test images were scored with the recorded fit and the chosen share only
        assert sorted(record["test"]) == sorted(["0", f"{WEAK_EDGE_SHARE:g}"])
        for share in val_adf:
            val_adf[share].append(record["val"][share]["adf_mm"]["mean"])
            assert record["val"][share]["dice"]["n"] == 80
        # share 0 re-measures exactly what the run recorded, image by image
        per_image = pd.read_csv(path.parent / "per_image.csv")
        again = per_image[(per_image["role"] == "test") & (per_image["share"] == 0)]
        recorded = pd.read_csv(RESULTS / "cpu-hc" / run / path.parent.name / "per_image.csv")
        pd.testing.assert_series_equal(
            again.set_index("name")["hc_pred_mm"].sort_index(),
            recorded.set_index("name")["hc_pred_mm"].sort_index(),
            rtol=1e-9,
        )
        # and the validation images too: chapter 8's paired test of the candidates reads
        # these rows as the run's own validation scores
        metrics = strict((RESULTS / "cpu-hc" / run / path.parent.name / "metrics.json").read_text())
        val = per_image[(per_image["role"] == "val") & (per_image["share"] == 0)]
        assert val["adf_mm"].mean() == pytest.approx(metrics["val"]["adf_mm"]["mean"], rel=1e-9)
        assert val["adf_mm"].isna().sum() == metrics["val"]["adf_mm"]["n_nan"]
    if run == FROZEN_ENCODER_RUN:
        # the share was chosen on the first final model (the later ones inherit it): the
        # smallest validation ADF over its seeds
        means = {share: sum(values) / len(values) for share, values in val_adf.items()}
        assert min(means, key=means.get) == f"{WEAK_EDGE_SHARE:g}", means


MULTI_SCALE = RESULTS / "checks" / "multi-scale" / "cpu-hc" / FINAL_RUN


def test_the_final_models_multi_scale_record_reproduces_its_own_scale() -> None:
    """Chapter 8's multi-scale paragraph: every seed of the final model scored on its 80
    validation images at 0.8, 1 and 1.2 of its input, at 0.8 pasted into a canvas of its
    input size, and on the average of the three sizes; at 1 it must re-measure what the run
    recorded, image for image."""
    records = sorted(MULTI_SCALE.glob("seed-*/multi_scale.json"))
    if not records:
        pytest.skip("the final model was not scored at several scales")
    assert len(records) == 3
    for path in records:
        record = strict(path.read_text())
        assert record["run"] == FINAL_RUN and record["flips"] is True
        assert record["input_sizes"] == {
            "0.8": [256, 384],
            "1": [320, 480],
            "1.2": [384, 576],
            "0.8 pasted": [320, 480],
        }
        assert set(record["val"]) == {"average", "0.8", "1", "1.2", "0.8 pasted"}
        per_image = pd.read_csv(path.parent / "per_image.csv", dtype={"scales": str})
        own = per_image[per_image["scales"] == "1"].set_index("name")["hc_pred_mm"].sort_index()
        assert len(own) == 80 and (per_image["scales"].value_counts() == 80).all()
        clear_fit = pd.read_csv(CLEAR_FIT / FINAL_RUN / path.parent.name / "per_image.csv")
        recorded = clear_fit[(clear_fit["role"] == "val") & (clear_fit["share"] == 0)]
        pd.testing.assert_series_equal(
            own, recorded.set_index("name")["hc_pred_mm"].sort_index(), rtol=1e-9
        )
        assert record["val"]["1"]["adf_mm"]["mean"] == pytest.approx(
            record["recorded_val_adf_mm"], rel=1e-9
        )


def test_readme_states_chapter_8s_committed_result() -> None:
    """The README's headline numbers, typed once by hand, against the committed per-image
    test scores, averaged here with pandas rather than through the package's tables: mean
    over images per seed, then mean and sd over seeds."""
    readme = (RESULTS.parent / "README.md").read_text()
    stated = re.search(
        r"Dice of ([\d.]+) ± ([\d.]+)% and a mean\s+absolute HC error of ([\d.]+) ± ([\d.]+) mm "
        r"\((\d) seeds, no head missed\), against ([\d.]+)% and ([\d.]+) mm",
        readme,
    )
    assert stated, "the README's sentence on chapter 8's result has changed shape"

    def per_seed(profile: str, run: str) -> pd.DataFrame:
        files = sorted((RESULTS / profile / run).glob("seed-*/per_image.csv"))
        scores = [pd.read_csv(path) for path in files]
        return pd.DataFrame(
            {
                "dice": [100 * s["dice"].mean() for s in scores],
                "adf": [s["adf_mm"].mean() for s in scores],
                "missed": [(~s["measurable"]).sum() for s in scores],
            }
        )

    final, paper_way = per_seed("cpu-hc", FINAL_RUN), per_seed("cpu", RECIPE_RUN)
    expected = [
        f"{final['dice'].mean():.2f}",
        f"{final['dice'].std():.2f}",
        f"{final['adf'].mean():.2f}",
        f"{final['adf'].std():.2f}",
        str(len(final)),
        f"{paper_way['dice'].mean():.2f}",
        f"{paper_way['adf'].mean():.2f}",
    ]
    assert list(stated.groups()) == expected
    assert final["missed"].sum() == 0

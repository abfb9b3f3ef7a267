"""fetalft.findings: the key findings in words, on hand-made runs with known answers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fetalft import findings
from fetalft.evaluate import PROTOCOLS
from fetalft.runfiles import load_runs
from fetalft.study import RunSpec
from tests.test_report import PROFILE
from tests.test_report import write_run as write_folder  # the same hand-made run folders

IMAGES = [f"{i:03d}_HC" for i in range(20)]
TRAINABLE = {"baseline": 31_037_633, "decoder-0-4": 4_405_073, "decoder-4": 6_976}


def write_run(
    results: Path,
    spec: RunSpec,
    dice: float,
    adf_mm: float = 3.0,
    best_val_dice: float = 0.9,
    n_train: int = 700,
    spread: float = 0.01,
) -> None:
    """A finished run: every test image scores ``dice`` ± ``spread`` (alternating), so a
    paired difference is known exactly and its interval is narrow."""
    per_image = pd.DataFrame(
        {
            "name": IMAGES,
            "dice": [dice + (spread if i % 2 else -spread) for i in range(len(IMAGES))],
            "adf_mm": adf_mm,
        }
    )
    write_folder(
        results,
        spec,
        test={"dice": dice, "adf_mm": adf_mm},
        best_val_dice=best_val_dice,
        per_image=per_image,
        n_train=n_train,
        n_test=len(IMAGES),
        trainable_parameters=TRAINABLE.get(spec.strategy, 1000),
    )


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """baseline 0.97 and decoder-0-4 0.96 (best on validation) over seeds 0-2; decoder-4
    0.5; decoder-0-4 with the head frozen 0.955; leaky twins +0.002 and +0.001."""
    root = tmp_path / "results"
    for seed in (0, 1, 2):
        write_run(root, RunSpec("baseline", seed), 0.97, adf_mm=3.0, best_val_dice=0.99)
        write_run(root, RunSpec("decoder-0-4", seed), 0.96, adf_mm=4.0, best_val_dice=0.95)
        write_run(root, RunSpec("decoder-4", seed), 0.5, best_val_dice=0.6)
        write_run(root, RunSpec("decoder-0-4", seed, head_trainable=False), 0.955)
        write_run(root, RunSpec("decoder-0-4", seed, split="leaky"), 0.961)
    write_run(root, RunSpec("baseline", 0, split="leaky"), 0.972)
    return root


def runs_of(results: Path) -> pd.DataFrame:
    return load_runs(PROFILE, results)


def test_percent_and_seeds() -> None:
    assert findings.percent(0.9591, 0.0034) == "95.91 ± 0.34%"
    assert findings.percent(0.97) == "97.00% (1 seed)"
    assert findings.percent(float("nan")) == "n/a"
    assert findings.seeds_text([0]) == "seed 0"
    assert findings.seeds_text([0, 1, 2]) == "seeds 0, 1, 2"


def test_won_names_the_winner_the_paired_difference_and_the_parameters(results: Path) -> None:
    text = findings.won(runs_of(results), PROFILE, results_dir=results)
    assert text.startswith("The from-scratch U-Net wins. decoder-0-4, the best fine-tuning")
    assert "1.00 Dice points lower (95% CI 1.00 to 1.00)" in text
    assert "(96.00 ± 0.00% against 97.00 ± 0.00%; paired over 20 images, seeds 0, 1, 2)" in text
    assert "head circumference error is 1.00 mm larger" in text
    assert "85.8% fewer parameters (4,405,073 against 31,037,633)" in text


def test_won_turns_round_when_the_strategy_is_ahead(results: Path) -> None:
    for seed in (0, 1, 2):
        write_run(results, RunSpec("baseline", seed), 0.94, adf_mm=5.0, best_val_dice=0.99)
    text = findings.won(runs_of(results), PROFILE, results_dir=results)
    assert text.startswith("decoder-0-4 beats the from-scratch U-Net")
    assert "2.00 Dice points higher" in text and "1.00 mm smaller" in text


def test_won_without_a_clear_difference_says_so(results: Path) -> None:
    for seed in (0, 1, 2):
        write_run(results, RunSpec("baseline", seed), 0.96, spread=0.0, best_val_dice=0.99)
    text = findings.won(runs_of(results), PROFILE, results_dir=results)
    assert text.startswith("Neither decoder-0-4 nor the from-scratch U-Net is clearly ahead")
    assert "an interval that holds zero" in text


def test_the_best_strategy_is_chosen_on_validation_not_test(results: Path) -> None:
    """decoder-4 has the better validation Dice here, so it is the best strategy although
    decoder-0-4 scores far higher on test."""
    for seed in (0, 1, 2):
        write_run(results, RunSpec("decoder-4", seed), 0.5, best_val_dice=0.98)
    texts = findings.key_findings(runs_of(results), None, PROFILE, results_dir=results)
    assert texts["best_strategy"] == "decoder-4"


def test_leak_lists_each_main_run_against_its_leaky_twin(results: Path) -> None:
    text = findings.leak(runs_of(results), siblings=57)
    assert "where 57 test images have a scan of the same exam in training" in text
    assert "by +0.10 to +0.20 points: baseline +0.20 (1 seed), decoder-0-4 +0.10 (3 seeds)" in text


def test_head_is_paired_for_the_best_strategy(results: Path) -> None:
    text = findings.head(runs_of(results), PROFILE, results_dir=results)
    assert text.startswith("Freezing decoder-0-4's segmentation head (the authors' code trains")
    assert "costs 0.50 Dice points (95% CI 0.50 to 0.50), paired over 20 test images." in text


def test_less_data_compares_every_size_both_were_run_at(results: Path) -> None:
    write_run(results, RunSpec("baseline", 0, train_fraction=0.1), 0.9, n_train=70)
    for seed in (0, 1):
        spec = RunSpec("decoder-0-4", seed, train_fraction=0.1)
        write_run(results, spec, 0.80 + 0.02 * seed, n_train=70)
    text = findings.less_data(runs_of(results))
    assert text.startswith(
        "At every training-set size measured (70 and all 700 images), the from-scratch U-Net "
        "stays ahead of decoder-0-4: with 70 images (10%) the baseline scores 90.00% (1 seed) "
        "test Dice, decoder-0-4 81.00 ± 1.41%"
    )
    assert "(the paper, at 10% of its images: baseline 88.90%, decoder-0-4 92.19%)" in text


def test_scoring_reads_the_rescored_runs(results: Path) -> None:
    rows = []
    for run, original, authors in (("baseline", 0.97, 0.972), ("decoder-0-4", 0.96, 0.97)):
        for protocol, dice in zip(PROTOCOLS.values(), (original, original, authors), strict=True):
            rows.append(
                {"run": run, "seed": 0, "split": "exam", "protocol": protocol, "dice": dice}
            )
    text = findings.scoring(runs_of(results), pd.DataFrame(rows))
    assert "adds +0.20 (baseline) to +1.00 Dice points (decoder-0-4)" in text
    assert findings.scoring(runs_of(results), pd.DataFrame()).endswith(findings.NOT_MEASURED + ".")


def test_nothing_measured_yet_is_said_not_invented(tmp_path: Path) -> None:
    texts = findings.key_findings(pd.DataFrame(), None, PROFILE, results_dir=tmp_path)
    assert texts["best_strategy"] == "none yet"
    for key, text in texts.items():
        if key.startswith("finding_") or key.endswith("_range"):
            assert findings.NOT_MEASURED in text, key


def test_the_glue_fallback_writes_what_myst_nb_writes(monkeypatch) -> None:
    """Without myst-nb (Colab) a chapter still glues, in myst-nb's own output format."""
    import builtins

    import IPython.display
    import myst_nb.ext.glue as myst_glue

    shown = []

    def capture(obj, raw=False, metadata=None):
        shown.append((obj, raw, metadata))

    monkeypatch.setattr(myst_glue, "ipy_display", capture)
    findings.glue("key", "a finding", display=False)
    real_import = builtins.__import__

    def no_myst(name, *args, **kwargs):
        if name.startswith("myst_nb"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_myst)
    monkeypatch.setattr(IPython.display, "display", capture)
    findings.glue("key", "a finding", display=False)
    assert len(shown) == 2 and shown[0] == shown[1]
    bundle, raw, metadata = shown[0]
    assert raw and metadata["scrapbook"] == {"name": "key", "mime_prefix": findings.GLUE_PREFIX}
    assert bundle == {findings.GLUE_PREFIX + "text/plain": "'a finding'"}


def test_random_bn_counts_the_strategies_it_lowers_and_names_those_it_raises(
    results: Path,
) -> None:
    for seed in (0, 1, 2):
        write_run(results, RunSpec("decoder-4", seed, random_bn="train"), 0.45)
        write_run(results, RunSpec("decoder-0-2", seed), 0.6, best_val_dice=0.5)
        write_run(results, RunSpec("decoder-0-2", seed, random_bn="train"), 0.7)
    text = findings.random_bn(runs_of(results))
    assert text == (
        "Over 3 seeds, normalising the frozen random layers by batch lowers the mean test Dice "
        "of 1 of the 2 strategies that have such layers and raises decoder-0-2 (+10.00); the "
        "changes run from -5.00 to +10.00 points."
    )


def test_ranges_are_read_from_the_findings_they_summarise(results: Path) -> None:
    texts = findings.key_findings(runs_of(results), None, PROFILE, results_dir=results)
    assert texts["leak_range"] == "+0.10 to +0.20 points"
    assert texts["scoring_range"] == findings.NOT_MEASURED
    assert findings.change_range("adds +0.12 (baseline) to +1.20 Dice points") == (
        "+0.12 to +1.20 points"
    )


def test_siblings_of_the_committed_leaky_split() -> None:
    """One leaky test image has its exam's other scan in validation only."""
    assert findings.test_siblings() == 57
    assert findings.test_siblings(roles=("train", "val")) == 58
    assert findings.test_siblings("exam", ("train", "val")) == 0


def test_sibling_effect_reads_the_leak_table() -> None:
    index = pd.MultiIndex.from_product(
        [["a--leaky", "b--leaky"], ["no sibling in training", "sibling in training"]],
        names=["run", "test images"],
    )
    table = pd.DataFrame({"Dice (%)": [97.0, 96.5, 96.0, 95.0]}, index=index)
    assert findings.sibling_effect(table) == (
        "In every leaky run, the test images with a sibling in training score lower, not "
        "higher, than the others: a--leaky -0.50, b--leaky -1.00 Dice points."
    )
    table["Dice (%)"] = [97.0, 97.5, 96.0, 95.0]
    assert "higher in some runs and lower in others" in findings.sibling_effect(table)
    assert findings.NOT_MEASURED in findings.sibling_effect(pd.DataFrame())


def test_glue_all_pastes_plain_text_and_unbolded_html(monkeypatch) -> None:
    import myst_nb.ext.glue as myst_glue

    shown = []
    monkeypatch.setattr(myst_glue, "ipy_display", lambda obj, raw, metadata: shown.append(obj))
    findings.glue_all({"finding": "A < B: 1.05 ± 0.34%"})
    (bundle,) = shown
    assert bundle[findings.GLUE_PREFIX + "text/plain"] == "A < B: 1.05 ± 0.34%"
    assert bundle[findings.GLUE_PREFIX + "text/html"] == "A &lt; B: 1.05 ± 0.34%"


def test_unexplained_lists_the_rows_far_from_the_paper_both_ways() -> None:
    """decoder-0-4 96.10 (paper 96.28), encoder 50.00 (paper 96.22), decoder-4 45.00
    (paper 37.04); nothing else measured."""
    runs = pd.DataFrame(
        {
            "run": ["decoder-0-4", "decoder-0-4", "encoder", "decoder-4"],
            "strategy": ["decoder-0-4", "decoder-0-4", "encoder", "decoder-4"],
            "seed": [0, 1, 0, 0],
            "dice": [0.96, 0.962, 0.50, 0.45],
        }
    )
    assert findings.unexplained(runs, pd.DataFrame()) == (
        "The measured factors bring 1 of the 3 rows of the paper's table within 2 Dice points "
        "of ours (decoder-0-4); for the others the paper reports more than ours plus every "
        "measured factor, by 46.22 points (encoder), or less, by 7.96 points (decoder-4). "
        "Nothing measured here explains these gaps."
    )

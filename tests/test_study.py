"""fetalft.study and ``python -m fetalft study``: every strategy end to end, resumable, atomic."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from fetalft import hc18, settings, study, training
from fetalft.__main__ import main
from fetalft.data import select_records
from fetalft.profiles import Profile
from fetalft.runfiles import load_runs
from fetalft.strategies import STRATEGIES, registry_table
from fetalft.study import RunSpec, Study, plan

RUN_FILES = {"metrics.json", "per_image.csv", "history.csv", "environment.json"}
TINY = Profile(
    "tiny",
    image_size=32,
    epochs=1,
    seeds=(0,),
    batch_size=4,
    limits={"train": 6, "val": 3, "test": 3},
)


@pytest.fixture
def study_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synthetic_hc18: Path) -> dict:
    """Fresh results and checkpoint folders; HC18 if present (as in CI), else synthetic scans."""
    monkeypatch.setenv(settings.RESULTS_ENV, str(tmp_path / "results"))
    monkeypatch.setenv(settings.CHECKPOINTS_ENV, str(tmp_path / "checkpoints"))
    monkeypatch.delenv("FETALFT_PROFILE", raising=False)
    try:
        hc18.find_data_dir()
    except hc18.DatasetNotFoundError:
        monkeypatch.setenv(settings.DATA_DIR_ENV, str(synthetic_hc18))
    weights = os.environ.get("FETALFT_ENCODER_WEIGHTS")
    if not (weights and Path(weights).is_file()):  # never download in tests
        monkeypatch.setenv("FETALFT_ENCODER_WEIGHTS", "random")
    return {
        "results": tmp_path / "results",
        "checkpoints": tmp_path / "checkpoints",
        "env": dict(os.environ),
    }


def hidden_leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.name.endswith((".partial", ".tmp", ".old"))]


@pytest.mark.slow
def test_smoke_study_runs_every_strategy_end_to_end(study_env: dict, capsys) -> None:
    """The CI command, as a user types it: ``python -m fetalft study --profile smoke``."""
    done = subprocess.run(
        [sys.executable, "-m", "fetalft", "study", "--profile", "smoke", "--quiet"],
        env=study_env["env"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "10 runs finished under" in done.stdout

    root = study_env["results"] / "smoke"
    assert sorted(p.name for p in root.iterdir()) == sorted(STRATEGIES)
    registry = registry_table()
    trainable = dict(zip(registry["strategy"], registry["trainable"], strict=True))
    for name in STRATEGIES:
        folder = root / name / "seed-0"
        assert {p.name for p in folder.iterdir()} == RUN_FILES, name
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["strategy"] == metrics["run"] == name
        assert metrics["profile"] == "smoke"
        assert metrics["seed"] == 0
        assert metrics["split"] == "exam"
        assert metrics["trainable_parameters"] == trainable[name]
        assert metrics["best_epoch"] == 1
        assert 0 < metrics["n_train"] <= 8 and 0 < metrics["n_val"] <= 4
        assert metrics["n_test"] == 4
        expected = {"pixel_accuracy", "dice", "iou", "miou", "df_mm", "adf_mm", "hausdorff_mm"}
        assert expected <= set(metrics["test"])
        assert set(metrics["test"]["dice"]) == {"mean", "sd", "n", "n_nan"}
        assert metrics["test"]["dice"]["n"] == 4
        per_image = pd.read_csv(folder / "per_image.csv")
        assert len(per_image) == 4
        assert {"name", "dice", "hc_true_mm", "hc_pred_mm", "pred_cx", "measurable"} <= set(
            per_image.columns
        )
        history = pd.read_csv(folder / "history.csv")
        assert list(history.columns[:4]) == ["epoch", "train_loss", "val_dice", "lr"]
        assert len(history) == 1
        environment = json.loads((folder / "environment.json").read_text())
        assert {"versions", "device", "precision", "wall_seconds", "peak_memory_mb"} <= set(
            environment
        )
        # in MB: more than an interpreter with torch loaded can stay under (tens of MB), less
        # than the machine has (a kB or byte figure would land outside)
        physical_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
        assert 20 < environment["peak_memory_mb"] < physical_mb
        assert environment["config"]["strategy"] == name
        assert environment["profile"]["name"] == "smoke"
        checkpoint = study_env["checkpoints"] / "smoke" / name / "seed-0"
        assert (checkpoint / "best.pt").is_file()
        assert not (checkpoint / "last.pt").exists()  # removed once the run is finished
    assert not hidden_leftovers(study_env["results"])

    table = load_runs("smoke")
    assert sorted(table["strategy"]) == sorted(STRATEGIES)
    assert "dice" in table.columns

    # a rerun finds everything finished and touches nothing
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("metrics.json")}
    capsys.readouterr()
    assert main(["study", "--profile", "smoke"]) == 0
    assert "10 of 10 runs already finished; 0 to go" in capsys.readouterr().out
    assert stamps == {p: p.stat().st_mtime_ns for p in root.rglob("metrics.json")}


def test_rerun_skips_finished_runs_in_process(
    study_env: dict, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    args = ["study", "--profile", "smoke", "--strategies", "decoder-4", "--seeds", "1"]
    assert main([*args, "--precision", "fp32", "--quiet"]) == 0
    metrics = study_env["results"] / "smoke" / "decoder-4" / "seed-1" / "metrics.json"
    assert json.loads(metrics.read_text())["precision"] == "fp32"
    capsys.readouterr()
    monkeypatch.setattr(Study, "run", lambda *_: pytest.fail("a finished run ran again"))
    assert main([*args, "--precision", "fp32"]) == 0
    assert "1 of 1 runs already finished; 0 to go" in capsys.readouterr().out
    # asked differently (precision auto): neither skipped as finished nor overwritten
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "precision: recorded 'fp32', requested 'auto'" in err and "To keep both" in err
    environment = json.loads((metrics.parent / "environment.json").read_text())
    assert environment["config"]["extra"]["data"] in ("HC18", "synthetic")
    assert "/" not in environment["config"]["encoder_weights"]  # a name, never a machine path


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "decoder-4"),
        (["--split", "leaky"], "decoder-4--leaky"),
        (["--train-fraction", "0.25"], "decoder-4--train25pct"),
        (["--head-trainable"], "decoder-4--head"),
        (
            ["--split", "leaky", "--train-fraction", "0.5", "--head-trainable"],
            "decoder-4--leaky--train50pct--head",
        ),
    ],
)
def test_variants_get_their_own_run_names(argv: list[str], expected: str) -> None:
    from fetalft.__main__ import build_parser

    args = build_parser().parse_args(["study", "--strategies", "decoder-4", *argv])
    [spec] = plan(args.strategies, [0], args.split, args.train_fraction, args.head_trainable)
    assert spec.name == expected
    assert spec.folder(Path("r"), TINY) == Path("r/tiny") / expected / "seed-0"


def test_plan_covers_strategies_times_seeds() -> None:
    specs = plan(None, (0, 1, 2))
    assert len(specs) == 3 * len(STRATEGIES)
    assert {(s.strategy, s.seed) for s in specs} == {(n, k) for n in STRATEGIES for k in (0, 1, 2)}
    assert len({s.folder(Path("r"), TINY) for s in specs}) == len(specs)


def test_variant_run_end_to_end(study_env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """A variant run in process: its labels, its data, and the test set kept out of training."""
    validated, evaluated, loaded = [], [], {}
    real_dice, real_evaluate = training.validation_dice, study.evaluate

    def spy_dice(model, scans, *args, **kwargs):
        validated.extend(s.name for s in scans)
        return real_dice(model, scans, *args, **kwargs)

    def spy_evaluate(model, scans, *args, **kwargs):
        evaluated.append([s.name for s in scans])
        return real_evaluate(model, scans, *args, **kwargs)

    monkeypatch.setattr(training, "validation_dice", spy_dice)
    monkeypatch.setattr(study, "evaluate", spy_evaluate)
    runner = Study(TINY, encoder_weights="random", progress=False)
    real_scans = runner.scans

    def spy_scans(spec, role):
        loaded[role] = [s.name for s in real_scans(spec, role)]
        return real_scans(spec, role)

    monkeypatch.setattr(runner, "scans", spy_scans)
    spec = RunSpec("decoder-4", seed=1, split="leaky", train_fraction=0.5, head_trainable=True)
    folder = runner.run(spec)
    assert folder == study_env["results"] / "tiny" / "decoder-4--leaky--train50pct--head" / "seed-1"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["split"] == "leaky"
    assert metrics["train_fraction"] == 0.5
    assert metrics["head_trainable"] is True
    assert metrics["trainable_parameters"] == 6_976 + 145
    assert metrics["total_parameters"] == 6_628_945  # smp's MobileNetV2 U-Net, whole
    assert metrics["seed"] == 1
    assert metrics["weights"] == "random"

    limits = TINY.limits
    expected = {
        role: [
            r.name for r in select_records(runner.records, role, "leaky", limits[role], fraction)
        ]
        for role, fraction in (("train", 0.5), ("val", 1.0), ("test", 1.0))
    }
    assert loaded == expected
    assert metrics["n_train"] == len(expected["train"])
    # after training, the test set is scored exactly once, and validation once (for the
    # ablation tables; by then the epoch is chosen)
    assert evaluated == [expected["test"], expected["val"]]
    assert set(validated) == set(expected["val"])  # validation alone picks the epoch
    assert not set(expected["test"]) & (set(expected["train"]) | set(expected["val"]))


def test_a_run_on_synthetic_scans_says_so_and_carries_its_labels(
    study_env: dict, tmp_path: Path
) -> None:
    """The labels a reader filters the results by: the data (synthetic scans asked for by
    name must never be labelled HC18), the paper's name for the strategy and the BatchNorm
    mode of frozen random parts. Expected values are literals from the paper and the CLI."""
    runner = Study(TINY, data_dir="synthetic", encoder_weights="random", progress=False)
    assert runner.synthetic
    spec = RunSpec("decoder-4", seed=0, random_bn="train")
    assert runner.config(spec).extra["data"] == "synthetic"
    metrics = json.loads((runner.run(spec) / "metrics.json").read_text())
    assert metrics["data"] == "synthetic"
    assert metrics["paper_label"] == "decoder 4"
    assert metrics["random_bn"] == "train"
    assert metrics["run"] == "decoder-4--random-bn-train"

    hc18_format = Study(TINY, encoder_weights="random", progress=False)  # study_env's folder
    assert not hc18_format.synthetic
    assert hc18_format.config(spec).extra["data"] == "HC18"


def test_run_all_counts_what_is_left_and_each_run_names_its_encoder_weights(
    study_env: dict, tmp_path: Path, capsys
) -> None:
    """run_all says how many runs are finished and how many are left; a pretrained
    strategy's run names the weights file it started from, a from-scratch run says random."""
    import torch

    from fetalft.strategies import get_strategy, prepare_model

    encoder = prepare_model(get_strategy("random-encoder"), encoder_weights=None).net.encoder
    torch.save(encoder.state_dict(), tmp_path / "stand-in.pth")
    runner = Study(TINY, encoder_weights=str(tmp_path / "stand-in.pth"), progress=False)
    pretrained, scratch = RunSpec("decoder-4", 0), RunSpec("baseline", 0)
    config = runner.config(pretrained)
    assert config.encoder_weights == str(tmp_path / "stand-in.pth")
    content = hashlib.sha256((tmp_path / "stand-in.pth").read_bytes()).hexdigest()
    assert config.extra["encoder_sha256"] == content
    runner.run(pretrained)
    runner.progress = True
    capsys.readouterr()
    runner.run_all([pretrained, scratch])
    assert "1 of 2 runs already finished; 1 to go" in capsys.readouterr().out
    for spec, weights in ((pretrained, "file:stand-in.pth"), (scratch, "random")):
        folder = spec.folder(runner.results_dir, runner.profile)
        assert json.loads((folder / "metrics.json").read_text())["weights"] == weights


def test_a_study_chooses_its_data_by_its_own_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no HC18 anywhere, the smoke profile falls back to synthetic scans and the cpu
    profile refuses: the choice is made with the Study's profile."""
    monkeypatch.delenv(settings.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert Study("smoke", encoder_weights="random", progress=False).synthetic
    with pytest.raises(hc18.DatasetNotFoundError):
        Study("cpu", encoder_weights="random", progress=False)


def test_only_the_smoke_profile_falls_back_to_a_random_encoder_and_only_for_imagenet(
    study_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Offline (the download stubbed to fail), a smoke study asking for ImageNet trains from
    a random encoder and says so; a weights file, or any other profile, is kept as given."""
    attempts = []

    def offline(weights: str) -> None:
        attempts.append(weights)
        raise OSError("no network")

    monkeypatch.setattr(study, "mobilenet_unet", offline)
    assert Study("smoke", encoder_weights="imagenet", progress=False).encoder_weights == "random"
    said = capsys.readouterr().out
    assert (
        "ImageNet weights unavailable (OSError): the smoke profile uses a random encoder." in said
    )
    assert "Set FETALFT_ENCODER_WEIGHTS to a local file." in said
    assert attempts == ["imagenet"]
    weights_file = str(tmp_path / "weights.pth")
    assert Study("smoke", encoder_weights=weights_file, progress=False).encoder_weights == (
        weights_file
    )
    assert Study(TINY, encoder_weights="imagenet", progress=False).encoder_weights == "imagenet"
    assert attempts == ["imagenet"]  # neither asked the network


def test_a_run_that_dies_while_writing_leaves_no_folder_and_resumes(
    study_env: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = Study(TINY, encoder_weights="random", progress=False)
    spec = RunSpec("decoder-4", seed=0)
    real_write = study.write_json_atomic

    def crash_on_metrics(path, data):
        if Path(path).name == "metrics.json":
            raise KeyboardInterrupt
        return real_write(path, data)

    monkeypatch.setattr(study, "write_json_atomic", crash_on_metrics)
    with pytest.raises(KeyboardInterrupt):
        runner.run(spec)
    folder = spec.folder(study_env["results"], TINY)
    assert not folder.exists()
    assert not runner.is_done(spec)
    assert not hidden_leftovers(study_env["results"])
    assert (spec.folder(study_env["checkpoints"], TINY) / "last.pt").is_file()

    monkeypatch.setattr(study, "write_json_atomic", real_write)
    monkeypatch.setattr(
        training.Trainer, "train_epoch", lambda self: pytest.fail("trained again after resume")
    )
    assert runner.run(spec) == folder
    assert {p.name for p in folder.iterdir()} == RUN_FILES


def test_unknown_strategy_lists_the_valid_ones(study_env: dict, capsys) -> None:
    assert main(["study", "--profile", "smoke", "--strategies", "decoder-9"]) == 2
    err = capsys.readouterr().err
    assert "unknown strategy 'decoder-9'" in err
    assert all(name in err for name in STRATEGIES)
    assert not study_env["results"].exists()


def test_unknown_profile_lists_the_valid_ones(
    study_env: dict, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["study", "--profile", "huge"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "huge" in err and all(name in err for name in ("smoke", "cpu", "paper"))
    monkeypatch.setenv("FETALFT_PROFILE", "huge")
    assert main(["study"]) == 2
    err = capsys.readouterr().err
    assert "unknown profile 'huge'; valid profiles: smoke, cpu, paper" in err


def test_peak_memory_is_the_runs_own(study_env: dict) -> None:
    import torch

    from fetalft.environment import peak_memory_mb

    block = torch.ones(800 * 2**20 // 4)  # 800 MiB touched, then freed
    del block
    process_peak = peak_memory_mb(torch.device("cpu"))
    runner = Study(TINY, encoder_weights="random", progress=False)
    folder = runner.run(RunSpec("decoder-4", seed=0))
    environment = json.loads((folder / "environment.json").read_text())
    assert environment["peak_memory_mb"] < process_peak - 400


@pytest.mark.parametrize("fraction", [1.5, 0.0, -0.1])
def test_train_fraction_outside_0_1_is_refused(fraction: float) -> None:
    message = f"train fraction {fraction!r} must be a whole percentage in (0, 1], such as 0.1"
    with pytest.raises(ValueError, match=re.escape(message)):
        plan(["decoder-4"], [0], train_fraction=fraction)


def test_unknown_random_bn_mode_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown random_bn 'frozen'; choose one of eval, train"):
        RunSpec("decoder-4", 0, random_bn="frozen")


def test_the_training_config_carries_every_choice_of_the_spec(study_env: dict) -> None:
    """Seed, BatchNorm mode, split and fraction reach the Trainer's config (a seed dropped
    there would train every seed alike), and the config's extra labels are named as
    check_finished_run reads them."""
    runner = Study(TINY, encoder_weights="random", progress=False)
    spec = RunSpec("decoder-4", seed=3, split="leaky", train_fraction=0.5, random_bn="train")
    config = runner.config(spec)
    assert (config.seed, config.random_bn, config.strategy) == (3, "train", "decoder-4")
    assert config.augment == "paper"
    # a recipe setting reaches the Trainer too: a strong run must not train as the paper did
    strong = RunSpec("decoder-4", 0, settings=(("augment", "strong"),))
    assert runner.config(strong).augment == "strong"
    assert config.extra == {
        "split": "leaky",
        "train_fraction": 0.5,
        "data": "HC18",  # study_env's folder, HC18 or in its format
        "encoder_sha256": None,  # random weights: no file to hash
    }


def test_fractions_that_would_share_a_folder_are_refused() -> None:
    """Folder names hold whole percentages, so 0.125 would land in 0.12's folder."""
    assert RunSpec("decoder-4", 0, train_fraction=0.12).name == "decoder-4--train12pct"
    with pytest.raises(ValueError, match="whole percentage"):
        RunSpec("decoder-4", 0, train_fraction=0.125)


# -- the study scores what it says: the best validation epoch, not the last -----------------


def test_test_metrics_are_those_of_the_best_epoch_not_the_last(
    study_env: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two epochs, validation peaking at epoch 1: metrics.json and per_image.csv must equal
    best.pt (epoch 1) scored independently, and differ from the last epoch's weights."""
    import dataclasses

    import numpy as np
    import torch

    from fetalft.evaluate import evaluate
    from fetalft.metrics import summarize
    from fetalft.predict import Predictor

    scores = iter([0.9, 0.1])
    monkeypatch.setattr(training, "validation_dice", lambda *args, **kwargs: next(scores))
    epoch_states = []
    real_save = training.Trainer.save_checkpoint

    def snapshot_then_save(self) -> None:
        epoch_states.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        real_save(self)

    monkeypatch.setattr(training.Trainer, "save_checkpoint", snapshot_then_save)
    profile = dataclasses.replace(TINY, name="tiny-2-epochs", epochs=2, lr=1e-2)
    runner = Study(profile, encoder_weights="random", precision="fp32", progress=False)
    spec = RunSpec("decoder-0-4", seed=0)
    folder = runner.run(spec)

    metrics = json.loads((folder / "metrics.json").read_text())
    history = pd.read_csv(folder / "history.csv")
    assert list(history["val_dice"]) == [0.9, 0.1]
    assert metrics["best_epoch"] == 1
    assert metrics["best_val_dice"] == 0.9
    best_path = spec.folder(study_env["checkpoints"], profile) / "best.pt"
    assert torch.load(best_path, weights_only=False)["epoch"] == 1
    assert len(epoch_states) == 2

    test = runner.scans(spec, "test")
    predictor = Predictor.from_checkpoint(best_path, precision="fp32")
    from_best = evaluate(predictor.model, test, predictor.runtime, profile.batch_size)
    predictor.model.load_state_dict(epoch_states[1])
    from_last = evaluate(predictor.model, test, predictor.runtime, profile.batch_size)

    recorded = pd.read_csv(folder / "per_image.csv")
    numeric = [c for c in recorded.columns if c not in ("name", "measurable")]
    assert list(recorded["name"]) == [s.name for s in test]
    np.testing.assert_allclose(
        recorded[numeric].to_numpy(float), from_best[numeric].to_numpy(float), rtol=1e-9
    )
    summary = summarize(from_best).to_dict(orient="index")
    for metric, values in metrics["test"].items():
        # metrics.json is strict JSON: a NaN (no measurable head, or one for an sd) is null
        written = {k: float("nan") if v is None else v for k, v in values.items()}
        assert written == pytest.approx(summary[metric], rel=1e-9, nan_ok=True), metric
    # the last epoch answers differently, so the comparison above tells the two apart
    assert not np.allclose(
        recorded["pixel_accuracy"].to_numpy(), from_last["pixel_accuracy"].to_numpy()
    )


# -- run settings: one recipe change per run, named in its folder ------------------------------


def test_default_run_names_are_unchanged() -> None:
    assert RunSpec("decoder-0-4", 0).name == "decoder-0-4"
    assert RunSpec("decoder-0-4", 0).settings == ()
    assert [s.name for s in plan(["decoder-0-4", "baseline"], [0])] == ["decoder-0-4", "baseline"]


def test_settings_in_any_order_give_the_same_run() -> None:
    one = RunSpec("decoder-0-4", 1, settings=(("tta", False), ("lr", 1e-4)))
    other = RunSpec("decoder-0-4", 1, settings=[("lr", 1e-4), ("tta", False)])
    assert one == other and hash(one) == hash(other)
    assert one.name == other.name == "decoder-0-4--lr-0.0001--tta-off"
    assert one.folder(Path("r"), TINY) == Path("r/tiny/decoder-0-4--lr-0.0001--tta-off/seed-1")
    specs = plan(["decoder-0-4"], [0, 1], settings=[("tta", False), ("lr", 1e-4)])
    assert [s.name for s in specs] == [one.name] * 2
    assert [s.seed for s in specs] == [0, 1]
    head = RunSpec("decoder-4", 0, head_trainable=True, settings=(("image_size", (256, 384)),))
    assert head.name == "decoder-4--head--image-size-256x384"


def test_unknown_settings_are_refused_by_the_spec() -> None:
    with pytest.raises(ValueError, match="unknown setting 'foo'"):
        RunSpec("decoder-0-4", 0, settings=(("foo", 1),))
    with pytest.raises(ValueError, match="unknown setting 'seeds'"):
        plan(["decoder-0-4"], [0], settings=[("seeds", (0, 1))])


@pytest.mark.parametrize(
    ("first", "second"),
    [("lr=1.6e-4", "lr=2e-4"), ("lr=2.5e-4", "lr=3e-4"), ("lr=1.2e-3", "lr=1e-3")],
)
def test_different_settings_never_share_a_folder(first: str, second: str) -> None:
    """Like train fractions (whole percentages), a setting the name cannot tell apart from
    another must be refused, or the second run would be skipped as "already finished"."""
    from fetalft.profiles import parse_setting

    specs = []
    for text in (first, second):
        try:
            specs.append(RunSpec("decoder-0-4", 0, settings=(parse_setting(text),)))
        except ValueError:
            return  # refused: fine
    assert specs[0].name != specs[1].name


def test_study_recipe_and_config_apply_the_settings(study_env: dict) -> None:
    runner = Study("smoke", encoder_weights="random", progress=False)
    settings = (("image_size", (64, 96)), ("warmup_epochs", 1), ("epochs", 3))
    spec = RunSpec("decoder-0-4", 0, settings=settings)
    recipe = runner.recipe(spec)
    assert recipe.name == "smoke" and recipe.image_size == (64, 96) and recipe.warmup_epochs == 1
    assert runner.profile.image_size == 64  # the study's profile is untouched
    config = runner.config(spec)
    assert (config.image_size, config.warmup_epochs, config.epochs) == ((64, 96), 1, 3)
    assert (config.lr, config.loss, config.select_by, config.tta) == (1e-4, "bce", "dice", False)
    hc = Study("cpu-hc", encoder_weights="random", progress=False)
    config = hc.config(RunSpec("decoder-0-4", 0))
    assert (config.image_size, config.lr, config.warmup_epochs) == ((256, 384), 1e-3, 1)
    assert (config.loss, config.select_by, config.tta) == ("bce+dice", "hc", True)
    assert hc.config(RunSpec("decoder-0-4", 0, settings=(("tta", False),))).tta is False
    assert config.ema == 0.0  # no moving average unless asked for
    averaged = RunSpec("decoder-0-4", 0, settings=(("ema", 0.995),))
    assert hc.config(averaged).ema == 0.995
    assert averaged.name == "decoder-0-4--ema-0.995"


HC_SETTINGS = (("image_size", (64, 96)), ("tta", True), ("select_by", "hc"), ("epochs", 2))


@pytest.fixture(scope="module")
def hc_run(synthetic_hc18: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A smoke-profile run on the synthetic scans with the cpu-hc recipe's new settings:
    64 x 96 input, flips, epochs chosen by HC error, two epochs."""
    root = tmp_path_factory.mktemp("hc-study")
    runner = Study(
        "smoke",
        data_dir=synthetic_hc18,
        results_dir=root / "results",
        checkpoint_dir=root / "checkpoints",
        encoder_weights="random",
        precision="fp32",
        progress=False,
    )
    spec = RunSpec("decoder-0-4", 0, settings=HC_SETTINGS)
    started = time.perf_counter()
    runner.run(spec)
    elapsed = time.perf_counter() - started
    return {"runner": runner, "spec": spec, "root": root, "elapsed": elapsed}


def finished(hc_run: dict) -> Path:
    """The run's folder, from ``Study.run`` again (a finished run is returned as it is).

    Why call it in each test: mutation testing (scripts/mutation.py) runs, for a mutant of
    ``Study.run``, only the tests that call it, and the module-scoped fixture's call counts
    for the first test alone; the others would not run, and their checks would catch nothing.
    """
    return hc_run["runner"].run(hc_run["spec"])


def test_a_run_with_settings_records_its_recipe(hc_run: dict) -> None:
    folder, spec = finished(hc_run), hc_run["spec"]
    name = "decoder-0-4--epochs-2--image-size-64x96--select-by-hc--tta-on"
    assert spec.name == name
    assert folder == hc_run["root"] / "results" / "smoke" / name / "seed-0"
    assert {p.name for p in folder.iterdir()} == RUN_FILES
    metrics = json.loads((folder / "metrics.json").read_text())
    assert (metrics["run"], metrics["profile"], metrics["strategy"]) == (
        name,
        "smoke",
        "decoder-0-4",
    )
    # a folder given by name is read as HC18 (it holds HC18's files), not as synthetic scans
    assert (metrics["data"], metrics["paper_label"], metrics["random_bn"]) == (
        "HC18",
        "decoder 0-4",
        "eval",
    )
    assert metrics["augment"] == "paper"
    assert metrics["image_size"] == [64, 96]
    assert metrics["epochs"] == 2
    assert metrics["tta"] is True and metrics["select_by"] == "hc"
    assert (metrics["lr"], metrics["warmup_epochs"], metrics["loss"]) == (1e-4, 0, "bce")
    assert metrics["settings"] == {
        "epochs": 2,
        "image_size": [64, 96],
        "select_by": "hc",
        "tta": True,
    }
    environment = json.loads((folder / "environment.json").read_text())
    assert metrics["precision"] == environment["precision"] == "fp32"  # as the fixture asks
    assert metrics["hardware"] == environment["hardware"]
    # the checkpoints go where the Study was told, not to the default folder
    checkpoint = hc_run["root"] / "checkpoints" / "smoke" / name / "seed-0" / "best.pt"
    assert checkpoint.is_file()
    # the run's cost: its training epochs and scoring, within what the fixture waited for
    train_seconds = pd.read_csv(folder / "history.csv")["train_seconds"].sum()
    assert train_seconds < metrics["wall_seconds"] <= hc_run["elapsed"]
    assert environment["wall_seconds"] == metrics["wall_seconds"]
    assert environment["profile"]["name"] == "smoke"
    assert environment["profile"]["image_size"] == [64, 96]
    assert environment["profile"]["tta"] is True
    assert environment["config"]["image_size"] == [64, 96]
    assert environment["config"]["select_by"] == "hc" and environment["config"]["tta"] is True


def test_a_run_with_settings_scores_validation_and_test_with_and_without_flips(
    hc_run: dict,
) -> None:
    import numpy as np
    import torch

    from fetalft.evaluate import evaluate, hc_selection_error_mm
    from fetalft.metrics import summarize
    from fetalft.predict import Predictor

    folder, spec, runner = finished(hc_run), hc_run["spec"], hc_run["runner"]
    metrics = json.loads((folder / "metrics.json").read_text())
    for key in ("test", "val", "val_without_tta", "test_without_tta"):
        assert {"dice", "adf_mm"} <= set(metrics[key]), key
        assert set(metrics[key]["dice"]) == {"mean", "sd", "n", "n_nan"}
    n_val, n_test = metrics["n_val"], metrics["n_test"]
    assert metrics["val"]["dice"]["n"] == metrics["val_without_tta"]["dice"]["n"] == n_val
    assert metrics["test_without_tta"]["dice"]["n"] == n_test == 4

    def same(summary: dict, table) -> None:
        expected = summarize(table).to_dict(orient="index")
        assert set(summary) == set(expected)
        for metric, values in summary.items():
            written = {k: float("nan") if v is None else v for k, v in values.items()}
            assert written == pytest.approx(expected[metric], rel=1e-9, nan_ok=True), metric

    per_image = pd.read_csv(folder / "per_image.csv")
    same(metrics["test"], per_image)

    # the epoch is the one with the smallest validation HC error, failures counted
    history = pd.read_csv(folder / "history.csv").set_index("epoch")
    assert list(history.index) == [1, 2]
    for column in ("val_dice", "val_dice_original", "val_adf_mm", "val_failures"):
        assert column in history
    best = metrics["best_epoch"]
    assert best == history["val_hc_error_mm"].idxmin()
    assert metrics["best_val_dice"] == pytest.approx(history.loc[best, "val_dice"], rel=1e-12)
    assert metrics["best_val_hc_error_mm"] == pytest.approx(
        history.loc[best, "val_hc_error_mm"], rel=1e-9
    )

    # scored again, independently, from the kept weights: with flips and without
    best_path = spec.folder(hc_run["root"] / "checkpoints", runner.profile) / "best.pt"
    assert torch.load(best_path, weights_only=False)["epoch"] == best
    predictor = Predictor.from_checkpoint(best_path, precision="fp32")
    assert predictor.tta is True and predictor.image_size == (64, 96)
    model, rt = predictor.model, predictor.runtime
    test, val = runner.scans(spec, "test"), runner.scans(spec, "val")
    assert {s.image.shape for s in test + val} == {(64, 96)}
    flipped_test = evaluate(model, test, rt, 4, tta=True)
    numeric = [c for c in per_image.columns if c not in ("name", "measurable")]
    np.testing.assert_allclose(
        per_image[numeric].to_numpy(float), flipped_test[numeric].to_numpy(float), rtol=1e-9
    )
    plain_test = evaluate(model, test, rt, 4, tta=False)
    same(metrics["test_without_tta"], plain_test)
    # the flips change the answer, so the comparisons above tell the two apart
    assert not np.allclose(plain_test["pixel_accuracy"], flipped_test["pixel_accuracy"])
    flipped_val = evaluate(model, val, rt, 4, tta=True)
    same(metrics["val"], flipped_val)
    same(metrics["val_without_tta"], evaluate(model, val, rt, 4, tta=False))
    assert hc_selection_error_mm(flipped_val) == pytest.approx(
        metrics["best_val_hc_error_mm"], rel=1e-9
    )
    assert metrics["val"]["dice"]["mean"] == pytest.approx(
        history.loc[best, "val_dice_original"], rel=1e-9
    )


def test_load_results_flattens_the_extra_summaries(hc_run: dict) -> None:
    folder = finished(hc_run)
    metrics = json.loads((folder / "metrics.json").read_text())
    table = load_runs("smoke", hc_run["root"] / "results")
    assert len(table) == 1
    row = table.iloc[0]
    for key in ("val", "val_without_tta", "test_without_tta"):
        for metric in ("dice", "adf_mm", "iou"):
            column = f"{key}_{metric}"
            assert column in table.columns
            expected = metrics[key][metric]["mean"]
            if expected is None:
                assert pd.isna(row[column])
            else:
                assert row[column] == pytest.approx(expected, rel=1e-12)
    assert row["dice"] == pytest.approx(metrics["test"]["dice"]["mean"], rel=1e-12)
    assert row["image_size"] == (64, 96) and isinstance(row["image_size"], tuple)
    assert table["tta"].dtype == bool and table["tta"].tolist() == [True]
    assert row["select_by"] == "hc"
    assert row["best_val_hc_error_mm"] == pytest.approx(metrics["best_val_hc_error_mm"])
    # the run's own settings, hashable: rescore rebuilds the run from them
    recorded = metrics["settings"]
    assert recorded and dict(row["settings"]) == {
        key: tuple(value) if isinstance(value, list) else value for key, value in recorded.items()
    }
    assert not {"val", "val_without_tta", "test_without_tta", "test"} & set(table.columns)

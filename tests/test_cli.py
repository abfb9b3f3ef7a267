"""``python -m fetalft``: strategies, params, split, predict and export."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from fetalft import hc18, paper, settings
from fetalft.__main__ import main
from fetalft.biometry import Measurement, hadlock_ga_weeks
from fetalft.data import load_scans, select_records
from fetalft.ellipse import Ellipse
from fetalft.predict import CheckpointError, Predictor
from fetalft.strategies import STRATEGIES
from fetalft.training import RunConfig, Trainer


@pytest.fixture(scope="module")
def checkpoint(synthetic_hc18: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A best.pt as a study run writes it: decoder-0-4, 32x32, one epoch on synthetic scans."""
    records = hc18.load_records("training", synthetic_hc18)
    train = load_scans(select_records(records, "train", limit=4), 32, progress=False)
    val = load_scans(select_records(records, "val", limit=2), 32, progress=False)
    config = RunConfig(
        "decoder-0-4", epochs=1, image_size=32, batch_size=4, encoder_weights=None, precision="fp32"
    )
    folder = tmp_path_factory.mktemp("run")
    trainer = Trainer(config, train, val, folder, progress=False)
    trainer.fit()
    return trainer.best_path


@pytest.fixture(scope="module")
def scan(synthetic_hc18: Path) -> hc18.Record:
    """A training image whose head is inside the frame, with its reference HC, in the
    weeks Hadlock's formula was fitted on (about 89-358 mm), so predict gives an age."""
    records = hc18.load_records("training", synthetic_hc18)

    def inside(record: hc18.Record) -> bool:
        outline = hc18.read_gray(record.annotation_path) > 0
        return not (outline[[0, -1]].any() or outline[:, [0, -1]].any())

    return next(r for r in records if 100 < r.hc_mm < 300 and inside(r))


def test_strategies_prints_the_registry(capsys) -> None:
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    from fetalft.strategies import registry_table

    assert lines[0].split() == list(registry_table().columns)  # exact list: test_strategies
    assert len(lines) == 1 + len(STRATEGIES)
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(STRATEGIES)
    assert "31,037,633" in rows["baseline"]
    assert re.search(r"\s6,976\s+6,621,969\s+6,628,945\s", rows["decoder-4"])
    # the authors' whole-decoder notebook prints 4,405,073: its head trains
    assert re.search(r"\s4,405,073\s+2,223,872\s", rows["decoder-0-4"])
    assert re.search(r"\s4,405,073\s+2,223,872\s", rows["random-decoder-0-4"])
    assert "decoder 0,1,2" in rows["decoder-0-2"]


def test_strategies_with_trainable_head(capsys) -> None:
    assert main(["strategies", "--head-trainable"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert " 7,121 " in rows["decoder-4"]
    assert "31,037,633" in rows["baseline"]  # the baseline's head always trains


def test_strategies_with_frozen_head(capsys) -> None:
    assert main(["strategies", "--frozen-head"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert " 4,404,928 " in rows["decoder-0-4"]
    assert " 6,976 " in rows["decoder-4"]


def test_params_prints_the_parameter_table(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    # two of the 13 encoders keep this fast; the full table is tested in test_models.py
    subset = {k: paper.PARAMETERS[k] for k in ("mobilenet_v2", "none")}
    monkeypatch.setattr(paper, "PARAMETERS", subset)
    assert main(["params"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:4] == ["encoder_name", "total_M", "decoder_M", "encoder_M"]
    assert lines[1].split() == [
        "mobilenet_v2",
        "6.629",
        "4.405",
        "2.224",
        "6.630",
        "4.406",
        "2.224",
    ]
    assert lines[2].split()[:4] == ["none", "31.038", "12.190", "18.847"]


def test_split_summarises_both_splits(capsys) -> None:
    assert main(["split"]) == 0
    out = capsys.readouterr().out
    exam = next(line for line in out.splitlines() if line.startswith("exam"))
    leaky = next(line for line in out.splitlines() if line.startswith("leaky"))
    assert "'train': 719" in exam and "'val': 80" in exam and "'test': 200" in exam
    assert exam.endswith("exams in both train and test: 0")
    # the leaky split puts scans of one exam on both sides: count them independently, from
    # the committed split table and the exam number in each name ("012_2HC" -> "012")
    from fetalft.split import committed_splits

    table = committed_splits()
    sides = {
        role: {name.split("_")[0] for name in table.loc[table["leaky_split"] == role, "name"]}
        for role in ("train", "test")
    }
    shared = len(sides["train"] & sides["test"])
    assert shared == 56
    assert int(leaky.rsplit(":", 1)[1]) == shared


def test_no_command_is_an_error(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


# -- predict ----------------------------------------------------------------------------------


def predict_args(scan: hc18.Record, checkpoint: Path, overlay: Path) -> list[str]:
    pixel_size = str(scan.pixel_size_mm)
    return [
        "predict",
        str(scan.image_path),
        "--pixel-size",
        pixel_size,
        "--checkpoint",
        str(checkpoint),
        "--overlay",
        str(overlay),
    ]


def test_predict_command_runs_on_a_trained_checkpoint(
    checkpoint: Path, scan: hc18.Record, tmp_path: Path, capsys
) -> None:
    """The real network of a 1-epoch run may not find a head, but the command must finish,
    say what it found and write the overlay."""
    overlay = tmp_path / "out" / "overlay.png"
    code = main(predict_args(scan, checkpoint, overlay))
    out = capsys.readouterr().out
    # what this network finds, asked directly: the command must report exactly that
    image = hc18.read_gray(scan.image_path)
    predictor = Predictor.from_checkpoint(checkpoint, clear_fit=True)  # predict's default fit
    _, found = predictor.measure(image, scan.pixel_size_mm)
    assert code == (0 if found.measurable else 3), out
    assert out.splitlines()[0] == str(found)
    assert ("gestational age" in out) == found.measurable
    assert ("not measurable" in out) == (not found.measurable)
    assert f"overlay written to {overlay}" in out
    picture = cv2.imread(str(overlay))
    assert picture.shape == (*hc18.read_gray(scan.image_path).shape, 3)


def oracle_forward(record: hc18.Record, size: int):
    """A stand-in network output: the reference head mask as logits at the model's size."""
    ellipse = hc18_ellipse(record)
    mask = ellipse.to_mask(hc18.read_gray(record.image_path).shape).astype(np.float32)
    small = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA)
    return lambda self, batch: (small * 20 - 10)[None, None].repeat(len(batch), 0)


def hc18_ellipse(record: hc18.Record):
    from fetalft.biometry import ellipse_from_outline

    return ellipse_from_outline(hc18.read_gray(record.annotation_path))


def test_predict_prints_hc_and_gestational_age_and_draws_the_ellipse(
    checkpoint: Path, scan: hc18.Record, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # the network is replaced by the reference mask at 32x32: what is tested is everything
    # around it (checkpoint loading, resizing to the original size, ellipse, mm, age, PNG)
    monkeypatch.setattr(Predictor, "forward", oracle_forward(scan, 32))
    overlay = tmp_path / "overlay.png"
    code = main(predict_args(scan, checkpoint, overlay))
    out = capsys.readouterr().out
    assert code == 0, out
    match = re.search(r"HC ([\d.]+) mm, gestational age ([\d.]+) weeks", out)
    assert match, out
    hc, ga = float(match[1]), float(match[2])
    assert hc == pytest.approx(scan.hc_mm, rel=0.03)  # a 32x32 mask, scaled back up
    assert ga == pytest.approx(hadlock_ga_weeks(hc), abs=0.06)
    assert "ellipse (mm): centre" in out
    picture = cv2.imread(str(overlay))
    image = hc18.read_gray(scan.image_path)
    assert picture.shape == (*image.shape, 3)
    green = (picture[..., 1] == 255) & (picture[..., 0] == 0) & (picture[..., 2] == 0)
    ellipse = hc18_ellipse(scan)
    ys, xs = np.nonzero(green)
    assert len(xs) > ellipse.perimeter  # a closed outline at least two pixels thick
    # drawn where the head is: the green pixels lie near the reference outline
    assert abs(xs.mean() - ellipse.cx) < 5 and abs(ys.mean() - ellipse.cy) < 5


def test_predict_scales_with_the_pixel_size(
    checkpoint: Path, scan: hc18.Record, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fetalft.predict import predict_file

    monkeypatch.setattr(Predictor, "forward", oracle_forward(scan, 32))
    a = predict_file(scan.image_path, 0.1, checkpoint)
    b = predict_file(scan.image_path, 0.2, checkpoint)
    assert b.hc_mm == pytest.approx(2 * a.hc_mm)


def test_predict_errors(checkpoint: Path, scan: hc18.Record, tmp_path: Path, capsys) -> None:
    image = str(scan.image_path)
    missing = tmp_path / "nothing.pt"
    assert main(["predict", image, "--pixel-size", "0.1", "--checkpoint", str(missing)]) == 2
    assert f"checkpoint {missing} not found" in capsys.readouterr().err
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a fetalft checkpoint"):
        Predictor.from_checkpoint(tmp_path / "other.pt")
    assert main(["predict", image, "--pixel-size", "-1", "--checkpoint", str(checkpoint)]) == 2
    assert "--pixel-size" in capsys.readouterr().err


def test_predict_without_checkpoint_uses_the_best_validation_run(
    checkpoint: Path, scan: hc18.Record, tmp_path: Path, monkeypatch, capsys
) -> None:
    """``--checkpoint`` is optional: the finished run with the best validation Dice is used."""
    import json
    import shutil

    results, checkpoints = tmp_path / "results", tmp_path / "checkpoints"
    monkeypatch.setenv("FETALFT_RESULTS_DIR", str(results))
    monkeypatch.setenv("FETALFT_CHECKPOINT_DIR", str(checkpoints))
    args = ["predict", str(scan.image_path), "--pixel-size", "0.1", "--profile", "smoke"]
    assert main(args) == 2
    assert "no finished smoke-profile run" in capsys.readouterr().err

    labels = {"split": "exam", "train_fraction": 1.0, "head_trainable": False, "test": {}}
    # the best on validation trained on synthetic scans: never taken by default
    for run, dice, data in (
        ("decoder-4", 0.5, "HC18"),
        ("decoder-0-4", 0.9, "HC18"),
        ("decoder-0-1", 0.99, "synthetic"),
    ):
        folder = results / "smoke" / run / "seed-0"
        folder.mkdir(parents=True)
        metrics = {"run": run, "strategy": run, "seed": 0, "best_val_dice": dice, **labels}
        metrics["data"] = data
        (folder / "metrics.json").write_text(json.dumps(metrics))
        best = checkpoints / "smoke" / run / "seed-0" / "best.pt"
        best.parent.mkdir(parents=True)
        shutil.copy(checkpoint, best)
    loaded = []
    real_load = Predictor.from_checkpoint.__func__

    def spy_load(cls, path, *args, **kwargs):
        loaded.append(Path(path))
        return real_load(cls, path, *args, **kwargs)

    monkeypatch.setattr(Predictor, "from_checkpoint", classmethod(spy_load))
    monkeypatch.setattr(Predictor, "forward", oracle_forward(scan, 32))  # finds the head: exit 0
    assert main(args) == 0
    first, second, *_ = capsys.readouterr().out.splitlines()
    assert "decoder-0-4, seed 0, validation Dice 0.9000" in first  # said before measuring
    assert second.startswith("HC ")
    assert loaded == [checkpoints / "smoke" / "decoder-0-4" / "seed-0" / "best.pt"]


def test_predict_exits_3_and_says_so_when_no_head_is_found(
    checkpoint: Path, scan: hc18.Record, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Logits slightly below zero everywhere: no head, exit code 3, no invented HC."""
    monkeypatch.setattr(
        Predictor, "forward", lambda self, batch: np.full((len(batch), 1, 32, 32), -0.2, np.float32)
    )
    overlay = tmp_path / "overlay.png"
    assert main(predict_args(scan, checkpoint, overlay)) == 3
    out = capsys.readouterr().out
    assert out.startswith("not measurable: no head found")
    assert "gestational age" not in out and "ellipse (mm)" not in out
    assert f"overlay written to {overlay}" in out


def test_predictor_restores_the_trained_model(checkpoint: Path) -> None:
    state = torch.load(checkpoint, weights_only=False)
    predictor = Predictor.from_checkpoint(checkpoint, precision="fp32")
    assert predictor.config == RunConfig(**state["config"])
    assert predictor.image_size == 32
    loaded = predictor.model.state_dict()
    assert all(torch.equal(loaded[k].cpu(), v) for k, v in state["model"].items())
    assert not predictor.model.training


# ONNX export through the CLI: see test_export.py (one export there keeps CI fast).


# -- bad input: clear errors, no silent fallbacks, nothing lost ---------------------------------


def no_head(self, batch):
    """A network that finds no head anywhere."""
    return np.full((len(batch), 1, 32, 32), -10.0, np.float32)


def submit_args(synthetic_hc18: Path, checkpoint: Path, output: Path) -> list[str]:
    data = ["--data-dir", str(synthetic_hc18), "--output", str(output)]
    return ["submit", "--checkpoint", str(checkpoint), *data]


def test_submit_refuses_a_model_that_finds_no_head_anywhere(
    synthetic_hc18: Path, checkpoint: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(Predictor, "forward", no_head)
    output = tmp_path / "submission.csv"
    assert main(submit_args(synthetic_hc18, checkpoint, output)) == 2
    (err,) = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert err.startswith("error: the model")  # one line; above it only the progress bar
    assert "measured no plausible head in any of the 6 test images" in err
    assert str(checkpoint) in err and f"nothing written to {output}" in err
    assert not output.exists() and not (tmp_path / "submission.fallbacks.csv").exists()


def test_submit_lists_the_images_given_the_fallback_circle(
    synthetic_hc18: Path,
    checkpoint: Path,
    scan: hc18.Record,
    tmp_path: Path,
    monkeypatch,
    capsys,
) -> None:
    """A head in the first test image only: the file is written, the other five are listed."""
    found = oracle_forward(scan, 32)
    calls = []

    def first_image_only(self, batch):
        calls.append(1)
        return found(self, batch) if len(calls) == 1 else no_head(self, batch)

    monkeypatch.setattr(Predictor, "forward", first_image_only)
    output = tmp_path / "submission.csv"
    assert main(submit_args(synthetic_hc18, checkpoint, output)) == 0
    out = capsys.readouterr().out
    names = [r.image_path.name for r in hc18.load_records("test", synthetic_hc18)]
    assert f"6 rows written to {output}" in out
    assert "no plausible head in 5 image(s)" in out
    sidecar = tmp_path / "submission.fallbacks.csv"
    listed = out.split(f"(listed in {sidecar}):\n")[1].splitlines()
    # one line per fallback row, with the reason the measurement was refused
    assert [line.split(":")[0].strip() for line in listed] == names[1:]
    assert all(line.endswith(": no head found (largest blob 0 pixels)") for line in listed), listed
    assert len(output.read_text().splitlines()) == 7
    # ... and the same list beside the file, which cannot say which of its rows are made up
    beside = pd.read_csv(sidecar)
    assert list(beside.columns) == ["filename", "reason"]
    assert beside["filename"].tolist() == names[1:]
    assert set(beside["reason"]) == {"no head found (largest blob 0 pixels)"}
    # each fallback row is a circle whose perimeter is the median expert HC of the training
    # CSV, read here with pandas rather than through fetalft
    rows = pd.read_csv(output).set_index("filename").loc[names[1:]]
    median = pd.read_csv(synthetic_hc18 / hc18.TRAIN_CSV)["head circumference (mm)"].median()
    assert (rows["semi_axes_a_mm"] == rows["semi_axes_b_mm"]).all()
    assert 2 * math.pi * rows["semi_axes_a_mm"].to_numpy() == pytest.approx(median, abs=1e-5)


def test_submit_leaves_no_old_fallback_list_beside_a_new_file(
    synthetic_hc18: Path, checkpoint: Path, scan: hc18.Record, tmp_path: Path, monkeypatch
) -> None:
    """A list from an earlier submission would name rows that are measured heads now."""
    output = tmp_path / "submission.csv"
    sidecar = tmp_path / "submission.fallbacks.csv"
    sidecar.write_text("filename,reason\n000_HC.png,stale\n")
    measured = {
        r.image_path.name: (Measurement(True, Ellipse(40.0, 30.0, 20.0, 15.0, 0.3), 0.2), (64, 96))
        for r in hc18.load_records("test", synthetic_hc18)
    }
    monkeypatch.setattr("fetalft.predict.predict_test_set", lambda *a, **k: measured)
    assert main(submit_args(synthetic_hc18, checkpoint, output)) == 0
    assert sidecar.read_text().splitlines() == ["filename,reason"]


def test_text_file_as_checkpoint_is_a_one_line_error(
    scan: hc18.Record, tmp_path: Path, capsys
) -> None:
    text = tmp_path / "notes.pt"
    text.write_text("these are my notes, not a model\n")
    args = ["predict", str(scan.image_path), "--pixel-size", "0.1", "--checkpoint", str(text)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f"{text} is not a fetalft checkpoint" in err
    assert "UnpicklingError" in err and "pass --checkpoint with a best.pt" in err
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="EOFError"):
        Predictor.from_checkpoint(tmp_path / "empty.pt")


def test_unexpected_errors_keep_their_traceback(monkeypatch) -> None:
    import fetalft.__main__ as cli

    def out_of_memory(args):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(cli, "_split", out_of_memory)
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        main(["split"])
    monkeypatch.setattr(cli, "_split", lambda args: {}["missing key"])
    with pytest.raises(KeyError):
        main(["split"])


def test_project_errors_are_one_line_with_exit_code_2(monkeypatch, capsys) -> None:
    import fetalft.__main__ as cli
    from fetalft.training import TrainingError

    def diverged(args):
        raise TrainingError("loss became nan; lower the learning rate")

    monkeypatch.setattr(cli, "_split", diverged)  # a project RuntimeError subclass
    assert main(["split"]) == 2
    assert capsys.readouterr().err == "error: loss became nan; lower the learning rate\n"


class RecordingStudy:
    """Stands in for fetalft.study.Study: records the specs it is asked to run."""

    specs: ClassVar[list] = []

    def __init__(self, profile, *args, **kwargs) -> None:
        self.results_dir = Path("results")

    def run_all(self, specs):
        RecordingStudy.specs = list(specs)
        return []


def test_study_trains_a_repeated_seed_once_and_says_so(monkeypatch, capsys) -> None:
    from fetalft import study

    monkeypatch.setattr(study, "Study", RecordingStudy)
    args = ["study", "--profile", "smoke", "--strategies", "decoder-4", "--seeds", "0", "0"]
    assert main(args) == 0
    assert [(s.strategy, s.seed) for s in RecordingStudy.specs] == [("decoder-4", 0)]
    assert "note: seeds 0 0 repeat; each is trained once: 0" in capsys.readouterr().out
    assert main([*args[:-2], "2", "1", "2"]) == 0
    assert [s.seed for s in RecordingStudy.specs] == [2, 1]


@pytest.mark.parametrize("seed", ["-1", "one"])
def test_study_refuses_a_negative_seed_naming_the_option(seed: str, monkeypatch, capsys) -> None:
    from fetalft import study

    monkeypatch.setattr(study, "Study", RecordingStudy)
    RecordingStudy.specs = []
    with pytest.raises(SystemExit) as info:
        main(["study", "--profile", "smoke", "--seeds", "0", seed])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --seeds: seeds are whole numbers >= 0, got '{seed}'" in err
    assert RecordingStudy.specs == []


def subcommand_parsers() -> dict:
    import argparse

    from fetalft.__main__ import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {"": parser, **commands.choices}


def test_every_option_of_every_command_has_help() -> None:
    import argparse

    missing = [
        f"{name or 'fetalft'} {action.dest}"
        for name, parser in subcommand_parsers().items()
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()
    ]
    assert len(subcommand_parsers()) == 10  # fetalft and its nine commands
    assert missing == []


def test_strategies_help_lists_the_valid_names() -> None:
    study = subcommand_parsers()["study"]
    (action,) = [a for a in study._actions if a.dest == "strategies"]
    assert all(name in action.help for name in STRATEGIES)


def test_predict_help_states_the_pixel_size_range_and_exit_codes() -> None:
    text = " ".join(subcommand_parsers()["predict"].format_help().split())
    low, high = hc18.PIXEL_SIZE_RANGE_MM
    assert f"from {low} to {high} mm" in text
    for code, meaning in (("0", "head measured"), ("3", "not measurable"), ("2", "bad input")):
        assert f"{code} {meaning}" in text
    # the plausibility bounds, as the code holds them
    from fetalft.biometry import HC_RANGE_MM

    assert f"HC outside {HC_RANGE_MM[0]:.0f}-{HC_RANGE_MM[1]:.0f} mm" in text
    assert "14-42 weeks Hadlock's formula was fitted on" in text


@pytest.mark.parametrize(
    ("command", "target", "said"),
    [
        (
            ["study", "--profile", "smoke", "--seeds", "1"],
            "fetalft.__main__._study",
            "last finished epoch",
        ),
        (["download", "--data-dir", "somewhere"], "fetalft.download.main", "resumes"),
    ],
    ids=["study", "download"],
)
def test_ctrl_c_says_what_was_kept_and_how_to_resume(
    command: list[str], target: str, said: str, monkeypatch, capsys
) -> None:
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(target, interrupted)
    assert main(command) == 130
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted: ")
    assert said in lines[0]
    assert f"(python -m fetalft {' '.join(command)})" in lines[0]
    assert "Traceback" not in captured.err + captured.out


def test_ctrl_c_elsewhere_is_not_swallowed(monkeypatch) -> None:
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("fetalft.__main__._split", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(["split"])


def test_rescore_of_an_unknown_run_names_it_in_one_line(tmp_path: Path, capsys) -> None:
    args = ["rescore", "--profile", "smoke", "--results-dir", str(tmp_path), "--quiet"]
    assert main([*args, "--runs", "decoder-9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --runs: no finished smoke-profile runs named decoder-9 under")
    assert len(err.splitlines()) == 1


def test_unknown_profile_for_the_default_checkpoint_is_one_line(
    scan: hc18.Record, monkeypatch, capsys
) -> None:
    args = ["predict", str(scan.image_path), "--pixel-size", "0.1", "--profile", "huge"]
    assert main(args) == 2
    assert "unknown profile 'huge'" in capsys.readouterr().err


# -- study --set KEY=VALUE --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("lr=abc", "setting 'lr=abc': lr must be a positive number (1e-4)"),
        ("tta=yes", "setting 'tta=yes': tta must be on or off"),
        ("image_size=256x", "setting 'image_size=256x': image_size must be an int for a square"),
        (
            "foo=1",
            "setting 'foo=1' is not KEY=VALUE with KEY one of image_size, epochs, lr, "
            "warmup_epochs, loss, select_by, tta",
        ),
    ],
)
def test_study_refuses_a_bad_setting_in_one_line(
    setting: str, expected: str, monkeypatch, capsys
) -> None:
    from fetalft import study

    monkeypatch.setattr(study, "Study", RecordingStudy)
    RecordingStudy.specs = []
    args = ["study", "--profile", "smoke", "--strategies", "decoder-4", "--seeds", "0"]
    assert main([*args, "--set", "lr=1e-3", "--set", setting]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert expected in err
    assert RecordingStudy.specs == []  # nothing was started


def test_study_passes_its_settings_to_every_run(monkeypatch, capsys) -> None:
    from fetalft import study

    monkeypatch.setattr(study, "Study", RecordingStudy)
    args = ["study", "--profile", "cpu-hc", "--strategies", "decoder-0-4", "baseline"]
    args += ["--seeds", "0", "--set", "tta=off", "--set", "lr=1e-4", "--set", "image_size=256x384"]
    assert main(args) == 0
    settings = (("image_size", (256, 384)), ("lr", 1e-4), ("tta", False))
    assert [(s.strategy, s.settings) for s in RecordingStudy.specs] == [
        ("decoder-0-4", settings),
        ("baseline", settings),
    ]
    assert RecordingStudy.specs[0].name == "decoder-0-4--image-size-256x384--lr-0.0001--tta-off"
    assert main(args[:8]) == 0  # no --set: the profile's own recipe
    assert [s.settings for s in RecordingStudy.specs] == [(), ()]


def test_study_help_lists_the_settings_and_their_values(capsys) -> None:
    from fetalft.profiles import SETTINGS

    with pytest.raises(SystemExit):
        main(["study", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    assert "--set KEY=VALUE" in out
    for key, choices in SETTINGS.items():
        assert f"{key}: {choices}" in out


@pytest.mark.parametrize(
    ("mask", "said"),
    [
        (Ellipse(400, 6, 230, 5, 0.0), "every pixel of the image is grey level 255"),
        (Ellipse(400, 270, 286, 150, 0.0), "every pixel of the image is grey level 255"),
    ],
    ids=["sliver", "clean-flat-ellipse"],
)
def test_predict_refuses_an_all_white_image_with_exit_code_3(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, mask, said
) -> None:
    """The issue's all-white scan: the network marked a thin band along the top edge and
    predict said "HC 276.2 mm, GA 30.2 weeks"; today's shipped model draws a clean flat
    ellipse there instead (semi-axes 286 x 150 px). Either way: not measurable, exit 3."""
    image = np.full((540, 800), 255, np.uint8)
    path = tmp_path / "white.png"
    cv2.imwrite(str(path), image)
    found = mask.to_mask(image.shape) * 20.0 - 10.0  # the network's logits, stood in
    monkeypatch.setattr(Predictor, "original_logits", lambda self, image: found)
    args = ["predict", str(path), "--pixel-size", "0.15", "--checkpoint", str(checkpoint)]
    assert main(args) == 3
    out = capsys.readouterr().out
    assert out.startswith(f"not measurable: {said}"), out
    assert "HC" not in out and "gestational" not in out


def test_predict_refuses_a_sliver_with_exit_code_3_and_draws_it_in_red(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """On a scan with content, a thin band along the top edge is not a head."""
    image = np.random.default_rng(0).integers(0, 200, (540, 800), dtype=np.uint8)
    path = tmp_path / "speckle.png"
    cv2.imwrite(str(path), image)
    sliver = Ellipse(400, 6, 230, 5, 0.0).to_mask(image.shape)  # the network's mask, stood in
    logits = sliver * 20.0 - 10.0
    monkeypatch.setattr(Predictor, "original_logits", lambda self, image: logits)
    overlay = tmp_path / "overlay.png"
    args = ["predict", str(path), "--pixel-size", "0.15", "--checkpoint", str(checkpoint)]
    assert main([*args, "--overlay", str(overlay)]) == 3
    out = capsys.readouterr().out
    assert out.startswith("not measurable: the ellipse's short axis is 0."), out
    assert "flatter than a head" in out and "HC" not in out and "gestational" not in out
    picture = cv2.imread(str(overlay))
    red = (picture[..., 2] == 255) & (picture[..., 1] == 0) & (picture[..., 0] == 0)
    assert red[:40].sum() > 100 and not red[100:].any()  # the refused band, at the top


def test_predict_refuses_a_pixel_size_that_does_not_fit_the_image(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A 4000x4000 scan at 0.2 mm is 800 mm across: refused before any model runs."""
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), np.zeros((4000, 4000), np.uint8))

    def never(self, batch):
        raise AssertionError("the model must not run")

    monkeypatch.setattr(Predictor, "forward", never)
    args = ["predict", str(path), "--pixel-size", "0.2", "--checkpoint", str(checkpoint)]
    assert main(args) == 3
    out = capsys.readouterr().out
    assert "4000x4000-pixel image at 0.2 mm per pixel would be 800 mm across" in out


def test_predict_reports_hc_but_no_age_outside_hadlock_weeks(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A head of about 60 mm (some 12 weeks, before Hadlock's 14): HC yes, age no, exit 0."""
    head = Ellipse(200, 135, 100, 80, 0.0)  # 566 px around; at 0.1 mm about 57 mm
    path = tmp_path / "small-head.png"
    cv2.imwrite(str(path), head.to_mask((270, 400)) * 200)
    small = cv2.resize(head.to_mask((270, 400)).astype(np.float32), (32, 32), cv2.INTER_AREA)
    monkeypatch.setattr(
        Predictor, "forward", lambda self, b: (small * 20 - 10)[None, None].repeat(len(b), 0)
    )
    args = ["predict", str(path), "--pixel-size", "0.1", "--checkpoint", str(checkpoint)]
    assert main(args) == 0
    out = capsys.readouterr().out
    match = re.match(r"HC ([\d.]+) mm; no gestational age: HC [\d.]+ mm is outside", out)
    assert match, out
    assert float(match[1]) == pytest.approx(head.perimeter * 0.1, rel=0.03)
    assert "14-42 weeks that Hadlock's formula was fitted on" in out


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_study_on_a_data_folder_without_hc18_fails_instead_of_training_on_fake_scans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, folder: str
) -> None:
    given = tmp_path / folder
    if folder == "empty":
        given.mkdir()
    monkeypatch.setenv(settings.DATA_DIR_ENV, str(given))
    out = ["--results-dir", str(tmp_path / "results"), "--checkpoint-dir", str(tmp_path / "ck")]
    args = ["study", "--profile", "smoke", "--strategies", "decoder-4", *out, "--quiet"]
    assert main(args) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith(f"error: HC18 dataset not found in {given}")
    assert "--data-dir synthetic" in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "ck").exists()


# -- issue 17 audit: outputs that would replace an input, and `python -m fetalft` -----------


def _digests(*paths: Path) -> list[bytes]:
    return [path.read_bytes() for path in paths]


def test_predict_refuses_an_overlay_that_would_replace_its_input(
    checkpoint: Path, scan: hc18.Record, tmp_path: Path, capsys
) -> None:
    """Before: --overlay equal to the scan (or the checkpoint) replaced it with the drawing."""
    image = tmp_path / "scan.png"
    image.write_bytes(scan.image_path.read_bytes())
    kept = _digests(image, checkpoint)
    base = ["predict", str(image), "--pixel-size", str(scan.pixel_size_mm)]
    same_image = tmp_path / "." / "scan.png"  # another spelling of the same file
    for overlay, what in ((same_image, "input image"), (checkpoint, "checkpoint")):
        assert main([*base, "--checkpoint", str(checkpoint), "--overlay", str(overlay)]) == 2
        err = capsys.readouterr().err
        assert f"--overlay {overlay} is the {what}" in err and "Choose another" in err
    assert main([*base, "--checkpoint", str(checkpoint), "--overlay", str(tmp_path)]) == 2
    assert f"--overlay {tmp_path} is a folder" in capsys.readouterr().err
    assert _digests(image, checkpoint) == kept


def test_submit_refuses_an_output_that_would_replace_the_data_or_the_model(
    checkpoint: Path, synthetic_hc18: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Before: --output equal to the dataset's test CSV overwrote it with the submission (the
    dataset no longer loaded). Refused before any image is measured."""
    monkeypatch.setattr(
        "fetalft.predict.predict_test_set", lambda *a, **k: pytest.fail("measured anyway")
    )
    test_image = next((synthetic_hc18 / hc18.TEST_DIR).glob("*.png"))
    targets = {
        synthetic_hc18 / hc18.TEST_CSV: "test CSV",
        synthetic_hc18 / hc18.TRAIN_CSV: "training CSV",
        test_image: f"test image {test_image.name}",
        checkpoint: "checkpoint",
    }
    kept = _digests(*targets)
    for output, what in targets.items():
        args = ["submit", "--data-dir", str(synthetic_hc18), "--checkpoint", str(checkpoint)]
        assert main([*args, "--output", str(output)]) == 2
        assert f"--output {output} is the {what}" in capsys.readouterr().err
    assert _digests(*targets) == kept


def test_usage_errors_are_one_line_under_python_dash_m(tmp_path: Path) -> None:
    """Before: `python -m fetalft study --strategies decoder` printed a traceback (exit 1):
    run as a script, the CLI module is ``__main__``, so its UsageError did not look like
    fetalft's own. The tests import it as fetalft.__main__, where it did."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "fetalft", "study", "--profile", "smoke"]
    command += ["--data-dir", "synthetic", "--strategies", "no-such-strategy"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: unknown strategy 'no-such-strategy'; valid strategies:")


# -- issue 17 leftovers: arguments checked before a model is named; one line for a bad image ----


@pytest.mark.parametrize("pixel_size", ["5", "0", "nan"])
def test_predict_checks_the_pixel_size_before_naming_a_model(
    pixel_size: str, scan: hc18.Record, capsys
) -> None:
    """Before: "using the model that ships with fetalft ..." and then the refusal."""
    assert main(["predict", str(scan.image_path), "--pixel-size", pixel_size]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"error: pixel size {float(pixel_size)!r} mm from --pixel-size")


def test_predict_names_no_model_when_the_pixel_size_does_not_fit_the_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Refused without any model (exit 3), so none is announced."""
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), np.zeros((4000, 4000), np.uint8))
    monkeypatch.setattr(Predictor, "from_checkpoint", lambda *a, **k: pytest.fail("loaded"))
    assert main(["predict", str(path), "--pixel-size", "0.2"]) == 3
    out = capsys.readouterr().out
    assert out.startswith("not measurable: a 4000x4000-pixel image at 0.2 mm"), out
    assert "using" not in out


def test_submit_checks_its_output_before_naming_a_model(synthetic_hc18: Path, capsys) -> None:
    output = synthetic_hc18 / hc18.TEST_CSV
    kept = output.read_bytes()
    assert main(["submit", "--data-dir", str(synthetic_hc18), "--output", str(output)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: --output {output} is the test CSV")
    assert output.read_bytes() == kept


def _truncated_png(path: Path) -> None:
    _, encoded = cv2.imencode(".png", np.full((60, 80), 128, np.uint8))
    path.write_bytes(encoded.tobytes()[:40])


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda path: None, "not found; check the path"),
        (lambda path: path.mkdir(), "is a folder; give the path of one PNG file"),
        (lambda path: path.write_text("not a picture"), "missing or not a valid PNG"),
        (_truncated_png, "missing or not a valid PNG"),
    ],
    ids=["missing", "folder", "text", "truncated"],
)
def test_predict_on_an_unreadable_image_says_so_in_one_line_naming_it(
    make, said: str, tmp_path: Path, capfd
) -> None:
    """Before: for a missing file OpenCV first wrote its own "[ WARN:0@...] ... imread_"
    line to stderr (file descriptor 2, hence capfd). The checkpoint is never read."""
    path = tmp_path / "scan.png"
    make(path)
    args = ["predict", str(path), "--pixel-size", "0.1"]
    assert main([*args, "--checkpoint", str(tmp_path / "never-read.pt")]) == 2
    captured = capfd.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("error: ") and str(path) in line and said in line, line


def test_predict_fits_the_clear_outline_unless_told_every(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, soft_sided_head
) -> None:
    """--fit clear (the default) leaves a faint side drawn inside out of the fit; --fit every
    fits it too and measures the head smaller."""
    image = np.random.default_rng(2).integers(0, 200, (400, 400), dtype=np.uint8)
    path = tmp_path / "scan.png"
    cv2.imwrite(str(path), image)
    logits = soft_sided_head((400, 400), (200.0, 200.0), 100.0, 60.0, 20.0)
    monkeypatch.setattr(Predictor, "original_logits", lambda self, image: logits)
    args = ["predict", str(path), "--pixel-size", "0.15", "--checkpoint", str(checkpoint)]
    true_hc = 2 * math.pi * 100.0 * 0.15  # 94.25 mm, by hand

    def printed_hc(extra: list[str]) -> float:
        assert main([*args, *extra]) == 0
        return float(re.match(r"HC ([\d.]+) mm", capsys.readouterr().out).group(1))

    assert printed_hc([]) == pytest.approx(true_hc, abs=0.2)
    assert printed_hc(["--fit", "clear"]) == pytest.approx(true_hc, abs=0.2)
    assert printed_hc(["--fit", "every"]) < 0.99 * true_hc


# -- outputs that cannot be written are refused before any work ----------------------------


def _commands_writing(output: Path, checkpoint: Path, scan: hc18.Record, data: Path):
    """Each command with its output file set to ``output``, as (option, arguments)."""
    model = ["--checkpoint", str(checkpoint)]
    predict = ["predict", str(scan.image_path), "--pixel-size", str(scan.pixel_size_mm), *model]
    submit = ["submit", "--data-dir", str(data), *model]
    return [
        ("--overlay", [*predict, "--overlay", str(output)]),
        ("--output", [*submit, "--output", str(output.with_suffix(".csv"))]),
        ("--output", ["export", *model, "--output", str(output.with_suffix(".onnx"))]),
    ]


def _obstacle(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Path, str]:
    """A place no output can be written below, and the reason a command must give."""
    if kind == "file":
        place = tmp_path / "in-the-way"
        place.write_text("not a folder")
        return place, f"{place} is a file, not a folder"
    place = request.getfixturevalue("locked_folder")
    return place, f"you may not write in {place}"


@pytest.mark.parametrize("kind", ["file", "locked folder"])
def test_outputs_that_cannot_be_written_are_refused_before_any_work(
    kind: str,
    checkpoint: Path,
    scan: hc18.Record,
    synthetic_hc18: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    capsys,
) -> None:
    """Before: ``--overlay notes.txt/overlay.png`` failed only when the overlay was written,
    after the model had measured the scan: a traceback, exit 1, the measurement never
    printed. Now one line, exit 2, no model loaded, nothing written. The nearest existing
    folder decides: the missing ones below it would be made there."""
    place, reason = _obstacle(kind, tmp_path, request)
    monkeypatch.setattr(Predictor, "from_checkpoint", lambda *a, **k: pytest.fail("loaded"))
    for option, args in _commands_writing(
        place / "new" / "out.png", checkpoint, scan, synthetic_hc18
    ):
        assert main(args) == 2, args
        captured = capsys.readouterr()
        assert captured.out == ""
        (line,) = captured.err.splitlines()
        assert line.startswith(f"error: {option} {place}/new/out.")
        assert line.endswith(f"cannot be written: {reason}. Choose another path for {option}.")
    assert not (place / "new").exists()


@pytest.mark.parametrize("name", ["overlay.txt", "overlay.jpg", "overlay"])
def test_predict_refuses_an_overlay_that_is_not_named_png(
    name: str, checkpoint: Path, scan: hc18.Record, tmp_path: Path, capsys
) -> None:
    """Before: ``--overlay overlay.txt`` wrote PNG bytes into a .txt and said it was written."""
    overlay = tmp_path / name
    args = ["predict", str(scan.image_path), "--pixel-size", str(scan.pixel_size_mm)]
    assert main([*args, "--checkpoint", str(checkpoint), "--overlay", str(overlay)]) == 2
    assert capsys.readouterr().err == (
        f"error: --overlay {overlay}: the file written is PNG; give a file name ending in .png.\n"
    )
    assert not overlay.exists()


def test_an_overlay_in_new_folders_is_written_there(
    checkpoint: Path, scan: hc18.Record, tmp_path: Path
) -> None:
    """The check lets through what works: missing folders are made, any case of .png."""
    overlay = tmp_path / "a" / "b" / "Overlay.PNG"
    args = ["predict", str(scan.image_path), "--pixel-size", str(scan.pixel_size_mm)]
    assert main([*args, "--checkpoint", str(checkpoint), "--overlay", str(overlay)]) in (0, 3)
    assert cv2.imread(str(overlay)).shape[:2] == hc18.read_gray(scan.image_path).shape


@pytest.mark.parametrize("option", ["--results-dir", "--checkpoint-dir"])
def test_study_refuses_a_folder_it_cannot_write_before_training(
    option: str, synthetic_hc18: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Before: the run trained, then stopped with a traceback at its first result."""
    from fetalft.study import Study

    monkeypatch.setattr(Study, "__init__", lambda *a, **k: pytest.fail("study started"))
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    args = ["study", "--profile", "smoke", "--data-dir", str(synthetic_hc18)]
    args += ["--strategies", "decoder-0-4", "--seeds", "0", "--results-dir", str(tmp_path / "r")]
    args += ["--checkpoint-dir", str(tmp_path / "c"), option, str(in_the_way / "sub")]
    assert main(args) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(
        f"{in_the_way / 'sub'} cannot be used: {in_the_way} is a file, not a folder. "
        "Choose another folder."
    )
    assert not (tmp_path / "r").exists() and not (tmp_path / "c").exists()


def test_rescore_refuses_a_scores_folder_it_cannot_write(tmp_path: Path, capsys) -> None:
    in_the_way = tmp_path / "checks"  # the scores go to checks/scoring/<profile>
    in_the_way.write_text("")
    assert main(["rescore", "--profile", "smoke", "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"cannot be used: {in_the_way} is a file, not a folder" in err


def test_download_refuses_a_data_folder_that_is_a_file(tmp_path: Path, capsys) -> None:
    """Before: a FileExistsError traceback from mkdir."""
    in_the_way = tmp_path / "hc18"
    in_the_way.write_text("")
    assert (
        main(["download", "--data-dir", str(in_the_way), "--base-url", "http://127.0.0.1:9"]) == 2
    )
    assert capsys.readouterr().err == (
        f"error: cannot put HC18 in {in_the_way}: {in_the_way} is a file, not a folder. "
        "Choose another folder with --data-dir or $FETALFT_DATA_DIR.\n"
    )

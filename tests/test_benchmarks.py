"""The benchmark scripts run end to end on a few images and write what the book reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fetalft import speed

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_speed_records_both_pipelines(tmp_path: Path) -> None:
    output = tmp_path / "train_speed-test.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "train_speed.py"), "--sizes", "32"]
    command += ["--strategies", "decoder-0-4", "--images", "4", "--batches", "1"]
    command += ["--batch-size", "2", "--output", str(output)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, capture_output=True, text=True, env=env, timeout=600)

    result = json.loads(output.read_text())
    assert {row["pipeline"] for row in result["rows"]} == {"authors", "fetalft"}
    for row in result["rows"]:  # the book's s/epoch: the paper's 799 training images
        assert row["epoch_s_799"] == pytest.approx(799 / row["train_img_per_s"], rel=1e-12)
    assert "accuracy" not in result  # only with --accuracy
    (recording,) = speed.recordings("train_speed", tmp_path)
    table = speed.train_table(recording)
    ips = {row["pipeline"]: row["train_img_per_s"] for row in result["rows"]}
    assert table.loc[(32, "decoder-0-4", "fetalft"), "speed-up"] == pytest.approx(
        ips["fetalft"] / ips["authors"], abs=0.005
    )  # shown to two decimals
    assert table.loc[(32, "decoder-0-4", "authors"), "speed-up"] == 1.0
    assert table.loc[(32, "decoder-0-4", "fetalft"), "precision"] in {"fp32", "bf16-autocast"}


def test_short_run_arms_freeze_as_they_say(synthetic_hc18: Path, imagenet_weights: Path) -> None:
    """The authors' arm trains on recalibrated weights (no longer folded, encoder BatchNorm in
    training mode); the folded arm keeps the offline weights as they are; fetalft's freezing
    keeps the encoder's BatchNorm in eval mode."""
    import importlib.util

    from torch import nn

    from fetalft import hc18
    from fetalft.batchnorm import is_folded

    spec = importlib.util.spec_from_file_location("train_speed", ROOT / "benchmarks/train_speed.py")
    train_speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_speed)
    records = hc18.load_records("training", synthetic_hc18)[:4]

    def encoder_bn_training(model: nn.Module) -> set[bool]:
        model.train()
        encoder = model.net.encoder if hasattr(model, "net") else model.encoder
        return {m.training for m in encoder.modules() if isinstance(m, nn.BatchNorm2d)}

    for arm in speed.ACCURACY_ARMS:
        model = train_speed.arm_model(arm, records, str(imagenet_weights), 32)
        encoder = model.net.encoder if hasattr(model, "net") else model.encoder
        assert is_folded(encoder) == (arm != "authors"), arm
        assert encoder_bn_training(model) == {arm.startswith("authors on") or arm == "authors"}
        head = model.net.segmentation_head if hasattr(model, "net") else model.segmentation_head
        assert all(p.requires_grad for p in head.parameters()), arm  # the authors' head trains
    with pytest.raises(ValueError, match="unknown arm"):
        train_speed.arm_model("mine", records, str(imagenet_weights), 32)

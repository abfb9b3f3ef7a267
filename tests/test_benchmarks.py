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
    assert all(row["train_img_per_s"] > 0 for row in result["rows"])
    assert "accuracy" not in result  # only with --accuracy
    (recording,) = speed.recordings("train_speed", tmp_path)
    table = speed.train_table(recording)
    assert table.loc[(32, "decoder-0-4"), "speed-up"] > 0
    assert table.loc[(32, "decoder-0-4"), "fetalft precision"] in {"fp32", "bf16-autocast"}

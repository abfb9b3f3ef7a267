"""The book's speed tables are read from recorded benchmark files, never typed in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fetalft import speed

MACHINE = {"hardware": "CPU: test, 2 threads", "versions": {"torch": "2.x"}, "python": "3.11"}


def train_row(pipeline: str, strategy: str, size: int, ips: float) -> dict:
    return {
        "pipeline": pipeline,
        "strategy": strategy,
        "size": size,
        "precision": "fp32",
        "train_img_per_s": ips,
        "loader_img_per_s": 10 * ips,
        "epoch_s_799": 799 / ips,
        "peak_memory_mb": 1000.0,
    }


def test_missing_benchmark_is_none_with_a_message(tmp_path: Path) -> None:
    assert speed.load("train_speed", tmp_path) is None
    assert "benchmarks/train_speed.py" in speed.missing_message("train_speed")


def test_train_table_pairs_the_two_pipelines(tmp_path: Path) -> None:
    rows = [
        train_row("authors", "decoder-0-4", 256, 2.0),
        train_row("fetalft", "decoder-0-4", 256, 10.0),
        train_row("authors", "baseline", 256, 0.5),
        train_row("fetalft", "baseline", 256, 1.0),
    ]
    (tmp_path / "train_speed.json").write_text(json.dumps({"machine": MACHINE, "rows": rows}))
    result = speed.load("train_speed", tmp_path)
    table = speed.train_table(result)
    assert table.loc[(256, "decoder-0-4"), "speed-up"] == pytest.approx(5.0)
    assert table.loc[(256, "baseline"), "fetalft s/epoch"] == pytest.approx(799.0)
    assert "CPU: test" in speed.machine_label(result)


def test_infer_table_keeps_every_backend() -> None:
    rows = [
        {
            "strategy": "decoder-0-4",
            "backend": b,
            "precision": "fp32",
            "latency_ms": 10.0,
            "peak_memory_mb": 500.0,
            "state_dict_mb": 25.6,
            "onnx_mb": 25.5,
        }
        for b in ("pytorch-fp32", "pytorch-fast", "onnxruntime")
    ]
    table = speed.infer_table({"machine": MACHINE, "rows": rows})
    assert list(table.index.get_level_values("backend")) == [
        "pytorch-fp32",
        "pytorch-fast",
        "onnxruntime",
    ]
    assert table["onnx_mb"].iloc[0] == pytest.approx(25.5)


def speed_result(device: str, hardware: str) -> dict:
    rows = [
        train_row("authors", "decoder-0-4", 512, 1.0),
        train_row("fetalft", "decoder-0-4", 512, 4.0),
        train_row("authors", "baseline", 512, 0.1),
        train_row("fetalft", "baseline", 512, 0.3),
        train_row("authors", "baseline", 256, 1.0),  # other size: ignored
        train_row("fetalft", "baseline", 256, 100.0),
    ]
    return {"machine": {**MACHINE, "device": device, "hardware": hardware}, "rows": rows}


def test_t4_table_projects_the_paper_time_by_the_cpu_speed_up() -> None:
    table = speed.t4_epoch_table(speed_result("cpu", "CPU: test, 2 threads"))
    assert list(table.index) == ["decoder-0-4", "baseline"]
    assert table.loc["decoder-0-4", "paper T4 s/epoch"] == 25.0
    assert table.loc["baseline", "paper T4 s/epoch"] == 75.0
    assert table.loc["decoder-0-4", "fetalft s/epoch"] == pytest.approx(6.2, abs=0.05)  # 25 / 4
    assert table.loc["baseline", "fetalft s/epoch"] == pytest.approx(25.0, abs=0.05)  # 75 / 3
    assert set(table["fetalft figure"]) == {"projected"}
    assert set(table["paper figure"]) == {"measured by the authors, their pipeline"}
    assert "CPU: test" in table.loc["baseline", "basis"]
    assert "512 px" in table.loc["baseline", "basis"]


def test_t4_table_uses_the_measured_epoch_time_on_cuda() -> None:
    table = speed.t4_epoch_table(speed_result("cuda", "Tesla T4"))
    assert set(table["fetalft figure"]) == {"measured"}
    assert table.loc["decoder-0-4", "fetalft s/epoch"] == pytest.approx(799 / 4.0, abs=0.1)
    assert table.loc["baseline", "fetalft s/epoch"] == pytest.approx(799 / 0.3, abs=0.1)
    assert "Tesla T4" in table.loc["baseline", "basis"]

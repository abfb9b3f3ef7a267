"""The book's speed tables are read from recorded benchmark files, never typed in."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
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


def test_missing_benchmark_is_none(tmp_path: Path) -> None:
    assert speed.load("train_speed", tmp_path) is None


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
    assert table.loc[(256, "decoder-0-4", "fetalft"), "speed-up"] == pytest.approx(5.0)
    assert table.loc[(256, "decoder-0-4", "authors"), "speed-up"] == pytest.approx(1.0)
    assert table.loc[(256, "baseline", "fetalft"), "s/epoch"] == 799
    assert table.loc[(256, "baseline", "authors"), "s/epoch"] == 1598
    assert table.loc[(256, "baseline", "fetalft"), "precision"] == "fp32"
    # each pair reads authors first, then fetalft, strategy by strategy
    assert list(table.index)[:2] == [(256, "baseline", "authors"), (256, "baseline", "fetalft")]


def test_train_table_keeps_to_six_columns_of_short_numbers() -> None:
    """The table must fit a book page: six measurements, whole seconds and megabytes."""
    rows = [train_row(p, "encoder", 512, ips) for p, ips in (("authors", 0.7), ("fetalft", 2.3))]
    rows[1]["peak_memory_mb"] = 4501.6
    table = speed.train_table({"machine": MACHINE, "rows": rows})
    assert list(table.columns) == [
        "precision",
        "img/s",
        "speed-up",
        "s/epoch",
        "loader img/s",
        "peak MB",
    ]
    assert table.loc[(512, "encoder", "fetalft"), "peak MB"] == 4502
    assert str(table.loc[(512, "encoder", "fetalft"), "s/epoch"]) == "347"  # 799 / 2.3


def test_recordings_keep_one_file_per_machine_default_first(tmp_path: Path) -> None:
    assert speed.recordings("train_speed", tmp_path) == []
    for name, hardware in (("train_speed-intel", "CPU: Intel"), ("train_speed", "CPU: AMD")):
        machine = {**MACHINE, "hardware": hardware}
        (tmp_path / f"{name}.json").write_text(json.dumps({"machine": machine, "rows": []}))
    (tmp_path / "infer_speed.json").write_text(json.dumps({"machine": MACHINE, "rows": []}))
    found = speed.recordings("train_speed", tmp_path)
    assert [r["file"] for r in found] == ["train_speed.json", "train_speed-intel.json"]
    assert [r["machine"]["hardware"] for r in found] == ["CPU: AMD", "CPU: Intel"]


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


def test_accuracy_table_has_one_row_per_machine_with_a_short_run() -> None:
    older = {"machine": {**MACHINE, "hardware": "CPU: A"}, "rows": []}
    older["accuracy"] = {"setting": "s", "val_dice": {"authors": 0.04, "fetalft": 0.8}}
    newer = {"machine": {**MACHINE, "hardware": "CPU: B"}, "rows": []}
    arms = {"authors": 0.05, "authors with frozen BatchNorm": 0.7, "fetalft": 0.75}
    newer["accuracy"] = {"setting": "s", "weights": "file:w.pth", "val_dice": arms}
    without = {"machine": {**MACHINE, "hardware": "CPU: C"}, "rows": []}
    table = speed.accuracy_table([older, newer, without])
    assert list(table.index) == ["CPU: A", "CPU: B"]
    assert list(table.columns)[-1] == "Dice: fetalft"  # the two authors' arms side by side
    assert table.loc["CPU: B", "Dice: authors with frozen BatchNorm"] == pytest.approx(0.7)
    assert pd.isna(table.loc["CPU: A", "Dice: authors with frozen BatchNorm"])
    assert table.loc["CPU: A", "weights"] == "not recorded"
    assert speed.accuracy_table([without]).empty


def test_accuracy_table_reads_repeats_and_keeps_the_arms_in_reading_order() -> None:
    arms = dict.fromkeys(reversed(speed.ACCURACY_ARMS), 0.5)
    result = {"machine": {**MACHINE, "hardware": "CPU: D"}, "rows": []}
    runs = {arm: [0.4, 0.6, 0.5] for arm in arms}
    result["accuracy"] = {"setting": "s", "val_dice": arms, "val_dice_runs": runs}
    table = speed.accuracy_table([result])
    assert [c for c in table.columns if c.startswith("Dice: ")] == [
        "Dice: authors on folded weights",
        "Dice: authors",
        "Dice: authors with frozen BatchNorm",
        "Dice: fetalft",
    ]
    assert table.loc["CPU: D", "repeats"] == 3


def test_t4_projections_keep_each_machine_apart() -> None:
    slower = speed_result("cpu", "CPU: other, 2 threads")
    slower["rows"][1] = train_row("fetalft", "decoder-0-4", 512, 2.0)  # a 2x speed-up there
    table = speed.t4_projections([speed_result("cpu", "CPU: test, 2 threads"), slower])
    assert table.index.names == ["benchmark machine", "strategy"]
    projected = table["fetalft s/epoch"]
    assert projected[("CPU: test, 2 threads", "decoder-0-4")] == pytest.approx(6.2, abs=0.05)
    assert projected[("CPU: other, 2 threads", "decoder-0-4")] == pytest.approx(12.5, abs=0.05)


def test_t4_table_uses_the_measured_epoch_time_on_cuda() -> None:
    table = speed.t4_epoch_table(speed_result("cuda", "Tesla T4"))
    assert set(table["fetalft figure"]) == {"measured"}
    assert table.loc["decoder-0-4", "fetalft s/epoch"] == pytest.approx(799 / 4.0, abs=0.1)
    assert table.loc["baseline", "fetalft s/epoch"] == pytest.approx(799 / 0.3, abs=0.1)
    assert "Tesla T4" in table.loc["baseline", "basis"]


# --------------------------------------------------------------------------- per strategy


def strategy_row(strategy: str, config_precision: str, ips: float, peak: float) -> dict:
    return {
        "strategy": strategy,
        "config_precision": config_precision,
        "precision": "fp32" if config_precision == "fp32" else "bf16-autocast",
        "train_img_per_s": ips,
        "peak_memory_mb": peak,
        "trainable_parameters": {"baseline": 31_037_633, "decoder-4": 6_976}.get(
            strategy, 4_400_000
        ),
    }


def strategy_result(*strategies: str) -> dict:
    rows = []
    for strategy in strategies:
        rows.append(strategy_row(strategy, "fp32", 2.0, 900.0))
        rows.append(strategy_row(strategy, "auto", 5.0, 800.0))
    return {"machine": MACHINE, "settings": {"image_size": 192}, "rows": rows}


def infer_row(strategy: str, backend: str, latency: float, peak: float, onnx: float) -> dict:
    return {
        "strategy": strategy,
        "backend": backend,
        "precision": "fp32",
        "latency_ms": latency,
        "peak_memory_mb": peak,
        "state_dict_mb": onnx + 0.1,
        "onnx_mb": onnx,
    }


INFERENCE = {
    "machine": MACHINE,
    "settings": {"size": 512, "batch": 1},
    "rows": [
        infer_row("decoder-0-4", "pytorch-fp32", 158.0, 1202.0, 25.5),
        infer_row("decoder-0-4", "onnxruntime", 111.8, 1295.7, 25.48),
        infer_row("baseline", "pytorch-autocast", 2420.0, 1514.0, 118.4),
        infer_row("baseline", "onnxruntime", 1259.9, 2063.0, 118.44),
    ],
}


def test_strategy_table_pairs_fp32_and_autocast_per_strategy() -> None:
    rows = [
        strategy_row("decoder-4", "fp32", 4.0, 1000.4),
        strategy_row("decoder-4", "bf16", 10.0, 900.6),
    ]
    table = speed.strategy_table({"machine": MACHINE, "rows": rows})
    assert list(table.columns) == [
        "trainable (millions)",
        "fp32 img/s",
        "autocast img/s",
        "speed-up",
        "autocast precision",
        "training peak MB",
    ]
    assert table.loc["decoder-4"].to_dict() == {
        "trainable (millions)": 0.007,
        "fp32 img/s": 4.0,
        "autocast img/s": 10.0,
        "speed-up": 2.5,
        "autocast precision": "bf16",
        "training peak MB": 901,
    }


def test_strategy_table_keeps_the_paths_apart_when_both_run_in_fp32() -> None:
    """Recorded with "auto" where auto picks fp32: the asked precision tells the two apart."""
    rows = [
        strategy_row("decoder-4", "fp32", 4.0, 1000.0),
        strategy_row("decoder-4", "auto", 4.4, 990.0),
    ]
    rows[1]["precision"] = "fp32"
    table = speed.strategy_table({"machine": MACHINE, "rows": rows})
    assert table.loc["decoder-4", "speed-up"] == pytest.approx(1.1)
    assert table.loc["decoder-4", "training peak MB"] == 990


def test_strategy_table_follows_the_registry_order() -> None:
    from fetalft.strategies import STRATEGIES

    table = speed.strategy_table(strategy_result("decoder-0-4", "decoder-4", "baseline", "encoder"))
    assert list(table.index) == [
        name for name in STRATEGIES if name in {"decoder-0-4", "decoder-4", "baseline", "encoder"}
    ]
    assert list(table.index) == ["baseline", "encoder", "decoder-4", "decoder-0-4"]


def test_strategy_table_without_inference_has_no_inference_columns() -> None:
    table = speed.strategy_table(strategy_result("decoder-4", "baseline"))
    assert not any("inference" in column or "ONNX" in column for column in table.columns)


def test_strategy_table_maps_each_strategy_to_its_architectures_inference() -> None:
    """Every MobileNetV2 strategy, pretrained or not, ships decoder-0-4's network."""
    table = speed.strategy_table(
        strategy_result("baseline", "random-encoder", "decoder-4", "decoder-0-4"), INFERENCE
    )
    inference = ["ONNX ms", "ONNX peak MB"]
    assert list(table.columns[-3:]) == [*inference, "ONNX file MB"]
    assert table.loc["baseline", inference].tolist() == [1260, 2063]
    assert table.loc["baseline", "ONNX file MB"] == pytest.approx(118.4)
    for name in ("random-encoder", "decoder-4", "decoder-0-4"):
        assert table.loc[name, inference].tolist() == [112, 1296]
        assert table.loc[name, "ONNX file MB"] == pytest.approx(25.5)
    assert table.loc["decoder-4", "autocast img/s"] == 5.0  # training columns untouched


def test_strategy_table_leaves_an_unmeasured_architecture_empty() -> None:
    only_unet = {**INFERENCE, "rows": [r for r in INFERENCE["rows"] if r["strategy"] == "baseline"]}
    table = speed.strategy_table(strategy_result("baseline", "decoder-4"), only_unet)
    assert table.loc["baseline", "ONNX ms"] == 1260
    assert table.loc["decoder-4", ["ONNX ms", "ONNX file MB"]].isna().all()


def test_strategy_speed_is_read_back_like_the_other_benchmarks(tmp_path: Path) -> None:
    (tmp_path / "strategy_speed.json").write_text(json.dumps(strategy_result("decoder-4")))
    result = speed.load("strategy_speed", tmp_path)
    assert speed.strategy_table(result).loc["decoder-4", "speed-up"] == 2.5

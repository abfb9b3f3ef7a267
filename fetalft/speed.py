"""The recorded speed benchmarks, read back for the book.

``benchmarks/train_speed.py``, ``benchmarks/strategy_speed.py`` and
``benchmarks/infer_speed.py`` write their measurements as JSON under ``benchmarks/results/``
together with the machine they ran on. The chapters show
those files and nothing else, so a speed quoted in the book is always one that was measured,
on a named machine; where a file is missing the chapter says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

#: The paper's own epoch times on a Colab T4 (measured by the authors, their pipeline).
#: The arms of train_speed.py's short real run, in reading order: the authors' pipeline on the
#: offline weights' folded BatchNorm (an artefact of those weights), on recalibrated weights
#: (as with smp's real ImageNet weights), with fetalft's freezing only, and fetalft's.
ACCURACY_ARMS = (
    "authors on folded weights",
    "authors",
    "authors with frozen BatchNorm",
    "fetalft",
)
PAPER_T4_EPOCH_SECONDS = {"fine-tuned": 25.0, "baseline": 75.0}


def results_dir(path: str | os.PathLike | None = None) -> Path:
    """``benchmarks/results`` of the repository (or ``path``)."""
    if path is not None:
        return Path(path)
    from fetalft.book import project_root

    return (project_root() or Path.cwd()) / "benchmarks" / "results"


def load(name: str, folder: str | os.PathLike | None = None) -> dict | None:
    """The recorded ``<name>.json`` (``train_speed``, ``strategy_speed`` or ``infer_speed``),
    or ``None``."""
    path = results_dir(folder) / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def recordings(name: str, folder: str | os.PathLike | None = None) -> list[dict]:
    """Every recording of one benchmark: ``<name>.json``, then ``<name>-<machine>.json``.

    A benchmark recorded on several machines keeps one file per machine, because which path
    is fastest depends on the processor (bf16 autocast won on one CPU and lost on another).
    Each result carries its file name under ``"file"``.
    """
    folder = results_dir(folder)
    paths = [folder / f"{name}.json", *sorted(folder.glob(f"{name}-*.json"))]
    return [{**json.loads(path.read_text()), "file": path.name} for path in paths if path.is_file()]


def train_table(result: dict) -> pd.DataFrame:
    """One row per image size, strategy and pipeline: the authors' pipeline above fetalft's.

    The pipelines are rows, not columns, so the table fits a book page (six measurements side
    by side, not twelve); "speed-up" is each pipeline's training img/s over the authors' (1.00
    on the authors' row). Seconds and megabytes are whole numbers: their decimals are noise.
    """
    rows = pd.DataFrame(result["rows"]).set_index(["size", "strategy", "pipeline"]).sort_index()
    authors = rows["train_img_per_s"].xs("authors", level="pipeline")
    per_pair = rows.index.droplevel("pipeline")
    table = pd.DataFrame(
        {
            "precision": rows["precision"],
            "img/s": rows["train_img_per_s"].round(2),
            "speed-up": (rows["train_img_per_s"] / authors.reindex(per_pair).to_numpy()).round(2),
            "s/epoch": whole(rows["epoch_s_799"]),
            "loader img/s": whole(rows["loader_img_per_s"]),
            "peak MB": whole(rows["peak_memory_mb"]),
        }
    )
    return table


def whole(values: pd.Series) -> pd.Series:
    """Rounded to whole numbers, shown without a trailing ".0" (missing values stay missing)."""
    return values.astype(float).round().astype("Int64")


def accuracy_table(results: Sequence[dict]) -> pd.DataFrame:
    """The short real runs of ``train_speed.py --accuracy``: validation Dice per arm and machine.

    Equal speed is worth nothing if accuracy is lost, so the benchmark also trains each
    pipeline briefly on real images. Its arms: the authors' pipeline (on recalibrated
    weights), the same pipeline with only the freezing replaced by fetalft's (frozen
    BatchNorm in eval mode), fetalft's, and the authors' pipeline on the offline weights'
    folded BatchNorm. A cell is the mean over the recording's repeats; arms a recording did
    not run stay empty.
    """
    rows = []
    for result in results:
        accuracy = result.get("accuracy")
        if accuracy:
            runs = accuracy.get("val_dice_runs", {})
            rows.append(
                {
                    "benchmark machine": result["machine"]["hardware"],
                    "setting": accuracy["setting"],
                    "weights": accuracy.get("weights", "not recorded"),
                    "repeats": max((len(values) for values in runs.values()), default=1),
                    **{f"Dice: {arm}": dice for arm, dice in accuracy["val_dice"].items()},
                }
            )
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows).set_index("benchmark machine").round(4)
    arms = [f"Dice: {arm}" for arm in ACCURACY_ARMS]
    return table[
        [c for c in table.columns if not c.startswith("Dice: ")] + [a for a in arms if a in table]
    ]


def t4_projections(results: Sequence[dict], size: int = 512) -> pd.DataFrame:
    """:func:`t4_epoch_table` of every recording, one block per benchmark machine.

    With recordings from several CPUs the projections differ, and the spread between them is
    the honest uncertainty of a projection made on a CPU.
    """
    tables = [t4_epoch_table(result, size) for result in results]
    labels = [result["machine"]["hardware"] for result in results]
    return pd.concat(tables, keys=labels, names=["benchmark machine"])


def t4_epoch_table(result: dict, size: int = 512) -> pd.DataFrame:
    """Per strategy at ``size`` px: the paper's T4 seconds per epoch next to fetalft's.

    The paper's figures were measured by its authors, with their pipeline, on a Colab T4.
    fetalft's is measured only if ``result`` was recorded on a CUDA device (its 799-image
    epoch time); otherwise it is a projection: the paper's T4 time divided by the
    fetalft/authors speed-up measured in ``result``. The projection is only that: the speed-up
    was measured on a CPU (bf16 autocast against fp32) and need not carry over to a GPU with
    fp16 tensor cores, where compute is much faster and data loading weighs more.
    """
    rows = pd.DataFrame(result["rows"])
    rows = rows[rows["size"] == size]
    strategies = list(dict.fromkeys(rows["strategy"]))
    ips = rows.pivot_table(index="strategy", columns="pipeline", values="train_img_per_s")
    epoch = rows.pivot_table(index="strategy", columns="pipeline", values="epoch_s_799")
    machine = result["machine"]
    on_gpu = str(machine.get("device", "")).startswith("cuda")
    paper = pd.Series(
        [
            PAPER_T4_EPOCH_SECONDS["baseline" if s == "baseline" else "fine-tuned"]
            for s in strategies
        ],
        index=strategies,
    )
    if on_gpu:
        fetalft = epoch["fetalft"].reindex(strategies)
        basis = f"measured on {machine['hardware']} at {size} px (799 images at measured img/s)"
    else:
        speed_up = (ips["fetalft"] / ips["authors"]).reindex(strategies)
        fetalft = paper / speed_up
        basis = f"paper's T4 time / speed-up measured on {machine['hardware']} at {size} px"
    table = pd.DataFrame(
        {
            "paper T4 s/epoch": paper,
            "paper figure": "measured by the authors, their pipeline",
            "fetalft s/epoch": fetalft.round(1),
            "fetalft figure": "measured" if on_gpu else "projected",
            "basis": basis,
        }
    )
    table.index.name = "strategy"
    return table


#: ``config_precision`` of plain fp32 in ``strategy_speed`` rows; any other is the autocast one.
FP32 = "fp32"


def strategy_table(result: dict, inference: dict | None = None) -> pd.DataFrame:
    """Per strategy, in registry order: what training it costs and what its model costs to run.

    From ``result`` (``benchmarks/strategy_speed.py``): trainable parameters, training
    images/s in plain fp32 and under autocast (bf16 on a CPU, fp16 on a GPU, named in
    "autocast precision"), the speed-up, and the training process's peak memory under
    autocast: the measurement behind ``precision="auto"`` choosing one or the other. Strategies ``result`` did not measure are left out.

    With ``inference`` (``benchmarks/infer_speed.py``), also ONNX Runtime's latency per
    image ("ONNX ms") and peak memory, and the size of the ONNX file. Headers are short and
    numbers no longer than their precision so the table fits a book page. Those are per architecture, not
    per strategy: freezing decides which weights training changes, not the network that
    ships, so every fine-tuning strategy deploys the same MobileNetV2 U-Net and the baseline
    the from-scratch U-Net. Each strategy gets the ``inference`` row of a strategy with its
    architecture (``Strategy.architecture``); one whose architecture was not measured gets
    empty cells. Inference is measured at its own settings (``inference["settings"]``: the
    paper's 512 x 512 input, one image), not at the training benchmark's image size.
    """
    from fetalft.strategies import STRATEGIES

    rows = pd.DataFrame(result["rows"])
    order = {name: i for i, name in enumerate(STRATEGIES)}
    strategies = sorted(
        dict.fromkeys(rows["strategy"]), key=lambda name: order.get(name, len(order))
    )
    plain = rows["config_precision"] == FP32
    fp32, fast = (part.set_index("strategy") for part in (rows[plain], rows[~plain]))

    def column(frame: pd.DataFrame, name: str) -> pd.Series:
        return frame[name].reindex(strategies)

    params = column(fast, "trainable_parameters").fillna(column(fp32, "trainable_parameters"))
    speed_up = column(fast, "train_img_per_s") / column(fp32, "train_img_per_s")
    table = pd.DataFrame(
        {
            "trainable (millions)": (params.astype(float) / 1e6).round(3),
            "fp32 img/s": column(fp32, "train_img_per_s").astype(float).round(2),
            "autocast img/s": column(fast, "train_img_per_s").astype(float).round(2),
            "speed-up": speed_up.astype(float).round(2),
            # "bf16-autocast" -> "bf16": the column already says autocast (keeps the page width)
            "autocast precision": column(fast, "precision").str.removesuffix("-autocast"),
            "training peak MB": whole(column(fast, "peak_memory_mb")),
        },
        index=pd.Index(strategies, name="strategy"),
    )
    if inference is not None:
        by_architecture = {}
        for row in inference["rows"]:
            if row["backend"] == "onnxruntime" and row["strategy"] in STRATEGIES:
                architecture = STRATEGIES[row["strategy"]].architecture
                by_architecture.setdefault(architecture, row)
        for title, key, digits in (
            ("ONNX ms", "latency_ms", 0),
            ("ONNX peak MB", "peak_memory_mb", 0),
            ("ONNX file MB", "onnx_mb", 1),
        ):
            values = []
            for name in strategies:
                match = by_architecture.get(getattr(STRATEGIES.get(name), "architecture", None))
                values.append(float("nan") if match is None else match[key])
            values = pd.Series(values, index=table.index, dtype=float)
            table[title] = values.round(digits) if digits else whole(values)
    return table

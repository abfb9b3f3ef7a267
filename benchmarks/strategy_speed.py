"""Training cost of every strategy at a profile's image size: plain fp32 against autocast.

The two are fetalft's Trainer with ``precision="fp32"`` and under autocast: bf16 on a CPU
(``precision="bf16"``), fp16 on CUDA (``precision="auto"``). Both train in channels_last
memory, so the speed-up is that of autocast alone; it decides nothing by itself (on a CPU,
``precision="auto"`` times a small decoder step, see :mod:`fetalft.device`) but shows on the
real strategies whether that choice was right. Times whole training epochs (data
augmentation, forward, backward, optimizer step) on synthetic HC18-like scans held in
memory: the median of the timed epochs after one warm-up epoch. Weights are random
(``encoder_weights=None``): speed and memory do not depend on them.

Each strategy and precision runs in its own subprocess so its peak memory is its own: the
peak resident set of that process on a CPU (Python, torch, the scans in memory, the model,
its gradients, optimizer state and activations), allocated memory on a GPU.

    python benchmarks/strategy_speed.py [--profile cpu] [--images 40] [--strategies ...]
    python benchmarks/strategy_speed.py --output benchmarks/results/strategy_speed.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fetalft import hc18
from fetalft.data import load_scans
from fetalft.environment import describe, peak_memory_mb
from fetalft.models import count_parameters
from fetalft.profiles import get_profile
from fetalft.strategies import STRATEGIES, get_strategy
from fetalft.synthetic import write_synthetic_hc18
from fetalft.training import RunConfig, Trainer

#: plain fp32, then autocast: fp16 on CUDA, bf16 on a CPU (even where "auto" picks fp32)
PRECISIONS = ("fp32", "auto" if torch.cuda.is_available() else "bf16")
WARM_UP_EPOCHS = 1
DATA = "synthetic 800x540"


def child(
    strategy: str, precision: str, data: Path, size: int, batch_size: int, repeats: int
) -> dict:
    """Train ``strategy`` on the scans under ``data``; throughput and this process's peak."""
    scans = load_scans(hc18.load_records("training", data), size, progress=False)
    config = RunConfig(
        strategy,
        epochs=repeats + WARM_UP_EPOCHS,
        image_size=size,
        batch_size=batch_size,
        encoder_weights=None,
        precision=precision,
    )
    with tempfile.TemporaryDirectory(prefix="fetalft-strategy-") as folder:
        trainer = Trainer(config, scans, scans[:2], folder, progress=False)
        for _ in range(WARM_UP_EPOCHS):
            trainer.train_epoch()  # allocator, oneDNN kernel selection
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            trainer.train_epoch()
            times.append(time.perf_counter() - started)
    return {
        "strategy": strategy,
        "config_precision": precision,  # as asked: "fp32", "bf16" or "auto"
        "precision": trainer.runtime.precision,  # as run: "fp32", "bf16-autocast", ...
        "train_img_per_s": len(scans) / float(np.median(times)),
        "peak_memory_mb": peak_memory_mb(trainer.runtime.device),
        "trainable_parameters": count_parameters(trainer.model, trainable_only=True),
    }


def measure(args: argparse.Namespace, strategy: str, precision: str, data: Path) -> dict:
    command = [
        *(sys.executable, __file__, "--profile", args.profile),
        *("--strategy", strategy, "--precision", precision, "--data", str(data)),
        *("--repeats", str(args.repeats)),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{strategy} ({precision}) failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--images", type=int, default=40, help="images per timed epoch")
    parser.add_argument(
        "--repeats", type=int, default=2, help="timed epochs per measurement (median)"
    )
    parser.add_argument("--strategies", nargs="*", default=list(STRATEGIES))
    parser.add_argument("--output", default=None, help="also write the table as JSON here")
    parser.add_argument("--strategy", help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    profile = get_profile(args.profile)
    if args.strategy:
        row = child(
            args.strategy,
            args.precision,
            Path(args.data),
            profile.image_size,
            profile.batch_size,
            args.repeats,
        )
        print(json.dumps(row))
        return

    for name in args.strategies:
        get_strategy(name)  # fail on a typo before anything is measured
    rows = []
    with tempfile.TemporaryDirectory(prefix="fetalft-strategy-data-") as folder:
        data = write_synthetic_hc18(
            Path(folder) / "hc18", n_train=args.images, n_test=1, shape=(540, 800)
        )
        for name in args.strategies:
            measured = {p: measure(args, name, p, data) for p in PRECISIONS}
            rows.extend(measured.values())
            fp32, fast = (measured[p] for p in PRECISIONS)
            print(
                f"{name:20s} fp32 {fp32['train_img_per_s']:6.2f} img/s, "
                f"peak {fp32['peak_memory_mb']:5.0f} MB   "
                f"{fast['precision']} {fast['train_img_per_s']:6.2f} img/s, "
                f"peak {fast['peak_memory_mb']:5.0f} MB",
                flush=True,
            )

    from fetalft import speed

    env = describe(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    settings = {
        "profile": profile.name,
        "image_size": profile.image_size,
        "images": args.images,
        "repeats": args.repeats,
        "warm_up_epochs": WARM_UP_EPOCHS,
        "batch": profile.batch_size,
        "data": DATA,
        "weights": "random",
    }
    result = {"machine": env, "settings": settings, "rows": rows}
    print(
        f"\nMachine: {env['hardware']}; torch {env['versions']['torch']}; "
        f"{profile.image_size}x{profile.image_size}, batch {profile.batch_size}, "
        f"{args.images} images ({DATA}); median of {args.repeats} timed epochs after "
        f"{WARM_UP_EPOCHS} warm-up; both channels_last"
    )
    print(speed.strategy_table(result).to_string())
    if args.output:
        from fetalft.io import write_json_atomic

        write_json_atomic(args.output, result)


if __name__ == "__main__":
    main()

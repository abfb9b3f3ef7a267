"""Training throughput of every strategy at a profile's image size: plain fp32 against the fast path.

Times whole training epochs of fetalft's Trainer (data augmentation, forward, backward,
optimizer step) on synthetic HC18-like scans held in memory, after one warm-up epoch.

    python benchmarks/strategy_speed.py [--profile cpu] [--images 40] [--strategies ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pandas as pd
import torch

from fetalft import hc18
from fetalft.data import load_scans
from fetalft.environment import describe
from fetalft.profiles import get_profile
from fetalft.strategies import STRATEGIES
from fetalft.synthetic import write_synthetic_hc18
from fetalft.training import RunConfig, Trainer


def images_per_second(
    strategy: str, scans, size: int, precision: str, batch_size: int, repeats: int
) -> float:
    config = RunConfig(
        strategy,
        epochs=repeats + 1,
        image_size=size,
        batch_size=batch_size,
        encoder_weights=None,
        precision=precision,
    )
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(config, scans, scans[:2], folder, progress=False)
        trainer.train_epoch()  # warm-up: allocator, oneDNN kernel selection
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            trainer.train_epoch()
            times.append(time.perf_counter() - started)
    return len(scans) / float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--images", type=int, default=40, help="images per timed epoch")
    parser.add_argument(
        "--repeats", type=int, default=2, help="timed epochs per measurement (median)"
    )
    parser.add_argument("--strategies", nargs="*", default=list(STRATEGIES))
    args = parser.parse_args()
    profile = get_profile(args.profile)
    with tempfile.TemporaryDirectory() as folder:
        root = write_synthetic_hc18(
            f"{folder}/hc18", n_train=args.images, n_test=1, shape=(540, 800)
        )
        scans = load_scans(hc18.load_records("training", root), profile.image_size, progress=False)
    rows = []
    for name in args.strategies:
        row = {"strategy": name}
        for precision in ("fp32", "auto"):
            row[precision] = images_per_second(
                name, scans, profile.image_size, precision, profile.batch_size, args.repeats
            )
        row["speed-up"] = row["auto"] / row["fp32"]
        rows.append(row)
        print(
            f"{name:20s} fp32 {row['fp32']:6.2f} img/s   fast {row['auto']:6.2f} img/s", flush=True
        )
    table = pd.DataFrame(rows).rename(columns={"fp32": "fp32 img/s", "auto": "fast img/s"})
    env = describe(torch.device("cpu"))
    print(
        f"\nTraining throughput at {profile.image_size}x{profile.image_size}, batch {profile.batch_size} "
        f"({env['hardware']}, torch {env['versions']['torch']}); fast = "
        f"{'bf16' if torch.cpu._is_avx512_bf16_supported() else 'fp32'} autocast + channels_last"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()

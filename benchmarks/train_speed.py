"""Training speed: the authors' pipeline against fetalft's, same data, same machine, one run.

The authors' style (as in their released code): every epoch decodes each PNG and resizes it,
freezing is ``requires_grad=False`` only (BatchNorm of "frozen" layers keeps training), plain
fp32 in the default memory format. fetalft's: images decoded and resized once and kept in
memory, frozen parts really frozen (eval-mode BatchNorm, no autograd state), channels_last,
and ``precision="auto"``: bf16 autocast on a CPU only where it measures faster, fp16 on CUDA.

Each configuration runs in its own subprocess so its peak memory is its own. Seconds per
epoch are for the paper's 799 training images, projected from the measured throughput.

    python benchmarks/train_speed.py [--sizes 256 512] [--strategies decoder-0-4 encoder baseline]
    python benchmarks/train_speed.py --accuracy      # plus a short real run (ACCURACY_ARMS)
    python benchmarks/train_speed.py --accuracy-only --repeats 3 \
        --output benchmarks/results/short_real_run-<machine>.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import torch
from albumentations.pytorch import ToTensorV2

from fetalft import hc18
from fetalft.batchnorm import recalibrate_folded_batchnorm
from fetalft.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ScanDataset,
    load_scans,
    select_records,
    train_transform,
)
from fetalft.device import Runtime
from fetalft.environment import describe, peak_memory_mb
from fetalft.models import build_model, default_encoder_weights, weights_source
from fetalft.paper import TRAIN_IMAGES as PAPER_TRAIN_IMAGES
from fetalft.speed import ACCURACY_ARMS
from fetalft.strategies import get_strategy, model_parts, prepare_model, trainable_parts
from fetalft.synthetic import write_synthetic_hc18
from fetalft.training import validation_dice


class AuthorsDataset(torch.utils.data.Dataset):
    """Decode, squeeze and augment from disk on every access, as the authors' loader did.

    Their filled masks were prepared once as PNG files beforehand; so are these (untimed).
    """

    def __init__(self, records: list[hc18.Record], size: int) -> None:
        from fetalft.biometry import mask_from_outline

        self.records, self.size = records, size
        self.mask_dir = Path(tempfile.mkdtemp(prefix="authors-masks-"))
        for record in records:
            mask = mask_from_outline(hc18.read_gray(record.annotation_path)) * 255
            cv2.imwrite(str(self.mask_dir / f"{record.name}.png"), mask)
        self.transform = A.Compose(
            [
                A.Resize(size, size),
                A.Rotate(limit=25, border_mode=cv2.BORDER_CONSTANT, p=1.0),
                A.HorizontalFlip(p=0.5),
                A.VerticalFlip(p=0.5),
                A.Normalize(IMAGENET_MEAN, IMAGENET_STD),
                ToTensorV2(),
            ]
        )

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        record = self.records[index]
        image = cv2.cvtColor(hc18.read_gray(record.image_path), cv2.COLOR_GRAY2RGB)
        mask = (hc18.read_gray(self.mask_dir / f"{record.name}.png") > 127).astype(np.uint8)
        out = self.transform(image=image, mask=mask)
        return out["image"], out["mask"][None].float()


def authors_model(strategy_name: str, weights: str | None) -> torch.nn.Module:
    """The strategy's network frozen the authors' way: ``requires_grad=False`` and nothing else."""
    strategy = get_strategy(strategy_name)
    net = build_model(strategy.architecture, weights if strategy.pretrained else None)
    keep = trainable_parts(strategy, net)
    for name, part in model_parts(net).items():
        part.requires_grad_(name in keep)
    return net


def setup(pipeline: str, strategy: str, weights: str | None):
    """(runtime, model, input placement) of one pipeline, in training mode."""
    if pipeline == "authors":
        runtime, model = Runtime.choose("fp32"), authors_model(strategy, weights)
        return runtime, model.train(), lambda tensor: tensor  # fp32, default memory format
    runtime = Runtime.choose("auto")
    model = prepare_model(get_strategy(strategy), weights).to(memory_format=torch.channels_last)
    return runtime, model.train(), runtime.to_device


def train_step(model, optimizer, runtime, to_device, images, masks) -> None:
    with runtime.autocast():
        logits = model(to_device(images))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), masks)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def loaders(pipeline: str, records, size: int, batch_size: int):
    if pipeline == "authors":
        dataset = AuthorsDataset(records, size)
    else:
        dataset = ScanDataset(load_scans(records, size, progress=False), train_transform())
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0)
    )


def measure(
    pipeline: str, strategy: str, size: int, records, weights, batches: int, batch_size: int
) -> dict:
    """Throughput of the loader alone and of full training steps, after one warm-up batch."""
    torch.manual_seed(0)
    loader = loaders(pipeline, records, size, batch_size)
    started = time.perf_counter()
    n = sum(len(images) for images, _ in loader)
    loader_ips = n / (time.perf_counter() - started)

    runtime, model, to_device = setup(pipeline, strategy, weights)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    timed, seen, started = 0, 0, None
    while timed < batches:
        for images, masks in loader:
            train_step(model, optimizer, runtime, to_device, images, masks)
            if started is None:  # first batch is warm-up
                started = time.perf_counter()
                continue
            timed, seen = timed + 1, seen + len(images)
            if timed == batches:
                break
    ips = seen / (time.perf_counter() - started)
    return {
        "pipeline": pipeline,
        "strategy": strategy,
        "size": size,
        "precision": runtime.precision,
        "train_img_per_s": ips,
        "loader_img_per_s": loader_ips,
        "epoch_s_799": PAPER_TRAIN_IMAGES / ips,
        "peak_memory_mb": peak_memory_mb(runtime.device),
    }


def arm_model(arm: str, records, weights, size: int) -> torch.nn.Module:
    """decoder-0-4 frozen as ``arm`` does (see :func:`short_real_run`)."""
    if arm in ("authors with frozen BatchNorm", "fetalft"):  # fetalft's freezing
        return prepare_model(get_strategy("decoder-0-4"), weights)
    if arm not in ("authors", "authors on folded weights"):
        raise ValueError(f"unknown arm {arm!r}; choose one of {', '.join(ACCURACY_ARMS)}")
    model = authors_model("decoder-0-4", weights)
    if arm == "authors":
        recalibrate_folded_batchnorm(model.encoder, load_scans(records, size, progress=False))
    return model


def short_real_run(
    arm: str, records, val_records, weights, size: int, epochs: int, seed: int = 0
) -> float:
    """Train decoder-0-4 briefly as ``arm``; validation Dice at ``size``.

    The arms (``fetalft.speed.ACCURACY_ARMS``): the two pipelines, and the authors' pipeline
    with only its freezing replaced by fetalft's (frozen BatchNorm kept in eval mode), which
    isolates the freezing from the data path, precision and memory format. The authors'
    freezing leaves the encoder's BatchNorm in training mode, where the offline weights'
    folded BatchNorm (see fetalft.batchnorm) would normalise the pretrained scale and shift
    away: the "authors" arm trains on recalibrated weights, which behave like smp's real
    ImageNet weights there; the folded arm is kept as a note on the offline weights.

    ``seed`` seeds torch; the authors' augmentations draw from an unseeded generator, as in
    their code, so their arms differ between repeats.
    """
    torch.manual_seed(seed)
    pipeline = "fetalft" if arm == "fetalft" else "authors"
    loader = loaders(pipeline, records, size, 10)
    model = arm_model(arm, records, weights, size)
    runtime = Runtime.choose("auto" if pipeline == "fetalft" else "fp32")
    if pipeline == "fetalft":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    for _ in range(epochs):
        model.train()
        for images, masks in loader:
            train_step(model, optimizer, runtime, runtime.to_device, images, masks)
    return validation_dice(model, load_scans(val_records, size, progress=False), runtime, 10)


def data_records(n: int) -> tuple[list[hc18.Record], str]:
    try:
        root = hc18.find_data_dir()
        return select_records(hc18.load_records("training", root), "train", limit=n), "HC18"
    except hc18.DatasetNotFoundError:
        root = write_synthetic_hc18(
            Path(tempfile.mkdtemp()) / "hc18", n_train=n, n_test=1, shape=(540, 800)
        )
        return hc18.load_records("training", root), "synthetic 800x540"


def child(args: argparse.Namespace) -> None:
    records, _ = data_records(args.images)
    weights = os.environ.get("FETALFT_ENCODER_WEIGHTS")  # speed does not depend on the values
    print(
        json.dumps(
            measure(
                args.pipeline,
                args.strategy,
                args.size,
                records,
                weights,
                args.batches,
                args.batch_size,
            )
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    parser.add_argument("--strategies", nargs="+", default=["decoder-0-4", "encoder", "baseline"])
    parser.add_argument(
        "--images", type=int, default=40, help="training images on disk to cycle through"
    )
    parser.add_argument("--batches", type=int, default=3, help="timed batches per configuration")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument(
        "--accuracy", action="store_true", help="also a short real run of every arm"
    )
    parser.add_argument(
        "--accuracy-only", action="store_true", help="the short real run alone, no speed rows"
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="short real runs per arm (seeds 0, 1, ...)"
    )
    parser.add_argument("--output", default=None, help="also write the tables as JSON here")
    parser.add_argument("--pipeline", help=argparse.SUPPRESS)
    parser.add_argument("--strategy", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pipeline:
        child(args)
        return

    _, source = data_records(1)
    env = describe(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    rows = []
    for size in [] if args.accuracy_only else args.sizes:
        for strategy in args.strategies:
            for pipeline in ("authors", "fetalft"):
                command = [
                    sys.executable,
                    __file__,
                    "--pipeline",
                    pipeline,
                    "--strategy",
                    strategy,
                    "--size",
                    str(size),
                    "--images",
                    str(args.images),
                    "--batches",
                    str(args.batches),
                    "--batch-size",
                    str(args.batch_size),
                ]
                out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
                r = rows[-1]
                print(
                    f"{size}px {strategy:12s} {pipeline:8s} {r['train_img_per_s']:6.2f} img/s "
                    f"(loader alone {r['loader_img_per_s']:7.1f} img/s), peak {r['peak_memory_mb']:.0f} MB",
                    flush=True,
                )
    if rows:
        table = pd.DataFrame(rows)
        wide = table.pivot_table(
            index=["size", "strategy"],
            columns="pipeline",
            values=["train_img_per_s", "epoch_s_799", "loader_img_per_s", "peak_memory_mb"],
        )
        wide[("speed-up", "fetalft/authors")] = (
            wide[("train_img_per_s", "fetalft")] / wide[("train_img_per_s", "authors")]
        )
        print(
            f"\nMachine: {env['hardware']}; torch {env['versions']['torch']}; data: {source}; "
            f"batch {args.batch_size}; {args.batches} timed batches after 1 warm-up; "
            f"epoch_s_799 projected from img/s for 799 images."
        )
        print(wide.round(2).to_string())
    result = {"machine": env, "data": source, "rows": rows}
    if args.accuracy or args.accuracy_only:
        root = hc18.find_data_dir()
        all_records = hc18.load_records("training", root)
        train = select_records(all_records, "train", limit=200)
        val = select_records(all_records, "val")
        weights = default_encoder_weights()  # accuracy needs real ImageNet weights
        runs = {
            arm: [
                short_real_run(arm, train, val, weights, 256, 2, seed)
                for seed in range(args.repeats)
            ]
            for arm in ACCURACY_ARMS
        }
        dice = {arm: float(np.mean(values)) for arm, values in runs.items()}
        print(
            "\nShort real run (decoder-0-4, 200 train images, 2 epochs, 256 px, 80 validation "
            f"images), validation Dice, mean of {args.repeats}: "
            + ", ".join(f"{arm} {value:.4f}" for arm, value in dice.items())
        )
        result["accuracy"] = {
            "setting": "decoder-0-4 (head trains), 200 train, 2 epochs, 256px, exam-split val",
            "weights": weights_source(weights),
            "val_dice": dice,
            "val_dice_runs": runs,
        }
    if args.output:
        from fetalft.io import write_json_atomic

        write_json_atomic(args.output, result)


if __name__ == "__main__":
    main()

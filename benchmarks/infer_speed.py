"""Inference speed and model size: PyTorch fp32, PyTorch under autocast and ONNX Runtime.

For the whole-decoder fine-tuned U-Net (MobileNetV2 encoder) and the from-scratch U-Net, at
the paper's 512x512 input, one image at a time (a scanner measures one frame): median latency
per image, peak memory of the process, and the size of the files a deployment ships (the
fp32 state dict and the ONNX model). Weights are random: latency does not depend on them.

Each configuration runs in its own subprocess so its peak memory is its own.

    python benchmarks/infer_speed.py [--size 512] [--strategies decoder-0-4 baseline]
    python benchmarks/infer_speed.py --output benchmarks/results/infer_speed.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fetalft.device import Runtime
from fetalft.environment import describe, peak_memory_mb
from fetalft.strategies import get_strategy, prepare_model
from fetalft.training import RunConfig

BACKENDS = ("pytorch-fp32", "pytorch-autocast", "onnxruntime")
#: autocast: fp16 on CUDA, bf16 on a CPU (measured even where precision "auto" picks fp32)
AUTOCAST = "auto" if torch.cuda.is_available() else "bf16"


def write_checkpoint(strategy: str, size: int, folder: Path) -> Path:
    """A fetalft checkpoint of a randomly initialised model, as training would write it."""
    torch.manual_seed(0)
    model = prepare_model(get_strategy(strategy), encoder_weights=None)
    path = folder / f"{strategy}.pt"
    config = RunConfig(strategy, image_size=size, encoder_weights=None)
    torch.save({"config": config.as_dict(), "model": model.state_dict()}, path)
    return path


def timed(run, repeats: int) -> float:
    """Median seconds of ``run()`` over ``repeats`` calls, after two warm-up calls."""
    for _ in range(2):
        run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def child(backend: str, checkpoint: Path, size: int, repeats: int) -> dict:
    batch = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    if backend == "onnxruntime":
        from fetalft.export import OnnxPredictor

        predictor = OnnxPredictor(checkpoint.with_suffix(".onnx"))
        precision = "fp32"
    else:
        from fetalft.predict import Predictor

        autocast = backend == "pytorch-autocast"
        predictor = Predictor.from_checkpoint(
            checkpoint, precision=AUTOCAST if autocast else "fp32"
        )
        if not autocast:  # plain PyTorch: default memory format, as a first deployment would be
            predictor.model.to(memory_format=torch.contiguous_format)
            predictor.runtime = Runtime(predictor.runtime.device, None)
        precision = predictor.runtime.precision
    seconds = timed(lambda: predictor.forward(batch), repeats)
    return {
        "backend": backend,
        "precision": precision,
        "latency_ms": 1000 * seconds,
        "peak_memory_mb": peak_memory_mb(torch.device("cpu")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--strategies", nargs="+", default=["decoder-0-4", "baseline"])
    parser.add_argument("--repeats", type=int, default=10, help="timed images per configuration")
    parser.add_argument("--output", default=None, help="also write the table as JSON here")
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend:
        print(json.dumps(child(args.backend, Path(args.checkpoint), args.size, args.repeats)))
        return

    from fetalft.export import export_onnx

    rows = []
    with tempfile.TemporaryDirectory(prefix="fetalft-infer-") as folder:
        for strategy in args.strategies:
            checkpoint = write_checkpoint(strategy, args.size, Path(folder))
            onnx_path = export_onnx(checkpoint)
            state = Path(folder) / f"{strategy}-weights.pt"
            torch.save(torch.load(checkpoint, weights_only=False)["model"], state)
            sizes = {
                "state_dict_mb": state.stat().st_size / 2**20,
                "onnx_mb": onnx_path.stat().st_size / 2**20,
            }
            for backend in BACKENDS:
                command = [
                    *(sys.executable, __file__, "--backend", backend),
                    *("--checkpoint", str(checkpoint), "--size", str(args.size)),
                    *("--repeats", str(args.repeats)),
                ]
                out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                row = {"strategy": strategy, **json.loads(out.strip().splitlines()[-1]), **sizes}
                rows.append(row)
                print(
                    f"{strategy:12s} {backend:13s} {row['latency_ms']:8.1f} ms/image, "
                    f"peak {row['peak_memory_mb']:.0f} MB",
                    flush=True,
                )
    env = describe(torch.device("cpu"))
    table = pd.DataFrame(rows).set_index(["strategy", "backend"])
    print(
        f"\nMachine: {env['hardware']}; torch {env['versions']['torch']}; "
        f"{args.size}x{args.size}, batch 1, median of {args.repeats} after 2 warm-up images"
    )
    print(table.round(1).to_string())
    if args.output:
        from fetalft.io import write_json_atomic

        settings = {"size": args.size, "batch": 1, "repeats": args.repeats, "weights": "random"}
        write_json_atomic(args.output, {"machine": env, "settings": settings, "rows": rows})


if __name__ == "__main__":
    main()

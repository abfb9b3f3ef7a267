"""The model that ships with fetalft: measure a head right after ``pip install``.

``fetalft/model/`` holds the best-on-validation seed of chapter 8's final model
(a slim decoder and the ImageNet encoder trained, profile ``cpu-hc`` at 320 x 480,
:data:`fetalft.recipe.FINAL_RUN`) in half precision (about 8.5 MB), its SHA-256 and a model
card. It is a
checkpoint like any ``best.pt`` (config and weights), so :class:`fetalft.predict.Predictor`
loads it; half precision costs nothing measurable (the tests re-score it on the test split
against the run's recorded Dice).

    FETALFT_CHECKPOINT_DIR=CHECKPOINT_DIR python scripts/ship_model.py
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from fetalft.io import atomic_write

MODEL_DIR = Path(__file__).parent / "model"
MODEL_FILE = MODEL_DIR / "decoder-0-4_cpu-hc.pt"
CHECKSUM_FILE = MODEL_DIR / "decoder-0-4_cpu-hc.pt.sha256"
CARD_FILE = MODEL_DIR / "MODEL_CARD.md"


class ShippedModelError(RuntimeError):
    """The shipped model is missing or is not the file that was shipped."""


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shipped_checkpoint(path: str | os.PathLike = MODEL_FILE) -> Path:
    """The shipped model's path, after checking it against its recorded SHA-256."""
    path = Path(path)
    checksum = path.with_name(path.name + ".sha256")
    if not path.is_file() or not checksum.is_file():
        raise ShippedModelError(
            f"the shipped model {path.name} is not installed; reinstall fetalft, or pass "
            "--checkpoint with a best.pt from a study run."
        )
    expected = (checksum.read_text().split() or [""])[0]
    if sha256(path) != expected:
        raise ShippedModelError(
            f"{path} does not match its SHA-256 in {checksum.name} (a damaged or replaced "
            "file); reinstall fetalft."
        )
    return path


def half_precision_checkpoint(best: dict) -> dict:
    """A ``best.pt`` with its floating-point tensors in fp16 and no machine paths.

    The encoder-weights path only mattered for training, so it becomes ``"imagenet"``.
    """
    model = {
        key: value.half() if value.is_floating_point() else value
        for key, value in best["model"].items()
    }
    config = {**best["config"], "encoder_weights": "imagenet"}
    return {"config": config, "epoch": best["epoch"], "model": model}


def write_shipped_model(best_path: str | os.PathLike, card: str, folder: Path = MODEL_DIR) -> Path:
    """Write the model, its SHA-256 and its card into ``folder``; return the model's path."""
    best = torch.load(best_path, map_location="cpu", weights_only=False)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / MODEL_FILE.name
    with atomic_write(target, "wb") as handle:
        torch.save(half_precision_checkpoint(best), handle)
    with atomic_write(folder / CHECKSUM_FILE.name, "w") as handle:
        handle.write(f"{sha256(target)}  {target.name}\n")
    with atomic_write(folder / CARD_FILE.name, "w") as handle:
        handle.write(card)
    return target

"""Scoring a model the honest way: per image, at the image's original resolution.

The network sees squeezed ``S x S`` images; its logits are resized back to each image's
original ``H x W`` before thresholding, so pixel metrics and head circumference are measured
on the same grid as the expert's annotation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import pandas as pd
import torch
from torch import nn

from fetalft.biometry import Measurement, measure_head
from fetalft.data import Scan, ScanDataset, eval_transform
from fetalft.device import Runtime
from fetalft.ellipse import Ellipse
from fetalft.metrics import challenge_metrics, segmentation_metrics

ELLIPSE_COLUMNS = ("pred_cx", "pred_cy", "pred_a", "pred_b", "pred_angle")

#: How the paper's released code scored its test images: at the squeezed network size,
#: with Dice and IoU pooled over each batch of ten and then averaged over batches.
AUTHORS_BATCH = 10
PROTOCOLS = {
    "original": "original size, per image (fetalft)",
    "network": "network size, per image",
    "authors": f"network size, pooled per batch of {AUTHORS_BATCH} (authors)",
}


@torch.no_grad()
def predict_logits(
    model: nn.Module, scans: Sequence[Scan], runtime: Runtime, batch_size: int = 10
) -> Iterator[tuple[Scan, np.ndarray]]:
    """Yield each scan with its logits at training size, as float32 ``(S, S)``."""
    model.eval()
    loader = torch.utils.data.DataLoader(
        ScanDataset(scans, eval_transform()), batch_size=batch_size
    )
    index = 0
    for images, _ in loader:
        with runtime.autocast():
            logits = model(runtime.to_device(images))
        for row in logits.float().cpu().numpy()[:, 0]:
            yield scans[index], row
            index += 1


def to_original(logits: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize logits to ``(H, W)`` (bilinear) and threshold at 0: the mask at original size."""
    height, width = shape
    return (cv2.resize(logits, (width, height), interpolation=cv2.INTER_LINEAR) > 0).astype(
        np.uint8
    )


def score_scan(scan: Scan, mask: np.ndarray) -> dict:
    """All per-image metrics of one predicted original-size mask against the reference."""
    truth_mask = scan.ellipse.to_mask(scan.original_shape)
    measurement: Measurement = measure_head(mask, scan.pixel_size_mm)
    return {
        "name": scan.name,
        "pixel_size_mm": scan.pixel_size_mm,
        **segmentation_metrics(mask, truth_mask),
        "hc_true_mm": scan.hc_mm,
        "hc_pred_mm": measurement.hc_mm,
        **challenge_metrics(measurement, scan.ellipse, scan.pixel_size_mm, scan.original_shape),
        "measurable": measurement.measurable,
        **ellipse_columns(measurement.ellipse_px),
    }


def ellipse_columns(ellipse: Ellipse | None) -> dict[str, float]:
    """The fitted ellipse (original pixels) as CSV columns, so figures need no model."""
    values = (
        (ellipse.cx, ellipse.cy, ellipse.a, ellipse.b, ellipse.angle) if ellipse else [np.nan] * 5
    )
    return dict(zip(ELLIPSE_COLUMNS, values, strict=True))


def evaluate(
    model: nn.Module, scans: Sequence[Scan], runtime: Runtime, batch_size: int = 10
) -> pd.DataFrame:
    """Per-image metrics table for annotated scans."""
    rows = [
        score_scan(scan, to_original(logits, scan.original_shape))
        for scan, logits in predict_logits(model, scans, runtime, batch_size)
    ]
    return pd.DataFrame(rows)


def protocol_scores(
    model: nn.Module, scans: Sequence[Scan], runtime: Runtime, batch_size: int = 10
) -> pd.DataFrame:
    """The same predictions scored under each of :data:`PROTOCOLS`, one row per protocol.

    Why: the paper's numbers were measured on squeezed masks and pooled over batches, ours
    on each image at its original size. Scoring one model's logits all three ways shows how
    much of a difference between the two tables is the scoring alone. The network-size
    reference is the training mask of each scan (the expert ellipse squeezed like the image).
    """
    original, network, squeezed, references = [], [], [], []
    for scan, logits in predict_logits(model, scans, runtime, batch_size):
        if scan.ellipse is None or scan.mask is None:
            raise ValueError(f"{scan.name} has no annotation; only annotated scans can be scored")
        truth = scan.ellipse.to_mask(scan.original_shape)
        original.append(segmentation_metrics(to_original(logits, scan.original_shape), truth))
        squeezed.append((logits > 0).astype(np.uint8))
        references.append(scan.mask)
        network.append(segmentation_metrics(squeezed[-1], scan.mask))
    pooled = [
        segmentation_metrics(
            np.stack(squeezed[i : i + AUTHORS_BATCH]), np.stack(references[i : i + AUTHORS_BATCH])
        )
        for i in range(0, len(squeezed), AUTHORS_BATCH)
    ]
    rows = [
        {"protocol": PROTOCOLS[key], "n_averaged": len(values), **pd.DataFrame(values).mean()}
        for key, values in (("original", original), ("network", network), ("authors", pooled))
    ]
    return pd.DataFrame(rows)

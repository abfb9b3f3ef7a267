"""Scoring a model the honest way: per image, at the image's original resolution.

The network sees resized images (squeezed to a square in the paper's protocol); its logits
are resized back to each image's original ``H x W`` before thresholding, so pixel metrics and head circumference are measured
on the same grid as the expert's annotation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import pandas as pd
import torch
from torch import nn

from fetalft.biometry import WEAK_EDGE_SHARE, Measurement, measure_head
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


#: Flip test-time augmentation: the image as it is, mirrored left-right and upside down
#: (the flips the training augmentation draws), as tensor dimensions to flip.
TTA_FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,))


def flip_averaged_logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Mean of the logits of each flipped copy, each flipped back to the image's frame.

    Why: a network trained with random flips makes slightly different errors on a scan
    and its mirror images; averaging is meant to even them out where HC is measured. It
    also draws heads smaller: in every run of chapter 8 the flips lowered the mean signed
    HC difference, so whether they help depends on which way a model errs.
    """
    flipped_back = [model(images.flip(dims)).float().flip(dims) for dims in TTA_FLIPS]
    return torch.stack(flipped_back).mean(dim=0)


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    scans: Sequence[Scan],
    runtime: Runtime,
    batch_size: int = 10,
    tta: bool = False,
) -> Iterator[tuple[Scan, np.ndarray]]:
    """Yield each scan with its logits at training size, as float32 ``(H, W)``.

    ``tta`` averages the logits over :data:`TTA_FLIPS` (three forward passes per batch).
    """
    model.eval()
    loader = torch.utils.data.DataLoader(
        ScanDataset(scans, eval_transform()), batch_size=batch_size
    )
    index = 0
    for images, _ in loader:
        with runtime.autocast():
            images = runtime.to_device(images)
            logits = flip_averaged_logits(model, images) if tta else model(images)
        for row in logits.float().cpu().numpy()[:, 0]:
            yield scans[index], row
            index += 1


def original_logits(logits: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Logits resized to the image's original ``(H, W)`` (bilinear)."""
    height, width = shape
    return cv2.resize(logits, (width, height), interpolation=cv2.INTER_LINEAR)


def to_original(logits: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize logits to ``(H, W)`` (bilinear) and threshold at 0: the mask at original size."""
    return (original_logits(logits, shape) > 0).astype(np.uint8)


def score_scan(
    scan: Scan,
    mask: np.ndarray,
    logits: np.ndarray | None = None,
    weak_share: float = WEAK_EDGE_SHARE,
) -> dict:
    """All per-image metrics of one predicted original-size mask against the reference.

    Given the original-size ``logits`` too, the ellipse is fitted to the clear part of the
    outline (:func:`fetalft.biometry.clear_boundary`, leaving out ``weak_share`` of it).
    """
    truth_mask = scan.ellipse.to_mask(scan.original_shape)
    measurement: Measurement = measure_head(mask, scan.pixel_size_mm, logits, weak_share)
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
    model: nn.Module,
    scans: Sequence[Scan],
    runtime: Runtime,
    batch_size: int = 10,
    tta: bool = False,
) -> pd.DataFrame:
    """Per-image metrics table for annotated scans (``tta``: see :func:`predict_logits`)."""
    rows = [
        score_scan(scan, to_original(logits, scan.original_shape))
        for scan, logits in predict_logits(model, scans, runtime, batch_size, tta)
    ]
    return pd.DataFrame(rows)


def hc_selection_error_mm(per_image: pd.DataFrame) -> float:
    """Mean absolute HC error in mm, with a head that cannot be measured counted as its
    whole reference HC (as if the prediction were 0 mm).

    Why: choosing the epoch by the ADF of measurable heads alone would reward an epoch that
    fails on the hardest scans; a failure must cost more than any measurement.
    """
    errors = per_image["adf_mm"].astype(float).fillna(per_image["hc_true_mm"].astype(float))
    return float(errors.mean())


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

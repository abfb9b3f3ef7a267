"""Segmentation and HC18 challenge metrics, per image, named for what they are.

The paper's released code reported "mIoU" that was really the foreground IoU, pooled over
batches of ten at 512x512, and a pixel accuracy dominated by the ~70% background. fetalft
computes every metric per image, at the image's original resolution, and aggregates only
at the end, so mean and spread are over images (or over seeds) and nothing is hidden.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.spatial.distance import directed_hausdorff

from fetalft.biometry import Measurement
from fetalft.ellipse import Ellipse

SEGMENTATION_METRICS = ("pixel_accuracy", "dice", "iou", "miou")
CHALLENGE_METRICS = ("df_mm", "adf_mm", "hausdorff_mm", "ellipse_dice")


def _ratio(numerator: float, denominator: float) -> float:
    """Overlap ratio with the usual convention that two empty masks agree perfectly."""
    return 1.0 if denominator == 0 else numerator / denominator


def segmentation_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Pixel accuracy, Dice, foreground IoU and mIoU (mean of foreground and background IoU)."""
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth shape {truth.shape}")
    p, t = pred > 0, truth > 0
    tp = float(np.count_nonzero(p & t))
    fp = float(np.count_nonzero(p & ~t))
    fn = float(np.count_nonzero(~p & t))
    tn = float(p.size) - tp - fp - fn
    iou_fg = _ratio(tp, tp + fp + fn)
    iou_bg = _ratio(tn, tn + fp + fn)
    return {
        "pixel_accuracy": (tp + tn) / p.size,
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "iou": iou_fg,
        "miou": (iou_fg + iou_bg) / 2,
    }


def hausdorff_mm(pred: Ellipse, truth: Ellipse, n_points: int = 1440) -> float:
    """Symmetric Hausdorff distance between two ellipse outlines (in the ellipses' units)."""
    p, t = pred.points(n_points), truth.points(n_points)
    return max(directed_hausdorff(p, t)[0], directed_hausdorff(t, p)[0])


def ellipse_dice(pred: Ellipse, truth: Ellipse, shape: tuple[int, int]) -> float:
    """Dice of two filled ellipses (pixel units) rasterised on an image of ``shape``."""
    return segmentation_metrics(pred.to_mask(shape), truth.to_mask(shape))["dice"]


def challenge_metrics(
    pred: Measurement, truth: Ellipse, pixel_size_mm: float, shape: tuple[int, int]
) -> dict[str, float]:
    """HC18 challenge metrics of one image: DF and ADF (mm), Hausdorff distance (mm), Dice.

    ``truth`` is the reference ellipse in pixels. A prediction that is not measurable gets
    NaN distances and a Dice of 0, so it counts as a failure rather than disappearing.
    """
    if not pred.measurable:
        nan = math.nan
        return {"df_mm": nan, "adf_mm": nan, "hausdorff_mm": nan, "ellipse_dice": 0.0}
    df = pred.hc_mm - truth.scaled(pixel_size_mm).perimeter
    return {
        "df_mm": df,
        "adf_mm": abs(df),
        "hausdorff_mm": hausdorff_mm(pred.ellipse_px, truth) * pixel_size_mm,
        "ellipse_dice": ellipse_dice(pred.ellipse_px, truth, shape),
    }


def summarize(per_item: pd.DataFrame, columns: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Mean, standard deviation (ddof=1), count and failures of each metric column.

    NaNs (unmeasurable heads) are excluded from mean and sd but reported as ``n_nan``.
    """
    columns = columns or tuple(
        c for c in per_item.columns if c in SEGMENTATION_METRICS + CHALLENGE_METRICS
    )
    rows = {}
    for column in columns:
        values = per_item[column].astype(float)
        rows[column] = {
            "mean": values.mean(),
            "sd": values.std(ddof=1),
            "n": int(values.notna().sum()),
            "n_nan": int(values.isna().sum()),
        }
    return pd.DataFrame.from_dict(rows, orient="index")

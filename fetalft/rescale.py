"""Chapter 8's final model scored again with its predictions averaged over input scales.

``python scripts/multi_scale.py`` (the final run's ``best.pt`` files must be on this machine)

The strong augmentation trains the final model on heads rescaled by 0.8-1.2, so feeding a
scan at several sizes and averaging the answers (multi-scale test-time augmentation) is the
natural next step after the flips. Each validation scan is fed at each of :data:`SCALES`
times the run's input size, each pass flip-averaged as the run was scored; each pass's
logits are resized to the scan's original size, and the average of all passes is
thresholded and fitted as the run was (every point). Only the validation images are
scored: the average was a candidate, judged there, and a candidate's test scores are read
only once it is adopted. Each scale alone is kept too, to show how the outline moves with
the size a head is shown at, and the smallest scale once more pasted into a black canvas of
the run's own input size (:data:`PASTED`): the same pixels of the head, but the input size
the network always trained on, which tells the head's size from the input's. Each seed's
record goes to
``results/checks/multi-scale/<profile>/<run>/seed-<k>/``: ``multi_scale.json`` (labels and
summaries) and ``per_image.csv`` (every validation image, each scale and the average).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fetalft.data import Scan
from fetalft.environment import describe
from fetalft.evaluate import original_logits, predict_logits, score_scan
from fetalft.metrics import summarize
from fetalft.predict import Predictor
from fetalft.profiles import ImageSize, image_shape
from fetalft.refit import record_seeds
from fetalft.rescore import recorded_runtime, recorded_spec
from fetalft.runfiles import CHECKS_DIR, results_root, seed_folder
from fetalft.study import Study

#: The input sizes fed, as multiples of the run's own: the strong augmentation's range.
SCALES = (0.8, 1.0, 1.2)
#: What is recorded: the average of every scale (the candidate), then each scale alone.
AVERAGE = "average"
#: ... and the smallest scale pasted in the middle of a black canvas of the run's input size
#: (not part of the average).
PASTED = f"{SCALES[0]:g} pasted"
MULTI_SCALE_DIR = CHECKS_DIR / "multi-scale"
RECORD_FILE = "multi_scale.json"
PER_IMAGE_FILE = "per_image.csv"
#: MobileNetV2's U-Net halves its input five times, so both sides must be multiples of 32.
STRIDE = 32


def scaled_size(size: ImageSize, scale: float) -> tuple[int, int]:
    """``(height, width)`` of ``size`` times ``scale``; refused unless both are whole
    multiples of 32, so the network sees the scan's own aspect ratio, not a rounded one."""
    scaled = tuple(side * scale for side in image_shape(size))
    if any(abs(side - STRIDE * round(side / STRIDE)) > 1e-6 for side in scaled):
        raise ValueError(
            f"{scale:g} x {image_shape(size)} is {scaled}, not whole multiples of {STRIDE}; "
            "choose a scale that keeps both sides so (0.8 and 1.2 of 320 x 480 do)"
        )
    height, width = (STRIDE * round(side / STRIDE) for side in scaled)
    return height, width


def label(scale: float) -> str:
    """How a scale names its rows and summaries: ``0.8``, ``1``, ``1.2``."""
    return f"{scale:g}"


def score_scales(
    model, scans_by_scale: dict[str, list[Scan]], runtime, batch_size: int, tta: bool
) -> pd.DataFrame:
    """Per-image scores of the average over the scales and of each scale alone, given the
    same images loaded at each scale's input size (keyed by :func:`label`).

    One row per image and ``scales`` label; the ellipse is fitted to every point.
    """
    passes: dict[str, dict[str, np.ndarray]] = {}
    scans = {}
    for scale, sized in scans_by_scale.items():
        for scan, logits in predict_logits(model, sized, runtime, batch_size, tta):
            passes.setdefault(scan.name, {})[scale] = original_logits(logits, scan.original_shape)
            scans[scan.name] = scan  # the expert's ellipse and the pixel size: any size's
    rows = []
    for name, by_scale in passes.items():
        for scales, logits in {
            AVERAGE: np.mean(list(by_scale.values()), axis=0),
            **by_scale,
        }.items():
            mask = (logits > 0).astype(np.uint8)
            rows.append({"scales": scales, **score_scan(scans[name], mask, None)})
    return pd.DataFrame(rows)


def score_pasted(
    model, scans: list[Scan], canvas: ImageSize, runtime, batch_size: int, tta: bool
) -> pd.DataFrame:
    """Per-image scores (``scales`` :data:`PASTED`) of ``scans``, smaller than ``canvas``,
    each fed pasted in the middle of a black image of size ``canvas``; the logits of the
    pasted part alone are resized to the original size and fitted (every point).

    The network sees the head at the scans' size but on the canvas it trained on; the
    strong augmentation's zooming out shows it the same: a smaller scan framed in black.
    """
    height, width = scans[0].image.shape
    canvas_height, canvas_width = image_shape(canvas)
    if height > canvas_height or width > canvas_width:
        raise ValueError(
            f"scans of {height} x {width} do not fit a {canvas_height} x {canvas_width} "
            "canvas; only a smaller scale can be pasted"
        )
    top, left = (canvas_height - height) // 2, (canvas_width - width) // 2
    pasted = []
    for scan in scans:
        image = np.zeros((canvas_height, canvas_width), np.uint8)
        image[top : top + height, left : left + width] = scan.image
        pasted.append(dataclasses.replace(scan, image=image, mask=None))
    rows = []
    for scan, logits in predict_logits(model, pasted, runtime, batch_size, tta):
        own = original_logits(logits[top : top + height, left : left + width], scan.original_shape)
        rows.append({"scales": PASTED, **score_scan(scan, (own > 0).astype(np.uint8), None)})
    return pd.DataFrame(rows)


def rescale_run(row, checkpoint: Path, study: Study) -> tuple[dict, pd.DataFrame]:
    """One finished run (a row of :func:`load_runs`) scored at each scale, labelled."""
    spec = recorded_spec(row)
    predictor = Predictor.from_checkpoint(checkpoint)
    runtime = recorded_runtime(predictor.runtime, row.precision)
    size = study.recipe(spec).image_size
    tta = bool(getattr(row, "tta", False))
    scans = {label(s): study.scans(spec, "val", scaled_size(size, s)) for s in SCALES}
    batch_size = study.profile.batch_size
    per_image = pd.concat(
        [
            score_scales(predictor.model, scans, runtime, batch_size, tta),
            score_pasted(predictor.model, scans[label(SCALES[0])], size, runtime, batch_size, tta),
        ],
        ignore_index=True,
    )
    record = {
        "run": row.run,
        "seed": int(row.seed),
        "profile": study.profile.name,
        "split": row.split,
        "input_sizes": {
            **{label(scale): scaled_size(size, scale) for scale in SCALES},
            PASTED: image_shape(size),
        },
        "flips": tta,
        "recorded_val_adf_mm": row.val_adf_mm,
        "hardware": describe(runtime.device)["hardware"],
        "precision": runtime.precision,
        "val": {
            scales: summarize(group.drop(columns="scales")).to_dict(orient="index")
            for scales, group in per_image.groupby("scales", sort=False)
        },
    }
    return record, per_image


def multi_scale_folder(
    profile: str, run: str, seed: int, *, results_dir: str | os.PathLike | None = None
) -> Path:
    """Where one seed's multi-scale record goes."""
    return seed_folder(results_root(results_dir) / MULTI_SCALE_DIR, profile, run, seed)


def rescale_runs(run: str, **options: Any) -> tuple[list[Path], list[int]]:
    """Score every finished seed of ``run`` whose ``best.pt`` is here at each scale; a seed
    already scored is kept (an interrupted call carries on). Returns the records and the
    seeds skipped for want of a checkpoint. ``options``: the profile and folders of
    :func:`fetalft.refit.record_seeds`."""
    return record_seeds(run, rescale_run, MULTI_SCALE_DIR, (RECORD_FILE, PER_IMAGE_FILE), **options)


def load_multi_scale(
    profile: str, run: str, *, results_dir: str | os.PathLike | None = None
) -> pd.DataFrame:
    """Every scored seed's validation images, with ``seed`` and ``scales`` columns (empty
    when none was scored)."""
    root = multi_scale_folder(profile, run, 0, results_dir=results_dir).parent
    tables = [
        pd.read_csv(path, dtype={"scales": str}).assign(
            seed=json.loads((path.parent / RECORD_FILE).read_text())["seed"]
        )
        for path in sorted(root.glob(f"seed-*/{PER_IMAGE_FILE}"))
    ]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def scale_table(images: pd.DataFrame) -> pd.DataFrame:
    """One row per input scale, the smallest pasted, and their average, as far as recorded
    (:func:`load_multi_scale`'s images): the validation Dice (%), ADF and mean signed HC
    difference, each the mean of the seeds' means, and the images left unmeasured, summed
    over the seeds."""
    per_seed = images.groupby(["scales", "seed"]).agg(
        dice=("dice", "mean"),
        adf=("adf_mm", "mean"),
        df=("df_mm", "mean"),
        failures=("adf_mm", lambda errors: int(errors.isna().sum())),
    )
    table = per_seed.groupby("scales").agg(
        dice=("dice", "mean"), adf=("adf", "mean"), df=("df", "mean"), failures=("failures", "sum")
    )
    table["dice"] *= 100
    order = [label(SCALES[0]), PASTED, *(label(scale) for scale in SCALES[1:]), AVERAGE]
    return table.reindex([row for row in order if row in table.index]).rename(
        columns={
            "dice": "val Dice (%)",
            "adf": "val ADF (mm)",
            "df": "mean signed difference (mm)",
            "failures": "failures",
        }
    )

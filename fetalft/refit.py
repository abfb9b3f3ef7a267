"""Chapter 8's final model scored again, with the ellipse fitted to the clear outline only.

``python scripts/refit_clear.py`` (the final run's ``best.pt`` files must be on this machine)

The same network, the same predictions (with the run's flips); only the ellipse fit
changes: it leaves out the share of the outline where the network's edge is weakest
(:func:`fetalft.biometry.clear_boundary`). The validation images are scored for every share
in :data:`SHARES`, to choose one; the test images only for no share (the recorded fit,
which must reproduce the run's test scores) and the chosen
:data:`fetalft.biometry.WEAK_EDGE_SHARE`. Each seed's record goes to
``results/checks/clear-fit/<profile>/<run>/seed-<k>/``: ``clear_fit.json`` (labels and
summaries) and ``per_image.csv`` (every image of both splits, both fits).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from fetalft.biometry import WEAK_EDGE_SHARE
from fetalft.environment import describe
from fetalft.evaluate import original_logits, predict_logits, score_scan
from fetalft.io import write_csv_atomic, write_json_atomic
from fetalft.metrics import summarize
from fetalft.predict import Predictor
from fetalft.profiles import get_profile
from fetalft.rescore import recorded_runtime, recorded_spec
from fetalft.runfiles import (
    CHECKS_DIR,
    checkpoint_path,
    checkpoints_root,
    load_runs,
    results_root,
    seed_folder,
)
from fetalft.study import Study

#: The shares of the outline left out that the validation images compare (0: every point).
SHARES = (0.0, 0.2, 0.35, 0.5)
REFIT_DIR = CHECKS_DIR / "clear-fit"
RECORD_FILE = "clear_fit.json"
PER_IMAGE_FILE = "per_image.csv"


class RunNotFinished(ValueError):
    """The run asked for has no finished seed in the results folder (not trained, not
    committed, or still training)."""


def refit_folder(
    profile: str, run: str, seed: int, *, results_dir: str | os.PathLike | None = None
) -> Path:
    """Where one seed's re-fitted record goes."""
    return seed_folder(results_root(results_dir) / REFIT_DIR, profile, run, seed)


def score_shares(
    model, scans, runtime, batch_size: int, shares: tuple[float, ...], tta: bool
) -> pd.DataFrame:
    """Per-image scores of one prediction per scan, fitted with each share.

    One row per scan and share; the network runs once per scan whatever the shares.
    """
    rows = []
    for scan, logits in predict_logits(model, scans, runtime, batch_size, tta):
        original = original_logits(logits, scan.original_shape)
        mask = (original > 0).astype(np.uint8)
        for share in shares:
            clear = original if share else None
            rows.append({"share": share, **score_scan(scan, mask, clear, share or WEAK_EDGE_SHARE)})
    return pd.DataFrame(rows)


def refit_run(row, checkpoint: Path, study: Study) -> tuple[dict, pd.DataFrame]:
    """One finished run (a row of :func:`load_runs`) re-scored with each fit, labelled."""
    spec = recorded_spec(row)
    predictor = Predictor.from_checkpoint(checkpoint)
    runtime = recorded_runtime(predictor.runtime, row.precision)
    batch, tta = study.profile.batch_size, bool(getattr(row, "tta", False))
    shares = {"val": SHARES, "test": (0.0, WEAK_EDGE_SHARE)}
    per_split = {
        split: score_shares(predictor.model, study.scans(spec, split), runtime, batch, s, tta)
        for split, s in shares.items()
    }
    summaries = {
        split: {
            f"{share:g}": summarize(group.drop(columns="share")).to_dict(orient="index")
            for share, group in table.groupby("share")
        }
        for split, table in per_split.items()
    }
    record = {
        "run": row.run,
        "seed": int(row.seed),
        "profile": study.profile.name,
        "split": row.split,
        "chosen_share": WEAK_EDGE_SHARE,
        "recorded_test_adf_mm": row.adf_mm,
        "recorded_test_dice": row.dice,
        "hardware": describe(runtime.device)["hardware"],
        "precision": runtime.precision,
        **summaries,
    }
    per_image = pd.concat([t.assign(role=split) for split, t in per_split.items()])
    return record, per_image


def refit_runs(run: str, **options: Any) -> tuple[list[Path], list[int]]:
    """Re-score every finished seed of ``run`` whose ``best.pt`` is here; a seed already
    re-scored is kept (an interrupted call carries on). Returns the records and the seeds
    skipped for want of a checkpoint. ``options``: the profile and folders of
    :func:`record_seeds`."""
    return record_seeds(run, refit_run, REFIT_DIR, (RECORD_FILE, PER_IMAGE_FILE), **options)


def record_seeds(
    run: str,
    score: Callable[[object, Path, Study], tuple[dict, pd.DataFrame]],
    records_dir: Path,
    files: tuple[str, str],
    *,
    profile: str = "cpu-hc",
    results_dir: str | os.PathLike | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[list[Path], list[int]]:
    """Score every finished seed of ``run`` whose ``best.pt`` is here with ``score`` (a
    row of :func:`load_runs`, its checkpoint and a study -> a record and its images) and
    write both under ``files`` (record, per-image table) to the seed's folder of
    ``records_dir`` in the results folder. A seed already recorded is kept, so an
    interrupted call carries on. Returns the records and the seeds skipped for want of a
    checkpoint."""
    recorded = load_runs(profile, results_dir)
    recorded = recorded[recorded["run"] == run] if len(recorded) else recorded
    if recorded.empty:
        raise RunNotFinished(
            f"no finished {profile} run named {run} under {results_root(results_dir) / profile}"
        )
    record_file, per_image_file = files
    study, written, skipped = None, [], []
    for row in tqdm(list(recorded.itertuples(index=False)), "re-scoring", disable=not progress):
        seed_dir = seed_folder(results_root(results_dir) / records_dir, profile, run, row.seed)
        checkpoint = checkpoint_path(profile, run, row.seed, checkpoint_dir=checkpoint_dir)
        if not (seed_dir / record_file).is_file():
            if not checkpoint.is_file():
                skipped.append(int(row.seed))
                continue
            study = study or Study(
                get_profile(profile),
                data_dir=data_dir,
                results_dir=results_dir,
                checkpoint_dir=checkpoints_root(checkpoint_dir),
                encoder_weights="random",  # the checkpoint holds every weight
                progress=progress,
            )
            record, per_image = score(row, checkpoint, study)
            write_csv_atomic(seed_dir / per_image_file, per_image)
            write_json_atomic(seed_dir / record_file, record)
        written.append(seed_dir / record_file)
    return written, skipped


def load_refits(
    profile: str, run: str, *, results_dir: str | os.PathLike | None = None
) -> pd.DataFrame:
    """One row per re-fitted seed, split and share: Dice, ADF, DF and failures (empty when
    nothing was re-fitted)."""
    rows = []
    root = refit_folder(profile, run, 0, results_dir=results_dir).parent
    for path in sorted(root.glob(f"seed-*/{RECORD_FILE}")):
        record = json.loads(path.read_text())
        for split in ("val", "test"):
            for share, metrics in record[split].items():
                rows.append(
                    {
                        "seed": record["seed"],
                        "split": split,
                        "share": float(share),
                        "dice": metrics["dice"]["mean"],
                        "adf_mm": metrics["adf_mm"]["mean"],
                        "df_mm": metrics["df_mm"]["mean"],
                        "failures": metrics["adf_mm"]["n_nan"],
                    }
                )
    return pd.DataFrame(rows)


def load_refit_images(
    profile: str, run: str, *, results_dir: str | os.PathLike | None = None
) -> pd.DataFrame:
    """Every re-fitted seed's ``per_image.csv``, with a ``seed`` column (empty when none)."""
    root = refit_folder(profile, run, 0, results_dir=results_dir).parent
    tables = [
        pd.read_csv(path).assign(seed=json.loads((path.parent / RECORD_FILE).read_text())["seed"])
        for path in sorted(root.glob(f"seed-*/{PER_IMAGE_FILE}"))
    ]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def recorded_fit(
    profile: str,
    run: str,
    role: str = "val",
    seed: int = 0,
    *,
    results_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """One seed's images of one split scored with the run's own fit (share 0): the
    validation scores image by image, which a run's files keep only as a summary (empty
    when the seed was not re-fitted). Reads that seed's record only."""
    path = refit_folder(profile, run, seed, results_dir=results_dir) / PER_IMAGE_FILE
    if not path.is_file():
        return pd.DataFrame()
    images = pd.read_csv(path)
    chosen = (images["role"] == role) & (images["share"] == 0)
    return images[chosen].assign(seed=seed).reset_index(drop=True)

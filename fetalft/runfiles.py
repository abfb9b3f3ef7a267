"""Where a run's records live, and how to read them back: the one owner of the folder layout.

::

    <results>/<profile>/<run>/seed-<k>/            metrics.json, per_image.csv,
                                                   history.csv, environment.json
    <checkpoints>/<profile>/<run>/seed-<k>/        best.pt (and last.pt while training)
    <results>/checks/scoring/<profile>/<run>/seed-<k>/scoring.json    (``rescore``)
    <results>/checks/<name>/<profile>/...          re-runs under other labels (chapter 7)

``<results>`` is ``$FETALFT_RESULTS_DIR`` or ``results/``, ``<checkpoints>``
``$FETALFT_CHECKPOINT_DIR`` or ``checkpoints/``. A run folder appears only once all its
records are written (:class:`fetalft.study.Study`), so a folder with ``metrics.json`` is a
finished run. Every other module builds these paths through the functions here, so the
layout can change in one place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from fetalft import settings

METRICS_FILE = "metrics.json"
PER_IMAGE_FILE = "per_image.csv"
HISTORY_FILE = "history.csv"
ENVIRONMENT_FILE = "environment.json"
BEST_CHECKPOINT = "best.pt"
#: The resumable state of an unfinished run (deleted once the run is finished).
LAST_CHECKPOINT = "last.pt"
#: Checks of the study kept apart from it, so that no chapter table counts them twice.
CHECKS_DIR = Path("checks")
SCORING_DIR = CHECKS_DIR / "scoring"
SCORING_FILE = "scoring.json"
#: Summaries a run's metrics.json may hold beside "test" (see :meth:`fetalft.study.Study.run`).
EXTRA_SCORES = ("val", "val_without_tta", "test_without_tta")
_SEED_PREFIX = "seed-"


def results_root(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$FETALFT_RESULTS_DIR``, else ``results`` (of the working folder)."""
    return Path(path or settings.current().results_dir or "results")


def checkpoints_root(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$FETALFT_CHECKPOINT_DIR``, else ``checkpoints``."""
    return Path(path or settings.current().checkpoint_dir or "checkpoints")


def seed_folder(root: str | os.PathLike, profile: str, run: str, seed: int) -> Path:
    """``<root>/<profile>/<run>/seed-<k>``: the same shape for results, checkpoints and scores."""
    return Path(root) / profile / run / f"{_SEED_PREFIX}{seed}"


def seed_of(folder: Path) -> int:
    """The seed of a ``seed-<k>`` folder."""
    return int(folder.name.removeprefix(_SEED_PREFIX))


def run_folder(
    profile: str, run: str, seed: int, *, results_dir: str | os.PathLike | None = None
) -> Path:
    """The folder of one finished run's records."""
    return seed_folder(results_root(results_dir), profile, run, seed)


def is_finished(folder: Path) -> bool:
    """Whether a run folder holds a finished run (its metrics are written last)."""
    return (folder / METRICS_FILE).is_file()


def checkpoint_path(
    profile: str, run: str, seed: int, *, checkpoint_dir: str | os.PathLike | None = None
) -> Path:
    """A run's ``best.pt``: the weights of its best validation epoch (not committed)."""
    return seed_folder(checkpoints_root(checkpoint_dir), profile, run, seed) / BEST_CHECKPOINT


def checks_folder(name: str, *, results_dir: str | os.PathLike | None = None) -> Path:
    """``<results>/checks/<name>``: a results folder of its own for re-runs of finished runs
    under other labels (``checks_folder("precision")``), read with :func:`load_runs`."""
    return results_root(results_dir) / CHECKS_DIR / name


def scoring_root(profile: str, *, results_dir: str | os.PathLike | None = None) -> Path:
    """Where ``rescore`` writes a profile's re-scored runs."""
    return results_root(results_dir) / SCORING_DIR / profile


def scoring_path(
    profile: str, run: str, seed: int, *, results_dir: str | os.PathLike | None = None
) -> Path:
    """One re-scored run's ``scoring.json``."""
    return seed_folder(results_root(results_dir) / SCORING_DIR, profile, run, seed) / SCORING_FILE


def scoring_files(profile: str, *, results_dir: str | os.PathLike | None = None) -> list[Path]:
    """Every ``scoring.json`` of a profile's re-scored runs, in run and seed order."""
    return sorted(scoring_root(profile, results_dir=results_dir).glob(f"*/*/{SCORING_FILE}"))


def load_runs(profile: str, results_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per finished run of ``profile``: its labels and the test mean of every metric
    (empty frame when there are none), sorted by run and seed.

    The validation summaries and those without flips (:data:`EXTRA_SCORES`) are columns
    prefixed with their key (``val_dice``). Metric columns are floats: a ``null`` mean (no
    measurable image) is NaN, also when every run has ``null`` there.
    """
    rows, metric_columns = [], set()
    folders = (results_root(results_dir) / profile).glob(f"*/{_SEED_PREFIX}*/{METRICS_FILE}")
    for path in sorted(folders):
        metrics = json.loads(path.read_text())
        test = metrics.pop("test")
        metrics.update({name: values["mean"] for name, values in test.items()})
        metric_columns |= set(test)
        for key in EXTRA_SCORES:
            for name, values in metrics.pop(key, {}).items():
                metrics[f"{key}_{name}"] = values["mean"]
        # Hashable, so the column groups and compares; a list value (HEIGHTxWIDTH) as a tuple.
        metrics["settings"] = tuple(
            sorted(
                (key, tuple(v) if isinstance(v, list) else v)
                for key, v in metrics.get("settings", {}).items()
            )
        )
        if isinstance(metrics.get("image_size"), list):  # (height, width) in JSON
            metrics["image_size"] = tuple(metrics["image_size"])
        rows.append(metrics)
    runs = pd.DataFrame(rows)
    if runs.empty:
        return runs
    runs = runs.astype(dict.fromkeys(sorted(metric_columns), float))
    return runs.sort_values(["run", "seed"], ignore_index=True)


def load_per_image(
    profile: str,
    run: str,
    seeds: Iterable[int] | None = None,
    *,
    results_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Every test image of a run, one row per image and seed (column ``seed``); all finished
    seeds unless ``seeds`` names some."""
    base = results_root(results_dir) / profile / run
    folders = (
        [seed_folder(results_root(results_dir), profile, run, s) for s in seeds]
        if seeds is not None
        else sorted(base.glob(f"{_SEED_PREFIX}*"), key=seed_of)
    )
    frames = []
    for folder in folders:
        path = folder / PER_IMAGE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run {run} has no finished {folder.name}")
        frame = pd.read_csv(path)
        frame.insert(0, "seed", seed_of(folder))
        frames.append(frame)
    if not frames:
        raise FileNotFoundError(f"no finished seeds of run {run!r} under {base}")
    return pd.concat(frames, ignore_index=True)


def load_history(
    profile: str, run: str, seed: int, *, results_dir: str | os.PathLike | None = None
) -> pd.DataFrame:
    """Per-epoch loss, validation scores, learning rate and speed of one run."""
    return pd.read_csv(run_folder(profile, run, seed, results_dir=results_dir) / HISTORY_FILE)


def load_metrics(
    profile: str, run: str, seed: int, *, results_dir: str | os.PathLike | None = None
) -> dict:
    """A run's ``metrics.json``: labels, parameter counts, test and validation summaries."""
    path = run_folder(profile, run, seed, results_dir=results_dir) / METRICS_FILE
    return json.loads(path.read_text())


def load_environment(
    profile: str, run: str, seed: int, *, results_dir: str | os.PathLike | None = None
) -> dict:
    """A run's ``environment.json``: versions, device, wall time, peak memory."""
    path = run_folder(profile, run, seed, results_dir=results_dir) / ENVIRONMENT_FILE
    return json.loads(path.read_text())

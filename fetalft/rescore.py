"""The recorded runs scored again the paper's way: what the scoring protocol alone is worth.

``python -m fetalft rescore [--profile cpu] [--runs RUN ...]``

Every finished run of a profile whose ``best.pt`` is still on this machine predicts its
test images once more, and the same predictions are scored under each of
:data:`fetalft.evaluate.PROTOCOLS`: fetalft's (per image, original size) and the paper's
(squeezed size, pooled over batches). The scores go to
``results/checks/scoring/<profile>/<run>/seed-<k>/scoring.json``
(:func:`fetalft.runfiles.scoring_path`) with the run's labels and
the test Dice the run recorded, so a reader can check that the re-scoring reproduces it.
Checkpoints are not committed, so only runs made on this machine can be re-scored, and the
book says which were.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from fetalft.device import PRECISION_LABELS, Runtime
from fetalft.environment import describe
from fetalft.evaluate import PROTOCOLS, protocol_scores
from fetalft.io import write_json_atomic
from fetalft.predict import Predictor
from fetalft.profiles import Profile, get_profile
from fetalft.report import display_scale, is_main_variant, paper_table, split_variant
from fetalft.runfiles import (
    checkpoint_path,
    checkpoints_root,
    load_runs,
    results_root,
    scoring_files,
    scoring_path,
)
from fetalft.study import RunSpec, Study

#: The last column of :func:`protocol_table`: what the authors' scoring adds, in points.
CHANGE_COLUMN = "authors - fetalft ({metric} points)"
#: The column of :func:`protocol_table` with the run's recorded mean over all its seeds.
EVERY_SEED_COLUMN = "recorded, every seed (chapter 5)"


def recorded_runtime(runtime: Runtime, precision: str) -> Runtime:
    """``runtime`` in the precision a run was tested in, so that re-scoring reproduces it.

    fp16 autocast is a GPU path; a GPU run re-scored on a CPU falls back to fp32.
    """
    if precision == PRECISION_LABELS[torch.float16] and runtime.device.type != "cuda":
        return runtime.with_precision(PRECISION_LABELS[None])
    return runtime.with_precision(precision)


def rescore_runs(
    profile: Profile | str | None = None,
    *,
    runs: list[str] | None = None,
    results_dir: str | os.PathLike | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[list[Path], list[str]]:
    """Score every finished run (or those named in ``runs``) under every protocol.

    Returns the files written or already there, and the runs skipped for want of a
    checkpoint. Finished files are kept, so an interrupted call carries on where it was.
    """
    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    recorded = load_runs(profile.name, results_dir)
    if runs is not None:
        unknown = sorted(set(runs) - set(recorded.get("run", [])))
        if unknown:
            raise ValueError(
                f"no finished {profile.name}-profile runs named {', '.join(unknown)} under "
                f"{results_root(results_dir) / profile.name}; run the study first."
            )
        recorded = recorded[recorded["run"].isin(runs)]
    study = None
    written, skipped = [], []
    for row in tqdm(list(recorded.itertuples(index=False)), "re-scoring", disable=not progress):
        out = scoring_path(profile.name, row.run, row.seed, results_dir=results_dir)
        checkpoint = checkpoint_path(profile.name, row.run, row.seed, checkpoint_dir=checkpoint_dir)
        if not out.is_file():
            if not checkpoint.is_file():
                skipped.append(f"{row.run} seed {row.seed}")
                continue
            # Built on first use: loading images is wasted when there is nothing to do.
            study = study or Study(
                profile,
                data_dir=data_dir,
                results_dir=results_dir,
                checkpoint_dir=checkpoints_root(checkpoint_dir),
                encoder_weights="random",  # the checkpoint holds every weight
                progress=progress,
            )
            write_json_atomic(out, rescore_run(row, checkpoint, study))
        written.append(out)
    return written, skipped


def recorded_spec(row) -> RunSpec:
    """The :class:`RunSpec` of a finished run (a row of :func:`load_runs`): its data, split
    and settings, so an ablation run is scored again at its own image size."""
    return RunSpec(
        strategy=row.strategy,
        seed=row.seed,
        split=row.split,
        train_fraction=row.train_fraction,
        head_trainable=row.head_trainable,
        random_bn=getattr(row, "random_bn", "eval"),
        settings=row.settings,
    )


def rescore_run(row, checkpoint: Path, study: Study) -> dict:
    """One finished run (a row of :func:`load_runs`) scored under every protocol, labelled."""
    spec = recorded_spec(row)
    test = study.scans(spec, "test")
    predictor = Predictor.from_checkpoint(checkpoint)
    runtime = recorded_runtime(predictor.runtime, row.precision)
    scores = protocol_scores(predictor.model, test, runtime, study.profile.batch_size)
    return {
        "run": row.run,
        "seed": row.seed,
        "profile": study.profile.name,
        "split": row.split,
        "n_test": len(test),
        "recorded_dice": row.dice,
        "recorded_hardware": row.hardware,
        "recorded_precision": row.precision,
        "hardware": describe(runtime.device)["hardware"],
        "precision": runtime.precision,
        "scores": scores.to_dict(orient="records"),
    }


def load_scores(profile: str, results_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per re-scored run, seed and protocol (empty when nothing was re-scored)."""
    rows = []
    for path in scoring_files(profile, results_dir=results_dir):
        record = json.loads(path.read_text())
        labels = {k: v for k, v in record.items() if k != "scores"}
        rows += [{**labels, **score} for score in record["scores"]]
    return pd.DataFrame(rows)


def reproduction_gap(scores: pd.DataFrame) -> float:
    """Largest difference (Dice points) between a re-scored run at original size and its record.

    Zero up to float noise when the run is re-scored on the machine and precision that made
    it: the re-scoring then measures exactly what the study measured.
    """
    fetalft = scores[scores["protocol"] == PROTOCOLS["original"]]
    return float((fetalft["dice"] - fetalft["recorded_dice"]).abs().max() * 100)


def protocol_table(scores: pd.DataFrame, runs: pd.DataFrame, metric: str = "dice") -> pd.DataFrame:
    """Mean over seeds of ``metric`` (percent) per main-table run under each protocol.

    ``runs`` (from :func:`fetalft.runfiles.load_runs`) says which runs are main-table runs.
    The last column is what the authors' scoring adds to fetalft's, in points.
    """
    if scores.empty:
        return pd.DataFrame()
    main = runs.loc[is_main_variant(runs), "run"].unique()
    chosen = scores[scores["run"].isin(main)]
    table = chosen.pivot_table(index="run", columns="protocol", values=metric, aggfunc="mean")
    table = table[list(PROTOCOLS.values())] * display_scale(metric)
    seeds = chosen.groupby("run")["seed"].apply(lambda s: ", ".join(map(str, sorted(set(s)))))
    table[CHANGE_COLUMN.format(metric=metric)] = (
        table[PROTOCOLS["authors"]] - table[PROTOCOLS["original"]]
    )
    table.insert(0, "seeds", seeds)
    if metric in runs:  # the recorded mean over every seed: what chapter 5 shows
        every = runs[is_main_variant(runs)].groupby("run")[metric].mean() * display_scale(metric)
        table.insert(1, EVERY_SEED_COLUMN, every.reindex(table.index))
    return table.sort_values(PROTOCOLS["original"], ascending=False).round(2)


#: The paper's table's column for each re-scored metric (its "mIoU" is the foreground IoU).
PAPER_COLUMNS = {"pixel_accuracy": "pa", "dice": "dice", "iou": "fg_iou"}


def whole_protocol_table(
    scores: pd.DataFrame, runs: pd.DataFrame, metric: str = "dice"
) -> pd.DataFrame:
    """fetalft's protocol against the paper's as a whole, per run re-scored on the leaky split.

    Why: the leak and the scoring are measured apart elsewhere; a reader comparing our table
    with the paper's wants them together. Columns, in percent: the exam-split runs scored
    fetalft's way (every recorded seed), the leaky-split runs scored fetalft's way and the
    authors' way (the re-scored seeds), the paper's reported number (another image size,
    training length and machine), and what the leak and the scoring add together. Rows are
    the exam-split runs (``decoder-0-4--frozen-head`` beside ``decoder-0-4``). The exam
    and leaky test sets differ, so that last column is a difference of means.
    """
    leaky = scores[scores["split"] == "leaky"]
    if leaky.empty or runs.empty:
        return pd.DataFrame()
    scale = display_scale(metric)
    strategy_of = dict(zip(runs["run"], runs["strategy"], strict=False))
    paper = paper_table().set_index("strategy")[PAPER_COLUMNS[metric]]
    rows = []
    for run, rescored in leaky.groupby("run"):
        exam_run, _ = split_variant(run)  # the same run on the exam split
        exam = runs.loc[runs["run"] == exam_run]
        exam_mean = exam[metric].mean() * scale
        by_protocol = rescored.groupby("protocol")[metric].mean() * scale
        rows.append(
            {
                "run": exam_run,
                "exam split, fetalft": exam_mean,
                "exam seeds": ", ".join(map(str, sorted(set(exam["seed"])))),
                "leaky split, fetalft": by_protocol[PROTOCOLS["original"]],
                "leaky split, authors": by_protocol[PROTOCOLS["authors"]],
                "leaky seeds": ", ".join(map(str, sorted(set(rescored["seed"])))),
                "paper": paper.get(strategy_of[run], float("nan")),
                f"leak + scoring ({metric} points)": (
                    by_protocol[PROTOCOLS["authors"]] - exam_mean
                ),
            }
        )
    return pd.DataFrame(rows).set_index("run").round(2)


def smoke_rescore(book) -> None:
    """Re-score the chapter's own tiny study in the smoke profile (CI); elsewhere only read.

    Like :func:`fetalft.report.smoke_study`: a real profile's re-scoring is made by the
    ``rescore`` command and committed, never inside the book.
    """
    if book.profile.name == "smoke":
        rescore_runs(
            book.profile,
            results_dir=book.results_dir,
            checkpoint_dir=book.checkpoint_dir,
            data_dir=book.data_dir,
            progress=False,
        )

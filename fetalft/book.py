"""The opening of every book chapter, and the glue the chapters share.

Every notebook starts the same way (MONAI style): install, imports, then ::

    from fetalft.book import setup
    book = setup()

which picks the run profile (``$FETALFT_PROFILE``, else ``paper`` on a GPU and ``cpu``
otherwise), finds the data (HC18 in ``setup(data_dir=...)``, ``$FETALFT_DATA_DIR`` or the
cache folder; downloaded there when missing and the profile is not ``smoke``; the smoke
profile falls back to synthetic scans and says so), chooses device and precision, and prints
all of it. The environment is read through :mod:`fetalft.settings`.

Where results go:

- ``$FETALFT_RESULTS_DIR`` / ``$FETALFT_CHECKPOINT_DIR`` if set;
- the smoke profile otherwise writes into a fresh temporary folder per notebook, so CI
  always really trains and never reads stale results or dirties the repository;
- else ``results/`` and ``checkpoints/`` of the repository when the notebook runs inside
  a clone (found by its ``_config.yml``), or of the working folder. In Colab the install
  cell works from a clone of the repository, so that is the clone's.

**Google Drive** (Colab): ``setup(drive=True)``, or ``$FETALFT_DRIVE=1``, mounts the reader's
Drive and keeps HC18, the runs and the checkpoints in ``MyDrive/fetalft/`` (``hc18/``,
``results/``, ``checkpoints/``), so a runtime reset loses nothing; the environment variables
above, when set, still win.

**The committed study.** The results chapters (5-7) show the study recorded in the
repository (:data:`COMMITTED_PROFILE` in its ``results/``) to every reader, whatever their
profile, and the reader's own runs beside it when there are any (:meth:`BookSetup.shown_study`,
:meth:`BookSetup.own_study`). Only the smoke profile (CI) shows its own tiny study instead.
"""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fetalft import hc18, settings
from fetalft.device import Runtime
from fetalft.models import weights_source
from fetalft.profiles import Profile, get_profile, size_label

SMOKE_NOTE = "smoke profile: a handful of tiny images and one epoch; the numbers measure nothing"
#: Characters per printed line that fit the book's page width (a 1280-pixel-wide window).
PRINT_WIDTH = 76


#: Where Colab mounts Google Drive, and fetalft's folder in it.
DRIVE_MOUNT = Path("/content/drive")
DRIVE_FOLDER = Path("MyDrive") / "fetalft"
#: The profile of the study committed in the repository's ``results/`` (chapters 5-7 show it).
COMMITTED_PROFILE = "cpu"


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def drive_requested(drive: bool | None = None) -> bool:
    """``drive`` if given, else whether ``$FETALFT_DRIVE`` says yes."""
    return bool(drive) if drive is not None else settings.current().drive


def drive_folders(mount: str | os.PathLike = DRIVE_MOUNT) -> dict[str, Path]:
    """The environment variable of each folder fetalft keeps on Drive, and its folder."""
    base = Path(mount) / DRIVE_FOLDER
    return {
        settings.DATA_DIR_ENV: base / "hc18",
        settings.RESULTS_ENV: base / "results",
        settings.CHECKPOINTS_ENV: base / "checkpoints",
    }


def use_drive(mount: str | os.PathLike | None = None) -> dict[str, Path]:
    """Mount Google Drive and point HC18, the runs and the checkpoints at it.

    Why: a Colab runtime forgets ``/content`` when it is reset or times out, and with it the
    downloaded HC18 and hours of training. Study runs resume from their last epoch, so on
    Drive an interrupted run continues in the next session. Each variable already set is
    left as it is (an explicit choice wins). Returns the folder of each variable.
    """
    if not in_colab():
        raise RuntimeError(
            "drive=True (or FETALFT_DRIVE=1) mounts Google Drive, which only works in Colab; "
            f"elsewhere set {settings.DATA_DIR_ENV}, {settings.RESULTS_ENV} and "
            f"{settings.CHECKPOINTS_ENV} instead."
        )
    from google.colab import drive

    mount = Path(mount or DRIVE_MOUNT)
    drive.mount(str(mount))
    folders = settings.export_unset(drive_folders(mount))
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return folders


def project_root(start: str | os.PathLike | None = None) -> Path | None:
    """The clone of this repository that holds ``start`` (default: the working folder).

    Recognised by its ``_config.yml`` beside the ``fetalft`` package; ``None`` outside a
    clone (for example in Colab, where fetalft is pip-installed).
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_config.yml").is_file() and (folder / "fetalft" / "__init__.py").is_file():
            return folder
    return None


def shown_path(path: str | os.PathLike) -> str:
    """``path`` as a reader should see it on a page: relative to the repository when it is
    near it, ``~/...`` under the home folder; never the executing machine's absolute path."""
    path = Path(path).expanduser().resolve()
    root = project_root()
    if root is not None:
        relative = os.path.relpath(path, root)
        if not relative.startswith(os.pardir + os.sep + os.pardir):
            return relative
    home = Path.home().resolve()
    if path.is_relative_to(home):
        return str(Path("~") / path.relative_to(home))
    return f".../{path.name}"


def _work_dir(configured: Path | None, name: str, profile: Profile, scratch: Path | None) -> Path:
    if configured is not None:
        return configured
    if profile.name == "smoke" and scratch is not None:
        return scratch / name
    return (project_root() or Path.cwd()) / name


@dataclass
class BookSetup:
    """What a chapter runs with; ``print(book)`` shows it."""

    profile: Profile
    data_dir: Path
    synthetic: bool
    runtime: Runtime
    encoder_weights: str
    results_dir: Path
    checkpoint_dir: Path
    colab: bool = False
    drive: bool = False
    _study: object = field(default=None, repr=False)

    @property
    def weights_label(self) -> str:
        return weights_source(self.encoder_weights)

    @property
    def data_label(self) -> str:
        return "synthetic scans (HC18 not found)" if self.synthetic else "HC18"

    def summary(self) -> pd.DataFrame:
        """The configuration as a two-column table."""
        rows = {
            "profile": f"{self.profile.name}: {self.profile.description}",
            "image size": size_label(self.profile.image_size),
            "epochs, batch, lr": f"{self.profile.epochs}, {self.profile.batch_size}, {self.profile.lr:g}",
            "seeds": ", ".join(map(str, self.profile.seeds)),
            "data": f"{self.data_label} in {shown_path(self.data_dir)}",
            "device": str(self.runtime.device),
            "precision": self.runtime.precision,
            "encoder weights": self.weights_label,
            "results": shown_path(self.results_dir),
            "checkpoints": shown_path(self.checkpoint_dir),
            "running in": ("Google Colab" if self.colab else "local Python")
            + (", data and runs on Google Drive" if self.drive else ""),
        }
        return pd.DataFrame({"setting": list(rows), "value": list(rows.values())})

    def __str__(self) -> str:
        table = self.summary()
        width = max(map(len, table["setting"]))
        # long values wrap under themselves, a long word (a file name) goes on a line of its
        # own: a printed line never runs past the page
        indent = " " * (width + 2)
        lines = []
        for s, v in zip(table["setting"], table["value"], strict=True):
            line = textwrap.fill(
                f"{s:<{width}}  {v}",
                PRINT_WIDTH,
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
            if max(map(len, line.splitlines())) > PRINT_WIDTH:
                line = f"{s}\n    {v}"
            lines.append(line)
        if self.profile.name == "smoke":
            lines.append(f"NOTE: {SMOKE_NOTE}.")
        return "\n".join(lines)

    def study(self, progress: bool = True):
        """The :class:`fetalft.study.Study` for this setup (created once, images cached)."""
        from fetalft.study import Study

        if self._study is None:
            self._study = Study(
                self.profile,
                self.data_dir,
                self.results_dir,
                self.checkpoint_dir,
                self.encoder_weights,
                progress=progress,
            )
            self.encoder_weights = str(self._study.encoder_weights)
        return self._study

    def records(self, subset: hc18.Subset = "training") -> list[hc18.Record]:
        return hc18.load_records(subset, self.data_dir)

    def own_runs(self) -> ShownStudy:
        """The runs this setup trains and writes: its profile in its results folder."""
        return ShownStudy(self.profile, self.results_dir, committed=False)

    def shown_study(self) -> ShownStudy:
        """The study the results chapters show: the committed one, for every reader.

        A Colab reader (``paper`` profile, no runs yet) and a local one see the same recorded
        study. Only the smoke profile (CI) shows its own tiny study, made in a scratch folder
        by the chapter itself, and a copy of fetalft without the repository's ``results/``
        (a plain pip install) shows the reader's own runs.
        """
        if self.profile.name == "smoke":
            return self.own_runs()
        return committed_study() or self.own_runs()

    def own_study(self) -> ShownStudy | None:
        """The reader's own finished runs, to show beside :meth:`shown_study` (``None`` when
        there are none, or when they are the shown study itself)."""
        own, shown = self.own_runs(), self.shown_study()
        if own.same_as(shown) or own.runs().empty:
            return None
        return own


@dataclass(frozen=True)
class ShownStudy:
    """A study's profile and results folder, and whether it is the one committed with the book."""

    profile: Profile
    results_dir: Path
    committed: bool

    def runs(self) -> pd.DataFrame:
        """Its finished runs (:func:`fetalft.runfiles.load_runs`)."""
        from fetalft.runfiles import load_runs

        return load_runs(self.profile.name, self.results_dir)

    def same_as(self, other: ShownStudy) -> bool:
        return self.profile.name == other.profile.name and (
            Path(self.results_dir).resolve() == Path(other.results_dir).resolve()
        )

    def describe(self, runs: pd.DataFrame | None = None) -> str:
        """One sentence for the page: whose runs, profile, how many, on which machines."""
        runs = self.runs() if runs is None else runs
        whose = "the study committed with the book" if self.committed else "your own runs"
        where = shown_path(Path(self.results_dir) / self.profile.name)
        if runs.empty:
            return f"Shown: {whose}, {self.profile.name} profile: no finished runs in {where}."
        machines = sorted(runs["hardware"].dropna().astype(str).unique())
        sentence = (
            f"Shown: {whose}, {self.profile.name} profile, {len(runs)} finished runs in "
            f"{where}, made on {'; '.join(machines) or 'an unrecorded machine'}."
        )
        return textwrap.fill(sentence, PRINT_WIDTH)  # printed output does not wrap on the page


def committed_study(root: str | os.PathLike | None = None) -> ShownStudy | None:
    """The study recorded in the repository's ``results/`` (:data:`COMMITTED_PROFILE`), or
    ``None`` outside a clone (a plain pip install carries no results)."""
    root = Path(root) if root else project_root() or project_root(Path(__file__).parent)
    if root is None or not (root / "results" / COMMITTED_PROFILE).is_dir():
        return None
    return ShownStudy(get_profile(COMMITTED_PROFILE), root / "results", committed=True)


def ensure_data(
    profile: Profile, download: bool = True, data_dir: str | os.PathLike | None = None
) -> tuple[Path, bool]:
    """The data folder and whether it is synthetic; fetch HC18 only when needed.

    ``data_dir`` defaults to ``$FETALFT_DATA_DIR``, else the cache folder. HC18 is downloaded
    there only when it is missing, the profile is not ``smoke`` (which never touches the
    network) and the folder is not ``synthetic`` (which asks for synthetic scans).
    """
    from fetalft.data import dataset_dir, wants_synthetic

    try:
        return hc18.find_data_dir(data_dir), False
    except hc18.DatasetNotFoundError:
        if profile.name == "smoke" or not download or wants_synthetic(data_dir):
            return dataset_dir(profile, data_dir)
    from fetalft.download import download as fetch

    root = hc18.data_dir(data_dir)
    print(f"HC18 not found in {root}: downloading it from Zenodo (about 170 MB).")
    return fetch(root), False


def setup(
    profile: str | Profile | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    show: bool = True,
    drive: bool | None = None,
) -> BookSetup:
    """Profile, data, device, precision, weights and output folders for one chapter.

    Each comes from its argument, else from the environment (:mod:`fetalft.settings`).
    ``data_dir``: the HC18 folder (``synthetic`` for synthetic scans). ``drive=True``
    (default: ``$FETALFT_DRIVE``) keeps HC18, runs and checkpoints on Google Drive in Colab
    (:func:`use_drive`), so that a runtime reset loses nothing.
    """
    profile = profile if isinstance(profile, Profile) else get_profile(profile or None)
    on_drive = drive_requested(drive)
    if on_drive:
        use_drive()
    data_dir, synthetic = ensure_data(profile, download, data_dir)
    config = settings.current()  # after use_drive, which may have set the folders
    scratch = None
    if profile.name == "smoke" and not (config.results_dir and config.checkpoint_dir):
        scratch = Path(tempfile.mkdtemp(prefix="fetalft-smoke-"))
    book = BookSetup(
        profile=profile,
        data_dir=data_dir,
        synthetic=synthetic,
        runtime=Runtime.choose(),
        encoder_weights=config.encoder_weights,
        results_dir=_work_dir(config.results_dir, "results", profile, scratch),
        checkpoint_dir=_work_dir(config.checkpoint_dir, "checkpoints", profile, scratch),
        colab=in_colab(),
        drive=on_drive,
    )
    if show:
        print(book)
    return book


# --------------------------------------------------------------------------- dataset


def image_sizes(records: Iterable[hc18.Record]) -> pd.DataFrame:
    """Width and height of each image, read from the PNG headers only (fast)."""
    from PIL import Image

    rows = []
    for record in records:
        with Image.open(record.image_path) as image:
            width, height = image.size
        rows.append({"name": record.name, "width": width, "height": height})
    return pd.DataFrame(rows)


def records_table(records: Sequence[hc18.Record]) -> pd.DataFrame:
    """One row per training record: name, exam, pixel size, expert HC and Hadlock age."""
    from fetalft.biometry import hadlock_ga_weeks

    return pd.DataFrame(
        {
            "name": [r.name for r in records],
            "exam": [r.exam for r in records],
            "pixel_size_mm": [r.pixel_size_mm for r in records],
            "hc_mm": [r.hc_mm for r in records],
            "ga_weeks": [hadlock_ga_weeks(r.hc_mm) for r in records],
        }
    )


@dataclass(frozen=True, kw_only=True)
class BorderCase:
    """An annotation whose ellipse leaves the image, so filling its outline fails."""

    record: hc18.Record
    image: np.ndarray
    outline: np.ndarray
    hole_filled: np.ndarray  # what scipy's binary_fill_holes makes of the outline
    ellipse_mask: np.ndarray  # the mask from the fitted ellipse (what fetalft uses)
    fill_fraction: float  # filled area / ellipse area: about 1 for a closed outline


def fill_check(record: hc18.Record) -> BorderCase:
    """Fill the annotation outline both ways: hole filling and the fitted ellipse."""
    from scipy.ndimage import binary_fill_holes

    from fetalft.biometry import ellipse_from_outline

    image = hc18.read_gray(record.image_path)
    outline = hc18.read_gray(record.annotation_path)
    filled = binary_fill_holes(outline > 0).astype(np.uint8)
    ellipse_mask = ellipse_from_outline(outline, str(record.annotation_path)).to_mask(outline.shape)
    fraction = float(filled.sum()) / max(1.0, float(ellipse_mask.sum()))
    return BorderCase(
        record=record,
        image=image,
        outline=outline,
        hole_filled=filled,
        ellipse_mask=ellipse_mask,
        fill_fraction=fraction,
    )


def find_border_cases(
    records: Sequence[hc18.Record], limit: int | None = None
) -> tuple[list[BorderCase], int]:
    """Annotations where hole filling fails (filled area under half the ellipse's).

    Checks the first ``limit`` records (all by default); returns the failures and how many
    records were checked.
    """
    checked = list(records)[:limit] if limit is not None else list(records)
    cases = [case for case in map(fill_check, checked) if case.fill_fraction < 0.5]
    return cases, len(checked)


# --------------------------------------------------------------------------- chapters
# Plumbing the chapters share (records, figures' inputs, the model to use); the code a chapter
# teaches is on its page.

#: The four HC18 annotations whose ellipse leaves the image (hole filling fails on them).
BORDER_CASE_NAMES = ("186_HC", "346_HC", "628_2HC", "787_HC")


def named_records(records: Sequence[hc18.Record], names: Iterable[str]) -> list[hc18.Record]:
    """The records called ``names`` that exist (in that order); none on synthetic data."""
    by_name = {r.name: r for r in records}
    return [by_name[n] for n in names if n in by_name]


def border_cases(
    records: Sequence[hc18.Record], names: Iterable[str] = BORDER_CASE_NAMES
) -> list[BorderCase]:
    """:func:`fill_check` of the known border cases, or of the first record on synthetic data."""
    chosen = named_records(records, names) or list(records)[:1]
    return [fill_check(r) for r in chosen]


def gallery(records: Sequence[hc18.Record], n: int = 8, seed: int = 0):
    """``n`` records spread over the HC range (smallest to largest head), for a first look."""
    ordered = sorted(records, key=lambda r: r.hc_mm or 0.0)
    picks = np.unique(np.linspace(0, len(ordered) - 1, min(n, len(ordered))).round().astype(int))
    return [ordered[i] for i in picks]


def reference_ellipse(record: hc18.Record):
    """The expert's ellipse of a training record (pixels), fitted to its outline."""
    from fetalft.biometry import ellipse_from_outline

    return ellipse_from_outline(hc18.read_gray(record.annotation_path), record.name)


def split_summary() -> tuple[pd.DataFrame, pd.Series]:
    """Images per role of the committed exam and leaky splits, and the leak of each.

    Returns ``counts`` (index: split kind, columns: train/val/test) and ``siblings`` (test
    images whose exam also has an image among the training images, the ones the network
    learns from), both for the real HC18 training set. In the leaky split, 57 of the 200
    test images have a sibling in training, and one more a sibling in validation only.
    """
    from fetalft.split import ROLES, SPLIT_KINDS, committed_splits

    table = committed_splits()
    counts, siblings = {}, {}
    for kind in SPLIT_KINDS:
        column = f"{kind}_split"
        counts[kind] = table[column].value_counts().reindex(list(ROLES), fill_value=0)
        seen_exams = set(table.loc[table[column] == "train", "exam"])
        test = table[table[column] == "test"]
        siblings[kind] = int(test["exam"].isin(seen_exams).sum())
    return pd.DataFrame(counts).T, pd.Series(
        siblings, name="test images with a sibling in training"
    )


def strategy_table(head_trainable: bool | None = None) -> pd.DataFrame:
    """The registry with exact counts and the paper's figure, formatted for reading."""
    from fetalft.strategies import registry_table

    table = registry_table(head_trainable)
    return pd.DataFrame(
        {
            "strategy": table["strategy"],
            "encoder": table["encoder"],
            "trains (paper's words)": table["paper_label"],
            "trainable": table["trainable"].map("{:,}".format),
            "frozen": table["frozen"].map("{:,}".format),
            "paper's trainable": table["paper_trainable_M"].map(lambda m: f"{m:g}M"),
        }
    )


def predictor_for(book: BookSetup, runs: pd.DataFrame | None = None, run: str | None = None):
    """A :class:`fetalft.predict.Predictor` from the finished run with the best validation
    Dice (of ``run``'s seeds when given, e.g. the best strategy's; of every main run if not).

    ``None`` when no such run of the profile has left a checkpoint.
    """
    from fetalft.predict import Predictor
    from fetalft.report import best_checkpoint
    from fetalft.runfiles import load_runs

    runs = load_runs(book.profile.name, book.results_dir) if runs is None else runs
    if run is not None and not runs.empty:
        runs = runs[runs["run"] == run]
    choice = best_checkpoint(runs, book.checkpoint_dir, book.profile.name)
    if choice is None:
        return None
    row, top = choice.row, choice.best_on_validation
    print(f"model: {row.run}, seed {row.seed} (validation Dice {100 * row.best_val_dice:.2f}%)")
    if not choice.is_best:
        print(
            f"(the best on validation, {top.run} seed {top.seed} with "
            f"{100 * top.best_val_dice:.2f}%, left no checkpoint on this machine)"
        )
    return Predictor.from_checkpoint(choice.path)


@dataclass(frozen=True, kw_only=True)
class MeasurementSteps:
    """Every intermediate of measuring one scan: what :func:`plots.mask_to_measurement` draws."""

    record: hc18.Record
    image: np.ndarray
    mask: np.ndarray
    blob: np.ndarray
    points: np.ndarray
    measurement: object  # fetalft.biometry.Measurement
    truth: object  # the expert's Ellipse (pixels)

    @property
    def text(self) -> str:
        m = self.measurement
        if not m.measurable:
            return f"{self.record.name}: {m}"
        age = "no GA (outside Hadlock's weeks)" if m.ga_problem else f"GA {m.ga_weeks:.1f} wk"
        return f"{self.record.name}: HC {m.hc_mm:.1f} mm (expert {self.record.hc_mm:.1f} mm), {age}"

    def figure(self):
        from fetalft import plots

        return plots.mask_to_measurement(
            image=self.image,
            mask=self.mask,
            blob=self.blob,
            points=self.points,
            ellipse=self.measurement.ellipse_px,
            truth=self.truth,
            text=self.text,
        )


def measurement_steps(record: hc18.Record, predictor=None) -> MeasurementSteps:
    """Measure one training record from the model's mask (or the expert's, without a model)."""
    from fetalft.biometry import boundary_points, largest_component, measure_head

    image = hc18.read_gray(record.image_path)
    truth = reference_ellipse(record)
    mask = predictor.mask(image) if predictor is not None else truth.to_mask(image.shape)
    blob = largest_component(mask)
    return MeasurementSteps(
        record=record,
        image=image,
        mask=mask,
        blob=blob,
        points=boundary_points(blob),
        measurement=measure_head(mask, record.pixel_size_mm),
        truth=truth,
    )


def expert_hc_check(records: Sequence[hc18.Record]) -> pd.DataFrame:
    """HC of the ellipse fitted to each expert outline against the CSV's value (mm)."""
    rows = []
    for record in records:
        ellipse = reference_ellipse(record)
        hc = ellipse.scaled(record.pixel_size_mm).perimeter
        rows.append({"name": record.name, "hc_csv_mm": record.hc_mm, "hc_fitted_mm": hc})
    table = pd.DataFrame(rows)
    return table.assign(difference_mm=table["hc_fitted_mm"] - table["hc_csv_mm"])


def prediction_items(data_dir: str | os.PathLike, rows: pd.DataFrame) -> list[dict]:
    """Rows of a run's ``per_image.csv`` as items for :func:`fetalft.plots.example_predictions`:
    the image, the expert's ellipse, the ellipse fitted to the network's mask, and a title
    with the image's Dice and HC error."""
    from fetalft.widgets import predicted_ellipse, reference_view

    items = []
    for _, row in rows.iterrows():
        image, truth = reference_view(str(data_dir), row["name"])
        measured = pd.notna(row["hc_pred_mm"])
        error = f"HC error {row['df_mm']:+.1f} mm" if measured else "no head found"
        title = f"{row['name']} (seed {row['seed']}): Dice {100 * row['dice']:.1f}%, {error}"
        items.append(
            {"image": image, "truth": truth, "pred": predicted_ellipse(row), "title": title}
        )
    return items

"""The HC18 dataset on disk: where it is, what is in it, and reading its files.

HC18 (van den Heuvel et al. 2018, Zenodo record 1327317, CC BY 4.0) has 999 annotated
training images and 335 test images. Names follow ``NNN_HC``, ``NNN_2HC``, ... where the
number ``NNN`` identifies the exam: several scans of one exam share it, which is why an
honest test split must keep exams together (see :mod:`fetalft.split`).
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import pandas as pd

from fetalft import settings

TRAIN_CSV = "training_set_pixel_size_and_HC.csv"
TEST_CSV = "test_set_pixel_size.csv"
TRAIN_DIR = "training_set"
TEST_DIR = "test_set"
ANNOTATION_SUFFIX = "_Annotation"

#: Pixel sizes outside this range (mm) cannot come from an obstetric scanner; HC18 spans
#: 0.049-0.393 mm. Catches centimetres or micrometres passed by mistake.
PIXEL_SIZE_RANGE_MM = (0.01, 1.0)

_NAME = re.compile(r"^(?P<exam>\d{3})_(?P<scan>\d?)HC$")

Subset = Literal["training", "test"]


class HC18Error(ValueError):
    """A problem with the HC18 files; the message names the file and what to do."""


class DatasetNotFoundError(HC18Error, FileNotFoundError):
    """The HC18 folder is missing or incomplete."""


def default_data_dir() -> Path:
    """Where HC18 lives when ``FETALFT_DATA_DIR`` is not set: the user's cache folder."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "fetalft" / "hc18"


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The HC18 folder: ``path`` if given, else ``$FETALFT_DATA_DIR``, else the default."""
    if path is not None:
        return Path(path).expanduser()
    return settings.current().data_dir or default_data_dir()


def find_data_dir(path: str | os.PathLike | None = None) -> Path:
    """Like :func:`data_dir`, but insist that the dataset is really there."""
    root = data_dir(path)
    missing = [p for p in (TRAIN_CSV, TEST_CSV, TRAIN_DIR, TEST_DIR) if not (root / p).exists()]
    if missing:
        raise DatasetNotFoundError(
            f"HC18 dataset not found in {root} (missing: {', '.join(missing)}). "
            f"Run `python -m fetalft download --data-dir {root}` to fetch it from Zenodo, "
            f"or set {settings.DATA_DIR_ENV} to a folder that holds it."
        )
    return root


def exam_id(name: str) -> str:
    """The exam number of an image name: ``"010_2HC"`` and ``"010_HC.png"`` give ``"010"``."""
    stem = Path(name).stem
    match = _NAME.match(stem)
    if match is None:
        raise HC18Error(f"{name!r} is not an HC18 image name (expected NNN_HC or NNN_kHC).")
    return match["exam"]


def exam_pairs(names: Iterable[str]) -> list[tuple[str, str]]:
    """Every pair of image names that share an exam: exams in number order, each exam's
    scans in the order given (``010_HC``, ``010_2HC``, ``010_3HC`` give three pairs)."""
    scans_by_exam: dict[str, list[str]] = {}
    for name in names:
        scans_by_exam.setdefault(exam_id(name), []).append(name)
    return [
        pair
        for exam in sorted(scans_by_exam)
        for pair in itertools.combinations(scans_by_exam[exam], 2)
    ]


def check_pixel_size(value: float, source: str) -> float:
    """Reject pixel sizes that are not a positive size in millimetres."""
    low, high = PIXEL_SIZE_RANGE_MM
    if not np.isfinite(value) or not low <= value <= high:
        raise HC18Error(
            f"pixel size {value!r} mm from {source} is outside {low}-{high} mm; "
            "give the pixel spacing in millimetres (HC18 images range 0.05-0.39 mm)."
        )
    return float(value)


@dataclass(frozen=True)
class Record:
    """One HC18 image and what is known about it."""

    name: str  # e.g. "010_2HC"
    image_path: Path
    pixel_size_mm: float
    annotation_path: Path | None = None  # training images only
    hc_mm: float | None = None  # expert head circumference, training images only

    @property
    def exam(self) -> str:
        return exam_id(self.name)


def load_records(
    subset: Subset = "training", root: str | os.PathLike | None = None
) -> list[Record]:
    """All records of ``subset``, checked against the files on disk, in CSV order."""
    root = find_data_dir(root)
    if subset not in ("training", "test"):
        raise HC18Error(f"unknown HC18 subset {subset!r}; choose 'training' or 'test'.")
    csv_path = root / (TRAIN_CSV if subset == "training" else TEST_CSV)
    folder = root / (TRAIN_DIR if subset == "training" else TEST_DIR)
    try:
        table = pd.read_csv(csv_path)
    except Exception as error:
        raise HC18Error(f"cannot read {csv_path}: {error}. Download the dataset again.") from error
    expected = ["filename", "pixel size(mm)"] + (
        ["head circumference (mm)"] if subset == "training" else []
    )
    if list(table.columns) != expected:
        raise HC18Error(
            f"{csv_path} has columns {list(table.columns)}, expected {expected}. "
            "Download the dataset again."
        )

    records = []
    # line 1 is the header, so the i-th row (from 0) is line i + 2 of the file
    for line, row in enumerate(table.itertuples(index=False), start=2):
        filename = row[0]
        where = f"{csv_path}, line {line} (filename {filename!r})"
        if not isinstance(filename, str):
            raise HC18Error(f"{where}: the filename is missing. Download the dataset again.")
        name = Path(filename).stem
        try:
            exam_id(name)
        except HC18Error as error:
            raise HC18Error(f"{where}: {error} Download the dataset again.") from None
        image_path = folder / filename
        if not image_path.is_file():
            raise HC18Error(
                f"{csv_path.name} lists {filename} but {image_path} does not exist. "
                "Download the dataset again."
            )
        pixel_size = check_pixel_size(_csv_number(row[1], "pixel size(mm)", where), where)
        annotation_path = hc_mm = None
        if subset == "training":
            annotation_path = folder / f"{name}{ANNOTATION_SUFFIX}.png"
            if not annotation_path.is_file():
                raise HC18Error(
                    f"image {image_path} has no annotation: expected {annotation_path}. "
                    "Download the training set again."
                )
            hc_mm = _csv_number(row[2], "head circumference (mm)", where)
            if not np.isfinite(hc_mm) or hc_mm <= 0:
                shown = "missing (empty, n/a or NaN)" if np.isnan(hc_mm) else f"{hc_mm!r} mm"
                raise HC18Error(
                    f"{where}: head circumference (mm) is {shown}; expected a positive number "
                    "of millimetres. Download the dataset again or restore the original CSV."
                )
        records.append(Record(name, image_path, pixel_size, annotation_path, hc_mm))

    listed = {r.image_path.name for r in records}
    on_disk = {p.name for p in folder.glob("*HC.png") if not p.stem.endswith(ANNOTATION_SUFFIX)}
    if unlisted := sorted(on_disk - listed):
        raise HC18Error(
            f"{folder} holds images without a row in {csv_path.name}: {', '.join(unlisted[:5])}"
            f"{' ...' if len(unlisted) > 5 else ''}. Remove them or restore the original CSV."
        )
    return records


def _csv_number(value: object, column: str, where: str) -> float:
    """``value`` of ``column`` as a float, or an :class:`HC18Error` naming the row."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise HC18Error(
            f"{where}: {column} is {value!r}, not a number. "
            "Download the dataset again or restore the original CSV."
        ) from None


def read_gray(path: str | os.PathLike) -> np.ndarray:
    """Read a grayscale (or colour) PNG as a ``(H, W)`` uint8 array; never assumes a size.

    16-bit images are scaled by the bit depth their brightest pixel needs: a 12-bit scan
    stored in a 16-bit PNG (values up to 4095) maps 4095 to 255, where OpenCV's own
    conversion would keep the top 8 of 16 bits and leave grey levels 0-15.
    """
    # at the file's own bit depth and colours (no alpha), converted to grey below
    image = cv2.imread(str(path), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if image is None:
        raise HC18Error(
            f"cannot read image {path}: missing or not a valid PNG. Check the file "
            "(an HC18 image: download the dataset again)."
        )
    if image.dtype == np.uint16:
        bits = max(8, int(image.max()).bit_length())
        image = np.round(image * (255 / (2**bits - 1))).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise HC18Error(
            f"image {path} has {image.dtype} pixels; expected an 8- or 16-bit PNG. "
            "Convert it to an 8-bit greyscale PNG."
        )
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)

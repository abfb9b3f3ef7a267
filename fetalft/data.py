"""HC18 images in memory, ready for training: decoded and resized once, augmented per batch.

Decoding an 800x540 PNG and resizing it costs more than a training step of a frozen
encoder on a CPU, so every image is decoded once, resized to the profile's size and kept
as uint8. Each scan also keeps its original size, pixel size and reference ellipse, so
predictions are scored at the original resolution (see :mod:`fetalft.evaluate`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from tqdm.auto import tqdm

from fetalft import hc18, settings
from fetalft.biometry import ellipse_from_outline
from fetalft.ellipse import Ellipse
from fetalft.profiles import ImageSize, Profile, image_shape, size_label
from fetalft.split import SplitKind, split_roles, subsample
from fetalft.synthetic import write_synthetic_hc18

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ROTATION_LIMIT = 25  # degrees, as in the paper


@dataclass(frozen=True)
class Scan:
    """One image at training size, plus what is needed to score it at original size."""

    name: str
    image: np.ndarray  # (height, width) of the network input, uint8
    mask: np.ndarray | None  # same shape, uint8 0/1; None for HC18 test images
    original_shape: tuple[int, int]  # (H, W)
    pixel_size_mm: float
    ellipse: Ellipse | None  # reference ellipse in original pixels (training images)

    @property
    def hc_mm(self) -> float | None:
        return self.ellipse.scaled(self.pixel_size_mm).perimeter if self.ellipse else None


def resize(image: np.ndarray, size: ImageSize, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """Resize to the network's input: ``size x size`` squeezes, as the paper did; a
    ``(height, width)`` pair keeps the scans' aspect ratio when it matches theirs."""
    height, width = image_shape(size)
    return cv2.resize(image, (width, height), interpolation=interpolation)


def load_scan(record: hc18.Record, size: ImageSize) -> Scan:
    image = hc18.read_gray(record.image_path)
    ellipse = mask = None
    if record.annotation_path is not None:
        outline = hc18.read_gray(record.annotation_path)
        if outline.shape != image.shape:
            raise hc18.HC18Error(
                f"{record.annotation_path} is {outline.shape[::-1]} but its image is "
                f"{image.shape[::-1]} (W x H); the annotation does not belong to the image."
            )
        ellipse = ellipse_from_outline(outline, str(record.annotation_path))
        full_mask = ellipse.to_mask(image.shape)
        mask = (resize(full_mask.astype(np.float32), size) >= 0.5).astype(np.uint8)
    return Scan(record.name, resize(image, size), mask, image.shape, record.pixel_size_mm, ellipse)


def load_scans(
    records: Sequence[hc18.Record], size: ImageSize, progress: bool = True
) -> list[Scan]:
    """Decode, fit and resize every record once."""
    iterator = tqdm(
        records, desc=f"loading {len(records)} images at {size_label(size)}", disable=not progress
    )
    return [load_scan(record, size) for record in iterator]


def select_records(
    records: Sequence[hc18.Record],
    role: str,
    split: SplitKind = "exam",
    limit: int | None = None,
    train_fraction: float = 1.0,
) -> list[hc18.Record]:
    """The records of one role (``train``, ``val``, ``test``) of a split, optionally thinned.

    ``limit`` (a profile's cap, such as smoke's 8 training images) applies first and
    ``train_fraction`` then to what is left, so a reduced-data run always trains on fewer
    images than the full run of the same profile.
    """
    roles = split_roles([r.name for r in records], split)
    chosen = [r for r in records if roles[r.name] == role][:limit]
    if role == "train" and train_fraction < 1:
        keep = set(subsample([r.name for r in chosen], train_fraction))
        chosen = [r for r in chosen if r.name in keep]
    return chosen


def train_transform() -> A.Compose:
    """The paper's augmentation: rotation in [-25, 25] degrees, flips, ImageNet normalisation."""
    return A.Compose(
        [
            A.Rotate(
                limit=ROTATION_LIMIT, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0, p=1.0
            ),
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            *eval_transform().transforms,
        ]
    )


def strong_train_transform() -> A.Compose:
    """Beyond the paper (chapter 8): the paper's rotation drawn together with a rescaling by
    0.8-1.2 and a shift of up to a tenth of the image (one resampling), flips, and random
    brightness, contrast and gamma.

    Why: heads in HC18 differ in size and place far more than 25 degrees of rotation
    covers, and the skulls the models miss are faint.
    """
    return A.Compose(
        [
            A.Affine(
                rotate=(-ROTATION_LIMIT, ROTATION_LIMIT),
                scale=(0.8, 1.2),
                translate_percent=(-0.1, 0.1),
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
                p=1.0,
            ),
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.RandomBrightnessContrast(
                brightness_limit=0.2,
                contrast_limit=0.2,
                p=0.5,
            ),
            A.RandomGamma(gamma_limit=(70, 150), p=0.5),
            *eval_transform().transforms,
        ]
    )


#: The training augmentations a run can ask for (``--set augment=...``), the paper's first.
TRAIN_TRANSFORMS = {"paper": train_transform, "strong": strong_train_transform}


def augmentation(name: str) -> A.Compose:
    """The training transform called ``name``; an unknown name lists the known ones."""
    if name not in TRAIN_TRANSFORMS:
        raise ValueError(f"unknown augment {name!r}; choose one of {', '.join(TRAIN_TRANSFORMS)}")
    return TRAIN_TRANSFORMS[name]()


def eval_transform() -> A.Compose:
    """Evaluation sees images exactly as they are: only grey-to-RGB and normalisation."""
    return A.Compose(
        [A.ToRGB(num_output_channels=3), A.Normalize(IMAGENET_MEAN, IMAGENET_STD), ToTensorV2()]
    )


class ScanDataset(torch.utils.data.Dataset):
    """Scans as ``(image[3, H, W] float, mask[1, H, W] float)`` pairs for a DataLoader."""

    def __init__(self, scans: Sequence[Scan], transform: A.Compose) -> None:
        self.scans = list(scans)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.scans)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        scan = self.scans[index]
        mask = scan.mask if scan.mask is not None else np.zeros_like(scan.image)
        out = self.transform(image=scan.image, mask=mask)
        return out["image"], out["mask"][None].float()


#: The data folder that asks for synthetic scans: ``--data-dir synthetic`` or
#: ``FETALFT_DATA_DIR=synthetic``.
SYNTHETIC = "synthetic"


def smoke_data_dir() -> Path:
    """A synthetic HC18 in a temporary folder, for machines with neither data nor network."""
    root = Path(tempfile.gettempdir()) / "fetalft-synthetic-hc18"
    if not (root / hc18.TRAIN_CSV).exists():
        write_synthetic_hc18(root, n_train=24, n_test=6)
    return root


def wants_synthetic(data_dir: str | os.PathLike | None = None) -> bool:
    """Whether ``data_dir`` (default: ``$FETALFT_DATA_DIR``) asks for synthetic scans."""
    given = data_dir if data_dir is not None else settings.current().data_dir
    return given is not None and str(given) == SYNTHETIC


def dataset_dir(profile: Profile, data_dir: str | os.PathLike | None = None) -> tuple[Path, bool]:
    """The folder to train from, and whether it is synthetic.

    Synthetic scans only when asked for (``synthetic`` as the data folder), or in the smoke
    profile when no data folder is configured at all and the default one holds no HC18;
    said loudly either way. A folder that is given (argument or ``$FETALFT_DATA_DIR``) must
    hold HC18: a typo must not turn a run into one on fake scans.
    """
    given = data_dir if data_dir is not None else settings.current().data_dir
    if wants_synthetic(given):
        root = smoke_data_dir()
        print(f"WARNING: synthetic scans, as asked ({root}): not HC18, the numbers mean nothing.")
        return root, True
    try:
        return hc18.find_data_dir(given), False
    except hc18.DatasetNotFoundError as error:
        if given is not None:
            raise hc18.DatasetNotFoundError(
                f"{error} To train on synthetic scans instead, ask for them: --data-dir "
                f"{SYNTHETIC} (or {settings.DATA_DIR_ENV}={SYNTHETIC})."
            ) from None
        if profile.name != "smoke":
            raise
        root = smoke_data_dir()
        print(
            f"WARNING: HC18 not found in {hc18.data_dir()} and no data folder configured: the "
            f"smoke profile uses synthetic scans in {root} (not real data; the numbers mean "
            f"nothing). Set {settings.DATA_DIR_ENV} to a folder with HC18 to use it."
        )
        return root, True

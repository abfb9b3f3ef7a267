"""A synthetic HC18 look-alike, so tests and smoke runs need no download.

Each image is speckled background with a bright elliptical skull ring; its annotation is
a thin outline of the ring's centre line, and the CSVs hold a pixel size and the
circumference computed exactly as HC18's were. :func:`write_synthetic_hc18` lays the
files out like the real dataset, so every code path runs unchanged on it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from fetalft import hc18
from fetalft.ellipse import Ellipse
from fetalft.io import atomic_directory


@dataclass(frozen=True)
class SyntheticScan:
    image: np.ndarray  # (H, W) uint8
    outline: np.ndarray  # (H, W) uint8, 0/255 thin ellipse outline like HC18 annotations
    ellipse: Ellipse  # the true ellipse, pixels
    pixel_size_mm: float

    @property
    def hc_mm(self) -> float:
        return self.ellipse.scaled(self.pixel_size_mm).perimeter


def draw_outline(ellipse: Ellipse, shape: tuple[int, int], thickness: int = 2) -> np.ndarray:
    """A 0/255 outline image of ``ellipse``, drawn with sub-pixel precision like HC18's."""
    canvas = np.zeros(shape, np.uint8)
    scale = 16  # cv2's 4-bit fixed-point coordinates
    cv2.ellipse(
        canvas,
        (round(ellipse.cx * scale), round(ellipse.cy * scale)),
        (round(ellipse.a * scale), round(ellipse.b * scale)),
        math.degrees(ellipse.angle),
        0,
        360,
        255,
        thickness,
        cv2.LINE_8,
        4,
    )
    return canvas


def synthetic_scan(
    rng: np.random.Generator, shape: tuple[int, int] = (270, 400), leave_image: bool = False
) -> SyntheticScan:
    """One random scan; ``leave_image`` puts part of the head outside the frame."""
    height, width = shape
    b = rng.uniform(0.22, 0.36) * height
    a = b * rng.uniform(1.1, 1.4)
    if leave_image:
        cx, cy = rng.uniform(0.05, 0.15) * width, height / 2
    else:
        cx = rng.uniform(a + 2, width - a - 2) if width > 2 * a + 4 else width / 2
        cy = rng.uniform(0.42, 0.58) * height
    ellipse = Ellipse.normalized(cx, cy, a, b, rng.uniform(0, math.pi))

    image = rng.gamma(2.0, 18.0, size=shape)  # speckle
    y, x = np.mgrid[:height, :width].astype(np.float64)
    inner = Ellipse(ellipse.cx, ellipse.cy, ellipse.a * 0.93, ellipse.b * 0.93, ellipse.angle)
    ring = ellipse.contains(x, y) & ~inner.contains(x, y)
    image[ring] += rng.uniform(120, 180)
    image[inner.contains(x, y)] += rng.uniform(10, 40)
    image = cv2.GaussianBlur(image, (0, 0), 1.2)
    image = np.clip(image, 0, 255).astype(np.uint8)
    outline = draw_outline(ellipse, shape)
    pixel_size = float(rng.uniform(0.08, 0.25))
    return SyntheticScan(image, outline, ellipse, pixel_size)


def _names(n: int, rng: np.random.Generator, start: int = 0) -> list[str]:
    """HC18-style names; about one exam in four gets a second scan."""
    names: list[str] = []
    exam = start
    while len(names) < n:
        names.append(f"{exam:03d}_HC")
        if len(names) < n and rng.random() < 0.25:
            names.append(f"{exam:03d}_2HC")
        exam += 1
    return names


def write_synthetic_hc18(
    root: str | os.PathLike,
    n_train: int = 24,
    n_test: int = 6,
    shape: tuple[int, int] = (270, 400),
    seed: int = 0,
) -> Path:
    """Write an HC18-shaped folder of synthetic scans (CSVs without trailing newline, as HC18).

    One training scan in eight has its head leaving the image, like HC18's border cases.
    The folder appears atomically; an existing one is replaced.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    with atomic_directory(root) as tmp:
        for subset, n, start in (("training", n_train, 0), ("test", n_test, 500)):
            folder = tmp / (hc18.TRAIN_DIR if subset == "training" else hc18.TEST_DIR)
            folder.mkdir()
            rows = []
            for i, name in enumerate(_names(n, rng, start)):
                scan = synthetic_scan(rng, shape, leave_image=subset == "training" and i % 8 == 7)
                cv2.imwrite(str(folder / f"{name}.png"), scan.image)
                if subset == "training":
                    cv2.imwrite(str(folder / f"{name}{hc18.ANNOTATION_SUFFIX}.png"), scan.outline)
                    rows.append((f"{name}.png", scan.pixel_size_mm, round(scan.hc_mm, 2)))
                else:
                    rows.append((f"{name}.png", scan.pixel_size_mm))
            columns = ["filename", "pixel size(mm)"]
            columns += ["head circumference (mm)"] if subset == "training" else []
            csv = pd.DataFrame(rows, columns=columns).to_csv(index=False, lineterminator="\n")
            name = hc18.TRAIN_CSV if subset == "training" else hc18.TEST_CSV
            (tmp / name).write_text(csv.rstrip("\n"))
    return root

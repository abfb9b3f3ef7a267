"""Measuring a new scan with a trained model: mask, ellipse, head circumference, age.

python -m fetalft predict IMAGE --pixel-size MM [--checkpoint best.pt] [--overlay out.png]
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from fetalft.biometry import (
    Measurement,
    field_of_view_problem,
    image_problem,
    measure_plausible_head,
)
from fetalft.data import eval_transform, resize
from fetalft.device import Runtime
from fetalft.ellipse import Ellipse
from fetalft.evaluate import TTA_FLIPS, original_logits
from fetalft.hc18 import Record, check_pixel_size, read_gray
from fetalft.profiles import ImageSize
from fetalft.strategies import FineTuned, get_strategy, prepare_model
from fetalft.training import RunConfig


class CheckpointError(ValueError):
    """A checkpoint that is missing or not one of fetalft's."""


class ImageError(ValueError):
    """An image file ``predict`` cannot read: missing, a folder, or not readable."""


def check_image_file(path: str | os.PathLike) -> Path:
    """``path`` if it is a file this process can open, else :class:`ImageError` saying why.

    Checked before OpenCV sees the path: ``cv2.imread`` of a missing file prints its own
    WARN line to stderr and then returns ``None``, so the user got two messages, the first
    one OpenCV's.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"image {path} not found; check the path and give an existing PNG.")
    if path.is_dir():
        raise ImageError(f"image {path} is a folder; give the path of one PNG file in it.")
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise ImageError(
            f"cannot open image {path} ({error.strerror}); check its permissions."
        ) from error
    return path


@contextlib.contextmanager
def _opencv_quiet() -> Iterator[None]:
    """OpenCV's log limited to errors: its warnings about a file (a path that vanished
    after :func:`check_image_file`) would come before fetalft's own message about it."""
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        logging.setLogLevel(level)


def read_scan(path: str | os.PathLike) -> np.ndarray:
    """A user's scan as :func:`fetalft.hc18.read_gray` reads it, with one clear error (and
    no OpenCV warning) for a path that is missing, a folder or unreadable."""
    path = check_image_file(path)
    with _opencv_quiet():
        return read_gray(path)


class MaskPredictor:
    """Pre- and post-processing shared by every backend: subclasses supply :meth:`forward`."""

    image_size: ImageSize
    #: average the logits over the flips of :data:`fetalft.evaluate.TTA_FLIPS`, as the
    #: run that trained the model was scored
    tta: bool = False
    #: fit the ellipse to the clear part of the outline only
    #: (:func:`fetalft.biometry.clear_boundary`, chapter 8), not to every point
    clear_fit: bool = False

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """Logits ``(N, 1, H, W)`` for a normalised float32 batch ``(N, 3, H, W)``."""
        raise NotImplementedError

    def logits(self, image: np.ndarray) -> np.ndarray:
        """Logits at the model's input size for one grey ``(H, W)`` uint8 image."""
        batch = eval_transform()(image=resize(image, self.image_size))["image"][None].numpy()
        if not self.tta:
            return self.forward(batch)[0, 0]
        flipped_back = [
            np.flip(self.forward(np.ascontiguousarray(np.flip(batch, dims))), dims)
            for dims in TTA_FLIPS
        ]
        return np.mean(flipped_back, axis=0)[0, 0]

    def original_logits(self, image: np.ndarray) -> np.ndarray:
        """Logits resized to the image's original size (bilinear)."""
        return original_logits(self.logits(image), image.shape[:2])

    def mask(self, image: np.ndarray) -> np.ndarray:
        """Head mask at the image's original size."""
        return (self.original_logits(image) > 0).astype(np.uint8)

    def measure(self, image: np.ndarray, pixel_size_mm: float) -> tuple[np.ndarray, Measurement]:
        """The mask and its measurement, refused unless plausible (see
        :func:`fetalft.biometry.implausibility`): what a user or a submission receives."""
        logits = self.original_logits(image)
        mask = (logits > 0).astype(np.uint8)
        if problem := image_problem(image):
            return mask, Measurement(False, pixel_size_mm=pixel_size_mm, reason=problem)
        return mask, measure_plausible_head(mask, pixel_size_mm, logits if self.clear_fit else None)


@dataclass
class Predictor(MaskPredictor):
    """A trained PyTorch model from a fetalft checkpoint."""

    model: FineTuned
    config: RunConfig
    runtime: Runtime
    clear_fit: bool = False

    @property
    def image_size(self) -> ImageSize:
        return self.config.image_size

    @property
    def tta(self) -> bool:
        return self.config.tta

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, precision: str = "auto", clear_fit: bool = False
    ) -> Predictor:
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(
                f"checkpoint {path} not found; train a model first (python -m fetalft study) "
                "or pass --checkpoint with a best.pt from a finished run."
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except OSError:
            raise  # permissions, a vanished file: not a statement about the file's contents
        except Exception as error:  # unpickling a file that is not a checkpoint fails many ways
            reason = (str(error).strip().splitlines() or [""])[0]
            raise CheckpointError(
                f"{path} is not a fetalft checkpoint: torch cannot read it "
                f"({type(error).__name__}: {reason}); pass --checkpoint with a best.pt "
                "written by a study run."
            ) from error
        if not isinstance(state, dict) or not {"config", "model"} <= set(state):
            raise CheckpointError(f"{path} is not a fetalft checkpoint (no config and model).")
        config = RunConfig(**state["config"])
        model = prepare_model(
            get_strategy(config.strategy),
            encoder_weights=None,
            head_trainable=config.head_trainable,
            decoder=config.decoder,
            train_encoder=config.encoder_lr > 0,
        )
        model.load_state_dict(state["model"])
        runtime = Runtime.choose(precision)
        model.to(runtime.device, memory_format=torch.channels_last).eval()
        return cls(model, config, runtime, clear_fit)

    @torch.no_grad()
    def forward(self, batch: np.ndarray) -> np.ndarray:
        with self.runtime.autocast():
            out = self.model(self.runtime.to_device(torch.from_numpy(batch)))
        return out.float().cpu().numpy()


def predict_test_set(
    predictor: MaskPredictor, records: Sequence[Record], progress: bool = True
) -> dict[str, tuple[Measurement, tuple[int, int]]]:
    """Measure every record with ``predictor``: ``{filename: (measurement, image shape)}``,
    each measurement refused unless plausible (see :meth:`MaskPredictor.measure`)."""
    from tqdm.auto import tqdm

    measurements = {}
    for record in tqdm(records, desc="measuring test images", disable=not progress):
        image = read_gray(record.image_path)
        _, measurement = predictor.measure(image, record.pixel_size_mm)
        measurements[record.image_path.name] = (measurement, image.shape)
    return measurements


def overlay(
    image: np.ndarray,
    ellipse: Ellipse | None,
    truth: Ellipse | None = None,
    refused: bool = False,
) -> np.ndarray:
    """BGR picture of the scan with the fitted ellipse (green, red when ``refused`` as not
    plausible) and a reference (magenta)."""
    canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    fitted = (0, 0, 255) if refused else (0, 255, 0)
    for shape, colour in ((truth, (255, 0, 255)), (ellipse, fitted)):
        if shape is not None:
            points = np.round(shape.points(720)).astype(np.int32)
            cv2.polylines(canvas, [points], isClosed=True, color=colour, thickness=2)
    return canvas


def predict_file(
    image_path: str | os.PathLike,
    pixel_size_mm: float,
    checkpoint: str | os.PathLike,
    overlay_path: str | os.PathLike | None = None,
    before_loading: Callable[[], object] | None = None,
    clear_fit: bool = False,
) -> Measurement:
    """Measure one scan; write the overlay PNG if asked, refused ellipses in red.

    The pixel size and the image are checked first (:class:`fetalft.hc18.HC18Error`,
    :class:`ImageError`), then whether the pixel size fits the image (not measurable, no
    model loaded). Only then is ``before_loading`` called and the model loaded: the CLI
    says there which model it uses, so nothing is announced for input that is refused.
    """
    pixel_size_mm = check_pixel_size(pixel_size_mm, "--pixel-size")
    image = read_scan(image_path)
    if problem := field_of_view_problem(image.shape, pixel_size_mm):
        # no model can make a wrong pixel size right: say so before loading one
        measurement = Measurement(False, pixel_size_mm=pixel_size_mm, reason=problem)
    else:
        if before_loading is not None:
            before_loading()
        predictor = Predictor.from_checkpoint(checkpoint, clear_fit=clear_fit)
        _, measurement = predictor.measure(image, pixel_size_mm)
    if overlay_path is not None:
        from fetalft.io import atomic_write

        _, encoded = cv2.imencode(
            ".png", overlay(image, measurement.ellipse_px, refused=not measurement.measurable)
        )
        with atomic_write(overlay_path, "wb") as handle:
            handle.write(encoded.tobytes())
    return measurement

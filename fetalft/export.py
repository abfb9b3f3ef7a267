"""Deployment: a trained model as ONNX, run by ONNX Runtime with fetalft's pre/post-processing.

    python -m fetalft export --checkpoint best.pt [--output model.onnx]

Writes ``model.onnx`` (fp32, dynamic batch, fixed ``S x S`` input) and ``model.json`` beside
it with what a deployment needs to feed it: input size, normalisation, threshold, and the
run it came from. Uses PyTorch's torch.export-based exporter (needs ``onnxscript``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from fetalft.data import IMAGENET_MEAN, IMAGENET_STD
from fetalft.evaluate import TTA_FLIPS
from fetalft.io import atomic_path, same_file, write_json_atomic
from fetalft.predict import MaskPredictor, Predictor
from fetalft.profiles import image_shape

INPUT_NAME, OUTPUT_NAME = "image", "logits"


class ExportError(ValueError):
    """An export that would destroy a file: the checkpoint, or the model by its own sidecar."""


def output_paths(
    checkpoint: str | os.PathLike, output: str | os.PathLike | None = None
) -> tuple[Path, Path]:
    """The ``.onnx`` path and its ``.json`` sidecar; refuses paths that would overwrite the
    checkpoint or each other (raises :class:`ExportError` before anything is written)."""
    checkpoint = Path(checkpoint)
    model = Path(output) if output else checkpoint.with_suffix(".onnx")
    sidecar = model.with_suffix(".json")
    if same_file(model, sidecar):
        raise ExportError(
            f"--output {model} is also where the JSON sidecar goes (the output path with .json), "
            f"so the sidecar would overwrite the ONNX model; give an --output ending in .onnx, "
            f"such as {model.with_suffix('.onnx')}."
        )
    for path, what in ((model, "ONNX model"), (sidecar, "JSON sidecar")):
        if same_file(path, checkpoint):
            raise ExportError(
                f"the {what} {path} would overwrite the checkpoint {checkpoint}; "
                "choose another --output, such as model.onnx in another folder."
            )
    return model, sidecar


def export_onnx(checkpoint: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Export a checkpoint's network to ONNX; returns the ``.onnx`` path.

    The ``.json`` sidecar goes beside it (the same path with ``.json``). Raises
    :class:`ExportError`, writing nothing, if either would overwrite the checkpoint or the
    sidecar would overwrite the model.
    """
    output, sidecar = output_paths(checkpoint, output)
    predictor = Predictor.from_checkpoint(checkpoint, precision="fp32")
    net = predictor.model.net.to("cpu", memory_format=torch.contiguous_format).eval()
    height, width = image_shape(predictor.image_size)
    example = torch.zeros(2, 3, height, width)
    batch = torch.export.Dim("batch", min=1, max=256)
    program = torch.onnx.export(
        net,
        (example,),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: batch},),
        dynamo=True,
        external_data=False,
        verbose=False,
    )
    with atomic_path(output) as tmp:  # ONNX saves to a file name, not an open file
        program.save(tmp)
    write_json_atomic(
        sidecar,
        {
            "input": {
                "name": INPUT_NAME,
                "shape": ["batch", 3, height, width],
                "dtype": "float32",
                "preprocessing": "grey image resized to height x width, repeated to RGB, "
                "x/255 normalised with ImageNet mean and std",
                "mean": IMAGENET_MEAN,
                "std": IMAGENET_STD,
            },
            "output": {
                "name": OUTPUT_NAME,
                "shape": ["batch", 1, height, width],
                "postprocessing": "average the logits over the flips listed in tta_flips "
                "(each flipped back), resize them to the original size (bilinear), "
                "head = logits > 0",
                "tta_flips": [list(dims) for dims in TTA_FLIPS] if predictor.tta else [[]],
            },
            "run": predictor.config.as_dict(),
        },
    )
    return output


class OnnxPredictor(MaskPredictor):
    """Runs an exported model with ONNX Runtime (CPU), same preprocessing as :class:`Predictor`.

    ``clear_fit`` measures as ``python -m fetalft predict --fit clear`` does (the ellipse
    fitted to the clear part of the outline, chapter 8); the default fits every point, as
    :meth:`Predictor.from_checkpoint` does.
    """

    def __init__(self, onnx_path: str | os.PathLike, clear_fit: bool = False) -> None:
        import onnxruntime

        self.clear_fit = clear_fit

        onnx_path = Path(onnx_path)
        meta = json.loads(onnx_path.with_suffix(".json").read_text())
        height, width = meta["input"]["shape"][-2:]
        self.image_size = (int(height), int(width))
        self.tta = bool(meta["run"].get("tta", False))
        self.session = onnxruntime.InferenceSession(
            str(onnx_path), providers=["CPUExecutionProvider"]
        )

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch.astype(np.float32)})[0]

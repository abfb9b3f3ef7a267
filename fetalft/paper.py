"""The paper's reported numbers, typed in once, as published (arXiv:2307.09067 v2).

Everything the book compares with the paper reads it from here, so a number the paper
reports appears in the package exactly once. Its protocol differs from fetalft's: a
799/200 image-level split of the 999 HC18 training images (scans of one exam on both
sides), 512 x 512 inputs, 20 epochs on a T4, four repeats, metrics pooled per batch at
512 x 512, and its "mIoU" is the foreground IoU (:func:`fetalft.report.paper_table`).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The paper's training images: 799 of the 999 HC18 training images (200 for its test).
TRAIN_IMAGES = 799


@dataclass(frozen=True, kw_only=True)
class Row:
    """One strategy's row of the paper's results table: percent, mean ± sd over four repeats."""

    trainable_m: float  # trainable parameters in millions, as printed
    pa: float
    pa_sd: float
    dice: float
    dice_sd: float
    miou: float  # the foreground IoU, which the paper calls mIoU
    miou_sd: float


#: The paper's parameter table for ``smp.Unet`` with 13 encoders (millions: total, decoder,
#: encoder), counted with smp 0.3.3; the decoder counts include the segmentation head.
PARAMETERS: dict[str, tuple[float, float, float]] = {
    "efficientnet-b1": (8.345, 2.244, 6.101),
    "densenet121": (13.609, 6.655, 6.954),
    "resnet18": (14.329, 3.152, 11.177),
    "densenet169": (21.204, 8.72, 12.484),
    "vgg16": (23.749, 9.034, 14.715),
    "densenet201": (28.582, 10.49, 18.093),
    "xception": (28.771, 7.964, 20.807),
    "none": (31.036, 12.19, 18.846),
    "resnet50": (32.523, 9.015, 23.508),
    "inceptionv4": (48.793, 7.651, 41.143),
    "resnet101": (51.515, 9.015, 42.5),
    "resnet152": (67.159, 9.015, 58.144),
    "mobilenet_v2": (6.63, 4.406, 2.224),
}

#: The paper's results table (its Table 2), keyed by fetalft's strategy names, in its order.
RESULTS: dict[str, Row] = {
    "baseline": Row(
        trainable_m=31.04, pa=97.33, pa_sd=0.39, dice=95.56, dice_sd=0.62, miou=91.56, miou_sd=1.16
    ),
    "random-decoder-0-4": Row(
        trainable_m=4.4, pa=91.68, pa_sd=1.09, dice=86.68, dice_sd=1.06, miou=76.70, miou_sd=1.68
    ),
    "random-encoder": Row(
        trainable_m=2.22, pa=90.11, pa_sd=2.60, dice=85.67, dice_sd=3.10, miou=75.14, miou_sd=4.69
    ),
    "encoder": Row(
        trainable_m=2.22, pa=97.65, pa_sd=0.44, dice=96.22, dice_sd=0.68, miou=92.73, miou_sd=1.26
    ),
    "decoder-0": Row(
        trainable_m=3.76, pa=87.00, pa_sd=8.55, dice=82.46, dice_sd=8.89, miou=70.99, miou_sd=12.63
    ),
    "decoder-0-1": Row(
        trainable_m=4.24, pa=95.81, pa_sd=1.74, dice=93.27, dice_sd=2.46, miou=87.53, miou_sd=4.20
    ),
    "decoder-0-2": Row(
        trainable_m=4.36, pa=97.16, pa_sd=0.11, dice=95.34, dice_sd=0.14, miou=91.13, miou_sd=0.26
    ),
    "decoder-2-4": Row(
        trainable_m=0.164, pa=88.88, pa_sd=0.50, dice=81.46, dice_sd=0.53, miou=68.85, miou_sd=0.77
    ),
    "decoder-4": Row(
        trainable_m=0.00698,
        pa=68.31,
        pa_sd=1.01,
        dice=37.04,
        dice_sd=6.31,
        miou=22.90,
        miou_sd=4.61,
    ),
    "decoder-0-4": Row(
        trainable_m=4.4, pa=97.77, pa_sd=0.22, dice=96.28, dice_sd=0.38, miou=92.87, miou_sd=0.69
    ),
}

#: The paper's training-set-size table: test Dice (%) with part of its 799 training images,
#: on its leaky 200-image test set (reported without a spread). Its main table gives the
#: full-data row (:data:`RESULTS`).
DATA_EFFICIENCY: dict[str, dict[float, float]] = {
    "baseline": {0.5: 94.75, 0.3: 91.26, 0.1: 88.9},
    "decoder-0-4": {0.5: 95.66, 0.3: 94.02, 0.1: 92.19},
}

"""Run profiles: how big and how long, for CI, for a 2-core CPU, and for the paper's T4 GPU.

One profile fixes everything that decides cost (image size, epochs, repeats, how many
images) so a result can always be labelled with the profile that made it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, replace

from fetalft import settings

EPOCHS_HC = 12


ImageSize = int | tuple[int, int]


def image_shape(size: ImageSize) -> tuple[int, int]:
    """``(height, width)`` of a network input: an int means a square, as in the paper."""
    if isinstance(size, numbers.Integral):  # numpy integers too (a column of load_runs)
        return int(size), int(size)
    height, width = size
    return int(height), int(width)


def size_label(size: ImageSize) -> str:
    """``192 x 192`` or ``256 x 384`` (height x width), for tables and captions."""
    height, width = image_shape(size)
    return f"{height} x {width}"


@dataclass(frozen=True)
class Profile:
    """A run profile. The defaults of the recipe fields are the paper's protocol."""

    name: str
    #: network input: an int squeezes every scan to a square, as the paper did; a
    #: (height, width) pair such as (256, 384) keeps the scans' 2:3 aspect ratio
    image_size: ImageSize
    epochs: int
    seeds: tuple[int, ...]
    batch_size: int = 10
    lr: float = 1e-4
    #: epochs of linear learning-rate warm-up before the cosine decay
    warmup_epochs: int = 0
    loss: str = "bce"
    #: how the best epoch is chosen on validation: "dice" (network size) or "hc" (the
    #: mean absolute HC error in mm at original resolution, failures counted)
    select_by: str = "dice"
    #: flip test-time augmentation: average the logits of the image and its flips
    tta: bool = False
    #: training augmentation (:data:`fetalft.data.TRAIN_TRANSFORMS`): "paper" rotates and
    #: flips; "strong" also rescales, shifts and varies brightness, contrast and gamma
    augment: str = "paper"
    #: decoder width (:data:`fetalft.models.DECODER_CHANNELS`): smp's "wide" default or a
    #: "slim" one with half the channels, which leaves room in a parameter budget to train
    #: the encoder too
    decoder: str = "wide"
    #: peak learning rate of the ImageNet encoder, which then trains as well (same warm-up
    #: and decay as the rest); 0 leaves the encoder as the strategy has it
    encoder_lr: float = 0.0
    #: decay of an exponential moving average of the weights, which is then what is
    #: validated, kept and tested (:class:`fetalft.training.Trainer`); 0: no average
    ema: float = 0.0
    #: at most this many images per role (train, val, test); None keeps the full split
    limits: dict[str, int] | None = field(default=None)
    description: str = ""

    @property
    def shape(self) -> tuple[int, int]:
        return image_shape(self.image_size)

    def as_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        image_size=64,
        epochs=1,
        seeds=(0,),
        batch_size=4,
        limits={"train": 8, "val": 4, "test": 4},
        description="CI: a handful of images at 64x64, one epoch; proves the code runs, measures nothing.",
    ),
    "cpu": Profile(
        name="cpu",
        image_size=192,
        epochs=8,
        seeds=(0, 1, 2),
        description=(
            "Real HC18 on a 2-core CPU: 192x192, 8 epochs, three seeds. On the 2-core "
            "machines this study ran on, a fine-tuned strategy takes 3 to 20 minutes per run "
            "and the from-scratch U-Net 47 minutes (AMD EPYC, bf16) to 81 minutes (Intel "
            "Xeon, fp32), so the ten strategies x three seeds take 6 to 9 hours."
        ),
    ),
    "paper": Profile(
        name="paper",
        image_size=512,
        epochs=20,
        seeds=(0, 1, 2, 3),
        description="The paper's protocol on a GPU (Colab T4): 512x512, 20 epochs, batch 10, four repeats.",
    ),
    "cpu-hc": Profile(
        name="cpu-hc",
        image_size=(256, 384),
        epochs=EPOCHS_HC,
        seeds=(0, 1, 2),
        lr=1e-3,
        warmup_epochs=1,
        loss="bce+dice",
        select_by="hc",
        tta=True,
        description=(
            "Beyond the paper, on a 2-core CPU: a recipe for measuring heads. The scans keep "
            "their 2:3 aspect ratio at 256 x 384, the learning rate warms up for one epoch "
            "and then decays from 1e-3, the loss adds Dice to BCE, the best epoch is the one "
            "with the smallest head-circumference error on validation, and predictions "
            "average the image with its flips."
        ),
    ),
}


def default_profile_name() -> str:
    """``$FETALFT_PROFILE`` if set, else ``paper`` on a GPU and ``cpu`` otherwise."""
    if name := settings.current().profile:
        return name
    import torch

    return "paper" if torch.cuda.is_available() else "cpu"


def get_profile(name: str | None = None) -> Profile:
    """The named profile (default: :func:`default_profile_name`); unknown names list the valid ones."""
    name = name or default_profile_name()
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}"
        ) from None


#: The recipe settings a run may change from its profile, one ablation row each:
#: ``python -m fetalft study --profile cpu-hc --set lr=1e-4 --set warmup_epochs=0``.
SETTINGS: dict[str, str] = {
    "image_size": "an int for a square (192) or HEIGHTxWIDTH (256x384)",
    "epochs": "a whole number >= 1",
    "lr": "a positive number (1e-4)",
    "warmup_epochs": "a whole number >= 0",
    "loss": "bce or bce+dice",
    "select_by": "dice or hc",
    "tta": "on or off",
    "augment": "paper or strong",
    "decoder": "wide or slim",
    "encoder_lr": "a number >= 0 (0: the strategy's own encoder; 1e-4 trains it at that rate)",
    "ema": "a decay in [0, 1) (0.995 averages the weights over about 200 steps; 0: none)",
}


def parse_setting(text: str) -> tuple[str, object]:
    """``"lr=1e-4"`` -> ``("lr", 0.0001)``; a bad key or value names itself and the choices."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or key not in SETTINGS:
        raise ValueError(f"setting {text!r} is not KEY=VALUE with KEY one of {', '.join(SETTINGS)}")
    try:
        parsed = _parse_value(key, value)
    except ValueError:
        raise ValueError(f"setting {text!r}: {key} must be {SETTINGS[key]}") from None
    return key, parsed


def _parse_value(key: str, value: str) -> object:
    if key == "image_size":
        height, x, width = value.lower().partition("x")
        size = (int(height), int(width)) if x else int(height)
        if min(image_shape(size)) < 32:
            raise ValueError(value)
        return size
    if key in ("epochs", "warmup_epochs"):
        number = int(value)
        if number < (1 if key == "epochs" else 0):
            raise ValueError(value)
        return number
    if key in ("lr", "encoder_lr"):
        number = float(value)
        smallest_allowed_is_zero = key == "encoder_lr"  # 0 keeps the encoder frozen
        if (
            not math.isfinite(number)
            or number < 0
            or (number == 0 and not smallest_allowed_is_zero)
        ):
            raise ValueError(value)
        return number
    if key == "ema":
        number = float(value)
        if not 0 <= number < 1:  # also refuses nan
            raise ValueError(value)
        return number
    if key == "tta":
        if value not in ("on", "off"):
            raise ValueError(value)
        return value == "on"
    allowed = {
        "loss": ("bce", "bce+dice"),
        "select_by": ("dice", "hc"),
        "augment": ("paper", "strong"),
        "decoder": ("wide", "slim"),
    }[key]
    if value not in allowed:
        raise ValueError(value)
    return value


def setting_suffix(key: str, value: object) -> str:
    """The part of a run's folder name that says what it changed: ``--lr-0.0001``."""
    if key == "image_size":
        shown = "x".join(map(str, image_shape(value)))  # type: ignore[arg-type]
    elif key in ("lr", "encoder_lr", "ema"):
        shown = f"{value:g}"  # exact to 6 digits: 2.5e-4 and 3e-4 never share a folder
    elif key == "tta":
        shown = "on" if value else "off"
    else:
        shown = str(value)
    return f"--{key.replace('_', '-')}-{shown}"


def with_settings(profile: Profile, settings: tuple[tuple[str, object], ...]) -> Profile:
    """The profile with a run's settings applied (the name stays the profile's)."""
    for key, _ in settings:
        if key not in SETTINGS:
            raise ValueError(f"unknown setting {key!r}; choose from {', '.join(SETTINGS)}")
    return replace(profile, **dict(settings))

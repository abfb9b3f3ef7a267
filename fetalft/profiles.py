"""Run profiles: how big and how long, for CI, for a 2-core CPU, and for the paper's T4 GPU.

One profile fixes everything that decides cost (image size, epochs, repeats, how many
images) so a result can always be labelled with the profile that made it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

PROFILE_ENV = "FETALFT_PROFILE"


@dataclass(frozen=True)
class Profile:
    name: str
    image_size: int  # images are resized to image_size x image_size, as in the paper
    epochs: int
    seeds: tuple[int, ...]
    batch_size: int = 10
    lr: float = 1e-4
    #: at most this many images per role (train, val, test); None keeps the full split
    limits: dict[str, int] | None = field(default=None)
    description: str = ""

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
}


def default_profile_name() -> str:
    """``$FETALFT_PROFILE`` if set, else ``paper`` on a GPU and ``cpu`` otherwise."""
    if env := os.environ.get(PROFILE_ENV):
        return env
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

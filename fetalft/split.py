"""Train / validation / test splits of the 999 annotated HC18 images.

HC18 holds several scans of one exam (``010_HC``, ``010_2HC``): same fetus, same day,
nearly the same picture. The paper split images at random, so 62 of its 200 test images
had a sibling in training. fetalft's default split keeps every exam on one side
(``"exam"``); the paper's image-level split is kept as ``"leaky"`` so the book can
measure what the leak is worth. Both are committed in ``fetalft/splits/hc18_splits.csv``
so every run and every reader uses the same images.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from importlib import resources
from typing import Literal

import numpy as np
import pandas as pd

from fetalft.hc18 import exam_id

SplitKind = Literal["exam", "leaky"]
SPLIT_KINDS: tuple[str, ...] = ("exam", "leaky")
ROLES = ("train", "val", "test")
N_TEST = 200
N_VAL = 80  # about 10% of the 799 training images, for choosing the best epoch
SEED = 2307  # the paper's arXiv number: any fixed value would do
SPLITS_CSV = "hc18_splits.csv"


def _take_groups(groups: list[list[str]], n: int) -> tuple[list[str], list[list[str]]]:
    """Fill exactly ``n`` names with whole groups, in order, skipping groups that overshoot."""
    taken, rest = [], []
    for group in groups:
        if len(taken) + len(group) <= n:
            taken.extend(group)
        else:
            rest.append(group)
    if len(taken) != n:
        raise ValueError(f"cannot pick exactly {n} images from whole exams")
    return taken, rest


def make_split(
    names: Sequence[str],
    kind: SplitKind = "exam",
    n_test: int = N_TEST,
    n_val: int = N_VAL,
    seed: int = SEED,
) -> dict[str, str]:
    """Assign each image name a role: ``"train"``, ``"val"`` or ``"test"``.

    ``"exam"`` shuffles exams and fills test, then validation, with whole exams; ``"leaky"``
    shuffles single images, like the paper. Deterministic for a given seed and name set.
    """
    if kind not in SPLIT_KINDS:
        raise ValueError(f"unknown split {kind!r}; choose one of {', '.join(SPLIT_KINDS)}")
    if n_test + n_val >= len(names):
        raise ValueError(
            f"{len(names)} images cannot give {n_test} test and {n_val} validation images"
        )
    by_exam: dict[str, list[str]] = defaultdict(list)
    for name in sorted(names):
        by_exam[exam_id(name) if kind == "exam" else name].append(name)
    groups = list(by_exam.values())
    order = np.random.default_rng(seed).permutation(len(groups))
    groups = [groups[i] for i in order]
    test, groups = _take_groups(groups, n_test)
    val, groups = _take_groups(groups, n_val)
    roles = {name: "train" for group in groups for name in group}
    roles.update(dict.fromkeys(test, "test"))
    roles.update(dict.fromkeys(val, "val"))
    return roles


def splits_table(names: Sequence[str]) -> pd.DataFrame:
    """Both splits side by side, one row per image: the committed CSV's content."""
    exam, leaky = make_split(names, "exam"), make_split(names, "leaky")
    rows = [(n, exam_id(n), exam[n], leaky[n]) for n in sorted(names)]
    return pd.DataFrame(rows, columns=["name", "exam", "exam_split", "leaky_split"])


def committed_splits() -> pd.DataFrame:
    """The split table shipped with fetalft (for the real HC18 training set)."""
    with resources.files("fetalft.splits").joinpath(SPLITS_CSV).open("r") as handle:
        return pd.read_csv(handle, dtype=str)


def split_roles(names: Sequence[str], kind: SplitKind = "exam") -> dict[str, str]:
    """Roles for ``names``: the committed split for the real HC18 set, else computed.

    Synthetic or partial data sets (tests, the smoke profile without HC18) get a split made
    by the same function, scaled to their size.
    """
    if kind not in SPLIT_KINDS:
        raise ValueError(f"unknown split {kind!r}; choose one of {', '.join(SPLIT_KINDS)}")
    table = committed_splits()
    if set(names) == set(table["name"]):
        return dict(zip(table["name"], table[f"{kind}_split"], strict=True))
    n_test = max(1, round(len(names) * N_TEST / 999))
    n_val = max(1, round(len(names) * N_VAL / 999))
    return make_split(names, kind, n_test=n_test, n_val=n_val)


def subsample(names: Sequence[str], fraction: float, seed: int = SEED) -> list[str]:
    """A fixed random ``fraction`` of ``names`` (at least one), for data-efficiency runs."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    names = sorted(names)
    count = max(1, round(fraction * len(names)))
    picked = np.random.default_rng(seed).choice(len(names), size=count, replace=False)
    return [names[i] for i in sorted(picked)]


def exams_on_both_sides(roles: dict[str, str], a: str = "train", b: str = "test") -> set[str]:
    """Exams with images in both role ``a`` and role ``b`` (empty for an honest split)."""
    exams_a = {exam_id(n) for n, r in roles.items() if r == a}
    exams_b = {exam_id(n) for n, r in roles.items() if r == b}
    return exams_a & exams_b

"""fetalft.split: deterministic splits that keep exams together (or, for "leaky", do not)."""

from __future__ import annotations

from collections import Counter
from itertools import combinations

import pandas as pd
import pytest

from fetalft.hc18 import exam_id
from fetalft.split import (
    N_TEST,
    N_VAL,
    ROLES,
    committed_splits,
    exams_on_both_sides,
    make_split,
    split_roles,
    splits_table,
    subsample,
)


def hc18_like_names() -> list[str]:
    """999 names with HC18's mix: 806 exams, 164 with a 2nd scan, 23 a 3rd, 6 a 4th."""
    names = []
    for exam in range(806):
        names.append(f"{exam:03d}_HC")
        names += [f"{exam:03d}_{k}HC" for k, n in ((2, 164), (3, 23), (4, 6)) if exam < n]
    return names


NAMES = hc18_like_names()


def role_counts(roles: dict[str, str]) -> Counter:
    return Counter(roles.values())


def test_hc18_like_names_match_the_real_mix() -> None:
    suffixes = Counter(name.split("_")[1] for name in NAMES)
    assert len(NAMES) == len(set(NAMES)) == 999
    assert suffixes == {"HC": 806, "2HC": 164, "3HC": 23, "4HC": 6}


@pytest.mark.parametrize("kind", ["exam", "leaky"])
def test_split_is_deterministic_and_independent_of_name_order(kind: str) -> None:
    first = make_split(NAMES, kind)
    assert make_split(list(reversed(NAMES)), kind) == first
    assert make_split(NAMES, kind, seed=1) != first


@pytest.mark.parametrize("kind", ["exam", "leaky"])
def test_split_sizes(kind: str) -> None:
    roles = make_split(NAMES, kind)
    assert set(roles) == set(NAMES)
    counts = role_counts(roles)
    assert counts["test"] == N_TEST == 200
    assert counts["train"] + counts["val"] == 799
    assert counts["val"] == N_VAL


@pytest.mark.parametrize(("a", "b"), list(combinations(ROLES, 2)))
def test_exam_split_shares_no_exam_between_roles(a: str, b: str) -> None:
    roles = make_split(NAMES, "exam")
    assert exams_on_both_sides(roles, a, b) == set()


def test_leaky_split_shares_exams_between_train_and_test() -> None:
    shared = exams_on_both_sides(make_split(NAMES, "leaky"), "train", "test")
    assert len(shared) > 10


def test_exams_on_both_sides_finds_a_shared_exam() -> None:
    roles = {"001_HC": "train", "001_2HC": "test", "002_HC": "test"}
    assert exams_on_both_sides(roles) == {"001"}
    assert exams_on_both_sides(roles, "test", "val") == set()


def test_exam_split_keeps_multi_scan_exams_whole() -> None:
    roles = make_split(NAMES, "exam")
    by_exam: dict[str, set[str]] = {}
    for name, role in roles.items():
        by_exam.setdefault(exam_id(name), set()).add(role)
    assert all(len(r) == 1 for r in by_exam.values())


@pytest.mark.parametrize("function", [make_split, split_roles])
def test_unknown_kind_is_an_error(function) -> None:
    with pytest.raises(ValueError, match=r"unknown split 'random'.*exam, leaky"):
        function(NAMES, "random")


def test_too_few_images_is_an_error() -> None:
    with pytest.raises(ValueError, match="cannot give"):
        make_split(NAMES[:50], "exam")


# --------------------------------------------------------------------------- split_roles


@pytest.mark.parametrize("kind", ["exam", "leaky"])
def test_split_roles_uses_the_committed_csv_for_the_real_names(kind: str) -> None:
    table = committed_splits()
    names = list(table["name"])
    expected = dict(zip(table["name"], table[f"{kind}_split"], strict=True))
    assert split_roles(list(reversed(names)), kind) == expected


def test_committed_csv_has_the_expected_columns_and_roles() -> None:
    table = committed_splits()
    assert list(table.columns) == ["name", "exam", "exam_split", "leaky_split"]
    assert set(table["exam_split"]) == set(table["leaky_split"]) == set(ROLES)


@pytest.mark.parametrize("kind", ["exam", "leaky"])
def test_split_roles_computes_a_scaled_split_for_other_names(kind: str) -> None:
    names = NAMES[:100]  # 100 of 999 -> 20 test, 8 validation
    roles = split_roles(names, kind)
    assert roles == make_split(names, kind, n_test=20, n_val=8)
    assert role_counts(roles) == {"test": 20, "val": 8, "train": 72}


def test_split_roles_gives_tiny_sets_at_least_one_test_and_val_image() -> None:
    roles = split_roles([f"{i:03d}_HC" for i in range(6)])
    assert role_counts(roles) == {"test": 1, "val": 1, "train": 4}


# --------------------------------------------------------------------------- subsample


def test_subsample_fraction_and_determinism() -> None:
    picked = subsample(NAMES, 0.1)
    assert len(picked) == 100
    assert picked == sorted(picked)
    assert set(picked) <= set(NAMES)
    assert len(set(picked)) == 100
    assert subsample(list(reversed(NAMES)), 0.1) == picked
    assert subsample(NAMES, 0.1, seed=7) != picked


def test_subsample_keeps_everything_at_fraction_one() -> None:
    assert subsample(NAMES, 1.0) == sorted(NAMES)


def test_subsample_keeps_at_least_one_name() -> None:
    assert len(subsample(NAMES[:10], 0.001)) == 1


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5])
def test_subsample_rejects_fraction_outside_zero_one(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        subsample(NAMES, fraction)


# --------------------------------------------------------------------------- mutation survivors
# Tests added after mutation testing (docs/mutation.md): each kills a mutant that survived.


def test_committed_csv_is_what_splits_table_makes_from_its_names() -> None:
    """The shipped split can be regenerated offline from its own names (no HC18 needed), so
    the committed file and the code that made it cannot drift apart."""
    committed = committed_splits()
    pd.testing.assert_frame_equal(splits_table(list(reversed(committed["name"]))), committed)


def test_committed_exam_column_is_the_exam_of_each_name() -> None:
    """Read as text: exam "010" stays "010" (as a number it would no longer match 010_HC)."""
    table = committed_splits()
    assert list(table["exam"]) == [exam_id(name) for name in table["name"]]
    assert "010" in set(table["exam"])


def test_make_split_defaults_to_the_exam_split() -> None:
    assert make_split(NAMES) == make_split(NAMES, "exam")


@pytest.mark.parametrize(("n_test", "n_val"), [(30, 20), (49, 1), (1, 49)])
def test_a_split_that_leaves_no_training_image_is_an_error(n_test: int, n_val: int) -> None:
    """50 images cannot give 50 test and validation images and still train on something."""
    with pytest.raises(ValueError, match="cannot give"):
        make_split(NAMES[:50], "leaky", n_test=n_test, n_val=n_val)

"""fetalft.profiles: the three run profiles and how the default one is chosen."""

from __future__ import annotations

import pytest
import torch

from fetalft.profiles import PROFILE_ENV, PROFILES, default_profile_name, get_profile


@pytest.fixture
def no_profile_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    return monkeypatch


def test_default_is_cpu_without_a_gpu(no_profile_env: pytest.MonkeyPatch) -> None:
    no_profile_env.setattr(torch.cuda, "is_available", lambda: False)
    assert default_profile_name() == "cpu"
    assert get_profile().name == "cpu"
    assert get_profile(None) is PROFILES["cpu"]


def test_default_is_paper_on_a_gpu(no_profile_env: pytest.MonkeyPatch) -> None:
    no_profile_env.setattr(torch.cuda, "is_available", lambda: True)
    assert get_profile().name == "paper"


@pytest.mark.parametrize("name", list(PROFILES))
def test_environment_variable_overrides_the_default(
    no_profile_env: pytest.MonkeyPatch, name: str
) -> None:
    no_profile_env.setattr(torch.cuda, "is_available", lambda: True)
    no_profile_env.setenv(PROFILE_ENV, name)
    assert get_profile().name == name
    assert get_profile("paper").name == "paper"  # an explicit name beats the variable


def test_unknown_profile_lists_the_valid_ones(no_profile_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        ValueError, match="unknown profile 'gpu'; valid profiles: smoke, cpu, paper"
    ):
        get_profile("gpu")
    no_profile_env.setenv(PROFILE_ENV, "laptop")
    with pytest.raises(ValueError, match="unknown profile 'laptop'"):
        get_profile()


def test_profile_settings() -> None:
    smoke, cpu, paper = PROFILES["smoke"], PROFILES["cpu"], PROFILES["paper"]
    # smoke: tiny and quick, a handful of images
    assert smoke.image_size <= 64 and smoke.epochs == 1 and len(smoke.seeds) == 1
    assert smoke.limits is not None and sum(smoke.limits.values()) <= 20
    assert set(smoke.limits) == {"train", "val", "test"}
    # cpu: every image, three seeds
    assert cpu.limits is None and cpu.seeds == (0, 1, 2)
    assert cpu.image_size < paper.image_size and cpu.epochs <= paper.epochs
    # paper: the paper's protocol
    assert (paper.image_size, paper.epochs, paper.batch_size, paper.lr) == (512, 20, 10, 1e-4)
    assert len(paper.seeds) == 4 and paper.limits is None
    for profile in PROFILES.values():
        assert profile.description
        assert profile.as_dict()["name"] == profile.name
        assert profile.lr == 1e-4

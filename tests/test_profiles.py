"""fetalft.profiles: the run profiles, how the default one is chosen, and run settings."""

from __future__ import annotations

import re

import pytest
import torch

from fetalft.profiles import (
    PROFILES,
    SETTINGS,
    default_profile_name,
    get_profile,
    image_shape,
    parse_setting,
    setting_suffix,
    size_label,
    with_settings,
)
from fetalft.settings import PROFILE_ENV


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
    # the paper's profiles keep the paper's recipe; only cpu-hc goes beyond it
    for profile in (smoke, cpu, paper):
        assert profile.lr == 1e-4
        assert (profile.warmup_epochs, profile.loss) == (0, "bce")
        assert (profile.select_by, profile.tta) == ("dice", False)
        assert isinstance(profile.image_size, int)


# -- cpu-hc: the recipe beyond the paper --------------------------------------------------------


def test_cpu_hc_profile() -> None:
    hc = get_profile("cpu-hc")
    assert hc is PROFILES["cpu-hc"]
    assert hc.image_size == (256, 384) and hc.shape == (256, 384)
    assert (hc.lr, hc.warmup_epochs, hc.loss) == (1e-3, 1, "bce+dice")
    assert (hc.select_by, hc.tta, hc.seeds) == ("hc", True, (0, 1, 2))
    assert hc.limits is None and hc.batch_size == 10
    assert 0 <= hc.warmup_epochs < hc.epochs
    assert hc.description
    # HC18 scans are 800 x 540 (width x height): 256 x 384 (height x width) keeps their shape
    scan_ratio, network_ratio = 800 / 540, 384 / 256
    assert abs(network_ratio / scan_ratio - 1) < 0.02
    # the squeezed 192 x 192 of the cpu profile does not
    assert abs(1 / scan_ratio - 1) > 0.3


def test_image_shape_and_size_label() -> None:
    assert image_shape(192) == (192, 192)
    assert image_shape((256, 384)) == (256, 384)
    assert image_shape([64, 96]) == (64, 96)  # as read back from JSON
    assert size_label(192) == "192 x 192"
    assert size_label((256, 384)) == "256 x 384"


# -- run settings: --set KEY=VALUE --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("image_size=256x384", ("image_size", (256, 384))),
        ("image_size=256X384", ("image_size", (256, 384))),
        ("image_size=192", ("image_size", 192)),
        ("image_size=32", ("image_size", 32)),
        ("epochs=12", ("epochs", 12)),
        ("epochs=1", ("epochs", 1)),
        ("lr=1e-4", ("lr", 1e-4)),
        ("lr=0.001", ("lr", 1e-3)),
        ("lr=3e-4", ("lr", 3e-4)),
        ("warmup_epochs=0", ("warmup_epochs", 0)),
        ("warmup_epochs=2", ("warmup_epochs", 2)),
        ("loss=bce", ("loss", "bce")),
        ("loss=bce+dice", ("loss", "bce+dice")),
        ("select_by=dice", ("select_by", "dice")),
        ("select_by=hc", ("select_by", "hc")),
        ("tta=on", ("tta", True)),
        ("tta=off", ("tta", False)),
        (" lr = 1e-4 ", ("lr", 1e-4)),
        ("decoder=slim", ("decoder", "slim")),
        ("decoder=wide", ("decoder", "wide")),
        ("encoder_lr=1e-4", ("encoder_lr", 1e-4)),
        ("encoder_lr=0", ("encoder_lr", 0.0)),
        ("ema=0.995", ("ema", 0.995)),
        ("ema=0", ("ema", 0.0)),
    ],
)
def test_parse_setting_reads_every_key(text: str, expected: tuple) -> None:
    key, value = parse_setting(text)
    assert (key, value) == expected
    assert type(value) is type(expected[1])  # 192 stays an int, "on" becomes a bool
    if isinstance(value, tuple):
        assert all(type(v) is int for v in value)


@pytest.mark.parametrize(
    "text",
    [
        "image_size=abc",
        "image_size=256x",
        "image_size=x384",
        "image_size=16",
        "image_size=256x16",
        "image_size=1.5",
        "epochs=0",
        "epochs=-3",
        "epochs=1.5",
        "epochs=many",
        "lr=abc",
        "lr=0",
        "lr=-1e-4",
        "lr=nan",
        "lr=",
        "warmup_epochs=-1",
        "warmup_epochs=0.5",
        "loss=mse",
        "loss=BCE",
        "select_by=x",
        "select_by=adf",
        "tta=yes",
        "tta=1",
        "tta=true",
        "augment=heavy",
        "augment=",
        "decoder=narrow",
        "decoder=",
        "encoder_lr=-1e-4",
        "encoder_lr=nan",
        "encoder_lr=inf",
        "encoder_lr=fast",
        "ema=1",
        "ema=1.5",
        "ema=-0.1",
        "ema=nan",
        "ema=inf",
        "ema=slow",
    ],
)
def test_parse_setting_refuses_bad_values_naming_the_text_and_the_choices(text: str) -> None:
    key = text.partition("=")[0]
    with pytest.raises(ValueError) as info:
        parse_setting(text)
    message = str(info.value)
    assert repr(text) in message
    assert SETTINGS[key] in message  # what the value may be


@pytest.mark.parametrize("text", ["lr=inf", "lr=infinity"])
def test_parse_setting_refuses_an_infinite_learning_rate(text: str) -> None:
    """An infinite learning rate is not "a positive number" a run can train with."""
    with pytest.raises(ValueError, match=re.escape(SETTINGS["lr"])):
        parse_setting(text)


@pytest.mark.parametrize("text", ["foo=1", "lr", "=1e-4", "learning_rate=1e-4", "LR=1e-4", ""])
def test_parse_setting_refuses_unknown_keys_listing_the_known_ones(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_setting(text)
    message = str(info.value)
    assert repr(text) in message
    assert ", ".join(SETTINGS) in message
    assert "KEY=VALUE" in message


def test_settings_are_the_recipe_fields_of_a_profile() -> None:
    fields = set(PROFILES["cpu"].as_dict())
    assert set(SETTINGS) <= fields
    assert set(SETTINGS) == {
        "image_size",
        "epochs",
        "lr",
        "warmup_epochs",
        "loss",
        "select_by",
        "tta",
        "augment",
        "decoder",
        "encoder_lr",
        "ema",
    }


@pytest.mark.parametrize(
    ("key", "value", "suffix"),
    [
        ("lr", 1e-4, "--lr-0.0001"),
        ("lr", 1e-3, "--lr-0.001"),
        ("lr", 3e-4, "--lr-0.0003"),
        ("image_size", (256, 384), "--image-size-256x384"),
        ("image_size", 192, "--image-size-192x192"),
        ("tta", False, "--tta-off"),
        ("tta", True, "--tta-on"),
        ("warmup_epochs", 0, "--warmup-epochs-0"),
        ("epochs", 20, "--epochs-20"),
        ("loss", "bce", "--loss-bce"),
        ("select_by", "dice", "--select-by-dice"),
        ("decoder", "slim", "--decoder-slim"),
        ("encoder_lr", 1e-4, "--encoder-lr-0.0001"),
        ("ema", 0.995, "--ema-0.995"),
        ("ema", 0.9995, "--ema-0.9995"),
    ],
)
def test_setting_suffix(key: str, value: object, suffix: str) -> None:
    assert setting_suffix(key, value) == suffix


def test_every_parsed_setting_has_a_suffix_that_reads_back() -> None:
    """The folder name of a run says what it changed: its suffix parses to the same value."""
    texts = ("image_size=256x384", "lr=1e-4", "tta=off", "warmup_epochs=0", "loss=bce")
    for text in (*texts, "decoder=slim", "encoder_lr=2.5e-5", "ema=0.999"):
        key, value = parse_setting(text)
        suffix = setting_suffix(key, value)
        shown = suffix.removeprefix("--" + key.replace("_", "-") + "-")
        assert parse_setting(f"{key}={shown}") == (key, value)


def test_with_settings_applies_values_and_refuses_unknown_keys() -> None:
    hc = PROFILES["cpu-hc"]
    changed = with_settings(hc, (("lr", 1e-4), ("tta", False), ("image_size", (192, 288))))
    assert changed.name == "cpu-hc"  # the name stays the profile's
    assert (changed.lr, changed.tta, changed.image_size) == (1e-4, False, (192, 288))
    assert changed.shape == (192, 288)
    # everything else is the profile's
    untouched = {k: v for k, v in hc.as_dict().items() if k not in ("lr", "tta", "image_size")}
    assert {k: changed.as_dict()[k] for k in untouched} == untouched
    assert hc.lr == 1e-3 and hc.tta is True  # the profile itself is unchanged
    assert with_settings(hc, ()) == hc
    for key in ("name", "seeds", "limits", "foo"):
        with pytest.raises(ValueError, match=f"unknown setting '{key}'; choose from image_size"):
            with_settings(hc, ((key, 1),))

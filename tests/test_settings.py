"""fetalft.settings: the one module that reads FETALFT_* variables, and who falls back to it.

The defaults and variable names expected here are written out by hand (and read from the
README's settings table), not taken from the module under test.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import tempfile
from pathlib import Path

import pytest
import torch

from fetalft import book, data, hc18, models, profiles, runfiles, settings
from fetalft.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fetalft"
NAMES = {
    "FETALFT_DATA_DIR",
    "FETALFT_ENCODER_WEIGHTS",
    "FETALFT_PROFILE",
    "FETALFT_RESULTS_DIR",
    "FETALFT_CHECKPOINT_DIR",
    "FETALFT_DRIVE",
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No FETALFT_* variable set, whatever the shell running the tests has; what a test (or
    the code under test) sets is undone afterwards (setenv first records the old state)."""
    for name in NAMES:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    return monkeypatch


# --------------------------------------------------------------------------- reading


def test_the_module_owns_exactly_the_documented_names() -> None:
    owned = {value for key, value in vars(settings).items() if key.endswith("_ENV")}
    assert owned == NAMES
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Settings", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"FETALFT_[A-Z_]+", table)) == NAMES
    assert set(re.findall(r"FETALFT_[A-Z_]+", settings.__doc__)) == NAMES


def test_nothing_set_gives_the_defaults() -> None:
    assert Settings.from_env({}) == Settings(
        data_dir=None,
        encoder_weights="imagenet",
        profile=None,
        results_dir=None,
        checkpoint_dir=None,
        drive=False,
    )


def test_every_variable_reaches_its_field_and_folders_expand_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    env = {
        "FETALFT_DATA_DIR": "~/hc18",
        "FETALFT_ENCODER_WEIGHTS": "/w/mobilenet.pth",
        "FETALFT_PROFILE": "smoke",
        "FETALFT_RESULTS_DIR": "/x/results",
        "FETALFT_CHECKPOINT_DIR": "~/ckpt",
        "FETALFT_DRIVE": "1",
        "FETALFT_UNRELATED": "ignored",
    }
    assert Settings.from_env(env) == Settings(
        data_dir=tmp_path / "hc18",
        encoder_weights="/w/mobilenet.pth",
        profile="smoke",
        results_dir=Path("/x/results"),
        checkpoint_dir=tmp_path / "ckpt",
        drive=True,
    )


def test_an_empty_variable_counts_as_unset() -> None:
    assert Settings.from_env(dict.fromkeys(NAMES, "")) == Settings()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), (" YES ", True), ("0", False), ("False", False), ("no", False)],
)
def test_drive_switch_values(value: str, expected: bool) -> None:
    assert Settings.from_env({"FETALFT_DRIVE": value}).drive is expected


def test_an_unknown_drive_value_is_an_error_that_says_what_to_use() -> None:
    with pytest.raises(ValueError, match=r"FETALFT_DRIVE='maybe': use 1 .* or 0"):
        Settings.from_env({"FETALFT_DRIVE": "maybe"})


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().profile = "cpu"  # type: ignore[misc]


def test_current_reads_the_environment_at_each_call(clean_env: pytest.MonkeyPatch) -> None:
    assert settings.current().profile is None
    clean_env.setenv("FETALFT_PROFILE", "smoke")
    assert settings.current().profile == "smoke"
    clean_env.setenv("FETALFT_PROFILE", "paper")
    assert settings.current().profile == "paper"


def test_every_module_falls_back_to_the_environment_at_call_time(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No module caches a setting at import: a variable set now is seen by the next call."""
    clean_env.setattr(torch.cuda, "is_available", lambda: False)
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert hc18.data_dir() == tmp_path / "cache" / "fetalft" / "hc18"
    assert models.default_encoder_weights() == "imagenet"
    assert profiles.default_profile_name() == "cpu"
    assert runfiles.results_root() == Path("results")
    assert runfiles.checkpoints_root() == Path("checkpoints")
    assert book.drive_requested() is False

    clean_env.setenv("FETALFT_DATA_DIR", str(tmp_path / "d"))
    clean_env.setenv("FETALFT_ENCODER_WEIGHTS", "/w.pth")
    clean_env.setenv("FETALFT_PROFILE", "smoke")
    clean_env.setenv("FETALFT_RESULTS_DIR", str(tmp_path / "r"))
    clean_env.setenv("FETALFT_CHECKPOINT_DIR", str(tmp_path / "c"))
    clean_env.setenv("FETALFT_DRIVE", "yes")
    assert hc18.data_dir() == tmp_path / "d"
    assert models.default_encoder_weights() == "/w.pth"
    assert profiles.default_profile_name() == "smoke"
    assert runfiles.results_root() == tmp_path / "r"
    assert runfiles.checkpoints_root() == tmp_path / "c"
    assert book.drive_requested() is True
    # an explicit argument still beats the environment
    assert hc18.data_dir("given") == Path("given")
    assert runfiles.results_root("given") == Path("given")
    assert book.drive_requested(False) is False


# --------------------------------------------------------------------------- writing


def test_export_unset_fills_only_what_is_not_set(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("FETALFT_RESULTS_DIR", str(tmp_path / "mine"))
    clean_env.setenv("FETALFT_CHECKPOINT_DIR", "")  # empty: unset
    folders = settings.export_unset(
        {
            "FETALFT_DATA_DIR": tmp_path / "drive" / "hc18",
            "FETALFT_RESULTS_DIR": tmp_path / "drive" / "results",
            "FETALFT_CHECKPOINT_DIR": tmp_path / "drive" / "checkpoints",
        }
    )
    assert folders == {
        "FETALFT_DATA_DIR": tmp_path / "drive" / "hc18",
        "FETALFT_RESULTS_DIR": tmp_path / "mine",
        "FETALFT_CHECKPOINT_DIR": tmp_path / "drive" / "checkpoints",
    }
    assert os.environ["FETALFT_DATA_DIR"] == str(tmp_path / "drive" / "hc18")
    assert os.environ["FETALFT_RESULTS_DIR"] == str(tmp_path / "mine")


def test_export_unset_refuses_what_is_not_a_folder_variable(clean_env) -> None:
    with pytest.raises(ValueError, match="FETALFT_PROFILE: not a folder variable"):
        settings.export_unset({"FETALFT_PROFILE": "cpu"})
    assert "FETALFT_PROFILE" not in os.environ


# --------------------------------------------------------------------------- the book's setup


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Downloading HC18 fails the test; synthetic scans are written under tmp_path."""
    from fetalft import download

    def refuse(*args, **kwargs):
        raise AssertionError(f"HC18 download started ({args}, {kwargs})")

    monkeypatch.setattr(download, "download", refuse)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def test_setup_data_dir_beats_the_environment(
    clean_env: pytest.MonkeyPatch, no_download, synthetic_hc18: Path, tmp_path: Path
) -> None:
    clean_env.setenv("FETALFT_DATA_DIR", str(tmp_path / "not-here"))
    setup = book.setup("smoke", data_dir=synthetic_hc18, show=False)
    assert (setup.data_dir, setup.synthetic) == (synthetic_hc18, False)


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_setup_with_synthetic_data_never_downloads(
    clean_env: pytest.MonkeyPatch, no_download, tmp_path: Path, how: str, capsys
) -> None:
    """The bug: FETALFT_DATA_DIR=synthetic in the cpu profile downloaded HC18 into ./synthetic."""
    clean_env.chdir(tmp_path)
    given = {"data_dir": "synthetic"} if how == "argument" else {}
    if how == "environment":
        clean_env.setenv("FETALFT_DATA_DIR", "synthetic")
    setup = book.setup("cpu", show=False, **given)
    assert setup.synthetic and setup.data_dir == tmp_path / "fetalft-synthetic-hc18"
    assert "synthetic scans, as asked" in capsys.readouterr().out
    assert not (tmp_path / "synthetic").exists()


def test_setup_takes_weights_and_folders_from_the_environment(
    clean_env: pytest.MonkeyPatch, no_download, synthetic_hc18: Path, tmp_path: Path
) -> None:
    clean_env.setenv("FETALFT_DATA_DIR", str(synthetic_hc18))
    clean_env.setenv("FETALFT_ENCODER_WEIGHTS", "/w/mobilenet.pth")
    clean_env.setenv("FETALFT_RESULTS_DIR", str(tmp_path / "r"))
    clean_env.setenv("FETALFT_CHECKPOINT_DIR", str(tmp_path / "c"))
    setup = book.setup("smoke", show=False)
    assert setup.data_dir == synthetic_hc18
    assert setup.encoder_weights == "/w/mobilenet.pth"
    assert (setup.results_dir, setup.checkpoint_dir) == (tmp_path / "r", tmp_path / "c")


def test_synthetic_is_the_data_modules_word(clean_env: pytest.MonkeyPatch) -> None:
    assert data.wants_synthetic("synthetic") and not data.wants_synthetic("hc18")
    assert not data.wants_synthetic()
    clean_env.setenv("FETALFT_DATA_DIR", "synthetic")
    assert data.wants_synthetic()


# --------------------------------------------------------------------------- no other reader

_ENV_ACCESS = {"environ", "getenv", "putenv", "unsetenv"}


def environment_reads(source: str) -> list[str]:
    """Every use of ``os.environ``/``os.getenv`` in ``source`` other than a read of a named
    variable that is not a FETALFT_* one (``os.environ.get("XDG_CACHE_HOME")``), as
    ``line: code``. A variable given by a constant (``os.environ.get(DATA_DIR_ENV)``), a write
    (``setdefault``) or the whole mapping counts, because each can read a FETALFT_* value."""
    tree = ast.parse(source)
    lines = source.splitlines()
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(alias.name in _ENV_ACCESS for alias in node.names):
                found.append(f"{node.lineno}: {lines[node.lineno - 1].strip()}")
            continue
        if not (
            isinstance(node, ast.Attribute)
            and node.attr in _ENV_ACCESS
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            continue
        if not _reads_another_variable(node, parents):
            found.append(f"{node.lineno}: {lines[node.lineno - 1].strip()}")
    return found


def _reads_another_variable(node: ast.Attribute, parents: dict) -> bool:
    parent = parents.get(node)
    if node.attr == "environ" and isinstance(parent, ast.Attribute) and parent.attr == "get":
        call = parents.get(parent)
    elif node.attr == "getenv":
        call = parent
    elif node.attr == "environ" and isinstance(parent, ast.Subscript):
        return _other_name(parent.slice)
    else:
        return False
    return isinstance(call, ast.Call) and bool(call.args) and _other_name(call.args[0])


def _other_name(key: ast.expr) -> bool:
    return (
        isinstance(key, ast.Constant)
        and isinstance(key.value, str)
        and not key.value.startswith("FETALFT_")
    )


@pytest.mark.parametrize(
    ("code", "flagged"),
    [
        ('os.environ.get("XDG_CACHE_HOME", "~")', False),
        ('os.environ["HOME"]', False),
        ('os.getenv("PATH")', False),
        ('os.environ.get("FETALFT_DATA_DIR")', True),
        ('os.environ["FETALFT_PROFILE"]', True),
        ('os.getenv("FETALFT_DRIVE")', True),
        ("os.environ.get(DATA_DIR_ENV) or None", True),
        ("os.environ.setdefault(env, str(folder))", True),
        ("env = dict(os.environ)", True),
        ("from os import environ", True),
    ],
)
def test_the_scan_tells_a_fetalft_read_from_another(code: str, flagged: bool) -> None:
    assert bool(environment_reads(f"import os\n{code}\n")) is flagged


def test_no_other_module_reads_a_fetalft_variable() -> None:
    """The issue: six modules read the environment each on their own."""
    readers = {
        path.name: found
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "settings.py" and (found := environment_reads(path.read_text()))
    }
    assert readers == {}, f"read FETALFT_* through fetalft.settings.current() instead: {readers}"


def test_every_fetalft_name_the_package_mentions_is_a_setting() -> None:
    """A message or help text naming a variable that does not exist sends a reader astray.
    (Python names such as ``sota.FETALFT_SPLIT`` may be mentioned in docstrings.)"""
    mentioned: dict[str, set[str]] = {}
    python_names = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name):
                python_names.add(node.id)
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for name in re.findall(r"FETALFT_[A-Z_]+", node.value):
                    mentioned.setdefault(name, set()).add(path.name)
    assert set(mentioned) >= NAMES, "a setting no message mentions: is the scan broken?"
    known = NAMES | python_names
    assert {name: files for name, files in mentioned.items() if name not in known} == {}

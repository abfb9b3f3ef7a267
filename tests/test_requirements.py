"""requirements.txt and pyproject.toml name the same packages with the same version ranges.

Jupyter Book's publishing workflow (.github/workflows/book.yml) installs from requirements.txt;
pip installs the package from pyproject.toml. requirements.txt is the package's dependencies
plus the ``book`` extra, so the two cannot drift apart. torch and torchvision carry lower bounds
only in both: an upper bound or a pin would make pip replace Colab's preinstalled build.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml needs tomli on 3.10")

ROOT = Path(__file__).resolve().parents[1]
KEEP_PREINSTALLED = ("torch", "torchvision")
#: What Colab preinstalls besides torch, which pip must keep: an upgrade of ipywidgets has broken
#: Colab's widget frontend before. (Colab's version, not read from fetalft's own files.)
COLAB_PREINSTALLED = {"ipywidgets": "7.7.1"}


def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def requirements_lines() -> list[str]:
    lines = []
    for raw in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def by_name(requirements: list[str]) -> dict[str, Requirement]:
    parsed = [Requirement(r) for r in requirements]
    names = [canonicalize_name(r.name) for r in parsed]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"listed twice: {duplicates}"
    return dict(zip(names, parsed, strict=True))


def expected() -> dict[str, Requirement]:
    project = pyproject()["project"]
    return by_name([*project["dependencies"], *project["optional-dependencies"]["book"]])


def test_requirements_txt_holds_plain_requirements_only() -> None:
    for line in requirements_lines():
        assert not line.startswith("-"), f"{line!r}: no pip options or -e/-r lines"
        Requirement(line)  # raises on anything pip would not read as a requirement


def test_requirements_txt_matches_pyproject() -> None:
    listed, wanted = by_name(requirements_lines()), expected()
    assert listed.keys() == wanted.keys(), (
        f"only in requirements.txt: {sorted(listed.keys() - wanted.keys())}; "
        f"only in pyproject.toml (dependencies + the book extra): "
        f"{sorted(wanted.keys() - listed.keys())}"
    )
    differ = {
        name: (str(listed[name]), str(wanted[name]))
        for name in wanted
        if (listed[name].specifier, listed[name].extras, listed[name].marker)
        != (wanted[name].specifier, wanted[name].extras, wanted[name].marker)
    }
    assert not differ, f"requirements.txt vs pyproject.toml: {differ}"


@pytest.mark.parametrize("name", KEEP_PREINSTALLED)
def test_torch_has_lower_bounds_only(name) -> None:
    for source, requirements in (
        ("requirements.txt", by_name(requirements_lines())),
        ("pyproject.toml", expected()),
    ):
        specifier = requirements[name].specifier
        assert specifier and all(s.operator == ">=" for s in specifier), (
            f"{source}: {name}{specifier} would replace a preinstalled {name} (Colab's); "
            "give a lower bound only"
        )


def test_dev_extra_includes_the_book_extra() -> None:
    """``pip install -e .[dev]`` (CI) builds the book with the same versions as requirements.txt."""
    extras = pyproject()["project"]["optional-dependencies"]
    dev = by_name(extras["dev"])
    for name, requirement in by_name(extras["book"]).items():
        assert name in dev and dev[name].specifier == requirement.specifier, (
            name,
            str(requirement),
        )


@pytest.mark.parametrize(("name", "version"), COLAB_PREINSTALLED.items())
def test_colabs_preinstalled_versions_satisfy_the_requirements(name, version) -> None:
    for source, requirements in (
        ("requirements.txt", by_name(requirements_lines())),
        ("pyproject.toml", expected()),
    ):
        assert requirements[name].specifier.contains(version), (
            f"{source}: {requirements[name]} would make pip replace Colab's {name} {version}"
        )

"""The book's one ref, and cutting a release (scripts/release.py).

Every URL the book prints (Colab badges, launch buttons, install cells, repository links) uses
``repository.branch`` of ``_config.yml``. These tests check that this ref resolves in the
repository (a tag that was never created sends every Colab reader to a 404 and a failing
install), that no printed URL uses another ref, and that the release script sets the version,
the ref and the notebooks together. The script is only ever run on a temporary copy of the
files it edits, which is no git checkout: nothing here writes to git.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def load_release_script():
    name = "fetalft_release_script"
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "release.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


release = load_release_script()


def config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def book_ref() -> str:
    return str(config()["repository"]["branch"])


def package_version() -> str:
    return release.read_pyproject_version((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- the ref


def git(*args: str) -> subprocess.CompletedProcess:
    """A read-only git command in the repository (rev-parse, tag -l, log)."""
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def checkout() -> Path:
    """The repository's git checkout; skips outside one (an unpacked archive, a wheel)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed, so the book's ref cannot be checked here")
    top = git("rev-parse", "--show-toplevel")
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != ROOT:
        pytest.skip(f"{ROOT} is not a git checkout, so the book's ref cannot be checked here")
    return ROOT


def resolves(ref: str) -> str | None:
    """The commit ``ref`` names, locally or as the remote's branch (a CI checkout of a pull
    request has ``origin/main`` but no local ``main``); None if it names none."""
    for candidate in (ref, f"origin/{ref}"):
        found = git("rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}")
        if found.returncode == 0:
            return found.stdout.strip()
    return None


def test_book_ref_resolves_in_the_repository(checkout) -> None:
    ref = book_ref()
    if resolves(ref):
        return
    if git("rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        pytest.skip(f"shallow clone: {ref!r} may lie outside the fetched history (fetch-depth: 0)")
    released = git(
        "log",
        "--format=%s",
        "--fixed-strings",
        f"--grep={release.commit_message(package_version())}",
    ).stdout.strip()
    if (
        ref == release.tag_for(package_version())
        and released
        and not git("tag", "-l").stdout.strip()
    ):
        pytest.skip(
            f"this clone holds no tags (git fetch --tags), so the release tag {ref} cannot be "
            "checked here; HEAD's history holds its release commit"
        )
    pytest.fail(
        f"_config.yml's repository.branch is {ref!r}, which does not resolve in this repository: "
        "every Colab badge, launch button and install cell of the book points at it. Create and "
        "push the tag (scripts/release.py prints the commands) or set the ref to one that exists."
    )


def test_book_ref_is_main_or_the_release_tag(checkout) -> None:
    ref, tag = book_ref(), release.tag_for(package_version())
    if ref == "main":
        tags = git("tag", "-l", "v*").stdout.split()
        assert not tags, (
            f"release tags exist ({', '.join(tags)}), but the book still points at main: "
            "cut a release with scripts/release.py"
        )
    else:
        assert ref == tag, f"the book's ref {ref!r} is not the release tag {tag} of the package"


def test_the_version_is_the_same_everywhere() -> None:
    import fetalft

    init = release.read_init_version((ROOT / "fetalft" / "__init__.py").read_text())
    assert package_version() == init == fetalft.__version__


def printed_refs(text: str, url: str) -> list[str]:
    """The refs named by repository URLs in ``text`` (badges, install cells, links, clones)."""
    github = url.removeprefix("https://")  # github.com/owner/name
    repo = github.removeprefix("github.com/")
    any_ref = r"[^\s\"'\\)\]#>`]+"  # git+URL@ref and --branch ref: a ref may hold "/"
    part = r"[^\s\"'\\)\]#>`/]+"  # in a URL path, the ref is one path segment
    patterns = [
        rf"{re.escape(github)}/(?:blob|tree|raw|archive)/({part})",
        rf"colab\.research\.google\.com/github/{re.escape(repo)}/blob/({part})",
        rf"mybinder\.org/v2/gh/{re.escape(repo)}/({part})",
        rf"raw\.githubusercontent\.com/{re.escape(repo)}/({part})",
        rf"git\+{re.escape(url)}(?:\.git)?@({any_ref})",
        rf"(?:--branch|-b)[ =]+({any_ref})\s+\S*{re.escape(github)}",
    ]
    return [ref for pattern in patterns for ref in re.findall(pattern, text)]


def test_printed_refs_finds_every_form() -> None:
    url = "https://github.com/o/r"
    text = (
        "[![Open In Colab](b.svg)](https://colab.research.google.com/github/o/r/blob/v1/n.ipynb)\n"
        '%pip install --quiet \\"git+https://github.com/o/r@v2\\"\n'
        "see https://github.com/o/r/tree/v3/results and git clone --depth 1 --branch v4 "
        "https://github.com/o/r.git and https://github.com/o/r (no ref)"
    )
    assert printed_refs(text, url) == ["v3", "v1", "v2", "v4"]


def test_every_printed_url_uses_the_book_ref() -> None:
    url = str(config()["repository"]["url"]).rstrip("/").removesuffix(".git")
    ref = book_ref()
    sources = [
        *sorted((ROOT / "notebooks").glob("*.ipynb")),
        *sorted((ROOT / "book").rglob("*.md")),
        ROOT / "README.md",
        *sorted((ROOT / "fetalft").rglob("*.py")),
        *sorted((ROOT / "scripts").glob("*.py")),
    ]
    found = {
        path.relative_to(ROOT).as_posix(): printed_refs(path.read_text(encoding="utf-8"), url)
        for path in sources
    }
    assert any(found.values()), "no repository URL found at all: is the badge line gone?"
    wrong = {name: sorted(set(refs) - {ref}) for name, refs in found.items() if set(refs) - {ref}}
    assert not wrong, (
        f"URLs with a ref other than _config.yml's {ref!r} (run python scripts/sync_notebooks.py "
        f"for the notebooks): {wrong}"
    )


# --------------------------------------------------------------------------- the release script


RELEASE_FILES = [
    "pyproject.toml",
    "fetalft/__init__.py",
    "_config.yml",
    "scripts/release.py",
    "scripts/sync_notebooks.py",
]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The files a release touches, copied into a folder that is no git checkout."""
    root = tmp_path / "repo"
    for name in RELEASE_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, root / name)
    (root / "notebooks").mkdir()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        shutil.copy2(path, root / "notebooks" / path.name)
    assert not (root / ".git").exists()
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def next_version() -> str:
    from packaging.version import Version

    current = Version(package_version())
    return f"{current.major}.{current.minor + 1}.0"


def test_dry_run_shows_the_changes_and_writes_nothing(copy, capsys) -> None:
    before = snapshot(copy)
    version = next_version()
    assert release.main([version, "--dry-run", "--root", str(copy)]) == 0
    out = capsys.readouterr().out
    assert snapshot(copy) == before
    assert f'+version = "{version}"' in out
    assert f'+__version__ = "{version}"' in out
    assert f"+  branch: v{version}" in out
    assert "sync_notebooks.py" in out
    assert f"git commit -m 'Release v{version}'" in out
    assert f"git tag -a v{version}" in out


def test_release_sets_the_version_and_ref_and_syncs_the_notebooks(copy) -> None:
    version, tag = next_version(), f"v{next_version()}"
    config_before = (copy / "_config.yml").read_text()
    # as a reader runs it: the copy's own script, on its own folder
    done = subprocess.run(
        [sys.executable, str(copy / "scripts" / "release.py"), version],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert release.read_pyproject_version((copy / "pyproject.toml").read_text()) == version
    assert release.read_init_version((copy / "fetalft" / "__init__.py").read_text()) == version
    config_after = (copy / "_config.yml").read_text()
    assert yaml.safe_load(config_after)["repository"]["branch"] == tag
    # only the ref changed in _config.yml: its comments stay
    changed = [
        (a, b)
        for a, b in zip(config_before.splitlines(), config_after.splitlines(), strict=True)
        if a != b
    ]
    assert len(changed) == 1 and changed[0][1].strip() == f"branch: {tag}", changed
    for path in sorted((copy / "notebooks").glob("*.ipynb")):
        refs = printed_refs(path.read_text(), "https://github.com/fetalft/fetalft")
        assert refs and set(refs) == {tag}, (path.name, refs)
    check = subprocess.run(
        [sys.executable, str(copy / "scripts" / "sync_notebooks.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # it printed, and did not run, the git commands
    assert f"git commit -m 'Release v{version}'" in done.stdout
    assert f"git tag -a {tag} -m 'fetalft {version}'" in done.stdout
    assert f"git push --atomic origin main {tag}" in done.stdout
    assert not (copy / ".git").exists()


@pytest.mark.parametrize("version", ["not-a-version", "0.0.1"])
def test_release_refuses_a_bad_or_older_version(copy, capsys, version) -> None:
    before = snapshot(copy)
    assert release.main([version, "--root", str(copy)]) == 2
    assert "release:" in capsys.readouterr().err
    assert snapshot(copy) == before


def test_release_refuses_versions_that_disagree(copy, capsys) -> None:
    init = copy / "fetalft" / "__init__.py"
    init.write_text(init.read_text().replace(package_version(), "9.9.9"))
    before = snapshot(copy)
    assert release.main([next_version(), "--root", str(copy)]) == 2
    assert "make them agree" in capsys.readouterr().err
    assert snapshot(copy) == before


def test_apply_needs_a_git_checkout_and_touches_nothing_else(copy, capsys) -> None:
    before = snapshot(copy)
    assert release.main([next_version(), "--apply", "--root", str(copy)]) == 2
    assert "git checkout" in capsys.readouterr().err
    assert snapshot(copy) == before
    with pytest.raises(SystemExit):
        release.main([next_version(), "--apply", "--dry-run", "--root", str(copy)])


def test_a_failed_sync_puts_every_file_back(copy, capsys) -> None:
    (copy / "scripts" / "sync_notebooks.py").write_text("import sys\nsys.exit('broken')\n")
    before = snapshot(copy)
    assert release.main([next_version(), "--root", str(copy)]) == 1
    assert "nothing was changed" in capsys.readouterr().err
    assert snapshot(copy) == before


def test_editors_touch_only_their_line() -> None:
    toml = '[project]\nname = "x"\nversion = "0.1.0"\n\n[tool.other]\nversion = "7"\n'
    assert release.set_pyproject_version(toml, "0.2.0") == toml.replace('"0.1.0"', '"0.2.0"')
    yml = (
        "title: t\nrepository:\n  url: https://github.com/o/r\n  # the ref\n"
        '  branch: "main"  # kept\n  path_to_book: ""\nbranch: other\n'
    )
    new = release.set_config_ref(yml, "v0.2.0")
    assert new == yml.replace('"main"', "v0.2.0")
    assert yaml.safe_load(new)["branch"] == "other"
    with pytest.raises(release.ReleaseError):
        release.set_config_ref("repository:\n  url: u\n", "v1")

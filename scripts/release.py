"""Cut a release: set the version, point the book at the release tag, sync the notebooks.

    python scripts/release.py 0.2.0            # edit the files, sync, print the git commands
    python scripts/release.py 0.2.0 --dry-run  # show the changes, write nothing
    python scripts/release.py 0.2.0 --apply    # ... and commit and tag (never pushes)

It sets the version in ``pyproject.toml`` and ``fetalft/__init__.py``, sets ``_config.yml``'s
``repository.branch`` (the one ref behind every badge, launch button and install cell the book
prints) to the tag ``v<version>``, and runs ``python scripts/sync_notebooks.py`` so that every
chapter's badge and install cell point at that tag. The tag itself must then be created on the
release commit and pushed with it, or the book's links point at a ref that does not exist
(tests/test_release.py fails until it does). Without ``--apply`` it prints the git commands
instead of running them; it never pushes.
"""

from __future__ import annotations

import argparse
import difflib
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = "pyproject.toml"
INIT = "fetalft/__init__.py"
CONFIG = "_config.yml"
SYNC = "scripts/sync_notebooks.py"
NOTEBOOKS = "notebooks"

INIT_VERSION = re.compile(r'^(__version__\s*=\s*")([^"]+)(")', re.MULTILINE)
TOML_VERSION = re.compile(r'^(version\s*=\s*")([^"]+)(")', re.MULTILINE)
BRANCH_LINE = re.compile(r"^(?P<lead>[ \t]+branch:[ \t]*)(?P<value>[^\s#]+)(?P<rest>.*)$")


class ReleaseError(RuntimeError):
    """A release that cannot be made as asked; nothing was changed."""


def tag_for(version: str) -> str:
    return f"v{version}"


def commit_message(version: str) -> str:
    """The release commit's subject (tests/test_release.py looks for it in a tagless clone)."""
    return f"Release {tag_for(version)}"


def _project_table(text: str) -> tuple[int, int]:
    """Start and end offsets of the ``[project]`` table of a pyproject.toml."""
    start = re.search(r"^\[project\][ \t]*$", text, re.MULTILINE)
    if start is None:
        raise ReleaseError(f"{PYPROJECT}: no [project] table")
    end = re.search(r"^\[", text[start.end() :], re.MULTILINE)
    return start.end(), start.end() + end.start() if end else len(text)


def read_pyproject_version(text: str) -> str:
    begin, end = _project_table(text)
    found = TOML_VERSION.findall(text[begin:end])
    if len(found) != 1:
        raise ReleaseError(f'{PYPROJECT}: expected one version = "..." in [project]')
    return found[0][1]


def set_pyproject_version(text: str, version: str) -> str:
    read_pyproject_version(text)
    begin, end = _project_table(text)
    table = TOML_VERSION.sub(rf"\g<1>{version}\g<3>", text[begin:end], count=1)
    return text[:begin] + table + text[end:]


def read_init_version(text: str) -> str:
    found = INIT_VERSION.findall(text)
    if len(found) != 1:
        raise ReleaseError(f'{INIT}: expected one __version__ = "..."')
    return found[0][1]


def set_init_version(text: str, version: str) -> str:
    read_init_version(text)
    return INIT_VERSION.sub(rf"\g<1>{version}\g<3>", text, count=1)


def read_config_ref(text: str) -> str:
    return str(yaml.safe_load(text)["repository"]["branch"])


def set_config_ref(text: str, ref: str) -> str:
    """``text`` with ``repository.branch`` set to ``ref``; comments and layout are kept."""
    lines = text.splitlines(keepends=True)
    inside, hits = False, []
    for i, line in enumerate(lines):
        if re.match(r"^repository:\s*(#.*)?$", line):
            inside = True
        elif inside and line.strip() and not line[0].isspace():
            inside = False
        elif inside and BRANCH_LINE.match(line.rstrip("\n")):
            hits.append(i)
    if len(hits) != 1:
        raise ReleaseError(f"{CONFIG}: expected one 'branch:' line under 'repository:'")
    i = hits[0]
    ending = lines[i][len(lines[i].rstrip("\r\n")) :]
    match = BRANCH_LINE.match(lines[i].rstrip("\r\n"))
    lines[i] = f"{match['lead']}{ref}{match['rest']}{ending}"
    new = "".join(lines)
    if read_config_ref(new) != ref:
        raise ReleaseError(f"{CONFIG}: could not set repository.branch to {ref}")
    return new


@dataclass
class Plan:
    """The edits of one release: file (relative to the root) -> (old text, new text)."""

    root: Path
    version: str
    current: str
    old_ref: str
    files: dict[str, tuple[str, str]]

    @property
    def tag(self) -> str:
        return tag_for(self.version)

    def diff(self) -> str:
        out = []
        for name, (old, new) in self.files.items():
            out += difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                f"a/{name}",
                f"b/{name}",
            )
        return "".join(out)


def is_git_checkout(root: Path) -> bool:
    return (root / ".git").exists()


def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=check
    )


def tag_exists(root: Path, tag: str) -> bool:
    if not is_git_checkout(root):
        return False
    return bool(git(root, "tag", "-l", tag).stdout.strip())


def plan(root: Path, version: str) -> Plan:
    """Check the request and compute the edits; raises :class:`ReleaseError`."""
    try:
        parsed = Version(version)
    except InvalidVersion:
        raise ReleaseError(f"{version!r} is not a version (for example 0.2.0)") from None
    version = str(parsed)
    texts = {name: (root / name).read_text(encoding="utf-8") for name in (PYPROJECT, INIT, CONFIG)}
    current = read_pyproject_version(texts[PYPROJECT])
    if read_init_version(texts[INIT]) != current:
        raise ReleaseError(
            f"{PYPROJECT} says {current} but {INIT} says {read_init_version(texts[INIT])}: "
            "make them agree first"
        )
    if parsed <= Version(current):
        raise ReleaseError(f"{version} is not newer than the current version {current}")
    tag = tag_for(version)
    if tag_exists(root, tag):
        raise ReleaseError(f"the tag {tag} exists already")
    new = {
        PYPROJECT: set_pyproject_version(texts[PYPROJECT], version),
        INIT: set_init_version(texts[INIT], version),
        CONFIG: set_config_ref(texts[CONFIG], tag),
    }
    return Plan(
        root,
        version,
        current,
        read_config_ref(texts[CONFIG]),
        {name: (texts[name], new[name]) for name in texts},
    )


def git_commands(p: Plan) -> list[list[str]]:
    """What commits and tags the release (run with --apply), in order."""
    return [
        ["git", "add", PYPROJECT, INIT, CONFIG, NOTEBOOKS],
        ["git", "commit", "-m", commit_message(p.version)],
        ["git", "tag", "-a", p.tag, "-m", f"fetalft {p.version}"],
    ]


def push_command(p: Plan) -> list[str]:
    return ["git", "push", "--atomic", "origin", "main", p.tag]


def _notebooks(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in sorted((root / NOTEBOOKS).glob("*.ipynb"))}


def sync_notebooks(root: Path, check: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, str(root / SYNC), *(["--check"] if check else [])]
    return subprocess.run(command, cwd=root, capture_output=True, text=True)


def apply(p: Plan) -> list[str]:
    """Write the edits and sync the notebooks; on failure every file is put back.

    Returns the notebooks the sync rewrote (its output lines)."""
    saved_notebooks = _notebooks(p.root)
    try:
        for name, (_, new) in p.files.items():
            (p.root / name).write_text(new, encoding="utf-8")
        synced = sync_notebooks(p.root)
        if synced.returncode != 0:
            raise ReleaseError(f"{SYNC} failed:\n{synced.stdout}{synced.stderr}")
        checked = sync_notebooks(p.root, check=True)
        if checked.returncode != 0:
            raise ReleaseError(f"notebooks still out of sync:\n{checked.stdout}{checked.stderr}")
    except BaseException:
        for name, (old, _) in p.files.items():
            (p.root / name).write_text(old, encoding="utf-8")
        for path, data in saved_notebooks.items():
            path.write_bytes(data)
        raise
    return [line for line in synced.stdout.splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", help="the new version, for example 0.2.0 (tag v0.2.0)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="show the changes, write nothing")
    mode.add_argument(
        "--apply", action="store_true", help="also run git add, commit and tag (never push)"
    )
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the repository to release (default: this one)"
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()

    try:
        if args.apply:
            if not is_git_checkout(root):
                raise ReleaseError(f"--apply needs a git checkout; {root} is not one")
            dirty = git(root, "status", "--porcelain", "--untracked-files=no").stdout
            if dirty.strip():
                raise ReleaseError(
                    "--apply needs a clean work tree (the release commit holds only the "
                    f"release's changes); commit or stash first:\n{dirty}"
                )
        p = plan(root, args.version)
    except ReleaseError as error:
        print(f"release: {error}", file=sys.stderr)
        return 2

    print(f"fetalft {p.current} -> {p.version}; the book's ref {p.old_ref} -> {p.tag}")
    commands = git_commands(p)
    if args.dry_run:
        print(p.diff(), end="")
        print(f"would run: python {SYNC} (every notebook's badge and install cell -> {p.tag})")
        print("then:")
        for command in [*commands, push_command(p)]:
            print(f"  {shlex.join(command)}")
        return 0

    try:
        for line in apply(p):
            print(f"  {line}")
    except ReleaseError as error:
        print(f"release: {error}\nnothing was changed", file=sys.stderr)
        return 1
    print(f"set the version in {PYPROJECT} and {INIT}, {CONFIG}'s ref, and synced the notebooks")

    if args.apply:
        for command in commands:
            print(f"$ {shlex.join(command)}")
            done = git(root, *command[1:], check=False)
            if done.returncode != 0:
                print(done.stdout + done.stderr, file=sys.stderr)
                return 1
        print(f"committed and tagged {p.tag}; publish both with:")
    else:
        print("review with `git diff`, then commit, tag and publish:")
        for command in commands:
            print(f"  {shlex.join(command)}")
    print(f"  {shlex.join(push_command(p))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

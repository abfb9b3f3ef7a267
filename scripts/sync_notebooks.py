"""Write every chapter's "Open in Colab" badge and install cell from ``_config.yml``.

The repository URL and the fixed ref (``repository.url`` and ``repository.branch``, which
must be a tag or commit, never a moving branch) live only in ``_config.yml``. Each notebook
in ``notebooks/`` starts with

1. a markdown cell: the chapter title, then the badge line (rewritten here),
2. the install cell (tagged ``fetalft-install``, rewritten here): installs fetalft pinned
   to that ref, only when ``import fetalft`` fails, and leaves an installed torch alone,

followed by the chapter's own cells, which this script never touches.

    python scripts/sync_notebooks.py          # rewrite the notebooks that are out of sync
    python scripts/sync_notebooks.py --check  # exit 1 and name them instead (used by tests)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
INSTALL_TAG = "fetalft-install"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_LINE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)[ \t]*$", re.MULTILINE)


def load_config(root: Path = ROOT) -> dict:
    return yaml.safe_load((root / "_config.yml").read_text())


def repository(config: dict) -> tuple[str, str, str]:
    """``(url, ref, path_to_book)`` from ``_config.yml``; the URL without ``.git`` or ``/``."""
    repo = config["repository"]
    url = str(repo["url"]).rstrip("/").removesuffix(".git")
    ref = str(repo["branch"])
    if ref in ("main", "master", "HEAD"):
        raise ValueError(
            f"repository.branch in _config.yml is {ref!r}, a moving branch: pin a tag or commit"
        )
    return url, ref, str(repo.get("path_to_book") or "").strip("/")


def colab_url(config: dict, notebook: str) -> str:
    """The Colab link that opens ``notebook`` (path relative to the book) at the fixed ref."""
    url, ref, book_path = repository(config)
    github = url.removeprefix("https://github.com/")
    colab = config.get("launch_buttons", {}).get("colab_url", "https://colab.research.google.com")
    path = f"{book_path}/{notebook}" if book_path else notebook
    return f"{colab.rstrip('/')}/github/{github}/blob/{ref}/{path}"


def badge(config: dict, notebook: str) -> str:
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(config, notebook)})"


def install_source(config: dict) -> str:
    url, ref, _ = repository(config)
    return (
        "# Install fetalft at this book's release, only if it is missing (Colab).\n"
        "# pip keeps the installed torch (Colab's own build).\n"
        "try:\n"
        "    import fetalft\n"
        "except ImportError:\n"
        f'    %pip install --quiet "git+{url}@{ref}"\n'
        "    import fetalft\n"
        'print(f"fetalft {fetalft.__version__}")'
    )


def synced(nb: nbformat.NotebookNode, config: dict, notebook: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` with the badge and install cell generated from ``config``."""
    nb = nbformat.from_dict(nb)
    cells = nb.cells
    if not cells or cells[0].cell_type != "markdown" or not cells[0].source.startswith("# "):
        raise ValueError(f"{notebook}: the first cell must be markdown starting with '# <title>'")
    first = cells[0]
    line = badge(config, notebook)
    if BADGE_LINE.search(first.source):
        first.source = BADGE_LINE.sub(line, first.source, count=1)
    else:
        title, _, rest = first.source.partition("\n")
        first.source = f"{title}\n\n{line}\n" + (f"\n{rest.lstrip()}" if rest.strip() else "")
    source = install_source(config)
    has_install = len(cells) > 1 and INSTALL_TAG in cells[1].get("metadata", {}).get("tags", [])
    if has_install:
        if cells[1].source != source:
            cells[1].source = source
            cells[1].outputs = []
            cells[1].execution_count = None
    else:
        cells.insert(1, nbformat.v4.new_code_cell(source, metadata={"tags": [INSTALL_TAG]}))
    return nb


def _opening(nb: nbformat.NotebookNode) -> list[tuple[str, str, list[str]]]:
    """What this script owns: the first two cells' type, source and tags."""
    return [(c.cell_type, c.source, c.get("metadata", {}).get("tags", [])) for c in nb.cells[:2]]


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def out_of_sync(root: Path = ROOT, write: bool = False) -> list[Path]:
    """The notebooks whose badge or install cell differ from ``_config.yml`` (rewritten if
    ``write``)."""
    config = load_config(root)
    stale = []
    for path in notebooks(root):
        nb = nbformat.read(path, as_version=4)
        new = synced(nb, config, path.relative_to(root).as_posix())
        if _opening(new) != _opening(nb):
            stale.append(path)
            if write:
                nbformat.write(new, path)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if stale")
    args = parser.parse_args(argv)
    stale = out_of_sync(write=not args.check)
    for path in stale:
        verb = "out of sync" if args.check else "updated"
        print(f"{path.relative_to(ROOT)}: {verb}")
    if args.check and stale:
        print("run: python scripts/sync_notebooks.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write the parts of every chapter that come from elsewhere: badge, install cell, package code.

The notebooks in ``notebooks/`` hold three kinds of generated cells, which this script
rewrites from their single source, and one kind of checked cell (4 below). ``--check`` only
reports (tests/test_book.py and tests/test_single_source.py call it), so a chapter can never
show something else than what the package runs.

1. **The badge** (in the first cell, a markdown cell starting with the chapter title) and
2. **the install cell** (the second cell, tagged ``fetalft-install`` and ``hide-input``):
   the repository URL and the ref (``repository.url`` and ``repository.branch``: the release
   tag, or ``main`` until the first release, see ``scripts/release.py``; never another moving
   branch) live only in ``_config.yml``. In Colab the cell makes a shallow clone of the
   repository at that ref (the package, the committed study in ``results/`` and the shipped
   model), pip-installs it, which keeps Colab's torch, torchvision and ipywidgets (their
   requirements are lower bounds Colab meets), and works from the clone, so the chapters
   find the committed study. A failure prints the commands to run by hand, not a traceback.
   Outside Colab (CI, a local clone) it only imports fetalft.
   **The notebook metadata** asks Colab for a T4 GPU (``accelerator`` and ``colab.gpuType``,
   the keys Colab itself writes), so a reader gets the GPU without changing the runtime.
3. **Package source cells**: the code a chapter teaches is the package's own. Any cell,
   in any notebook, tagged ``fetalft-source`` and carrying the cell metadata ::

       {"fetalft": {"source": "fetalft.training.make_loss"}}

   holds exactly ``inspect.getsource`` of that object, dedented and without the trailing
   newline. The name is any importable dotted path (module, then attributes:
   ``fetalft.training.Trainer.train_epoch``, or a third-party one such as
   ``segmentation_models_pytorch.base.model.SegmentationModel.freeze_encoder``).

   - A **code cell** holds a module-level function or class as it is and runs in the
     chapter, so the chapter executes the package's code (its imports must come first).
   - A **markdown cell** holds it as a ```` ```python ```` block, for what cannot run on its
     own: methods (``Trainer.train_epoch``), classes whose annotations name themselves.
     A method is never put in a code cell: ``ruff format`` would re-wrap its dedented lines.

   To add one, insert a cell with the tag and the metadata (any body) and run this script;
   write the prose around it in separate cells. The tag without the metadata, the metadata
   without the tag, or a name that does not resolve is an error, not a silent skip.

4. **Mirror cells** are the other half of the single source: a chapter's own minimal
   version of package code, written for reading (chapter 4's plain PyTorch training loop
   beside ``Trainer.fit``). A code cell tagged ``fetalft-mirror`` with the metadata
   ``{"fetalft": {"mirrors": "<dotted name>"}}`` is left as written here, but
   tests/test_single_source.py runs it beside the package on a small input and fails when
   the results differ, or when no check is registered for it (``MIRROR_CHECKS``).

Everything else in a chapter is its own and never touched.

    python scripts/sync_notebooks.py                  # rewrite the notebooks out of sync
    python scripts/sync_notebooks.py notebooks/04_training.ipynb   # only these
    python scripts/sync_notebooks.py --check          # exit 1 and name them instead
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
import textwrap
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
INSTALL_TAG = "fetalft-install"
#: Tags every install cell carries: the book collapses its input (myst-nb's ``hide-input``).
INSTALL_TAGS = (INSTALL_TAG, "hide-input")
SOURCE_TAG = "fetalft-source"
#: ``cell.metadata[METADATA_KEY]["source"]``: the dotted name a source cell shows.
METADATA_KEY = "fetalft"
#: Refs that move under the book. ``main`` is allowed: it is the ref until the first release
#: (tests/test_release.py fails once a release tag exists and the book still points at main).
MOVING_REFS = ("master", "HEAD")
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_LINE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)[ \t]*$", re.MULTILINE)


class SourceError(ValueError):
    """A package source cell that cannot be written: bad tag, metadata or name."""


def load_config(root: Path = ROOT) -> dict:
    return yaml.safe_load((root / "_config.yml").read_text())


def repository(config: dict) -> tuple[str, str, str]:
    """``(url, ref, path_to_book)`` from ``_config.yml``; the URL without ``.git`` or ``/``."""
    repo = config["repository"]
    url = str(repo["url"]).rstrip("/").removesuffix(".git")
    ref = str(repo["branch"])
    if ref in MOVING_REFS:
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


#: Where the install cell clones the repository in Colab (its working folder is /content).
COLAB_CLONE = "/content/fetalft"
#: Notebook metadata that opens a chapter in Colab on a T4 GPU runtime (Colab's own keys).
COLAB_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4"}}


def install_source(config: dict) -> str:
    """The install cell: in Colab, clone at the book's ref, pip-install, work from the clone."""
    url, ref, _ = repository(config)
    return f"""# Colab: fetch this book's repository at its release (the package, the committed study and
# the shipped model), install it beside Colab's own torch and ipywidgets, and work from it.
# Anywhere else this cell only checks that fetalft is installed.
import os
import subprocess
import sys

REPOSITORY, REF, CLONE = "{url}", "{ref}", "{COLAB_CLONE}"
if "google.colab" in sys.modules:
    try:
        if not os.path.isdir(CLONE):
            clone = ["git", "clone", "--quiet", "--depth", "1", "--branch", REF, REPOSITORY, CLONE]
            subprocess.run(clone, check=True, capture_output=True, text=True)
        pip = [sys.executable, "-m", "pip", "install", "--quiet", CLONE]
        subprocess.run(pip, check=True, capture_output=True, text=True)
        os.chdir(CLONE)
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"Installing fetalft failed: {{getattr(error, 'stderr', '') or error}}")
        print(
            "Run these in a new cell, then this chapter from the top:\\n"
            f"  !git clone --depth 1 --branch {{REF}} {{REPOSITORY}} {{CLONE}}\\n"
            f"  %pip install {{CLONE}}\\n"
            f"  %cd {{CLONE}}"
        )
try:
    import fetalft
except ImportError:
    print("fetalft is not installed: in a clone of the repository, run pip install -e .")
else:
    print(f"fetalft {{fetalft.__version__}}")"""


def sync_metadata(nb: nbformat.NotebookNode) -> None:
    """Set :data:`COLAB_METADATA` in ``nb.metadata``, keeping Colab's other keys."""
    nb.metadata["accelerator"] = COLAB_METADATA["accelerator"]
    colab = nb.metadata.setdefault("colab", {})
    colab.update(COLAB_METADATA["colab"])
    colab.setdefault("provenance", [])


def colab_metadata(nb: nbformat.NotebookNode) -> dict:
    """The part of ``nb.metadata`` that :func:`sync_metadata` owns."""
    colab = nb.metadata.get("colab", {})
    return {
        "accelerator": nb.metadata.get("accelerator"),
        "colab": {key: colab.get(key) for key in COLAB_METADATA["colab"]},
    }


# --------------------------------------------------------------------------- package source


def resolve(name: str) -> object:
    """The object a dotted name refers to: the longest importable module, then attributes."""
    parts = name.split(".")
    if not name or not all(part.isidentifier() for part in parts):
        raise SourceError(f"{name!r} is not a dotted Python name")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            # only "this module does not exist" means: try a shorter prefix
            if error.name is None or not (module_name + ".").startswith(error.name + "."):
                raise
            continue
        for depth, attribute in enumerate(parts[cut:], start=cut + 1):
            try:
                obj = getattr(obj, attribute)
            except AttributeError:
                raise SourceError(
                    f"{name}: {'.'.join(parts[: depth - 1])} has no attribute {attribute!r}"
                ) from None
        return obj
    raise SourceError(f"{name}: no module {parts[0]!r}")


def package_source(name: str) -> str:
    """``inspect.getsource`` of ``name``, dedented, without the trailing newline."""
    obj = resolve(name)
    if isinstance(obj, property):
        obj = obj.fget
    obj = inspect.unwrap(obj)
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError) as error:
        raise SourceError(f"{name}: no source code to show ({error})") from None
    return textwrap.dedent(source).rstrip("\n")


def source_name(cell: nbformat.NotebookNode) -> str | None:
    """The dotted name a cell shows (None for any other cell); a half-marked cell is an error."""
    tagged = SOURCE_TAG in cell.get("metadata", {}).get("tags", [])
    meta = cell.get("metadata", {}).get(METADATA_KEY, {})
    name = meta.get("source") if isinstance(meta, dict) else None
    if tagged and not name:
        raise SourceError(
            f"a cell tagged {SOURCE_TAG!r} needs the metadata "
            f'{{"{METADATA_KEY}": {{"source": "<dotted name>"}}}}'
        )
    if name and not tagged:
        raise SourceError(f"the cell showing {name} lacks the tag {SOURCE_TAG!r}")
    return name


def source_body(cell_type: str, name: str) -> str:
    """What a source cell of ``cell_type`` holds for ``name``."""
    source = package_source(name)
    if cell_type == "markdown":
        return f"```python\n{source}\n```"
    if cell_type != "code":
        raise SourceError(f"{name}: a source cell is a code or markdown cell, not {cell_type}")
    obj = inspect.unwrap(resolve(name))
    qualname = getattr(obj, "__qualname__", name.rpartition(".")[2])
    if "." in qualname:
        raise SourceError(
            f"{name} is not defined at module level: show it in a markdown cell, "
            "a code cell cannot run it on its own"
        )
    return source


def source_cells(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """``(cell index, dotted name)`` of every package source cell of ``nb``."""
    found = []
    for index, cell in enumerate(nb.cells):
        try:
            name = source_name(cell)
        except SourceError as error:
            raise SourceError(f"cell {index} ({cell.get('id')}): {error}") from None
        if name:
            found.append((index, name))
    return found


def _sync_sources(nb: nbformat.NotebookNode) -> None:
    for index, name in source_cells(nb):
        cell = nb.cells[index]
        try:
            body = source_body(cell.cell_type, name)
        except SourceError as error:
            raise SourceError(f"cell {index} ({cell.get('id')}): {error}") from None
        if cell.source != body:
            cell.source = body
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None


# --------------------------------------------------------------------------- notebooks


def synced(nb: nbformat.NotebookNode, config: dict, notebook: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` with the badge, the install cell and the package source cells
    generated from ``config`` and the package."""
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
        tags = cells[1].metadata.setdefault("tags", [])
        tags.extend(tag for tag in INSTALL_TAGS if tag not in tags)
    else:
        cells.insert(1, nbformat.v4.new_code_cell(source, metadata={"tags": list(INSTALL_TAGS)}))
    sync_metadata(nb)
    try:
        _sync_sources(nb)
    except SourceError as error:
        raise SourceError(f"{notebook}: {error}") from None
    return nb


def _generated(nb: nbformat.NotebookNode) -> list:
    """What this script owns: the Colab metadata, the first two cells, the package source cells."""
    owned = [(c.cell_type, c.source, c.get("metadata", {}).get("tags", [])) for c in nb.cells[:2]]
    sources = [(i, nb.cells[i].cell_type, nb.cells[i].source) for i, _ in source_cells(nb)]
    return [colab_metadata(nb), *owned, *sources]


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def out_of_sync(
    root: Path = ROOT, write: bool = False, paths: list[Path] | None = None
) -> list[Path]:
    """The notebooks (all, or ``paths``) whose generated cells differ from their sources
    (rewritten if ``write``). Raises :class:`SourceError` for a source cell naming nothing."""
    config = load_config(root)
    stale = []
    for path in paths or notebooks(root):
        path = Path(path).resolve()
        nb = nbformat.read(path, as_version=4)
        new = synced(nb, config, path.relative_to(root).as_posix())
        if _generated(new) != _generated(nb):
            stale.append(path)
            if write:
                nbformat.write(new, path)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter")
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if stale")
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path[:1]:
        sys.path.insert(0, str(ROOT))  # the package of this checkout is the source
    try:
        stale = out_of_sync(write=not args.check, paths=args.notebooks)
    except SourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in stale:
        verb = "out of sync" if args.check else "updated"
        print(f"{path.relative_to(ROOT)}: {verb}")
    if args.check and stale:
        print("run: python scripts/sync_notebooks.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The Jupyter Book: notebooks in sync with _config.yml, the build, and the pages in Chromium.

The book is built from the notebooks as committed (with their outputs; _config.yml has
execute_notebooks "off"), with Sphinx warnings as errors, into ``_build/test-book``. Each
chapter page is then opened in headless Chromium (Debian's ``chromium``): it must load, carry
its title, show no error output, and hold every figure its notebook has. Screenshots go to
``_build/screenshots``. Executing the notebooks is nbmake's job (``pytest --nbmake``).
"""

from __future__ import annotations

import html
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build" / "test-book"
HTML = BUILD / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"], *(chapter["file"] for chapter in toc["chapters"])]


NOTEBOOK_CHAPTERS = [f for f in toc_files() if f.startswith("notebooks/")]


def notebook(chapter: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / f"{chapter}.ipynb", as_version=4)


def chapter_title(chapter: str) -> str:
    """The notebook's first heading, as Sphinx will print it (``# 2. The HC18 dataset``)."""
    first = notebook(chapter).cells[0].source.splitlines()[0]
    return first.lstrip("#").strip()


def figure_count(chapter: str) -> int:
    """Image outputs the committed notebook holds."""
    return sum(
        1
        for cell in notebook(chapter).cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {}) or "image/svg+xml" in output.get("data", {})
    )


def load_sync_script():
    spec = importlib.util.spec_from_file_location(
        "sync_notebooks", ROOT / "scripts" / "sync_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- without a build


def test_every_toc_chapter_exists_and_every_notebook_is_in_the_toc() -> None:
    for entry in toc_files():
        assert any((ROOT / f"{entry}{suffix}").is_file() for suffix in (".md", ".ipynb")), entry
    listed = set(NOTEBOOK_CHAPTERS)
    on_disk = {f"notebooks/{p.stem}" for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert on_disk == listed, f"not in _toc.yml: {on_disk - listed}; missing: {listed - on_disk}"


def test_notebooks_are_in_sync_with_config() -> None:
    stale = load_sync_script().out_of_sync(ROOT)
    assert not stale, (
        f"run `python scripts/sync_notebooks.py`: {[p.name for p in stale]} out of sync"
    )


def test_badges_and_install_cells_point_at_the_pinned_ref() -> None:
    sync = load_sync_script()
    config = sync.load_config(ROOT)
    url, ref, _ = sync.repository(config)
    for chapter in NOTEBOOK_CHAPTERS:
        cells = notebook(chapter).cells
        assert f"/blob/{ref}/{chapter}.ipynb" in cells[0].source
        assert f"git+{url}@{ref}" in cells[1].source
        assert (
            "import fetalft" in cells[1].source and "torch" not in cells[1].source.split("pip")[-1]
        )
        assert "from fetalft.book import setup" in cells[2].source


def test_sync_rejects_a_moving_branch() -> None:
    sync = load_sync_script()
    with pytest.raises(ValueError, match="moving branch"):
        sync.repository({"repository": {"url": "https://github.com/x/y", "branch": "master"}})


# --------------------------------------------------------------------------- the build


@pytest.fixture(scope="module")
def built_book() -> Path:
    """Build the book once (about a minute) with warnings as errors."""
    command = shutil.which("jupyter-book") or str(Path(sys.executable).with_name("jupyter-book"))
    if BUILD.exists():
        shutil.rmtree(BUILD)
    result = subprocess.run(
        [
            command,
            "build",
            str(ROOT),
            "--path-output",
            str(BUILD),
            "--all",
            "--warningiserror",
            "--keep-going",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = result.stdout[-6000:] + result.stderr[-6000:]
    assert result.returncode == 0, f"jupyter-book build failed:\n{log}"
    assert (HTML / "index.html").is_file(), log
    return HTML


def page(html_root: Path, chapter: str) -> Path:
    return html_root / f"{chapter}.html"


def test_book_builds_every_chapter(built_book: Path) -> None:
    for chapter in toc_files():
        assert page(built_book, chapter).is_file(), chapter


def test_table_of_contents_lists_every_chapter(built_book: Path) -> None:
    text = page(built_book, toc_files()[0]).read_text()
    start = text.find('id="pst-primary-sidebar"')
    assert start >= 0, "no sidebar (table of contents) in the built page"
    nav = text[start:]
    for chapter in toc_files()[1:]:
        name = Path(chapter).name
        assert re.search(rf'href="[^"]*{re.escape(name)}\.html"', nav), f"{chapter} not in the TOC"
    for chapter in NOTEBOOK_CHAPTERS:
        assert html.escape(chapter_title(chapter), quote=False) in nav, chapter_title(chapter)


# --------------------------------------------------------------------------- Chromium


def chromium(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--virtual-time-budget=3000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def article(dom: str) -> str:
    """The page's main content (the chapter itself, without navigation)."""
    start = dom.find('<article class="bd-article"')
    return dom[start : dom.find("</article>", start)] if start >= 0 else dom


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package chromium)")
@pytest.mark.parametrize("chapter", NOTEBOOK_CHAPTERS)
def test_chapter_renders_in_chromium(built_book: Path, chapter: str) -> None:
    path = page(built_book, chapter)
    url = path.as_uri()
    result = chromium("--dump-dom", url)
    assert result.returncode == 0 and "<html" in result.stdout, result.stderr[-2000:]
    dom = result.stdout
    title = chapter_title(chapter)
    found = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert found and title in html.unescape(found.group(1)), f"title {title!r} not in <title>"
    body = article(dom)
    assert re.search(r"<h1[^>]*>", body), "no chapter heading"
    assert "Traceback (most recent call last)" not in body, "a cell shows a traceback"
    assert not re.search(r'class="[^"]*output (?:error|traceback)', body), "error output cell"
    for stderr in re.findall(r'class="[^"]*output stderr[^"]*".*?</div>', body, re.S):
        assert "Error" not in stderr, f"error on stderr: {stderr[:500]}"
    figures = [
        src
        for src in re.findall(r'<img[^>]*src="([^"]+)"', body)
        if urlparse(src).scheme in ("", "file") and "_images/" in src
    ]
    expected = figure_count(chapter)
    assert expected > 0, (
        f"{chapter} has no figure outputs: execute it (scripts/execute_notebooks.sh)"
    )
    assert len(figures) >= expected, f"{len(figures)} figures on the page, notebook has {expected}"
    for src in figures:
        assert (path.parent / unquote(urlparse(src).path)).resolve().is_file(), f"broken {src}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"{Path(chapter).name}.png"
    result = chromium(f"--screenshot={shot}", "--window-size=1280,2400", url)
    assert shot.is_file() and shot.stat().st_size > 10_000, result.stderr[-2000:]


def test_shown_path_never_prints_the_machines_absolute_path(tmp_path, monkeypatch) -> None:
    """Committed chapter outputs are read online: paths relative to the repository or ~."""
    from fetalft.book import project_root, shown_path

    root = project_root(Path(__file__))
    monkeypatch.chdir(root)
    assert shown_path(root / "results" / "cpu") == "results/cpu"
    assert shown_path(root.parent / "shared" / "hc18") == "../shared/hc18"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert shown_path(tmp_path / "ckpt") == "~/ckpt"
    assert shown_path("/opt/elsewhere/data") == ".../data"

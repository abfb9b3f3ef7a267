"""The Jupyter Book: notebooks in sync with _config.yml, the build, and the pages in Chromium.

The book is built from the notebooks as committed (with their outputs; _config.yml has
execute_notebooks "off"), with Sphinx warnings as errors, into ``_build/test-book``. Each
chapter page is then opened in headless Chromium (Debian's ``chromium``): it must load, carry
its title, show no error output, and hold every figure its notebook has. Screenshots go to
``_build/screenshots``. Every page (introduction, chapters, references) is also laid out at a
desktop width and measured: nothing may stick out of the text column or be clipped without a
scrollbar, every figure is shown at its own width (not scaled down, which would make its text
smaller than the page's), and a mean ± sd never breaks across lines. The built HTML must hold
no path of the machine that executed the notebooks. Executing the notebooks is nbmake's job
(``pytest --nbmake``).

``FETALFT_BOOK_ROOT=<folder>`` builds and tests another copy of the book instead (for example
a scratch copy with re-executed chapters), into ``<folder>/_build/test-book``.
``FETALFT_BOOK_BUILD=<folder>`` tests a book already built there
(``jupyter-book build . --path-output <folder>``) instead of building one.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
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
BOOK = Path(os.environ.get("FETALFT_BOOK_ROOT", ROOT)).resolve()  # the copy that is built
BUILD = BOOK / "_build" / "test-book"
HTML = BUILD / "_build" / "html"
SCREENSHOTS = BOOK / "_build" / "screenshots"
PREBUILT = os.environ.get("FETALFT_BOOK_BUILD")  # a book built elsewhere: test it as it is
CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"], *(chapter["file"] for chapter in toc["chapters"])]


NOTEBOOK_CHAPTERS = [f for f in toc_files() if f.startswith("notebooks/")]


def notebook(chapter: str) -> nbformat.NotebookNode:
    return nbformat.read(BOOK / f"{chapter}.ipynb", as_version=4)


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
        assert f'REPOSITORY, REF, CLONE = "{url}", "{ref}", ' in cells[1].source
        assert '"--branch", REF, REPOSITORY' in cells[1].source
        code = "\n".join(line for line in cells[1].source.splitlines() if not line.startswith("#"))
        assert "import fetalft" in code and "torch" not in code
        assert "from fetalft.book import setup" in cells[2].source


def test_sync_rejects_a_moving_branch() -> None:
    sync = load_sync_script()
    with pytest.raises(ValueError, match="moving branch"):
        sync.repository({"repository": {"url": "https://github.com/x/y", "branch": "master"}})


# --------------------------------------------------------------------------- the build


@pytest.fixture(scope="module")
def built_book() -> Path:
    """Build the book once (about a minute) with warnings as errors, or use FETALFT_BOOK_BUILD."""
    if PREBUILT:
        html_root = Path(PREBUILT).resolve() / "_build" / "html"
        assert (html_root / "index.html").is_file(), (
            f"FETALFT_BOOK_BUILD={PREBUILT} holds no built book: run "
            f"jupyter-book build . --path-output {PREBUILT}"
        )
        return html_root
    command = shutil.which("jupyter-book") or str(Path(sys.executable).with_name("jupyter-book"))
    if BUILD.exists():
        shutil.rmtree(BUILD)
    result = subprocess.run(
        [
            command,
            "build",
            str(BOOK),
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


# Layout at a desktop width. The script runs after load, walks the chapter's content and reports
# every element wider than its box (clipped) or reaching past the text column. Code input may
# scroll (the element or an ancestor inside the article scrolls horizontally, so a scrollbar
# shows the rest); a cell's output may not: printed lines wrap, tables fit the column (a
# scrollbar under a results table hides its last columns from a reader and a printout). Of
# nested offenders only the innermost is reported (the table, not the div around it). A figure
# in a cell's output must be shown at its own width: the page scales a wider image down to the
# column (max-width), so it sticks out of nothing, but its text ends up smaller than the page's
# small print (tests/test_plots.py draws the package's figures; this checks every figure shown,
# also those a chapter draws in its own code). Table cells holding "±" must keep mean and sd on
# one line.
WINDOW_WIDTH = 1280
LAYOUT_SCRIPT = """
addEventListener("load", () => setTimeout(() => {
  const article = document.querySelector("article.bd-article");
  const report = {column: null, overflows: [], shrunk: [], wrapped: []};
  if (article) {
    const style = getComputedStyle(article);
    const right = article.getBoundingClientRect().right - parseFloat(style.paddingRight);
    report.column = Math.round(article.clientWidth - parseFloat(style.paddingLeft)
                               - parseFloat(style.paddingRight));
    const scrolls = (e) => /auto|scroll/.test(getComputedStyle(e).overflowX);
    const scrolled = (e) => {
      for (let a = e; a && a !== article; a = a.parentElement) if (scrolls(a)) return true;
      return false;
    };
    const name = (e) => e.tagName.toLowerCase() + [...e.classList].map((c) => "." + c).join("");
    const text = (e) => (e.textContent || e.getAttribute("alt") || e.getAttribute("src") || "")
      .replace(/\\s+/g, " ").trim().slice(0, 90);
    const flagged = [];
    for (const e of article.querySelectorAll(
        "p, li, dt, dd, pre, table, img, svg, figure, blockquote, h1, h2, h3, h4, .admonition,"
        + " .cell_input, .cell_output, .output, div.highlight, .math, mjx-container")) {
      const box = e.getBoundingClientRect();
      if (!box.width || (scrolled(e) && !e.closest(".cell_output"))) continue;
      if (e.scrollWidth > e.clientWidth + 1 || box.right > right + 1) flagged.push(e);
    }
    for (const e of flagged) {
      if (flagged.some((o) => o !== e && e.contains(o))) continue;
      const box = e.getBoundingClientRect();
      report.overflows.push({element: name(e), width: Math.round(Math.max(box.width, e.scrollWidth)),
                             output: !!e.closest(".cell_output"), text: text(e)});
    }
    for (const img of article.querySelectorAll(".cell_output img")) {
      if (!img.complete || !img.naturalWidth || img.naturalWidth > img.clientWidth + 1)
        report.shrunk.push({width: img.naturalWidth, shown: img.clientWidth, src: text(img)});
    }
    for (const cell of article.querySelectorAll("td, th")) {
      if (!cell.textContent.includes("\u00b1")) continue;
      const range = document.createRange();
      range.selectNodeContents(cell);
      const lines = new Set([...range.getClientRects()].filter((r) => r.width > 0)
                                                      .map((r) => Math.round(r.bottom)));
      if (lines.size > 1) report.wrapped.push(cell.textContent.trim().slice(0, 60));
    }
  }
  const out = document.createElement("pre");
  out.id = "fetalft-layout-report";
  out.style.display = "none";
  out.textContent = JSON.stringify(report);
  document.body.appendChild(out);
}, 0));
"""


def layout_report(path: Path) -> dict:
    """Lay ``path`` out in Chromium at WINDOW_WIDTH and return what LAYOUT_SCRIPT found.

    The script goes into a temporary copy next to the page, so relative links still resolve."""
    probe = path.with_name(f"_layout_{path.name}")
    probe.write_text(
        path.read_text().replace("</head>", f"<script>{LAYOUT_SCRIPT}</script></head>", 1)
    )
    try:
        result = chromium("--dump-dom", f"--window-size={WINDOW_WIDTH},2000", probe.as_uri())
    finally:
        probe.unlink()
    found = re.search(r'<pre id="fetalft-layout-report"[^>]*>(.*?)</pre>', result.stdout, re.S)
    assert found, f"the layout script did not run on {path.name}: {result.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package chromium)")
@pytest.mark.parametrize("chapter", toc_files())
def test_nothing_sticks_out_of_the_page(built_book: Path, chapter: str) -> None:
    """At 1280 px the text column is about 690 px wide: every paragraph, output, table and
    figure fits it (code input may scroll), every figure unshrunk; a mean ± sd stays on one
    line."""
    report = layout_report(page(built_book, chapter))
    assert report["column"], f"{chapter}: no article column found"
    problems = [
        f"{'output ' if o['output'] else ''}{o['element']} {o['width']} px: {o['text']!r}"
        for o in report["overflows"]
    ]
    problems += [
        f"figure {s['width']} px wide shown at {s['shown']} px (scaled down): {s['src']!r}"
        for s in report["shrunk"]
    ]
    problems += [f"mean ± sd broken across lines: {cell!r}" for cell in report["wrapped"]]
    assert not problems, (
        f"{chapter} (text column {report['column']} px at a {WINDOW_WIDTH} px window):\n"
        + "\n".join(problems)
    )


def local_paths() -> re.Pattern:
    """Absolute paths a page must not show: this machine's checkout and home folder, and the
    usual homes, scratch and install folders of any machine that executed the notebooks."""
    mine = {f"{ROOT}/", f"{BOOK}/", f"{Path.home()}/"} - {"/"}
    generic = [
        r"/(?:work|root|tmp|content/drive|mnt|scratch)/",
        r"/home/[A-Za-z0-9_.-]+",
        r"/Users/[A-Za-z0-9_.-]+",
        r"[A-Za-z]:\\Users\\",
        r"(?:site|dist)-packages",
        r"\.venv/",
    ]
    return re.compile("|".join([*map(re.escape, sorted(mine)), *generic]))


def test_built_pages_hold_no_local_paths(built_book: Path) -> None:
    """The committed outputs are published: no absolute path of the executing machine (its data,
    results and checkpoint folders, its Python installation) may reach a page."""
    pattern = local_paths()
    found = []
    for chapter in toc_files():
        text = page(built_book, chapter).read_text()
        text = re.sub(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+", "data:...", text)
        for match in pattern.finditer(text):
            context = html.unescape(
                re.sub(r"<[^>]+>", "", text[match.start() - 80 : match.end() + 60])
            )
            found.append(f"{chapter}: {match.group()!r} in ...{' '.join(context.split())}...")
    assert not found, "local paths on the pages:\n" + "\n".join(found[:20])


def test_local_path_pattern_catches_machine_paths() -> None:
    pattern = local_paths()
    for path in (
        "/work/main/results",
        "/root/.cache/x",
        "/home/alice/data",
        "/tmp/x",
        "/usr/lib/python3/site-packages/torch",
        "C:\\Users\\bob",
        str(ROOT / "x"),
    ):
        assert pattern.search(path), path
    for text in ("results/cpu/decoder-0-4", "~/.cache/fetalft/hc18", "https://github.com/x/y"):
        assert not pattern.search(text), text


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

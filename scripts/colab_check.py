"""Do what a Colab reader does, in fresh virtual environments: issue 16's "must show".

Colab cannot run here, so this imitates it as closely as one machine allows:

- **Colab's preinstalled stack**: a fresh venv per ipywidgets version (7.7.1, as Colab has
  it, and the latest 8), with torch, torchvision, that ipywidgets, and a Jupyter kernel.
- **Colab itself**: ``google.colab`` in ``sys.modules`` (how fetalft and the install cell
  tell they run in Colab), put there by an IPython startup file in a private
  ``IPYTHONDIR``, so only these kernels see it. Drive is not simulated (tests/test_colab.py
  checks it with a recorder).
- **GitHub**: a bare clone of this repository's committed ``HEAD`` (uncommitted changes are
  not part of the check), which the install cell clones at the book's ref. Each chapter is
  taken from that commit, and its install cell is changed in two strings only: the
  repository URL and the clone folder (``/content/fetalft`` becomes ``WORK/content/fetalft``).
- **A fresh runtime per chapter**: the clone is removed before each chapter (the venv, and
  so the installed fetalft, is kept: Colab would start from scratch there too).

It then checks, per ipywidgets version:

1. the install cell of every chapter clones, installs and imports fetalft, prints no
   failure, and leaves torch, torchvision and ipywidgets as they were (``pip freeze``);
2. right after the install, ``python -m fetalft predict`` on an HC18 test image (outside
   the clone: the pip-installed package and its shipped model) prints an HC and an age;
3. (first version only) chapters 5 and 6 execute from the top with ``--profile`` (default
   ``cpu``), show the study committed with the book, chapter 6 measures a head with the
   shipped model, and nothing trains (no checkpoint written, the clone unchanged).

Not run in CI: it installs two venvs and needs HC18 (``--data-dir``). The summary is printed
and written to ``WORK/summary.txt``; executed chapters are in ``WORK/executed/``. ::

    python scripts/colab_check.py --data-dir ~/hc18 [--work /tmp/colabsim] \\
        [--encoder-weights W.pth]  # an offline machine: smp cannot download ImageNet weights
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
INSTALL_TAG = "fetalft-install"
COLAB_CLONE = "/content/fetalft"
KEPT = ("torch", "torchvision", "ipywidgets")
MARKER = ".colab_check"  # only a folder holding it is ever wiped
KERNEL = "colabsim"
FAKE_COLAB = '''"""colab_check: make this kernel look like Colab's (google.colab imported)."""
import sys
import types

try:
    import google  # a namespace package when protobuf or others are installed
except ImportError:
    google = types.ModuleType("google")
    google.__path__ = []
    sys.modules["google"] = google
colab = types.ModuleType("google.colab")
drive = types.ModuleType("google.colab.drive")


def _mount(path, *args, **kwargs):
    raise NotImplementedError("colab_check does not simulate Google Drive")


drive.mount = _mount
colab.drive = drive
google.colab = colab
sys.modules["google.colab"] = colab
sys.modules["google.colab.drive"] = drive
'''
# Executes one notebook with nbclient in the venv (so the kernel is the venv's).
RUNNER = """
import sys, nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
source, target, cwd, timeout = sys.argv[1:5]
nb = nbformat.read(source, as_version=4)
client = NotebookClient(nb, timeout=int(timeout), kernel_name="colabsim",
                        resources={"metadata": {"path": cwd}})
try:
    client.execute()
    code = 0
except CellExecutionError as error:
    print(str(error)[-3000:], file=sys.stderr)
    code = 1
nbformat.write(nb, target)
sys.exit(code)
"""
PROBE = """import importlib.metadata as m
import os

import fetalft.widgets  # imports ipywidgets

print({name: m.version(name) for name in ("fetalft", "torch", "torchvision", "ipywidgets")})
print("working in", os.getcwd())"""


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, text=True, capture_output=True, **kwargs)


def git(*args: str) -> str:
    return run(["git", *args]).stdout.strip()


def freeze(python: Path) -> dict[str, str]:
    """``pip freeze`` of a venv as {lower-case name: version or URL}."""
    lines = run([str(python), "-m", "pip", "freeze"]).stdout.splitlines()
    found = {}
    for line in lines:
        name, sep, version = line.partition("==")
        if not sep:
            name, _, version = line.partition(" @ ")
        found[name.strip().lower().replace("_", "-")] = version.strip()
    return found


def cell_text(cell: nbformat.NotebookNode) -> str:
    """What a code cell printed or returned, as plain text."""
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.get("data", {}).get("text/plain", ""))
        elif output.output_type == "error":
            parts.append(f"{output.ename}: {output.evalue}")
    return "".join(parts)


def chapter_from_commit(remote: Path, commit: str, name: str, url: str, clone: Path):
    """Chapter ``name`` as committed, its install cell pointed at ``remote`` and ``clone``."""
    nb = nbformat.reads(git("-C", str(remote), "show", f"{commit}:notebooks/{name}"), 4)
    cell = nb.cells[1]
    if INSTALL_TAG not in cell.metadata.get("tags", []):
        raise SystemExit(f"{name}: the second cell is not the install cell")
    for old, new in ((json.dumps(url), remote.as_uri()), (json.dumps(COLAB_CLONE), str(clone))):
        if cell.source.count(old) != 1:
            raise SystemExit(f"{name}: the install cell holds {old} not exactly once")
        cell.source = cell.source.replace(old, json.dumps(new))
    return nb


def execute(
    venv: Path, nb, target: Path, content: Path, env: dict, timeout: int
) -> tuple[bool, str]:
    """Run ``nb`` in the venv's kernel from ``content``; (succeeded, error tail)."""
    source = target.with_suffix(".in.ipynb")
    nbformat.write(nb, source)
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", RUNNER, source, target, content, str(timeout)],
        env=env,
        text=True,
        capture_output=True,
    )
    source.unlink()
    return done.returncode == 0, "" if done.returncode == 0 else done.stderr[-3000:]


def make_venv(work: Path, ipywidgets: str, torch: str, torchvision: str) -> Path:
    """A venv with Colab's kept packages and a kernel; pinned versions, ``latest`` = newest."""
    venv = work / f"venv-ipywidgets-{ipywidgets}"
    run([sys.executable, "-m", "venv", str(venv)])
    widgets = "ipywidgets" if ipywidgets == "latest" else f"ipywidgets=={ipywidgets}"
    packages = [f"torch=={torch}", f"torchvision=={torchvision}", widgets, "nbclient", "ipykernel"]
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *packages])
    python = str(venv / "bin" / "python")
    run([python, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL])
    return venv


def test_image(data_dir: Path) -> tuple[Path, str]:
    """The first HC18 test image and its pixel size, as test_set_pixel_size.csv gives it."""
    with open(data_dir / "test_set_pixel_size.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    return data_dir / "test_set" / row["filename"], row["pixel size(mm)"]


def check_variant(args, work: Path, remote: Path, commit: str, url: str, ipywidgets: str) -> list:
    """Every check for one ipywidgets version; returns (check, passed, detail) rows."""
    rows = []
    content, executed = work / "content", work / "executed"
    clone = content / "fetalft"
    venv = make_venv(work, ipywidgets, args.torch, args.torchvision)
    python = venv / "bin" / "python"
    before = freeze(python)
    kept = {name: before.get(name) for name in KEPT}
    rows.append((f"[ipywidgets {ipywidgets}] fresh venv", True, f"preinstalled {kept}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FETALFT_", "PYTHON"))}
    env.update(
        IPYTHONDIR=str(work / "ipython"),
        FETALFT_PROFILE=args.profile,
        FETALFT_DATA_DIR=str(args.data_dir),
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
    )
    env.pop("MPLBACKEND", None)
    if args.encoder_weights:
        env["FETALFT_ENCODER_WEIGHTS"] = str(args.encoder_weights)

    for number, name in enumerate(args.names):
        shutil.rmtree(clone, ignore_errors=True)  # a fresh runtime per chapter
        nb = chapter_from_commit(remote, commit, name, url, clone)
        nb.cells = [*nb.cells[:3], nbformat.v4.new_code_cell(PROBE)]  # title, install, setup
        target = executed / f"{name[:-6]}-install-ipywidgets-{ipywidgets}.ipynb"
        ok, error = execute(venv, nb, target, content, env, args.timeout)
        out = nbformat.read(target, 4) if target.exists() else None
        install = cell_text(out.cells[1]) if out else ""
        probe = cell_text(out.cells[3]) if out else ""
        ok = ok and install.startswith("fetalft ") and "failed" not in install
        # pip-installed, and working from the clone (whose fetalft/ is what `import` finds)
        ok = ok and "'fetalft': " in probe and f"working in {clone}" in probe
        rows.append((f"[ipywidgets {ipywidgets}] {name}: install cell", ok, error or probe))
        if number == 0:
            image, pixel = test_image(args.data_dir)
            done = subprocess.run(
                [str(python), "-m", "fetalft", "predict", str(image), "--pixel-size", pixel],
                cwd=work,  # not the clone: the installed package and its shipped model
                env={k: v for k, v in env.items() if not k.startswith("FETALFT_")},
                text=True,
                capture_output=True,
            )
            printed = (done.stdout + done.stderr).strip()
            ok = done.returncode == 0 and " mm, gestational age " in printed
            ok = ok and "the model that ships with fetalft" in printed
            rows.append((f"predict {image.name} --pixel-size {pixel}", ok, printed))

    after = freeze(python)
    changed = {n: (before[n], after.get(n)) for n in before if after.get(n) != before[n]}
    added = sorted(set(after) - set(before))
    rows.append(
        (
            f"[ipywidgets {ipywidgets}] pip freeze before/after the install cells",
            not changed and {n: after.get(n) for n in KEPT} == kept,
            f"kept {{{', '.join(f'{n}: {after.get(n)}' for n in KEPT)}}}; changed {changed or 'none'};"
            f" {len(added)} added ({', '.join(added)})",
        )
    )
    if ipywidgets == args.ipywidgets[0]:
        rows += check_chapters(args, venv, remote, commit, url, env, ipywidgets)
    return rows


def check_chapters(args, venv, remote, commit, url, env, ipywidgets) -> list:
    """Chapters 5 and 6 from the top: the committed study, the shipped model, no training."""
    rows = []
    content, executed = args.work / "content", args.work / "executed"
    clone = content / "fetalft"
    for name in args.full:
        shutil.rmtree(clone, ignore_errors=True)
        nb = chapter_from_commit(remote, commit, name, url, clone)
        target = executed / f"{name[:-6]}-ipywidgets-{ipywidgets}.ipynb"
        ok, error = execute(venv, nb, target, content, env, args.timeout)
        out = nbformat.read(target, 4)
        texts = [cell_text(c) for c in out.cells if c.cell_type == "code"]
        shown = [" ".join(t.split()) for t in texts if "Shown:" in t]
        committed = [t for t in shown if "the study committed with the book" in t]
        rows.append((f"{name}: executed from the top", ok, error or f"{len(texts)} code cells"))
        rows.append((f"{name}: shows the committed study", bool(committed), "\n".join(shown)))
        if name.startswith("06"):
            measured = [
                cell_text(c)
                for c in out.cells
                if c.cell_type == "code" and "shipped_checkpoint()" in c.source
            ]
            ok = bool(measured) and " mm, gestational age " in measured[0]
            rows.append((f"{name}: the shipped model measures a head", ok, "".join(measured)))
        written = [p for p in (clone / "checkpoints").rglob("*") if p.is_file()]
        status = git("-C", str(clone), "status", "--porcelain", "--untracked-files=all")
        # pip's own leftovers from building the clone (as in Colab) are not the chapter's
        status = "\n".join(
            line
            for line in status.splitlines()
            if not line[3:].startswith("build/") and ".egg-info/" not in line
        )
        rows.append(
            (
                f"{name}: nothing trained or written",
                not written and not status,
                f"checkpoint files {len(written)}; changes in the clone: {status or 'none'}",
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/colabsim"))
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("FETALFT_DATA_DIR"))
    parser.add_argument("--encoder-weights", type=Path)
    parser.add_argument("--profile", default="cpu", help="FETALFT_PROFILE of the kernels")
    parser.add_argument("--torch", default=metadata.version("torch"))
    parser.add_argument("--torchvision", default=metadata.version("torchvision"))
    parser.add_argument("--ipywidgets", nargs="+", default=["7.7.1", "latest"])
    parser.add_argument("--full", nargs="*", default=["05_results", "06_head_circumference"])
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)
    if not args.data_dir or not (Path(args.data_dir) / "test_set_pixel_size.csv").is_file():
        parser.error(f"--data-dir {args.data_dir}: not an HC18 folder (test_set_pixel_size.csv)")
    args.data_dir = Path(args.data_dir).expanduser().resolve()
    work = args.work = args.work.resolve()
    if work.exists() and any(work.iterdir()) and not (work / MARKER).exists():
        parser.error(f"--work {work}: not empty and not made by this script; choose another")
    shutil.rmtree(work, ignore_errors=True)
    for folder in (work, work / "content", work / "executed"):
        folder.mkdir(parents=True, exist_ok=True)
    (work / MARKER).touch()
    startup = work / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-fake-colab.py").write_text(FAKE_COLAB)

    remote = work / "remote.git"
    run(["git", "clone", "--quiet", "--bare", str(ROOT), str(remote)])
    commit = git("-C", str(remote), "rev-parse", "HEAD")
    config = yaml.safe_load(git("-C", str(remote), "show", f"{commit}:_config.yml"))
    url = str(config["repository"]["url"]).rstrip("/").removesuffix(".git")
    names = git("-C", str(remote), "ls-tree", "--name-only", commit, "notebooks/").split()
    args.names = sorted(Path(n).name for n in names if Path(n).name[:2].isdigit())
    args.full = [f"{n}.ipynb" for n in args.full]
    dirty = git("-C", str(ROOT), "status", "--porcelain")
    rows = [
        (
            "remote: a bare clone of the committed HEAD",
            True,
            f"{commit} (ref {config['repository']['branch']}); "
            f"{len(dirty.splitlines())} uncommitted changes in {ROOT} are not checked",
        )
    ]
    for ipywidgets in args.ipywidgets:
        rows += check_variant(args, work, remote, commit, url, ipywidgets)

    lines = []
    for check, ok, detail in rows:
        lines.append(f"{'PASS' if ok else 'FAIL'}  {check}")
        lines += [f"      {line}" for line in str(detail).strip().splitlines()]
    summary = "\n".join(lines) + "\n"
    (work / "summary.txt").write_text(summary)
    print(summary, end="")
    return 0 if all(ok for _, ok, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

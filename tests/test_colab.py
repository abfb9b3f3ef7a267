"""What a Colab reader meets: a T4 runtime, an install cell that works, Drive, the committed study.

Colab itself cannot run here, so its module is faked: ``google.colab`` in ``sys.modules`` is
how both Colab and fetalft tell that a notebook runs in Colab, and ``google.colab.drive``'s
``mount`` is replaced by a recorder. The install cell runs for real against a small local
git repository served as the remote; only its ``pip install`` is recorded instead of run.

ipywidgets: Colab preinstalls 7.7.1 and the install cell keeps it. The widget tests
(tests/test_notebooks.py) run against it with::

    pip install --no-deps --target /tmp/ipyw7 ipywidgets==7.7.1 ipython_genutils==0.2.0 \\
        "widgetsnbextension~=3.6.0" "jupyterlab-widgets>=1,<3"
    PYTHONPATH=/tmp/ipyw7 pytest tests/test_notebooks.py -k "ipywidgets or smoke"

(test_widgets_work_with_this_ipywidgets builds an ``Explorer`` from the same kinds of controls
as chapter 3's strategy explorer); chapter 5's prediction browser is executed with 7.7.1 by
scripts/colab_check.py.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from fetalft import book as chapter
from fetalft.settings import CHECKPOINTS_ENV, DATA_DIR_ENV, DRIVE_ENV, RESULTS_ENV
from fetalft.synthetic import write_synthetic_hc18

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ENVS = (DATA_DIR_ENV, RESULTS_ENV, CHECKPOINTS_ENV, DRIVE_ENV)


def sync_script():
    spec = importlib.util.spec_from_file_location("sync", ROOT / "scripts" / "sync_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_colab(monkeypatch) -> list[str]:
    """``google.colab`` (and its ``drive``) as Colab has them; returns the mounted paths."""
    mounted: list[str] = []
    google = types.ModuleType("google")
    colab = types.ModuleType("google.colab")
    drive = types.ModuleType("google.colab.drive")
    drive.mount = mounted.append
    colab.drive = drive
    google.colab = colab
    for name, module in (
        ("google", google),
        ("google.colab", colab),
        ("google.colab.drive", drive),
    ):
        monkeypatch.setitem(sys.modules, name, module)
    return mounted


# --------------------------------------------------------------------------- the T4 runtime


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_chapter_asks_colab_for_a_t4(path: Path) -> None:
    # Colab's own keys, as a notebook saved by Colab on a T4 runtime has them
    metadata = nbformat.read(path, as_version=4).metadata
    assert metadata.get("accelerator") == "GPU", f"{path.name}: run scripts/sync_notebooks.py"
    assert metadata.get("colab", {}).get("gpuType") == "T4", path.name


def test_sync_sets_the_runtime_and_keeps_colabs_other_metadata() -> None:
    sync = sync_script()
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# 9. A chapter")],
        metadata={"colab": {"provenance": [{"file_id": "x"}], "toc_visible": True}},
    )
    config = {"repository": {"url": "https://github.com/o/r", "branch": "v1.0.0"}}
    new = sync.synced(nb, config, "notebooks/09_x.ipynb")
    assert new.metadata["accelerator"] == "GPU"
    assert new.metadata["colab"] == {
        "provenance": [{"file_id": "x"}],
        "toc_visible": True,
        "gpuType": "T4",
    }
    # a notebook without the runtime is out of sync, one with it is not
    assert sync._generated(new) != sync._generated(nb)
    assert sync._generated(sync.synced(new, config, "notebooks/09_x.ipynb")) == sync._generated(new)


# --------------------------------------------------------------------------- the install cell


@pytest.fixture
def remote(tmp_path: Path) -> str:
    """A git repository with a ``main`` branch that looks like a clone of fetalft."""
    repo = tmp_path / "remote"
    (repo / "fetalft").mkdir(parents=True)
    (repo / "fetalft" / "__init__.py").write_text('__version__ = "0.0.0"\n')
    (repo / "_config.yml").write_text("title: x\n")
    (repo / "results" / "cpu").mkdir(parents=True)
    (repo / "results" / "cpu" / "marker.txt").write_text("the committed study\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git, "init", "--quiet", "--initial-branch", "main"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "x"], check=True)
    return repo.as_uri()


def run_install_cell(url: str, clone: Path, monkeypatch, capsys) -> tuple[list[list[str]], str]:
    """Execute the generated install cell (git for real, pip recorded); its commands and output."""
    sync = sync_script()
    source = sync.install_source({"repository": {"url": url, "branch": "main"}})
    assert source.count(f'"{sync.COLAB_CLONE}"') == 1
    source = source.replace(f'"{sync.COLAB_CLONE}"', repr(str(clone)))
    commands: list[list[str]] = []
    real_run = subprocess.run

    def run(command, **kwargs):
        commands.append(list(command))
        if command[0] == "git":
            return real_run(command, **kwargs)
        return subprocess.CompletedProcess(command, 0, "", "")  # pip: recorded only

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.chdir(clone.parent)
    exec(compile(source, "install-cell", "exec"), {})
    return commands, capsys.readouterr().out


def test_install_cell_clones_the_ref_installs_it_and_works_from_it(
    fake_colab, remote, tmp_path, monkeypatch, capsys
) -> None:
    clone = tmp_path / "content" / "fetalft"
    clone.parent.mkdir()
    commands, out = run_install_cell(remote, clone, monkeypatch, capsys)
    git, pip = commands
    assert git[:2] == ["git", "clone"] and git[git.index("--branch") + 1] == "main"
    assert git[git.index("--depth") + 1] == "1" and git[-2:] == [remote, str(clone)]
    assert (clone / "results" / "cpu" / "marker.txt").is_file()  # the committed study came
    assert pip[:4] == [sys.executable, "-m", "pip", "install"] and pip[-1] == str(clone)
    # nothing that would replace Colab's torch, torchvision or ipywidgets
    assert not {"-U", "--upgrade", "--force-reinstall", "torch", "ipywidgets"} & set(pip)
    assert Path.cwd() == clone
    assert chapter.project_root() == clone
    assert out.startswith("fetalft ")

    # run again (a second chapter in the same runtime): no second clone
    commands, _ = run_install_cell(remote, clone, monkeypatch, capsys)
    assert [c[0] for c in commands] == [sys.executable]


def test_install_cell_failure_says_what_to_do(fake_colab, tmp_path, monkeypatch, capsys) -> None:
    clone = tmp_path / "content" / "fetalft"
    clone.parent.mkdir()
    missing = (tmp_path / "no-such-repository").as_uri()
    commands, out = run_install_cell(missing, clone, monkeypatch, capsys)
    assert len(commands) == 1 and not clone.exists()
    assert "Installing fetalft failed" in out
    assert f"!git clone --depth 1 --branch main {missing} {clone}" in out
    assert f"%pip install {clone}" in out
    assert Path.cwd() == clone.parent


def test_install_cell_does_nothing_outside_colab(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    commands, out = run_install_cell(
        "https://example.invalid/r", tmp_path / "c", monkeypatch, capsys
    )
    assert commands == [] and out.startswith("fetalft ")


# --------------------------------------------------------------------------- Google Drive


@pytest.fixture
def clean_env(monkeypatch) -> None:
    """None of the variables set; what Drive sets is undone afterwards (setenv records the
    old state, a delenv of an unset variable would not, and the Drive folders leaked)."""
    for name in ENVS:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def test_drive_keeps_data_runs_and_checkpoints_on_drive(
    fake_colab, clean_env, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(chapter, "DRIVE_MOUNT", tmp_path / "drive")
    base = tmp_path / "drive" / "MyDrive" / "fetalft"
    write_synthetic_hc18(base / "hc18", n_train=4, n_test=2)  # downloaded in an earlier session
    book = chapter.setup("smoke", drive=True, show=False)
    assert fake_colab == [str(tmp_path / "drive")]
    assert os.environ[DATA_DIR_ENV] == str(base / "hc18") and book.data_dir == base / "hc18"
    assert (book.results_dir, book.checkpoint_dir) == (base / "results", base / "checkpoints")
    assert book.drive and "Google Drive" in str(book)
    assert all((base / name).is_dir() for name in ("hc18", "results", "checkpoints"))


def test_drive_from_the_environment_and_explicit_folders_win(
    fake_colab, clean_env, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(chapter, "DRIVE_MOUNT", tmp_path / "drive")
    monkeypatch.setenv(DRIVE_ENV, "1")
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "mine"))
    write_synthetic_hc18(tmp_path / "drive" / "MyDrive" / "fetalft" / "hc18", n_train=4, n_test=2)
    book = chapter.setup("smoke", show=False)
    assert fake_colab and book.drive
    assert book.results_dir == tmp_path / "mine"
    assert book.checkpoint_dir == tmp_path / "drive" / "MyDrive" / "fetalft" / "checkpoints"


DRIVE_FIELD = 'keep_on_drive = False  # @param {type:"boolean"}'


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_setup_cell_has_a_drive_box_that_works(
    path, fake_colab, clean_env, tmp_path, monkeypatch, capsys
) -> None:
    """The Colab form field of each chapter's setup cell: unticked (as committed, and in CI)
    ``$FETALFT_DRIVE`` decides; ticked, Drive is mounted and holds data, runs and checkpoints."""
    source = nbformat.read(path, as_version=4).cells[2].source
    assert source.count(DRIVE_FIELD) == 1, f"{path.name}: the setup cell lost its Drive box"
    monkeypatch.setattr(chapter, "DRIVE_MOUNT", tmp_path / "drive")
    monkeypatch.setenv("FETALFT_PROFILE", "smoke")
    write_synthetic_hc18(tmp_path / "drive" / "MyDrive" / "fetalft" / "hc18", n_train=4, n_test=2)

    def run_cell(cell: str) -> chapter.BookSetup:
        namespace: dict = {}
        exec(compile(cell, f"{path.name}: setup cell", "exec"), namespace)
        return namespace["book"]

    assert not run_cell(source).drive and fake_colab == []
    monkeypatch.setenv(DRIVE_ENV, "1")  # unticked: the environment still decides
    assert run_cell(source).drive and len(fake_colab) == 1
    for name in ENVS:
        monkeypatch.delenv(name, raising=False)
    ticked = run_cell(source.replace(DRIVE_FIELD, DRIVE_FIELD.replace("False", "True")))
    assert ticked.drive and fake_colab == [str(tmp_path / "drive")] * 2
    assert ticked.results_dir == tmp_path / "drive" / "MyDrive" / "fetalft" / "results"
    capsys.readouterr()


def test_drive_is_off_by_default_and_refused_outside_colab(clean_env, monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert chapter.drive_requested() is False
    monkeypatch.setenv(DRIVE_ENV, "0")
    assert chapter.drive_requested() is False
    monkeypatch.setenv(DRIVE_ENV, "maybe")
    with pytest.raises(ValueError, match="FETALFT_DRIVE='maybe'"):
        chapter.drive_requested()
    with pytest.raises(RuntimeError, match="only works in Colab"):
        chapter.setup("smoke", drive=True, show=False)


# --------------------------------------------------------------------------- the committed study


def fake_clone(root: Path, runs: dict[str, list[str]]) -> Path:
    """A folder that looks like a clone, holding copies of a committed run per profile."""
    (root / "fetalft").mkdir(parents=True)
    (root / "fetalft" / "__init__.py").write_text("")
    (root / "_config.yml").write_text("title: x\n")
    source = ROOT / "results" / "cpu" / "decoder-0-4" / "seed-0"
    for profile, names in runs.items():
        for name in names:
            shutil.copytree(source, root / "results" / profile / name / "seed-0")
    return root


def book_setup(profile: str, results_dir: Path) -> chapter.BookSetup:
    return chapter.BookSetup(
        profile=chapter.get_profile(profile),
        data_dir=results_dir.parent,
        synthetic=True,
        runtime=None,
        encoder_weights="random",
        results_dir=results_dir,
        checkpoint_dir=results_dir.parent / "checkpoints",
    )


def test_every_reader_sees_the_committed_study_and_their_own_runs_beside_it(
    tmp_path, monkeypatch
) -> None:
    root = fake_clone(tmp_path / "clone", {"cpu": ["decoder-0-4", "decoder-4"]})
    monkeypatch.chdir(root)
    book = book_setup("paper", root / "results")  # Colab's T4 profile, in the clone
    shown = book.shown_study()
    assert (shown.profile.name, shown.results_dir, shown.committed) == (
        "cpu",
        root / "results",
        True,
    )
    assert len(shown.runs()) == 2
    text = shown.describe()
    assert "committed" in text and "cpu profile" in text and "2 finished runs" in text
    assert "AMD EPYC" in text  # the machine recorded in the copied run's labels
    assert book.own_study() is None  # no paper runs yet

    shutil.copytree(
        ROOT / "results" / "cpu" / "decoder-0-4" / "seed-0",
        root / "results" / "paper" / "decoder-0-4" / "seed-0",
    )
    own = book.own_study()
    assert own is not None and own.profile.name == "paper" and not own.committed
    assert "your own runs" in own.describe() and "1 finished runs" in own.describe()


def test_the_committed_profile_in_the_clone_is_shown_once(tmp_path, monkeypatch) -> None:
    """Executing the chapters in the cpu profile (the book's committed outputs): the reader's
    runs are the committed study, so nothing is shown twice."""
    root = fake_clone(tmp_path / "clone", {"cpu": ["decoder-0-4"]})
    monkeypatch.chdir(root)
    book = book_setup("cpu", root / "results")
    assert book.shown_study().committed and book.shown_study().same_as(book.own_runs())
    assert book.own_study() is None


def test_smoke_shows_its_own_study_and_no_clone_shows_own_runs(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert chapter.committed_study(tmp_path) is None  # a pip install without the repository
    smoke = book_setup("smoke", tmp_path / "results")
    assert smoke.shown_study().same_as(smoke.own_runs())
    assert smoke.own_study() is None

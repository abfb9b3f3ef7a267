"""notebooks/conftest.py: a chapter whose cell times out runs once more in a new kernel.

Why a test: CI depends on this retry to get past a lost kernel reply, and it patches
nbmake's ``NotebookRun.execute``, which a new nbmake could rename or change. Two throw-away
notebooks under the real conftest, with a 3 s cell timeout: one that is slow only the
first time it runs (as a lost reply is) must pass on its second run, one that is always
too slow must still fail. About 20 s: four kernels start.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "notebooks" / "conftest.py"


def write_notebook(path: Path, code: str) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, path)


@pytest.mark.skipif(not CONFTEST.is_file(), reason="notebooks/conftest.py is not in this tree")
def test_a_timed_out_chapter_runs_once_more_and_a_slow_one_still_fails(tmp_path: Path) -> None:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    marker = tmp_path / "first-run-done"
    write_notebook(
        tmp_path / "slow_once.ipynb",
        "import pathlib, time\n"
        f"marker = pathlib.Path({str(marker)!r})\n"
        "if not marker.exists():\n"
        "    marker.touch()\n"
        "    time.sleep(8)",
    )
    write_notebook(tmp_path / "always_slow.ipynb", "import time\ntime.sleep(8)")
    command = [sys.executable, "-m", "pytest", "--nbmake", "--nbmake-timeout=3", "-p"]
    command += ["no:cacheprovider", "-o", "addopts=", "-rA", "-W", "default", str(tmp_path)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    report = done.stdout + done.stderr
    assert marker.exists(), report
    assert "PASSED slow_once.ipynb" in report, report
    assert "FAILED always_slow.ipynb" in report, report
    assert "slow_once.ipynb: a cell timed out; executing it again" in report, report
    assert "always_slow.ipynb: a cell timed out; executing it again" in report, report

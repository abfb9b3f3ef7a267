"""pytest (with nbmake) executes the chapters; they run in the smoke profile unless told.

A plain ``pytest`` must never start the hours-long cpu or paper study, so a notebook test
gets ``FETALFT_PROFILE=smoke`` when the variable is not set (the kernel inherits it).

A chapter whose cell times out is executed once more, in a new kernel. Why: now and then
the kernel's reply to a cell is lost and nbclient waits until the timeout while both sit
idle in epoll_wait (ipython/ipykernel#1471; seen in this project's CI with ipykernel 6 and
7, chapter 3 most often). A chapter that is really too slow times out twice and fails.
"""

from __future__ import annotations

import os
import warnings

from nbmake.nb_run import NotebookRun

PROFILE_ENV = "FETALFT_PROFILE"
_added = False
_execute_once = NotebookRun.execute


def _execute_again_after_a_timeout(run: NotebookRun):
    result = _execute_once(run)
    if result.error is not None and result.error.summary.startswith("A cell timed out"):
        warnings.warn(f"{run.filename}: a cell timed out; executing it again", stacklevel=1)
        result = _execute_once(run)
    return result


NotebookRun.execute = _execute_again_after_a_timeout


def pytest_runtest_setup(item) -> None:
    global _added
    if PROFILE_ENV not in os.environ:
        os.environ[PROFILE_ENV] = "smoke"
        _added = True


def pytest_runtest_teardown(item, nextitem) -> None:
    global _added
    if _added:
        os.environ.pop(PROFILE_ENV, None)
        _added = False

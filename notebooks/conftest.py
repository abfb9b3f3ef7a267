"""pytest (with nbmake) executes the chapters; they run in the smoke profile unless told.

A plain ``pytest`` must never start the hours-long cpu or paper study, so a notebook test
gets ``FETALFT_PROFILE=smoke`` when the variable is not set (the kernel inherits it).
"""

from __future__ import annotations

import os

PROFILE_ENV = "FETALFT_PROFILE"
_added = False


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

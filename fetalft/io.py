"""Atomic file output: a result is either fully written or not there at all.

Training studies run for hours and get interrupted; a half-written JSON or CSV would
later be read as a finished run. Everything fetalft writes goes to a temporary file in
the destination folder first and is then renamed into place, which is atomic on POSIX
and Windows file systems.

``tempfile`` creates its files 0600 and folders 0700 (private, because a temporary name
is guessable). A result or checkpoint is not a temporary file once renamed, so it gets
the permissions any other new file would get: 0666 / 0777 minus the user's umask (0644
with the usual 022), and colleagues or a group-shared results folder can read it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    """The process's umask. POSIX can only read it by setting it, so it is set back at once
    (a file another thread creates in between would get 0o022; fetalft writes from one)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _as_if_created_normally(path: str | os.PathLike, *, folder: bool = False) -> None:
    """Give a ``tempfile`` file or folder the mode ``open``/``mkdir`` would have given it."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def folder_problem(folder: str | os.PathLike) -> str | None:
    """Why files cannot be written in ``folder``, made first if missing, or ``None``.

    The nearest of it and its ancestors that exists decides: a file there, or a folder the
    user may not write in, would stop the work only when its first result is written,
    hours into a study or after a whole test set is measured, so commands ask first.
    """
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:  # "/" and "." end it
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"you may not write in {existing}"
    return None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it becomes ``path`` only if the block succeeds.

    For writers that take a file name rather than an open file (ONNX's ``save``). The file
    is synced to disk before the rename, and ends up with the user's umask (0644 with umask
    022) whether the writer wrote into the temporary file or replaced it; a file it
    replaces does not pass on its mode. After an exception nothing is left beside ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _as_if_created_normally(tmp)  # after writing: a writer may have made a new file there
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only on success.

    The file ends up with the user's umask (0644 with umask 022), as if opened directly; a
    file it replaces does not pass on its mode (see :func:`atomic_path`).
    """
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as handle:
        yield handle


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file, through links and relative paths: an output that
    is one of the command's inputs would destroy it, so commands refuse it first."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return Path(path)


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float as ``None``: strict JSON has no NaN or Infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Strict JSON (a metric with no measurable image is ``null``, not ``NaN``), atomically."""
    text = json.dumps(_json_safe(data), indent=2, allow_nan=False)
    return write_text_atomic(path, text + "\n")


def write_csv_atomic(path: str | os.PathLike, frame: Any, **to_csv_kwargs: Any) -> Path:
    """Write a pandas DataFrame as CSV atomically (index off unless asked for)."""
    to_csv_kwargs.setdefault("index", False)
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, **to_csv_kwargs)
    return Path(path)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it becomes ``path`` only if the block succeeds.

    An existing ``path`` is replaced. After an interruption the temporary folder is removed,
    so no half-filled folder is ever left under the final name. The folder gets the user's
    umask (0755 with umask 022), as if made with ``mkdir``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        _as_if_created_normally(tmp, folder=True)
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

"""fetalft's settings from the environment: the one module that reads ``FETALFT_*`` variables.

=============================  ==================  =============================================
variable                       field               when unset or empty
=============================  ==================  =============================================
``FETALFT_DATA_DIR``           ``data_dir``        ``None``: HC18 in the user's cache folder
                                                   (:func:`fetalft.hc18.default_data_dir`);
                                                   ``synthetic`` asks for synthetic scans
``FETALFT_ENCODER_WEIGHTS``    ``encoder_weights`` ``"imagenet"``: smp's ImageNet download
``FETALFT_PROFILE``            ``profile``         ``None``: ``paper`` on a GPU, else ``cpu``
                                                   (:func:`fetalft.profiles.default_profile_name`)
``FETALFT_RESULTS_DIR``        ``results_dir``     ``None``: ``results/`` of the working folder
                                                   (the book: of the clone, or a scratch folder
                                                   in the smoke profile)
``FETALFT_CHECKPOINT_DIR``     ``checkpoint_dir``  ``None``: ``checkpoints/``, likewise
``FETALFT_DRIVE``              ``drive``           ``False``; ``1``/``true``/``yes`` keep data and
                                                   runs on Google Drive in Colab
=============================  ==================  =============================================

Every other module takes explicit arguments and falls back to :func:`current`, which reads
the environment anew on each call. Why nothing is cached at import: a chapter that mounts
Google Drive, a test that sets a variable, or a reader who changes one between cells must be
seen by the next call. A folder that is not configured stays ``None`` rather than getting
its default here, because the caller's default depends on where it is asked (the book's
smoke profile writes into a scratch folder, the CLI into ``results/``), and because "given"
matters: a data folder that is given must hold HC18, the default one may be empty.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "FETALFT_DATA_DIR"
ENCODER_WEIGHTS_ENV = "FETALFT_ENCODER_WEIGHTS"
PROFILE_ENV = "FETALFT_PROFILE"
RESULTS_ENV = "FETALFT_RESULTS_DIR"
CHECKPOINTS_ENV = "FETALFT_CHECKPOINT_DIR"
DRIVE_ENV = "FETALFT_DRIVE"

#: The field of :class:`Settings` that each folder variable sets.
FOLDER_FIELDS = {
    DATA_DIR_ENV: "data_dir",
    RESULTS_ENV: "results_dir",
    CHECKPOINTS_ENV: "checkpoint_dir",
}
_YES = ("1", "true", "yes")
_NO = ("", "0", "false", "no")


@dataclass(frozen=True)
class Settings:
    """What the environment asks of fetalft; ``None`` means "not configured" (see the table
    in :mod:`fetalft.settings` for each default). Folders are ``~``-expanded."""

    data_dir: Path | None = None
    encoder_weights: str = "imagenet"
    profile: str | None = None
    results_dir: Path | None = None
    checkpoint_dir: Path | None = None
    drive: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings ``environ`` (default: this process's environment) asks for.

        An empty variable counts as unset, as a shell's ``FETALFT_DATA_DIR=`` means "none".
        """
        env = os.environ if environ is None else environ
        return cls(
            data_dir=_folder(env, DATA_DIR_ENV),
            encoder_weights=env.get(ENCODER_WEIGHTS_ENV) or "imagenet",
            profile=env.get(PROFILE_ENV) or None,
            results_dir=_folder(env, RESULTS_ENV),
            checkpoint_dir=_folder(env, CHECKPOINTS_ENV),
            drive=_drive_switch(env),
        )


def current() -> Settings:
    """The settings in force now: the environment, read at this call."""
    return Settings.from_env()


def export_unset(folders: Mapping[str, str | os.PathLike]) -> dict[str, Path]:
    """Set each folder variable of ``folders`` that the environment leaves unset; return the
    folder of each variable now in force.

    Why the environment and not a module variable: the chapter's later cells and the commands
    it starts (``!python -m fetalft study``) must see the same folders. A variable already
    set is kept, because an explicit choice wins (Google Drive, :func:`fetalft.book.use_drive`).
    """
    unknown = sorted(set(folders) - set(FOLDER_FIELDS))
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)}: not a folder variable of fetalft; use one of "
            f"{', '.join(FOLDER_FIELDS)}."
        )
    for name, folder in folders.items():
        if _folder(os.environ, name) is None:
            os.environ[name] = str(folder)
    now = current()
    return {name: getattr(now, FOLDER_FIELDS[name]) for name in folders}


def _folder(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name)
    return Path(value).expanduser() if value else None


def _drive_switch(env: Mapping[str, str]) -> bool:
    value = env.get(DRIVE_ENV, "").strip().lower()
    if value in _NO:
        return False
    if value in _YES:
        return True
    raise ValueError(f"{DRIVE_ENV}={value!r}: use 1 (keep data and runs on Google Drive) or 0")

"""Fetch HC18 from Zenodo (record 1327317) into the data folder, safely and only once.

The download is large and runs on laptops and Colab sessions that get interrupted, so
every step is atomic: files arrive under a hidden ``.<name>.part`` and are renamed only
when complete and verified (an interrupted transfer, even one killed with kill -9, resumes
from the bytes already received with an HTTP ``Range`` request), and each zip is
extracted into a temporary folder that becomes ``training_set/`` or ``test_set/`` only
after its file names match the CSV and every file its committed sha256 (files of the
user's own in the folder are kept). Whatever stops the download, the data folder holds
finished pieces, partial transfers under hidden names, or nothing, and running the
command again picks up where it stopped.

Only the standard library speaks HTTP (``urllib``), so there is no extra dependency.

Command line (wired in by :mod:`fetalft.__main__`)::

    python -m fetalft download [--data-dir DIR] [--force]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import http.client
import os
import re
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from tqdm.auto import tqdm

from fetalft import hc18, settings
from fetalft.io import atomic_directory, folder_problem

ZENODO_URL = "https://zenodo.org/records/1327317/files"

#: The committed sha256 of every official HC18 file (``training_set/NNN_HC.png``, ...,
#: and the two CSVs), computed from the original Zenodo files.
FILE_SHA256_CSV = Path(__file__).with_name("splits") / "hc18_sha256.csv"


def _committed_file_sha256() -> dict[str, str]:
    with open(FILE_SHA256_CSV, newline="", encoding="utf-8") as handle:
        return {row["file"]: row["sha256"] for row in csv.DictReader(handle)}


#: sha256 of the two official CSVs (see the dataset's SOURCE.md), and of every image and
#: annotation (``<subset folder>/<name>``, :data:`FILE_SHA256_CSV`): each extracted file is
#: checked, so a damaged or swapped image in the zip or on disk is caught. The zips carry
#: their own CRC checks, so they need no checksum.
SHA256: Mapping[str, str] = MappingProxyType(
    {
        **_committed_file_sha256(),
        hc18.TRAIN_CSV: "814533eaade9fcf83646cd80f0de6d0ee2e9954371cbd50baf9f3dd85097795e",
        hc18.TEST_CSV: "c8c19d140f595871c654e519016f67437faefc398d5659b395344c5699b1d167",
    }
)

#: Subset folder -> (its zip on Zenodo, the CSV that lists its images, has annotations).
SUBSETS: Mapping[str, tuple[str, str, bool]] = MappingProxyType(
    {
        hc18.TRAIN_DIR: (f"{hc18.TRAIN_DIR}.zip", hc18.TRAIN_CSV, True),
        hc18.TEST_DIR: (f"{hc18.TEST_DIR}.zip", hc18.TEST_CSV, False),
    }
)

#: In each subset folder: the sha256 of every file as extracted from the verified zip, in
#: ``sha256sum`` format. A later run trusts the folder only if every file still matches it.
MANIFEST = ".sha256"

#: Suffix of a file that is still arriving (see :func:`partial_path`).
PARTIAL_SUFFIX = ".part"

_CHUNK = 1 << 20
_TIMEOUT_S = 60
_USER_AGENT = "fetalft-download (python urllib)"
_MAX_EXAMPLES = 5
#: File names of HC18's images and annotations (``010_2HC.png``, ``010_2HC_Annotation.png``).
_HC18_NAME = re.compile(r"^\d{3}_\d?HC(_Annotation)?\.png$")


class DownloadError(hc18.HC18Error):
    """A file could not be fetched completely (network error, cut-off or corrupt zip)."""


class VerificationError(hc18.HC18Error):
    """A file arrived complete but is not what HC18 should contain."""


# --------------------------------------------------------------------------- public API


def download(
    data_dir: str | os.PathLike | None = None,
    *,
    base_url: str = ZENODO_URL,
    force: bool = False,
    progress: bool = True,
    checksums: Mapping[str, str] | None = SHA256,
) -> Path:
    """Download and verify HC18 into ``hc18.data_dir(data_dir)``; return that folder.

    Parts that are already present and verified are skipped unless ``force``. ``base_url``
    is where the four Zenodo files live (tests point it at a local server). ``checksums``
    maps file names to expected sha256 values; ``None`` turns the check off (for datasets
    other than the official one). ``progress`` shows progress bars and status lines.
    """
    root = hc18.data_dir(data_dir)
    if problem := folder_problem(root):
        raise DownloadError(
            f"cannot put HC18 in {root}: {problem}. Choose another folder with --data-dir "
            f"or ${settings.DATA_DIR_ENV}."
        )
    root.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(root, force=force)
    checksums = checksums or {}
    command = f"python -m fetalft download --data-dir {root}"

    for csv_name in (hc18.TRAIN_CSV, hc18.TEST_CSV):
        _ensure_csv(root, csv_name, base_url, checksums, force=force, progress=progress)
    for folder in SUBSETS:
        _ensure_subset(root, folder, base_url, checksums, force=force, progress=progress)

    # Final consistency check by the same code that the book uses to read the data.
    for subset in ("training", "test"):
        try:
            hc18.load_records(subset, root)
        except hc18.HC18Error as error:
            raise VerificationError(f"{error} (after download; run `{command} --force`)") from error
    _say(progress, f"HC18 is ready in {root}")
    return root


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m fetalft download``; the CLI module owns the subcommand."""
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"where to put HC18 (default: ${settings.DATA_DIR_ENV} or {_default_dir_for_help()})",
    )
    parser.add_argument(
        "--force", action="store_true", help="download again even what is already present"
    )
    parser.add_argument(
        "--base-url", default=ZENODO_URL, help="folder URL holding the four Zenodo files"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars or status messages")


def main(args: argparse.Namespace) -> int:
    """Run the download for the CLI; report HC18 problems as one line, return an exit code."""
    try:
        download(
            args.data_dir,
            base_url=getattr(args, "base_url", ZENODO_URL),
            force=args.force,
            progress=not getattr(args, "quiet", False),
        )
    except hc18.HC18Error as error:
        print(f"error: {error}", file=sys.stderr)
        return 2  # the CLI's code for an error with a message for the user
    return 0


# --------------------------------------------------------------------------- steps


def _ensure_csv(
    root: Path,
    name: str,
    base_url: str,
    checksums: Mapping[str, str],
    *,
    force: bool,
    progress: bool,
) -> None:
    """Fetch one CSV unless a copy with the right checksum is already there."""
    path = root / name
    if not force and path.is_file() and _checksum_ok(path, checksums.get(name)):
        _say(progress, f"{name} already present, skipping")
        return
    _fetch(_url(base_url, name), path, expected_sha256=checksums.get(name), progress=progress)


def _ensure_subset(
    root: Path,
    folder_name: str,
    base_url: str,
    checksums: Mapping[str, str],
    *,
    force: bool,
    progress: bool,
) -> None:
    """Fetch and extract one subset's zip unless its folder already matches the CSV."""
    zip_name, csv_name, annotated = SUBSETS[folder_name]
    folder = root / folder_name
    expected = expected_files(root / csv_name, annotated=annotated)
    if not force and folder.is_dir():
        problem = _folder_problems(folder, expected, checksums)
        if problem is None:
            _say(progress, f"{folder_name}/ already present and verified, skipping")
            return
        _say(progress, f"{folder_name}/ is not the verified download ({problem}); fetching it")

    zip_path = root / zip_name
    # A zip under its final name was renamed there only once complete (see _fetch), so
    # after an interrupted extraction it is reused instead of fetched again, if it matches
    # its checksum (when one is known).
    if force or not zip_path.is_file() or not _checksum_ok(zip_path, checksums.get(zip_name)):
        url = _url(base_url, zip_name)
        _fetch(url, zip_path, expected_sha256=checksums.get(zip_name), progress=progress)
    else:
        url = str(zip_path)
        _say(progress, f"using {zip_path} from an earlier run")
    try:
        _extract_verified(zip_path, folder, expected, source=url, checksums=checksums)
    except hc18.HC18Error:
        zip_path.unlink(missing_ok=True)  # corrupt or wrong: the next run must fetch it anew
        raise
    zip_path.unlink()


def _fetch(url: str, dest: Path, *, expected_sha256: str | None, progress: bool) -> None:
    """Fetch ``url`` into ``dest`` through :func:`partial_path`, renamed only when complete.

    Bytes arrive in the partial file, which survives an interruption (a lost connection,
    Ctrl-C, kill -9), so the next run asks only for the rest (HTTP ``Range``). Complete
    means every byte the server announced, and the known sha256 when there is one; a
    resumed file that fails the checksum may have started from another version of the file,
    so it is fetched once more from the start before the server's copy is blamed.
    """
    partial = partial_path(dest)
    try:
        resumed = _transfer(url, partial, progress=progress)
        if resumed and not _checksum_ok(partial, expected_sha256):
            _say(progress, f"{dest.name}: the resumed file fails its checksum; fetching it anew")
            partial.unlink()
            _transfer(url, partial, progress=progress)
        if not _checksum_ok(partial, expected_sha256):
            actual = _sha256(partial)
            partial.unlink()
            _check_sha256(dest.name, url, actual, expected_sha256)
        os.replace(partial, dest)
    except http.client.IncompleteRead as error:
        raise DownloadError(
            f"download of {dest.name} from {url} was cut off ({error!r}). {_kept(partial)}"
            f"{_again(dest.parent)}"
        ) from error
    except urllib.error.HTTPError as error:
        raise DownloadError(
            f"cannot download {dest.name} from {url}: HTTP {error.code} {error.reason}. "
            f"Check the URL, or {_again(dest.parent)} later"
        ) from error
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(
            f"cannot download {dest.name} from {url}: {reason}. {_kept(partial)}Check the "
            f"internet connection, then {_again(dest.parent)}"
        ) from error


def _transfer(url: str, partial: Path, *, progress: bool) -> bool:
    """Append the rest of ``url`` to ``partial`` (all of it if there is none); whether it
    resumed. Starts over when the server ignores ``Range`` (200), cannot serve it (416,
    the partial is as long as the file or longer) or answers for other bytes than asked.
    Raises :class:`DownloadError` if fewer bytes arrive than the server announced.
    """
    name = partial.name.removeprefix(".").removesuffix(PARTIAL_SUFFIX)
    offset = partial.stat().st_size if partial.is_file() else 0
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=_TIMEOUT_S
        )
    except urllib.error.HTTPError as error:
        if error.code != 416 or not offset:
            raise
        partial.unlink()
        return _transfer(url, partial, progress=progress)
    with response:
        total = _content_length(response)
        if offset and response.status == 206:
            start, total = _content_range(response)
            if start != offset:
                partial.unlink()
                return _transfer(url, partial, progress=progress)
        else:
            offset = 0  # the whole file: what was there is replaced
        if offset:
            _say(progress, f"resuming {url} after the {offset:,} bytes already received")
        received = offset
        with (
            # unbuffered: what arrived is on disk even if the process is killed next
            open(partial, "ab" if offset else "wb", buffering=0) as out,
            tqdm(
                total=total,
                initial=offset,
                desc=name,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                disable=not progress,
                leave=True,
            ) as bar,
        ):
            while chunk := response.read1(_CHUNK):  # what has arrived, up to _CHUNK
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            os.fsync(out.fileno())
    if total is not None and received != total:
        raise DownloadError(
            f"download of {name} from {url} stopped after {received:,} of {total:,} "
            f"bytes (connection lost). {_kept(partial)}{_again(partial.parent)}"
        )
    return offset > 0


def partial_path(dest: Path) -> Path:
    """Where the bytes of ``dest`` collect until it is complete (hidden, never read as data)."""
    return dest.with_name(f".{dest.name}{PARTIAL_SUFFIX}")


def _extract_verified(
    zip_path: Path,
    folder: Path,
    expected: set[str],
    *,
    source: str,
    checksums: Mapping[str, str] | None = None,
) -> None:
    """Extract ``zip_path`` into a temporary folder that becomes ``folder`` once verified.

    Reading every member to its end makes ``zipfile`` check its CRC, so a damaged archive
    fails here, before the temporary folder is renamed. Files with a known checksum
    (``checksums["<folder>/<name>"]``) must match it.
    """
    try:
        with zipfile.ZipFile(zip_path) as archive, atomic_directory(folder) as tmp:
            digests = {}
            for member, name in _dataset_members(archive, zip_path.name):
                digest = hashlib.sha256()
                with archive.open(member) as src, open(tmp / name, "wb") as dst:
                    while chunk := src.read(_CHUNK):
                        dst.write(chunk)
                        digest.update(chunk)
                digests[name] = digest.hexdigest()
            problem = _name_problems(_files_in(tmp), expected)
            if problem is not None:
                raise VerificationError(
                    f"{zip_path.name} from {source} does not match its CSV: {problem}. "
                    "The archive is not the official HC18 one; check --base-url."
                )
            if wrong := _wrong_files(folder.name, digests, checksums or {}):
                raise VerificationError(
                    f"{zip_path.name} from {source}: {len(wrong)} file(s) differ from the "
                    f"official HC18 checksums, e.g. {_examples(wrong)}. It was deleted; "
                    f"{_again(zip_path.parent)}"
                )
            (tmp / MANIFEST).write_text(
                "".join(f"{digests[name]}  {name}\n" for name in sorted(digests)),
                encoding="utf-8",
            )
            # The user's own files in the folder come along: copied, not moved, so until the
            # new folder replaces the old one they are still where the user put them.
            for name in _own_files(folder, expected):
                shutil.copy2(folder / name, tmp / name)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise DownloadError(
            f"{zip_path.name} from {source} is incomplete or damaged ({error}). "
            f"It was deleted; {_again(zip_path.parent)}"
        ) from error


# --------------------------------------------------------------------------- helpers


def expected_files(csv_path: Path, *, annotated: bool) -> set[str]:
    """The file names a subset folder must hold: each CSV image, plus its annotation."""
    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or not rows[0] or rows[0][0] != "filename":
        raise VerificationError(f"{csv_path} does not start with a 'filename' column.")
    images = [row[0] for row in rows[1:] if row]
    if duplicates := sorted({n for n in images if images.count(n) > 1}):
        raise VerificationError(f"{csv_path} lists {_examples(duplicates)} more than once.")
    names = set(images)
    if annotated:
        names |= {f"{PurePosixPath(n).stem}{hc18.ANNOTATION_SUFFIX}.png" for n in images}
    return names


def _dataset_members(archive: zipfile.ZipFile, label: str) -> Iterable[tuple[str, str]]:
    """Yield ``(member, file name)`` for the data files of a zip, whatever its nesting.

    Only the last path component is kept, so a top-level ``training_set/`` folder is
    optional and no member can escape the target folder. Junk such as ``__MACOSX/`` or
    ``.DS_Store`` is skipped; two members with one name are an error, not an overwrite.
    """
    seen: dict[str, str] = {}
    for info in archive.infolist():
        if info.is_dir() or _is_junk(info.filename):
            continue
        name = PurePosixPath(info.filename).name
        if name in seen:
            raise VerificationError(
                f"{label} holds {name} twice ({seen[name]} and {info.filename})."
            )
        seen[name] = info.filename
        yield info.filename, name


def _is_junk(member: str) -> bool:
    """Files that archivers add by themselves: macOS resource forks, hidden files."""
    parts = PurePosixPath(member).parts
    return "__MACOSX" in parts or any(p.startswith(".") for p in parts) or parts[-1] == "Thumbs.db"


def _own_files(folder: Path, expected: set[str]) -> set[str]:
    """Files a user put into a subset folder: neither listed, nor named like HC18's own.

    They are kept when the folder is fetched again, and do not make it incomplete. A file
    named like an HC18 image but not in the CSV is not the user's: it is a problem.
    """
    if not folder.is_dir():
        return set()
    return {
        path.name
        for path in folder.iterdir()
        if path.is_file()
        and path.name not in expected
        and path.name != MANIFEST
        and not _HC18_NAME.match(path.name)
    }


def _files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if not _is_junk(p.name)}


def _name_problems(actual: set[str], expected: set[str]) -> str | None:
    """Describe how ``actual`` differs from ``expected`` with a few names, or ``None``."""
    problems = []
    if missing := sorted(expected - actual):
        problems.append(f"{len(missing)} listed file(s) missing, e.g. {_examples(missing)}")
    if extra := sorted(actual - expected):
        problems.append(f"{len(extra)} file(s) not in the CSV, e.g. {_examples(extra)}")
    return "; ".join(problems) or None


def _wrong_files(folder_name: str, digests: Mapping[str, str], checksums: Mapping[str, str]):
    """The names whose sha256 in ``digests`` differs from a known one in ``checksums``."""
    return sorted(
        name
        for name, digest in digests.items()
        if checksums.get(f"{folder_name}/{name}", digest) != digest
    )


def _folder_problems(
    folder: Path, expected: set[str], checksums: Mapping[str, str] | None = None
) -> str | None:
    """Why ``folder`` is not the verified extraction of its zip, or ``None`` if it is.

    The names must match the CSV. With the official checksums of every file (the
    default), each file must match its own. Otherwise every file must still have the sha256
    recorded in :data:`MANIFEST` when the zip was extracted; a folder without that record
    (unzipped by hand, or by an older fetalft) is accepted when every image decodes: that
    catches truncated and damaged files, not a valid image swapped for another. Either way
    a complete offline copy stays usable without the network.
    """
    if problem := _name_problems(_files_in(folder) - _own_files(folder, expected), expected):
        return problem
    checksums = checksums or {}
    if all(f"{folder.name}/{name}" in checksums for name in expected):
        digests = {name: _sha256(folder / name) for name in expected}
        if wrong := _wrong_files(folder.name, digests, checksums):
            return f"{len(wrong)} file(s) differ from the official HC18 checksums, e.g. {_examples(wrong)}"
        return None
    try:
        lines = (folder / MANIFEST).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        unreadable = sorted(n for n in expected if not _decodes(folder / n))
        if unreadable:
            return f"{len(unreadable)} image(s) do not decode, e.g. {_examples(unreadable)}"
        return None
    except (OSError, UnicodeDecodeError):
        return f"no readable {MANIFEST} from an earlier verified download"
    pairs = (line.split("  ", 1) for line in lines if "  " in line)
    recorded = {name: digest for digest, name in pairs}
    if set(recorded) != expected:
        return f"its {MANIFEST} does not list the CSV's files"
    if changed := sorted(n for n in expected if _sha256(folder / n) != recorded[n]):
        return f"{len(changed)} file(s) changed since download, e.g. {_examples(changed)}"
    return None


def _decodes(path: Path) -> bool:
    """Whether an image file decodes completely (a truncated PNG fails its checksum)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()  # chunk checksums
        with Image.open(path) as image:
            image.load()  # and the pixel data is all there
    except (OSError, SyntaxError, ValueError):
        return False
    return True


def _examples(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_EXAMPLES])
    return shown + (" ..." if len(names) > _MAX_EXAMPLES else "")


def _checksum_ok(path: Path, expected: str | None) -> bool:
    return expected is None or _sha256(path) == expected.lower()


def _check_sha256(name: str, url: str, actual: str, expected: str | None) -> None:
    if expected is not None and actual != expected.lower():
        raise VerificationError(
            f"{name} from {url} has sha256 {actual}, expected {expected}. It was not kept; "
            "the file on the server is not the official HC18 one (check --base-url)."
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _content_range(response: http.client.HTTPResponse) -> tuple[int | None, int | None]:
    """``(first byte, file size)`` of a 206 answer's ``Content-Range: bytes a-b/size``;
    ``None`` for what it does not state (a size of ``*``, or no such header)."""
    match = re.fullmatch(r"bytes\s+(\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
    if match is None:
        return None, None
    return int(match[1]), None if match[2] == "*" else int(match[2])


def _kept(partial: Path) -> str:
    """What an interrupted transfer left for the next run to resume from."""
    if not partial.is_file() or not (size := partial.stat().st_size):
        return "Nothing was kept; "
    return f"The {size:,} bytes received are kept in {partial} and the next run resumes there: "


def _url(base_url: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/{name}?download=1"


def _again(root: Path) -> str:
    return f"run `python -m fetalft download --data-dir {root}` again"


def _remove_leftovers(root: Path, *, force: bool = False) -> None:
    """Delete temporary files of a run that was killed too hard to clean up after itself.

    Partial transfers (:func:`partial_path`) are kept for the next fetch to resume, unless
    ``force`` asks for everything anew. Two downloads into the same folder at once are not
    supported: the second would remove the first one's temporary files.
    """
    names = [*SUBSETS, *(zip_name for zip_name, _, _ in SUBSETS.values())]
    names += [hc18.TRAIN_CSV, hc18.TEST_CSV]
    partials = {partial_path(root / name) for name in names}
    for name in names:
        for leftover in root.glob(f".{name}.*"):
            if leftover in partials and not force:
                continue
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()


def _default_dir_for_help() -> str:
    return str(hc18.default_data_dir()).replace("%", "%%")  # argparse expands % in help


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr)

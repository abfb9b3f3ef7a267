"""fetalft.download against a tiny HC18-shaped dataset served over real local HTTP."""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import json
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

from fetalft import hc18, settings
from fetalft.download import (
    MANIFEST,
    DownloadError,
    VerificationError,
    add_arguments,
    download,
    main,
)

TRAIN_ROWS = [("001_HC.png", 0.12, 150.5), ("001_2HC.png", 0.13, 151.0), ("002_HC.png", 0.2, 99.9)]
TEST_ROWS = [("003_HC.png", 0.15), ("004_HC.png", 0.11)]
TRAIN_HEADER = "filename,pixel size(mm),head circumference (mm)"
TEST_HEADER = "filename,pixel size(mm)"


# --------------------------------------------------------------------------- fake Zenodo


def _png(rng: np.random.Generator) -> bytes:
    ok, encoded = cv2.imencode(".png", rng.integers(0, 256, (12, 16), dtype=np.uint8))
    assert ok
    return encoded.tobytes()


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _csv(header: str, rows: list[tuple]) -> bytes:
    """CSV as Zenodo ships it: no trailing newline."""
    return "\n".join([header, *(",".join(map(str, row)) for row in rows)]).encode()


def make_files(*, extra_train_image: str | None = None) -> dict[str, bytes]:
    """The four Zenodo files of a 3 + 2 image HC18 look-alike.

    The training zip has the top-level ``training_set/`` folder plus ``__MACOSX`` junk;
    the test zip has no top-level folder, so both layouts are exercised.
    """
    rng = np.random.default_rng(0)
    train: dict[str, bytes] = {}
    for name, _, _ in TRAIN_ROWS:
        stem = Path(name).stem
        train[f"training_set/{name}"] = _png(rng)
        train[f"training_set/{stem}{hc18.ANNOTATION_SUFFIX}.png"] = _png(rng)
    train["__MACOSX/training_set/._001_HC.png"] = b"junk"
    if extra_train_image:
        train[f"training_set/{extra_train_image}"] = _png(rng)
    test = {name: _png(rng) for name, _ in TEST_ROWS}
    return {
        "training_set.zip": _zip(train),
        "test_set.zip": _zip(test),
        hc18.TRAIN_CSV: _csv(TRAIN_HEADER, TRAIN_ROWS),
        hc18.TEST_CSV: _csv(TEST_HEADER, TEST_ROWS),
    }


def sha256s(files: dict[str, bytes]) -> dict[str, str]:
    return {
        name: hashlib.sha256(files[name]).hexdigest() for name in (hc18.TRAIN_CSV, hc18.TEST_CSV)
    }


@dataclass
class FakeZenodo:
    """What the local server serves, and what it was asked for."""

    url: str
    files: dict[str, bytes]
    requests: list[str] = field(default_factory=list)
    #: file name -> extra bytes announced in Content-Length but never sent
    short_bodies: dict[str, int] = field(default_factory=dict)
    #: whether ``Range: bytes=N-`` is answered with 206 (http.server alone ignores it: 200)
    ranges: bool = False
    #: the Range header of each request, in order (None: the whole file was asked for)
    ranges_asked: list[tuple[str, str | None]] = field(default_factory=list)
    #: file name -> bytes to send before the connection drops (once; the whole length is
    #: announced)
    drop_after: dict[str, int] = field(default_factory=dict)
    #: file name -> bytes to send before the server stalls until ``resume`` is set (once)
    stall_after: dict[str, int] = field(default_factory=dict)
    resume: threading.Event = field(default_factory=threading.Event)
    #: file name -> the first byte a 206 answer sends instead of the one asked for (once);
    #: ``None``: a 206 without a Content-Range header (a broken proxy)
    wrong_ranges: dict[str, int | None] = field(default_factory=dict)

    def reset(self) -> None:
        self.requests.clear()
        self.ranges_asked.clear()
        self.short_bodies.clear()


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def do_GET(self) -> None:
        zenodo: FakeZenodo = self.server.zenodo  # type: ignore[attr-defined]
        name = urlsplit(self.path).path.rsplit("/", 1)[-1]
        zenodo.requests.append(name)
        asked = self.headers.get("Range")
        zenodo.ranges_asked.append((name, asked))
        body = zenodo.files.get(name)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if zenodo.ranges and asked:
            start = int(re.fullmatch(r"bytes=(\d+)-", asked)[1])
            if start >= len(body):  # RFC 9110: the range starts past the end of the file
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            if name in zenodo.wrong_ranges:
                start = zenodo.wrong_ranges.pop(name)
                if start is None:  # no header at all; the bytes asked for
                    start = int(re.fullmatch(r"bytes=(\d+)-", asked)[1])
                else:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        body = body[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) + zenodo.short_bodies.get(name, 0)))
        self.end_headers()
        self.close_connection = True
        if (cut := zenodo.drop_after.pop(name, None)) is not None:
            self.wfile.write(body[:cut])  # then the connection closes early
            return
        if (cut := zenodo.stall_after.pop(name, None)) is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            zenodo.resume.wait(timeout=30)
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture
def zenodo() -> Iterator[FakeZenodo]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    fake = FakeZenodo(
        url=f"http://127.0.0.1:{server.server_port}/records/1327317/files",
        files=make_files(),
    )
    server.zenodo = fake  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.resume.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def fetch(zenodo: FakeZenodo, root: Path, **kwargs) -> Path:
    kwargs.setdefault("checksums", sha256s(zenodo.files))
    return download(root, base_url=zenodo.url, progress=False, **kwargs)


def leftovers(root: Path) -> list[str]:
    """Temporary files or folders, and zips, that a finished run must not leave behind."""
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".") or p.suffix == ".zip")


# --------------------------------------------------------------------------- tests


def test_full_download_gives_a_readable_dataset(zenodo: FakeZenodo, tmp_path: Path) -> None:
    root = fetch(zenodo, tmp_path / "hc18")

    assert root == tmp_path / "hc18"
    assert sorted(zenodo.requests) == sorted(zenodo.files)
    training = hc18.load_records("training", root)
    test = hc18.load_records("test", root)
    assert [r.name for r in training] == ["001_HC", "001_2HC", "002_HC"]
    assert [r.name for r in test] == ["003_HC", "004_HC"]
    assert all(r.annotation_path is not None and r.annotation_path.is_file() for r in training)
    assert (root / hc18.TRAIN_CSV).read_bytes() == zenodo.files[hc18.TRAIN_CSV]
    assert leftovers(root) == []
    assert sorted(p.name for p in (root / "training_set").iterdir()) == sorted(
        [n for n, _, _ in TRAIN_ROWS]
        + [n.replace(".png", "_Annotation.png") for n, _, _ in TRAIN_ROWS]
        + [MANIFEST]
    )
    # the manifest records each file's sha256 as it came out of the verified zip
    manifest = (root / "training_set" / MANIFEST).read_text().splitlines()
    assert len(manifest) == 2 * len(TRAIN_ROWS)
    for line in manifest:
        digest, name = line.split("  ")
        data = _member(zenodo, "training_set.zip", name)
        assert digest == hashlib.sha256(data).hexdigest()


def test_data_dir_comes_from_the_environment(
    zenodo: FakeZenodo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(settings.DATA_DIR_ENV, str(tmp_path / "env"))
    root = download(base_url=zenodo.url, progress=False, checksums=None)
    assert root == tmp_path / "env"
    assert hc18.find_data_dir() == root


def test_second_call_skips_everything(zenodo: FakeZenodo, tmp_path: Path) -> None:
    fetch(zenodo, tmp_path)
    zenodo.reset()

    fetch(zenodo, tmp_path)
    assert zenodo.requests == []

    fetch(zenodo, tmp_path, force=True)
    assert sorted(zenodo.requests) == sorted(zenodo.files)


def _unreachable_url() -> str:
    """A local URL nothing listens on (a port just freed): connecting is refused at once."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/records/1327317/files"


def test_offline_with_complete_data_it_says_the_data_is_ready(
    zenodo: FakeZenodo, tmp_path: Path, capsys
) -> None:
    """No network at all, every file verified: nothing fetched, every part said to be
    present, and the folder said to be ready (before the issue it only compared names)."""
    fetch(zenodo, tmp_path)
    capsys.readouterr()
    root = download(tmp_path, base_url=_unreachable_url(), checksums=sha256s(zenodo.files))
    assert root == tmp_path
    said = capsys.readouterr().err.splitlines()
    assert said == [
        f"{hc18.TRAIN_CSV} already present, skipping",
        f"{hc18.TEST_CSV} already present, skipping",
        "training_set/ already present and verified, skipping",
        "test_set/ already present and verified, skipping",
        f"HC18 is ready in {tmp_path}",
    ]


def test_incomplete_folder_is_fetched_again(zenodo: FakeZenodo, tmp_path: Path) -> None:
    fetch(zenodo, tmp_path)
    (tmp_path / "training_set" / "002_HC_Annotation.png").unlink()
    zenodo.reset()

    fetch(zenodo, tmp_path)
    assert zenodo.requests == ["training_set.zip"]
    assert (tmp_path / "training_set" / "002_HC_Annotation.png").is_file()


def _cut_the_zip(zenodo: FakeZenodo) -> None:
    zenodo.files["training_set.zip"] = zenodo.files["training_set.zip"][:-200]


def _flip_a_byte(zenodo: FakeZenodo) -> None:
    data = bytearray(zenodo.files["training_set.zip"])
    data[100] ^= 0xFF  # inside the first member's compressed data
    zenodo.files["training_set.zip"] = bytes(data)


@pytest.mark.parametrize("damage", [_cut_the_zip, _flip_a_byte])
def test_a_damaged_zip_leaves_nothing_and_retry_works(
    zenodo: FakeZenodo, tmp_path: Path, damage
) -> None:
    """The transfer completes, the zip inside is bad: nothing is kept, not even to resume."""
    good = dict(zenodo.files)
    damage(zenodo)

    with pytest.raises(DownloadError) as caught:
        fetch(zenodo, tmp_path)
    message = str(caught.value)
    assert "training_set.zip" in message
    assert f"{zenodo.url}/training_set.zip" in message
    assert "again" in message
    assert not (tmp_path / "training_set").exists()
    assert leftovers(tmp_path) == []

    zenodo.files.update(good)
    zenodo.reset()
    fetch(zenodo, tmp_path)
    assert "training_set.zip" in zenodo.requests
    assert hc18.TRAIN_CSV not in zenodo.requests  # already complete: kept
    assert len(hc18.load_records("training", tmp_path)) == len(TRAIN_ROWS)
    assert leftovers(tmp_path) == []


# -- resuming an interrupted transfer (HTTP Range) ------------------------------------------


def _only_partial(root: Path, name: str) -> bytes:
    """The bytes kept of ``name``, checking that nothing else was left and nothing of it
    lies under its final name (where it would pass for complete)."""
    assert leftovers(root) == [f".{name}.part"]
    assert not (root / name).exists()
    return (root / f".{name}.part").read_bytes()


@pytest.mark.parametrize("name", ["training_set.zip", hc18.TRAIN_CSV])
def test_a_dropped_transfer_resumes_from_the_bytes_received(
    zenodo: FakeZenodo, tmp_path: Path, name: str
) -> None:
    """The connection drops half-way; the next run asks only for the rest. The CSV has a
    known sha256 (checked on the joined file), the zip its CRCs."""
    zenodo.ranges = True
    whole = zenodo.files[name]
    half = len(whole) // 2
    zenodo.drop_after[name] = half

    with pytest.raises(DownloadError, match=f"{half:,} bytes received are kept.*resumes"):
        fetch(zenodo, tmp_path)
    assert _only_partial(tmp_path, name) == whole[:half]

    zenodo.reset()
    fetch(zenodo, tmp_path)
    assert (name, f"bytes={half}-") in zenodo.ranges_asked
    assert [asked for n, asked in zenodo.ranges_asked if n == name] == [f"bytes={half}-"]
    assert len(hc18.load_records("training", tmp_path)) == len(TRAIN_ROWS)
    if name.endswith(".csv"):
        assert (tmp_path / name).read_bytes() == whole
    assert leftovers(tmp_path) == []


def test_a_server_that_ignores_range_sends_it_all_again(zenodo: FakeZenodo, tmp_path: Path) -> None:
    """http.server answers a Range request with 200 and the whole file: start over."""
    whole = zenodo.files[hc18.TEST_CSV]
    zenodo.short_bodies[hc18.TEST_CSV] = 100  # announced, never sent: the connection is lost
    with pytest.raises(DownloadError, match="connection lost"):
        fetch(zenodo, tmp_path)
    assert _only_partial(tmp_path, hc18.TEST_CSV) == whole

    zenodo.reset()
    fetch(zenodo, tmp_path)
    assert zenodo.ranges_asked[0] == (hc18.TEST_CSV, f"bytes={len(whole)}-")
    assert (tmp_path / hc18.TEST_CSV).read_bytes() == whole
    assert leftovers(tmp_path) == []


def test_a_partial_longer_than_the_file_starts_over(zenodo: FakeZenodo, tmp_path: Path) -> None:
    """416 Range Not Satisfiable: the kept bytes are not a start of this file."""
    zenodo.ranges = True
    whole = zenodo.files["test_set.zip"]
    (tmp_path / ".test_set.zip.part").write_bytes(whole + b"more")

    fetch(zenodo, tmp_path)
    asked = [a for n, a in zenodo.ranges_asked if n == "test_set.zip"]
    assert asked == [f"bytes={len(whole) + 4}-", None]
    assert len(hc18.load_records("test", tmp_path)) == len(TEST_ROWS)
    assert leftovers(tmp_path) == []


def test_a_resumed_file_that_fails_its_checksum_is_fetched_anew(
    zenodo: FakeZenodo, tmp_path: Path
) -> None:
    """Kept bytes from another version of the file: joined with the rest they fail the
    sha256, so the whole file is fetched once more; the server's copy is then right."""
    zenodo.ranges = True
    whole = zenodo.files[hc18.TRAIN_CSV]
    (tmp_path / f".{hc18.TRAIN_CSV}.part").write_bytes(b"X" * 10)

    fetch(zenodo, tmp_path)
    assert [a for n, a in zenodo.ranges_asked if n == hc18.TRAIN_CSV] == ["bytes=10-", None]
    assert (tmp_path / hc18.TRAIN_CSV).read_bytes() == whole
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("kept", "served"),
    [(10, 0), (10, 4), (10, 20), (10, None)],
    ids=["from-the-start", "earlier", "later", "no-content-range"],
)
def test_a_206_for_other_bytes_than_asked_starts_over(
    zenodo: FakeZenodo, tmp_path: Path, kept: int, served: int | None
) -> None:
    """Asked for ``bytes=10-``, the server answers 206 for bytes from ``served`` on (or
    without saying which): appending them would shift the file, so the kept bytes are
    dropped and the whole file is asked for once more, without Range."""
    zenodo.ranges = True
    name = hc18.TRAIN_CSV
    whole = zenodo.files[name]
    (tmp_path / f".{name}.part").write_bytes(whole[:kept])
    zenodo.wrong_ranges[name] = served

    fetch(zenodo, tmp_path, checksums={})  # no checksum: the Range handling alone must be right
    assert [a for n, a in zenodo.ranges_asked if n == name] == [f"bytes={kept}-", None]
    assert (tmp_path / name).read_bytes() == whole
    assert leftovers(tmp_path) == []


def test_force_discards_kept_bytes(zenodo: FakeZenodo, tmp_path: Path) -> None:
    zenodo.ranges = True
    (tmp_path / ".test_set.zip.part").write_bytes(zenodo.files["test_set.zip"][:50])
    fetch(zenodo, tmp_path, force=True)
    assert ("test_set.zip", None) in zenodo.ranges_asked
    assert not any(a for n, a in zenodo.ranges_asked)
    assert leftovers(tmp_path) == []


def test_a_download_killed_with_sigkill_resumes_and_leaves_nothing(
    zenodo: FakeZenodo, tmp_path: Path
) -> None:
    """kill -9 mid-transfer (no handler runs): the next run resumes with Range and cleans up."""
    zenodo.ranges = True
    whole = zenodo.files["training_set.zip"]
    half = len(whole) // 2
    zenodo.stall_after["training_set.zip"] = half
    script = (
        "import json, sys; from fetalft.download import download; "
        "download(sys.argv[1], base_url=sys.argv[2], progress=False, "
        "checksums=json.loads(sys.argv[3]))"
    )
    args = [str(tmp_path), zenodo.url, json.dumps(sha256s(zenodo.files))]
    child = subprocess.Popen([sys.executable, "-c", script, *args])
    partial = tmp_path / ".training_set.zip.part"
    try:
        deadline = time.monotonic() + 25  # the server stalls for 30 s at most
        while not (partial.is_file() and partial.stat().st_size == half):
            assert child.poll() is None and time.monotonic() < deadline, "never got half-way"
            time.sleep(0.05)
    finally:
        child.kill()  # SIGKILL on POSIX
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert partial.read_bytes() == whole[:half]
    assert not (tmp_path / "training_set.zip").exists()

    zenodo.resume.set()
    zenodo.reset()
    fetch(zenodo, tmp_path)
    assert [a for n, a in zenodo.ranges_asked if n == "training_set.zip"] == [f"bytes={half}-"]
    assert len(hc18.load_records("training", tmp_path)) == len(TRAIN_ROWS)
    assert leftovers(tmp_path) == []


def test_ctrl_c_keeps_the_bytes_and_says_how_to_resume(
    zenodo: FakeZenodo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Through the CLI: exit 130, the message says what was kept, the rerun resumes."""
    from fetalft import __main__ as cli

    module = importlib.import_module("fetalft.download")
    monkeypatch.setattr(module, "_CHUNK", 64)
    real_tqdm = module.tqdm

    class CtrlC(real_tqdm):
        def update(self, n: int = 1) -> None:
            super().update(n)
            raise KeyboardInterrupt

    monkeypatch.setattr(module, "tqdm", CtrlC)
    zenodo.ranges = True
    argv = ["download", "--data-dir", str(tmp_path), "--base-url", zenodo.url, "--quiet"]
    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "resumes" in err and "--data-dir" in err
    [kept] = [n for n in leftovers(tmp_path) if n.endswith(".part")]
    assert (tmp_path / kept).stat().st_size == 64

    monkeypatch.setattr(module, "tqdm", real_tqdm)
    zenodo.reset()
    fetch(zenodo, tmp_path)  # the CLI's official checksums would refuse the fake dataset
    assert zenodo.ranges_asked[0] == (hc18.TRAIN_CSV, "bytes=64-")
    assert leftovers(tmp_path) == []


def test_zip_with_names_not_in_the_csv_is_rejected(zenodo: FakeZenodo, tmp_path: Path) -> None:
    zenodo.files.update(
        {"training_set.zip": make_files(extra_train_image="777_HC.png")["training_set.zip"]}
    )

    with pytest.raises(VerificationError, match=r"777_HC\.png"):
        fetch(zenodo, tmp_path)
    assert not (tmp_path / "training_set").exists()
    assert leftovers(tmp_path) == []


def test_zip_missing_a_listed_image_is_rejected(zenodo: FakeZenodo, tmp_path: Path) -> None:
    rows = [*TEST_ROWS, ("005_HC.png", 0.1)]
    zenodo.files[hc18.TEST_CSV] = _csv(TEST_HEADER, rows)

    with pytest.raises(VerificationError, match=r"missing, e\.g\. 005_HC\.png"):
        fetch(zenodo, tmp_path)
    assert not (tmp_path / "test_set").exists()
    assert leftovers(tmp_path) == []


def test_checksum_mismatch_is_rejected(zenodo: FakeZenodo, tmp_path: Path) -> None:
    checksums = sha256s(zenodo.files) | {hc18.TEST_CSV: "0" * 64}

    with pytest.raises(VerificationError, match=re.escape(hc18.TEST_CSV)):
        fetch(zenodo, tmp_path, checksums=checksums)
    assert not (tmp_path / hc18.TEST_CSV).exists()
    assert leftovers(tmp_path) == []


def test_default_checksums_are_the_official_ones(zenodo: FakeZenodo, tmp_path: Path) -> None:
    with pytest.raises(VerificationError, match="814533eaade9"):
        download(tmp_path, base_url=zenodo.url, progress=False)


def test_missing_file_on_server_is_a_clear_error(zenodo: FakeZenodo, tmp_path: Path) -> None:
    del zenodo.files["test_set.zip"]
    with pytest.raises(DownloadError, match=r"test_set\.zip.*HTTP 404"):
        fetch(zenodo, tmp_path)
    assert leftovers(tmp_path) == []


def test_leftovers_of_a_killed_run_are_removed(zenodo: FakeZenodo, tmp_path: Path) -> None:
    (tmp_path / ".training_set.abc.partial").mkdir()
    (tmp_path / ".training_set.abc.partial" / "001_HC.png").write_bytes(b"half")
    (tmp_path / ".training_set.zip.xyz.tmp").write_bytes(b"half")

    fetch(zenodo, tmp_path)
    assert leftovers(tmp_path) == []


def _cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fetalft download")
    add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_entry(zenodo: FakeZenodo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _cli(["--data-dir", str(tmp_path), "--base-url", zenodo.url, "--quiet"])
    assert args.force is False

    # The real CSV checksums do not match the fake dataset: a one-line error, exit code 2.
    assert main(args) == 2
    assert "error:" in capsys.readouterr().err

    assert _cli(["--force"]).force is True


def test_cli_passes_its_options_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module("fetalft.download")
    calls = []
    monkeypatch.setattr(module, "download", lambda *a, **kw: calls.append((a, kw)) or tmp_path)

    assert main(_cli(["--data-dir", str(tmp_path), "--force"])) == 0
    assert calls == [
        ((str(tmp_path),), {"base_url": module.ZENODO_URL, "force": True, "progress": True})
    ]


def test_complete_zip_from_an_interrupted_run_is_reused(zenodo: FakeZenodo, tmp_path: Path) -> None:
    (tmp_path / "training_set.zip").write_bytes(zenodo.files["training_set.zip"])

    fetch(zenodo, tmp_path)
    assert "training_set.zip" not in zenodo.requests
    assert len(hc18.load_records("training", tmp_path)) == len(TRAIN_ROWS)
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------- nothing unverified


def _member(zenodo: FakeZenodo, zip_name: str, file_name: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(zenodo.files[zip_name])) as archive:
        [member] = [n for n in archive.namelist() if n.endswith("/" + file_name) or n == file_name]
        return archive.read(member)


@pytest.mark.parametrize("csv_name", [hc18.TRAIN_CSV, hc18.TEST_CSV])
def test_a_wrong_csv_already_on_disk_is_detected_and_replaced(
    zenodo: FakeZenodo, tmp_path: Path, csv_name: str
) -> None:
    fetch(zenodo, tmp_path)
    good = zenodo.files[csv_name]
    # same file names (so the folders still match it), one number changed
    (tmp_path / csv_name).write_bytes(good.replace(b"0.1", b"0.9", 1))
    assert (tmp_path / csv_name).read_bytes() != good
    zenodo.reset()

    fetch(zenodo, tmp_path)
    assert zenodo.requests == [csv_name]
    assert (tmp_path / csv_name).read_bytes() == good
    assert leftovers(tmp_path) == []


def test_a_wrong_csv_in_a_fresh_folder_is_not_trusted(zenodo: FakeZenodo, tmp_path: Path) -> None:
    (tmp_path / hc18.TRAIN_CSV).write_bytes(_csv(TRAIN_HEADER, TRAIN_ROWS[:1]))

    fetch(zenodo, tmp_path)
    assert hc18.TRAIN_CSV in zenodo.requests
    assert (tmp_path / hc18.TRAIN_CSV).read_bytes() == zenodo.files[hc18.TRAIN_CSV]
    assert len(hc18.load_records("training", tmp_path)) == len(TRAIN_ROWS)


def _other_png(_: bytes) -> bytes:
    return _png(np.random.default_rng(99))  # a valid image, but not HC18's


def _truncated_png(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize("damage", [_other_png, _truncated_png, lambda data: b""])
@pytest.mark.parametrize(
    ("folder", "zip_name", "file_name"),
    [
        ("training_set", "training_set.zip", "001_2HC.png"),
        ("training_set", "training_set.zip", "002_HC_Annotation.png"),
        ("test_set", "test_set.zip", "004_HC.png"),
    ],
)
def test_a_wrong_png_already_on_disk_is_detected_and_replaced(
    zenodo: FakeZenodo, tmp_path: Path, damage, folder: str, zip_name: str, file_name: str
) -> None:
    fetch(zenodo, tmp_path)
    path = tmp_path / folder / file_name
    good = _member(zenodo, zip_name, file_name)
    assert path.read_bytes() == good
    path.write_bytes(damage(good))
    zenodo.reset()

    fetch(zenodo, tmp_path)
    assert zenodo.requests == [zip_name]
    assert path.read_bytes() == good
    assert leftovers(tmp_path) == []
    zenodo.reset()
    fetch(zenodo, tmp_path)  # and now it is trusted again
    assert zenodo.requests == []


def test_a_folder_not_made_by_a_verified_download_is_fetched_again(
    zenodo: FakeZenodo, tmp_path: Path
) -> None:
    """Right names, no record (e.g. unzipped by hand), and a file that is not an image."""
    fetch(zenodo, tmp_path)
    for path in (tmp_path / "test_set").iterdir():
        if path.name.startswith("."):
            path.unlink()  # what a hand-made copy lacks: the record of the verified zip
    (tmp_path / "test_set" / "003_HC.png").write_bytes(b"not a png")
    zenodo.reset()

    fetch(zenodo, tmp_path)
    assert zenodo.requests == ["test_set.zip"]
    assert (tmp_path / "test_set" / "003_HC.png").read_bytes() == _member(
        zenodo, "test_set.zip", "003_HC.png"
    )


def test_a_complete_folder_unzipped_by_hand_is_kept_without_the_network(
    zenodo: FakeZenodo, tmp_path: Path
) -> None:
    """Every image decodes: an offline copy without the record stays usable."""
    fetch(zenodo, tmp_path)
    for subset in ("training_set", "test_set"):
        (tmp_path / subset / ".sha256").unlink()
    zenodo.reset()
    fetch(zenodo, tmp_path)
    assert zenodo.requests == []


def test_a_truncated_png_in_a_folder_unzipped_by_hand_is_fetched_again(
    zenodo: FakeZenodo, tmp_path: Path
) -> None:
    fetch(zenodo, tmp_path)
    (tmp_path / "test_set" / ".sha256").unlink()
    png = tmp_path / "test_set" / "003_HC.png"
    png.write_bytes(png.read_bytes()[:-20])
    zenodo.reset()
    fetch(zenodo, tmp_path)
    assert zenodo.requests == ["test_set.zip"]


def test_a_zip_left_by_an_earlier_run_is_checked_against_its_checksum(
    zenodo: FakeZenodo, tmp_path: Path
) -> None:
    """A complete zip from an interrupted run is reused only if it is the right one."""
    good = zenodo.files["training_set.zip"]
    wrong = make_files(extra_train_image=None)["test_set.zip"]  # a valid zip, the wrong one
    (tmp_path / "training_set.zip").write_bytes(wrong)
    checksums = sha256s(zenodo.files) | {"training_set.zip": hashlib.sha256(good).hexdigest()}

    fetch(zenodo, tmp_path, checksums=checksums)
    assert "training_set.zip" in zenodo.requests
    assert len(hc18.load_records("training", tmp_path)) == len(TRAIN_ROWS)
    assert leftovers(tmp_path) == []


# -- the committed checksums of every file ------------------------------------------------------


def every_file_sha256(zenodo: FakeZenodo) -> dict[str, str]:
    """Checksums of every file, in the form of the official ones: ``<folder>/<name>``."""
    result = sha256s(zenodo.files)
    for folder in ("training_set", "test_set"):
        with zipfile.ZipFile(io.BytesIO(zenodo.files[f"{folder}.zip"])) as archive:
            for member in archive.namelist():
                data = archive.read(member)
                result[f"{folder}/{Path(member).name}"] = hashlib.sha256(data).hexdigest()
    return result


def test_a_file_in_the_zip_that_differs_from_its_checksum_is_rejected(
    zenodo: FakeZenodo, tmp_path: Path
) -> None:
    """A valid PNG swapped for another passes the zip's CRC and the names; not its checksum."""
    checksums = every_file_sha256(zenodo) | {"test_set/004_HC.png": "0" * 64}
    with pytest.raises(VerificationError, match=r"1 file\(s\) differ .* e\.g\. 004_HC\.png"):
        fetch(zenodo, tmp_path, checksums=checksums)
    assert not (tmp_path / "test_set").exists()
    assert leftovers(tmp_path) == []


def test_a_folder_unzipped_by_hand_is_checked_file_by_file(
    zenodo: FakeZenodo, tmp_path: Path
) -> None:
    """Without the record of a verified download, the checksums decide: a complete copy is
    kept offline, a swapped image (which decodes fine) is fetched again."""
    checksums = every_file_sha256(zenodo)
    fetch(zenodo, tmp_path, checksums=checksums)
    for subset in ("training_set", "test_set"):
        (tmp_path / subset / MANIFEST).unlink()
    zenodo.reset()
    fetch(zenodo, tmp_path, checksums=checksums)
    assert zenodo.requests == []  # complete and verified, no network needed
    swapped = tmp_path / "test_set" / "003_HC.png"
    swapped.write_bytes((tmp_path / "test_set" / "004_HC.png").read_bytes())
    fetch(zenodo, tmp_path, checksums=checksums)
    assert zenodo.requests == ["test_set.zip"]
    assert swapped.read_bytes() == _member(zenodo, "test_set.zip", "003_HC.png")


def test_the_committed_checksums_cover_every_hc18_file() -> None:
    """Counts from the dataset's SOURCE.md; the CSV lines agree with the CSV checksums that
    were committed before (from SOURCE.md), an independent record of the same files."""
    from fetalft import download as module

    names = list(module._committed_file_sha256())
    assert sum(n.startswith("training_set/") for n in names) == 2 * 999
    assert sum(n.startswith("test_set/") for n in names) == 335
    assert len(set(names)) == len(names) == 2 * 999 + 335 + 2
    committed = module._committed_file_sha256()
    for csv_name in (hc18.TRAIN_CSV, hc18.TEST_CSV):
        assert committed[csv_name] == module.SHA256[csv_name]
    assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in committed.values())


@pytest.mark.realdata
def test_the_real_hc18_copy_matches_the_committed_checksums(real_hc18: Path) -> None:
    """Read only: the shared copy is the original, so every folder passes as verified."""
    from fetalft.download import SHA256, SUBSETS, _folder_problems, expected_files

    for folder, (_, csv_name, annotated) in SUBSETS.items():
        expected = expected_files(real_hc18 / csv_name, annotated=annotated)
        assert _folder_problems(real_hc18 / folder, expected, SHA256) is None


def test_the_users_own_files_in_a_subset_folder_survive_a_new_fetch(
    zenodo: FakeZenodo, tmp_path: Path
) -> None:
    """The issue: re-fetching training_set/ deleted what the user had put there. Own files
    neither make the folder incomplete nor get lost when a damaged image is fetched again."""
    fetch(zenodo, tmp_path)
    own = {"notes.txt": b"my notes", ".my_settings": b"x=1", "mask_001.npy": b"\x93NUMPY"}
    for name, data in own.items():
        (tmp_path / "training_set" / name).write_bytes(data)
    zenodo.reset()
    fetch(zenodo, tmp_path)
    assert zenodo.requests == []  # own files are no reason to fetch again
    (tmp_path / "training_set" / "001_HC.png").write_bytes(b"damaged")
    fetch(zenodo, tmp_path)
    assert zenodo.requests == ["training_set.zip"]
    for name, data in own.items():
        assert (tmp_path / "training_set" / name).read_bytes() == data
    assert hc18.read_gray(tmp_path / "training_set" / "001_HC.png").shape == (12, 16)
    assert leftovers(tmp_path) == []

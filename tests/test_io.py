"""fetalft.io: results are either completely written or not there at all."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from fetalft.io import (
    atomic_directory,
    atomic_path,
    atomic_write,
    folder_problem,
    write_csv_atomic,
    write_json_atomic,
    write_text_atomic,
)


class Interrupted(Exception):
    """Stands for a crash in the middle of writing."""


def entries(folder: Path) -> list[str]:
    """Everything in ``folder``, hidden temporary files included."""
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_creates_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "result.txt"
    with atomic_write(target) as handle:
        handle.write("done")
    assert target.read_text() == "done"
    assert entries(target.parent) == ["result.txt"]


def test_atomic_write_keeps_old_file_when_block_raises(tmp_path: Path) -> None:
    target = tmp_path / "result.txt"
    target.write_text("old")
    with pytest.raises(Interrupted), atomic_write(target) as handle:
        handle.write("half of the new")
        raise Interrupted
    assert target.read_text() == "old"
    assert entries(tmp_path) == ["result.txt"]


def test_atomic_write_creates_nothing_when_block_raises(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), atomic_write(tmp_path / "new.txt") as handle:
        handle.write("partial")
        raise KeyboardInterrupt
    assert entries(tmp_path) == []


def test_atomic_write_replaces_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "result.txt"
    target.write_text("old and longer")
    write_text_atomic(target, "new")
    assert target.read_text() == "new"


def test_write_json_atomic_round_trip(tmp_path: Path) -> None:
    data = {"dice": 0.97, "epochs": [1, 2], "name": "decoder"}
    path = write_json_atomic(tmp_path / "run.json", data)
    assert json.loads(path.read_text()) == data


def test_write_csv_atomic_round_trip_without_index(tmp_path: Path) -> None:
    frame = pd.DataFrame({"name": ["000_HC", "001_HC"], "dice": [0.5, 0.25]})
    path = write_csv_atomic(tmp_path / "table.csv", frame)
    assert path.read_text().splitlines()[0] == "name,dice"
    pd.testing.assert_frame_equal(pd.read_csv(path), frame, check_dtype=False)


def test_atomic_directory_leaves_nothing_after_exception(tmp_path: Path) -> None:
    final = tmp_path / "run"
    with pytest.raises(Interrupted), atomic_directory(final) as tmp:
        (tmp / "model.pt").write_text("half")
        raise Interrupted
    assert not final.exists()
    assert entries(tmp_path) == []


def test_atomic_directory_keeps_existing_folder_after_exception(tmp_path: Path) -> None:
    final = tmp_path / "run"
    final.mkdir()
    (final / "model.pt").write_text("old")
    with pytest.raises(Interrupted), atomic_directory(final) as tmp:
        (tmp / "model.pt").write_text("new")
        raise Interrupted
    assert entries(final) == ["model.pt"]
    assert (final / "model.pt").read_text() == "old"
    assert entries(tmp_path) == ["run"]


def test_atomic_directory_replaces_existing_folder_on_success(tmp_path: Path) -> None:
    final = tmp_path / "run"
    final.mkdir()
    (final / "stale.txt").write_text("from the previous run")
    with atomic_directory(final) as tmp:
        assert tmp != final
        assert not (tmp / "stale.txt").exists()
        (tmp / "model.pt").write_text("new")
    assert entries(final) == ["model.pt"]
    assert (final / "model.pt").read_text() == "new"
    assert entries(tmp_path) == ["run"]


def test_atomic_directory_content_appears_only_at_the_end(tmp_path: Path) -> None:
    final = tmp_path / "nested" / "run"
    with atomic_directory(final) as tmp:
        (tmp / "a.txt").write_text("a")
        assert not final.exists()
    assert (final / "a.txt").read_text() == "a"


def test_json_is_strict_with_null_for_non_finite_numbers(tmp_path: Path) -> None:
    """Strict parsers (browsers, jq) reject NaN; a metric with no measurable image is null."""
    path = write_json_atomic(
        tmp_path / "m.json", {"adf": {"mean": float("nan"), "n": 0}, "xs": [1.5, float("inf")]}
    )
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"adf": {"mean": None, "n": 0}, "xs": [1.5, None]}


@pytest.mark.parametrize(
    ("mask", "file_mode", "folder_mode"),
    [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700), (0o002, 0o664, 0o775)],
    ids=["umask-022", "umask-077", "umask-002"],
)
def test_results_get_the_users_umask_not_tempfiles_private_mode(
    tmp_path: Path, umask, mask: int, file_mode: int, folder_mode: int
) -> None:
    """The expected modes are the ones plain ``open``/``mkdir`` give under the same umask
    (checked below too), not tempfile's 0600/0700."""
    umask(mask)
    with open(tmp_path / "plain.txt", "w"):
        pass
    (tmp_path / "plain").mkdir()
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == folder_mode

    written = [
        write_text_atomic(tmp_path / "a.txt", "x"),
        write_json_atomic(tmp_path / "m.json", {"dice": 0.9}),
        write_csv_atomic(tmp_path / "t.csv", pd.DataFrame({"a": [1]})),
    ]
    (tmp_path / "old.pt").write_bytes(b"old")
    os.chmod(tmp_path / "old.pt", 0o600)  # a checkpoint written by an older fetalft
    with atomic_write(tmp_path / "old.pt", "wb") as handle:
        handle.write(b"new")
    written.append(tmp_path / "old.pt")
    with atomic_directory(tmp_path / "run") as folder:
        (folder / "metrics.json").write_text("{}")
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == file_mode, path.name
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == folder_mode
    assert os.umask(mask) == mask  # writing did not change the umask


def _write_into(path: Path) -> None:
    with open(path, "wb") as handle:  # keeps the temporary file's inode (and its 0600)
        handle.write(b"model")


def _replace(path: Path) -> None:
    path.unlink()  # a writer that makes its own file under the name it is given
    path.write_bytes(b"model")


@pytest.mark.parametrize("writer", [_write_into, _replace], ids=["writes-into", "replaces"])
@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_atomic_path_gives_a_writer_by_name_the_users_umask(
    tmp_path: Path, umask, mask: int, writer
) -> None:
    """For writers that take a file name (ONNX's save): the result is 0666 minus the umask
    however the writer made it, and it appears under its name only once written."""
    umask(mask)
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    os.chmod(target, 0o600)
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        writer(tmp)
        assert target.read_bytes() == b"old"
    assert target.read_bytes() == b"model"
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert entries(tmp_path) == ["model.onnx"]


def test_atomic_path_leaves_nothing_and_keeps_the_old_file_when_the_writer_fails(
    tmp_path: Path,
) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with pytest.raises(Interrupted), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a mo")
        raise Interrupted
    assert target.read_bytes() == b"old"
    assert entries(tmp_path) == ["model.onnx"]


def test_folder_problem_lets_through_folders_that_exist_or_can_be_made(tmp_path: Path) -> None:
    assert folder_problem(tmp_path) is None
    assert folder_problem(tmp_path / "new" / "deeper") is None
    assert not (tmp_path / "new").exists()  # asking makes nothing


def test_folder_problem_names_the_file_in_the_way(tmp_path: Path) -> None:
    in_the_way = tmp_path / "results"
    in_the_way.write_text("a file where a folder should go")
    expected = f"{in_the_way} is a file, not a folder"
    assert folder_problem(in_the_way) == expected
    assert folder_problem(in_the_way / "cpu" / "seed-0") == expected


def test_folder_problem_names_the_folder_the_user_may_not_write_in(
    tmp_path: Path, locked_folder: Path
) -> None:
    assert folder_problem(locked_folder / "new") == f"you may not write in {locked_folder}"
    assert folder_problem(tmp_path) is None

"""fetalft.hc18: finding the dataset, reading it, and clear errors when it is broken."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fetalft import hc18
from fetalft.settings import DATA_DIR_ENV


@pytest.fixture
def dataset(synthetic_hc18: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic HC18 folder that a test may break."""
    return Path(shutil.copytree(synthetic_hc18, tmp_path / "hc18"))


def train_csv(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / hc18.TRAIN_CSV)


def write_train_csv(root: Path, table: pd.DataFrame) -> None:
    table.to_csv(root / hc18.TRAIN_CSV, index=False)


def load_error(root: Path, subset: hc18.Subset = "training") -> str:
    """The message of the HC18Error that ``load_records`` raises on ``root``."""
    with pytest.raises(hc18.HC18Error) as info:
        hc18.load_records(subset, root)
    return str(info.value)


# --------------------------------------------------------------------------- locating


def test_find_data_dir_on_missing_folder_names_folder_and_download_command(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(hc18.DatasetNotFoundError) as info:
        hc18.find_data_dir(missing)
    message = str(info.value)
    assert str(missing) in message
    assert "python -m fetalft download" in message
    assert DATA_DIR_ENV in message


def test_find_data_dir_lists_what_is_missing(dataset: Path) -> None:
    (dataset / hc18.TEST_CSV).unlink()
    with pytest.raises(hc18.DatasetNotFoundError, match=hc18.TEST_CSV):
        hc18.find_data_dir(dataset)


def test_dataset_not_found_is_a_file_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        hc18.find_data_dir(tmp_path)


def test_env_var_is_honoured(synthetic_hc18: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(synthetic_hc18))
    assert hc18.data_dir() == synthetic_hc18
    assert hc18.find_data_dir() == synthetic_hc18


def test_explicit_path_wins_over_env_var(
    synthetic_hc18: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "elsewhere"))
    assert hc18.find_data_dir(synthetic_hc18) == synthetic_hc18


def test_default_data_dir_is_in_the_cache_without_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert hc18.data_dir() == tmp_path / "fetalft" / "hc18"


# --------------------------------------------------------------------------- loading


def test_load_records_training(synthetic_hc18: Path) -> None:
    records = hc18.load_records("training", synthetic_hc18)
    table = train_csv(synthetic_hc18)
    assert len(records) == 24
    assert [f"{r.name}.png" for r in records] == table["filename"].tolist()
    for record, row in zip(records, table.itertuples(index=False), strict=True):
        assert record.image_path == synthetic_hc18 / hc18.TRAIN_DIR / f"{record.name}.png"
        assert record.annotation_path == (
            synthetic_hc18 / hc18.TRAIN_DIR / f"{record.name}_Annotation.png"
        )
        assert record.annotation_path.is_file()
        assert record.pixel_size_mm == pytest.approx(row[1])
        assert record.hc_mm == pytest.approx(row[2])
        assert record.exam == record.name[:3]


def test_load_records_test_subset_has_no_annotations(synthetic_hc18: Path) -> None:
    records = hc18.load_records("test", synthetic_hc18)
    assert len(records) == 6
    assert all(r.annotation_path is None and r.hc_mm is None for r in records)
    assert all(r.image_path.parent.name == hc18.TEST_DIR for r in records)


def test_load_records_rejects_unknown_subset(synthetic_hc18: Path) -> None:
    with pytest.raises(hc18.HC18Error, match="validation"):
        hc18.load_records("validation", synthetic_hc18)


def test_image_without_annotation(dataset: Path) -> None:
    annotation = dataset / hc18.TRAIN_DIR / "003_HC_Annotation.png"
    annotation.unlink()
    message = load_error(dataset)
    assert str(annotation) in message
    assert "no annotation" in message
    assert "Download" in message


def test_csv_row_whose_image_is_missing(dataset: Path) -> None:
    image = dataset / hc18.TRAIN_DIR / "005_HC.png"
    image.unlink()
    message = load_error(dataset)
    assert str(image) in message
    assert "does not exist" in message
    assert "Download the dataset again" in message


def test_image_without_csv_row(dataset: Path) -> None:
    table = train_csv(dataset)
    write_train_csv(dataset, table[table["filename"] != "007_HC.png"])
    message = load_error(dataset)
    assert "007_HC.png" in message
    assert "without a row" in message
    assert "restore the original CSV" in message


def test_wrong_csv_columns(dataset: Path) -> None:
    table = train_csv(dataset).rename(columns={"pixel size(mm)": "pixel size(cm)"})
    write_train_csv(dataset, table)
    message = load_error(dataset)
    assert hc18.TRAIN_CSV in message
    assert "pixel size(cm)" in message
    assert "expected" in message
    assert "Download the dataset again" in message


@pytest.mark.parametrize("bad_size", [12.0, 0.0, -0.1, float("nan")])
def test_pixel_size_out_of_range(dataset: Path, bad_size: float) -> None:
    table = train_csv(dataset)
    table.loc[2, "pixel size(mm)"] = bad_size
    write_train_csv(dataset, table)
    message = load_error(dataset)
    assert repr(bad_size) in message
    assert table.loc[2, "filename"] in message
    assert "millimetres" in message


def write_value(root: Path, row: int, column: str, text: str, subset: str = "training") -> Path:
    """Put ``text`` verbatim in ``column`` of data row ``row`` (from 0) of a CSV."""
    path = root / (hc18.TRAIN_CSV if subset == "training" else hc18.TEST_CSV)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.loc[row, column] = text
    table.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("column", "text", "said"),
    [
        ("pixel size(mm)", "0,07", "pixel size(mm) is '0,07', not a number"),
        ("pixel size(mm)", "n/a", "pixel size nan mm"),
        ("head circumference (mm)", "abc", "head circumference (mm) is 'abc', not a number"),
        ("head circumference (mm)", "n/a", "head circumference (mm) is missing"),
        ("head circumference (mm)", "", "head circumference (mm) is missing"),
        ("head circumference (mm)", "-150.2", "head circumference (mm) is -150.2 mm"),
        ("filename", "", "the filename is missing"),
        ("filename", "03_HC.png", "'03_HC' is not an HC18 image name"),
    ],
    ids=[
        "pixel-text",
        "pixel-na",
        "hc-text",
        "hc-na",
        "hc-empty",
        "hc-negative",
        "no-name",
        "name",
    ],
)
def test_bad_csv_value_names_file_line_and_filename(
    dataset: Path, column: str, text: str, said: str
) -> None:
    original = train_csv(dataset).loc[3, "filename"]
    path = write_value(dataset, 3, column, text)
    message = load_error(dataset)
    assert len(message.splitlines()) == 1
    name = text if column == "filename" else original
    quoted = repr(name) if name else "nan"
    assert f"{path}, line 5 (filename {quoted})" in message
    assert said in message
    assert any(fix in message for fix in ("Download the dataset again", "give the pixel spacing"))


def test_bad_test_csv_is_exit_code_2_from_the_cli(dataset: Path, capsys) -> None:
    from fetalft.__main__ import main

    first = pd.read_csv(dataset / hc18.TEST_CSV).loc[0, "filename"]
    path = write_value(dataset, 0, "pixel size(mm)", "0.1 mm", subset="test")
    args = ["submit", "--data-dir", str(dataset), "--checkpoint", str(dataset / "none.pt")]
    assert main([*args, "--output", str(dataset / "s.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}, line 2 (filename {first!r}): pixel size(mm) is")
    assert len(err.splitlines()) == 1
    assert not (dataset / "s.csv").exists()


@pytest.mark.parametrize("good_size", [0.0494, 0.3933])
def test_check_pixel_size_accepts_hc18_range(good_size: float) -> None:
    assert hc18.check_pixel_size(good_size, "test") == good_size


def test_read_gray_on_text_file_named_png(tmp_path: Path) -> None:
    fake = tmp_path / "010_HC.png"
    fake.write_text("this is not a PNG")
    with pytest.raises(hc18.HC18Error) as info:
        hc18.read_gray(fake)
    assert str(fake) in str(info.value)
    assert "download the dataset again" in str(info.value)


def test_read_gray_on_missing_file(tmp_path: Path) -> None:
    with pytest.raises(hc18.HC18Error, match="missing"):
        hc18.read_gray(tmp_path / "absent.png")


def test_read_gray_keeps_size_and_grey_values(synthetic_hc18: Path) -> None:
    image = hc18.read_gray(synthetic_hc18 / hc18.TRAIN_DIR / "000_HC.png")
    assert image.shape == (270, 400)
    assert image.dtype == np.uint8


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "exam"),
    [("010_HC", "010"), ("010_2HC", "010"), ("010_HC.png", "010"), ("999_4HC.png", "999")],
)
def test_exam_id(name: str, exam: str) -> None:
    assert hc18.exam_id(name) == exam


def test_exam_pairs_pairs_the_scans_of_each_exam() -> None:
    names = ["011_HC", "010_HC", "012_HC", "010_2HC", "010_3HC.png", "011_2HC"]
    # exam 010 has three scans (3 pairs), 011 two (1), 012 one (none); exams in number order
    assert hc18.exam_pairs(names) == [
        ("010_HC", "010_2HC"),
        ("010_HC", "010_3HC.png"),
        ("010_2HC", "010_3HC.png"),
        ("011_HC", "011_2HC"),
    ]
    assert hc18.exam_pairs(["010_HC", "011_HC"]) == []
    with pytest.raises(hc18.HC18Error, match="not an HC18 image name"):
        hc18.exam_pairs(["010_HC", "scan.png"])


@pytest.mark.parametrize(
    "name", ["10_HC", "0100_HC", "abc_HC", "010_HC_Annotation", "010_12HC", "010_AC", "010HC", ""]
)
def test_exam_id_rejects_bad_names(name: str) -> None:
    with pytest.raises(hc18.HC18Error) as info:
        hc18.exam_id(name)
    assert repr(name) in str(info.value)
    assert "NNN_HC" in str(info.value)


@pytest.mark.parametrize("bits", [10, 12, 16])
def test_read_gray_scales_a_16_bit_png_by_its_bit_depth(tmp_path: Path, bits: int) -> None:
    """A scan stored with ``bits`` significant bits in a 16-bit PNG reads as the 8-bit scan
    it would be (within rounding), not as the top 8 bits (grey levels 0-15 for 12 bits)."""
    import cv2

    rng = np.random.default_rng(bits)
    eight = rng.integers(0, 256, (54, 80), dtype=np.uint8)
    eight[0, 0] = 255  # the brightest pixel uses every bit, as a real scan's does
    wide = np.round(eight.astype(np.float64) * (2**bits - 1) / 255).astype(np.uint16)
    path = tmp_path / "scan16.png"
    assert cv2.imwrite(str(path), wide)
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).dtype == np.uint16  # really 16-bit
    image = hc18.read_gray(path)
    assert image.dtype == np.uint8 and image.shape == eight.shape
    assert np.abs(image.astype(int) - eight).max() <= 1


def test_read_gray_turns_a_colour_png_grey(tmp_path: Path) -> None:
    import cv2

    bgr = np.zeros((10, 12, 3), np.uint8)
    bgr[..., 1] = 200  # pure green: ITU-R BT.601 luma 0.587 * 200 = 117.4
    cv2.imwrite(str(tmp_path / "green.png"), bgr)
    assert np.all(hc18.read_gray(tmp_path / "green.png") == 117)

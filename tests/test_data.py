"""fetalft.data: scans in memory, augmentation that keeps image and mask together."""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fetalft import hc18
from fetalft.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Scan,
    ScanDataset,
    augmentation,
    dataset_dir,
    eval_transform,
    load_scans,
    resize,
    select_records,
    train_transform,
)
from fetalft.ellipse import Ellipse
from fetalft.profiles import get_profile
from fetalft.settings import DATA_DIR_ENV
from fetalft.synthetic import SyntheticScan, synthetic_scan

SIZE = 64
SHAPES = [(270, 400), (300, 380), (250, 250), (563, 738)]


def write_scan(folder: Path, name: str, scan: SyntheticScan, annotated: bool = True) -> hc18.Record:
    """Write one synthetic scan like an HC18 file pair and return its record."""
    image_path = folder / f"{name}.png"
    cv2.imwrite(str(image_path), scan.image)
    annotation_path = None
    if annotated:
        annotation_path = folder / f"{name}{hc18.ANNOTATION_SUFFIX}.png"
        cv2.imwrite(str(annotation_path), scan.outline)
    hc = scan.hc_mm if annotated else None
    return hc18.Record(name, image_path, scan.pixel_size_mm, annotation_path, hc)


@pytest.fixture(scope="module")
def mixed_size_scans(
    tmp_path_factory: pytest.TempPathFactory,
) -> list[tuple[SyntheticScan, hc18.Record]]:
    """Synthetic scans of different sizes, the truth and the record of each."""
    folder = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(3)
    pairs = []
    for i, shape in enumerate(SHAPES):
        scan = synthetic_scan(rng, shape)
        pairs.append((scan, write_scan(folder, f"{i:03d}_HC", scan)))
    return pairs


def scan_from_mask(mask: np.ndarray, image: np.ndarray | None = None) -> Scan:
    image = mask * 255 if image is None else image
    return Scan("000_HC", image.astype(np.uint8), mask, mask.shape, 0.1, None)


def off_centre_head_mask() -> np.ndarray:
    """A head mask that no flip or rotation maps onto itself."""
    return Ellipse(22, 26, 16, 9, 0.4).to_mask((SIZE, SIZE))


def to_grey(image: torch.Tensor) -> np.ndarray:
    """Undo ImageNet normalisation of the first channel: back to 0-255 grey levels."""
    return (image[0].numpy() * IMAGENET_STD[0] + IMAGENET_MEAN[0]) * 255


def augmented_pairs(
    scan: Scan, draws: int = 16, augment: str = "paper"
) -> list[tuple[np.ndarray, np.ndarray]]:
    transform = augmentation(augment)
    transform.set_random_seed(0)
    dataset = ScanDataset([scan], transform)
    pairs = []
    for _ in range(draws):
        image, mask = dataset[0]
        pairs.append((to_grey(image), mask[0].numpy()))
    return pairs


# --------------------------------------------------------------------------- loading


def test_load_scans_keeps_original_shape_pixel_size_and_ellipse(mixed_size_scans) -> None:
    scans = load_scans([record for _, record in mixed_size_scans], SIZE, progress=False)
    for (truth, record), scan in zip(mixed_size_scans, scans, strict=True):
        assert scan.name == record.name
        assert scan.original_shape == truth.image.shape
        assert scan.pixel_size_mm == record.pixel_size_mm
        assert (scan.ellipse.cx, scan.ellipse.cy) == pytest.approx(
            (truth.ellipse.cx, truth.ellipse.cy), abs=0.5
        )
        assert scan.hc_mm == pytest.approx(truth.hc_mm, rel=2e-3)


def test_load_scans_resizes_image_and_mask(mixed_size_scans) -> None:
    scans = load_scans([record for _, record in mixed_size_scans], SIZE, progress=False)
    for (truth, _), scan in zip(mixed_size_scans, scans, strict=True):
        assert scan.image.shape == scan.mask.shape == (SIZE, SIZE)
        assert scan.image.dtype == scan.mask.dtype == np.uint8
        assert set(np.unique(scan.mask)) == {0, 1}
        height, width = truth.image.shape
        head_fraction = truth.ellipse.area / (height * width)
        assert scan.mask.mean() == pytest.approx(head_fraction, abs=0.03)


def test_resized_image_matches_a_direct_resize(mixed_size_scans) -> None:
    truth, record = mixed_size_scans[1]
    (scan,) = load_scans([record], SIZE, progress=False)
    expected = cv2.resize(truth.image, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(scan.image, expected)


def test_load_scans_of_test_images_has_no_mask(tmp_path: Path) -> None:
    scan = synthetic_scan(np.random.default_rng(0), (280, 390))
    record = write_scan(tmp_path, "500_HC", scan, annotated=False)
    (loaded,) = load_scans([record], SIZE, progress=False)
    assert loaded.mask is None
    assert loaded.ellipse is None
    assert loaded.hc_mm is None
    assert loaded.original_shape == (280, 390)


def test_annotation_of_another_size_is_an_error(tmp_path: Path) -> None:
    scan = synthetic_scan(np.random.default_rng(0), (270, 400))
    record = write_scan(tmp_path, "001_HC", scan)
    cv2.imwrite(str(record.annotation_path), cv2.resize(scan.outline, (390, 270)))
    with pytest.raises(hc18.HC18Error, match="does not belong to the image"):
        load_scans([record], SIZE, progress=False)


def test_select_records_partitions_the_synthetic_set(synthetic_hc18: Path) -> None:
    records = hc18.load_records("training", synthetic_hc18)
    chosen = {role: select_records(records, role) for role in ("train", "val", "test")}
    names = [r.name for role in chosen.values() for r in role]
    assert sorted(names) == sorted(r.name for r in records)
    assert len(select_records(records, "train", limit=3)) == 3
    assert len(select_records(records, "train", train_fraction=0.5)) == round(
        len(chosen["train"]) / 2
    )


def test_train_fraction_thins_the_limited_set(synthetic_hc18: Path) -> None:
    """A profile's image cap applies first: half of a capped run is half of its images."""
    records = hc18.load_records("training", synthetic_hc18)
    capped = select_records(records, "train", limit=4)
    half = select_records(records, "train", limit=4, train_fraction=0.5)
    assert len(half) == 2
    assert {r.name for r in half} < {r.name for r in capped}


# --------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("augment", ["paper", "strong"])
def test_train_transform_moves_image_and_mask_together(augment: str) -> None:
    mask = off_centre_head_mask()
    pairs = augmented_pairs(scan_from_mask(mask), augment=augment)
    moved = sum(not np.array_equal(aug_mask, mask) for _, aug_mask in pairs)
    assert moved > len(pairs) // 2  # a rotation by a degree or two may change no pixel
    for image, aug_mask in pairs:
        agreement = np.mean((image > 127) == (aug_mask > 0.5))
        assert agreement > 0.98


def mask_edge_band(mask: np.ndarray) -> np.ndarray:
    """Pixels within about 3 px inside or 1 px outside the edge of a 0/1 mask."""
    mask = mask.astype(np.uint8)
    outer = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    inner = cv2.erode(mask, np.ones((7, 7), np.uint8))
    return outer & (1 - inner)


@pytest.mark.parametrize("augment", ["paper", "strong"])
def test_train_transform_keeps_the_skull_ring_at_the_mask_edge(augment: str) -> None:
    """The bright skull ring of a realistic scan stays on the augmented mask's edge.

    Had image and mask been augmented independently, most draws would put the ring
    elsewhere (measured: 6-50% of the brightest pixels on the edge instead of ~85%).
    """
    size = 128
    truth = synthetic_scan(np.random.default_rng(1), (size, size))
    mask = truth.ellipse.to_mask((size, size))
    scan = scan_from_mask(mask, truth.image)
    for image, aug_mask in augmented_pairs(scan, draws=8, augment=augment):
        brightest = image > np.percentile(image, 90)
        # a rescaled ring is resampled (blurred) once more: 0.70, still far above 0.50
        assert mask_edge_band(aug_mask)[brightest].mean() > (0.75 if augment == "paper" else 0.7)


def test_train_transform_flips_sometimes() -> None:
    mask = off_centre_head_mask()
    pairs = augmented_pairs(scan_from_mask(mask), draws=16)
    left_heavy = [m[:, : SIZE // 2].sum() > m[:, SIZE // 2 :].sum() for _, m in pairs]
    assert any(left_heavy)
    assert not all(left_heavy)


def test_only_strong_augmentation_rescales_the_head() -> None:
    """Rotation and flips keep a head's area; a rescaling by s multiplies it by s squared,
    so the strong augmentation's 0.8-1.2 spreads areas over 0.64-1.44 of the original."""
    mask = Ellipse(SIZE / 2, SIZE / 2, 12, 8, 0.3).to_mask((SIZE, SIZE))  # never cut by a border
    for augment, low, high in (("paper", 0.95, 1.05), ("strong", 0.64 - 0.03, 1.44 + 0.03)):
        ratios = [
            m.sum() / mask.sum() for _, m in augmented_pairs(scan_from_mask(mask), 32, augment)
        ]
        assert low < min(ratios) and max(ratios) < high, augment
        if augment == "strong":
            assert min(ratios) < 0.85 and max(ratios) > 1.2  # the scale range is used


def test_only_strong_augmentation_changes_grey_levels() -> None:
    """Inside a uniform grey image no geometric change alters a pixel; brightness, contrast
    and gamma do."""
    grey = np.full((SIZE, SIZE), 100, np.uint8)
    scan = scan_from_mask(np.zeros((SIZE, SIZE), np.float32), grey)
    centre = SIZE // 2
    for augment in ("paper", "strong"):
        levels = [image[centre, centre] for image, _ in augmented_pairs(scan, 32, augment)]
        spread = max(levels) - min(levels)
        assert spread < 1 if augment == "paper" else spread > 30, (augment, spread)


def test_an_unknown_augmentation_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"'rotate'.*paper, strong"):
        augmentation("rotate")
    assert [type(t) for t in augmentation("paper")] == [type(t) for t in train_transform()]


def test_eval_transform_is_deterministic_and_normalises_with_imagenet_statistics() -> None:
    image = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    transform = eval_transform()
    first = transform(image=image)["image"]
    second = transform(image=image)["image"]
    assert torch.equal(first, second)
    for channel in range(3):
        expected = (image / 255 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        np.testing.assert_allclose(first[channel].numpy(), expected, atol=1e-5)


def test_dataset_items_have_expected_shapes_and_dtypes() -> None:
    mask = off_centre_head_mask()
    for transform in (train_transform(), eval_transform()):
        image, target = ScanDataset([scan_from_mask(mask)], transform)[0]
        assert image.shape == (3, SIZE, SIZE)
        assert image.dtype == torch.float32
        assert target.shape == (1, SIZE, SIZE)
        assert target.dtype == torch.float32
        assert set(target.unique().tolist()) == {0.0, 1.0}


def test_eval_dataset_returns_the_mask_unchanged() -> None:
    mask = off_centre_head_mask()
    _, target = ScanDataset([scan_from_mask(mask)], eval_transform())[0]
    np.testing.assert_array_equal(target[0].numpy(), mask)


def test_dataset_gives_empty_mask_for_unannotated_scan() -> None:
    image = np.full((SIZE, SIZE), 100, np.uint8)
    scan = Scan("500_HC", image, None, (SIZE, SIZE), 0.1, None)
    _, target = ScanDataset([scan], eval_transform())[0]
    assert target.shape == (1, SIZE, SIZE)
    assert target.sum() == 0


# --------------------------------------------------------------------------- dataset_dir


@pytest.fixture
def no_hc18(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No data folder configured and none in the cache; temporary files go under tmp_path."""
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_smoke_profile_without_any_data_folder_uses_synthetic_data_loudly(
    no_hc18: Path, capsys
) -> None:
    root, synthetic = dataset_dir(get_profile("smoke"))
    assert synthetic is True
    assert root.parent == no_hc18
    assert len(hc18.load_records("training", root)) == 24
    out = capsys.readouterr().out
    assert out.startswith("WARNING: HC18 not found") and "not real data" in out


@pytest.mark.parametrize("folder", ["missing", "empty"])
@pytest.mark.parametrize("how", ["environment", "argument"])
@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_a_given_folder_without_hc18_is_an_error_not_synthetic_data(
    no_hc18: Path, monkeypatch: pytest.MonkeyPatch, folder: str, how: str, profile: str
) -> None:
    """The issue: FETALFT_DATA_DIR set to a missing or empty folder trained on fake scans."""
    given = no_hc18 / folder
    if folder == "empty":
        given.mkdir()
    if how == "environment":
        monkeypatch.setenv(DATA_DIR_ENV, str(given))
    with pytest.raises(hc18.DatasetNotFoundError) as error:
        dataset_dir(get_profile(profile), given if how == "argument" else None)
    message = str(error.value)
    assert f"HC18 dataset not found in {given}" in message
    assert "python -m fetalft download" in message and "--data-dir synthetic" in message
    assert list(no_hc18.glob("fetalft-synthetic-hc18*")) == []


@pytest.mark.parametrize("profile", ["cpu", "paper"])
def test_other_profiles_insist_on_real_data(no_hc18: Path, profile: str) -> None:
    with pytest.raises(hc18.DatasetNotFoundError, match="python -m fetalft download"):
        dataset_dir(get_profile(profile))
    assert list(no_hc18.glob("fetalft-synthetic-hc18*")) == []


@pytest.mark.parametrize("how", ["environment", "argument"])
def test_synthetic_data_when_asked_for_in_any_profile(
    no_hc18: Path, monkeypatch: pytest.MonkeyPatch, capsys, how: str
) -> None:
    if how == "environment":
        monkeypatch.setenv(DATA_DIR_ENV, "synthetic")
    root, synthetic = dataset_dir(get_profile("cpu"), "synthetic" if how == "argument" else None)
    assert synthetic and root.parent == no_hc18
    assert capsys.readouterr().out.startswith("WARNING: synthetic scans, as asked")


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_dataset_dir_uses_available_data(synthetic_hc18: Path, profile: str) -> None:
    assert dataset_dir(get_profile(profile), synthetic_hc18) == (synthetic_hc18, False)


# -- non-square network input: (height, width) -------------------------------------------------

WIDE = (64, 96)


def test_resize_to_height_and_width() -> None:
    image = np.random.default_rng(0).integers(0, 256, (540, 800), dtype=np.uint8)
    resized = resize(image, (256, 384))
    assert resized.shape == (256, 384)
    # OpenCV takes (width, height)
    expected = cv2.resize(image, (384, 256), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(resized, expected)
    assert resize(image, (384, 256)).shape == (384, 256)  # height first, always
    # an int squeezes to a square, as before
    np.testing.assert_array_equal(
        resize(image, 192), cv2.resize(image, (192, 192), interpolation=cv2.INTER_AREA)
    )
    mask = (image > 127).astype(np.float32)
    nearest = resize(mask, (64, 96), cv2.INTER_NEAREST)
    np.testing.assert_array_equal(
        nearest, cv2.resize(mask, (96, 64), interpolation=cv2.INTER_NEAREST)
    )


def test_load_scans_at_height_by_width(mixed_size_scans) -> None:
    scans = load_scans([record for _, record in mixed_size_scans], WIDE, progress=False)
    for (truth, _), scan in zip(mixed_size_scans, scans, strict=True):
        assert scan.image.shape == scan.mask.shape == WIDE
        assert scan.original_shape == truth.image.shape
        assert set(np.unique(scan.mask)) == {0, 1}
        np.testing.assert_array_equal(
            scan.image, cv2.resize(truth.image, (96, 64), interpolation=cv2.INTER_AREA)
        )
        height, width = truth.image.shape
        assert scan.mask.mean() == pytest.approx(truth.ellipse.area / (height * width), abs=0.03)
        # the head's centre lands where the scan's proportions put it: x scaled by 96 / W
        # and y by 64 / H (pixel centres at (i + 0.5) * scale - 0.5)
        rows, cols = np.nonzero(scan.mask)
        assert cols.mean() == pytest.approx((truth.ellipse.cx + 0.5) * 96 / width - 0.5, abs=0.6)
        assert rows.mean() == pytest.approx((truth.ellipse.cy + 0.5) * 64 / height - 0.5, abs=0.6)


def test_non_square_scans_keep_their_shape_through_the_transforms(mixed_size_scans) -> None:
    scans = load_scans([record for _, record in mixed_size_scans], WIDE, progress=False)
    for transform in (train_transform(), eval_transform()):
        transform.set_random_seed(0)
        dataset = ScanDataset(scans, transform)
        for i in range(len(scans)):
            image, target = dataset[i]
            assert image.shape == (3, *WIDE) and target.shape == (1, *WIDE)
    image, target = ScanDataset(scans, eval_transform())[0]
    np.testing.assert_array_equal(target[0].numpy(), scans[0].mask)

"""fetalft.shipped: the fp16 model in fetalft/model/, its SHA-256, and the CLI that uses it.

A tiny decoder-0-4 model is trained for a few epochs on synthetic scans and shipped into a
temporary folder; every check of the file (hash, dtypes, predictions) is made here by a
route of its own (hashlib, torch.load, the fp32 original). The last test re-scores the real
shipped model on HC18's test split; it is skipped until both are present.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fetalft import hc18, shipped
from fetalft.__main__ import main
from fetalft.data import load_scans, select_records
from fetalft.metrics import segmentation_metrics
from fetalft.predict import Predictor
from fetalft.synthetic import synthetic_scan
from fetalft.training import RunConfig, Trainer

CARD = "# Model card\n\nA tiny test model. Not for diagnosis.\n"
SIZE = (32, 48)  # (height, width): a rectangle, as the recipe's 256 x 384


@pytest.fixture(scope="module")
def best(synthetic_hc18: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A best.pt as a study run writes it: decoder-0-4 at 32 x 48 without ImageNet weights,
    trained at a high learning rate until it finds heads (validation Dice about 0.6) with
    logits of a few units, as a trained model's are. Its config records an encoder-weights
    path, as a study run's does."""
    records = hc18.load_records("training", synthetic_hc18)
    train = load_scans(select_records(records, "train", limit=8), SIZE, progress=False)
    val = load_scans(select_records(records, "val", limit=2), SIZE, progress=False)
    config = RunConfig(
        "decoder-0-4",
        epochs=12,
        image_size=SIZE,
        batch_size=4,
        lr=1e-2,
        encoder_weights=None,
        precision="fp32",
    )
    trainer = Trainer(config, train, val, tmp_path_factory.mktemp("run"), progress=False)
    trainer.fit()
    state = torch.load(trainer.best_path, weights_only=False)
    state["config"]["encoder_weights"] = "/machine/path/mobilenet_v2.pth"
    torch.save(state, trainer.best_path)
    return trainer.best_path


@pytest.fixture(scope="module")
def model_dir(best: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model shipped into a folder that does not exist yet."""
    folder = tmp_path_factory.mktemp("package") / "fetalft" / "model"
    shipped.write_shipped_model(best, CARD, folder)
    return folder


@pytest.fixture
def copy_of_shipped(model_dir: Path, tmp_path: Path) -> Path:
    """A copy of the shipped folder that a test may damage."""
    folder = tmp_path / "model"
    folder.mkdir()
    for path in model_dir.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    return folder / shipped.MODEL_FILE.name


# --------------------------------------------------------------------------- half precision


def test_half_precision_checkpoint_halves_floats_keeps_integers_and_config() -> None:
    weights = torch.tensor([1.0, 0.1, -2.5], dtype=torch.float32)
    best = {
        "config": {
            "strategy": "decoder-0-4",
            "image_size": (256, 384),
            "tta": True,
            "encoder_weights": "/work/shared/weights/mobilenet_v2.pth",
        },
        "epoch": 7,
        "model": {
            "conv.weight": weights,
            "bn.running_var": torch.tensor([0.5], dtype=torch.float64),
            "bn.num_batches_tracked": torch.tensor(1234),
            "index": torch.tensor([3, 4], dtype=torch.int32),
        },
    }
    half = shipped.half_precision_checkpoint(best)
    assert set(half) == {"config", "epoch", "model"}
    model = half["model"]
    assert model["conv.weight"].dtype == torch.float16
    # 0.1 is 1638/16384 in fp16 (its nearest 11-bit mantissa): 0.0999755859375
    assert model["conv.weight"].tolist() == [1.0, 0.0999755859375, -2.5]
    assert model["bn.running_var"].dtype == torch.float16
    assert model["bn.running_var"].tolist() == [0.5]
    assert model["bn.num_batches_tracked"].dtype == torch.int64
    assert model["bn.num_batches_tracked"].item() == 1234
    assert model["index"].dtype == torch.int32
    assert model["index"].tolist() == [3, 4]
    assert half["config"] == {
        "strategy": "decoder-0-4",
        "image_size": (256, 384),
        "tta": True,
        "encoder_weights": "imagenet",
    }
    assert half["epoch"] == 7
    # the training checkpoint itself is left as it was
    assert best["config"]["encoder_weights"] == "/work/shared/weights/mobilenet_v2.pth"
    assert best["model"]["conv.weight"].dtype == torch.float32


# --------------------------------------------------------------------------- writing


def test_write_shipped_model_writes_the_model_its_sha256_and_the_card(
    best: Path, model_dir: Path
) -> None:
    model = model_dir / "decoder-0-4_cpu-hc.pt"
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "MODEL_CARD.md",
        "decoder-0-4_cpu-hc.pt",
        "decoder-0-4_cpu-hc.pt.sha256",
    ]
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    checksum = (model_dir / "decoder-0-4_cpu-hc.pt.sha256").read_text()
    assert checksum == f"{digest}  decoder-0-4_cpu-hc.pt\n"  # the sha256sum format
    assert (model_dir / "MODEL_CARD.md").read_text() == CARD

    original = torch.load(best, weights_only=False)
    state = torch.load(model, weights_only=False)
    assert state["epoch"] == original["epoch"]
    assert state["config"] == {**original["config"], "encoder_weights": "imagenet"}
    assert set(state["model"]) == set(original["model"])
    for key, value in original["model"].items():
        if value.is_floating_point():
            assert state["model"][key].dtype == torch.float16, key
            assert torch.equal(state["model"][key], value.half()), key
        else:
            assert torch.equal(state["model"][key], value), key
    # half the bytes of the weights, give or take the pickle around them
    assert model.stat().st_size < 0.55 * best.stat().st_size


def test_write_shipped_model_returns_the_model_path(best: Path, tmp_path: Path) -> None:
    assert shipped.write_shipped_model(best, CARD, tmp_path) == tmp_path / "decoder-0-4_cpu-hc.pt"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp


# --------------------------------------------------------------------------- checking


def test_shipped_checkpoint_accepts_the_written_model(model_dir: Path) -> None:
    model = model_dir / "decoder-0-4_cpu-hc.pt"
    assert shipped.shipped_checkpoint(model) == model
    assert shipped.shipped_checkpoint(str(model)) == model


def test_a_missing_model_is_a_shipped_model_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(shipped.ShippedModelError, match=r"decoder-0-4_cpu-hc\.pt.*--checkpoint"):
        shipped.shipped_checkpoint(tmp_path / "decoder-0-4_cpu-hc.pt")


def test_a_missing_checksum_is_a_shipped_model_error_naming_the_model(
    copy_of_shipped: Path,
) -> None:
    copy_of_shipped.with_name(copy_of_shipped.name + ".sha256").unlink()
    with pytest.raises(shipped.ShippedModelError, match=r"decoder-0-4_cpu-hc\.pt"):
        shipped.shipped_checkpoint(copy_of_shipped)


def test_one_changed_byte_is_a_shipped_model_error_naming_the_file(copy_of_shipped: Path) -> None:
    data = bytearray(copy_of_shipped.read_bytes())
    middle = len(data) // 2  # inside the weights
    data[middle] ^= 0x01
    copy_of_shipped.write_bytes(bytes(data))
    with pytest.raises(shipped.ShippedModelError) as info:
        shipped.shipped_checkpoint(copy_of_shipped)
    assert str(copy_of_shipped) in str(info.value)
    assert "SHA-256" in str(info.value)


def test_an_empty_checksum_file_is_a_shipped_model_error(copy_of_shipped: Path) -> None:
    """A truncated install leaves an empty .sha256: that is a damaged install (exit 2 in the
    CLI), not an IndexError with a traceback."""
    copy_of_shipped.with_name(copy_of_shipped.name + ".sha256").write_text("")
    with pytest.raises(shipped.ShippedModelError, match=r"decoder-0-4_cpu-hc\.pt"):
        shipped.shipped_checkpoint(copy_of_shipped)


def test_sha256_equals_hashlib_of_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    data = bytes(range(256)) * 5000  # 1.28 MB: more than one 1 MiB block
    path.write_bytes(data)
    assert shipped.sha256(path) == hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- predictions


def test_the_fp16_model_predicts_like_the_fp32_original(best: Path, model_dir: Path) -> None:
    """Logits within 1e-2 of the fp32 model's, and the same mask: a pixel may only change
    side where the fp32 logit (at original size) is itself within 1e-2 of the threshold,
    which rounding the weights to fp16 can tip either way (a handful of pixels)."""
    original = Predictor.from_checkpoint(best, precision="fp32")
    half = Predictor.from_checkpoint(model_dir / "decoder-0-4_cpu-hc.pt", precision="fp32")
    assert half.image_size == SIZE
    assert half.config.encoder_weights == "imagenet"
    scan = synthetic_scan(np.random.default_rng(4), (270, 400))
    expected = original.logits(scan.image)
    logits = half.logits(scan.image)
    assert logits.shape == SIZE
    assert np.abs(expected).max() > 1.0  # a trained model's logits, not all near zero
    assert np.abs(logits - expected).max() < 1e-2

    mask, measurement = half.measure(scan.image, scan.pixel_size_mm)
    expected_mask, expected_measurement = original.measure(scan.image, scan.pixel_size_mm)
    truth = scan.ellipse.to_mask(scan.image.shape)
    assert segmentation_metrics(expected_mask, truth)["dice"] > 0.2  # it found the head (about 0.4)
    height, width = scan.image.shape
    at_original_size = cv2.resize(expected, (width, height), interpolation=cv2.INTER_LINEAR)
    changed = mask != expected_mask
    assert np.all(np.abs(at_original_size[changed]) < 1e-2)
    assert changed.sum() <= 1e-3 * changed.size
    assert measurement.measurable == expected_measurement.measurable
    if expected_measurement.measurable:
        assert measurement.hc_mm == pytest.approx(expected_measurement.hc_mm, rel=1e-3)


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def image(synthetic_hc18: Path) -> str:
    return str(hc18.load_records("training", synthetic_hc18)[0].image_path)


def use_shipped(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Make ``path`` the model that ships with fetalft (the checks on it stay the real ones)."""
    monkeypatch.setattr(shipped, "MODEL_FILE", path)
    monkeypatch.setattr(shipped.shipped_checkpoint, "__defaults__", (path,))


def spy_on_loading(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    loaded: list[Path] = []
    real_load = Predictor.from_checkpoint.__func__

    def spy_load(cls, path, *args, **kwargs):
        loaded.append(Path(path))
        return real_load(cls, path, *args, **kwargs)

    monkeypatch.setattr(Predictor, "from_checkpoint", classmethod(spy_load))
    return loaded


def test_predict_without_checkpoint_or_profile_uses_the_shipped_model(
    model_dir: Path, image: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    model = model_dir / "decoder-0-4_cpu-hc.pt"
    use_shipped(monkeypatch, model)
    monkeypatch.setenv("FETALFT_PROFILE", "smoke")  # a profile in the environment is not asked for
    loaded = spy_on_loading(monkeypatch)
    code = main(["predict", image, "--pixel-size", "0.1"])
    out = capsys.readouterr().out
    assert loaded == [model]
    assert out.splitlines()[0] == (
        "using the model that ships with fetalft "
        "(decoder-0-4_cpu-hc.pt; see MODEL_CARD.md beside it)"
    )
    # what the shipped network finds, asked directly: the command reports exactly that
    _, found = Predictor.from_checkpoint(model).measure(hc18.read_gray(image), 0.1)
    assert code == (0 if found.measurable else 3), out
    assert out.splitlines()[1] == str(found)


def test_predict_with_a_checkpoint_never_looks_for_the_shipped_model(
    best: Path, image: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    def no_shipped_model(*args, **kwargs):
        raise AssertionError("the shipped model was looked for")

    monkeypatch.setattr(shipped, "shipped_checkpoint", no_shipped_model)
    loaded = spy_on_loading(monkeypatch)
    code = main(["predict", image, "--pixel-size", "0.1", "--checkpoint", str(best)])
    out = capsys.readouterr().out
    assert loaded == [best]
    assert "ships with fetalft" not in out
    # what that checkpoint finds, asked directly: the command reports exactly that
    _, found = Predictor.from_checkpoint(best).measure(hc18.read_gray(image), 0.1)
    assert code == (0 if found.measurable else 3), out
    assert out.splitlines()[0] == str(found)


def test_predict_with_a_profile_takes_that_profiles_best_run(
    image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    def no_shipped_model(*args, **kwargs):
        raise AssertionError("the shipped model was looked for")

    monkeypatch.setattr(shipped, "shipped_checkpoint", no_shipped_model)
    monkeypatch.setenv("FETALFT_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("FETALFT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    assert main(["predict", image, "--pixel-size", "0.1", "--profile", "smoke"]) == 2
    assert "no finished smoke-profile run" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["missing", "changed byte"])
def test_predict_without_a_usable_shipped_model_exits_2_in_one_line(
    damage: str,
    copy_of_shipped: Path,
    image: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
) -> None:
    if damage == "missing":
        copy_of_shipped.unlink()
    else:
        data = bytearray(copy_of_shipped.read_bytes())
        data[len(data) // 2] ^= 0x01
        copy_of_shipped.write_bytes(bytes(data))
    use_shipped(monkeypatch, copy_of_shipped)
    assert main(["predict", image, "--pixel-size", "0.1"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ")
    assert captured.err.count("\n") == 1
    assert "decoder-0-4_cpu-hc.pt" in captured.err
    assert ("--checkpoint" in captured.err) == (damage == "missing")
    assert "ships with fetalft" not in captured.out


def test_submit_without_a_shipped_model_exits_2_before_writing(
    synthetic_hc18: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    use_shipped(monkeypatch, tmp_path / "model" / "decoder-0-4_cpu-hc.pt")
    output = tmp_path / "submission.csv"
    args = ["submit", "--data-dir", str(synthetic_hc18), "--output", str(output)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the shipped model decoder-0-4_cpu-hc.pt is not installed")
    assert err.count("\n") == 1
    assert not output.exists()


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real_shipped_model() -> Path:
    if not shipped.MODEL_FILE.is_file():
        pytest.skip(
            f"fetalft/model/{shipped.MODEL_FILE.name} is not there yet: "
            "python scripts/ship_model.py writes it"
        )
    return shipped.MODEL_FILE


@pytest.mark.realdata
@pytest.mark.slow
def test_shipped_model_reproduces_its_runs_test_dice(
    real_shipped_model: Path, real_hc18: Path
) -> None:
    """The fp16 model re-scores the cpu-hc test split (original resolution, the run's flips)
    and gets the Dice its run recorded in results/cpu-hc/RUN/seed-K/metrics.json."""
    from fetalft.device import Runtime
    from fetalft.evaluate import evaluate

    path = shipped.shipped_checkpoint()  # the installed file passes its own SHA-256
    assert path.stat().st_size <= 15_000_000
    state = torch.load(path, map_location="cpu", weights_only=False)
    config = RunConfig(**state["config"])
    assert (config.strategy, config.encoder_weights) == ("decoder-0-4", "imagenet")
    # the run it came from: the seed in its config, which the card names too
    card = shipped.CARD_FILE.read_text()
    assert "Not for diagnosis" in card
    assert re.search(r"Seed (\d+),", card)[1] == str(config.seed)
    # the run it came from: the one committed run whose recorded config is the shipped one
    repo = Path(__file__).resolve().parents[1]
    shipped_config = json.loads(json.dumps(state["config"]))  # (320, 480) as JSON's list
    folders = [
        path.parent
        for path in (repo / "results" / "cpu-hc").glob(f"*/seed-{config.seed}/environment.json")
        if {**json.loads(path.read_text())["config"], "encoder_weights": "imagenet"}
        == shipped_config
    ]
    assert len(folders) == 1, folders
    folder = folders[0]
    assert f"`{folder.parent.name}`" in card  # the card names the run
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["best_epoch"] == state["epoch"]

    records = hc18.load_records("training", real_hc18)
    test = select_records(records, "test", metrics["split"])
    assert len(test) == metrics["n_test"]
    scans = load_scans(test, config.image_size, progress=False)
    model = Predictor.from_checkpoint(path, precision="fp32").model
    runtime = Runtime.choose("fp32", "cpu").with_precision(metrics["precision"])
    per_image = evaluate(model, scans, runtime, config.batch_size, tta=config.tta)
    assert per_image["dice"].mean() == pytest.approx(metrics["test"]["dice"]["mean"], abs=1e-3)

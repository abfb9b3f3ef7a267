"""fetalft.provenance: a finished run is reused only for the request that made it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fetalft import provenance, settings
from fetalft.profiles import get_profile
from fetalft.provenance import RunMismatchError, differences
from fetalft.study import RunSpec, Study
from fetalft.training import RunConfig

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT / "results").glob("**/seed-*/metrics.json"))
#: The weights file every committed pretrained run names (its folder was a machine path).
WEIGHTS_NAME = "mobilenet_v2_imagenet_tflite_quant_dequant_torchvision.pth"


def request(profile: str, weights: Path, precision: str = "auto", synthetic: bool = False):
    """A Study's request without loading any data (its config is all that is compared)."""
    study = Study.__new__(Study)
    study.profile, study.encoder_weights = get_profile(profile), str(weights)
    study.precision, study.synthetic = precision, synthetic
    return study


def spec_of(metrics: dict) -> RunSpec:
    """The request as the command line makes it: the head is the strategy's own unless the
    run's name says --head or --frozen-head (the baseline's records label its head, which
    always trains, as not trainable)."""
    head = {"head": True, "frozen-head": False}
    asked = [head[part] for part in metrics["run"].split("--") if part in head]
    return RunSpec(
        metrics["strategy"],
        metrics["seed"],
        metrics["split"],
        metrics["train_fraction"],
        asked[0] if asked else None,
        metrics["random_bn"],
        tuple(metrics.get("settings", {}).items()),
    )


@pytest.fixture(scope="module")
def moved_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The weights under their name in another folder than the records say (content unknown
    to the committed records, which predate hashing)."""
    path = tmp_path_factory.mktemp("elsewhere") / WEIGHTS_NAME
    path.write_bytes(b"weights moved to another machine")
    return path


def test_there_are_committed_runs() -> None:
    assert len(COMMITTED) >= 100


@pytest.fixture(scope="module")
def moved_real_weights(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """The real ImageNet weights ($FETALFT_ENCODER_WEIGHTS) copied to another folder, for
    the runs whose records hold the weights' SHA-256; None when they are not on this machine."""
    given = settings.current().encoder_weights
    if not Path(given).is_file():
        return None
    path = tmp_path_factory.mktemp("moved") / WEIGHTS_NAME
    shutil.copyfile(given, path)
    return path


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.parent.relative_to(ROOT)))
def test_every_committed_run_still_counts_as_finished(
    path: Path, moved_weights: Path, moved_real_weights: Path | None
) -> None:
    """The command that made each committed run, given again (profile, variant, seed and
    --precision, which the run's config records as asked: auto, or bf16 for cpu-hc and fp32
    or bf16 for the precision check), finds it finished, with the weights file moved:
    nothing is trained again, nothing refused. Runs recorded before hashing accept any
    weights under the recorded name; later runs need the very same bytes."""
    metrics = json.loads(path.read_text())
    folder = path.parent
    results_dir = folder.parents[2]  # <results>/<profile>/<run>/seed-<k>
    config = json.loads((folder / "environment.json").read_text())["config"]
    precision = config["precision"]
    weights = moved_weights
    if "encoder_sha256" in config.get("extra", {}):
        if moved_real_weights is None:
            pytest.skip("this run records its weights' SHA-256: needs $FETALFT_ENCODER_WEIGHTS")
        weights = moved_real_weights
    study = request(metrics["profile"], weights, precision)
    study.results_dir = results_dir
    spec = spec_of(metrics)
    assert spec.folder(results_dir, study.profile) == folder
    assert study.is_done(spec)


def test_committed_records_hold_no_machine_paths() -> None:
    """Only the weights' file name: records written before public_config held the absolute
    path in environment.json's config (scrubbed, that line only)."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "results").rglob("*.json")
        if any(root in path.read_text() for root in ("/work/", "/root/", "/home/", "/tmp/"))
    ]
    assert not offenders, (
        f"{len(offenders)} records hold a machine path, such as {offenders[0]}; run "
        "provenance.scrub_machine_paths('results') on runs written by older code"
    )
    config = {"strategy": "decoder-0-4", "encoder_weights": "/work/shared/weights/w.pth"}
    assert provenance.public_config(config)["encoder_weights"] == "file:w.pth"


# -- what differs is said ----------------------------------------------------------------------


@pytest.fixture()
def finished(tmp_path: Path, moved_weights: Path) -> tuple[Study, RunSpec, Path]:
    """A copy of one committed run under a temporary results folder."""
    source = ROOT / "results" / "cpu" / "decoder-0-4" / "seed-0"
    folder = tmp_path / "cpu" / "decoder-0-4" / "seed-0"
    shutil.copytree(source, folder)
    study = request("cpu", moved_weights)
    study.results_dir = tmp_path
    return study, RunSpec("decoder-0-4", 0), folder


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"precision": "fp32"}, "precision: recorded 'auto', requested 'fp32'"),
        ({"synthetic": True}, "extra.data: recorded 'HC18', requested 'synthetic'"),
        ({"encoder_weights": "imagenet"}, f"recorded 'file:{WEIGHTS_NAME}', requested 'imagenet'"),
    ],
)
def test_a_finished_run_made_otherwise_is_refused_with_what_differs(
    finished: tuple[Study, RunSpec, Path], change: dict, said: str
) -> None:
    study, spec, folder = finished
    for key, value in change.items():
        setattr(study, key, value)
    with pytest.raises(RunMismatchError) as error:
        study.is_done(spec)
    message = str(error.value)
    assert said in message, message
    assert str(folder) in message and "To keep both" in message and "FETALFT_RESULTS_DIR" in message


def test_weights_are_matched_by_content_once_recorded(tmp_path: Path) -> None:
    """Moved and renamed: the same bytes match; other bytes under the same name do not."""
    first, renamed, other = tmp_path / "a.pth", tmp_path / "moved" / "b.pth", tmp_path / "c.pth"
    renamed.parent.mkdir()
    first.write_bytes(b"same bytes")
    renamed.write_bytes(b"same bytes")
    other.write_bytes(b"other bytes")

    def config(path: Path) -> dict:
        sha = provenance.weights_sha256(path)
        return RunConfig(
            "decoder-0-4", encoder_weights=str(path), extra={"encoder_sha256": sha}
        ).as_dict()

    recorded = provenance.public_config(config(first))
    assert json.dumps(recorded).count("/") == 0  # the record holds no folder
    assert differences(recorded, config(renamed)) == []
    other_same_name = tmp_path / "moved" / "a.pth"
    other_same_name.write_bytes(b"other bytes")
    (found,) = differences(recorded, config(other_same_name))
    assert found.startswith("encoder weights: recorded content sha256")


def test_weights_hash_is_sha256_of_the_bytes(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "w.pth"
    path.write_bytes(b"x" * 3_000_000)
    assert provenance.weights_sha256(path) == hashlib.sha256(b"x" * 3_000_000).hexdigest()
    path.write_bytes(b"y" * 10)  # a changed file (size and time) is hashed again
    assert provenance.weights_sha256(path) == hashlib.sha256(b"y" * 10).hexdigest()
    assert provenance.weights_sha256("imagenet") is None
    assert provenance.weights_sha256(None) is None


def test_old_records_read_as_the_defaults_of_their_time() -> None:
    """A checkpoint written before warmup_epochs, select_by, tta and the data label existed
    is the run a request with those defaults asks for, on HC18."""
    old = {
        "strategy": "decoder-0-4",
        "seed": 0,
        "epochs": 8,
        "image_size": [192, 192],
        "batch_size": 10,
        "lr": 0.0001,
        "loss": "bce",
        "head_trainable": True,
        "random_bn": "eval",
        "encoder_weights": f"/work/shared/weights/{WEIGHTS_NAME}",
        "precision": "auto",
        "extra": {"split": "exam", "train_fraction": 1.0},
    }
    new = RunConfig(
        "decoder-0-4",
        epochs=8,
        image_size=(192, 192),
        head_trainable=True,
        encoder_weights=f"/elsewhere/{WEIGHTS_NAME}",
        extra={"split": "exam", "train_fraction": 1.0, "data": "HC18", "encoder_sha256": "ab" * 32},
    ).as_dict()
    assert differences(old, new) == []
    assert differences(old, {**new, "tta": True}) == ["tta: recorded False, requested True"]
    synthetic = {**new, "extra": {**new["extra"], "data": "synthetic"}}
    assert differences(old, synthetic) == ["extra.data: recorded 'HC18', requested 'synthetic'"]

"""Shared fixtures: a synthetic HC18 folder for fast tests, the real one when it is present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fetalft import hc18
from fetalft.synthetic import write_synthetic_hc18

SHARED_HC18 = Path(__file__).resolve().parents[2] / "shared" / "hc18"
SHARED_WEIGHTS = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "weights"
    / "mobilenet_v2_imagenet_tflite_quant_dequant_torchvision.pth"
)


@pytest.fixture(scope="session")
def synthetic_hc18(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small HC18-shaped folder (24 training, 6 test scans at 270x400)."""
    return write_synthetic_hc18(tmp_path_factory.mktemp("data") / "hc18", n_train=24, n_test=6)


@pytest.fixture(scope="session")
def real_hc18() -> Path:
    """The real HC18 folder ($FETALFT_DATA_DIR or ../shared/hc18), or skip."""
    for candidate in (hc18.data_dir(), SHARED_HC18):
        try:
            return hc18.find_data_dir(candidate)
        except hc18.DatasetNotFoundError:
            continue
    pytest.skip("HC18 not available: set FETALFT_DATA_DIR to run the real-data tests")


@pytest.fixture(scope="session")
def imagenet_weights() -> Path:
    """The offline ImageNet MobileNetV2 state dict ($FETALFT_ENCODER_WEIGHTS or ../shared), or skip."""
    import os

    for candidate in (os.environ.get("FETALFT_ENCODER_WEIGHTS"), SHARED_WEIGHTS):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    pytest.skip("no local ImageNet weights: set FETALFT_ENCODER_WEIGHTS to run this test")


@pytest.fixture
def umask():
    """Set the process umask (022) for one test and restore it after; the test may set
    another through the yielded ``os.umask``."""
    saved = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(saved)


@pytest.fixture
def locked_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder the user may not write in, as ``os.access`` reports it: the tests often run
    as root, who may write anywhere, so the check is stubbed rather than the permissions."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    return locked


@pytest.fixture(scope="session")
def finished_smoke_runs():
    """A function that makes finished smoke-profile runs (see :func:`_finished_smoke_runs`)."""
    return _finished_smoke_runs


def _finished_smoke_runs(root: Path, data_dir: Path, specs, lose) -> dict[str, Path]:
    """Finished smoke-profile runs of ``specs`` on ``data_dir`` under ``root``, with the
    ``best.pt`` of each spec in ``lose`` deleted (a run whose checkpoint is gone)."""
    from fetalft.profiles import get_profile
    from fetalft.study import Study

    folders = {"results": root / "results", "checkpoints": root / "checkpoints"}
    study = Study(
        get_profile("smoke"),
        data_dir=data_dir,
        results_dir=folders["results"],
        checkpoint_dir=folders["checkpoints"],
        encoder_weights="random",
        precision="fp32",
        progress=False,
    )
    study.run_all(list(specs))
    for spec in lose:
        (folders["checkpoints"] / "smoke" / spec.name / f"seed-{spec.seed}" / "best.pt").unlink()
    return {**folders, "data": data_dir}


@pytest.fixture(scope="session")
def soft_sided_head():
    """A function: the logits of a round head whose side is faint (see its docstring)."""
    return _soft_sided_head


def _soft_sided_head(shape, centre, radius, soft_arc_deg, drift_px) -> np.ndarray:
    """Logits of a round head whose outline is sharp (slope 2 per pixel) except on an arc
    around angle 0, where it softens (down to slope 0.2) and drifts up to ``drift_px``
    inside, smoothly (a cosine-squared bump), as a faint side of a skull does."""
    y, x = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    r = np.hypot(x - centre[0], y - centre[1])
    angle = np.degrees(np.arctan2(y - centre[1], x - centre[0]))
    bump = np.where(np.abs(angle) < soft_arc_deg / 2, np.cos(np.pi * angle / soft_arc_deg), 0)
    bump = bump**2
    return (2.0 - 1.8 * bump) * (radius - drift_px * bump - r)

"""ONNX export: ONNX Runtime gives the same logits, masks and head circumference as PyTorch."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch

from fetalft import hc18
from fetalft.__main__ import main
from fetalft.data import load_scans, select_records
from fetalft.export import ExportError, OnnxPredictor, export_onnx
from fetalft.predict import Predictor
from fetalft.training import RunConfig, Trainer


def trained_checkpoint(records, folder, weights, size=64, epochs=2):
    """A quickly trained decoder-0-4 model's best.pt (fp32, so both backends see fp32)."""
    train = load_scans(select_records(records, "train", limit=40), size, progress=False)
    val = load_scans(select_records(records, "val", limit=8), size, progress=False)
    config = RunConfig(
        "decoder-0-4", epochs=epochs, image_size=size, encoder_weights=weights, precision="fp32"
    )
    trainer = Trainer(config, train, val, folder, progress=False)
    trainer.fit()
    return trainer.best_path


def export_with_the_cli(checkpoint, output, capsys):
    """``python -m fetalft export --checkpoint C --output O``, in process."""
    assert main(["export", "--checkpoint", str(checkpoint), "--output", str(output)]) == 0
    assert f"ONNX model written to {output}" in capsys.readouterr().out
    assert output.is_file()
    return output


def compare_backends(checkpoint, records, tmp_path, capsys):
    onnx_path = export_with_the_cli(checkpoint, tmp_path / "deploy" / "model.onnx", capsys)
    meta = json.loads(onnx_path.with_suffix(".json").read_text())
    size = torch.load(checkpoint, weights_only=False)["config"]["image_size"]
    assert meta["input"]["shape"] == ["batch", 3, size, size]
    assert meta["run"]["strategy"] == "decoder-0-4"
    worst_logit, worst_hc, mask_mismatch = 0.0, 0.0, 0.0
    for clear_fit in (False, True):  # both fits measure alike in both backends
        torch_model = Predictor.from_checkpoint(checkpoint, precision="fp32", clear_fit=clear_fit)
        onnx_model = OnnxPredictor(onnx_path, clear_fit=clear_fit)
        assert onnx_model.clear_fit is clear_fit
        for record in records:
            image = hc18.read_gray(record.image_path)
            a, b = torch_model.logits(image), onnx_model.logits(image)
            worst_logit = max(worst_logit, float(np.abs(a - b).max()))
            mask_a, m_a = torch_model.measure(image, record.pixel_size_mm)
            mask_b, m_b = onnx_model.measure(image, record.pixel_size_mm)
            mask_mismatch = max(mask_mismatch, float((mask_a != mask_b).mean()))
            assert m_a.measurable == m_b.measurable
            if m_a.measurable:
                worst_hc = max(worst_hc, abs(m_a.hc_mm - m_b.hc_mm))
    return worst_logit, mask_mismatch, worst_hc


@pytest.fixture
def records_and_weights(request, synthetic_hc18):
    """Real HC18 with ImageNet weights when available (as in CI), else synthetic scans."""
    try:
        real = request.getfixturevalue("real_hc18")
        weights = str(request.getfixturevalue("imagenet_weights"))
    except pytest.skip.Exception:
        return hc18.load_records("training", synthetic_hc18), "random", False
    return hc18.load_records("training", real), weights, True


@pytest.mark.slow
def test_onnx_runtime_matches_pytorch(records_and_weights, tmp_path, capsys):
    pytest.importorskip("onnxscript")
    records, weights, real = records_and_weights
    checkpoint = trained_checkpoint(records, tmp_path / "run", weights, epochs=2 if real else 1)
    test_records = select_records(records, "test", limit=10)
    worst_logit, mask_mismatch, worst_hc = compare_backends(
        checkpoint, test_records, tmp_path, capsys
    )
    print(
        f"real={real}: max |logit diff| {worst_logit:.2e}, mask mismatch {mask_mismatch:.2e}, "
        f"max HC diff {worst_hc:.4f} mm"
    )
    assert worst_logit < 1e-3
    assert mask_mismatch < 1e-4
    assert worst_hc < 0.1
    batch = np.random.default_rng(0).normal(size=(3, 3, 64, 64)).astype(np.float32)
    onnx_model = OnnxPredictor(tmp_path / "deploy" / "model.onnx")
    assert onnx_model.forward(batch).shape == (3, 1, 64, 64)  # dynamic batch size


# -- nothing lost: paths that would overwrite the checkpoint or the model are refused first ------


def snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize(
    ("checkpoint", "output", "said"),
    [
        ("best.pt", "model.json", "the sidecar would overwrite the ONNX model"),
        ("best.pt", "best.pt", "the ONNX model {d}/best.pt would overwrite the checkpoint"),
        ("best.onnx", None, "the ONNX model {d}/best.onnx would overwrite the checkpoint"),
        ("model.json", "model.onnx", "the JSON sidecar {d}/model.json would overwrite"),
        ("best.pt", "./sub/../best.pt", "would overwrite the checkpoint {d}/best.pt"),
    ],
    ids=["json-output", "output-is-checkpoint", "default-output", "sidecar-is-checkpoint", "alias"],
)
def test_export_refuses_to_overwrite_its_input_or_its_model(
    checkpoint, output, said, tmp_path, monkeypatch, capsys
):
    """Refused before the checkpoint is even read: a one-line error naming the paths, exit 2."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / checkpoint).write_bytes(b"the only copy of a trained model")
    before = snapshot(tmp_path)
    args = ["export", "--checkpoint", str(tmp_path / checkpoint)]
    args += ["--output", str(tmp_path / output)] if output else []
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert said.format(d=tmp_path) in err
    assert "--output" in err
    assert snapshot(tmp_path) == before  # nothing written, the checkpoint untouched
    assert not list((tmp_path / "sub").iterdir())


def test_export_refuses_a_symlink_to_the_checkpoint(tmp_path):
    (tmp_path / "best.pt").write_bytes(b"model")
    (tmp_path / "link.onnx").symlink_to(tmp_path / "best.pt")
    with pytest.raises(ExportError, match="would overwrite the checkpoint"):
        export_onnx(tmp_path / "best.pt", tmp_path / "link.onnx")
    assert (tmp_path / "best.pt").read_bytes() == b"model"


# -- the exported files get the user's umask, like any file the user creates ---------------------


class StandInProgram:
    """What ``torch.onnx.export`` returns, reduced to ``save``: it writes a file by name, as
    ONNX's own save does (the real export takes minutes on a busy CPU; it is tested above)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def save(self, destination) -> None:
        with open(destination, "wb") as handle:
            handle.write(b"stand-in ONNX model")
            if self.fail:
                raise OSError("disk full")


def untrained_checkpoint(path):
    """A best.pt as a study run writes it, of an untrained 32 x 32 decoder-0-4 model."""
    from fetalft.strategies import get_strategy, prepare_model

    config = RunConfig("decoder-0-4", image_size=32, encoder_weights=None, precision="fp32")
    net = prepare_model(get_strategy(config.strategy), None, config.head_trainable)
    torch.save({"config": config.as_dict(), "model": net.state_dict()}, path)
    return path


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002], ids=["022", "027", "002"])
def test_exported_files_get_the_users_umask(mask, umask, tmp_path, monkeypatch):
    """Before: the .onnx came from mkstemp and stayed 0600 whatever the umask."""
    umask(mask)
    checkpoint = untrained_checkpoint(tmp_path / "best.pt")
    out = tmp_path / "deploy"
    out.mkdir()
    (out / "plain").write_bytes(b"")  # what open() gives a new file under this umask
    expected = 0o666 & ~mask
    assert stat.S_IMODE((out / "plain").stat().st_mode) == expected
    (out / "model.onnx").write_bytes(b"an older export")
    os.chmod(out / "model.onnx", 0o600)  # as the old code left it: its mode is not kept
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: StandInProgram())

    model = export_onnx(checkpoint, out / "model.onnx")
    assert model.read_bytes() == b"stand-in ONNX model"
    for path in (model, model.with_suffix(".json")):
        assert stat.S_IMODE(path.stat().st_mode) == expected, path.name
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.onnx", "plain"]


def test_a_failed_save_keeps_the_old_model_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    checkpoint = untrained_checkpoint(tmp_path / "best.pt")
    (tmp_path / "model.onnx").write_bytes(b"an older export")
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: StandInProgram(fail=True))
    with pytest.raises(OSError, match="disk full"):
        export_onnx(checkpoint, tmp_path / "model.onnx")
    assert (tmp_path / "model.onnx").read_bytes() == b"an older export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "model.onnx"]

"""fetalft.training: resume, failure modes, best-epoch choice, atomic checkpoints, precision."""

from __future__ import annotations

import dataclasses
import math
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fetalft import hc18, training
from fetalft.data import eval_transform, load_scans, select_records
from fetalft.device import Runtime
from fetalft.training import RunConfig, Trainer, TrainingError, make_loss, validation_dice

SIZE = 32


@pytest.fixture(scope="module")
def scans(synthetic_hc18: Path) -> dict[str, list]:
    """Eight training and the validation scans of the synthetic set, at 32x32."""
    records = hc18.load_records("training", synthetic_hc18)
    return {
        "train": load_scans(select_records(records, "train", limit=8), SIZE, progress=False),
        "val": load_scans(select_records(records, "val"), SIZE, progress=False),
    }


def config(**changes) -> RunConfig:
    base = RunConfig(
        "decoder-0-4",
        seed=3,
        epochs=3,
        image_size=SIZE,
        batch_size=4,
        encoder_weights=None,
        precision="fp32",
    )
    return dataclasses.replace(base, **changes)


def trainer(scans, folder: Path, **changes) -> Trainer:
    return Trainer(config(**changes), scans["train"], scans["val"], folder, progress=False)


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Interrupt(KeyboardInterrupt):
    """Raised by a loss function wrapper to simulate Ctrl-C in the middle of an epoch."""


def interrupt_at_step(t: Trainer, step: int) -> None:
    calls = {"n": 0}
    loss_fn = t.loss_fn

    def wrapped(logits, masks):
        calls["n"] += 1
        if calls["n"] == step:
            raise Interrupt
        return loss_fn(logits, masks)

    t.loss_fn = wrapped


# -- resume -------------------------------------------------------------------------------


def test_interrupted_run_resumes_to_the_same_result(scans, tmp_path: Path) -> None:
    """decoder-0-4 trains BatchNorm layers too (the decoder's), so their statistics resume."""
    straight = trainer(scans, tmp_path / "straight")
    history = straight.fit()
    assert list(history["epoch"]) == [1, 2, 3]
    lrs = list(history["lr"])  # cosine decay over all steps, to zero
    assert lrs == sorted(lrs, reverse=True)
    assert lrs[0] < 1e-4
    assert lrs[-1] == pytest.approx(0, abs=1e-12)

    first = trainer(scans, tmp_path / "resumed")
    # Two steps per epoch: stop at the first step of epoch 2, after epoch 1's checkpoint.
    assert first.steps_per_epoch == 2
    interrupt_at_step(first, 3)
    with pytest.raises(Interrupt):
        first.fit()
    saved = torch.load(first.last_path, weights_only=False)
    assert saved["epoch"] == 1
    assert len(saved["history"]) == 1

    second = trainer(scans, tmp_path / "resumed")
    resumed = second.fit()
    assert second.epoch == 3
    # the time of the interrupted process is carried, so the run's wall time is complete
    assert second.carried_seconds == saved["fit_seconds"] > 0
    assert second.fit_seconds > second.carried_seconds
    columns = ["epoch", "train_loss", "val_dice", "lr"]
    assert resumed[columns].equals(history[columns])
    assert second.best_dice == straight.best_dice
    assert states_equal(second.model.state_dict(), straight.model.state_dict())
    assert second.load_best() == straight.load_best()
    assert states_equal(second.model.state_dict(), straight.model.state_dict())


@pytest.fixture(scope="module")
def finished(scans, tmp_path_factory: pytest.TempPathFactory) -> Trainer:
    """A finished one-epoch run, trained once for the tests that only read its checkpoints."""
    t = trainer(scans, tmp_path_factory.mktemp("finished"), epochs=1)
    t.fit()
    return t


def copy_run(finished: Trainer, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("last.pt", "best.pt"):
        shutil.copy(finished.checkpoint_dir / name, folder / name)
    return folder


def test_finished_run_resumes_to_nothing(scans, finished: Trainer, tmp_path: Path) -> None:
    again = trainer(scans, copy_run(finished, tmp_path), epochs=1)
    again.train_epoch = lambda: pytest.fail("a finished run trained again")
    assert len(again.fit()) == 1
    assert states_equal(again.model.state_dict(), finished.model.state_dict())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lr": 1e-3}, "lr"),
        ({"seed": 4}, "seed"),
        ({"epochs": 2}, "epochs"),
        ({"head_trainable": True}, "head_trainable"),
        ({"extra": {"split": "leaky"}}, "extra"),
    ],
)
def test_resuming_with_another_configuration_is_refused(
    scans, finished: Trainer, tmp_path: Path, change: dict, field: str
) -> None:
    copy_run(finished, tmp_path)
    before = (tmp_path / "last.pt").read_bytes()
    other = trainer(scans, tmp_path, **{"epochs": 1, **change})
    other.train_epoch = lambda: pytest.fail("trained on another configuration's checkpoint")
    with pytest.raises(TrainingError, match="different configuration") as info:
        other.fit()
    assert f"differs in: {field}" in str(info.value)
    assert str(tmp_path / "last.pt") in str(info.value)
    assert (tmp_path / "last.pt").read_bytes() == before


def test_best_checkpoint_holds_config_epoch_and_model(finished: Trainer) -> None:
    best = torch.load(finished.best_path, weights_only=False)
    assert set(best) == {"config", "epoch", "model"}
    assert best["config"] == finished.config.as_dict()
    assert RunConfig(**best["config"]) == finished.config
    assert best["epoch"] == 1


# -- failure modes ------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_stops_with_a_clear_message(scans, tmp_path: Path, bad: float) -> None:
    t = trainer(scans, tmp_path, epochs=2)
    loss_fn = t.loss_fn
    calls = {"n": 0}

    def poisoned(logits, masks):
        calls["n"] += 1
        loss = loss_fn(logits, masks)
        return loss * bad if calls["n"] == 4 else loss  # epoch 2, step 2

    t.loss_fn = poisoned
    with pytest.raises(TrainingError) as info:
        t.fit()
    message = str(info.value)
    assert f"loss became {bad}" in message
    assert "decoder-0-4, seed 3" in message
    assert "epoch 2, step 2" in message
    assert "precision='fp32'" in message
    assert torch.load(t.last_path, weights_only=False)["epoch"] == 1  # last good one kept
    assert all(torch.isfinite(p).all() for p in t.model.parameters())


def test_trainer_needs_training_and_validation_images(scans, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="got 8 and 0"):
        Trainer(config(), scans["train"], [], tmp_path, progress=False)


def test_run_config_validates_strategy_and_loss() -> None:
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        RunConfig("nope")
    with pytest.raises(ValueError, match=r"unknown loss 'mse'.*bce, bce\+dice"):
        RunConfig("decoder-4", loss="mse")
    with pytest.raises(ValueError, match=r"unknown augment 'heavy'.*paper, strong"):
        RunConfig("decoder-4", augment="heavy")


@pytest.mark.parametrize("augment", ["paper", "strong"])
def test_the_trainer_augments_as_its_config_says(scans, tmp_path: Path, augment: str) -> None:
    t = trainer(scans, tmp_path, augment=augment)
    names = [type(step).__name__ for step in t.transform.transforms]
    assert ("RandomGamma" in names) == (augment == "strong")
    assert names[0] == ("Rotate" if augment == "paper" else "Affine")


def test_losses() -> None:
    logits = torch.tensor([[[[4.0, -4.0], [4.0, -4.0]]]])
    target = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    bce = make_loss("bce")(logits, target)
    both = make_loss("bce+dice")(logits, target)
    assert bce.item() == pytest.approx(
        torch.nn.functional.softplus(torch.tensor(-4.0)).item(), rel=1e-5
    )
    assert both > bce  # the Dice term of soft predictions is positive
    assert make_loss("bce+dice")(logits * 100, target) == pytest.approx(0, abs=1e-6)


# -- best epoch and checkpoints -------------------------------------------------------------


def test_best_epoch_is_chosen_on_validation(
    scans, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scores = iter([0.2, 0.9, 0.5])
    seen: list[list[str]] = []

    def fake_dice(model, val, runtime, batch_size, tta=False):
        assert tta is False  # the config's default: no flips
        seen.append([s.name for s in val])
        return next(scores)

    monkeypatch.setattr(training, "validation_dice", fake_dice)
    t = trainer(scans, tmp_path)
    states = []
    save = t.save_checkpoint
    t.save_checkpoint = lambda: (states.append(snapshot(t.model)), save())[1]
    history = t.fit()
    assert list(history["val_dice"]) == [0.2, 0.9, 0.5]
    assert seen == [[s.name for s in scans["val"]]] * 3
    assert t.best_dice == 0.9
    assert not states_equal(snapshot(t.model), states[1])
    assert t.load_best() == 2
    assert states_equal(snapshot(t.model), states[1])


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_checkpoints_are_written_atomically(
    scans, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = trainer(scans, tmp_path, epochs=2)
    t.fit()
    t2 = trainer(scans, tmp_path / "again", epochs=2)
    real_save = torch.save

    def crashing_save(obj, handle, *args, **kwargs):
        if ".last.pt." in handle.name and obj["epoch"] == 2:  # half-way through last.pt
            handle.write(b"half a checkpoint")
            raise OSError("disk full")
        return real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        t2.fit()
    monkeypatch.undo()
    folder = tmp_path / "again"
    assert sorted(p.name for p in folder.iterdir()) == ["best.pt", "last.pt"]  # no temp files
    assert torch.load(folder / "last.pt", weights_only=False)["epoch"] == 1
    # the crash cost nothing: the run resumes and ends where the uninterrupted one did
    t3 = trainer(scans, folder, epochs=2)
    t3.fit()
    assert states_equal(t3.model.state_dict(), t.model.state_dict())


def test_validation_dice_of_a_perfect_and_an_empty_model(scans) -> None:
    runtime = Runtime.choose("fp32", "cpu")
    val = scans["val"]

    class Oracle(torch.nn.Module):
        def __init__(self, sign: float) -> None:
            super().__init__()
            self.sign = sign
            self.index = 0

        def forward(self, x):
            masks = [torch.from_numpy(val[self.index + i].mask) for i in range(len(x))]
            self.index += len(x)
            return self.sign * (torch.stack(masks)[:, None].float() * 2 - 1)

    assert validation_dice(Oracle(1.0), val, runtime, 1) == pytest.approx(1.0)
    assert validation_dice(Oracle(-1.0), val, runtime, 1) == pytest.approx(0.0)


def test_bf16_and_fp32_paths_both_train_and_agree(
    scans, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fp32 = trainer(scans, tmp_path / "fp32", epochs=1)
    assert fp32.runtime.precision == "fp32"
    plain = fp32.fit()
    monkeypatch.setattr("fetalft.device.bf16_pays_off", lambda: True)  # even where emulated
    bf16 = trainer(scans, tmp_path / "bf16", epochs=1, precision="auto")
    assert bf16.runtime.precision == "bf16-autocast"
    fast = bf16.fit()
    assert np.isfinite(fast["train_loss"]).all()
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())  # weights stay fp32
    assert fast["train_loss"].to_numpy() == pytest.approx(plain["train_loss"].to_numpy(), rel=0.02)
    assert fast["val_dice"].to_numpy() == pytest.approx(plain["val_dice"].to_numpy(), abs=0.05)


def test_a_resumed_run_keeps_the_precision_it_began_with(
    scans, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Precision "auto" is decided when a run begins; a later process (another machine, or
    this one with other CPU flags) may decide otherwise, and the resumed run keeps its own."""
    monkeypatch.setattr("fetalft.device.bf16_pays_off", lambda: True)
    first = trainer(scans, tmp_path, epochs=2, precision="auto")
    interrupt_at_step(first, 3)  # after epoch 1's checkpoint
    with pytest.raises(Interrupt):
        first.fit()
    monkeypatch.setattr("fetalft.device.bf16_pays_off", lambda: False)
    second = trainer(scans, tmp_path, epochs=2, precision="auto")
    assert second.runtime.precision == "fp32"
    second.fit()
    assert second.runtime.precision == "bf16-autocast"


def test_scans_of_another_size_than_the_config_are_refused(scans, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="image_size"):
        trainer(scans, tmp_path, image_size=64)


@pytest.mark.realdata
@pytest.mark.slow
def test_bf16_costs_no_accuracy_on_a_short_real_run(
    real_hc18: Path, imagenet_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """decoder-0-4 from the offline ImageNet weights, 80 real images at 64x64, three epochs:
    the bf16 fast path and plain fp32 end at the same validation and test Dice."""
    from fetalft.evaluate import evaluate

    records = hc18.load_records("training", real_hc18)
    data = {
        role: load_scans(select_records(records, role, limit=n), 64, progress=False)
        for role, n in (("train", 80), ("val", 20), ("test", 20))
    }
    monkeypatch.setattr("fetalft.device.bf16_pays_off", lambda: True)
    results = {}
    for precision in ("fp32", "auto"):
        run = RunConfig(
            "decoder-0-4",
            epochs=3,
            image_size=64,
            lr=1e-3,
            encoder_weights=str(imagenet_weights),
            precision=precision,
        )
        t = Trainer(run, data["train"], data["val"], tmp_path / precision, progress=False)
        history = t.fit()
        t.load_best()
        test = evaluate(t.model, data["test"], t.runtime)
        results[t.runtime.precision] = (history["val_dice"].max(), test["dice"].mean())
    (val32, test32), (val16, test16) = results["fp32"], results["bf16-autocast"]
    assert test32 > 0.6  # it learned something, so the comparison means something
    assert val16 == pytest.approx(val32, abs=0.02)
    assert test16 == pytest.approx(test32, abs=0.02)


# -- validation Dice on unsaturated logits ---------------------------------------------------


class UnsureOracle(torch.nn.Module):
    """+margin on each validation scan's mask (shifted by ``shift`` columns), -margin elsewhere."""

    def __init__(self, val, margin: float, shift: int = 0) -> None:
        super().__init__()
        self.masks = [np.roll(s.mask, shift, axis=1) for s in val]
        self.margin = margin
        self.index = 0

    def forward(self, x):
        masks = self.masks[self.index : self.index + len(x)]
        self.index += len(x)
        return self.margin * (torch.from_numpy(np.stack(masks))[:, None].float() * 2 - 1)


@pytest.mark.parametrize("margin", [0.2, 0.01])
def test_validation_dice_thresholds_unsure_logits_at_zero(scans, margin: float) -> None:
    runtime = Runtime.choose("fp32", "cpu")
    val = scans["val"]
    assert validation_dice(UnsureOracle(val, margin), val, runtime, 2) == pytest.approx(1.0)
    assert validation_dice(UnsureOracle(val, -margin), val, runtime, 2) == pytest.approx(0.0)
    # a prediction 3 columns off: the Dice of each image, worked out with numpy
    expected = np.mean(
        [2 * (np.roll(s.mask, 3, axis=1) & s.mask).sum() / (2 * s.mask.sum()) for s in val]
    )
    assert 0.3 < expected < 0.95
    shifted = validation_dice(UnsureOracle(val, margin, shift=3), val, runtime, 2)
    assert shifted == pytest.approx(expected)


# -- learning-rate schedule: linear warm-up, then cosine decay to zero ----------------------


def scheduled_lrs(total: int, warmup: int, lr: float = 1e-3) -> list[float]:
    """The learning rate of each of ``total`` optimizer steps, and the one after the last."""
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([weight], lr=lr)
    scheduler = training.make_scheduler(optimizer, total, warmup)
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return [*lrs, optimizer.param_groups[0]["lr"]]


def closed_form_lr(step: int, total: int, warmup: int, lr: float = 1e-3) -> float:
    """Warm-up: torch's LinearLR factor ``s + (1 - s) * k / W`` with ``s = 1/W``, i.e. lr/W at
    step 0 rising in equal steps to lr at step W; then ``lr * (1 + cos(pi * t / (T - W))) / 2``
    with ``t = step - W``, which is lr at t = 0 and 0 after the last step."""
    if step < warmup:
        start = 1 / warmup
        return lr * (start + (1 - start) * step / warmup)
    return lr * (1 + math.cos(math.pi * (step - warmup) / (total - warmup))) / 2


@pytest.mark.parametrize(("warmup", "total"), [(1, 5), (2, 6), (3, 10), (12, 144)])
def test_scheduler_warms_up_linearly_then_decays_as_a_cosine(warmup: int, total: int) -> None:
    lrs = scheduled_lrs(total, warmup)
    expected = [closed_form_lr(k, total, warmup) for k in range(total + 1)]
    assert lrs == pytest.approx(expected, rel=0, abs=1e-12)
    assert lrs[0] == pytest.approx(1e-3 / warmup, abs=1e-12)
    assert max(lrs) == pytest.approx(1e-3, abs=1e-12)  # reached at step W, never exceeded
    assert lrs[warmup] == pytest.approx(1e-3, abs=1e-12)
    assert lrs[-1] == pytest.approx(0, abs=1e-12)
    assert lrs[: warmup + 1] == sorted(lrs[: warmup + 1])  # up, then down
    assert lrs[warmup:] == sorted(lrs[warmup:], reverse=True)


@pytest.mark.parametrize("total", [1, 6, 96])
def test_scheduler_without_warm_up_is_the_plain_cosine_of_before(total: int) -> None:
    lrs = scheduled_lrs(total, 0)
    expected = [1e-3 * (1 + math.cos(math.pi * k / total)) / 2 for k in range(total + 1)]
    assert lrs == pytest.approx(expected, rel=0, abs=1e-12)
    # exactly what the code before warm-up built: CosineAnnealingLR over all steps
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([weight], lr=1e-3)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    before = []
    for _ in range(total):
        before.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        cosine.step()
    assert lrs == [*before, optimizer.param_groups[0]["lr"]]


def test_scheduler_without_a_warm_up_argument_does_not_warm_up() -> None:
    """The default is the paper's schedule: the full learning rate from the first step."""
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([weight], lr=1e-3)
    scheduler = training.make_scheduler(optimizer, 4)
    lrs = []
    for _ in range(4):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([1e-3 * (1 + math.cos(math.pi * k / 4)) / 2 for k in range(4)])


def test_the_trainers_model_is_laid_out_channels_last(scans, tmp_path: Path) -> None:
    """The speeds the book reports were measured with the model laid out channels_last (with
    bf16 autocast, the layout the CPU's fast convolutions use); another layout would change
    every timing, though no prediction."""
    t = trainer(scans, tmp_path)
    weight = t.model.net.encoder.features[0][0].weight  # the first convolution, 32x3x3x3
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert not weight.is_contiguous()  # channels_last is not also the default layout here


def test_trainer_warms_up_for_one_epoch_then_decays(scans, tmp_path: Path) -> None:
    """Three epochs of two steps, the first epoch warming up: steps at lr/2, 3lr/4, then the
    cosine over the remaining four steps; the history records the rate after each epoch."""
    lr = 1e-4
    t = trainer(scans, tmp_path, warmup_epochs=1, lr=lr)
    assert t.steps_per_epoch == 2
    used = []
    loss_fn = t.loss_fn

    def recording(logits, masks):
        used.append(t.optimizer.param_groups[0]["lr"])
        return loss_fn(logits, masks)

    t.loss_fn = recording
    history = t.fit()
    total, warmup = 6, 2
    expected_steps = [lr / 2, 3 * lr / 4, lr, lr * (1 + math.cos(math.pi / 4)) / 2, lr / 2]
    expected_steps.append(lr * (1 + math.cos(3 * math.pi / 4)) / 2)
    assert used == pytest.approx(expected_steps, rel=0, abs=1e-12)
    assert used == pytest.approx(
        [closed_form_lr(k, total, warmup, lr) for k in range(6)], abs=1e-12
    )
    # after epoch e the next step is step 2e: lr, lr/2, 0
    assert list(history["lr"]) == pytest.approx([lr, lr / 2, 0.0], rel=0, abs=1e-12)


def test_run_config_validates_selection_and_warm_up() -> None:
    with pytest.raises(ValueError, match=r"unknown select_by 'x'; choose one of dice, hc"):
        RunConfig("decoder-4", select_by="x")
    with pytest.raises(ValueError, match=r"warmup_epochs=8 .*8 epochs"):
        RunConfig("decoder-4", epochs=8, warmup_epochs=8)
    with pytest.raises(ValueError, match=r"warmup_epochs=9 .*8 epochs"):
        RunConfig("decoder-4", epochs=8, warmup_epochs=9)
    with pytest.raises(ValueError, match=r"warmup_epochs=-1"):
        RunConfig("decoder-4", epochs=8, warmup_epochs=-1)
    assert RunConfig("decoder-4", epochs=8, warmup_epochs=7).warmup_epochs == 7
    assert RunConfig("decoder-4", select_by="hc").select_by == "hc"


# -- choosing the best epoch by the validation HC error ------------------------------------


def per_image_frame(adf_mm: list[float], dice: float) -> pd.DataFrame:
    """A validation table as evaluate() returns it: every head's reference HC is 180 mm."""
    return pd.DataFrame(
        {
            "name": [f"{i:03d}_HC" for i in range(len(adf_mm))],
            "dice": dice,
            "adf_mm": adf_mm,
            "hc_true_mm": 180.0,
        }
    )


#: Epoch 1 has the smallest ADF of measured heads (0.5 mm) and the best Dice, but misses a
#: head, which costs its whole 180 mm: its selection error is (180 + 0.5) / 2 = 90.25 mm.
#: Epoch 2's is (1.5 + 0.5) / 2 = 1.0 mm, epoch 3's (3 + 1) / 2 = 2.0 mm: epoch 2 is best.
HC_EPOCHS = [
    {"dice": 0.9, "dice_original": 0.91, "adf": [float("nan"), 0.5], "error": 90.25, "fails": 1},
    {"dice": 0.5, "dice_original": 0.52, "adf": [1.5, 0.5], "error": 1.0, "fails": 0},
    {"dice": 0.8, "dice_original": 0.83, "adf": [3.0, 1.0], "error": 2.0, "fails": 0},
]


def fake_validation(monkeypatch: pytest.MonkeyPatch, calls: list) -> None:
    """Validation Dice and per-image tables of HC_EPOCHS, epoch after epoch."""
    dices = iter(e["dice"] for e in HC_EPOCHS)
    tables = iter(per_image_frame(e["adf"], e["dice_original"]) for e in HC_EPOCHS)

    def fake_dice(model, val, runtime, batch_size, tta=False):
        calls.append(("dice", [s.name for s in val], tta))
        return next(dices)

    def fake_evaluate(model, val, runtime, batch_size=10, tta=False):
        calls.append(("evaluate", [s.name for s in val], tta))
        return next(tables)

    monkeypatch.setattr(training, "validation_dice", fake_dice)
    monkeypatch.setattr(training, "evaluate", fake_evaluate)


@pytest.mark.parametrize("tta", [False, True])
def test_select_by_hc_keeps_the_epoch_with_the_smallest_hc_error(
    scans, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tta: bool
) -> None:
    calls: list = []
    fake_validation(monkeypatch, calls)
    t = trainer(scans, tmp_path, select_by="hc", tta=tta)
    states = []
    save = t.save_checkpoint
    t.save_checkpoint = lambda: (states.append(snapshot(t.model)), save())[1]
    history = t.fit()
    val_names = [s.name for s in scans["val"]]
    # each epoch: Dice at network size, then the table at original size, both with the flips
    assert calls == [("dice", val_names, tta), ("evaluate", val_names, tta)] * 3
    assert list(history["val_dice"]) == [0.9, 0.5, 0.8]
    assert list(history["val_dice_original"]) == [0.91, 0.52, 0.83]
    assert list(history["val_adf_mm"]) == [0.5, 1.0, 2.0]  # measured heads only
    assert list(history["val_failures"]) == [1, 0, 0]
    assert list(history["val_hc_error_mm"]) == pytest.approx([90.25, 1.0, 2.0], abs=1e-12)
    assert t.best_epoch == 2
    assert t.best_score == pytest.approx(-1.0, abs=1e-12)
    assert t.best_dice == 0.5  # the chosen epoch's Dice, not the best Dice (0.9)
    assert t.load_best() == 2
    assert states_equal(snapshot(t.model), states[1])


def test_select_by_dice_never_scores_at_original_size(
    scans, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list = []
    fake_validation(monkeypatch, calls)
    t = trainer(scans, tmp_path, tta=True)
    history = t.fit()
    assert [c[0] for c in calls] == ["dice"] * 3
    assert all(c[2] is True for c in calls)
    assert "val_hc_error_mm" not in history.columns
    assert (t.best_epoch, t.best_dice, t.best_score) == (1, 0.9, 0.9)
    assert t.load_best() == 1


def test_resume_keeps_the_best_hc_epoch(
    scans, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted in epoch 3, after epoch 2 (the best so far) was saved: the resumed run must
    compare epoch 3 (2.0 mm) with epoch 2 (1.0 mm), not with nothing."""
    calls: list = []
    fake_validation(monkeypatch, calls)
    first = trainer(scans, tmp_path, select_by="hc")
    interrupt_at_step(first, 5)  # first step of epoch 3
    with pytest.raises(Interrupt):
        first.fit()
    saved = torch.load(first.last_path, weights_only=False)
    assert (saved["epoch"], saved["best_epoch"]) == (2, 2)
    assert saved["best_score"] == pytest.approx(-1.0, abs=1e-12)
    best_before = first.best_path.read_bytes()

    second = trainer(scans, tmp_path, select_by="hc")
    history = second.fit()  # the fakes go on with epoch 3
    assert list(history["epoch"]) == [1, 2, 3]
    assert list(history["val_hc_error_mm"]) == pytest.approx([90.25, 1.0, 2.0], abs=1e-12)
    assert second.best_epoch == 2
    assert second.best_score == pytest.approx(-1.0, abs=1e-12)
    assert second.best_dice == 0.5
    assert second.best_path.read_bytes() == best_before  # epoch 3 did not overwrite it
    assert second.load_best() == 2


def test_select_by_hc_end_to_end_matches_an_independent_scoring(scans, tmp_path: Path) -> None:
    """No fakes, flips on: the history's HC error of the kept epoch is what evaluate() and
    hc_selection_error_mm give for the kept weights, and no epoch has a smaller one."""
    from fetalft.evaluate import evaluate, hc_selection_error_mm

    t = trainer(scans, tmp_path, epochs=2, select_by="hc", tta=True, lr=1e-2)
    history = t.fit().set_index("epoch")
    assert {"val_dice", "val_dice_original", "val_adf_mm", "val_failures"} <= set(history)
    errors = history["val_hc_error_mm"]
    assert t.best_epoch == errors.idxmin()  # ties keep the earlier epoch
    assert t.load_best() == t.best_epoch
    per_image = evaluate(t.model, scans["val"], t.runtime, 4, tta=True)
    assert hc_selection_error_mm(per_image) == pytest.approx(errors[t.best_epoch], rel=1e-9)
    assert int(per_image["adf_mm"].isna().sum()) == history.loc[t.best_epoch, "val_failures"]
    dice = validation_dice(t.model, scans["val"], t.runtime, 4, tta=True)
    assert dice == pytest.approx(history.loc[t.best_epoch, "val_dice"], rel=1e-9)
    assert t.best_dice == history.loc[t.best_epoch, "val_dice"]


# -- non-square network input: (height, width) ----------------------------------------------


WIDE = (64, 96)


@pytest.fixture(scope="module")
def wide_scans(synthetic_hc18: Path) -> dict[str, list]:
    """Eight training and the validation scans at 64 x 96 (height x width)."""
    records = hc18.load_records("training", synthetic_hc18)
    return {
        "train": load_scans(select_records(records, "train", limit=8), WIDE, progress=False),
        "val": load_scans(select_records(records, "val"), WIDE, progress=False),
    }


def test_a_trainer_trains_on_non_square_scans(wide_scans, tmp_path: Path) -> None:
    assert all(s.image.shape == WIDE == s.mask.shape for s in wide_scans["train"])
    t = Trainer(
        config(image_size=WIDE, epochs=1),
        wide_scans["train"],
        wide_scans["val"],
        tmp_path,
        progress=False,
    )
    history = t.fit()
    assert list(history["epoch"]) == [1]
    assert np.isfinite(history["train_loss"]).all()
    assert 0 <= history.loc[0, "val_dice"] <= 1
    from fetalft.evaluate import predict_logits

    shapes = {logits.shape for _, logits in predict_logits(t.model, wide_scans["val"], t.runtime)}
    assert shapes == {WIDE}
    assert torch.load(t.best_path, weights_only=False)["config"]["image_size"] == WIDE


def test_a_non_square_run_refuses_square_scans_naming_both_sizes(
    synthetic_hc18: Path, wide_scans, tmp_path: Path
) -> None:
    records = hc18.load_records("training", synthetic_hc18)
    square = load_scans(select_records(records, "train", limit=2), 64, progress=False)
    with pytest.raises(ValueError) as info:
        Trainer(config(image_size=WIDE), square, wide_scans["val"], tmp_path, progress=False)
    message = str(info.value)
    assert "is 64x64" in message  # the scan's size
    assert "configured for 96x64" in message  # the run's, width x height as the scan's
    assert "W x H" in message
    assert square[0].name in message
    # and the transposed shape is refused too: 96 x 64 is not 64 x 96
    with pytest.raises(ValueError, match="configured for 64x96"):
        Trainer(
            config(image_size=(96, 64)),
            wide_scans["train"],
            wide_scans["val"],
            tmp_path,
            progress=False,
        )


# -- found by mutation testing (docs/mutation.md) --------------------------------------------


def test_seed_everything_seeds_pythons_numpys_and_torchs_generators() -> None:
    """Each global generator draws what a fresh generator of that seed draws first."""
    training.seed_everything(5)
    assert random.random() == random.Random(5).random()
    assert np.random.random() == np.random.RandomState(5).random_sample()  # noqa: NPY002
    assert torch.equal(torch.rand(3), torch.rand(3, generator=torch.Generator().manual_seed(5)))


def with_mask(scan, mask: np.ndarray):
    return dataclasses.replace(scan, mask=mask.astype(np.uint8))


def test_validation_dice_of_an_empty_prediction_of_an_empty_mask_is_one(scans) -> None:
    """No head predicted where there is none is a perfect answer (1), not 0/0; the same empty
    prediction of a real head scores 0. Mean of (1, 0) = 0.5."""
    runtime = Runtime.choose("fp32", "cpu")
    head = scans["val"][0]
    empty = with_mask(head, np.zeros_like(head.mask))
    assert head.mask.any()
    never_head = UnsureOracle([empty, empty], margin=0.2)  # -0.2 everywhere
    assert validation_dice(never_head, [empty, head], runtime, 1) == pytest.approx(0.5, abs=1e-12)


def test_only_strategies_that_train_the_encoder_recalibrate_its_batchnorm(
    scans, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frozen encoder keeps the statistics it came with; one that trains starts from the
    statistics of the training scans (fetalft.batchnorm)."""
    calls: list[tuple[int, list[str]]] = []

    def record(encoder, train):
        calls.append((id(encoder), [s.name for s in train]))
        return False

    monkeypatch.setattr(training, "recalibrate_folded_batchnorm", record)
    trainer(scans, tmp_path / "decoder", strategy="decoder-0-4")
    assert calls == []
    t = trainer(scans, tmp_path / "encoder", strategy="encoder")
    assert calls == [(id(t.model.net.encoder), [s.name for s in scans["train"]])]


class FakeClock:
    """``time.perf_counter`` reading the given instants, one per call."""

    def __init__(self, *instants: float) -> None:
        self.instants = iter(instants)

    def perf_counter(self) -> float:
        return next(self.instants)


def test_fit_times_each_epoch_and_the_whole_run_by_the_clock(
    scans, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each epoch reads the clock at its start, after training and after validation: epoch 1
    at 0, 3, 10 s (trains 3 s, takes 10 s), epoch 2 at 20, 24, 31 s (4 s, 11 s). The run took
    21 s, none carried from an earlier process; 8 images in 3 s and in 4 s."""
    monkeypatch.setattr(training, "time", FakeClock(0, 3, 10, 20, 24, 31))
    t = trainer(scans, tmp_path, epochs=2)
    history = t.fit()
    assert list(history["train_seconds"]) == [3, 4]
    assert list(history["images_per_second"]) == pytest.approx([8 / 3, 8 / 4], abs=1e-12)
    assert (t.fit_seconds, t.carried_seconds) == (21, 0)
    assert torch.load(t.last_path, weights_only=False)["fit_seconds"] == 21
    again = trainer(scans, tmp_path, epochs=2)
    again.fit()  # finished: nothing to train, the time is carried
    assert (again.fit_seconds, again.carried_seconds) == (21, 21)


def test_resume_says_whether_there_was_a_checkpoint(
    scans, finished: Trainer, tmp_path: Path
) -> None:
    assert trainer(scans, tmp_path / "fresh", epochs=1).resume() is False
    assert trainer(scans, copy_run(finished, tmp_path / "copy"), epochs=1).resume() is True


def test_a_checkpoint_from_before_precision_and_fit_seconds_were_recorded_resumes(
    scans, finished: Trainer, tmp_path: Path
) -> None:
    """Older checkpoints lack both keys: the run keeps this process's precision, and its
    training time is at least the sum of its epochs' training times."""
    folder = copy_run(finished, tmp_path)
    state = torch.load(folder / "last.pt", weights_only=False)
    del state["precision"], state["fit_seconds"]
    state["history"][0]["train_seconds"] = 7.5
    torch.save(state, folder / "last.pt")
    old = trainer(scans, folder, epochs=1)
    assert old.resume() is True
    assert old.runtime.precision == "fp32"
    assert (old.fit_seconds, old.carried_seconds) == (7.5, 7.5)


def test_a_tie_keeps_the_earlier_epoch(
    scans, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a better validation score replaces the kept epoch: 0.5, 0.5, 0.4 keeps epoch 1."""
    scores = iter([0.5, 0.5, 0.4])
    monkeypatch.setattr(training, "validation_dice", lambda *args, **kwargs: next(scores))
    t = trainer(scans, tmp_path)
    t.fit()
    assert (t.best_epoch, t.best_score) == (1, 0.5)
    assert torch.load(t.best_path, weights_only=False)["epoch"] == 1


def epoch_order(t: Trainer, epoch: int) -> list[int]:
    """Which training scans (by index) one epoch's loader yields, in order: with the
    augmentation replaced by the deterministic evaluation transform, each mask comes out
    exactly as it went in."""
    t.transform = eval_transform()
    t.epoch = epoch
    masks = [s.mask for s in t.train_scans]
    order = []
    for _, batch in t._loader():
        for mask in batch[:, 0].numpy():
            order += [i for i, m in enumerate(masks) if np.array_equal(m, mask)]
    return order


def test_each_epoch_shuffles_the_training_scans_anew_and_reproducibly(
    scans, tmp_path: Path
) -> None:
    t = trainer(scans, tmp_path)
    masks = [s.mask.tobytes() for s in scans["train"]]
    assert len(set(masks)) == len(masks) == 8  # each scan is recognised by its mask
    first, second = epoch_order(t, 0), epoch_order(t, 1)
    assert sorted(first) == sorted(second) == list(range(8))  # each scan once per epoch
    assert first != list(range(8))  # shuffled (1 chance in 40320 of the identity)
    assert first != second  # anew each epoch
    assert epoch_order(trainer(scans, tmp_path), 0) == first  # reproducibly
    assert epoch_order(trainer(scans, tmp_path, seed=4), 0) != first  # the seed decides


class Pattern(torch.nn.Module):
    """The same logits for every image, whatever it shows."""

    def __init__(self, logits: np.ndarray) -> None:
        super().__init__()
        self.logits = torch.from_numpy(logits).float()

    def forward(self, x):
        return self.logits.expand(len(x), 1, *self.logits.shape)


def test_validation_dice_counts_a_logit_of_exactly_zero_as_no_head(scans) -> None:
    runtime = Runtime.choose("fp32", "cpu")
    val = scans["val"]
    assert validation_dice(Pattern(np.zeros((SIZE, SIZE))), val, runtime, 2) == 0.0


def test_validation_dice_with_flips_scores_the_flip_averaged_logits(scans) -> None:
    """+0.2 on the top-left quadrant, -0.2 elsewhere, whatever the image: alone it predicts
    that quadrant exactly (Dice 1). With the flips, the horizontally and vertically flipped
    copies each put -0.2 there, so the mean is (0.2 - 0.2 - 0.2) / 3 < 0 everywhere: no
    head (Dice 0)."""
    runtime = Runtime.choose("fp32", "cpu")
    quadrant = np.zeros((SIZE, SIZE))
    quadrant[: SIZE // 2, : SIZE // 2] = 1
    val = [with_mask(s, quadrant) for s in scans["val"]]
    model = Pattern(0.2 * (quadrant * 2 - 1))
    assert validation_dice(model, val, runtime, 2, tta=False) == pytest.approx(1.0, abs=1e-12)
    assert validation_dice(model, val, runtime, 2, tta=True) == 0.0


def test_checkpoints_are_read_onto_the_runs_device(
    scans, finished: Trainer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run saved on a GPU must open on a machine without one: both readers of a checkpoint
    map it onto the device this run uses (no GPU here, so the call itself is checked)."""
    t = trainer(scans, copy_run(finished, tmp_path), epochs=1)
    real_load = torch.load
    devices = []

    def spy(path, *args, **kwargs):
        devices.append((Path(path).name, kwargs.get("map_location")))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    t.resume()
    t.load_best()
    assert devices == [("last.pt", t.runtime.device), ("best.pt", t.runtime.device)]


def test_a_refused_resume_lists_every_differing_field_separated_by_semicolons(
    scans, finished: Trainer, tmp_path: Path
) -> None:
    other = trainer(scans, copy_run(finished, tmp_path), epochs=1, seed=4, lr=1e-3)
    with pytest.raises(TrainingError) as info:
        other.fit()
    phrase = r"(seed: recorded 3, requested 4|lr: recorded 0.0001, requested 0.001)"
    assert re.search(rf"\(differs in: {phrase}; {phrase}\)", str(info.value))


def test_a_square_run_refuses_non_square_scans_naming_their_width_then_height(
    wide_scans, tmp_path: Path
) -> None:
    """The scans are 96 wide and 64 high (WIDE is height, width): the message says 96x64."""
    with pytest.raises(ValueError, match=r"is 96x64 \(W x H\) but the run is configured for 64x64"):
        Trainer(
            config(image_size=64), wide_scans["train"], wide_scans["val"], tmp_path, progress=False
        )


def test_the_trainer_builds_the_configured_encoder_and_head(scans, tmp_path: Path) -> None:
    """The config's encoder weights file and head choice reach the model: a stand-in weights
    file of constant 0.5 (a MobileNetV2 state dict) is what the encoder holds, and decoder-4's
    head trains only when the config says so."""
    from fetalft.strategies import get_strategy, prepare_model

    encoder = prepare_model(get_strategy("random-encoder"), encoder_weights=None).net.encoder
    torch.save(
        {k: torch.full_like(v, 0.5) for k, v in encoder.state_dict().items()}, tmp_path / "w.pth"
    )
    t = trainer(
        scans, tmp_path / "a", strategy="decoder-4", encoder_weights=str(tmp_path / "w.pth")
    )
    assert bool((t.model.net.encoder.features[0][0].weight == 0.5).all())
    for head, parts in ((True, {"decoder.4", "head"}), (False, {"decoder.4"})):
        t = trainer(scans, tmp_path / str(head), strategy="decoder-4", head_trainable=head)
        assert set(t.model.trainable) == parts


@pytest.mark.parametrize(("mode", "training_mode"), [("train", True), ("eval", False)])
def test_the_trainer_passes_the_random_bn_mode_to_the_model(
    scans, tmp_path: Path, mode: str, training_mode: bool
) -> None:
    """random-decoder-0-4 freezes a random encoder: in training its BatchNorm layers
    normalise by batch only under random_bn="train"."""
    t = trainer(scans, tmp_path, strategy="random-decoder-0-4", random_bn=mode)
    t.model.train()
    norms = [m for m in t.model.net.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and {m.training for m in norms} == {training_mode}


# -- the encoder trained under a budget (encoder_lr, slim decoder) --------------------------


def test_an_unfrozen_encoder_trains_at_its_own_rate_on_the_same_schedule(
    scans, tmp_path: Path
) -> None:
    """encoder_lr unfreezes the ImageNet encoder of decoder-0-4: its optimizer group follows
    the warm-up and cosine of the rest at its own peak rate (the closed form with
    encoder_lr), every encoder weight has a gradient, and the slim decoder is what trains."""
    lr, encoder_lr = 1e-3, 1e-4
    t = trainer(scans, tmp_path, warmup_epochs=1, lr=lr, encoder_lr=encoder_lr, decoder="slim")
    assert set(t.model.trainable) == {"encoder", "head", *(f"decoder.{i}" for i in range(5))}
    assert [block.conv1[0].out_channels for block in t.model.net.decoder.blocks] == [
        128,
        64,
        32,
        16,
        16,
    ]
    groups = t.optimizer.param_groups
    encoder_ids = {id(p) for p in t.model.net.encoder.parameters()}
    assert {id(p) for p in groups[1]["params"]} == encoder_ids
    assert not encoder_ids & {id(p) for p in groups[0]["params"]}
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(t.model.parameters()))
    before = {k: v.clone() for k, v in t.model.net.encoder.state_dict().items()}
    used = []
    loss_fn = t.loss_fn

    def recording(logits, masks):
        used.append((groups[0]["lr"], groups[1]["lr"]))
        return loss_fn(logits, masks)

    t.loss_fn = recording
    t.fit()
    total, warmup = 6, 2
    assert [u[0] for u in used] == pytest.approx(
        [closed_form_lr(k, total, warmup, lr) for k in range(total)], abs=1e-12
    )
    assert [u[1] for u in used] == pytest.approx(
        [closed_form_lr(k, total, warmup, encoder_lr) for k in range(total)], abs=1e-13
    )
    after = t.model.net.encoder.state_dict()
    weights = [k for k in before if k.endswith("weight")]
    assert all(not torch.equal(before[k], after[k]) for k in weights)


def test_without_encoder_lr_the_encoder_stays_frozen_in_one_group(scans, tmp_path: Path) -> None:
    t = trainer(scans, tmp_path, decoder="slim")
    assert "encoder" not in t.model.trainable
    assert len(t.optimizer.param_groups) == 1
    assert not any(p.requires_grad for p in t.model.net.encoder.parameters())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"decoder": "narrow"}, "unknown decoder 'narrow'; choose one of wide, slim"),
        ({"encoder_lr": -1e-4}, "encoder_lr=-0.0001 must be a number >= 0"),
        ({"encoder_lr": math.nan}, "encoder_lr=nan must be a number >= 0"),
        (
            {"strategy": "baseline", "encoder_lr": 1e-4},
            "strategy baseline has none; leave encoder_lr at 0",
        ),
        (
            {"strategy": "random-decoder-0-4", "encoder_lr": 1e-4},
            "strategy random-decoder-0-4 has none",
        ),
    ],
)
def test_run_config_refuses_a_bad_decoder_or_encoder_rate(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        config(**changes)


def test_a_slim_checkpoint_with_a_trained_encoder_predicts_as_it_trained(
    scans, tmp_path: Path
) -> None:
    """The predictor rebuilds the network a checkpoint was trained as (slim decoder, encoder
    weights and BatchNorm statistics of its own) and gives the trainer's logits."""
    from fetalft.predict import Predictor

    t = trainer(scans, tmp_path, epochs=1, encoder_lr=1e-4, decoder="slim")
    t.fit()
    predictor = Predictor.from_checkpoint(t.best_path, precision="fp32")
    t.load_best()
    batch = np.stack([eval_transform()(image=s.image)["image"] for s in scans["val"][:2]])
    with torch.no_grad():
        expected = t.model.eval()(torch.from_numpy(batch)).numpy()
    assert np.allclose(predictor.forward(batch), expected, atol=1e-5)


# -- a moving average of the weights (ema) ------------------------------------------------


def record_weights_after_each_step(t: Trainer) -> list[dict[str, torch.Tensor]]:
    """The model's parameters and BatchNorm statistics after every optimizer step (torch's
    own step hook, so nothing of the trainer's is replaced)."""
    seen: list[dict[str, torch.Tensor]] = []

    def record(*_) -> None:
        seen.append({k: v.detach().clone() for k, v in t.model.state_dict().items()})

    t.optimizer.register_step_post_hook(record)
    return seen


@pytest.mark.parametrize("decay", [0.5, 0.9])
def test_ema_keeps_and_scores_the_exponential_average_of_every_steps_weights(
    scans, tmp_path: Path, decay: float
) -> None:
    """The kept weights are w_1 blended step by step, e_k = decay e_(k-1) + (1 - decay) w_k,
    computed here by hand from the weights after each step; BatchNorm statistics too. The
    best checkpoint holds the average as it stood at the end of the best epoch."""
    t = trainer(scans, tmp_path, epochs=2, ema=decay)
    steps = record_weights_after_each_step(t)
    t.fit()
    assert len(steps) == 2 * t.steps_per_epoch == 4
    names = [name for name, value in steps[0].items() if value.is_floating_point()]
    assert any("running_mean" in name for name in names)  # BatchNorm's batch counter is not
    averages = [{name: steps[0][name].double() for name in names}]
    for weights in steps[1:]:
        averages.append(
            {n: decay * averages[-1][n] + (1 - decay) * weights[n].double() for n in names}
        )

    def assert_holds(state: dict, average: dict) -> None:
        for name in names:
            torch.testing.assert_close(state[name].double(), average[name], rtol=1e-5, atol=1e-6)

    kept = t.scored_model.state_dict()
    assert_holds(kept, averages[-1])
    # the average is not the last step's weights, so the assertion above could fail
    assert any(not torch.allclose(kept[n], steps[-1][n]) for n in names)
    best = torch.load(t.best_path, weights_only=False)
    assert_holds(best["model"], averages[best["epoch"] * t.steps_per_epoch - 1])
    assert t.load_best() == best["epoch"]
    assert states_equal(t.model.state_dict(), best["model"])  # what the study then tests


def test_ema_validates_the_average_not_the_last_steps_weights(
    scans, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scored = []
    monkeypatch.setattr(
        training, "validation_dice", lambda model, *args, **kwargs: scored.append(model) or 0.5
    )
    t = trainer(scans, tmp_path, epochs=2, ema=0.9)
    t.fit()
    assert len(scored) == 2
    assert all(model is t.ema.module for model in scored)
    assert t.ema.module is not t.model


def test_without_ema_the_model_is_what_is_scored_and_no_average_is_kept(
    finished: Trainer,
) -> None:
    assert finished.ema is None
    assert finished.scored_model is finished.model
    assert torch.load(finished.last_path, weights_only=False)["ema"] is None


def test_an_interrupted_ema_run_resumes_to_the_same_average(scans, tmp_path: Path) -> None:
    straight = trainer(scans, tmp_path / "straight", ema=0.9)
    straight.fit()
    first = trainer(scans, tmp_path / "resumed", ema=0.9)
    interrupt_at_step(first, 3)  # the first step of epoch 2, after epoch 1's checkpoint
    with pytest.raises(Interrupt):
        first.fit()
    second = trainer(scans, tmp_path / "resumed", ema=0.9)
    second.fit()
    assert states_equal(second.scored_model.state_dict(), straight.scored_model.state_dict())
    assert [row["val_dice"] for row in second.history] == [
        row["val_dice"] for row in straight.history
    ]


@pytest.mark.parametrize("bad", [1.0, -0.1, math.nan, math.inf])
def test_run_config_refuses_an_ema_decay_outside_zero_to_one(bad: float) -> None:
    with pytest.raises(ValueError, match=re.escape(f"ema={bad!r} must be a decay in [0, 1)")):
        config(ema=bad)

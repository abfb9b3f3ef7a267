"""Training one strategy: Adam, a decaying learning rate, the best epoch chosen on validation.

Protocol (the paper's, with its gaps filled and documented):

- Adam at 1e-4, batch 10. The paper says the learning rate decays but its code keeps it
  constant; fetalft uses cosine decay to zero over all training steps (after an optional
  linear warm-up, ``warmup_epochs``).
- BCE-with-logits loss (``loss="bce+dice"`` adds smp's Dice loss).
- After each epoch the model is scored on the validation images; the epoch with the best
  validation Dice is kept (``select_by="hc"``: the smallest head-circumference error in mm,
  at original resolution). The test images are never looked at during training.
- ``ema``: an exponential moving average of the weights (BatchNorm statistics included),
  updated after every step, is what is validated, kept and tested instead of the weights
  of the last step.
- A checkpoint after every epoch; an interrupted run resumes from it and, on a CPU with the
  same seed, ends with the same numbers as an uninterrupted one. Resuming with a different
  configuration is refused.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import segmentation_models_pytorch as smp
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from fetalft.batchnorm import recalibrate_folded_batchnorm
from fetalft.data import Scan, ScanDataset, augmentation
from fetalft.device import Runtime
from fetalft.evaluate import evaluate, hc_selection_error_mm, predict_logits
from fetalft.io import atomic_write
from fetalft.models import decoder_channels
from fetalft.profiles import ImageSize, image_shape
from fetalft.provenance import differences
from fetalft.runfiles import BEST_CHECKPOINT, LAST_CHECKPOINT
from fetalft.strategies import FineTuned, get_strategy, prepare_model

LOSSES = ("bce", "bce+dice")
SELECTIONS = ("dice", "hc")


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, incompatible checkpoint)."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a run's outcome; a checkpoint only resumes the same config."""

    strategy: str
    seed: int = 0
    epochs: int = 8
    image_size: ImageSize = 256  # an int squeezes to a square; (height, width) otherwise
    batch_size: int = 10
    lr: float = 1e-4
    warmup_epochs: int = 0
    loss: str = "bce"
    select_by: str = "dice"  # the validation score that picks the best epoch (SELECTIONS)
    tta: bool = False  # flip test-time augmentation on validation and test
    head_trainable: bool | None = None  # None: the strategy's own choice
    random_bn: str = "eval"  # BatchNorm of frozen untrained parts (strategies.RANDOM_BN_MODES)
    augment: str = "paper"  # training augmentation (data.TRAIN_TRANSFORMS)
    decoder: str = "wide"  # decoder width (models.DECODER_CHANNELS)
    encoder_lr: float = 0.0  # > 0: the ImageNet encoder trains too, at this peak rate
    ema: float = 0.0  # > 0: validate, keep and test a moving average of the weights (decay)
    encoder_weights: str | None = "imagenet"
    precision: str = "auto"
    extra: dict = field(default_factory=dict)  # labels such as split or train fraction

    def __post_init__(self) -> None:
        get_strategy(self.strategy)
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.select_by not in SELECTIONS:
            raise ValueError(
                f"unknown select_by {self.select_by!r}; choose one of {', '.join(SELECTIONS)}"
            )
        augmentation(self.augment)  # an unknown augmentation fails here, before training
        decoder_channels(self.decoder)  # an unknown width fails here, before training
        if not (math.isfinite(self.encoder_lr) and self.encoder_lr >= 0):
            raise ValueError(f"encoder_lr={self.encoder_lr!r} must be a number >= 0")
        if not (math.isfinite(self.ema) and 0 <= self.ema < 1):
            raise ValueError(f"ema={self.ema!r} must be a decay in [0, 1) (0: no average)")
        if self.encoder_lr > 0 and not get_strategy(self.strategy).pretrained:
            raise ValueError(
                f"encoder_lr={self.encoder_lr:g} trains an ImageNet encoder, and strategy "
                f"{self.strategy} has none; leave encoder_lr at 0"
            )
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(
                f"warmup_epochs={self.warmup_epochs} must be at least 0 and fewer than the "
                f"{self.epochs} epochs"
            )

    def as_dict(self) -> dict:
        return asdict(self)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - for libraries drawing from numpy's global generator
    torch.manual_seed(seed)


def make_loss(name: str) -> nn.Module:
    bce = nn.BCEWithLogitsLoss()
    if name == "bce":
        return bce
    dice = smp.losses.DiceLoss(mode="binary", from_logits=True)
    return _SumLoss(bce, dice)


class _SumLoss(nn.Module):
    def __init__(self, *losses: nn.Module) -> None:
        super().__init__()
        self.losses = nn.ModuleList(losses)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(loss(logits, target) for loss in self.losses)


def make_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0
) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine decay to zero over the steps after a linear warm-up (none by default).

    Why a warm-up: at 1e-3 the randomly initialised decoder's first Adam steps are large
    while its gradients are still noisy; ramping up over the first epoch avoids that.
    """
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps - warmup_steps)
    if warmup_steps == 0:
        return cosine
    warmup = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1 / warmup_steps, total_iters=warmup_steps
    )
    return torch.optim.lr_scheduler.SequentialLR(
        optimizer, [warmup, cosine], milestones=[warmup_steps]
    )


def parameter_groups(model: FineTuned, config: RunConfig) -> list[dict]:
    """The optimizer's groups: everything at ``config.lr``, except an encoder unfrozen by
    ``config.encoder_lr``, which gets that (smaller) rate so its ImageNet features are
    refined rather than overwritten. The first group is the one the history's ``lr`` shows.
    """
    if config.encoder_lr == 0:
        return [{"params": model.trainable_parameters()}]
    encoder = {id(p) for p in model.net.encoder.parameters()}
    rest = [p for p in model.trainable_parameters() if id(p) not in encoder]
    return [
        {"params": rest},
        {"params": list(model.net.encoder.parameters()), "lr": config.encoder_lr},
    ]


def validation_dice(
    model: nn.Module, scans: Sequence[Scan], runtime: Runtime, batch_size: int, tta: bool = False
) -> float:
    """Mean per-image Dice at training size: cheap enough to run after every epoch."""
    dices = []
    for scan, logits in predict_logits(model, scans, runtime, batch_size, tta):
        pred, truth = logits > 0, scan.mask > 0
        total = pred.sum() + truth.sum()
        dices.append(1.0 if total == 0 else 2 * (pred & truth).sum() / total)
    return float(np.mean(dices))


class Trainer:
    """Trains one :class:`RunConfig` on in-memory scans, with per-epoch checkpoints."""

    def __init__(
        self,
        config: RunConfig,
        train: Sequence[Scan],
        val: Sequence[Scan],
        checkpoint_dir: str | Path,
        progress: bool = True,
    ) -> None:
        if not train or not val:
            raise ValueError(
                f"need training and validation images (got {len(train)} and {len(val)})"
            )
        height, width = image_shape(config.image_size)
        for scan in (*train, *val):
            if scan.image.shape[:2] != (height, width):
                raise ValueError(
                    f"scan {scan.name} is {scan.image.shape[1]}x{scan.image.shape[0]} (W x H) but "
                    f"the run is configured for {width}x{height}; load the scans at the "
                    "config's image_size (fetalft.data.load_scans)."
                )
        self.config = config
        self.train_scans, self.val_scans = list(train), list(val)
        self.checkpoint_dir = Path(checkpoint_dir)
        self.progress = progress
        self.runtime = Runtime.choose(config.precision)
        seed_everything(config.seed)
        strategy = get_strategy(config.strategy)
        self.model: FineTuned = prepare_model(
            strategy,
            config.encoder_weights,
            config.head_trainable,
            config.random_bn,
            decoder=config.decoder,
            train_encoder=config.encoder_lr > 0,
        )
        if "encoder" in self.model.trainable:
            recalibrate_folded_batchnorm(self.model.net.encoder, self.train_scans)
        self.model.to(self.runtime.device, memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(parameter_groups(self.model, config), lr=config.lr)
        self.steps_per_epoch = math.ceil(len(self.train_scans) / config.batch_size)
        self.scheduler = make_scheduler(
            self.optimizer,
            total_steps=config.epochs * self.steps_per_epoch,
            warmup_steps=config.warmup_epochs * self.steps_per_epoch,
        )
        #: the weights' exponential moving average (``config.ema``), or None
        self.ema = (
            AveragedModel(
                self.model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True
            )
            if config.ema
            else None
        )
        self.scaler = self.runtime.grad_scaler()
        self.loss_fn = make_loss(config.loss)
        self.transform = augmentation(config.augment)
        self.history: list[dict] = []
        self.epoch = 0
        #: the best validation score so far, higher is better (Dice, or minus the HC error)
        self.best_score = -math.inf
        self.best_epoch = 0
        #: seconds spent in :meth:`fit` by this run so far, earlier processes included
        self.fit_seconds = 0.0
        #: the part of ``fit_seconds`` that earlier (interrupted) processes spent
        self.carried_seconds = 0.0

    @property
    def scored_model(self) -> FineTuned:
        """The weights that are validated and kept: the moving average when there is one.

        Why average: late in training each step still jiggles the weights around a good
        solution, so the epoch a noisy validation score picks is partly luck; an average
        over the last few hundred steps sits nearer the middle (Polyak averaging).
        """
        return self.model if self.ema is None else self.ema.module

    # -- checkpoints -------------------------------------------------------------------
    @property
    def last_path(self) -> Path:
        return self.checkpoint_dir / LAST_CHECKPOINT

    @property
    def best_path(self) -> Path:
        return self.checkpoint_dir / BEST_CHECKPOINT

    def save_checkpoint(self) -> None:
        state = {
            "config": self.config.as_dict(),
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "history": self.history,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "fit_seconds": self.fit_seconds,
            "precision": self.runtime.precision,
        }
        with atomic_write(self.last_path, "wb") as handle:
            torch.save(state, handle)

    def save_best(self) -> None:
        with atomic_write(self.best_path, "wb") as handle:
            torch.save(
                {
                    "config": self.config.as_dict(),
                    "epoch": self.epoch,
                    "model": self.scored_model.state_dict(),
                },
                handle,
            )

    def resume(self) -> bool:
        """Continue from ``last.pt`` if there is one; refuse one made by another config."""
        if not self.last_path.exists():
            return False
        state = torch.load(self.last_path, map_location=self.runtime.device, weights_only=False)
        # the same run, read as fetalft.provenance does: weights by content, older records
        # with the defaults of their time, so moving the weights file does not block resume
        if changed := differences(state["config"], self.config.as_dict()):
            raise TrainingError(
                f"checkpoint {self.last_path} was made with a different configuration "
                f"(differs in: {'; '.join(changed)}); delete it or use another folder."
            )
        # "auto" was decided when the run began; a resumed run keeps the precision it began with.
        self.runtime = self.runtime.with_precision(state.get("precision", self.runtime.precision))
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.history = state["history"]
        self.epoch = state["epoch"]
        self.best_score, self.best_epoch = state["best_score"], state["best_epoch"]
        # Checkpoints written before fit_seconds was recorded: their training time is a floor.
        self.fit_seconds = state.get(
            "fit_seconds", sum(row["train_seconds"] for row in self.history)
        )
        self.carried_seconds = self.fit_seconds
        return True

    # -- training ----------------------------------------------------------------------
    def _loader(self) -> torch.utils.data.DataLoader:
        # Seeded per epoch, so a resumed run sees the same batches and augmentations.
        epoch_seed = self.config.seed * 10_000 + self.epoch
        self.transform.set_random_seed(epoch_seed)
        generator = torch.Generator().manual_seed(epoch_seed)
        return torch.utils.data.DataLoader(
            ScanDataset(self.train_scans, self.transform),
            batch_size=self.config.batch_size,
            shuffle=True,
            generator=generator,
        )

    def train_epoch(self) -> float:
        self.model.train()
        losses = []
        batches = tqdm(
            self._loader(),
            desc=f"epoch {self.epoch + 1}/{self.config.epochs}",
            leave=False,
            disable=not self.progress,
        )
        for step, (images, masks) in enumerate(batches):
            images, masks = self.runtime.to_device(images), masks.to(self.runtime.device)
            with self.runtime.autocast():
                logits = self.model(images)
            loss = self.loss_fn(logits.float(), masks)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"{self.config.strategy}, seed {self.config.seed}: loss became {loss.item()} "
                    f"at epoch {self.epoch + 1}, step {step + 1}. Lower the learning rate or "
                    "train in fp32 (precision='fp32'); the last good checkpoint is kept."
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            losses.append(loss.item())
            batches.set_postfix(loss=f"{loss.item():.4f}")
        return float(np.mean(losses))

    def fit(self) -> pd.DataFrame:
        """Train the remaining epochs; return the history (one row per epoch)."""
        self.resume()
        epochs = tqdm(
            range(self.epoch, self.config.epochs),
            desc=self.config.strategy,
            initial=self.epoch,
            total=self.config.epochs,
            disable=not self.progress,
        )
        for _ in epochs:
            started = time.perf_counter()
            train_loss = self.train_epoch()
            train_seconds = time.perf_counter() - started
            scores = self.validate()
            self.fit_seconds += time.perf_counter() - started
            self.epoch += 1
            self.history.append(
                {
                    "epoch": self.epoch,
                    "train_loss": train_loss,
                    **scores,
                    "lr": self.scheduler.get_last_lr()[0],
                    "train_seconds": train_seconds,
                    "images_per_second": len(self.train_scans) / train_seconds,
                }
            )
            epochs.set_postfix(loss=f"{train_loss:.4f}", val_dice=f"{scores['val_dice']:.4f}")
            score = (
                scores["val_dice"]
                if self.config.select_by == "dice"
                else -scores["val_hc_error_mm"]
            )
            if score > self.best_score:
                self.best_score, self.best_epoch = score, self.epoch
                self.save_best()
            self.save_checkpoint()
        return pd.DataFrame(self.history)

    def validate(self) -> dict[str, float]:
        """This epoch's validation scores; with ``select_by="hc"`` also at original size."""
        args = (self.scored_model, self.val_scans, self.runtime, self.config.batch_size)
        scores = {"val_dice": validation_dice(*args, tta=self.config.tta)}
        if self.config.select_by == "hc":
            per_image = evaluate(*args, tta=self.config.tta)
            scores |= {
                "val_dice_original": float(per_image["dice"].mean()),
                "val_adf_mm": float(per_image["adf_mm"].mean()),
                "val_failures": int(per_image["adf_mm"].isna().sum()),
                "val_hc_error_mm": hc_selection_error_mm(per_image),
            }
        return scores

    @property
    def best_dice(self) -> float:
        """Validation Dice (network size) of the best epoch."""
        return next(row["val_dice"] for row in self.history if row["epoch"] == self.best_epoch)

    def load_best(self) -> int:
        """Put the best epoch's weights in the model; return that epoch."""
        state = torch.load(self.best_path, map_location=self.runtime.device, weights_only=False)
        self.model.load_state_dict(state["model"])
        return state["epoch"]

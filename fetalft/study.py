"""The study runner: strategies x seeds (x variants), resumable, results written atomically.

Each finished run is a folder ``results/<profile>/<run>/seed-<k>/`` (:mod:`fetalft.runfiles`
owns the layout and reads the records back) holding

- ``metrics.json``: configuration, labels (profile, split, hardware, precision, weights)
  and the test-set summary (mean, sd over test images), with the validation set's beside
  it (and both without flips when the recipe averages flips),
- ``per_image.csv``: every test image's metrics, HC error and fitted ellipse,
- ``history.csv``: loss, validation Dice and speed per epoch,
- ``environment.json``: versions, device, wall time, peak memory.

The folder appears only when all four are written, so a folder that exists is a finished
run and is skipped; an interrupted run resumes from its per-epoch checkpoint.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from fetalft import hc18
from fetalft.data import Scan, dataset_dir, load_scans, select_records
from fetalft.device import Runtime
from fetalft.environment import describe, peak_memory_mb, reset_peak_memory
from fetalft.evaluate import evaluate, hc_selection_error_mm
from fetalft.io import atomic_directory, write_csv_atomic, write_json_atomic
from fetalft.metrics import summarize
from fetalft.models import count_parameters, default_encoder_weights, mobilenet_unet, weights_source
from fetalft.profiles import ImageSize, Profile, get_profile, setting_suffix, with_settings
from fetalft.provenance import check_finished_run, public_config, weights_sha256
from fetalft.runfiles import (
    ENVIRONMENT_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    PER_IMAGE_FILE,
    checkpoints_root,
    is_finished,
    results_root,
    seed_folder,
)
from fetalft.split import SplitKind
from fetalft.strategies import RANDOM_BN_MODES, STRATEGIES, get_strategy
from fetalft.training import RunConfig, Trainer


@dataclass(frozen=True)
class RunSpec:
    """One run of the study: a strategy and seed, plus the variant it belongs to.

    ``head_trainable`` None means the strategy's own choice; it is resolved to a bool here,
    so a spec that asks for the strategy's own head is the strategy's default run.
    ``settings`` change the profile's recipe for this run (``profiles.SETTINGS``), such as
    ``(("lr", 1e-4),)`` for one row of an ablation.
    """

    strategy: str
    seed: int
    split: SplitKind = "exam"
    train_fraction: float = 1.0
    head_trainable: bool | None = None
    random_bn: str = "eval"
    settings: tuple[tuple[str, object], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", tuple(sorted(dict(self.settings).items())))
        with_settings(get_profile("smoke"), self.settings)  # unknown keys fail here
        default_head = get_strategy(self.strategy).head_trainable
        if self.head_trainable is None:
            object.__setattr__(self, "head_trainable", default_head)
        if self.random_bn not in RANDOM_BN_MODES:
            raise ValueError(
                f"unknown random_bn {self.random_bn!r}; choose one of {', '.join(RANDOM_BN_MODES)}"
            )
        percent = self.train_fraction * 100
        if not 0 < self.train_fraction <= 1 or abs(percent - round(percent)) > 1e-9:
            raise ValueError(
                f"train fraction {self.train_fraction!r} must be a whole percentage in (0, 1], "
                "such as 0.1 or 0.35"
            )

    @property
    def name(self) -> str:
        """Folder name: the strategy, with a suffix per non-default variant."""
        name = self.strategy
        if self.split != "exam":
            name += f"--{self.split}"
        if self.train_fraction < 1:
            name += f"--train{round(self.train_fraction * 100)}pct"
        if self.head_trainable != get_strategy(self.strategy).head_trainable:
            name += "--head" if self.head_trainable else "--frozen-head"
        if self.random_bn != "eval":
            name += f"--random-bn-{self.random_bn}"
        return name + "".join(setting_suffix(key, value) for key, value in self.settings)

    def folder(self, root: Path, profile: Profile) -> Path:
        return seed_folder(root, profile.name, self.name, self.seed)


def plan(
    strategies: Iterable[str] | None = None,
    seeds: Iterable[int] = (0,),
    split: SplitKind = "exam",
    train_fraction: float = 1.0,
    head_trainable: bool | None = None,
    random_bn: str = "eval",
    settings: Iterable[tuple[str, object]] = (),
) -> list[RunSpec]:
    names = list(strategies) if strategies else list(STRATEGIES)
    for name in names:
        get_strategy(name)
    settings = tuple(settings)
    return [
        RunSpec(n, s, split, train_fraction, head_trainable, random_bn, settings)
        for s in seeds
        for n in names
    ]


class Study:
    """Runs :class:`RunSpec`s for one profile on one data folder, loading the images once."""

    def __init__(
        self,
        profile: Profile | str | None = None,
        data_dir: str | os.PathLike | None = None,
        results_dir: str | os.PathLike | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        encoder_weights: str | None = None,
        precision: str = "auto",
        progress: bool = True,
    ) -> None:
        self.profile = profile if isinstance(profile, Profile) else get_profile(profile)
        self.data_dir, self.synthetic = dataset_dir(self.profile, data_dir)
        self.results_dir = results_root(results_dir)
        self.checkpoint_dir = checkpoints_root(checkpoint_dir)
        self.encoder_weights = self._usable_weights(encoder_weights or default_encoder_weights())
        self.precision = precision
        self.progress = progress
        self.records = hc18.load_records("training", self.data_dir)
        self._scans: dict[tuple[str, object], Scan] = {}  # by name and network input size

    def _usable_weights(self, weights: str) -> str:
        """The weights to use; the smoke profile falls back to random ones when offline."""
        if self.profile.name != "smoke" or weights != "imagenet":
            return weights
        try:
            mobilenet_unet("imagenet")
        except Exception as error:  # no network, hub down: any failure means "not available"
            print(
                f"ImageNet weights unavailable ({type(error).__name__}): the smoke profile "
                "uses a random encoder. Set FETALFT_ENCODER_WEIGHTS to a local file."
            )
            return "random"
        return weights

    def scans(self, spec: RunSpec, role: str, size: ImageSize | None = None) -> list[Scan]:
        """The run's images of ``role``, at its recipe's input size or at ``size`` (a
        multi-scale score, :mod:`fetalft.rescale`); each image is loaded once per size."""
        limit = (self.profile.limits or {}).get(role)
        fraction = spec.train_fraction if role == "train" else 1.0
        records = select_records(self.records, role, spec.split, limit, fraction)
        size = size or self.recipe(spec).image_size
        missing = [r for r in records if (r.name, size) not in self._scans]
        for scan in load_scans(missing, size, self.progress):
            self._scans[scan.name, size] = scan
        return [self._scans[r.name, size] for r in records]

    def recipe(self, spec: RunSpec) -> Profile:
        """The profile with the run's own settings applied."""
        return with_settings(self.profile, spec.settings)

    def config(self, spec: RunSpec) -> RunConfig:
        p = self.recipe(spec)
        return RunConfig(
            strategy=spec.strategy,
            seed=spec.seed,
            epochs=p.epochs,
            image_size=p.image_size,
            batch_size=p.batch_size,
            lr=p.lr,
            warmup_epochs=p.warmup_epochs,
            loss=p.loss,
            select_by=p.select_by,
            tta=p.tta,
            head_trainable=spec.head_trainable,
            random_bn=spec.random_bn,
            augment=p.augment,
            decoder=p.decoder,
            encoder_lr=p.encoder_lr,
            ema=p.ema,
            encoder_weights=str(self.encoder_weights),
            precision=self.precision,
            extra={
                "split": spec.split,
                "train_fraction": spec.train_fraction,
                "data": "synthetic" if self.synthetic else "HC18",
                "encoder_sha256": weights_sha256(self.encoder_weights),
            },
        )

    def is_done(self, spec: RunSpec) -> bool:
        """Whether ``spec`` has finished: its folder holds a run made as this study asks.

        A finished run made otherwise (other precision, weights, data or recipe) is neither
        skipped nor overwritten: :class:`RunMismatchError` says what differs.
        """
        folder = spec.folder(self.results_dir, self.profile)
        if not is_finished(folder):
            return False
        check_finished_run(folder, self.config(spec).as_dict())
        return True

    def run(self, spec: RunSpec) -> Path:
        """Train, pick the best validation epoch, test once, and write the run's folder."""
        folder = spec.folder(self.results_dir, self.profile)
        if self.is_done(spec):
            return folder
        started = time.perf_counter()
        reset_peak_memory(Runtime.choose(self.precision).device)
        train, val, test = (self.scans(spec, role) for role in ("train", "val", "test"))
        trainer = Trainer(
            self.config(spec),
            train,
            val,
            spec.folder(self.checkpoint_dir, self.profile),
            self.progress,
        )
        history = trainer.fit()
        best_epoch = trainer.load_best()
        recipe = self.recipe(spec)

        def score(scans: list[Scan], tta: bool = recipe.tta) -> pd.DataFrame:
            return evaluate(trainer.model, scans, trainer.runtime, recipe.batch_size, tta)

        per_image = score(test)
        # Validation at original size, for ablations (choices are made on validation only),
        # and without flips too when the recipe flips, so one run shows what the flips add.
        scored = {"val": score(val)}
        if recipe.tta:
            scored |= {"val_without_tta": score(val, False), "test_without_tta": score(test, False)}
        # An interrupted run's earlier processes count too (their training, not their loading).
        wall = trainer.carried_seconds + time.perf_counter() - started
        strategy = get_strategy(spec.strategy)
        labels = {
            "run": spec.name,
            "strategy": spec.strategy,
            "paper_label": strategy.label,
            "seed": spec.seed,
            "profile": self.profile.name,
            "image_size": recipe.image_size,
            "epochs": recipe.epochs,
            "lr": recipe.lr,
            "warmup_epochs": recipe.warmup_epochs,
            "loss": recipe.loss,
            "select_by": recipe.select_by,
            "tta": recipe.tta,
            "augment": recipe.augment,
            "decoder": recipe.decoder,
            "encoder_lr": recipe.encoder_lr,
            "ema": recipe.ema,
            "settings": dict(spec.settings),
            "split": spec.split,
            "train_fraction": spec.train_fraction,
            "head_trainable": spec.head_trainable,
            "random_bn": spec.random_bn,
            "data": "synthetic" if self.synthetic else "HC18",
            "n_train": len(train),
            "n_val": len(val),
            "n_test": len(test),
            "weights": weights_source(self.encoder_weights) if strategy.pretrained else "random",
            "precision": trainer.runtime.precision,
            "hardware": describe(trainer.runtime.device)["hardware"],
        }
        metrics = {
            **labels,
            "trainable_parameters": count_parameters(trainer.model, trainable_only=True),
            "total_parameters": count_parameters(trainer.model),
            "best_epoch": best_epoch,
            "best_val_dice": trainer.best_dice,
            "best_val_hc_error_mm": hc_selection_error_mm(scored["val"]),
            "wall_seconds": wall,
            "test": summarize(per_image).to_dict(orient="index"),
            **{key: summarize(table).to_dict(orient="index") for key, table in scored.items()},
        }
        environment = {
            **describe(trainer.runtime.device),
            "precision": trainer.runtime.precision,
            "wall_seconds": wall,
            "peak_memory_mb": peak_memory_mb(trainer.runtime.device),
            "config": public_config(trainer.config.as_dict()),  # no machine paths
            "profile": recipe.as_dict(),
        }
        with atomic_directory(folder) as tmp:
            write_csv_atomic(tmp / PER_IMAGE_FILE, per_image)
            write_csv_atomic(tmp / HISTORY_FILE, history)
            write_json_atomic(tmp / ENVIRONMENT_FILE, environment)
            write_json_atomic(tmp / METRICS_FILE, metrics)
        trainer.last_path.unlink(missing_ok=True)  # optimizer state no longer needed
        return folder

    def run_all(self, specs: Sequence[RunSpec]) -> list[Path]:
        todo = [s for s in specs if not self.is_done(s)]
        if self.progress:
            print(
                f"{len(specs) - len(todo)} of {len(specs)} runs already finished; {len(todo)} to go "
                f"(profile {self.profile.name}, data {self.data_dir})."
            )
        for spec in tqdm(todo, desc="study", disable=not self.progress or not todo):
            self.run(spec)
        return [s.folder(self.results_dir, self.profile) for s in specs]

"""One source of truth: the code a chapter shows is the code the study runs.

The mechanism is described in ``scripts/sync_notebooks.py``:

- **package source cells** (tag ``fetalft-source``, metadata ``{"fetalft": {"source": name}}``)
  hold ``inspect.getsource`` of a package object. Each must equal it and name something that
  exists, and the chapters listed in :data:`CORE_CODE` must show their core code.
- **mirror cells** (tag ``fetalft-mirror``, metadata ``{"fetalft": {"mirrors": name}}``) hold a
  chapter's own minimal version of package code, such as chapter 4's plain PyTorch training
  loop. Each is run here beside the package on a small synthetic input and must give identical
  results; a mirror without a check in :data:`MIRROR_CHECKS` fails.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
MIRROR_TAG = "fetalft-mirror"

#: The package objects each chapter must show: the code the chapter teaches.
CORE_CODE: dict[str, set[str]] = {
    # how a strategy freezes a network
    "03_models_and_strategies": {
        "fetalft.strategies.model_parts",
        "fetalft.strategies.trainable_parts",
        "fetalft.strategies.FineTuned",
        "fetalft.strategies.prepare_model",
    },
    # the training step and the epoch loop
    "04_training": {
        "fetalft.training.make_loss",
        "fetalft.training.make_scheduler",
        "fetalft.training.validation_dice",
        "fetalft.training.Trainer.train_epoch",
        "fetalft.training.Trainer.fit",
    },
}
#: Chapters whose own minimal version of package code must be on the page (and checked).
CORE_MIRRORS: dict[str, set[str]] = {"04_training": {"fetalft.training.Trainer.fit"}}


def load_sync():
    spec = importlib.util.spec_from_file_location(
        "sync_notebooks", ROOT / "scripts" / "sync_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sync = load_sync()
CHAPTERS = [path.stem for path in sync.notebooks(ROOT)]


def chapter(name: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)


def shown_names(nb: nbformat.NotebookNode) -> set[str]:
    return {name for _, name in sync.source_cells(nb)}


def mirror_cells(nb: nbformat.NotebookNode) -> list[tuple[nbformat.NotebookNode, str]]:
    """``(cell, mirrored name)`` of every mirror cell; a half-marked one fails the test."""
    found = []
    for cell in nb.cells:
        tagged = MIRROR_TAG in cell.get("metadata", {}).get("tags", [])
        name = cell.get("metadata", {}).get(sync.METADATA_KEY, {}).get("mirrors")
        assert bool(tagged) == bool(name), (
            f"cell {cell.get('id')}: a mirror cell needs both the tag {MIRROR_TAG!r} and "
            f'the metadata {{"fetalft": {{"mirrors": "<dotted name>"}}}}'
        )
        if name:
            assert cell.cell_type == "code", f"cell {cell.get('id')}: a mirror runs: code cell"
            found.append((cell, name))
    return found


# --------------------------------------------------------------------------- source cells


@pytest.mark.parametrize("name", CHAPTERS)
def test_source_cells_equal_the_package(name: str) -> None:
    nb = chapter(name)
    stale = [
        f"cell {index} ({nb.cells[index].get('id')}) shows {shown}"
        for index, shown in sync.source_cells(nb)
        if nb.cells[index].source != sync.source_body(nb.cells[index].cell_type, shown)
    ]
    assert not stale, f"{name}: run `python scripts/sync_notebooks.py`: {stale}"


@pytest.mark.parametrize(("name", "required"), sorted(CORE_CODE.items()))
def test_chapters_show_their_core_code(name: str, required: set[str]) -> None:
    missing = required - shown_names(chapter(name))
    assert not missing, f"{name} lacks its core code: {sorted(missing)}"


@pytest.mark.parametrize(("name", "required"), sorted(CORE_MIRRORS.items()))
def test_chapters_hold_their_own_minimal_versions(name: str, required: set[str]) -> None:
    mirrored = {mirrored for _, mirrored in mirror_cells(chapter(name))}
    assert required <= mirrored, f"{name} lacks its minimal versions of {required - mirrored}"


def source_cell(kind: str, name: str, body: str = "stale") -> nbformat.NotebookNode:
    make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
    return make(body, metadata={"tags": [sync.SOURCE_TAG], "fetalft": {"source": name}})


def test_sync_rewrites_a_stale_cell_from_the_package() -> None:
    from fetalft.training import Trainer, make_loss

    code = source_cell("code", "fetalft.training.make_loss")
    code.outputs = [nbformat.v4.new_output("stream", text="old output")]
    method = source_cell("markdown", "fetalft.training.Trainer.train_epoch")
    nb = nbformat.v4.new_notebook(cells=[code, method])
    sync._sync_sources(nb)
    assert code.source.startswith("def make_loss(") and code.outputs == []
    namespace: dict = {}
    exec(code.source, vars(importlib.import_module("fetalft.training")) | namespace)  # runs
    assert (
        method.source
        == "```python\n" + sync.package_source("fetalft.training.Trainer.train_epoch") + "\n```"
    )
    assert method.source.splitlines()[1].startswith("def train_epoch(self)")  # dedented
    assert make_loss.__name__ in code.source and Trainer.train_epoch.__name__ in method.source


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("fetalft.training.no_such_function", "has no attribute 'no_such_function'"),
        ("fetalft.no_such_module.thing", "has no attribute 'no_such_module'"),
        ("no_such_package.thing", "no module"),
        ("fetalft.training.Trainer.no_such_method", "Trainer has no attribute"),
        ("not a name", "not a dotted Python name"),
        ("fetalft.training.LOSSES", "no source code"),
    ],
)
def test_a_cell_naming_nothing_fails(name: str, message: str) -> None:
    nb = nbformat.v4.new_notebook(cells=[source_cell("markdown", name)])
    with pytest.raises(sync.SourceError, match=message):
        sync._sync_sources(nb)


def test_half_marked_and_misplaced_cells_fail() -> None:
    untagged = nbformat.v4.new_markdown_cell("x", metadata={"fetalft": {"source": "fetalft"}})
    unnamed = nbformat.v4.new_markdown_cell("x", metadata={"tags": [sync.SOURCE_TAG]})
    method_in_code = source_cell("code", "fetalft.training.Trainer.train_epoch")
    for cell, message in [
        (untagged, "lacks the tag"),
        (unnamed, "needs the metadata"),
        (method_in_code, "not defined at module level"),
    ]:
        with pytest.raises(sync.SourceError, match=message):
            sync._sync_sources(nbformat.v4.new_notebook(cells=[cell]))


def test_third_party_names_resolve() -> None:
    source = sync.package_source(
        "segmentation_models_pytorch.base.model.SegmentationModel.freeze_encoder"
    )
    assert source.startswith("def freeze_encoder(self)")


# --------------------------------------------------------------------------- mirror cells


def run_cell(cell: nbformat.NotebookNode, namespace: dict) -> dict:
    exec(compile(cell.source, f"<cell {cell.get('id')}>", "exec"), namespace)
    return namespace


def record_batches(trainer) -> list[list[list]]:
    """Make ``trainer`` record the ``[images, masks]`` of every training step, per epoch.

    The chapter's loop is then fed exactly the batches the package trained on, however the
    package makes them (its progress bar, for one, opens the epoch's loader an extra time).
    """
    epochs: list[list[list]] = []
    forward, loss_fn = trainer.model.forward, trainer.loss_fn

    def recording_forward(images: torch.Tensor) -> torch.Tensor:
        if trainer.model.training:  # a training step, not validation
            while len(epochs) <= trainer.epoch:
                epochs.append([])
            epochs[trainer.epoch].append([images.detach().clone(), None])
        return forward(images)

    def recording_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        epochs[trainer.epoch][-1][1] = masks.detach().clone()
        return loss_fn(logits, masks)

    trainer.model.forward, trainer.loss_fn = recording_forward, recording_loss
    return epochs


class Replay:
    """A loader that gives one recorded epoch of batches per pass."""

    def __init__(self, epochs: list[list[list]], batch_size: int) -> None:
        self.epochs, self.batch_size = list(epochs), batch_size

    def __len__(self) -> int:
        return len(self.epochs[0])

    def __iter__(self):
        return iter([tuple(batch) for batch in self.epochs.pop(0)])


def check_training_loop(cell: nbformat.NotebookNode, scans: dict, folder: Path) -> None:
    """Chapter 4's ``train`` against ``Trainer.fit`` (fp32, the same seed and start, fed the
    batches the package trained on): the same per-epoch losses, validation Dice and learning
    rates, and the same kept weights, to the bit."""
    from fetalft import training
    from fetalft.training import RunConfig, Trainer

    namespace = run_cell(
        cell,
        {
            "copy": copy,
            "np": np,
            "pd": pd,
            "torch": torch,
            "make_loss": training.make_loss,
            "make_scheduler": training.make_scheduler,
            "validation_dice": training.validation_dice,
        },
    )
    for strategy in ("decoder-0-4", "encoder", "decoder-0-2"):
        config = RunConfig(
            strategy=strategy,
            seed=3,
            epochs=3,
            image_size=32,
            batch_size=4,
            lr=1e-2,  # large enough for the validation Dice to move: the kept epoch is not the last
            encoder_weights=None,
            precision="fp32",
        )

        def trainer(name: str, config: RunConfig = config) -> Trainer:
            return Trainer(config, scans["train"], scans["val"], folder / name, progress=False)

        package, page = trainer(f"{strategy}-package"), trainer(f"{strategy}-page")
        assert_same_weights(package.model, page.model)  # the same start
        batches = record_batches(package)
        package.fit()
        package.load_best()
        assert len(batches) == config.epochs
        history = namespace["train"](
            page.model,
            Replay(batches, config.batch_size),
            scans["val"],
            config.epochs,
            lr=config.lr,
            runtime=page.runtime,
        )
        expected = pd.DataFrame(package.history)[list(history.columns)]
        pd.testing.assert_frame_equal(history, expected, check_exact=True, obj=strategy)
        assert_same_weights(package.model, page.model)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    a_state, b_state = a.state_dict(), b.state_dict()
    assert a_state.keys() == b_state.keys()
    differ = [key for key in a_state if not torch.equal(a_state[key], b_state[key])]
    assert not differ, f"weights differ: {differ[:5]}"


#: The mirrored package object -> the check that runs a chapter's version beside it.
MIRROR_CHECKS: dict[str, Callable[[nbformat.NotebookNode, dict, Path], None]] = {
    "fetalft.training.Trainer.fit": check_training_loop,
}
MIRRORS = [
    pytest.param(name, cell, mirrored, id=f"{name}:{mirrored}")
    for name in CHAPTERS
    for cell, mirrored in mirror_cells(chapter(name))
]


@pytest.fixture(scope="module")
def scans(synthetic_hc18: Path) -> dict[str, list]:
    from fetalft import hc18
    from fetalft.data import load_scans, select_records

    records = hc18.load_records("training", synthetic_hc18)
    return {
        "train": load_scans(select_records(records, "train", limit=10), 32, progress=False),
        "val": load_scans(select_records(records, "val", limit=4), 32, progress=False),
    }


@pytest.mark.parametrize(("name", "cell", "mirrored"), MIRRORS)
def test_mirror_cells_give_the_packages_results(
    name: str, cell: nbformat.NotebookNode, mirrored: str, scans: dict, tmp_path: Path
) -> None:
    assert mirrored in MIRROR_CHECKS, (
        f"{name} mirrors {mirrored} but tests/test_single_source.py has no check for it: "
        "add one to MIRROR_CHECKS"
    )
    sync.resolve(mirrored)  # the mirrored object exists
    MIRROR_CHECKS[mirrored](cell, scans, tmp_path)

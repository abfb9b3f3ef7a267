"""What a run was made from, and whether a recorded run is the run a request asks for.

A run folder or checkpoint is reused only for the same request: the same recipe, split,
precision request, encoder weights and data. Weights are identified by their content
(SHA-256), so moving the file changes nothing; data by its source (``HC18`` or
``synthetic``). Records written before a field existed are read as what the code of the
time meant:

- a :class:`~fetalft.training.RunConfig` field it lacks has the field's default (the only
  behaviour there was before the field came);
- no ``extra["data"]``: metrics.json's ``data`` label, else ``HC18``;
- no ``extra["encoder_sha256"]``: the weights are compared by file name, since the record
  holds the absolute path of a file that may have moved since;
- ``precision`` is the request (``auto``, ``fp32``, ``bf16``); what ``auto`` chose is in the
  checkpoint and in metrics.json, and a resumed run keeps it.

Settings that cannot change a run are no difference: the head of a strategy that trains the
whole network, the encoder weights of a strategy with a random encoder.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

#: Labels of the data a run trained on.
DATA_SOURCES = ("HC18", "synthetic")
#: What a record without ``extra["data"]`` trained on (see the module docstring).
DEFAULT_DATA = "HC18"


def weights_name(weights: str | os.PathLike | None) -> str:
    """``random``, ``imagenet``, or ``file:<name>`` for a local file (never its folder)."""
    if weights in (None, "random"):
        return "random"
    if str(weights) == "imagenet":
        return "imagenet"
    text = str(weights)
    return text if text.startswith("file:") else f"file:{Path(text).name}"


def weights_sha256(weights: str | os.PathLike | None) -> str | None:
    """SHA-256 of a local weights file; None for ``imagenet`` and random weights.

    Cached by path, size and modification time: a run asks several times, and a changed
    file is hashed again.
    """
    if weights in (None, "random", "imagenet"):
        return None
    path = Path(weights).expanduser().resolve()
    stat = path.stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


@functools.cache
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def public_config(config: Mapping) -> dict:
    """A RunConfig dict for the run's records: the weights by name and hash, no machine path."""
    return {**config, "encoder_weights": weights_name(config.get("encoder_weights"))}


def _plain(value: object) -> object:
    """JSON's lists as tuples, so a config read back from JSON equals the one written."""
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _with_defaults(config: Mapping, data: str | None) -> dict:
    from fetalft.training import RunConfig

    defaults = {}
    for f in dataclasses.fields(RunConfig):  # ``strategy`` has no default: always recorded
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            defaults[f.name] = f.default_factory()
    full = _plain({**defaults, **config})
    extra = {"data": data or DEFAULT_DATA, "encoder_sha256": None, **full["extra"]}
    return {**full, "extra": extra, "encoder_weights": weights_name(full["encoder_weights"])}


def differences(
    recorded: Mapping, requested: Mapping, recorded_data: str | None = None
) -> list[str]:
    """How a recorded RunConfig dict differs from a requested one, one phrase per field.

    ``recorded_data`` is the data label of records whose config does not hold it (a finished
    run's metrics.json). Empty when the recorded run is the requested one.
    """
    from fetalft.strategies import get_strategy

    old, new = _with_defaults(recorded, recorded_data), _with_defaults(requested, None)
    old_extra, new_extra = old.pop("extra"), new.pop("extra")
    hashes = old_extra.pop("encoder_sha256"), new_extra.pop("encoder_sha256")
    found = []
    strategy = get_strategy(new["strategy"])
    # settings without effect on this strategy are no difference: the baseline trains all
    # of itself, head included; a random encoder loads no weights
    if strategy.trainable == ("all",):
        old["head_trainable"] = new["head_trainable"]
    if not strategy.pretrained:
        old["encoder_weights"] = new["encoder_weights"]
        hashes = (None, None)
    if None not in hashes:  # both known: the content decides, whatever the file is called
        old["encoder_weights"] = new["encoder_weights"]
        if hashes[0] != hashes[1]:
            found.append(
                f"encoder weights: recorded content sha256 {hashes[0][:12]}..., "
                f"requested {hashes[1][:12]}..."
            )
    found += [
        f"{key}: recorded {old.get(key)!r}, requested {new.get(key)!r}"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]
    found += [
        f"extra.{key}: recorded {old_extra.get(key)!r}, requested {new_extra.get(key)!r}"
        for key in sorted(set(old_extra) | set(new_extra))
        if old_extra.get(key) != new_extra.get(key)
    ]
    return found


class RunMismatchError(ValueError):
    """A finished run or checkpoint in the way that was made from another request."""


def check_finished_run(folder: Path, requested: Mapping) -> None:
    """Raise :class:`RunMismatchError` unless the finished run in ``folder`` is ``requested``.

    The run's environment.json holds its config; its metrics.json the data label that
    older configs lack.
    """
    from fetalft.runfiles import ENVIRONMENT_FILE, METRICS_FILE
    from fetalft.settings import CHECKPOINTS_ENV, RESULTS_ENV

    metrics = json.loads((folder / METRICS_FILE).read_text())
    environment = folder / ENVIRONMENT_FILE
    recorded = json.loads(environment.read_text()).get("config") if environment.is_file() else None
    if recorded is None:
        raise RunMismatchError(
            f"{folder} holds a finished run without its configuration ({ENVIRONMENT_FILE}), "
            "so it cannot be matched to this request; delete the folder to run it again."
        )
    if changed := differences(recorded, requested, metrics.get("data")):
        raise RunMismatchError(
            f"{folder} holds a finished run made differently ({'; '.join(changed)}). To keep "
            f"both, give this request its own folders (--results-dir or ${RESULTS_ENV}, and "
            f"${CHECKPOINTS_ENV}); to replace it, delete {folder}."
        )


def scrub_machine_paths(results_dir: str | os.PathLike) -> list[Path]:
    """Replace the weights path in the configs of run records written before
    :func:`public_config` (environment.json) by ``file:<name>``; returns the files changed.

    Nothing else changes: the same JSON writer, so each file differs in that one line.
    ``python -c "from fetalft.provenance import scrub_machine_paths as s; s('results')"``.
    """
    from fetalft.io import write_json_atomic
    from fetalft.runfiles import ENVIRONMENT_FILE

    changed = []
    for path in sorted(Path(results_dir).rglob(ENVIRONMENT_FILE)):
        record = json.loads(path.read_text())
        config = record.get("config")
        if config and public_config(config) != config:
            write_json_atomic(path, {**record, "config": public_config(config)})
            changed.append(path)
    return changed

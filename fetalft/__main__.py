"""Command line: ``python -m fetalft <command>`` (also installed as ``fetalft``).

Commands: download, study, rescore, strategies, params, split, predict, submit, export.

Exit codes: 0 done; 2 a usage error or bad input (a one-line ``error: ...`` on stderr that
names the file or option and what to do); 3 ``predict`` measured no plausible head (the
reason is printed; see :func:`fetalft.biometry.implausibility`); 130 ``study`` or
``download`` interrupted with Ctrl-C. Anything unexpected keeps its traceback (exit 1).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from fetalft import download
from fetalft.hc18 import PIXEL_SIZE_RANGE_MM


class UsageError(ValueError):
    """A command-line value the command cannot use; the message says which and what to do."""


def is_project_error(error: BaseException) -> bool:
    """Whether ``error`` is one of fetalft's own error types (HC18Error, CheckpointError, ...).

    Those carry a message written for the user and become one line with exit code 2; any
    other exception (a RuntimeError such as CUDA out of memory, a bug) keeps its traceback.
    :class:`UsageError` is named on its own: under ``python -m fetalft`` this module runs
    as ``__main__``, so its classes' module name does not start with ``fetalft``.
    """
    if isinstance(error, UsageError):
        return True
    return any(cls.__module__.split(".")[0] == "fetalft" for cls in type(error).__mro__)


@contextmanager
def _user_input() -> Iterator[None]:
    """Around calls that only validate what the user gave (get_profile, plan): their plain
    ValueErrors are about that input, so they become :class:`UsageError`."""
    try:
        yield
    except ValueError as error:
        if is_project_error(error):
            raise
        raise UsageError(str(error)) from error


def _check_output(
    option: str, output: str | None, inputs: dict[str, object], suffix: str | None = None
) -> None:
    """Raise :class:`UsageError` before any work if ``option``'s file ``output`` cannot be
    written, or is one of ``inputs`` (``{what it is: path}``): otherwise writing it would fail
    at the end, after the work, or replace the user's input.

    Refused: a folder; one of the inputs; a name without ``suffix`` (the file's format, when
    the command can write only one); a path whose nearest existing ancestor is a file, or a
    folder the user may not write in.
    """
    from fetalft.io import folder_problem, same_file

    if output is None:
        return
    path = Path(output)
    if path.is_dir():
        raise UsageError(f"{option} {output} is a folder; give a file name for {option}.")
    for what, input_path in inputs.items():
        if same_file(output, input_path):
            raise UsageError(
                f"{option} {output} is the {what} ({input_path}); writing there would replace "
                f"it. Choose another file for {option}."
            )
    if suffix is not None and path.suffix.lower() != suffix:
        raise UsageError(
            f"{option} {output}: the file written is {suffix[1:].upper()}; give a file name "
            f"ending in {suffix}."
        )
    if problem := folder_problem(path.parent):
        raise UsageError(
            f"{option} {output} cannot be written: {problem}. Choose another path for {option}."
        )


def _check_folder(what: str, folder: Path) -> None:
    """Raise :class:`UsageError` before any work if results cannot be written in ``folder``."""
    from fetalft.io import folder_problem

    if problem := folder_problem(folder):
        raise UsageError(f"{what} {folder} cannot be used: {problem}. Choose another folder.")


def _seed(text: str) -> int:
    """``--seeds`` values: whole numbers >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"seeds are whole numbers >= 0, got {text!r}")
    return value


def _study(args: argparse.Namespace) -> int:
    from fetalft.profiles import get_profile, parse_setting
    from fetalft.runfiles import checkpoints_root, results_root
    from fetalft.study import Study, plan

    with _user_input():
        profile = get_profile(args.profile)
    seeds = list(args.seeds if args.seeds is not None else profile.seeds)
    unique = list(dict.fromkeys(seeds))
    if len(unique) < len(seeds):
        print(
            f"note: seeds {' '.join(map(str, seeds))} repeat; each is trained once: "
            f"{' '.join(map(str, unique))}"
        )
    with _user_input():
        specs = plan(
            args.strategies,
            unique,
            args.split,
            args.train_fraction,
            args.head_trainable,
            args.random_bn,
            [parse_setting(text) for text in args.settings],
        )
    # hours of training must not end at the first result written: ask the folders first
    results, checkpoints = results_root(args.results_dir), checkpoints_root(args.checkpoint_dir)
    _check_folder("the results folder (--results-dir, $FETALFT_RESULTS_DIR)", results)
    _check_folder("the checkpoint folder (--checkpoint-dir, $FETALFT_CHECKPOINT_DIR)", checkpoints)
    study = Study(
        profile,
        args.data_dir,
        results,
        checkpoints,
        args.encoder_weights,
        args.precision,
        progress=not args.quiet,
    )
    folders = study.run_all(specs)
    print(f"{len(folders)} runs finished under {study.results_dir / profile.name}")
    return 0


def _rescore(args: argparse.Namespace) -> int:
    from fetalft.profiles import get_profile
    from fetalft.rescore import rescore_runs
    from fetalft.runfiles import load_runs, results_root, scoring_root

    with _user_input():
        profile = get_profile(args.profile)
    if args.runs is not None:
        recorded = set(load_runs(profile.name, args.results_dir).get("run", []))
        if unknown := sorted(set(args.runs) - recorded):
            raise UsageError(
                f"--runs: no finished {profile.name}-profile runs named {', '.join(unknown)} "
                f"under {results_root(args.results_dir) / profile.name}; run the study first."
            )
    where = scoring_root(profile.name, results_dir=args.results_dir)
    _check_folder("the scores folder (--results-dir, $FETALFT_RESULTS_DIR)", where)
    written, skipped = rescore_runs(
        profile,
        runs=args.runs,
        results_dir=args.results_dir,
        checkpoint_dir=args.checkpoint_dir,
        data_dir=args.data_dir,
        progress=not args.quiet,
    )
    print(
        f"{len(written)} runs scored under every protocol, in {where}"
        if written
        else "no run could be re-scored"
    )
    if skipped:
        print(f"no checkpoint on this machine for {len(skipped)}: {'; '.join(skipped)}")
    return 0


def _strategies(args: argparse.Namespace) -> int:
    from fetalft.strategies import registry_table

    table = registry_table(head_trainable=args.head_trainable)
    print(
        table.to_string(
            index=False,
            formatters={
                "trainable": "{:,}".format,
                "frozen": "{:,}".format,
                "total": "{:,}".format,
            },
        )
    )
    return 0


def _params(_args: argparse.Namespace) -> int:
    from fetalft.models import parameter_table

    print(parameter_table().to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def _split(args: argparse.Namespace) -> int:
    from fetalft.split import committed_splits, exams_on_both_sides

    table = committed_splits()
    for kind in ("exam", "leaky"):
        roles = dict(zip(table["name"], table[f"{kind}_split"], strict=True))
        counts = table[f"{kind}_split"].value_counts().to_dict()
        shared = exams_on_both_sides(roles)
        print(f"{kind:6s} split: {counts}; exams in both train and test: {len(shared)}")
    return 0


def _default_checkpoint(profile_name: str | None) -> tuple[str, str]:
    """The best-on-validation finished run's ``best.pt`` of the profile and the line that
    names it, or a clear error."""
    from fetalft.predict import CheckpointError
    from fetalft.profiles import get_profile
    from fetalft.report import best_checkpoint
    from fetalft.runfiles import checkpoints_root, load_runs

    with _user_input():
        profile = get_profile(profile_name).name
    runs = load_runs(profile)
    if "data" in runs:  # a model of synthetic scans measures nothing real: never by default
        runs = runs[runs["data"] != "synthetic"]
    choice = best_checkpoint(runs, checkpoints_root(), profile)
    if choice is None:
        raise CheckpointError(
            f"no finished {profile}-profile run on HC18 with a best.pt under "
            f"{checkpoints_root()}; train one (python -m fetalft study) or pass --checkpoint."
        )
    row = choice.row
    note = (
        f"using {choice.path} ({row.run}, seed {row.seed}, validation Dice {row.best_val_dice:.4f})"
    )
    return str(choice.path), note


def _model_checkpoint(args: argparse.Namespace) -> tuple[str, str | None]:
    """--checkpoint; else the best run of --profile; else the model that ships with fetalft.

    Returns the path and, when the user did not name it, a line saying which model it is.
    The caller prints that line only once every argument has been checked, so a refused
    command does not first announce a model it will not use.
    """
    if args.checkpoint:
        return args.checkpoint, None
    if args.profile:
        return _default_checkpoint(args.profile)
    from fetalft.shipped import shipped_checkpoint

    path = shipped_checkpoint()
    return str(path), (
        f"using the model that ships with fetalft ({path.name}; see MODEL_CARD.md beside it)"
    )


def _announce(note: str | None) -> None:
    """Print which model is used (see :func:`_model_checkpoint`), if there is a line to print."""
    if note:
        print(note)


def _predict(args: argparse.Namespace) -> int:
    from fetalft.predict import predict_file

    checkpoint, note = _model_checkpoint(args)
    _check_output(
        "--overlay",
        args.overlay,
        {"input image": args.image, "checkpoint": checkpoint},
        suffix=".png",
    )
    measurement = predict_file(
        args.image,
        args.pixel_size,
        checkpoint,
        args.overlay,
        before_loading=lambda: _announce(note),
        clear_fit=args.fit == "clear",
    )
    print(measurement)
    if measurement.measurable:
        e = measurement.ellipse_mm
        print(
            f"ellipse (mm): centre ({e.cx:.2f}, {e.cy:.2f}), semi-axes {e.a:.2f} x {e.b:.2f}, "
            f"angle {e.angle:.4f} rad"
        )
    if args.overlay:
        print(f"overlay written to {args.overlay}")
    return 0 if measurement.measurable else 3


def _export(args: argparse.Namespace) -> int:
    from fetalft.export import export_onnx

    _check_output("--output", args.output, {})  # the checkpoint: export_onnx checks
    path = export_onnx(args.checkpoint, args.output)
    print(f"ONNX model written to {path} (with {path.with_suffix('.json').name})")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from fetalft import hc18
    from fetalft.predict import Predictor, predict_test_set
    from fetalft.submission import (
        SubmissionError,
        submission_with_fallback,
        write_fallbacks,
        write_submission,
    )

    checkpoint, note = _model_checkpoint(args)
    data_dir = hc18.find_data_dir(args.data_dir)
    records = hc18.load_records("test", data_dir)
    inputs = {"checkpoint": checkpoint, "training CSV": data_dir / hc18.TRAIN_CSV}
    inputs |= {"test CSV": data_dir / hc18.TEST_CSV}
    inputs |= {f"test image {r.image_path.name}": r.image_path for r in records}
    _check_output("--output", args.output, inputs)
    _announce(note)
    predictor = Predictor.from_checkpoint(checkpoint, clear_fit=args.fit == "clear")
    measured = predict_test_set(predictor, records)
    if records and not any(m.measurable for m, _ in measured.values()):
        raise SubmissionError(
            f"the model {checkpoint} measured no plausible head in any of the {len(records)} "
            "test images, "
            f"so every row would be the same made-up circle; nothing written to {args.output}. "
            "Pass --checkpoint with the best.pt of a trained run (check it with predict)."
        )
    train_hc = [r.hc_mm for r in hc18.load_records("training", data_dir)]
    table, fallbacks = submission_with_fallback(measured, records, float(np.median(train_hc)))
    write_submission(args.output, table, [r.image_path.name for r in records])
    listed = write_fallbacks(args.output, fallbacks)
    print(f"{len(table)} rows written to {args.output} and checked against the challenge format")
    if fallbacks:
        print(
            f"no plausible head in {len(fallbacks)} image(s), given a centred circle of the "
            f"median training HC instead (listed in {listed}):"
        )
        for filename, reason in fallbacks.items():
            print(f"  {filename}: {reason}")
    return 0


BEST_CHECKPOINT_HELP = (
    "a best.pt written by a study run (default: with --profile, that profile's finished run "
    "with the best validation Dice, from $FETALFT_CHECKPOINT_DIR; without it, the model that "
    "ships with fetalft, chapter 8's final model)"
)


PROFILE_HELP = "default: $FETALFT_PROFILE, else paper on a GPU and cpu otherwise"
DATA_DIR_HELP = (
    "the HC18 folder (default: $FETALFT_DATA_DIR, else fetalft/hc18 in the user's cache folder)"
)
TRAINING_DATA_DIR_HELP = (
    DATA_DIR_HELP + "; a folder given without HC18 is an error. 'synthetic' uses generated "
    "look-alike scans (for trying the commands; the smoke profile also uses them, with a "
    "warning, when no folder is configured at all)"
)
CHECKPOINT_PROFILE_HELP = (
    "take the checkpoint of this profile's best finished run instead of the shipped model"
)
#: predict's and submit's choice of ellipse fit (chapter 8, "Fitting the ellipse to the
#: clear skull"): chosen on validation, it lowered the test ADF of both networks tried.
FIT_CHOICES = ("clear", "every")
FIT_HELP = (
    "clear (default): fit the ellipse to the head's outline without the 20%% where the "
    "network's edge is weakest, such as the faint sides of a skull; every: to every point "
    "of the outline, as the study scores its runs"
)


def _folder_arguments(parser: argparse.ArgumentParser) -> None:
    """Where data, results and checkpoints are, and ``--quiet``: study and rescore."""
    parser.add_argument("--data-dir", default=None, help=TRAINING_DATA_DIR_HELP)
    parser.add_argument(
        "--results-dir", default=None, help="default: $FETALFT_RESULTS_DIR, else results"
    )
    parser.add_argument(
        "--checkpoint-dir",
        default=None,
        help="default: $FETALFT_CHECKPOINT_DIR, else checkpoints",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _head_arguments(parser: argparse.ArgumentParser) -> None:
    """``--head-trainable`` / ``--frozen-head``; neither keeps each strategy's own head."""
    head = parser.add_mutually_exclusive_group()
    head.add_argument(
        "--head-trainable",
        dest="head_trainable",
        action="store_const",
        const=True,
        default=None,
        help="train the segmentation head in every strategy",
    )
    head.add_argument(
        "--frozen-head",
        dest="head_trainable",
        action="store_const",
        const=False,
        help="keep the segmentation head frozen at random initialisation in every strategy",
    )


def build_parser() -> argparse.ArgumentParser:
    from fetalft.device import PRECISIONS
    from fetalft.profiles import PROFILES, SETTINGS
    from fetalft.split import SPLIT_KINDS
    from fetalft.strategies import RANDOM_BN_MODES, STRATEGIES

    parser = argparse.ArgumentParser(prog="fetalft", description="Fine-tuning U-Nets on HC18.")
    commands = parser.add_subparsers(
        dest="command", required=True, help="the command to run; COMMAND --help for its options"
    )

    p = commands.add_parser("download", help="fetch HC18 from Zenodo (resumable, verified)")
    download.add_arguments(p)
    p.set_defaults(func=download.main)

    p = commands.add_parser("study", help="train strategies x seeds, skipping finished runs")
    p.add_argument(
        "--profile",
        choices=list(PROFILES),
        default=None,
        help=PROFILE_HELP,
    )
    p.add_argument(
        "--strategies",
        nargs="+",
        default=None,
        metavar="NAME",
        help=f"strategies to train, any of: {', '.join(STRATEGIES)} (default: all; "
        "`fetalft strategies` describes them)",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=_seed,
        default=None,
        metavar="SEED",
        help="random seeds, whole numbers >= 0; a repeated seed is trained once "
        "(default: the profile's)",
    )
    p.add_argument(
        "--split",
        choices=SPLIT_KINDS,
        default="exam",
        help="exam keeps every exam's scans on one side of the train/test split; leaky ignores "
        "exams, so one exam's scans can be on both sides (default: exam)",
    )
    p.add_argument(
        "--train-fraction",
        type=float,
        default=1.0,
        help="share of the training images to train on, a whole percentage in (0, 1] such as "
        "0.1 (default: 1.0)",
    )
    _head_arguments(p)
    p.add_argument(
        "--random-bn",
        choices=RANDOM_BN_MODES,
        default="eval",
        help="BatchNorm of frozen parts that were never trained: eval keeps their initial "
        "statistics (default), train normalises each batch as the authors' code did",
    )
    p.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one setting of the profile's recipe for these runs (repeatable; the run's "
        "folder name records it): "
        + "; ".join(f"{key}: {choices}" for key, choices in SETTINGS.items()),
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto: fp16 autocast on a GPU; on a CPU bf16 autocast where its features say it "
        "trains faster (AMX, or AVX512-BF16 on AMD), else fp32 (default: auto)",
    )
    p.add_argument(
        "--encoder-weights",
        default=None,
        help="'imagenet', or a local .pth (default: $FETALFT_ENCODER_WEIGHTS or imagenet)",
    )
    _folder_arguments(p)
    p.set_defaults(func=_study)

    p = commands.add_parser(
        "rescore", help="score finished runs' test predictions the paper's way as well"
    )
    p.add_argument("--profile", choices=list(PROFILES), default=None, help=PROFILE_HELP)
    p.add_argument(
        "--runs", nargs="+", default=None, help="run folder names (default: every finished run)"
    )
    _folder_arguments(p)
    p.set_defaults(func=_rescore)

    p = commands.add_parser("strategies", help="print the strategy registry")
    _head_arguments(p)
    p.set_defaults(func=_strategies)

    p = commands.add_parser("params", help="parameter counts of Unet with the paper's 13 encoders")
    p.set_defaults(func=_params)

    p = commands.add_parser("split", help="summarise the committed train/val/test splits")
    p.set_defaults(func=_split)

    low, high = PIXEL_SIZE_RANGE_MM
    from fetalft.biometry import (
        FIELD_OF_VIEW_MM,
        HADLOCK_FITTED_WEEKS,
        HADLOCK_HC_RANGE_MM,
        HC_RANGE_MM,
    )

    (ga_low, ga_high), weeks = HADLOCK_HC_RANGE_MM, HADLOCK_FITTED_WEEKS
    (hc_low, hc_high), fov_high = HC_RANGE_MM, FIELD_OF_VIEW_MM[1]
    p = commands.add_parser(
        "predict",
        help="head circumference of one image",
        epilog="exit codes: 0 head measured (the gestational age is given only for HCs of "
        f"{ga_low:.0f}-{ga_high:.0f} mm, the {weeks[0]:.0f}-{weeks[1]:.0f} weeks Hadlock's "
        "formula was fitted on); 3 not measurable: no head, or one that is not plausible (HC "
        f"outside {hc_low:.0f}-{hc_high:.0f} mm, a sliver, too small or large for the image, "
        f"mostly out of view, or an image over {fov_high:.0f} mm across at this pixel size), "
        "the reason printed and the overlay still written (refused ellipse in red); 2 bad input, such as a pixel size outside the range, an unreadable "
        "image or checkpoint (one line on stderr saying what to do) or a usage error; "
        "1 an unexpected error, with its traceback.",
    )
    p.add_argument(
        "image",
        help="the scan, a greyscale PNG such as HC18's (16-bit PNGs are scaled by the bit "
        "depth their brightest pixel needs, so a 12-bit scan keeps its contrast)",
    )
    p.add_argument(
        "--pixel-size",
        type=float,
        required=True,
        help=f"pixel spacing in mm per pixel, accepted from {low} to {high} mm "
        "(HC18 images: 0.05-0.39 mm); outside that range it is refused with exit code 2",
    )
    p.add_argument("--checkpoint", default=None, help=BEST_CHECKPOINT_HELP)
    p.add_argument("--profile", default=None, help=CHECKPOINT_PROFILE_HELP)
    p.add_argument(
        "--overlay",
        default=None,
        help="write a PNG (a file name ending in .png) with the fitted ellipse",
    )
    p.add_argument("--fit", choices=FIT_CHOICES, default="clear", help=FIT_HELP)
    p.set_defaults(func=_predict)

    p = commands.add_parser("submit", help="HC18 challenge submission CSV for the 335 test images")
    p.add_argument("--checkpoint", default=None, help=BEST_CHECKPOINT_HELP)
    p.add_argument("--profile", default=None, help=CHECKPOINT_PROFILE_HELP)
    p.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    p.add_argument(
        "--output",
        default="submission.csv",
        help="the CSV to write; nothing is written if the model finds no head in any image "
        "(default: submission.csv)",
    )
    p.add_argument("--fit", choices=FIT_CHOICES, default="clear", help=FIT_HELP)
    p.set_defaults(func=_submit)

    p = commands.add_parser("export", help="export a checkpoint to ONNX")
    p.add_argument("--checkpoint", required=True, help="a best.pt written by a study run")
    p.add_argument(
        "--output",
        default=None,
        help="the .onnx file; its .json sidecar goes beside it, and neither may overwrite the "
        "checkpoint (default: the checkpoint path with .onnx)",
    )
    p.set_defaults(func=_export)
    return parser


#: What Ctrl-C keeps, per command that can be interrupted safely; others keep the traceback.
INTERRUPTED = {
    "study": "finished runs are kept; run the same command again and the interrupted run "
    "resumes from its last finished epoch",
    "download": "finished files and the bytes of an interrupted transfer are kept; run the "
    "same command again and it resumes from them",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if args.command not in INTERRUPTED:
            raise
        command = shlex.join(["python", "-m", "fetalft", *argv])
        print(f"interrupted: {INTERRUPTED[args.command]} ({command}).", file=sys.stderr)
        return 130
    except Exception as error:
        if not is_project_error(error):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

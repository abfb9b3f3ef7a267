"""Command line: ``python -m fetalft <command>`` (also installed as ``fetalft``).

Commands: download, study, rescore, strategies, params, split, predict, submit, export.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from fetalft import download
from fetalft.hc18 import HC18Error


def _study(args: argparse.Namespace) -> int:
    from fetalft.profiles import get_profile
    from fetalft.study import Study, plan

    profile = get_profile(args.profile)
    seeds = args.seeds if args.seeds is not None else profile.seeds
    specs = plan(
        args.strategies,
        seeds,
        args.split,
        args.train_fraction,
        args.head_trainable,
        args.random_bn,
    )
    study = Study(
        profile,
        args.data_dir,
        args.results_dir,
        args.checkpoint_dir,
        args.encoder_weights,
        args.precision,
        progress=not args.quiet,
    )
    folders = study.run_all(specs)
    print(f"{len(folders)} runs finished under {study.results_dir / profile.name}")
    return 0


def _rescore(args: argparse.Namespace) -> int:
    from fetalft.profiles import get_profile
    from fetalft.rescore import rescore_runs, scoring_root

    profile = get_profile(args.profile)
    written, skipped = rescore_runs(
        profile,
        args.runs,
        args.results_dir,
        args.checkpoint_dir,
        args.data_dir,
        progress=not args.quiet,
    )
    where = scoring_root(profile.name, args.results_dir)
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


def _default_checkpoint(profile_name: str | None) -> str:
    """The best-on-validation finished run's ``best.pt`` of the profile, or a clear error."""
    from fetalft.profiles import get_profile
    from fetalft.report import best_checkpoint, load_runs
    from fetalft.study import checkpoints_root

    profile = get_profile(profile_name).name
    choice = best_checkpoint(load_runs(profile), checkpoints_root(), profile)
    if choice is None:
        raise FileNotFoundError(
            f"no finished {profile}-profile run with a best.pt under {checkpoints_root()}; "
            "train one (python -m fetalft study) or pass --checkpoint."
        )
    row = choice.row
    print(
        f"using {choice.path} ({row.run}, seed {row.seed}, validation Dice {row.best_val_dice:.4f})"
    )
    return str(choice.path)


def _predict(args: argparse.Namespace) -> int:
    from fetalft.predict import predict_file

    checkpoint = args.checkpoint or _default_checkpoint(args.profile)
    measurement = predict_file(args.image, args.pixel_size, checkpoint, args.overlay)
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

    path = export_onnx(args.checkpoint, args.output)
    print(f"ONNX model written to {path} (with {path.with_suffix('.json').name})")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from fetalft import hc18
    from fetalft.book import predict_test_set, submission_with_fallback
    from fetalft.predict import Predictor
    from fetalft.submission import write_submission

    checkpoint = args.checkpoint or _default_checkpoint(args.profile)
    records = hc18.load_records("test", hc18.find_data_dir(args.data_dir))
    measured = predict_test_set(Predictor.from_checkpoint(checkpoint), records)
    train_hc = [r.hc_mm for r in hc18.load_records("training", hc18.find_data_dir(args.data_dir))]
    table, fallbacks = submission_with_fallback(measured, records, float(np.median(train_hc)))
    write_submission(args.output, table, [r.image_path.name for r in records])
    print(f"{len(table)} rows written to {args.output} and checked against the challenge format")
    if fallbacks:
        print(
            f"no head found in {len(fallbacks)} image(s), given a centred circle of the median "
            f"training HC instead: {', '.join(fallbacks)}"
        )
    return 0


BEST_CHECKPOINT_HELP = (
    "a best.pt written by a study run (default: the finished run of the profile with the "
    "best validation Dice, from $FETALFT_CHECKPOINT_DIR)"
)


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
    from fetalft.profiles import PROFILES
    from fetalft.split import SPLIT_KINDS
    from fetalft.strategies import RANDOM_BN_MODES

    parser = argparse.ArgumentParser(prog="fetalft", description="Fine-tuning U-Nets on HC18.")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("download", help="fetch HC18 from Zenodo (resumable, verified)")
    download.add_arguments(p)
    p.set_defaults(func=download.main)

    p = commands.add_parser("study", help="train strategies x seeds, skipping finished runs")
    p.add_argument(
        "--profile",
        choices=list(PROFILES),
        default=None,
        help="default: $FETALFT_PROFILE, else paper on a GPU and cpu otherwise",
    )
    p.add_argument("--strategies", nargs="+", default=None, help="default: all")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default: the profile's")
    p.add_argument("--split", choices=SPLIT_KINDS, default="exam")
    p.add_argument("--train-fraction", type=float, default=1.0)
    _head_arguments(p)
    p.add_argument(
        "--random-bn",
        choices=RANDOM_BN_MODES,
        default="eval",
        help="BatchNorm of frozen parts that were never trained: eval keeps their initial "
        "statistics (default), train normalises each batch as the authors' code did",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto: fp16 autocast on a GPU; on a CPU bf16 autocast if a timed step is faster, "
        "else fp32 (default: auto)",
    )
    p.add_argument(
        "--encoder-weights",
        default=None,
        help="'imagenet', or a local .pth (default: $FETALFT_ENCODER_WEIGHTS or imagenet)",
    )
    p.add_argument("--data-dir", default=None)
    p.add_argument("--results-dir", default=None)
    p.add_argument("--checkpoint-dir", default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_study)

    p = commands.add_parser(
        "rescore", help="score finished runs' test predictions the paper's way as well"
    )
    p.add_argument("--profile", choices=list(PROFILES), default=None)
    p.add_argument("--runs", nargs="+", default=None, help="default: every finished run")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--results-dir", default=None)
    p.add_argument("--checkpoint-dir", default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_rescore)

    p = commands.add_parser("strategies", help="print the strategy registry")
    _head_arguments(p)
    p.set_defaults(func=_strategies)

    p = commands.add_parser("params", help="parameter counts of Unet with the paper's 13 encoders")
    p.set_defaults(func=_params)

    p = commands.add_parser("split", help="summarise the committed train/val/test splits")
    p.set_defaults(func=_split)

    p = commands.add_parser("predict", help="head circumference of one image")
    p.add_argument("image")
    p.add_argument("--pixel-size", type=float, required=True, help="mm per pixel")
    p.add_argument("--checkpoint", default=None, help=BEST_CHECKPOINT_HELP)
    p.add_argument("--profile", default=None, help="where to look for the default checkpoint")
    p.add_argument("--overlay", default=None, help="write a PNG with the fitted ellipse")
    p.set_defaults(func=_predict)

    p = commands.add_parser("submit", help="HC18 challenge submission CSV for the 335 test images")
    p.add_argument("--checkpoint", default=None, help=BEST_CHECKPOINT_HELP)
    p.add_argument("--profile", default=None, help="where to look for the default checkpoint")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--output", default="submission.csv")
    p.set_defaults(func=_submit)

    p = commands.add_parser("export", help="export a checkpoint to ONNX")
    p.add_argument("--checkpoint", required=True, help="a best.pt written by a study run")
    p.add_argument("--output", default=None, help="default: the checkpoint path with .onnx")
    p.set_defaults(func=_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (HC18Error, ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

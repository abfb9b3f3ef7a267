"""Command line: ``python -m fetalft <command>`` (also installed as ``fetalft``).

Commands: download, study, strategies, params, split, predict, export.
"""

from __future__ import annotations

import argparse
import sys

from fetalft import download
from fetalft.hc18 import HC18Error


def _study(args: argparse.Namespace) -> int:
    from fetalft.profiles import get_profile
    from fetalft.study import Study, plan

    profile = get_profile(args.profile)
    seeds = args.seeds if args.seeds is not None else profile.seeds
    specs = plan(args.strategies, seeds, args.split, args.train_fraction, args.head_trainable)
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


def _predict(args: argparse.Namespace) -> int:
    from fetalft.predict import predict_file

    measurement = predict_file(args.image, args.pixel_size, args.checkpoint, args.overlay)
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


def build_parser() -> argparse.ArgumentParser:
    from fetalft.device import PRECISIONS
    from fetalft.profiles import PROFILES
    from fetalft.split import SPLIT_KINDS

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
    p.add_argument("--head-trainable", action="store_true")
    p.add_argument("--precision", choices=PRECISIONS, default="auto")
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

    p = commands.add_parser("strategies", help="print the strategy registry")
    p.add_argument("--head-trainable", action="store_true")
    p.set_defaults(func=_strategies)

    p = commands.add_parser("params", help="parameter counts of Unet with the paper's 13 encoders")
    p.set_defaults(func=_params)

    p = commands.add_parser("split", help="summarise the committed train/val/test splits")
    p.set_defaults(func=_split)

    p = commands.add_parser("predict", help="head circumference of one image")
    p.add_argument("image")
    p.add_argument("--pixel-size", type=float, required=True, help="mm per pixel")
    p.add_argument("--checkpoint", required=True, help="a best.pt written by a study run")
    p.add_argument("--overlay", default=None, help="write a PNG with the fitted ellipse")
    p.set_defaults(func=_predict)

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

"""`facepoints prepare 300w SRC... -o OUT`: the publishers' download -> the folder train and evaluate read."""

from __future__ import annotations

import argparse
import shlex

from .options import positive_int


def crop_factor(text: str) -> float:
    """--crop's FACTOR: a multiple of the landmark box, at least 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 1 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a number >= 1")
    return value


def add(sub):
    p = sub.add_parser("prepare", help="turn the 300-W download into the folder train and evaluate read")
    p.add_argument("dataset", choices=["300w"], help="the dataset (300w: 300-W/iBUG, or dlib's copy with its XML)")
    p.add_argument(
        "sources",
        nargs="+",
        metavar="SRC",
        help="the download: folder(s) or .zip/.tar(.gz) archive(s) holding afw/, helen/, lfpw/, ibug/ "
        "(with .pts), or dlib's ibug_300W_large_face_landmark_dataset (labels_ibug_300W_*.xml)",
    )
    p.add_argument("-o", "--out", default="data/300w", help="new (or empty) output folder (default data/300w)")
    p.add_argument(
        "--crop",
        type=crop_factor,
        nargs="?",
        const=2.0,
        default=None,
        metavar="FACTOR",
        help="crop each face to FACTOR x its landmark box (square, clipped to the image; FACTOR 2 when not given); "
        "default: keep whole images",
    )
    p.add_argument(
        "--max-side",
        type=positive_int,
        default=None,
        metavar="PX",
        help="downscale (never upscale) so each face's landmark box is at most PX px (the project's crops: 160)",
    )
    p.add_argument(
        "--format",
        dest="form",
        choices=["auto", "pts", "xml"],
        default="auto",
        help="annotations to read: .pts files, dlib's XML, or auto (.pts where present, else XML)",
    )
    p.set_defaults(func=run)


def command_line(args) -> str:
    """The command as it could be typed again (recorded in OUT/README.md)."""
    words = ["facepoints", "prepare", args.dataset, *args.sources, "-o", args.out]
    if args.crop is not None:
        words += ["--crop", f"{args.crop:g}"]
    if args.max_side is not None:
        words += ["--max-side", str(args.max_side)]
    if args.form != "auto":
        words += ["--format", args.form]
    return shlex.join(words)


def run(args):
    from ..prepare import PrepareOptions, prepare_300w, summary  # the verb's own imports (OpenCV): commands/__init__.py

    options = PrepareOptions(crop=args.crop, max_side=args.max_side, form=args.form)
    prepared = prepare_300w(args.sources, args.out, options, command=command_line(args))
    print(summary(prepared, args.out))

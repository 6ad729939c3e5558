"""`facepoints evaluate`: options -> LandmarkerOptions -> evaluate.run (300-W metrics, JSON, CED plot)."""

from __future__ import annotations

from pathlib import Path

from ..errors import require
from .options import add_detector_options, landmarker_options


def add(sub):
    p = sub.add_parser("evaluate", help="300-W style evaluation on a folder of image+.pts pairs")
    p.add_argument("--data", required=True)
    p.add_argument("--model", default=None, help="shipped model name or .pt path (default: the shipped default)")
    p.add_argument("--boxes", choices=["landmarks", "detector"], default="landmarks")
    add_detector_options(p, "with --boxes detector: ")
    p.add_argument("-o", "--json", dest="json_out", default=None, help="write the metrics here (JSON)")
    p.add_argument("--ced", default=None, help="CED plot path (default: beside --json, else ced.png)")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "torch"])
    p.add_argument("--flip-test", action="store_true", help="average with the mirrored crop")
    p.set_defaults(func=run)


def run(args):
    from ..evaluate import run  # the verb's own heavy imports: commands/__init__.py

    if args.ced:  # asked for by name: refused before the run; the default plot is skipped with a note instead
        require("matplotlib", f"--ced {args.ced} (the CED plot)", "train")
    ced = args.ced or (str(Path(args.json_out).with_suffix(".ced.png")) if args.json_out else "ced.png")
    run(args.data, landmarker_options(args), args.boxes, args.json_out, ced)

"""`facepoints VERB ...`: one verb per job (detect, batch, train, evaluate, export)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, fields
from pathlib import Path

from .config import (
    ARCHITECTURES,
    DEGREES,
    DETECTOR_NAMES,
    FINITE_FLOAT,
    FRACTION,
    MARGIN,
    MAX_SIDE,
    NON_NEGATIVE_FLOAT,
    NON_NEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    PROBABILITY,
    AugmentConfig,
    LandmarkerOptions,
    Rule,
    TrainConfig,
    VideoOptions,
    check_detector_threshold,
    config_from_dict,
)
from .errors import FacepointsError, UsageError, quiet_third_party, require
from .io_utils import check_outputs

# Each verb imports what it runs inside its _run_* function: `facepoints --help` and a mistyped option
# then answer at once instead of after torch, OpenCV and ONNX Runtime have loaded.

# the CLI's defaults are the dataclasses' defaults: one place for each
TRAIN = {f.name: f.default for f in fields(TrainConfig)}
AUGMENT = {f.name: f.default for f in fields(AugmentConfig)}
LANDMARKER = {f.name: f.default for f in fields(LandmarkerOptions)}
VIDEO = {f.name: f.default for f in fields(VideoOptions)}


# Numeric option types: every number is checked at parse time, so a bad value is argparse's one
# line and exit code 2, never a traceback deep inside the run (or a crash, as `--camera -1` was).


def _number(rule: Rule):
    """An argparse type from a config.Rule: the same rule the options' __post_init__ applies."""

    def parse(text: str):
        try:
            value = rule.kind(text)
        except ValueError:
            kind = "an integer" if rule.kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if not rule.valid(value):
            raise argparse.ArgumentTypeError(f"{text} is not {rule.what}")
        return value

    parse.__name__ = rule.what  # argparse names the type in its messages
    return parse


positive_int = _number(POSITIVE_INT)
non_negative_int = _number(NON_NEGATIVE_INT)
positive_float = _number(POSITIVE_FLOAT)
non_negative_float = _number(NON_NEGATIVE_FLOAT)
finite_float = _number(FINITE_FLOAT)
fraction = _number(FRACTION)
probability = _number(PROBABILITY)
margin = _number(MARGIN)
degrees = _number(DEGREES)
max_side = _number(MAX_SIDE)


class Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (`facepoints detect: error: ...`, exit 2), not the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_detector_options(p, help_prefix: str = "") -> None:
    p.add_argument("--detector", default=LANDMARKER["detector"], choices=DETECTOR_NAMES,
                   help=help_prefix + "face detector: retinaface (CNN, default), dlib (HOG) or haar")
    p.add_argument("--det-threshold", type=finite_float, default=None,
                   help="the detector's own score threshold (retinaface: 0-1, default 0.5; dlib: SVM score, default 0)")
    p.add_argument("--det-max-side", type=max_side, default=-1,
                   help="shrink images to this long side for detection only (default 1280; landmarks still come from "
                   "the full image). 0 = never shrink: the detector then needs ~50 bytes of memory a pixel, about "
                   "5 GB and a minute for a 9400 x 9400 photo")
    p.add_argument("--no-upright", dest="upright", action="store_false",
                   help="do not turn faces upright by the detector's keypoints before the landmark model (retinaface)")


def _add_train(sub):
    p = sub.add_parser("train", help="train a landmark model on 68-point data")
    p.add_argument("--data", help="folder of image+.pts pairs, or a dlib XML file (not needed with --resume)")
    p.add_argument(
        "-o", "--out", default=TRAIN["out"], help="run folder: checkpoints, progress.gif, curves.png, model.pt"
    )
    p.add_argument(
        "--arch",
        "--model",
        dest="arch",
        default=TRAIN["arch"],
        choices=ARCHITECTURES,
        metavar="ARCH",
        help=f"architecture: {', '.join(ARCHITECTURES)} (--model is the old name of this option)",
    )
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help=f"epochs to train (default {TRAIN['epochs']}); with --resume: train on up to this epoch",
    )
    p.add_argument("--batch-size", type=positive_int, default=TRAIN["batch_size"])
    p.add_argument("--lr", type=positive_float, default=TRAIN["lr"])
    p.add_argument("--optimizer", choices=["adam", "adamw"], default=TRAIN["optimizer"])
    p.add_argument("--weight-decay", type=non_negative_float, default=TRAIN["weight_decay"])
    p.add_argument("--schedule", choices=["constant", "cosine"], default=TRAIN["schedule"])
    p.add_argument("--warmup-epochs", type=non_negative_float, default=TRAIN["warmup_epochs"])
    p.add_argument(
        "--ema",
        type=fraction,
        default=TRAIN["ema"],
        help="moving average of the weights, decay per step (e.g. 0.998); 0 = off",
    )
    p.add_argument(
        "--val-fraction",
        type=fraction,
        default=TRAIN["val_fraction"],
        help="share of faces held out to validate and select the epoch; 0 = train on every face, keep the last epoch",
    )
    p.add_argument(
        "--margin", type=margin, default=TRAIN["margin"], help="crop side as a multiple of the face box's longer side"
    )
    p.add_argument(
        "--cache-side",
        type=positive_int,
        default=TRAIN["cache_side"],
        help="px of the source crops cached for training (2.2x the face box)",
    )
    p.add_argument("--seed", type=non_negative_int, default=TRAIN["seed"])
    p.add_argument("--workers", type=non_negative_int, default=TRAIN["workers"])
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=TRAIN["precision"])
    p.add_argument(
        "--blur", type=probability, default=AUGMENT["blur"], help="probability of Gaussian blur augmentation"
    )
    p.add_argument(
        "--occlusion",
        type=probability,
        default=AUGMENT["occlusion"],
        help="probability of a random occluding rectangle",
    )
    p.add_argument("--rotation", type=degrees, default=AUGMENT["rotation"], help="max rotation augmentation, degrees")
    p.add_argument(
        "--shift",
        type=non_negative_float,
        default=AUGMENT["shift"],
        help="max box-centre shift augmentation, fraction of the crop side",
    )
    p.add_argument(
        "--shift-x",
        type=non_negative_float,
        default=AUGMENT["shift_x"],
        help="max shift across, if it should differ from --shift",
    )
    p.add_argument(
        "--scale-jitter",
        type=non_negative_float,
        default=AUGMENT["scale"],
        help="crop side multiplied by exp(U(-s, s))",
    )
    p.add_argument("--no-flip", action="store_true", help="disable mirror augmentation")
    p.add_argument(
        "--ignore-annotation-offsets",
        dest="annotation_offsets",
        action="store_false",
        help="mirror the points as written, not what they mark (the 300-W manifest's 1-based offsets)",
    )
    p.add_argument(
        "--teacher",
        default=TRAIN["teacher"],
        help="distil: a trained model (shipped name, e.g. accurate, or a .pt file) whose flip-tested points on each "
        "training face are blended into the targets",
    )
    p.add_argument(
        "--teacher-weight",
        type=probability,
        default=TRAIN["teacher_weight"],
        help="with --teacher: 0 = the labels, 1 = the teacher's points",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last complete epoch, with its saved settings",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over the processes torchrun starts (implied under torchrun); --batch-size stays the "
        "global batch",
    )
    p.set_defaults(func=_run_train)


def _run_train(args):
    require("torch", "training", "train")
    require("matplotlib", "training (its curves.png and progress.gif)", "train")
    from .models import MODELS  # the verb's own heavy imports (torch): see the top of this file
    from .train import train

    if not args.data and not args.resume:
        raise UsageError("train needs --data (a folder of image+.pts pairs or a dlib XML file)")
    if args.arch not in MODELS:
        raise FacepointsError(f"unknown architecture {args.arch!r}; choose from {', '.join(MODELS)}")
    if args.resume:
        _check_resume_options(args)
    train(
        train_config(args),
        resume=args.resume,
        epochs=args.epochs if args.resume else None,
        distributed=args.distributed,
    )


# flattened TrainConfig field -> its option, where the names differ
OPTION_NAMES = {
    "arch": "arch",
    "augment.scale": "scale-jitter",
    "augment.flip": "no-flip",
    "annotation_offsets": "ignore-annotation-offsets",
}


def _check_resume_options(args) -> None:
    """--resume takes the run's saved settings; an option set to something else is refused, not ignored.
    --epochs is the exception: it extends (or shortens, if not yet reached) the run. --data may name the
    run's dataset by another path, or where it was moved (data.same_dataset)."""
    from .checkpoint import saved_run  # torch: see the top of this file
    from .data import dataset_fingerprint, same_dataset

    out = Path(args.out)
    if not any((out / name).exists() for name in ("last.pt", "best.pt", "config.json")):
        return  # nothing saved yet: train.prepare_run starts the run (or says there is nothing to resume)

    def flat(cfg):
        d = asdict(cfg)
        return {
            **{k: v for k, v in d.items() if k != "augment"},
            **{f"augment.{k}": v for k, v in d["augment"].items()},
        }

    from .train import _teacher_path  # torch, as above

    asked, default = flat(train_config(args)), flat(train_config(build_parser().parse_args(["train"])))
    asked["teacher"] = _teacher_path(asked["teacher"])  # the saved one is absolute (or a shipped name)
    state, saved_config = saved_run(args.out)
    saved = flat(config_from_dict(saved_config))
    differ = [k for k in asked if k not in ("epochs", "out", "data") and asked[k] != default[k]
              and asked[k] != saved.get(k)]
    if args.data and Path(saved["data"]).exists() and not same_dataset(args.data, saved["data"]):
        differ.insert(0, "data")
    known = (state or {}).get("data_fingerprint")
    if args.data and not Path(saved["data"]).exists() and known and dataset_fingerprint(args.data) != known:
        differ.insert(0, "data")  # the run's data moved: what is given must hold the same faces
    if differ:
        names = ", ".join("--" + OPTION_NAMES.get(k, k.removeprefix("augment.")).replace("_", "-") for k in differ)
        raise UsageError(
            f"{args.out}: --resume continues with the run's saved settings; {names} differ from them "
            "(only --epochs may change)"
        )


def train_config(args) -> TrainConfig:
    aug = AugmentConfig(
        rotation=args.rotation,
        flip=not args.no_flip,
        blur=args.blur,
        occlusion=args.occlusion,
        shift=args.shift,
        shift_x=args.shift_x,
        scale=args.scale_jitter,
    )
    values = {k: v for k, v in vars(args).items() if k in TRAIN}
    values["epochs"] = args.epochs or TRAIN["epochs"]
    return TrainConfig(augment=aug, **values)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="facepoints", description="68-point face landmarks on a plain CPU")
    sub = parser.add_subparsers(dest="verb", required=True, parser_class=Parser)
    for add in (_add_detect, _add_batch, _add_train, _add_evaluate, _add_export):
        add(sub)
    return parser


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="300-W style evaluation on a folder of image+.pts pairs")
    p.add_argument("--data", required=True)
    p.add_argument("--model", default=None, help="shipped model name or .pt path (default: the shipped default)")
    p.add_argument("--boxes", choices=["landmarks", "detector"], default="landmarks")
    _add_detector_options(p, "with --boxes detector: ")
    p.add_argument("-o", "--json", dest="json_out", default=None, help="write the metrics here (JSON)")
    p.add_argument("--ced", default=None, help="CED plot path (default: beside --json, else ced.png)")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "torch"])
    p.add_argument("--flip-test", action="store_true", help="average with the mirrored crop")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args):
    from .evaluate import run  # the verb's own heavy imports: see the top of this file

    if args.ced:  # asked for by name: refused before the run; the default plot is skipped with a note instead
        require("matplotlib", f"--ced {args.ced} (the CED plot)", "train")
    ced = args.ced or (str(Path(args.json_out).with_suffix(".ced.png")) if args.json_out else "ced.png")
    run(args.data, landmarker_options(args), args.boxes, args.json_out, ced)


def _add_export(sub):
    p = sub.add_parser("export", help="export a model to ONNX (dynamic batch)")
    p.add_argument("--model", default=None, help="shipped model name or .pt path")
    p.add_argument("-o", "--output", required=True, help="output .onnx path")
    p.add_argument("--no-trust", action="store_true",
                   help="points only, without the trust outputs (presence, visibility, log_b) of a model that has them")
    p.set_defaults(func=_run_export)


def _run_export(args):
    require("torch", "export", "train")
    require("onnx", "export", "train")
    from .export import export_onnx, export_trust_onnx  # the verb's own heavy imports: see the top of this file
    from .model_files import DEFAULT_MODEL, shipped_models
    from .trust import load_trust
    from .weights import load_model, resolve

    if Path(args.output).suffix.lower() != ".onnx":
        raise UsageError(f"-o {args.output}: an ONNX file needs the .onnx suffix")
    check_outputs([args.output], inputs=[resolve(args.model)[0]])
    model, spec = load_model(args.model)
    name = args.model or DEFAULT_MODEL
    trust = not getattr(args, "no_trust", False) and "trust" in shipped_models().get(name, {})
    if trust:
        head, calibration, _ = load_trust(name)
        path = export_trust_onnx(model, head, calibration, spec, args.output)
        outputs = ("points: batch x 68 x 2, crop pixels, output_shift applied; presence: batch, visibility: "
                   "batch x 68 (probabilities); log_b: batch x 68, expected error in crop pixels by the knots in "
                   "the metadata")
    else:
        path = export_onnx(model, spec, args.output)
        outputs = "points: batch x 68 x 2, crop pixels, output_shift applied"
    print(
        f"{spec.arch} -> {path} (input crops: batch x 1 x {spec.input_size} x {spec.input_size}, gray in [0, 1]; "
        f"outputs {outputs}; settings in the ONNX metadata)"
    )


def _add_detect(sub):
    p = sub.add_parser("detect", help="find faces and their 68 landmarks in images, folders, videos or a webcam")
    p.add_argument("inputs", nargs="*", help="image files, folders (recursive) or video files")
    p.add_argument("-o", "--out", default="runs/detect", help="folder for annotated images/videos and JSON")
    p.add_argument("--json", dest="json_out", default=None, help="one JSONL (or .csv) file for all inputs")
    p.add_argument("--model", default=None, help="shipped model name or .pt path")
    _add_detector_options(p)
    p.add_argument("--backend", default=LANDMARKER["backend"], choices=["auto", "onnxruntime", "torch"])
    p.add_argument(
        "--threads", type=positive_int, default=LANDMARKER["threads"], help="CPU threads of the landmark model"
    )
    p.add_argument(
        "--min-score", type=finite_float, default=LANDMARKER["min_score"], help="drop detections scored below this"
    )
    p.add_argument(
        "--min-presence", type=probability, default=LANDMARKER["min_presence"],
        help="drop faces whose presence (the landmark model's probability that the crop holds a usable face; "
        f"models with trust heads) is below this (default {LANDMARKER['min_presence']}: keep every face; 0.98 drops "
        "false faces on face-free photos but also heavily blurred real faces)",
    )
    p.add_argument(
        "--max-faces",
        type=positive_int,
        default=LANDMARKER["max_faces"],
        help="at most this many faces per image or frame (best first)",
    )
    p.add_argument("--no-pose", dest="pose", action="store_false", help="no head pose in the outputs")
    p.add_argument("--camera", type=non_negative_int, default=None, help="webcam index, e.g. 0")
    p.add_argument("--max-frames", type=positive_int, default=None, help="stop a video or camera after N frames")
    p.add_argument("--gif", action="store_true", help="also write an animated GIF for videos")
    p.add_argument("--no-smooth", action="store_true", help="video: no temporal smoothing")
    p.add_argument(
        "--redetect-every",
        type=positive_int,
        default=VIDEO["redetect_every"],
        help="video: run the detector every N frames",
    )
    p.add_argument("--no-lines", action="store_true", help="draw points only")
    p.add_argument("--no-boxes", action="store_true")
    p.add_argument("--numbers", action="store_true", help="draw point indices")
    p.add_argument("--hide-hidden", action="store_true",
                   help="leave out points the model thinks covered (visibility < 0.5; drawn hollow by default)")
    p.add_argument("--grid", default=None, help="also write one picture tiling every annotated face")
    p.add_argument("--no-images", action="store_true", help="write JSON only")
    p.add_argument("--flip-test", action="store_true")
    p.set_defaults(func=_run_detect)


def _run_detect(args):
    from .detect import run_detect  # the verb's own heavy imports: see the top of this file

    return run_detect(args, landmarker_options(args))


def _add_batch(sub):
    p = sub.add_parser(
        "batch",
        help="landmark a whole dataset into one Parquet file, in this process or on a Ray cluster",
        description="SRC: a folder (recursive), a glob, a Parquet file with columns path and bytes, or an "
        "s3:// / gs:// URI of any of these. One row per image (path, n_faces, boxes, scores, points, pose, "
        "error); a bad image is a row with error set. A rerun resumes after what OUT already holds.",
    )
    p.add_argument("src", metavar="SRC", help="folder, glob, .parquet of image bytes, or s3:// / gs:// URI")
    p.add_argument("-o", "--out", required=True, help="output Parquet file (written atomically at the end)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process; ray: Ray Data actors (pip install -e '.[ray]')")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (host:port, ray://host:port or auto); default: RAY_ADDRESS, "
                   "else a cluster on this machine for the run")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="Ray actors, one model each (default: the cluster's CPUs)")
    p.add_argument("--model", default=None, help="shipped model name or .pt path")
    _add_detector_options(p)
    p.add_argument("--backend", default=LANDMARKER["backend"], choices=["auto", "onnxruntime", "torch"])
    p.add_argument(
        "--min-score", type=finite_float, default=LANDMARKER["min_score"], help="drop detections scored below this"
    )
    p.add_argument(
        "--min-presence", type=probability, default=LANDMARKER["min_presence"],
        help="drop faces whose presence (the landmark model's probability that the crop holds a usable face; "
        f"models with trust heads) is below this (default {LANDMARKER['min_presence']}: keep every face; 0.98 drops "
        "false faces on face-free photos but also heavily blurred real faces)",
    )
    p.add_argument("--max-faces", type=positive_int, default=LANDMARKER["max_faces"],
                   help="at most this many faces per image (best first)")
    p.add_argument("--no-pose", dest="pose", action="store_false", help="no head pose in the rows")
    p.add_argument("--flip-test", action="store_true")
    p.set_defaults(func=_run_batch)


def _run_batch(args):
    from .batch_run import run_batch  # the verb's own heavy imports: see the top of this file

    chosen = landmarker_options(args)
    fields = ("model", "detector", "detector_max_side", "detector_threshold", "upright", "backend", "min_score",
              "min_presence", "max_faces", "pose", "flip_test")  # what changes a row (threads, video: the workers')
    run_batch(args.src, args.out, args.engine, args.address, args.workers, {f: getattr(chosen, f) for f in fields})


def landmarker_options(args) -> LandmarkerOptions:
    """The one map from a verb's options (detect, batch, evaluate) to LandmarkerOptions; a verb without an
    option keeps the dataclass's default. LandmarkerOptions checks the values (config.Rule)."""
    value = {k: getattr(args, k, LANDMARKER[k]) for k in ("model", "detector", "backend", "flip_test", "upright",
                                                           "threads", "min_score", "min_presence", "max_faces",
                                                           "pose")}
    det_max_side = getattr(args, "det_max_side", -1)
    video = VideoOptions(redetect_every=getattr(args, "redetect_every", VIDEO["redetect_every"]),
                         smooth=not getattr(args, "no_smooth", False))
    return LandmarkerOptions(**value, detector_max_side=None if det_max_side == 0 else det_max_side,
                             detector_threshold=getattr(args, "det_threshold", None), video=video)


def main(argv: list[str] | None = None) -> int:
    quiet_third_party()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_detector_threshold(getattr(args, "detector", None), getattr(args, "det_threshold", None),
                                 "argument --det-threshold")
    except UsageError as e:
        parser.error(str(e))
    try:
        code = args.func(args)
    except UsageError as e:  # an option's value, found bad before any work: argparse's exit code
        print(f"facepoints: error: {e}", file=sys.stderr)
        return 2
    except FacepointsError as e:
        print(f"facepoints: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # the system refused a file operation (disk, permissions): one line; bugs still raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"facepoints: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("facepoints: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())

"""What the verbs share: option types checked by config.Rule (the rules LandmarkerOptions applies too), the
detector options, and the one map from a verb's options to LandmarkerOptions."""

from __future__ import annotations

import argparse
from dataclasses import fields

from ..config import (
    COARSE_SIDE,
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
)

# the CLI's defaults are the dataclasses' defaults: one place for each
TRAIN = {f.name: f.default for f in fields(TrainConfig)}
AUGMENT = {f.name: f.default for f in fields(AugmentConfig)}
LANDMARKER = {f.name: f.default for f in fields(LandmarkerOptions)}
VIDEO = {f.name: f.default for f in fields(VideoOptions)}


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
coarse_side = _number(COARSE_SIDE)


def add_detector_options(p, help_prefix: str = "") -> None:
    p.add_argument(
        "--detector",
        default=LANDMARKER["detector"],
        choices=DETECTOR_NAMES,
        help=help_prefix + "face detector: retinaface (CNN, default), dlib (HOG) or haar",
    )
    p.add_argument(
        "--det-threshold",
        type=finite_float,
        default=None,
        help="the detector's own score threshold (retinaface: 0-1, default 0.5; dlib: SVM score, default 0)",
    )
    p.add_argument(
        "--det-max-side",
        type=max_side,
        default=-1,
        help="shrink images to this long side for detection only (default 1280; landmarks still come from "
        "the full image). 0 = never shrink: the detector then needs ~50 bytes of memory a pixel, about "
        "5 GB and a minute for a 9400 x 9400 photo",
    )
    p.add_argument(
        "--det-coarse-side",
        type=coarse_side,
        default=-1,
        help="retinaface: look first at the image at half size (but not below this long side), and at full "
        "resolution only when that finds no face or a small one (default 320; 0 = always one full-resolution "
        "pass, which also finds faces under ~40 px sitting beside big ones)",
    )
    p.add_argument(
        "--no-upright",
        dest="upright",
        action="store_false",
        help="do not turn faces upright by the detector's keypoints before the landmark model (retinaface)",
    )


def landmarker_options(args) -> LandmarkerOptions:
    """The one map from a verb's options (detect, batch, evaluate) to LandmarkerOptions; a verb without an
    option keeps the dataclass's default. LandmarkerOptions checks the values (config.Rule)."""
    value = {
        k: getattr(args, k, LANDMARKER[k])
        for k in (
            "model",
            "detector",
            "backend",
            "flip_test",
            "upright",
            "threads",
            "min_score",
            "min_presence",
            "max_faces",
            "pose",
        )
    }
    det_max_side = getattr(args, "det_max_side", -1)
    video = VideoOptions(
        redetect_every=getattr(args, "redetect_every", VIDEO["redetect_every"]),
        smooth=not getattr(args, "no_smooth", False),
    )
    return LandmarkerOptions(
        **value,
        detector_max_side=None if det_max_side == 0 else det_max_side,
        detector_coarse_side=getattr(args, "det_coarse_side", -1),
        detector_threshold=getattr(args, "det_threshold", None),
        video=video,
    )


def add_face_options(p: argparse.ArgumentParser, per: str) -> None:
    """Which faces a verb keeps and what it computes for them: the same flags for detect and batch."""
    p.add_argument("--model", default=None, help="shipped model name or .pt path")
    add_detector_options(p)
    p.add_argument("--backend", default=LANDMARKER["backend"], choices=["auto", "onnxruntime", "torch"])
    p.add_argument(
        "--min-score", type=finite_float, default=LANDMARKER["min_score"], help="drop detections scored below this"
    )
    p.add_argument(
        "--min-presence",
        type=probability,
        default=LANDMARKER["min_presence"],
        help="drop faces whose presence (the landmark model's probability that the crop holds a usable face; "
        f"models with trust heads) is below this (default {LANDMARKER['min_presence']}: keep every face; 0.98 drops "
        "false faces on face-free photos but also heavily blurred real faces)",
    )
    p.add_argument(
        "--max-faces",
        type=positive_int,
        default=LANDMARKER["max_faces"],
        help=f"at most this many faces per {per} (best first)",
    )
    p.add_argument("--no-pose", dest="pose", action="store_false", help="no head pose in the outputs")

"""Settings of a training run, as typed dataclasses.

Standard library only, so the CLI can take its defaults from here without importing
torch or OpenCV (`facepoints --help` stays instant). A run saves its TrainConfig in
config.json and in every checkpoint; `config_from_dict` reads it back, defaults filled in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:  # annotations only: this module stays standard-library-only
    from .detectors import Detector

# px of the cached source crops (dataset.build_cache), as the shipped fast was trained; docs/experiments.md
# (runs `native`, `native_s1`) compares 352
CACHE_SIDE = 256
DETECTOR_NAMES = ("retinaface", "dlib", "haar")  # detectors.DETECTORS' keys, here so `--help` does not import OpenCV
DEFAULT_DETECTOR = "retinaface"
# models.MODELS' keys, here so `--help` does not import torch (tests/test_structure.py checks they agree)
ARCHITECTURES = ("xception", "pipnet_small", "pipnet_fast", "pipnet_fast_wide", "pipnet_fast_detail", "pipnet_accurate")


@dataclass(frozen=True)
class Rule:
    """What a numeric option accepts: the CLI's argument types and the options' `__post_init__` share these,
    so `--threads 0` and `LandmarkerOptions(threads=0)` are refused by the same rule, in the same words."""

    kind: type  # int or float
    ok: Callable[[float], bool]
    what: str

    def valid(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and not float(value).is_integer():
            return False
        return math.isfinite(value) and self.ok(value)

    def check(self, name: str, value: object, allow_none: bool = False) -> None:
        if value is None and allow_none:
            return
        if not self.valid(value):
            raise UsageError(f"{name}: {value!r} is not {self.what}")


POSITIVE_INT = Rule(int, lambda v: v >= 1, "a positive integer")
NON_NEGATIVE_INT = Rule(int, lambda v: v >= 0, "an integer >= 0")
POSITIVE_FLOAT = Rule(float, lambda v: v > 0, "a number > 0")
NON_NEGATIVE_FLOAT = Rule(float, lambda v: v >= 0, "a number >= 0")
FINITE_FLOAT = Rule(float, lambda v: True, "a finite number")
FRACTION = Rule(float, lambda v: 0 <= v < 1, "a fraction in [0, 1)")
PROBABILITY = Rule(float, lambda v: 0 <= v <= 1, "a probability in [0, 1]")
MARGIN = Rule(float, lambda v: 1 <= v <= 4, "a crop margin in [1, 4] (the crop must hold the whole face box)")
DEGREES = Rule(float, lambda v: 0 <= v <= 180, "an angle in [0, 180] degrees")
MAX_SIDE = Rule(int, lambda v: v == 0 or v >= 32, "0 (never shrink) or a side of at least 32 px")
COARSE_SIDE = Rule(int, lambda v: v == 0 or v >= 64, "0 (one full-resolution pass) or a side of at least 64 px")
RETINAFACE_SCORE = Rule(float, lambda v: 0 < v < 1, "a retinaface score in (0, 1)")
BACKENDS = ("auto", "onnxruntime", "torch")
# off by default, by measurement (BENCHMARKS.md, "min_presence on the stress sets" and "False faces per image"): the
# two false faces RetinaFace reports on the held-out face-free photos score presence between 0.5 and 0.8 and between
# 0.9 and 0.95, and every test/ face 0.98 or more, but heavily blurred real faces go as low as 0.03 (the blur stress
# set keeps 99.8% at 0.1, 98.7% at 0.8, 96.6% at 0.98), so no bar both drops the false faces and keeps 99.5% of every
# set; pass 0.98 where faces are sharp and false faces matter
DEFAULT_MIN_PRESENCE = 0.0
RECOMMENDED_MIN_PRESENCE = 0.98


def check_detector_threshold(detector: object, threshold: float | None, name: str = "detector_threshold") -> None:
    """The detector's own score bar: any finite number (dlib's SVM margin, haar's level weight); retinaface's is
    a probability strictly between 0 and 1."""
    if threshold is None:
        return
    rule = RETINAFACE_SCORE if detector == "retinaface" else FINITE_FLOAT
    rule.check(name, threshold)


@dataclass(frozen=True)
class AugmentConfig:
    rotation: float = 30.0  # max degrees either way
    flip: bool = True
    shift: float = 0.08  # max box-centre shift, fraction of the crop side
    shift_x: float | None = None  # max shift across; None = `shift` (detector boxes err more across than down)
    scale: float = 0.12  # crop side multiplied by exp(U(-scale, scale))
    brightness: float = 0.25
    contrast: float = 0.3
    gamma: float = 0.3
    saturation: float = 0.4
    hue: float = 0.05  # fraction of the hue circle
    blur: float = 0.0  # probability of a Gaussian blur
    blur_max: float = 2.0  # its sigma is uniform in [0.5, blur_max] crop px (a float: configs round-trip through JSON)
    occlusion: float = 0.0  # probability of a random grey rectangle

    @property
    def shift_across(self) -> float:
        return self.shift if self.shift_x is None else self.shift_x


@dataclass(frozen=True)
class TrainConfig:
    data: str
    out: str = "runs/train"
    arch: str = "xception"
    model_kwargs: dict = field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 32
    lr: float = 0.0008
    optimizer: str = "adam"  # adam (the seed) or adamw
    weight_decay: float = 0.0
    schedule: str = "constant"  # constant (the seed) or cosine
    warmup_epochs: float = 0.0
    annotation_offsets: bool = True  # mirror about what the points mark, where the data says (Sample.offset)
    ema: float = 0.0  # per-step decay of an exponential moving average of the weights; 0 = off
    input_size: int = 128
    margin: float = 1.25  # crop side = margin x the longer side of the face box
    cache_side: int = CACHE_SIDE  # px of the cached source crops the training crops are sampled from
    val_fraction: float = 0.1  # held out for validation and selection; 0 = train on every face, keep the last epoch
    seed: int = 0
    workers: int = 1
    precision: str = "auto"  # auto: bf16 autocast where the CPU/GPU supports it, else fp32
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    progress_faces: int = 8
    teacher: str | None = None  # a trained model (shipped name or .pt) whose points are blended into the targets
    teacher_weight: float = 0.5  # how far the targets move from the labels to the teacher's points (distill.py)


def config_from_dict(d: dict) -> TrainConfig:
    """A saved config, with defaults for the options added since the run was made (e.g. cache_side)."""
    d = dict(d)
    d.setdefault("annotation_offsets", False)  # runs saved before the option mirrored the points as written
    d["augment"] = AugmentConfig(**d.get("augment", {}))
    return TrainConfig(**d)


@dataclass(frozen=True)
class VideoOptions:
    """How `Landmarker.detect_for_video` follows faces through a stream (video.FaceTracker)."""

    redetect_every: int = 15  # frames between detector runs; in between each face's crop comes from its last points
    smooth: bool = True  # One Euro filter per face (smoothing.py)
    min_overlap: float = 0.3  # IoU between a track's old and new box below which it is lost (and the detector runs)
    # with trust heads, a tracked face whose presence falls below this (or below the Landmarker's min_presence, if
    # higher) is lost and the detector runs, as MediaPipe's face landmarker does; the box overlap stays as a second test
    lost_presence: float = 0.5

    def __post_init__(self) -> None:
        POSITIVE_INT.check("redetect_every", self.redetect_every)
        PROBABILITY.check("min_overlap", self.min_overlap)
        PROBABILITY.check("lost_presence", self.lost_presence)


@dataclass(frozen=True)
class LandmarkerOptions:
    """Settings of a Landmarker (landmarker.py); `facepoints detect` takes its flags' defaults from here."""

    model: str | None = None  # shipped model name ("fast", "xception") or a .pt path; None = default
    detector: str | Detector = DEFAULT_DETECTOR  # retinaface (CNN), dlib (HOG) or haar; or a Detector object
    detector_threshold: float | None = None  # the detector's own score threshold; None = its default
    detector_max_side: int | None = -1  # shrink images to this long side for detection only; None = never, -1 = default
    # retinaface: look first at the image at half size (at least this long side), at full resolution only when small
    # faces may be there (detectors.RetinaFaceDetector._detect); 0 or None = one full pass, -1 = the detector's default
    detector_coarse_side: int | None = -1
    upright: bool = True  # crop each face upright when the detector gives keypoints (retinaface): robust to head roll
    backend: str = "auto"  # auto (ONNX Runtime when installed), onnxruntime or torch
    threads: int | None = None
    flip_test: bool = False  # average with the mirrored crop: a little more accurate, half the speed
    min_score: float = -1e9  # drop detections scored below this
    # drop faces whose presence (the landmark model's own probability that the crop holds a usable face; models with
    # trust heads) is below this; 0 = keep every face (the default: see DEFAULT_MIN_PRESENCE)
    min_presence: float = DEFAULT_MIN_PRESENCE
    max_faces: int | None = None
    pose: bool = True  # head pose (yaw, pitch, roll) from the points
    video: VideoOptions = field(default_factory=VideoOptions)  # detect_for_video: redetection, smoothing

    def __post_init__(self) -> None:
        """The CLI's rules (config.Rule), so a bad value fails here, by name, not frames later."""
        if isinstance(self.detector, str) and self.detector not in DETECTOR_NAMES:
            raise UsageError(f"detector: unknown detector {self.detector!r}; choose from {', '.join(DETECTOR_NAMES)}")
        check_detector_threshold(self.detector, self.detector_threshold)
        if self.detector_max_side != -1:
            MAX_SIDE.check("detector_max_side", self.detector_max_side, allow_none=True)
        if self.detector_coarse_side not in (-1, 0, None):
            COARSE_SIDE.check("detector_coarse_side", self.detector_coarse_side)
            if self.detector != "retinaface":
                raise UsageError("detector_coarse_side: only the retinaface detector has a coarse pass")
        if self.backend not in BACKENDS:
            raise UsageError(f"backend: {self.backend!r} is not one of {', '.join(BACKENDS)}")
        POSITIVE_INT.check("threads", self.threads, allow_none=True)
        POSITIVE_INT.check("max_faces", self.max_faces, allow_none=True)
        FINITE_FLOAT.check("min_score", self.min_score)
        PROBABILITY.check("min_presence", self.min_presence)
        if not isinstance(self.video, VideoOptions):
            raise UsageError(f"video: expected VideoOptions, got {type(self.video).__name__}")

"""The public API: `Landmarker.from_pretrained().detect(image)` -> LandmarkResult.

Image in (path, numpy array or PIL image), faces found by a detector (or boxes given),
all faces of an image through the landmark model in one batch, head pose from the points.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .data import load_image, to_rgb
from .detectors import DEFAULT_DETECTOR, DETECTORS, Detections, Detector, GivenBoxes, create_detector, roll_degrees
from .errors import FacepointsError
from .predictor import LandmarkPredictor
from .results import Face, LandmarkResult


@dataclass(frozen=True)
class LandmarkerOptions:
    model: str | None = None  # shipped model name ("fast", "xception") or a .pt path; None = default
    detector: str | Detector = DEFAULT_DETECTOR  # retinaface (CNN), dlib (HOG) or haar; or a Detector object
    detector_threshold: float | None = None  # the detector's own score threshold; None = its default
    detector_max_side: int | None = -1  # shrink images to this long side for detection only; None = never, -1 = default
    upright: bool = True  # crop each face upright when the detector gives keypoints (retinaface): robust to head roll
    backend: str = "auto"  # auto (ONNX Runtime when installed), onnxruntime or torch
    threads: int | None = None
    flip_test: bool = False  # average with the mirrored crop: a little more accurate, half the speed
    min_score: float = -1e9  # drop detections scored below this
    max_faces: int | None = None
    pose: bool = True


def as_rgb(image) -> tuple[np.ndarray, str | None]:
    """Path, numpy array (gray/RGB/RGBA, any dtype) or PIL image -> uint8 RGB, and the path if any."""
    if isinstance(image, (str, Path)):
        return load_image(image), str(image)
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL
        return to_rgb(np.asarray(image.convert("RGB"))), None
    if isinstance(image, np.ndarray):
        return to_rgb(image), None
    raise FacepointsError(f"expected an image path, numpy array or PIL image, got {type(image).__name__}")


class Landmarker:
    """Detector + landmark model. One instance may be shared by threads: ONNX Runtime sessions are
    thread-safe and detectors that are not (dlib, haar) are serialised by a lock."""

    def __init__(self, options: LandmarkerOptions | None = None):
        self.options = options or LandmarkerOptions()
        o = self.options
        if not isinstance(o.detector, Detector) and o.detector not in DETECTORS:
            raise FacepointsError(f"unknown detector {o.detector!r}; choose from {', '.join(DETECTORS)}")
        self.predictor = LandmarkPredictor(o.model, backend=o.backend, threads=o.threads, flip_test=o.flip_test)
        self._detector = o.detector if isinstance(o.detector, Detector) else None

    @classmethod
    def from_pretrained(cls, model: str | None = None, **options) -> "Landmarker":
        return cls(LandmarkerOptions(model=model, **options))

    @property
    def detector(self) -> Detector:
        if self._detector is None:  # built on first use: `boxes=` callers never load one
            kwargs = {"max_side": self.options.detector_max_side}
            if self.options.detector_threshold is not None:
                kwargs["threshold"] = self.options.detector_threshold
            self._detector = create_detector(self.options.detector, **kwargs)
        return self._detector

    def find_faces(self, rgb: np.ndarray) -> Detections:
        """The detector's faces that pass `min_score`, best first, at most `max_faces` (images and video alike)."""
        det = self.detector.detect(rgb)
        det = det.take(det.scores >= self.options.min_score)
        return det.take(slice(0, self.options.max_faces))

    def face_angles(self, det: Detections) -> np.ndarray | None:
        """Each face's roll from the detector's keypoints, when upright crops are on and there are keypoints."""
        return roll_degrees(det.keypoints) if self.options.upright and det.keypoints is not None else None

    def detect(self, image, boxes=None) -> LandmarkResult:
        """Find faces (or use `boxes`, (N, 4) x1 y1 x2 y2 tight face boxes) and put 68 points on each."""
        rgb, source = as_rgb(image)
        if boxes is not None:
            given = GivenBoxes(boxes)
            det, lm_boxes, angles = given.detect(rgb), given.boxes, None
        else:
            det = self.find_faces(rgb)
            angles = self.face_angles(det)
            lm_boxes = self.detector.landmark_boxes(det.boxes, angles)
        points = self.predictor.predict(rgb, lm_boxes, angles)
        return LandmarkResult(build_faces(det.boxes, det.scores, points, rgb.shape[1::-1], self.options.pose), rgb, source)

    def landmarks(self, rgb: np.ndarray, landmark_boxes: np.ndarray, angles=None) -> np.ndarray:
        """Points for faces whose tight boxes are already known (tracking)."""
        return self.predictor.predict(rgb, landmark_boxes, angles)

    def with_options(self, **changes) -> "Landmarker":
        return Landmarker(replace(self.options, **changes))


def build_faces(boxes, scores, points, image_size: tuple[int, int], with_pose: bool) -> list[Face]:
    """Face records; pose from the points (None where no rigid fit exists)."""
    from .pose import safe_pose

    faces = []
    for b, s, p in zip(boxes, scores, points):
        pose = safe_pose(p, image_size) if with_pose else None
        faces.append(Face(np.asarray(b, np.float32), float(s), np.asarray(p, np.float32), pose.to_dict() if pose else None))
    return faces

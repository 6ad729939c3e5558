"""The public API: `Landmarker.from_pretrained().detect(image)` -> LandmarkResult.

Image in (path, numpy array or PIL image), faces found by a detector (or boxes given),
all faces of an image through the landmark model in one batch, head pose from the points.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .data import load_image, to_rgb
from .detectors import GivenBoxes, create_detector
from .errors import FacepointsError
from .predictor import LandmarkPredictor
from .results import Face, LandmarkResult


@dataclass(frozen=True)
class LandmarkerOptions:
    model: str | None = None  # shipped model name ("fast", "xception") or a .pt path; None = default
    detector: str = "dlib"  # dlib (HOG) or haar
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
    def __init__(self, options: LandmarkerOptions | None = None):
        self.options = options or LandmarkerOptions()
        o = self.options
        self.predictor = LandmarkPredictor(o.model, backend=o.backend, threads=o.threads, flip_test=o.flip_test)
        self._detector = None

    @classmethod
    def from_pretrained(cls, model: str | None = None, **options) -> "Landmarker":
        return cls(LandmarkerOptions(model=model, **options))

    @property
    def detector(self):
        if self._detector is None:
            self._detector = create_detector(self.options.detector)
        return self._detector

    def detect(self, image, boxes=None) -> LandmarkResult:
        """Find faces (or use `boxes`, (N, 4) x1 y1 x2 y2 tight face boxes) and put 68 points on each."""
        rgb, source = as_rgb(image)
        detector = GivenBoxes(boxes) if boxes is not None else self.detector
        det = detector.detect(rgb)
        keep = det.scores >= self.options.min_score
        det_boxes, scores = det.boxes[keep], det.scores[keep]
        if self.options.max_faces is not None:
            det_boxes, scores = det_boxes[: self.options.max_faces], scores[: self.options.max_faces]
        points = self.predictor.predict(rgb, detector.landmark_boxes(det_boxes))
        return LandmarkResult(build_faces(det_boxes, scores, points, rgb.shape[1::-1], self.options.pose), rgb, source)

    def landmarks(self, rgb: np.ndarray, landmark_boxes: np.ndarray) -> np.ndarray:
        """Points for faces whose tight boxes are already known (tracking)."""
        return self.predictor.predict(rgb, landmark_boxes)

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

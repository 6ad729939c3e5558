"""Face detectors behind one small interface: RGB image in, boxes with scores out.

Each detector draws its box in its own convention (dlib's HOG box is tight on the inner
face, Haar's is larger and sits higher). The landmark model wants the tight box of the
68 points, so every detector carries a box map measured on 300-W train by
benchmarks/fit_detector_boxes.py (stored in detector_boxes.json): centre offsets and
side as fractions of the detector box's side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FacepointsError

BOX_MAPS_FILE = Path(__file__).parent / "detector_boxes.json"


@dataclass(frozen=True)
class BoxMap:
    """Detector box -> landmark box: centre shift (dx, dy) and side scale, all relative to the box side."""

    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0

    def apply(self, boxes: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        cx = (boxes[:, 0] + boxes[:, 2]) / 2 + self.dx * side
        cy = (boxes[:, 1] + boxes[:, 3]) / 2 + self.dy * side
        half = self.scale * side / 2
        return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)


def load_box_map(name: str) -> BoxMap:
    if BOX_MAPS_FILE.exists():
        maps = json.loads(BOX_MAPS_FILE.read_text())
        if name in maps:
            return BoxMap(**{k: maps[name][k] for k in ("dx", "dy", "scale")})
    return BoxMap()


@dataclass
class Detections:
    boxes: np.ndarray  # (N, 4) x1, y1, x2, y2 in the detector's own convention
    scores: np.ndarray  # (N,)


class Detector:
    """Base: subclasses implement `_detect`; `detect` returns boxes sorted by score."""

    name = "base"

    def __init__(self):
        self.box_map = load_box_map(self.name)

    def _detect(self, rgb: np.ndarray) -> Detections:
        raise NotImplementedError

    def detect(self, rgb: np.ndarray) -> Detections:
        d = self._detect(rgb)
        order = np.argsort(-d.scores, kind="stable")
        return Detections(d.boxes[order].reshape(-1, 4).astype(np.float32), d.scores[order].astype(np.float32))

    def landmark_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """Convert this detector's boxes to the landmark-box convention the models are trained on."""
        return self.box_map.apply(boxes)


class DlibHOGDetector(Detector):
    """dlib's HOG + linear SVM frontal face detector (ships inside the dlib-bin wheel)."""

    name = "dlib"

    def __init__(self, upsample: int = 1, threshold: float = 0.0):
        super().__init__()
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.upsample, self.threshold = upsample, threshold

    def _detect(self, rgb):
        rects, scores, _ = self._detector.run(np.ascontiguousarray(rgb), self.upsample, self.threshold)
        boxes = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], np.float64).reshape(-1, 4)
        return Detections(boxes, np.asarray(scores, np.float64))


class HaarDetector(Detector):
    """OpenCV's Viola-Jones Haar cascade (frontal faces), shipped in opencv-python-headless 4.x."""

    name = "haar"

    def __init__(self, min_size: int = 24):
        super().__init__()
        import cv2

        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise FacepointsError(f"{path}: OpenCV Haar cascade not found (opencv-python-headless 4.x ships it)")
        self.min_size = min_size

    def _detect(self, rgb):
        import cv2

        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        rects, _, weights = self._cascade.detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(self.min_size, self.min_size), outputRejectLevels=True
        )
        rects = np.asarray(rects, np.float64).reshape(-1, 4)
        boxes = np.column_stack([rects[:, 0], rects[:, 1], rects[:, 0] + rects[:, 2], rects[:, 1] + rects[:, 3]])
        return Detections(boxes, np.asarray(weights, np.float64).reshape(-1))


class GivenBoxes(Detector):
    """Boxes supplied by the caller, already in the landmark-box convention."""

    name = "boxes"

    def __init__(self, boxes):
        super().__init__()
        self.boxes = np.asarray(boxes, np.float64).reshape(-1, 4)

    def _detect(self, rgb):
        return Detections(self.boxes, np.ones(len(self.boxes)))

    def landmark_boxes(self, boxes):
        return np.asarray(boxes, np.float64).reshape(-1, 4)


DETECTORS = {"dlib": DlibHOGDetector, "haar": HaarDetector}


def create_detector(name: str, **kwargs) -> Detector:
    if name not in DETECTORS:
        raise FacepointsError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}")
    return DETECTORS[name](**kwargs)

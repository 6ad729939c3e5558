"""Face detectors behind one small interface: RGB image in, boxes with scores (and keypoints) out.

`retinaface` (the default) is a CNN run with ONNX Runtime from a file vendored in the package
(weights/DETECTORS.json, weights/THIRD_PARTY.md); `dlib` (HOG) and `haar` are the classic ones.

Each detector draws its box in its own convention (dlib's HOG box is tight on the inner
face, Haar's is larger and sits higher). The landmark model wants the tight box of the
68 points, so every detector carries a box map measured on 300-W train by
scripts/fit_detector_boxes.py (stored in detector_boxes.json): centre offsets and
side as fractions of the detector box's side.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .config import DEFAULT_DETECTOR  # noqa: F401  (re-exported: the default is decided in config.py)
from .crop import roll_degrees  # noqa: F401  (also re-exported: the geometry lives in crop.py)
from .errors import FacepointsError, require
from .model_files import sha256_file

BOX_MAPS_FILE = Path(__file__).parent / "detector_boxes.json"
DETECTOR_WEIGHTS = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class BoxMap:
    """Detector box -> landmark box: centre shift (dx, dy) and side scale, all relative to the box side."""

    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0

    def apply(self, boxes: np.ndarray, angles: np.ndarray | None = None) -> np.ndarray:
        """Landmark boxes; with `angles` (the face's roll, degrees), boxes in the face's upright frame.

        The centre shift points along the face's own axes, so it is turned with the face. The side is
        not: RetinaFace's box hardly grows with roll, unlike the bounding box of a turned square (the
        rolled sets of benchmarks/detectors.py show the result: NME within +8% of upright up to 60 degrees)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        dx, dy = np.full(len(boxes), self.dx), np.full(len(boxes), self.dy)
        if angles is not None:
            t = np.deg2rad(np.asarray(angles, np.float64).reshape(-1))
            dx, dy = self.dx * np.cos(t) - self.dy * np.sin(t), self.dx * np.sin(t) + self.dy * np.cos(t)
        cx = (boxes[:, 0] + boxes[:, 2]) / 2 + dx * side
        cy = (boxes[:, 1] + boxes[:, 3]) / 2 + dy * side
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
    # (N, 5, 2) pixel x, y of the eyes (image left, image right), nose tip and mouth corners (image left, right),
    # for detectors that give them (retinaface); None otherwise
    keypoints: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.boxes)

    def take(self, index) -> "Detections":
        return Detections(
            self.boxes[index], self.scores[index], None if self.keypoints is None else self.keypoints[index]
        )


def crop_boxes(detector: "Detector", det: "Detections", upright: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """The landmark model's boxes for a detector's faces, and each face's roll when it is cropped upright (with
    `upright` and a detector that gives keypoints; None otherwise): the one rule for images, video and evaluate."""
    angles = roll_degrees(det.keypoints) if upright and det.keypoints is not None else None
    return detector.landmark_boxes(det.boxes, angles), angles


class Detector:
    """Base: subclasses implement `_detect`; `detect` returns detections sorted by score.

    Detectors whose library state is not safe to share across threads (dlib, OpenCV's cascade)
    set `thread_safe = False` and are serialised by a lock, so one Landmarker may serve many threads."""

    name = "base"
    thread_safe = True
    default_max_side: int | None = None

    def __init__(self, max_side: int | None = -1):
        """max_side: images with a longer side are shrunk to it for detection only (None = never; -1 = the default)."""
        self.box_map = load_box_map(self.name)
        self.max_side = self.default_max_side if max_side == -1 else max_side
        if self.max_side is not None and self.max_side < 32:
            raise FacepointsError(f"detector max_side must be at least 32 px, got {self.max_side}")
        self._lock = threading.Lock()

    def _detect(self, rgb: np.ndarray) -> Detections:
        raise NotImplementedError

    def detect(self, rgb: np.ndarray) -> Detections:
        h, w = rgb.shape[:2]
        image = rgb
        if self.max_side and max(h, w) > self.max_side:
            f = self.max_side / max(h, w)
            image = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        if self.thread_safe:
            d = self._detect(image)
        else:
            with self._lock:
                d = self._detect(image)
        sx, sy = w / image.shape[1], h / image.shape[0]
        order = np.argsort(-d.scores, kind="stable")
        boxes = d.boxes[order].reshape(-1, 4) * [sx, sy, sx, sy]  # box edges scale as they are
        kps = None
        if d.keypoints is not None:  # pixel centres: shift to edges, scale, shift back
            kps = ((d.keypoints[order].reshape(-1, 5, 2) + 0.5) * [sx, sy] - 0.5).astype(np.float32)
        return Detections(boxes.astype(np.float32), d.scores[order].astype(np.float32), kps)

    def landmark_boxes(self, boxes: np.ndarray, angles: np.ndarray | None = None) -> np.ndarray:
        """Convert this detector's boxes to the landmark-box convention the models are trained on."""
        return self.box_map.apply(boxes, angles)


class RetinaFaceDetector(Detector):
    """RetinaFace (MobileNet-0.25) with ONNX Runtime: boxes, scores and 5 keypoints per face.

    `threshold` is the face score (0-1) a detection must pass; images whose long side exceeds
    `max_side` are shrunk for detection only (landmarks still come from the full image). Both
    defaults were chosen by benchmarks/detectors.py (BENCHMARKS.md, "Face detectors")."""

    name = "retinaface"
    default_max_side = 1280
    # on by default: at 640x480 ~2.5x the images/s end to end, recall unchanged on test/, the stress sets and
    # crowds of big and small faces (BENCHMARKS.md, "End to end at 640x480, one thread"); 0 on the CLI turns it off
    default_coarse_side: int | None = 320
    MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)  # the training images' channel means
    STEPS = (8, 16, 32)
    ANCHORS = ((16, 32), (64, 128), (256, 512))  # anchor sides in px per stride
    VARIANCE = (0.1, 0.2)

    # coarse-to-fine (see `_detect`): the coarse pass's long side, the smallest face side (coarse px) it may answer
    # for alone, and the score from which any candidate smaller than that sends the image to the full pass
    COARSE_BIG_SIDE = 40
    COARSE_WAKE_SCORE = 0.1  # 0.2 kept 93.0% of the crowd set's small faces, 0.1 95.0% (full passes 52 -> 54%)

    def __init__(
        self,
        threshold: float = 0.5,
        max_side: int | None = -1,
        nms: float = 0.4,
        threads: int | None = 1,
        coarse_side: int | None = -1,
    ):
        """coarse_side: first look at the image at half size, but not below this long side, and stop there when every
        face it sees is big (None or 0 = always the single full pass, -1 = `default_coarse_side`; see `_detect`)."""
        super().__init__(max_side)
        coarse_side = self.default_coarse_side if coarse_side == -1 else coarse_side
        if coarse_side is not None and coarse_side != 0 and coarse_side < 64:
            raise FacepointsError(f"retinaface coarse_side must be 0 (off) or at least 64 px, got {coarse_side}")
        self.coarse_side = coarse_side or None
        # ONNX Runtime is slow to load: only when this detector is built
        import onnxruntime as ort

        entry = json.loads((DETECTOR_WEIGHTS / "DETECTORS.json").read_text())["retinaface"]
        path = DETECTOR_WEIGHTS / entry["file"]
        if not path.exists() or sha256_file(path) != entry["sha256"]:
            raise FacepointsError(
                f"{path}: missing or checksum mismatch (file damaged or replaced); reinstall facepoints"
            )
        if not 0 < threshold < 1:
            raise FacepointsError(f"retinaface threshold must be between 0 and 1, got {threshold}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads or 0, 1
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.threshold, self.nms = threshold, nms
        # the passes the last image took, "full", "coarse" or "coarse+full": for benchmarks and tests (with threads
        # sharing the detector, some thread's last image)
        self.last_passes = ""
        self._priors: dict[tuple[int, int], np.ndarray] = {}

    def priors(self, h: int, w: int) -> np.ndarray:
        """(P, 4) anchor centre x, y and side x, y in px, in the network's output order."""
        if (h, w) not in self._priors:
            parts = []
            for step, sizes in zip(self.STEPS, self.ANCHORS):
                ny, nx = -(-h // step), -(-w // step)
                yy, xx = np.meshgrid((np.arange(ny) + 0.5) * step, (np.arange(nx) + 0.5) * step, indexing="ij")
                centres = np.repeat(np.stack([xx.ravel(), yy.ravel()], 1), len(sizes), axis=0)
                sides = np.tile(np.repeat(np.asarray(sizes, np.float64)[:, None], 2, axis=1), (nx * ny, 1))
                parts.append(np.hstack([centres, sides]))
            self._priors[(h, w)] = np.concatenate(parts).astype(np.float32)
        return self._priors[(h, w)]

    def _detect(self, rgb):
        """One full-resolution pass, or (with `coarse_side`) coarse to fine: the network first sees the image at
        half size (never below `coarse_side` px on its long side), at about a quarter of the cost. Its faces are
        the answer when it found some and every candidate it saw (down to COARSE_WAKE_SCORE) is at least
        COARSE_BIG_SIDE coarse px: faces that size are found as well at either scale. Otherwise (no face, or a
        small one: maybe smaller faces that only full resolution shows) the full pass runs and its faces are the
        answer. What the coarse pass can miss: faces below ~COARSE_BIG_SIDE / 2 coarse px (~40 px at full size)
        beside big ones (a crowd behind a close-up); half size, not a fixed small side, keeps that bound the same
        on big images. benchmarks/end_to_end.py measures recall on test/, the stress sets and such crowds."""
        h, w = rgb.shape[:2]
        if self.coarse_side and max(h, w) > 1.5 * self.coarse_side:
            f = max(0.5, self.coarse_side / max(h, w))
            small = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
            boxes, scores, kps = self._network(small, min(self.threshold, self.COARSE_WAKE_SCORE))
            side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
            if (scores > self.threshold).any() and (side >= self.COARSE_BIG_SIDE).all():
                keep = scores > self.threshold
                sx, sy = w / small.shape[1], h / small.shape[0]
                self.last_passes = "coarse"
                return self._answer(boxes[keep] * [sx, sy, sx, sy], scores[keep], kps[keep] * [sx, sy])
            self.last_passes = "coarse+full"
        else:
            self.last_passes = "full"
        return self._answer(*self._network(rgb, self.threshold))

    @staticmethod
    def _answer(boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray) -> Detections:
        # network coordinates run along pixel edges; keypoints go to the pixel-centre convention of crop.py
        return Detections(boxes.astype(np.float64), scores.astype(np.float64), kps.astype(np.float64) - 0.5)

    def _network(self, rgb: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The network on `rgb`: boxes (N, 4), scores (N,) and keypoints (N, 5, 2) of the faces scored above
        `threshold` after non-maximum suppression, in the network's pixel-edge coordinates of `rgb`."""
        x = np.empty((1, 3, *rgb.shape[:2]), np.float32)  # BGR planes minus the means; 4x faster than a transpose
        for c, plane in enumerate(cv2.split(rgb)[::-1]):
            np.subtract(plane, self.MEAN_BGR[c], out=x[0, c], dtype=np.float32)
        loc, conf, kps = (o[0] for o in self._session.run(None, {"input": x}))
        keep = np.flatnonzero(conf[:, 1] > threshold)
        p, loc, scores, kps = self.priors(*rgb.shape[:2])[keep], loc[keep], conf[keep, 1], kps[keep].reshape(-1, 5, 2)
        v0, v1 = self.VARIANCE
        centre = p[:, :2] + loc[:, :2] * v0 * p[:, 2:]
        size = p[:, 2:] * np.exp(loc[:, 2:] * v1)
        boxes = np.hstack([centre - size / 2, centre + size / 2])
        kps = p[:, None, :2] + kps * v0 * p[:, None, 2:]
        if len(boxes):
            xywh = np.hstack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])
            nms_keep = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), threshold, self.nms), int)
            nms_keep = nms_keep.reshape(-1)
            boxes, scores, kps = boxes[nms_keep], scores[nms_keep], kps[nms_keep]
        return boxes, scores, kps


class DlibHOGDetector(Detector):
    """dlib's HOG + linear SVM frontal face detector (ships inside the dlib-bin wheel)."""

    name = "dlib"
    thread_safe = False
    default_max_side = 1280  # a 9400 px photo at full size took 4.5 GB and a minute; faces >= ~40 px of 1280 stay

    def __init__(self, upsample: int = 1, threshold: float = 0.0, max_side: int | None = -1):
        super().__init__(max_side)
        require("dlib", "--detector dlib", "dlib")
        import dlib  # slow to load, and only this detector needs it (an extra)

        self._detector = dlib.get_frontal_face_detector()
        self.upsample, self.threshold = upsample, threshold

    def _detect(self, rgb):
        rects, scores, _ = self._detector.run(np.ascontiguousarray(rgb), self.upsample, self.threshold)
        boxes = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], np.float64).reshape(-1, 4)
        return Detections(boxes, np.asarray(scores, np.float64))


class HaarDetector(Detector):
    """OpenCV's Viola-Jones Haar cascade (frontal faces), shipped in opencv-python-headless 4.x."""

    name = "haar"
    thread_safe = False
    default_max_side = 1280  # as dlib: 5.1 GB and a minute on a 9400 px photo at full size

    def __init__(self, min_size: int = 24, max_side: int | None = -1, threshold: float | None = None):
        """threshold: drop detections whose cascade level weight is below it (None keeps every detection
        that passes the cascade's own neighbour vote)."""
        super().__init__(max_side)
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise FacepointsError(f"{path}: OpenCV Haar cascade not found (opencv-python-headless 4.x ships it)")
        self.min_size, self.threshold = min_size, threshold

    def _detect(self, rgb):
        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        rects, _, weights = self._cascade.detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(self.min_size, self.min_size), outputRejectLevels=True
        )
        rects = np.asarray(rects, np.float64).reshape(-1, 4)
        boxes = np.column_stack([rects[:, 0], rects[:, 1], rects[:, 0] + rects[:, 2], rects[:, 1] + rects[:, 3]])
        scores = np.asarray(weights, np.float64).reshape(-1)
        if self.threshold is not None:
            keep = scores >= self.threshold
            boxes, scores = boxes[keep], scores[keep]
        return Detections(boxes, scores)


def check_boxes(boxes) -> np.ndarray:
    """A caller's boxes as (N, 4) float64 x1 y1 x2 y2; a FacepointsError naming what is wrong otherwise
    (a raw numpy error, or silently NaN points, is what a bad box gave before)."""
    try:
        b = np.asarray(boxes, np.float64)
    except (TypeError, ValueError):
        raise FacepointsError("boxes: expected numbers, (N, 4) x1 y1 x2 y2") from None
    if b.size == 0:
        return b.reshape(0, 4)
    if b.ndim == 1 and b.shape == (4,):
        b = b[None]
    if b.ndim != 2 or b.shape[1] != 4:
        raise FacepointsError(f"boxes: expected shape (N, 4) x1 y1 x2 y2, got {b.shape}")
    if not np.isfinite(b).all():
        raise FacepointsError(
            f"boxes: box {int(np.flatnonzero(~np.isfinite(b).all(1))[0])} holds NaN or infinite values"
        )
    bad = np.flatnonzero((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]))
    if len(bad):
        raise FacepointsError(
            f"boxes: box {int(bad[0])} {b[bad[0]].tolist()} is empty or inverted (need x2 > x1 and y2 > y1)"
        )
    return b


class GivenBoxes(Detector):
    """Boxes supplied by the caller, already in the landmark-box convention."""

    name = "boxes"

    def __init__(self, boxes):
        super().__init__(None)
        self.boxes = check_boxes(boxes)

    def _detect(self, rgb):
        return Detections(self.boxes, np.ones(len(self.boxes)))

    def landmark_boxes(self, boxes, angles=None):
        return np.asarray(boxes, np.float64).reshape(-1, 4)


DETECTORS = {"retinaface": RetinaFaceDetector, "dlib": DlibHOGDetector, "haar": HaarDetector}


def create_detector(name: str, **kwargs) -> Detector:
    if name not in DETECTORS:
        raise FacepointsError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}")
    return DETECTORS[name](**kwargs)

"""The public API: `Landmarker.from_pretrained().detect(image)` -> LandmarkResult.

Image in (path, numpy array or PIL image), faces found by a detector (or boxes given),
all faces of an image through the landmark model in one batch, head pose from the points.
Video is a mode of the same object: `detect_for_video(frame, timestamp_ms)` tracks and smooths.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image

from .config import LandmarkerOptions, VideoOptions
from .detectors import DETECTORS, Detections, Detector, GivenBoxes, create_detector, crop_boxes
from .errors import FacepointsError, UsageError
from .images import load_image, to_rgb
from .predictor import LandmarkPredictor, Landmarks
from .results import LandmarkResult, build_faces
from .video import FaceTracker

# what `detect` and `detect_for_video` take: a path, a PIL image or an RGB array
ImageInput = str | Path | np.ndarray | Image.Image

__all__ = ["Landmarker", "LandmarkerOptions", "VideoOptions", "as_rgb"]


def as_rgb(image: ImageInput) -> tuple[np.ndarray, str | None]:
    """Path, numpy array (gray/RGB/RGBA, any dtype) or PIL image -> uint8 RGB, and the path if any.

    Arrays are taken as RGB. OpenCV's `cv2.imread` and video frames are BGR: pass
    `cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)`, or the detector sees swapped colours and points move by
    a few pixels. 16-bit arrays must span 0-65535 (8-bit values in a uint16 array are refused)."""
    if isinstance(image, (str, Path)):
        return load_image(image), str(image)
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL
        return to_rgb(np.asarray(image.convert("RGB"))), None
    if isinstance(image, np.ndarray):
        return to_rgb(image), None
    raise FacepointsError(f"expected an image path, numpy array or PIL image, got {type(image).__name__}")


class Landmarker:
    """Detector + landmark model. One instance may be shared by threads for `detect`: ONNX Runtime
    sessions are thread-safe and detectors that are not (dlib, haar) are serialised by a lock.
    `detect_for_video` keeps the state of one stream: one instance per stream."""

    def __init__(self, options: LandmarkerOptions | None = None):
        self.options = options or LandmarkerOptions()
        o = self.options
        if not isinstance(o.detector, Detector) and o.detector not in DETECTORS:
            raise FacepointsError(f"unknown detector {o.detector!r}; choose from {', '.join(DETECTORS)}")
        self.predictor = LandmarkPredictor(o.model, backend=o.backend, threads=o.threads, flip_test=o.flip_test)
        self._detector = o.detector if isinstance(o.detector, Detector) else None
        self._tracker: FaceTracker | None = None
        self._last_timestamp_ms: float | None = None

    @classmethod
    def from_pretrained(cls, model: str | None = None, **options: Any) -> "Landmarker":
        return cls(LandmarkerOptions(model=model, **options))

    @property
    def detector(self) -> Detector:
        if self._detector is None:  # built on first use: `boxes=` callers never load one
            kwargs: dict[str, float | int | None] = {"max_side": self.options.detector_max_side}
            if self.options.detector_coarse_side != -1 and self.options.detector == "retinaface":
                kwargs["coarse_side"] = self.options.detector_coarse_side or 0
            if self.options.detector_threshold is not None:
                kwargs["threshold"] = self.options.detector_threshold
            assert isinstance(self.options.detector, str)  # a Detector object was taken in __init__
            self._detector = create_detector(self.options.detector, **kwargs)
        return self._detector

    def _candidates(self, rgb: np.ndarray) -> Detections:
        """The detector's faces that pass `min_score`, best first."""
        det = self.detector.detect(rgb)
        return det.take(det.scores >= self.options.min_score)

    def find_faces(self, rgb: np.ndarray) -> Detections:
        """The detector's faces that pass `min_score`, best first, at most `max_faces` (images and video alike)."""
        return self._candidates(rgb).take(slice(0, self.options.max_faces))

    def faces_with_landmarks(self, rgb: np.ndarray) -> tuple[Detections, Landmarks]:
        """The faces to report and their landmarks: `min_score`, then `min_presence`, then `max_faces`, so that a
        false face the presence bar drops never takes the place of a real one under `max_faces`."""
        det = self._candidates(rgb)
        if self.options.min_presence <= 0:  # no presence bar: landmark only the faces that will be kept
            det = det.take(slice(0, self.options.max_faces))
        found = self.landmarks_and_trust_for(rgb, det)
        keep = np.flatnonzero(self.present(found))[: self.options.max_faces]
        return det.take(keep), found.take(keep)

    def landmarks_for(self, rgb: np.ndarray, det: Detections) -> np.ndarray:
        """(N, 68, 2) points of the detector's faces `det`: each cropped from its landmark box, upright when the
        options say so and the detector gives keypoints. The one path from detections to points, for images,
        video (FaceTracker), evaluate and batch."""
        return self.landmarks_and_trust_for(rgb, det).points

    def landmarks_and_trust_for(self, rgb: np.ndarray, det: Detections) -> Landmarks:
        """`landmarks_for`'s points with presence, visibility and uncertainty (image px) where the model has them."""
        boxes, angles = crop_boxes(self.detector, det, self.options.upright)
        return self.predictor.predict_landmarks(rgb, boxes, angles)

    def present(self, found: Landmarks) -> np.ndarray:
        """Which faces pass `min_presence` (all of them for a model without trust heads)."""
        if found.presence is None:
            return np.ones(len(found.points), bool)
        return found.presence >= self.options.min_presence

    def detect(self, image: ImageInput, boxes: ArrayLike | None = None) -> LandmarkResult:
        """Find faces (or use `boxes`, (N, 4) x1 y1 x2 y2 tight face boxes) and put 68 points on each. Faces whose
        presence is below `options.min_presence` are dropped (models with trust heads).
        `image`: a path, a PIL image or an RGB numpy array (not OpenCV's BGR: see `as_rgb`)."""
        rgb, source = as_rgb(image)
        if boxes is not None:
            given = GivenBoxes(boxes)
            det = given.detect(rgb)
            found = self.predictor.predict_landmarks(rgb, given.boxes)
            keep = np.flatnonzero(self.present(found))
            det, found = det.take(keep), found.take(keep)
        else:
            det, found = self.faces_with_landmarks(rgb)
        faces = build_faces(
            det.boxes,
            det.scores,
            found.points,
            rgb.shape[1::-1],
            self.options.pose,
            found.presence,
            found.visibility,
            found.uncertainty,
        )
        return LandmarkResult(faces, rgb, source)

    def detect_for_video(self, frame: ImageInput, timestamp_ms: float) -> LandmarkResult:
        """Landmarks of one video frame, tracked from the previous frames of the same stream and smoothed.

        `timestamp_ms` must grow from frame to frame (the smoothing filters need the time between
        frames). The detector runs on the first frame, every `options.video.redetect_every` frames and
        when a face is lost; between, each face's crop comes from its last points. Faces pass the same
        `min_score` / `max_faces` selection as in `detect`. Call `reset_video()` before another stream."""
        rgb, source = as_rgb(frame)
        t = float(timestamp_ms)
        if not math.isfinite(t):
            raise UsageError(f"detect_for_video: timestamp {t} ms is not a finite number of milliseconds")
        if self._last_timestamp_ms is not None and not t > self._last_timestamp_ms:
            raise FacepointsError(
                f"detect_for_video: timestamp {t:g} ms is not after the previous frame's "
                f"({self._last_timestamp_ms:g} ms); call reset_video() to start another stream"
            )
        if self._tracker is None:
            self._tracker = FaceTracker(self, self.options.video)
        self._last_timestamp_ms = t
        result = self._tracker.update(rgb, t / 1000)
        result.source = source
        return result

    def reset_video(self, options: VideoOptions | None = None) -> None:
        """Forget the current stream's faces; the next `detect_for_video` frame starts a new stream
        (with `options` instead of `self.options.video`, if given)."""
        self._tracker = FaceTracker(self, options or self.options.video)
        self._last_timestamp_ms = None

    @property
    def video_tracker(self) -> FaceTracker | None:
        """The current stream's tracker (e.g. its `detector_runs`), None before the first video frame."""
        return self._tracker

    def landmarks(self, rgb: np.ndarray, landmark_boxes: np.ndarray, angles: np.ndarray | None = None) -> np.ndarray:
        """Points for faces whose tight boxes are already known (tracking)."""
        return self.predictor.predict(rgb, landmark_boxes, angles)

    def landmarks_and_trust(
        self, rgb: np.ndarray, landmark_boxes: np.ndarray, angles: np.ndarray | None = None
    ) -> Landmarks:
        """`landmarks`' points with presence, visibility and uncertainty where the model has them."""
        return self.predictor.predict_landmarks(rgb, landmark_boxes, angles)

    def with_options(self, **changes: Any) -> "Landmarker":
        return Landmarker(replace(self.options, **changes))

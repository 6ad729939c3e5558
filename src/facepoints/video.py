"""Video and webcam: tracking (previous landmarks place the next crop), smoothing, and streamed outputs.

`Landmarker.detect_for_video` runs a FaceTracker: the detector runs on the first frame, every
`redetect_every` frames, and whenever a track is lost (with trust heads: its presence falls below
VideoOptions.lost_presence or the Landmarker's min_presence; and its box overlap with the last frame's falls
below min_overlap); in between
each face's crop comes from its previous landmarks, which is both faster and steadier. A One Euro filter per
face removes jitter.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

# FFmpeg prints a line per damaged macroblock of a corrupt file (hundreds); silence it, unless the user
# chose a level. OpenCV reads this once, at the first capture of the process. Damage is reported once,
# as the frames that could not be decoded (process_video).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from .config import VideoOptions
from .crop import points_box, upright_box
from .detectors import roll_degrees
from .drawing import save_gif
from .errors import FacepointsError
from .io_utils import atomic_path
from .landmarks import five_points
from .results import LandmarkResult, build_faces
from .smoothing import LandmarkSmoother

if TYPE_CHECKING:  # for annotations only: landmarker.py imports this module
    from .landmarker import Landmarker

__all__ = ["FaceTracker", "VideoOptions", "VideoOutputs", "process_video", "open_capture", "iou"]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class _Track:
    points: np.ndarray  # the model's last points (unsmoothed): they place the next crop
    score: float
    smoother: LandmarkSmoother | None
    detected_box: np.ndarray | None = None  # the detector's box at the last detection
    reference: np.ndarray | None = None  # the tight box of the shown points at that detection
    presence: float | None = None  # this frame's trust outputs (models with trust heads), unsmoothed
    visibility: np.ndarray | None = None
    uncertainty: np.ndarray | None = None

    def set_trust(self, found, i: int) -> None:
        self.presence = None if found.presence is None else float(found.presence[i])
        self.visibility = None if found.visibility is None else found.visibility[i]
        self.uncertainty = None if found.uncertainty is None else found.uncertainty[i]


def carried_box(detected: np.ndarray, reference: np.ndarray, now: np.ndarray) -> np.ndarray:
    """The detector's box moved and scaled as the face's tight landmark box moved from `reference` to `now`."""
    scale = np.maximum(now[2:] - now[:2], 1e-6) / np.maximum(reference[2:] - reference[:2], 1e-6)
    c_ref, c_now = (reference[:2] + reference[2:]) / 2, (now[:2] + now[2:]) / 2
    return np.concatenate([c_now + (detected[:2] - c_ref) * scale, c_now + (detected[2:] - c_ref) * scale])


class FaceTracker:
    """Per-frame landmarks for a stream: `update(rgb, t)` -> LandmarkResult (t in seconds).
    `Landmarker.detect_for_video` is the public way to use it."""

    def __init__(self, landmarker: Landmarker, options: VideoOptions | None = None):
        self.landmarker = landmarker
        self.options = options or VideoOptions()
        self.tracks: list[_Track] = []
        self.frame_index = 0
        self.detector_runs = 0

    def _new_smoother(self) -> LandmarkSmoother | None:
        return LandmarkSmoother() if self.options.smooth else None

    def _track_boxes(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Each track's landmark box for the next frame, and its roll when crops are upright."""
        if not self.landmarker.options.upright or not self.tracks:
            return np.array([points_box(t.points) for t in self.tracks]).reshape(-1, 4), None
        angles = roll_degrees(five_points(np.stack([t.points for t in self.tracks])))
        return np.array([upright_box(t.points, a) for t, a in zip(self.tracks, angles)]).reshape(-1, 4), angles

    def update(self, rgb: np.ndarray, timestamp: float) -> LandmarkResult:
        o = self.options
        need_detect = not self.tracks or self.frame_index % o.redetect_every == 0
        old_boxes = np.array([points_box(t.points) for t in self.tracks]).reshape(-1, 4)
        if not need_detect:
            boxes, angles = self._track_boxes()
            found = self.landmarker.landmarks_and_trust(rgb, boxes, angles)
            new_boxes = np.array([points_box(p) for p in found.points]).reshape(-1, 4)
            bar = max(o.lost_presence, self.landmarker.options.min_presence)
            if found.presence is not None and (found.presence < bar).any():
                need_detect = True  # the landmark model no longer sees a face in a track's crop: lost
            elif any(iou(a, b) < o.min_overlap for a, b in zip(old_boxes, new_boxes)):
                need_detect = True  # a track drifted off its face
            else:
                for i, (t, p) in enumerate(zip(self.tracks, found.points)):
                    t.points = p
                    t.set_trust(found, i)
        if need_detect:
            self._redetect(rgb, old_boxes)
        self.frame_index += 1
        shown = [t.smoother(t.points, timestamp) if t.smoother is not None else t.points for t in self.tracks]
        boxes = []
        for t, p in zip(self.tracks, shown):
            now = np.asarray(points_box(p))
            if t.reference is None:  # just detected: this frame's shown points are the reference
                t.reference = now
            boxes.append(carried_box(t.detected_box, t.reference, now))
        trust = self.tracks and self.tracks[0].presence is not None
        faces = build_faces(
            boxes,
            [t.score for t in self.tracks],
            shown,
            rgb.shape[1::-1],
            self.landmarker.options.pose,
            [t.presence for t in self.tracks] if trust else None,
            [t.visibility for t in self.tracks] if trust else None,
            [t.uncertainty for t in self.tracks] if trust else None,
        )
        return LandmarkResult(faces, rgb)

    def _redetect(self, rgb, old_boxes):
        self.detector_runs += 1
        det, found = self.landmarker.faces_with_landmarks(rgb)  # the same selection as for images
        tracks = []
        for i, (p, s, detected) in enumerate(
            zip(found.points, det.scores, np.asarray(det.boxes, np.float64).reshape(-1, 4))
        ):
            box = np.asarray(points_box(p))
            # keep the smoother of the old track this face continues, so a re-detect does not jump
            match = max(range(len(self.tracks)), key=lambda i: iou(old_boxes[i], box), default=None)
            if match is not None and iou(old_boxes[match], box) >= self.options.min_overlap:
                smoother = self.tracks[match].smoother
            else:
                smoother = self._new_smoother()
            track = _Track(p, float(s), smoother, detected)
            track.set_trust(found, i)
            tracks.append(track)
        self.tracks = tracks


def open_capture(source: str | int) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        if isinstance(source, int):
            raise FacepointsError(f"camera {source}: no such camera or it cannot be opened")
        raise FacepointsError(f"{source}: cannot open as a video (missing, corrupt or unsupported)")
    return cap


class VideoOutputs:
    """The annotated MP4, the GIF and the JSONL of one stream.

    Each is written to a temporary file beside its target and moved into place when the
    `with` block ends normally, so an exception never leaves a half-written output.
    """

    def __init__(
        self,
        source,
        fps: float,
        video: Path | None = None,
        gif: Path | None = None,
        jsonl: Path | None = None,
        draw_kwargs: dict | None = None,
    ):
        self.source, self.fps, self.video, self.gif = str(source), fps, video, gif
        self.draw_kwargs = draw_kwargs or {}
        self.gif_frames: list[np.ndarray] = []
        self._writer = None
        self._stack = contextlib.ExitStack()
        self._video_tmp = self._stack.enter_context(atomic_path(video)) if video else None
        self._stack.callback(lambda: self._writer is not None and self._writer.release())  # before the move into place
        self._jsonl = (
            self._stack.enter_context(open(self._stack.enter_context(atomic_path(jsonl)), "w")) if jsonl else None
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stack.__exit__(*exc)
        if exc[0] is None and self.gif is not None and self.gif_frames:
            save_gif(self.gif_frames, self.gif, fps=min(self.fps, 15))
        return False

    def write(self, index: int, result: LandmarkResult) -> None:
        if self._video_tmp is not None or self.gif is not None:
            annotated = result.plot(**self.draw_kwargs)
            if self._video_tmp is not None:
                self._video_writer(annotated.shape).write(cv2.cvtColor(annotated, cv2.COLOR_RGB2BGR))
            if self.gif is not None:
                self.gif_frames.append(cv2.resize(annotated, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
        if self._jsonl is not None:
            record = {"frame": index, "time": round(index / self.fps, 4), **result.summary(), "image": self.source}
            self._jsonl.write(json.dumps(record) + "\n")

    def _video_writer(self, shape) -> cv2.VideoWriter:
        if self._writer is None:
            h, w = shape[:2]
            self._writer = cv2.VideoWriter(str(self._video_tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise FacepointsError(f"{self.video}: cannot open a video writer")
        return self._writer


def process_video(
    landmarker,
    source: str | int,
    out_video: Path | None,
    out_gif: Path | None,
    out_jsonl: Path | None,
    options: VideoOptions | None = None,
    max_frames: int | None = None,
    draw_kwargs: dict | None = None,
    progress: bool = True,
) -> dict:
    """Run the tracker over a video file or camera; write annotated MP4/GIF and JSONL as frames arrive.

    When the stream breaks mid-way, what was processed is kept and the returned error
    says at which frame.
    """
    cap = open_capture(source)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    fps = fps if 1 <= fps <= 240 else 25.0
    expected = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if not isinstance(source, int) else 0
    landmarker.reset_video(options)
    n, error = 0, None
    try:
        with (
            VideoOutputs(source, fps, out_video, out_gif, out_jsonl, draw_kwargs) as outputs,
            tqdm(
                total=max_frames or expected or None, unit="frame", desc=str(source), disable=not progress, leave=False
            ) as bar,
        ):
            t_start = time.perf_counter()
            while max_frames is None or n < max_frames:
                ok, bgr = cap.read()
                if not ok:
                    if expected and n < expected - 1:
                        error = (
                            f"{source}: video stopped decoding at frame {n} of {expected}; "
                            f"kept the {n} frames processed"
                        )
                    break
                outputs.write(n, landmarker.detect_for_video(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), 1000 * n / fps))
                n += 1
                bar.update(1)
            elapsed = time.perf_counter() - t_start
            if n == 0:
                raise FacepointsError(f"{source}: no frames could be decoded")
    finally:
        cap.release()
    return {
        "frames": n,
        "fps": n / max(elapsed, 1e-9),
        "detector_runs": landmarker.video_tracker.detector_runs,
        "error": error,
    }

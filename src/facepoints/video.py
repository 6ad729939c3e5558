"""Video and webcam: tracking (previous landmarks place the next crop), smoothing, and streamed outputs.

The detector runs on the first frame, every `redetect_every` frames, and whenever a
track is lost; in between each face's crop comes from its previous landmarks, which is
both faster and steadier. A One Euro filter per face removes jitter.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .crop import points_box
from .errors import FacepointsError
from .results import LandmarkResult


@dataclass(frozen=True)
class VideoOptions:
    redetect_every: int = 15
    smooth: bool = True
    min_overlap: float = 0.3  # IoU between a track's old and new box below which it is lost


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class _Track:
    points: np.ndarray
    score: float
    smoother: object | None


class FaceTracker:
    """Per-frame landmarks for a stream: `update(rgb, t)` -> LandmarkResult."""

    def __init__(self, landmarker, options: VideoOptions | None = None):
        self.landmarker = landmarker
        self.options = options or VideoOptions()
        self.tracks: list[_Track] = []
        self.frame_index = 0
        self.detector_runs = 0

    def _new_smoother(self):
        if not self.options.smooth:
            return None
        from .smoothing import LandmarkSmoother

        return LandmarkSmoother()

    def update(self, rgb: np.ndarray, timestamp: float) -> LandmarkResult:
        from .landmarker import build_faces

        o = self.options
        need_detect = not self.tracks or self.frame_index % o.redetect_every == 0
        boxes = np.array([points_box(t.points) for t in self.tracks]).reshape(-1, 4)
        if not need_detect:
            points = self.landmarker.landmarks(rgb, boxes)
            new_boxes = np.array([points_box(p) for p in points]).reshape(-1, 4)
            if any(iou(a, b) < o.min_overlap for a, b in zip(boxes, new_boxes)):
                need_detect = True  # a track drifted off its face
            else:
                for t, p in zip(self.tracks, points):
                    t.points = p
        if need_detect:
            self._redetect(rgb, boxes)
        self.frame_index += 1
        shown = [t.smoother(t.points, timestamp) if t.smoother is not None else t.points for t in self.tracks]
        boxes = [points_box(p) for p in shown]
        faces = build_faces(boxes, [t.score for t in self.tracks], shown, rgb.shape[1::-1], self.landmarker.options.pose)
        return LandmarkResult(faces, rgb)

    def _redetect(self, rgb, old_boxes):
        self.detector_runs += 1
        det = self.landmarker.detector.detect(rgb)
        lm_boxes = self.landmarker.detector.landmark_boxes(det.boxes)
        if self.landmarker.options.max_faces is not None:
            lm_boxes, det_scores = lm_boxes[: self.landmarker.options.max_faces], det.scores[: self.landmarker.options.max_faces]
        else:
            det_scores = det.scores
        points = self.landmarker.landmarks(rgb, lm_boxes)
        tracks = []
        for p, s in zip(points, det_scores):
            box = np.asarray(points_box(p))
            # keep the smoother of the old track this face continues, so a re-detect does not jump
            match = max(range(len(self.tracks)), key=lambda i: iou(old_boxes[i], box), default=None)
            if match is not None and iou(old_boxes[match], box) >= self.options.min_overlap:
                old = self.tracks[match]
                tracks.append(_Track(p, float(s), old.smoother))
            else:
                tracks.append(_Track(p, float(s), self._new_smoother()))
        self.tracks = tracks


def open_capture(source: str | int) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        if isinstance(source, int):
            raise FacepointsError(f"camera {source}: no such camera or it cannot be opened")
        raise FacepointsError(f"{source}: cannot open as a video (missing, corrupt or unsupported)")
    return cap


def process_video(landmarker, source: str | int, out_video: Path | None, out_gif: Path | None, out_jsonl: Path | None,
                  options: VideoOptions | None = None, max_frames: int | None = None, draw_kwargs: dict | None = None,
                  progress: bool = True) -> dict:
    """Run the tracker over a video file or camera; write annotated MP4/GIF and JSONL as frames arrive.

    Outputs are written to temporary files and moved into place at the end, also when
    the stream breaks mid-way (what was written is kept; the error says at which frame).
    """
    from tqdm import tqdm

    from .drawing import save_gif
    from .io_utils import atomic_path

    cap = open_capture(source)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    fps = fps if 1 <= fps <= 240 else 25.0
    expected = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if not isinstance(source, int) else 0
    tracker = FaceTracker(landmarker, options)
    draw_kwargs = draw_kwargs or {}
    writer, gif_frames, n, error = None, [], 0, None
    stack = []
    try:
        import contextlib

        with contextlib.ExitStack() as es:
            tmp_video = es.enter_context(atomic_path(out_video)) if out_video else None
            tmp_jsonl = es.enter_context(atomic_path(out_jsonl)) if out_jsonl else None
            jsonl = open(tmp_jsonl, "w") if tmp_jsonl else None
            stack.append(jsonl)
            total = max_frames if max_frames else (expected or None)
            bar = tqdm(total=total, unit="frame", desc=str(source), disable=not progress, leave=False)
            t_start = time.perf_counter()
            while max_frames is None or n < max_frames:
                ok, bgr = cap.read()
                if not ok:
                    if expected and n < expected - 1:
                        error = f"{source}: video stopped decoding at frame {n} of {expected}; kept the {n} frames processed"
                    break
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                result = tracker.update(rgb, n / fps)
                if tmp_video is not None or out_gif is not None:
                    annotated = result.plot(**draw_kwargs)
                    if tmp_video is not None:
                        if writer is None:
                            h, w = annotated.shape[:2]
                            writer = cv2.VideoWriter(str(tmp_video), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                            if not writer.isOpened():
                                raise FacepointsError(f"{out_video}: cannot open a video writer")
                        writer.write(cv2.cvtColor(annotated, cv2.COLOR_RGB2BGR))
                    if out_gif is not None:
                        gif_frames.append(cv2.resize(annotated, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
                if jsonl:
                    record = {"frame": n, "time": round(n / fps, 4), **result.summary()}
                    record["image"] = str(source)
                    jsonl.write(json.dumps(record) + "\n")
                n += 1
                bar.update(1)
            bar.close()
            elapsed = time.perf_counter() - t_start
            if writer is not None:
                writer.release()
            if jsonl:
                jsonl.close()
            if n == 0:
                raise FacepointsError(f"{source}: no frames could be decoded")
    finally:
        cap.release()
    if out_gif is not None and gif_frames:
        save_gif(gif_frames, out_gif, fps=min(fps, 15))
    return {"frames": n, "fps": n / max(elapsed, 1e-9), "detector_runs": tracker.detector_runs, "error": error}

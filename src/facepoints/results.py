"""Typed results: one Face per found face, one LandmarkResult per image or frame; plot/save, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .drawing import draw_face
from .errors import FacepointsError
from .io_utils import atomic_path
from .pose import Pose, safe_pose

# the box's corners are box_x1 ... so that no column name repeats the points' x1, y1 (pandas renamed them)
# then how far to trust the face and each point (empty cells for a model without trust heads): presence, visibility
# v0 ... v67, uncertainty u0 ... u67 (image pixels)
CSV_HEADER = (
    ["image", "face", "score", "box_x1", "box_y1", "box_x2", "box_y2", "yaw", "pitch", "roll"]
    + [f"{a}{i}" for i in range(68) for a in ("x", "y")]
    + ["presence"]
    + [f"v{i}" for i in range(68)]
    + [f"u{i}" for i in range(68)]
)


def _finite(value: float, digits: int) -> float | None:
    """A number for JSON and CSV: rounded, or None (null, an empty cell) where it is not finite."""
    value = float(value)
    return round(value, digits) if np.isfinite(value) else None


@dataclass
class Face:
    """One face. `box` is the face detector's box (x1, y1, x2, y2 image pixels, in the detector's own
    convention, or the box given to `detect(boxes=...)`), in images and video alike: on video frames
    where the detector did not run it is the face's last detected box, carried along with its landmarks
    (moved and scaled as their tight box moved and scaled since that detection)."""

    box: np.ndarray  # (4,) x1, y1, x2, y2
    score: float  # the detector's score (of the last detection, in video)
    points: np.ndarray  # (68, 2) float32 pixel x, y (pixel i has centre i)
    pose: Pose | None = None  # head pose from the points; None when turned off or no rigid fit exists
    # how far to trust it (models with trust heads; None otherwise): see docs/api.md, "How far to trust each output"
    presence: float | None = None  # probability in [0, 1] that the crop holds a real face with usable points
    visibility: np.ndarray | None = None  # (68,) float32 probability in [0, 1] that each point is not covered
    uncertainty: np.ndarray | None = None  # (68,) float32 expected error of each point, image pixels

    def summary(self) -> dict:
        """Plain JSON types; a non-finite number becomes null, never a NaN literal that strict parsers reject."""
        return {
            "box": [_finite(v, 2) for v in self.box],
            "score": _finite(self.score, 4),
            "points": [[_finite(x, 2), _finite(y, 2)] for x, y in self.points],
            "pose": self.pose.to_dict() if self.pose is not None else None,
            "presence": None if self.presence is None else _finite(self.presence, 4),
            "visibility": None if self.visibility is None else [_finite(v, 3) for v in self.visibility],
            "uncertainty": None if self.uncertainty is None else [_finite(v, 2) for v in self.uncertainty],
        }

    def csv_row(self, image: str | None, index: int) -> list:
        pose = self.pose.to_dict() if self.pose is not None else {}
        return [
            image,
            index,
            _finite(self.score, 4),
            *[_finite(v, 2) for v in self.box],
            *[pose.get(k) for k in ("yaw", "pitch", "roll")],
            *[_finite(v, 2) for v in self.points.reshape(-1)],
            None if self.presence is None else _finite(self.presence, 4),
            *([None] * 68 if self.visibility is None else [_finite(v, 3) for v in self.visibility]),
            *([None] * 68 if self.uncertainty is None else [_finite(v, 2) for v in self.uncertainty]),
        ]


def build_faces(
    boxes: Sequence | np.ndarray,
    scores: Sequence | np.ndarray,
    points: Sequence | np.ndarray,
    image_size: tuple[int, int],
    with_pose: bool,
    presence: Sequence | np.ndarray | None = None,
    visibility: Sequence | np.ndarray | None = None,
    uncertainty: Sequence | np.ndarray | None = None,
) -> list[Face]:
    """Face records; pose from the points (None where no rigid fit exists); presence (N,), visibility (N, 68) and
    uncertainty (N, 68, image px) where the model gives them."""
    n = len(points)

    def each(values: Sequence | np.ndarray | None) -> list:
        return [None] * n if values is None else list(values)

    return [
        Face(
            np.asarray(b, np.float32),
            float(s),
            np.asarray(p, np.float32),
            safe_pose(p, image_size) if with_pose else None,
            None if pr is None else float(pr),
            None if v is None else np.asarray(v, np.float32),
            None if u is None else np.asarray(u, np.float32),
        )
        for b, s, p, pr, v, u in zip(boxes, scores, points, each(presence), each(visibility), each(uncertainty))
    ]


@dataclass
class LandmarkResult:
    faces: list[Face] = field(default_factory=list)
    image: np.ndarray | None = field(default=None, repr=False)  # RGB, kept for plot()
    source: str | None = None

    def __len__(self) -> int:
        return len(self.faces)

    def summary(self) -> dict:
        return {"image": self.source, "faces": [f.summary() for f in self.faces]}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.summary(), indent=indent, allow_nan=False)

    def csv_rows(self) -> list[list]:
        """One row per face, columns CSV_HEADER: image, face index, score, box, yaw/pitch/roll, x0, y0 ... x67, y67,
        presence, v0 ... v67, u0 ... u67 (empty without trust heads)."""
        return [f.csv_row(self.source, i) for i, f in enumerate(self.faces)]

    def to_csv(self, header: bool = True) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf)
        if header:
            writer.writerow(CSV_HEADER)
        writer.writerows(self.csv_rows())
        return buf.getvalue()

    def plot(self, lines: bool = True, boxes: bool = True, numbers: bool = False, hidden: str = "hollow") -> np.ndarray:
        """The image with every face drawn on it (RGB copy). Points the model thinks covered (visibility < 0.5)
        are drawn as `hidden` says: "hollow" rings (default) or "hide" (left out, with their lines)."""
        if self.image is None:
            raise FacepointsError("this result holds no image to draw on")
        if hidden not in ("hollow", "hide"):
            raise FacepointsError(f"hidden: {hidden!r} is not 'hollow' or 'hide'")
        canvas = self.image.copy()
        for f in self.faces:
            draw_face(
                canvas,
                f.points,
                f.box if boxes else None,
                lines=lines,
                numbers=numbers,
                visibility=f.visibility,
                hidden=hidden,
            )
        return canvas

    def save(self, path: str | Path, **plot_kwargs: Any) -> Path:
        """Write the annotated image (format from the suffix), atomically; never over the input image."""
        path = Path(path)
        if self.source and Path(self.source).exists() and path.exists() and path.samefile(self.source):
            raise FacepointsError(f"{path}: refusing to overwrite the input image")
        bgr = self.plot(**plot_kwargs)
        for y in range(0, len(bgr), 256):  # RGB -> BGR in place, in strips: no second full copy of a huge photo
            strip = bgr[y : y + 256]
            cv2.cvtColor(strip, cv2.COLOR_RGB2BGR, dst=strip)  # 13x faster than strip[:] = strip[..., ::-1]
        ok, buf = cv2.imencode(path.suffix or ".png", bgr)
        if not ok:
            raise FacepointsError(f"{path}: cannot encode an image with suffix {path.suffix!r}")
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.tobytes())
        return path

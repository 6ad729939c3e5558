"""Typed results: one Face per found face, one LandmarkResult per image; plot/save/JSON from one summary()."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .drawing import draw_face
from .errors import FacepointsError
from .io_utils import atomic_path


@dataclass
class Face:
    box: np.ndarray  # (4,) x1, y1, x2, y2: the detector's box, or the tracked face's box in video
    score: float
    points: np.ndarray  # (68, 2) float32 pixel x, y
    pose: dict | None = None  # {"yaw", "pitch", "roll"} in degrees

    def summary(self) -> dict:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "points": np.round(self.points.astype(np.float64), 2).tolist(),
            "pose": self.pose,
        }


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
        return json.dumps(self.summary(), indent=indent)

    def plot(self, lines: bool = True, boxes: bool = True, numbers: bool = False) -> np.ndarray:
        """The image with every face drawn on it (RGB copy)."""
        if self.image is None:
            raise FacepointsError("this result holds no image to draw on")
        canvas = self.image.copy()
        for f in self.faces:
            draw_face(canvas, f.points, f.box if boxes else None, lines=lines, numbers=numbers)
        return canvas

    def save(self, path: str | Path, **plot_kwargs) -> Path:
        """Write the annotated image (format from the suffix), atomically; never over the input image."""
        import cv2

        path = Path(path)
        if self.source and Path(self.source).exists() and path.exists() and path.samefile(self.source):
            raise FacepointsError(f"{path}: refusing to overwrite the input image")
        bgr = self.plot(**plot_kwargs)
        for y in range(0, len(bgr), 256):  # RGB -> BGR in place, in strips: no second full copy of a huge photo
            strip = bgr[y : y + 256]
            strip[:] = strip[..., ::-1]
        ok, buf = cv2.imencode(path.suffix or ".png", bgr)
        if not ok:
            raise FacepointsError(f"{path}: cannot encode an image with suffix {path.suffix!r}")
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.tobytes())
        return path

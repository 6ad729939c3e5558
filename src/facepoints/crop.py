"""Face crops as exact affine maps: every crop carries the 2x3 matrix that made it.

Points use the pixel-centre convention (pixel i has centre i), the same as
cv2.warpAffine, so mapping into a crop and back out is the exact inverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .landmarks import FLIP

Box = tuple[float, float, float, float]  # x1, y1, x2, y2


@dataclass(frozen=True)
class Crop:
    image: np.ndarray  # (size, size) gray or (size, size, 3) RGB, uint8
    matrix: np.ndarray  # 2x3, source pixel -> crop pixel

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        return transform_points(points, self.matrix)

    def to_source(self, points: np.ndarray) -> np.ndarray:
        return transform_points(points, invert(self.matrix))


def points_box(points: np.ndarray) -> Box:
    """The tight box of a set of points."""
    (x1, y1), (x2, y2) = points.min(0), points.max(0)
    return float(x1), float(y1), float(x2), float(y2)


def upright_box(points: np.ndarray, angle_deg: float) -> Box:
    """The tight box of points as seen in a frame turned by angle_deg, placed so that crop_face(box,
    angle_deg) is centred on it: centre in image coordinates, sides of the upright box."""
    t = np.deg2rad(angle_deg)
    r = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])  # turns the face upright
    q = np.asarray(points, np.float64) @ r.T
    (x1, y1), (x2, y2) = q.min(0), q.max(0)
    cx, cy = r.T @ [(x1 + x2) / 2, (y1 + y2) / 2]
    hw, hh = (x2 - x1) / 2, (y2 - y1) / 2
    return float(cx - hw), float(cy - hh), float(cx + hw), float(cy + hh)


def square_from_box(box: Box, margin: float) -> tuple[float, float, float]:
    """Centre x, centre y and side of the square crop around a tight face box."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * margin
    return (x1 + x2) / 2, (y1 + y2) / 2, max(side, 1.0)


def crop_matrix(cx: float, cy: float, side: float, out: int, angle_deg: float = 0.0, flip: bool = False) -> np.ndarray:
    """Map the square of `side` px centred on (cx, cy), rotated by angle, onto an out x out crop."""
    scale = out / side
    t = np.deg2rad(angle_deg)
    a = scale * np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    if flip:
        a[0] = -a[0]
    centre_out = out / 2 - 0.5
    offset = np.array([centre_out, centre_out]) - a @ np.array([cx, cy])
    return np.hstack([a, offset[:, None]]).astype(np.float64)


def invert(matrix: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float64)
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def warp(image: np.ndarray, matrix: np.ndarray, out: int) -> np.ndarray:
    """Sample the crop; bilinear, with replicated borders so faces at the image edge stay natural."""
    return cv2.warpAffine(image, matrix, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def crop_face(image: np.ndarray, box: Box, out: int, margin: float, angle_deg: float = 0.0) -> Crop:
    """The inference crop: square around the (tight-landmark-equivalent) box, turned by `angle_deg`
    (a face rolled by that angle comes out upright)."""
    return crop_square(image, *square_from_box(box, margin), out, angle_deg)


def crop_square(image: np.ndarray, cx: float, cy: float, side: float, out: int, angle_deg: float = 0.0) -> Crop:
    """An out x out crop of the square of `side` px centred on (cx, cy), turned by angle_deg, without aliasing."""
    if side > 2 * out:  # pre-shrink huge faces so bilinear sampling does not alias
        factor = int(side // (2 * out))
        t = np.deg2rad(angle_deg)
        reach = side * (abs(np.cos(t)) + abs(np.sin(t))) / 2  # half the axis-aligned extent of the turned square
        # shrink only the region the crop reads, in whole factor x factor blocks, so INTER_AREA is an
        # exact block average and the cost does not grow with the image
        h, w = image.shape[:2]
        x0 = min(max(int(cx - reach) - 2 * factor, 0), w - 1)
        y0 = min(max(int(cy - reach) - 2 * factor, 0), h - 1)
        nw = max((min(int(cx + reach) + 2 * factor, w) - x0) // factor, 1)
        nh = max((min(int(cy + reach) + 2 * factor, h) - y0) // factor, 1)
        small = cv2.resize(image[y0 : y0 + nh * factor, x0 : x0 + nw * factor], (nw, nh), interpolation=cv2.INTER_AREA)
        m = crop_matrix((cx - x0 + 0.5) / factor - 0.5, (cy - y0 + 0.5) / factor - 0.5, side / factor, out, angle_deg)
        s = np.array(
            [[1 / factor, 0, (0.5 - x0) / factor - 0.5], [0, 1 / factor, (0.5 - y0) / factor - 0.5], [0, 0, 1]]
        )
        return Crop(warp(small, m, out), m @ s)
    m = crop_matrix(cx, cy, side, out, angle_deg)
    return Crop(warp(image, m, out), m)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    return rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def preprocess(gray: np.ndarray) -> np.ndarray:
    """Gray uint8 crops, (S, S) or (N, S, S) -> the model's input, (1, S, S) or (N, 1, S, S) float32 in [0, 1].
    The one normalisation of training (training_data.py) and inference (predictor.py)."""
    return (np.asarray(gray).astype(np.float32) / np.float32(255.0))[..., None, :, :]


def mirror_points(points: np.ndarray, size: int, offset_x: float = 0.0) -> np.ndarray:
    """Points in a crop -> the same points in the mirrored crop (x -> size - 1 - x), re-indexed left <-> right.

    `offset_x`: how far (crop px) the points sit right of what they mark. A mirror flips what they
    mark and keeps the offset's direction, so the offset is put back on the same side. Its own
    inverse: training mirrors targets with it (augment.py), inference mirrors answers back (predictor.py)."""
    p = np.asarray(points, np.float64)[..., FLIP, :].copy()
    p[..., 0] = size - 1 - p[..., 0] + 2 * offset_x
    return p.astype(np.float32)


def roll_degrees(keypoints: np.ndarray) -> np.ndarray:
    """Head roll from 5 keypoints: the mean direction of the eye line and the mouth line, in degrees
    (positive = the face's right-hand side of the image lower, as image y points down)."""
    k = np.asarray(keypoints, np.float64).reshape(-1, 5, 2)
    v = (k[:, 1] - k[:, 0]) + (k[:, 4] - k[:, 3])
    return np.rad2deg(np.arctan2(v[:, 1], v[:, 0]))

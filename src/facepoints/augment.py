"""Training-time augmentation: the seed's photometric jitter and rotation, plus flip and box jitter.

Geometry is one affine matrix per sample (rotation, flip, shift, scale), applied to the
image and the landmarks together; colour jitter acts on the RGB crop before grayscale.
"""

from __future__ import annotations

import cv2
import numpy as np

from .config import AugmentConfig
from .crop import crop_matrix, mirror_points, points_box, square_from_box, transform_points, warp


def random_geometry(points: np.ndarray, out: int, margin: float, cfg: AugmentConfig, rng: np.random.Generator):
    """A jittered crop matrix around the landmarks' tight box, and whether it mirrors."""
    cx, cy, side = square_from_box(points_box(points), margin)
    side *= float(np.exp(rng.uniform(-cfg.scale, cfg.scale)))
    cx += rng.uniform(-cfg.shift_across, cfg.shift_across) * side
    cy += rng.uniform(-cfg.shift, cfg.shift) * side
    angle = rng.uniform(-cfg.rotation, cfg.rotation)
    flip = bool(cfg.flip and rng.random() < 0.5)
    return crop_matrix(cx, cy, side, out, angle, flip), flip


def geometric(
    image: np.ndarray,
    points: np.ndarray,
    out: int,
    margin: float,
    cfg: AugmentConfig,
    rng: np.random.Generator,
    offset=(0.0, 0.0),
):
    """Crop image and points with one random affine map; a mirrored crop re-indexes the points.

    `offset` is how far the annotations sit right of / below what they mark. A mirror flips
    what they mark and keeps the offset's direction; mirroring the points themselves would
    put it on the other side in half the samples, and the model would learn neither.
    """
    m, flip = random_geometry(points, out, margin, cfg, rng)
    if not flip:
        return warp(image, m, out), transform_points(points, m)
    unmirrored = m * np.array([[-1.0], [1.0]])  # crop_matrix mirrors by negating the first row
    unmirrored[0, 2] = out - 1 - m[0, 2]  # ... which is x -> out - 1 - x in crop pixels
    offset_x = (unmirrored[:, :2] @ np.asarray(offset, np.float64))[0]  # the offset in the unmirrored crop's pixels
    return warp(image, m, out), mirror_points(transform_points(points, unmirrored), out, offset_x)


def photometric(rgb: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Seed's colour jitter (brightness, contrast, gamma, saturation, hue) in random order; RGB uint8."""
    img = rgb.astype(np.float32) / np.float32(255.0)
    ops = rng.permutation(5)
    for op in ops:
        if op == 0 and cfg.brightness:
            img = img + rng.uniform(-cfg.brightness, cfg.brightness)
        elif op == 1 and cfg.contrast:
            mean = img.mean()
            img = (img - mean) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + mean
        elif op == 2 and cfg.gamma:
            img = np.clip(img, 0, 1) ** np.exp(rng.uniform(-cfg.gamma, cfg.gamma))
        elif op == 3 and cfg.saturation:
            gray = img @ np.array([0.299, 0.587, 0.114], np.float32)
            img = gray[..., None] + (img - gray[..., None]) * rng.uniform(1 - cfg.saturation, 1 + cfg.saturation)
        elif op == 4 and cfg.hue:
            hsv = cv2.cvtColor(np.clip(img, 0, 1), cv2.COLOR_RGB2HSV)
            hsv[..., 0] = (hsv[..., 0] + 360.0 * rng.uniform(-cfg.hue, cfg.hue)) % 360.0
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        img = np.clip(img, 0, 1).astype(np.float32)
    return (img * 255.0 + 0.5).astype(np.uint8)


def degrade(gray: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Blur and occlusion: make the model cope with soft focus and hands/hair over the face."""
    if cfg.blur and rng.random() < cfg.blur:
        gray = cv2.GaussianBlur(gray, (0, 0), rng.uniform(0.5, cfg.blur_max))
    if cfg.occlusion and rng.random() < cfg.occlusion:
        h, w = gray.shape
        ow, oh = int(rng.uniform(0.15, 0.4) * w), int(rng.uniform(0.15, 0.4) * h)
        x, y = int(rng.integers(0, w - ow)), int(rng.integers(0, h - oh))
        gray = gray.copy()
        gray[y : y + oh, x : x + ow] = int(rng.integers(0, 256))
    return gray

"""Samples -> tensors: a cache of face-centred source crops, and the training/validation datasets.

Decoding 2,000 JPEGs every epoch would dominate CPU training, so each face is cut once
into a larger RGB crop (CACHE_SIDE px, CACHE_CONTEXT x the landmark box) and kept in
one .npz file; augmentation then samples the 128x128 training crop from it. 256 px keeps
116 px per landmark box, 1:1 for a margin-1.1 crop; `facepoints train --cache-side 352` keeps
the 300-W crops' own 160 px (docs/experiments.md, run `native`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .annotations import Sample
from .augment import degrade, geometric, photometric
from .config import CACHE_SIDE, AugmentConfig
from .crop import crop_matrix, crop_square, points_box, preprocess, square_from_box, to_gray, transform_points, warp
from .images import load_image
from .io_utils import atomic_path, default_cache_dir, remove_stale_temps

CACHE_CONTEXT = 2.2


def _cache_key(samples: list[Sample], side: int) -> str:
    h = hashlib.sha256(f"v2 {side} {CACHE_CONTEXT}".encode())
    for s in samples:
        st = s.image_path.stat()
        h.update(f"{s.image_path.resolve()} {st.st_size} {st.st_mtime_ns}".encode())
        h.update(s.points.tobytes())
    return h.hexdigest()[:16]


def build_cache(
    samples: list[Sample], cache_dir: Path | None = None, side: int = CACHE_SIDE
) -> tuple[np.ndarray, np.ndarray]:
    """(N, side, side, 3) uint8 images and (N, 68, 2) points in their coordinates."""
    cache_dir = Path(cache_dir or default_cache_dir())
    path = cache_dir / f"crops-{_cache_key(samples, side)}.npz"
    if cache_dir.is_dir():
        remove_stale_temps(cache_dir, shared=True)  # a run killed while writing a cache left its temporary file
    if path.exists():
        with np.load(path) as f:
            return f["images"], f["points"]
    images = np.empty((len(samples), side, side, 3), np.uint8)
    points = np.empty((len(samples), 68, 2), np.float32)
    for i, s in enumerate(tqdm(samples, desc="caching crops", unit="face", leave=False)):
        cx, cy, source_side = square_from_box(points_box(s.points), CACHE_CONTEXT)
        crop = crop_square(load_image(s.image_path), cx, cy, source_side, side)  # big faces: shrunk without aliasing
        images[i], points[i] = crop.image, crop.to_crop(s.points)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a killed run leaves no half cache behind
        np.savez(f, images=images, points=points)
    return images, points


def cache_offsets(samples: list[Sample], side: int = CACHE_SIDE) -> np.ndarray:
    """(N, 2) annotation offsets (Sample.offset) in the cached crops' pixels."""
    sides = np.array([square_from_box(points_box(s.points), CACHE_CONTEXT)[2] for s in samples])
    return np.asarray([s.offset for s in samples], np.float64).reshape(-1, 2) * (side / sides)[:, None]


def to_tensor(gray: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(preprocess(gray))


class LandmarkDataset(torch.utils.data.Dataset):
    """Cached faces -> (1xSxS float crop, (68, 2) crop-pixel target); augmented when `augment` is set."""

    def __init__(
        self,
        images,
        points,
        input_size: int,
        margin: float,
        augment: AugmentConfig | None,
        seed: int = 0,
        offsets: np.ndarray | None = None,
    ):
        self.images, self.points = images, points
        self.offsets = np.zeros((len(images), 2)) if offsets is None else offsets
        self.input_size, self.margin, self.augment, self.seed = input_size, margin, augment, seed
        self.epoch = 0

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        image, points = self.images[i], self.points[i]
        if self.augment is None:
            cx, cy, side = square_from_box(points_box(points), self.margin)
            m = crop_matrix(cx, cy, side, self.input_size)
            gray = to_gray(warp(image, m, self.input_size))
            return to_tensor(gray), torch.from_numpy(transform_points(points, m))
        rng = np.random.default_rng((self.seed, self.epoch, i))
        rgb, target = geometric(image, points, self.input_size, self.margin, self.augment, rng, self.offsets[i])
        gray = degrade(to_gray(photometric(rgb, self.augment, rng)), self.augment, rng)
        return to_tensor(gray), torch.from_numpy(target)

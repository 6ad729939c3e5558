"""Teacher targets: a trained model's points on each training face, blended with the labels (`train --teacher`).

The teacher reads each face once, before the first epoch: its un-augmented crop from the training
cache, with flip test, calibrated like any prediction (predictor.py). Its points then ride through
augmentation exactly as the labels do: rotation, shift, scale and mirror move them, colour, blur
and occlusion do not. So the student learns the teacher's points on heavily augmented crops at no
cost per step; running the teacher on every augmented crop instead would cost `accurate`'s ~4 ms
per face, about as much as `fast`'s whole training step, and halve the epochs a budget buys.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from .crop import points_box
from .metrics import nme
from .predictor import LandmarkPredictor


def teacher_points(teacher: str, images: np.ndarray, points: np.ndarray, threads: int | None = None) -> np.ndarray:
    """(N, 68, 2) teacher points in the cached crops' pixels, each face cropped from its labels' box
    (the landmark-box convention the teacher was trained on)."""
    predictor = LandmarkPredictor(teacher, flip_test=True, threads=threads, int8=False)
    out = np.empty(points.shape, np.float32)
    for i in tqdm(range(len(images)), desc=f"teacher {predictor.name}", unit="face", leave=False):
        out[i] = predictor.predict(images[i], [points_box(points[i])])[0]
    return out


def blend_targets(labels: np.ndarray, taught: np.ndarray, weight: float) -> np.ndarray:
    """The training targets: `weight` of the way from the labels to the teacher's points."""
    return ((1.0 - weight) * labels + weight * taught).astype(np.float32)


def teacher_report(labels: np.ndarray, taught: np.ndarray) -> str:
    """How far the teacher is from the labels on the faces it teaches (its own training faces, if it saw them)."""
    return f"teacher points differ from the labels by {100 * float(nme(taught, labels).mean()):.2f}% NME"

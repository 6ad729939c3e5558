"""Teacher targets: a trained model's points on each training face, blended with the labels (`train --teacher`).

The teacher reads each face once, before the first epoch: its un-augmented crop from the training
cache, with flip test, calibrated like any prediction. It runs as a torch model here, in the training
layer, and gives the points predictor.py gives (tests/test_distill.py compares them). Its points then ride through
augmentation exactly as the labels do: rotation, shift, scale and mirror move them, colour, blur
and occlusion do not. So the student learns the teacher's points on heavily augmented crops at no
cost per step; running the teacher on every augmented crop instead would cost `accurate`'s ~4 ms
per face, about as much as `fast`'s whole training step, and halve the epochs a budget buys.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from .crop import crop_face, mirror_points, points_box, preprocess, to_gray
from .export import PointsHead
from .metrics import nme
from .weights import load_model

BATCH = 64


def teacher_points(teacher: str, images: np.ndarray, points: np.ndarray, threads: int | None = None) -> np.ndarray:
    """(N, 68, 2) teacher points in the cached crops' pixels, each face cropped from its labels' box
    (the landmark-box convention the teacher was trained on), flip-tested: the mirrored crop's answer is
    mirrored back, keeping the side its annotation offset lies on, and averaged with the plain one."""
    model, spec = load_model(teacher)
    head = PointsHead(model.float(), spec.output_shift).eval()  # calibrated: output_shift subtracted in the graph
    offset_x = spec.annotation_offset[0] - spec.output_shift[0]
    out = np.empty(points.shape, np.float32)
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        for start in tqdm(range(0, len(images), BATCH), desc=f"teacher {spec.name}", unit="batch", leave=False):
            idx = range(start, min(start + BATCH, len(images)))
            crops = [crop_face(images[i], points_box(points[i]), spec.input_size, spec.margin, 0.0) for i in idx]
            x = preprocess(np.stack([to_gray(c.image) for c in crops]))
            with torch.inference_mode():
                both = head(torch.from_numpy(np.ascontiguousarray(np.concatenate([x, x[..., ::-1]])))).numpy()
            n = len(crops)
            flip = (both[:n] + mirror_points(both[n:], spec.input_size, offset_x)) / 2
            out[start : start + n] = [c.to_source(p) for c, p in zip(crops, flip)]
    finally:
        torch.set_num_threads(previous)
    return out


def blend_targets(labels: np.ndarray, taught: np.ndarray, weight: float) -> np.ndarray:
    """The training targets: `weight` of the way from the labels to the teacher's points."""
    return ((1.0 - weight) * labels + weight * taught).astype(np.float32)


def teacher_report(labels: np.ndarray, taught: np.ndarray) -> str:
    """How far the teacher is from the labels on the faces it teaches (its own training faces, if it saw them)."""
    return f"teacher points differ from the labels by {100 * float(nme(taught, labels).mean()):.2f}% NME"

"""Crops without a usable face, for the presence head, and the rules that label a crop.

Sources of negatives:
- boxes on a training face that miss it: shifted by half a crop or more, or zoomed onto one part of it
  (`wrong_box`); the background of the training images comes with these (the cached crops hold 2.2x
  the face box);
- face-free photos shipped with scikit-image (textures, animals, objects; `TRAIN_PHOTOS`): random crops
  at any scale and turn (`photo_crop`), and what RetinaFace finds on them at a low threshold (0.05),
  cropped as the landmarker would crop a detection (`detector_hits`): the hard negatives;
- procedural textures (`texture_crop`), for variety beyond two dozen photos.
`HELD_OUT_PHOTOS` are never trained on: benchmarks/trust.py counts false faces on them, and the held-out
occluder family (occluders.photo_patch) is cut from them.

Positives are augmented training faces whose box stays within what a detector gives (`POSITIVE_GEOMETRY`);
boxes between that and `wrong_box`'s are neither (their label is ambiguous) and are not drawn.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .config import AugmentConfig
from .crop import crop_face, crop_matrix, points_box, roll_degrees, square_from_box, warp
from .errors import FacepointsError
from .occluders import texture

# face-free images in skimage/data (astronaut.png, camera.png and lfw_subset.npy hold human faces: never used)
TRAIN_PHOTOS = (
    "gravel",
    "grass",
    "cell",
    "chessboard_RGB",
    "clock_motion",
    "coins",
    "color",
    "horse",
    "logo",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "phantom",
    "immunohistochemistry",
)
# an animal, objects, a motorcycle (both views), a scene, text, stars, a texture: what the false faces were on
HELD_OUT_PHOTOS = (
    "chelsea",
    "coffee",
    "motorcycle_left",
    "motorcycle_right",
    "rocket",
    "brick",
    "text",
    "hubble_deep_field",
)
_FILES = {
    "immunohistochemistry": "ihc.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "retina": "retina.jpg",
    "rocket": "rocket.jpg",
}
FACES_IN_SKIMAGE = ("astronaut", "camera", "lfw_subset")

# positive crops: the shipped fast's box jitter, a little wider (detector boxes err), turned up to 40 degrees
POSITIVE_GEOMETRY = AugmentConfig(rotation=40.0, shift=0.12, shift_x=0.2, scale=0.25, blur=0.3)
NEGATIVE_SHIFT = 0.55  # a box whose centre is this far (fraction of its side) from the face's is a miss
NEGATIVE_ZOOM = 0.45  # a box this many times the face box's size or less shows one part of the face

HIT_THRESHOLD = 0.05  # RetinaFace's score bar for hard negatives: far below its 0.5 default


def photo_path(name: str) -> Path:
    try:
        import skimage  # optional: only the trust heads' training and benchmark need its photos
    except ImportError:
        raise FacepointsError("face-free photos come from scikit-image: pip install scikit-image") from None
    if name in FACES_IN_SKIMAGE:
        raise FacepointsError(f"{name}: holds a human face, not a negative")
    return Path(skimage.__file__).parent / "data" / _FILES.get(name, f"{name}.png")


def face_free_photos(names=TRAIN_PHOTOS) -> list[np.ndarray]:
    """RGB uint8 images of the named face-free photos (gray ones as 3 equal channels)."""
    out = []
    for name in names:
        path = photo_path(name)
        im = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if im is None:
            raise FacepointsError(f"{path}: cannot read the face-free photo {name!r}")
        if im.ndim == 2:
            im = cv2.cvtColor(im, cv2.COLOR_GRAY2RGB)
        elif im.shape[2] == 4:
            im = cv2.cvtColor(im, cv2.COLOR_BGRA2RGB)
        else:
            im = cv2.cvtColor(im, cv2.COLOR_BGR2RGB)
        if im.dtype != np.uint8:
            im = (im / max(float(im.max()), 1.0) * 255).astype(np.uint8)
        out.append(im)
    return out


def wrong_box(image: np.ndarray, points: np.ndarray, out: int, margin: float, rng: np.random.Generator) -> np.ndarray:
    """An RGB crop from a box that misses the face in `image` (points: its 68 points): moved by at least
    NEGATIVE_SHIFT of the crop side, or shrunk to NEGATIVE_ZOOM of the face or less around some landmark."""
    cx, cy, side = square_from_box(points_box(points), margin)
    if rng.random() < 0.6:
        a = rng.uniform(0, 2 * np.pi)
        d = rng.uniform(NEGATIVE_SHIFT, 1.0) * side
        side2 = side * float(np.exp(rng.uniform(-0.4, 0.3)))
        cx, cy, side = cx + d * np.cos(a), cy + d * np.sin(a), side2
    else:
        p = points[int(rng.integers(0, len(points)))]
        side = side * rng.uniform(0.2, NEGATIVE_ZOOM)
        cx, cy = p + rng.uniform(-0.3, 0.3, 2) * side
    m = crop_matrix(cx, cy, side, out, float(rng.uniform(-30, 30)), bool(rng.random() < 0.5))
    return warp(image, m, out)


def photo_crop(photo: np.ndarray, out: int, rng: np.random.Generator) -> np.ndarray:
    """A random square of a photo: any place, 5-100% of its shorter side, turned, sometimes mirrored."""
    h, w = photo.shape[:2]
    side = min(h, w) * float(np.exp(rng.uniform(np.log(0.05), 0)))
    cx, cy = rng.uniform(side / 2, w - side / 2), rng.uniform(side / 2, h - side / 2)
    m = crop_matrix(cx, cy, side, out, float(rng.uniform(-45, 45)), bool(rng.random() < 0.5))
    return warp(photo, m, out)


def texture_crop(out: int, rng: np.random.Generator) -> np.ndarray:
    """Procedural texture, sometimes with a few blobs of another one on it."""
    layer = texture((out, out), rng)
    for _ in range(int(rng.integers(0, 4))):
        mask = np.zeros((out, out), np.float32)
        c = tuple(int(v) for v in rng.integers(0, out, 2))
        cv2.ellipse(
            mask, c, tuple(int(v) for v in rng.integers(4, out // 2, 2)), float(rng.uniform(0, 180)), 0, 360, 1.0, -1
        )
        layer = layer * (1 - mask[..., None]) + texture((out, out), rng) * mask[..., None]
    return np.clip(layer, 0, 255).astype(np.uint8)


def detector_hits(
    photos: list[np.ndarray], detector, scales=(1.0, 0.5), turns: int = 1
) -> list[tuple[int, np.ndarray, float]]:
    """What a face detector (RetinaFace at a low threshold: HIT_THRESHOLD) finds on face-free photos:
    (photo index, landmark box, roll degrees) for each hit, at each of `scales` of the photo and, with `turns` > 1,
    in its quarter turns. The detector is the caller's: training data sits below inference in the layers."""
    det = detector
    hits = []
    for i, photo in enumerate(photos):
        for f in scales:
            im = photo if f == 1 else cv2.resize(photo, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            for k in range(turns):  # quarter turns: the photo seen four ways gives four sets of false hits
                d = det.detect(np.ascontiguousarray(np.rot90(im, k)))
                if not len(d):
                    continue
                angles = roll_degrees(d.keypoints) if d.keypoints is not None else np.zeros(len(d))
                boxes = det.landmark_boxes(d.boxes, angles)
                for box, a in zip(boxes, angles):
                    hits.append((i, _unturn_box(box, k, im.shape) / f, float(a) + 90.0 * k))
    return hits


def _unturn_box(box: np.ndarray, k: int, shape) -> np.ndarray:
    """A landmark box found in np.rot90(image, k) -> the box of the same square in the image (its centre moved back;
    with the roll angle plus 90 k degrees, crop_face takes the same square)."""
    h, w = shape[:2]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    for j in range(k % 4):  # undo one anticlockwise quarter turn: (x, y) in rot90 -> (W-1-y, x), W its source's width
        cx, cy = (w if (k - 1 - j) % 2 == 0 else h) - 1 - cy, cx
    if k % 2:
        hw, hh = hh, hw
    return np.array([cx - hw, cy - hh, cx + hw, cy + hh], np.float64)


def hit_crop(
    photo: np.ndarray, box: np.ndarray, angle: float, out: int, margin: float, rng: np.random.Generator | None = None
) -> np.ndarray:
    """The crop the landmarker would take of a detection (landmark-convention box); jittered when rng is given."""
    box = np.asarray(box, np.float64)
    if rng is not None:
        s = max(box[2] - box[0], box[3] - box[1])
        box = box + np.tile(rng.uniform(-0.08, 0.08, 2) * s, 2)
        angle = angle + float(rng.uniform(-10, 10))
    return crop_face(photo, tuple(box), out, margin, angle).image

"""Build the face-detector stress sets from a folder of image+.pts faces (300-W test/ by default).

Each set is a folder of image+.pts pairs, so `facepoints evaluate` and benchmarks/detectors.py read
it like test/ itself:
- blur:      Gaussian blur, sigma = 4% of the face (longer side of the landmark box)
- occluded:  a grey bar from the nose tip (point 33) to below the chin (point 8), across the jaw
- small:     the whole image scaled so the face is 40-80 px, pasted at a random place in a 1280x720 frame
             of smooth random texture
- rolled15, rolled30, rolled45, rolled60: the image turned about the face centre by that many degrees,
             alternately clockwise and anticlockwise, on a canvas large enough to hold all of it

Run: python scripts/make_stress_sets.py [--data ../shared/data/300w/test] [--out runs/stress] [--sets ...]
Deterministic (seeded): the same data gives the same sets.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from facepoints.annotations import read_pts_folder, write_pts
from facepoints.crop import points_box, transform_points
from facepoints.images import load_image

SETS = ("blur", "occluded", "small", "rolled15", "rolled30", "rolled45", "rolled60")


def face_side(points: np.ndarray) -> float:
    x1, y1, x2, y2 = points_box(points)
    return max(x2 - x1, y2 - y1)


def blur(image, points, rng):
    return cv2.GaussianBlur(image, (0, 0), 0.04 * face_side(points)), points


def occluded(image, points, rng):
    out = image.copy()
    x1, x2 = int(points[:, 0].min()), int(np.ceil(points[:, 0].max()))
    y1, y2 = int(points[33, 1]), int(np.ceil(points[8, 1] + 0.05 * face_side(points)))
    out[max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1] = 128
    return out, points


def small(image, points, rng, frame=(720, 1280)):
    side = rng.uniform(40, 80)
    f = side / face_side(points)
    im = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    noise = cv2.resize(
        rng.integers(0, 256, (frame[0] // 40, frame[1] // 40, 3), dtype=np.uint8),
        frame[::-1],
        interpolation=cv2.INTER_CUBIC,
    )
    canvas = cv2.GaussianBlur(noise, (0, 0), 8)
    h, w = im.shape[:2]
    y, x = int(rng.integers(0, frame[0] - h)), int(rng.integers(0, frame[1] - w))
    canvas[y : y + h, x : x + w] = im
    # a pixel centre i of the source lands at (i + 0.5) * f - 0.5 in the scaled image
    return canvas, ((points + 0.5) * f - 0.5 + [x, y]).astype(np.float32)


def rolled(angle: float):
    def make(image, points, rng, _sign=[1]):
        _sign[0] = -_sign[0]
        a = angle * _sign[0]
        h, w = image.shape[:2]
        x1, y1, x2, y2 = points_box(points)
        m = cv2.getRotationMatrix2D(((x1 + x2) / 2, (y1 + y2) / 2), a, 1.0)
        corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float64)
        c = corners @ m[:, :2].T + m[:, 2]
        m[:, 2] -= c.min(0)
        size = np.ceil(c.max(0) - c.min(0)).astype(int) + 1
        out = cv2.warpAffine(
            image, m, tuple(int(v) for v in size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        return out, transform_points(points, m)

    return make


MAKERS = {"blur": blur, "occluded": occluded, "small": small, **{f"rolled{a}": rolled(a) for a in (15, 30, 45, 60)}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "300w" / "test"))
    ap.add_argument("--out", default="runs/stress")
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    args = ap.parse_args()
    samples = read_pts_folder(args.data)
    for name in args.sets:
        rng = np.random.default_rng(0)
        folder = Path(args.out) / name
        for s in tqdm(samples, desc=name, unit="face"):
            image, points = MAKERS[name](load_image(s.image_path), s.points, rng)
            target = folder / Path(s.image_path).relative_to(args.data)
            target.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(
                str(target.with_suffix(".jpg")), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
            )
            write_pts(target.with_suffix(".pts"), points)
        print(f"{name}: {len(samples)} faces -> {folder}")


if __name__ == "__main__":
    main()

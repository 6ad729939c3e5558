"""Synthetic occluders with known masks: what a point's visibility label is learned from.

Each family paints one occluder on an RGB face crop and returns its layer and its alpha mask (float
in [0, 1], the crop's size); `occlude` pastes one or more of them and labels each of the 68 points
hidden where the pasted alpha at the point exceeds 0.5. numpy and OpenCV only.

Training families (`TRAIN_FAMILIES`), sized and placed from the face's own landmarks:
- hand:       skin-toned arm and palm capsules with fingers, shaded, entering from a crop edge;
- object:     cups and phones: rounded rectangles with gradients, highlights, a cup's handle;
- sunglasses: dark lenses over the eyes (from points 36-47), a bridge and temples;
- scarf:      a textured band over the mouth and chin (from the nose, mouth and jaw points);
- hair:       dark thin curves, single strands or a lock of many;
- blob:       ellipses and random polygons, flat or textured (noise, stripes, checks, gradients), any colour;
- face_patch: a piece of another face (another training crop), with a soft elliptic edge.

Held out (`HELD_OUT_FAMILY`, never trained on, used by benchmarks/trust.py): `photo_patch`, a random
polygon or ellipse cut from a *real photo* that training never sees (the held-out face-free photos of
negatives.py). Every training family is drawn or comes from a face; real objects' texture, shading
and edges are what a synthetic family can only imitate, so a visibility head that scores well on
them has learned "not face" rather than "one of the seven painted kinds".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .crop import crop_matrix, warp

TRAIN_FAMILIES = ("hand", "object", "sunglasses", "scarf", "hair", "blob", "face_patch")
HELD_OUT_FAMILY = "photo_patch"
HIDDEN_ALPHA = 0.5  # a point is hidden where the occluders' combined alpha over it exceeds this

SKIN = np.array(
    [[255, 224, 196], [241, 194, 160], [224, 172, 125], [198, 134, 90], [161, 102, 62], [110, 70, 45], [80, 50, 35]],
    np.float32,
)


@dataclass
class Occlusion:
    image: np.ndarray  # (S, S, 3) uint8 RGB, the occluded crop
    alpha: np.ndarray  # (S, S) float32 in [0, 1]: how much of each pixel the occluders cover
    visible: np.ndarray  # (68,) bool: the point is not covered (alpha at it <= HIDDEN_ALPHA)
    families: tuple[str, ...]


def visibility_from_mask(alpha: np.ndarray, points: np.ndarray, threshold: float = HIDDEN_ALPHA) -> np.ndarray:
    """(68,) bool: True where the mask at the point (bilinear, pixel-centre convention) is at most threshold.
    Points outside the crop read the nearest border pixel."""
    h, w = alpha.shape
    p = np.asarray(points, np.float64)
    x = np.clip(p[:, 0], 0, w - 1)
    y = np.clip(p[:, 1], 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    a = (
        alpha[y0, x0] * (1 - fx) * (1 - fy)
        + alpha[y0, x1] * fx * (1 - fy)
        + alpha[y1, x0] * (1 - fx) * fy
        + alpha[y1, x1] * fx * fy
    )
    return a <= threshold


def paste(rgb: np.ndarray, layer: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None].astype(np.float32)
    out = rgb.astype(np.float32) * (1 - a) + layer.astype(np.float32) * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# --- building blocks ---------------------------------------------------------------------------------------


def _face_geometry(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Face centre and size (the landmark box's longer side) in crop pixels."""
    lo, hi = points.min(0), points.max(0)
    return (lo + hi) / 2, float(max(hi - lo))


def _soften(mask: np.ndarray, rng: np.random.Generator, sigma=(0.4, 1.2)) -> np.ndarray:
    s = rng.uniform(*sigma)
    return np.clip(cv2.GaussianBlur(mask.astype(np.float32), (0, 0), s), 0, 1)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """Any colour, from near-black to near-white, saturated or grey."""
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(0, 256), rng.integers(10, 256)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _gradient(shape, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A multiplicative linear shading field around 1."""
    h, w = shape
    t = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    g = (np.cos(t) * xx + np.sin(t) * yy) / max(h, w)
    g = (g - g.mean()) * 2 * strength
    return 1 + g


def texture(shape, rng: np.random.Generator, base: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) float32 RGB: flat, gradient, noise, stripes or checks around a colour."""
    h, w = shape
    base = _colour(rng) if base is None else base
    kind = rng.integers(0, 5)
    if kind == 0:
        layer = np.broadcast_to(base, (h, w, 3)).copy()
    elif kind == 1:
        other = _colour(rng)
        g = np.clip(_gradient(shape, rng, 0.5) - 0.5, 0, 1)[..., None]
        layer = base * (1 - g) + other * g
    elif kind == 2:
        noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), rng.uniform(0.5, 4))
        noise /= noise.std() + 1e-6
        layer = base * (1 + rng.uniform(0.1, 0.4) * noise[..., None])
    elif kind == 3:
        t = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        s = np.sin((np.cos(t) * xx + np.sin(t) * yy) * 2 * np.pi / rng.uniform(3, 20)) > 0
        layer = np.where(s[..., None], base, _colour(rng))
    else:
        c = int(rng.integers(3, 16))
        yy, xx = np.mgrid[0:h, 0:w]
        s = ((xx // c + yy // c) % 2).astype(bool)
        layer = np.where(s[..., None], base, _colour(rng))
    return np.clip(layer * _gradient(shape, rng, rng.uniform(0, 0.3))[..., None], 0, 255).astype(np.float32)


def _capsule(mask: np.ndarray, p0, p1, radius: float) -> None:
    cv2.line(
        mask,
        tuple(int(v) for v in np.round(p0)),
        tuple(int(v) for v in np.round(p1)),
        1.0,
        max(1, int(round(2 * radius))),
        cv2.LINE_AA,
    )


def _rounded_rect(shape, centre, size, angle: float, radius: float) -> np.ndarray:
    """Mask of a rotated rectangle (w, h) with rounded corners."""
    mask = np.zeros(shape, np.float32)
    w, h = size
    r = min(radius, w / 2, h / 2)
    box = cv2.boxPoints(((float(centre[0]), float(centre[1])), (max(w - 2 * r, 1), max(h - 2 * r, 1)), angle))
    cv2.fillConvexPoly(mask, np.round(box).astype(np.int32), 1.0, cv2.LINE_AA)
    if r >= 1:
        cv2.polylines(mask, [np.round(box).astype(np.int32)], True, 1.0, int(round(2 * r)), cv2.LINE_AA)
    return mask


def _place_near(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A spot on the face: a random landmark, jittered by up to a quarter of the face."""
    centre, size = _face_geometry(points)
    return points[rng.integers(0, len(points))] + rng.uniform(-0.25, 0.25, 2) * size


# --- families: each (rgb, points, rng, **sources) -> (layer float32 RGB, alpha float32) ----------------------


def hand(rgb, points, rng, **_):
    shape = rgb.shape[:2]
    s = shape[0]
    _, size = _face_geometry(points)
    mask = np.zeros(shape, np.float32)
    palm = _place_near(points, rng)
    palm_r = size * rng.uniform(0.12, 0.22)
    direction = rng.uniform(0, 2 * np.pi)  # where the arm comes from
    d = np.array([np.cos(direction), np.sin(direction)])
    if rng.random() < 0.8:  # the arm, from the palm out of the crop
        _capsule(mask, palm, palm + d * 2 * s, palm_r * rng.uniform(0.6, 0.9))
    cv2.ellipse(
        mask,
        (
            tuple(int(v) for v in np.round(palm)),
            (int(2 * palm_r), int(2 * palm_r * rng.uniform(1, 1.4))),
            float(np.rad2deg(direction)) + 90,
        ),
        1.0,
        -1,
        cv2.LINE_AA,
    )
    if rng.random() < 0.85:  # fingers, fanned away from the arm
        n = int(rng.integers(2, 5))
        spread = rng.uniform(0.4, 1.2)
        for k in range(n):
            a = direction + np.pi + (k - (n - 1) / 2) * spread / max(n - 1, 1)
            u = np.array([np.cos(a), np.sin(a)])
            length = palm_r * rng.uniform(1.2, 2.2)
            _capsule(mask, palm + u * palm_r * 0.5, palm + u * (palm_r * 0.5 + length), palm_r * rng.uniform(0.18, 0.3))
    skin = SKIN[rng.integers(0, len(SKIN))] * rng.uniform(0.85, 1.15, 3)
    layer = np.broadcast_to(skin, (*shape, 3)) * _gradient(shape, rng, rng.uniform(0.1, 0.5))[..., None]
    noise = cv2.GaussianBlur(rng.normal(0, 6, shape).astype(np.float32), (0, 0), 1.5)
    return np.clip(layer + noise[..., None], 0, 255).astype(np.float32), _soften(mask, rng)


def obj(rgb, points, rng, **_):
    """A cup (with a handle, upright-ish) or a phone (thin, dark screen or coloured case)."""
    shape = rgb.shape[:2]
    _, size = _face_geometry(points)
    centre = _place_near(points, rng)
    angle = float(rng.normal(0, 20) if rng.random() < 0.6 else rng.uniform(0, 180))
    cup = rng.random() < 0.5
    if cup:
        w, h = size * rng.uniform(0.25, 0.45), size * rng.uniform(0.3, 0.55)
        radius = w * rng.uniform(0.05, 0.2)
    else:
        w, h = size * rng.uniform(0.2, 0.35), size * rng.uniform(0.4, 0.7)
        radius = w * rng.uniform(0.1, 0.25)
    mask = _rounded_rect(shape, centre, (w, h), angle, radius)
    if cup and rng.random() < 0.8:
        side = 1 if rng.random() < 0.5 else -1
        t = np.deg2rad(angle)
        hc = centre + side * (w / 2) * np.array([np.cos(t), np.sin(t)])
        cv2.ellipse(
            mask,
            (tuple(int(v) for v in np.round(hc)), (int(w * 0.5), int(h * 0.5)), angle),
            1.0,
            max(1, int(w * 0.08)),
            cv2.LINE_AA,
        )
    base = _colour(rng)
    if not cup and rng.random() < 0.5:
        base = rng.uniform(5, 50, 3).astype(np.float32)  # a phone's dark glass
    layer = np.broadcast_to(base, (*shape, 3)) * _gradient(shape, rng, rng.uniform(0.2, 0.6))[..., None]
    if rng.random() < 0.6:  # a specular highlight stripe
        hl = np.zeros(shape, np.float32)
        t = np.deg2rad(angle)
        off = rng.uniform(-0.3, 0.3) * w * np.array([np.cos(t), np.sin(t)])
        up = np.array([-np.sin(t), np.cos(t)]) * h * 0.4
        _capsule(hl, centre + off - up, centre + off + up, w * rng.uniform(0.03, 0.1))
        layer = layer + cv2.GaussianBlur(hl, (0, 0), 1.5)[..., None] * rng.uniform(40, 120)
    return np.clip(layer, 0, 255).astype(np.float32), _soften(mask, rng, (0.3, 0.8))


def sunglasses(rgb, points, rng, **_):
    shape = rgb.shape[:2]
    mask = np.zeros(shape, np.float32)
    eyes = [points[36:42].mean(0), points[42:48].mean(0)]
    widths = [np.linalg.norm(points[39] - points[36]), np.linalg.norm(points[45] - points[42])]
    tilt = float(np.rad2deg(np.arctan2(*(eyes[1] - eyes[0])[::-1])))
    scale = rng.uniform(0.9, 1.5)
    drop = rng.uniform(-0.1, 0.35)
    for c, wd in zip(eyes, widths):
        cc = c + np.array([0, drop * wd])
        axes = (int(max(wd * scale * rng.uniform(0.7, 0.95), 2)), int(max(wd * scale * rng.uniform(0.5, 0.8), 2)))
        if rng.random() < 0.5:
            cv2.ellipse(mask, tuple(int(v) for v in np.round(cc)), axes, tilt, 0, 360, 1.0, -1, cv2.LINE_AA)
        else:
            mask = np.maximum(mask, _rounded_rect(shape, cc, (2 * axes[0], 2 * axes[1]), tilt, axes[1] * 0.5))
    thick = max(1, int(widths[0] * 0.12))
    cv2.line(
        mask,
        tuple(int(v) for v in np.round(eyes[0])),
        tuple(int(v) for v in np.round(eyes[1])),
        1.0,
        thick,
        cv2.LINE_AA,
    )
    u = (eyes[1] - eyes[0]) / (np.linalg.norm(eyes[1] - eyes[0]) + 1e-6)
    for c, sgn in ((eyes[0], -1), (eyes[1], 1)):  # temples towards the ears
        cv2.line(
            mask,
            tuple(int(v) for v in np.round(c)),
            tuple(int(v) for v in np.round(c + sgn * u * widths[0] * 3)),
            1.0,
            thick,
            cv2.LINE_AA,
        )
    tint = rng.uniform(0, 60, 3) if rng.random() < 0.7 else _colour(rng) * 0.5
    layer = np.broadcast_to(tint, (*shape, 3)) * _gradient(shape, rng, 0.4)[..., None]
    alpha = _soften(mask, rng, (0.3, 0.7)) * rng.uniform(0.88, 1.0)
    return np.clip(layer, 0, 255).astype(np.float32), alpha


def scarf(rgb, points, rng, **_):
    shape = rgb.shape[:2]
    s = shape[0]
    jaw = points[0:17]
    top_y = rng.uniform(points[30, 1], points[62, 1])  # from mid-nose down to the mouth
    tilt = rng.normal(0, 0.15)
    cx = points[27:36, 0].mean()
    x0, x1 = jaw[:, 0].min() - rng.uniform(0.05, 0.3) * s, jaw[:, 0].max() + rng.uniform(0.05, 0.3) * s
    xs = np.linspace(x0, x1, 12)
    top = top_y + tilt * (xs - cx) + rng.normal(0, 1.5, len(xs)) + 0.12 * np.abs(xs - cx)
    poly = np.concatenate([np.stack([xs, top], 1), [[x1, s * 1.5], [x0, s * 1.5]]])
    mask = np.zeros(shape, np.float32)
    cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1.0, cv2.LINE_AA)
    layer = texture(shape, rng)
    folds = np.sin(np.mgrid[0 : shape[0], 0 : shape[1]][0] * rng.uniform(0.2, 0.6)) * rng.uniform(0, 0.15) + 1
    return np.clip(layer * folds[..., None], 0, 255).astype(np.float32), _soften(mask, rng)


def hair(rgb, points, rng, **_):
    shape = rgb.shape[:2]
    s = shape[0]
    mask = np.zeros(shape, np.float32)
    lock = rng.random() < 0.5
    n = int(rng.integers(8, 30)) if lock else int(rng.integers(1, 6))
    start = np.array([rng.uniform(0, s), rng.uniform(-0.1, 0.3) * s])
    end = _place_near(points, rng) + rng.uniform(-0.1, 0.1, 2) * s
    for _ in range(n):
        jitter = rng.normal(0, 0.04 if lock else 0.15, (3, 2)) * s
        p0, p2 = start + jitter[0], end + jitter[2]
        p1 = (p0 + p2) / 2 + rng.normal(0, 0.15, 2) * s + jitter[1]
        t = np.linspace(0, 1, 24)[:, None]
        curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        cv2.polylines(mask, [np.round(curve).astype(np.int32)], False, 1.0, int(rng.integers(1, 3)), cv2.LINE_AA)
    colour = (
        rng.uniform(5, 60, 3)
        if rng.random() < 0.7
        else np.array(rng.choice([[120, 80, 40], [200, 170, 110], [90, 40, 20]]), np.float32)
    )
    layer = np.broadcast_to(colour, (*shape, 3)).astype(np.float32)
    return layer, np.clip(mask, 0, 1)


def blob(rgb, points, rng, **_):
    shape = rgb.shape[:2]
    _, size = _face_geometry(points)
    centre = _place_near(points, rng)
    mask = np.zeros(shape, np.float32)
    r = size * rng.uniform(0.08, 0.4)
    if rng.random() < 0.5:
        axes = (int(max(r, 1)), int(max(r * rng.uniform(0.3, 1.0), 1)))
        cv2.ellipse(
            mask,
            tuple(int(v) for v in np.round(centre)),
            axes,
            float(rng.uniform(0, 180)),
            0,
            360,
            1.0,
            -1,
            cv2.LINE_AA,
        )
    else:
        k = int(rng.integers(3, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        poly = centre + np.stack([np.cos(ang), np.sin(ang)], 1) * r * rng.uniform(0.5, 1.3, (k, 1))
        cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1.0, cv2.LINE_AA)
    return texture(shape, rng), _soften(mask, rng)


def face_patch(rgb, points, rng, donors: Sequence[np.ndarray] | None = None, **_):
    """A piece of another face: a donor crop shifted so one of its face parts lands on this face."""
    shape = rgb.shape[:2]
    if not donors:
        return blob(rgb, points, rng)
    donor = donors[int(rng.integers(0, len(donors)))]
    donor = cv2.resize(donor, shape[::-1], interpolation=cv2.INTER_AREA) if donor.shape[:2] != shape else donor
    s = shape[0]
    src = rng.uniform(0.3, 0.7, 2) * s  # around the donor's face (crops are centred on faces)
    dst = _place_near(points, rng)
    scale = rng.uniform(0.7, 1.4)
    m = np.array([[scale, 0, dst[0] - scale * src[0]], [0, scale, dst[1] - scale * src[1]]], np.float64)
    if rng.random() < 0.5:
        m[0, :2] *= -1
        m[0, 2] = dst[0] + scale * src[0]
    layer = cv2.warpAffine(donor, m, shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask = np.zeros(shape, np.float32)
    _, size = _face_geometry(points)
    axes = (int(size * rng.uniform(0.15, 0.4)), int(size * rng.uniform(0.15, 0.4)))
    cv2.ellipse(
        mask, tuple(int(v) for v in np.round(dst)), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1, cv2.LINE_AA
    )
    return layer.astype(np.float32), _soften(mask, rng, (0.5, 2.0))


def photo_patch(rgb, points, rng, photos: Sequence[np.ndarray] | None = None, **_):
    """The held-out family: a polygon or ellipse of a real photo (random place, scale and turn in it)."""
    shape = rgb.shape[:2]
    if not photos:
        raise ValueError("photo_patch needs photos (negatives.face_free_photos(HELD_OUT_PHOTOS))")
    photo = photos[int(rng.integers(0, len(photos)))]
    s = shape[0]
    h, w = photo.shape[:2]
    side = rng.uniform(0.15, 0.6) * min(h, w)
    cx, cy = rng.uniform(side / 2, w - side / 2), rng.uniform(side / 2, h - side / 2)
    layer = warp(photo, crop_matrix(cx, cy, side, s, float(rng.uniform(-180, 180))), s).astype(np.float32)
    _, size = _face_geometry(points)
    centre = _place_near(points, rng)
    mask = np.zeros(shape, np.float32)
    r = size * rng.uniform(0.12, 0.4)
    if rng.random() < 0.5:
        cv2.ellipse(
            mask,
            tuple(int(v) for v in np.round(centre)),
            (int(r), int(r * rng.uniform(0.4, 1))),
            float(rng.uniform(0, 180)),
            0,
            360,
            1.0,
            -1,
            cv2.LINE_AA,
        )
    else:
        k = int(rng.integers(3, 8))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        poly = centre + np.stack([np.cos(ang), np.sin(ang)], 1) * r * rng.uniform(0.6, 1.4, (k, 1))
        cv2.fillConvexPoly(mask, np.round(poly).astype(np.int32), 1.0, cv2.LINE_AA)
    return layer, _soften(mask, rng)


FAMILIES: dict[str, Callable] = {
    "hand": hand,
    "object": obj,
    "sunglasses": sunglasses,
    "scarf": scarf,
    "hair": hair,
    "blob": blob,
    "face_patch": face_patch,
    "photo_patch": photo_patch,
}


def occlude(
    rgb: np.ndarray,
    points: np.ndarray,
    rng: np.random.Generator,
    families: Sequence[str] = TRAIN_FAMILIES,
    count: tuple[int, int] = (1, 2),
    donors: Sequence[np.ndarray] | None = None,
    photos: Sequence[np.ndarray] | None = None,
) -> Occlusion:
    """Paste `count` (inclusive range) occluders of `families` (drawn at random) on an RGB crop whose 68 points
    are `points` (crop pixels); the visibility labels follow the combined mask."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("occlude takes an (S, S, 3) RGB crop")
    image = rgb.copy()
    alpha = np.zeros(rgb.shape[:2], np.float32)
    used = []
    for _ in range(int(rng.integers(count[0], count[1] + 1))):
        name = families[int(rng.integers(0, len(families)))]
        layer, a = FAMILIES[name](image, points, rng, donors=donors, photos=photos)
        image = paste(image, layer, a)
        alpha = 1 - (1 - alpha) * (1 - a)
        used.append(name)
    return Occlusion(image, alpha, visibility_from_mask(alpha, points), tuple(used))

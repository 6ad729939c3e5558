"""The 68-point iBUG/300-W markup as data: flip table, groups and the connections to draw."""

import numpy as np

NUM_POINTS = 68

# 0-based index ranges of each facial part (iBUG 68-point convention). Left and right are the person's own:
# "right_eye" (36-41) is the eye on the image's left in a frontal photo.
PARTS: dict[str, tuple[int, int]] = {
    "jaw": (0, 17),
    "right_brow": (17, 22),
    "left_brow": (22, 27),
    "nose_bridge": (27, 31),
    "nose_tip": (31, 36),
    "right_eye": (36, 42),
    "left_eye": (42, 48),
    "outer_lips": (48, 60),
    "inner_lips": (60, 68),
}
CLOSED_PARTS = {"right_eye", "left_eye", "outer_lips", "inner_lips"}

# Outer eye corners, the person's right and left (image left and right in a frontal photo): the
# inter-ocular normaliser of the 300-W protocol.
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 36, 45


def _flip_permutation() -> np.ndarray:
    """Index i of a mirrored face is point FLIP[i] of the original."""
    pairs = [(i, 16 - i) for i in range(8)]  # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]  # brows
    pairs += [(31, 35), (32, 34)]  # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (59, 55), (58, 56)]  # outer lips
    pairs += [(60, 64), (61, 63), (67, 65)]  # inner lips
    perm = np.arange(NUM_POINTS)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


FLIP = _flip_permutation()


def connections() -> list[tuple[int, int]]:
    """Line segments (index pairs) that outline the face parts."""
    lines = []
    for name, (start, stop) in PARTS.items():
        lines += [(i, i + 1) for i in range(start, stop - 1)]
        if name in CLOSED_PARTS:
            lines.append((stop - 1, start))
    return lines


def interocular(points: np.ndarray) -> float:
    """Distance between the outer eye corners (points 36 and 45)."""
    return float(np.linalg.norm(points[RIGHT_EYE_OUTER] - points[LEFT_EYE_OUTER]))


def five_points(points: np.ndarray) -> np.ndarray:
    """(..., 68, 2) -> (..., 5, 2) in a face detector's keypoint order: eye centres (image left, right),
    nose tip, mouth corners (image left, right); so a track can take its roll as a detection does."""
    p = np.asarray(points, np.float64)
    return np.stack(
        [p[..., 36:42, :].mean(-2), p[..., 42:48, :].mean(-2), p[..., 30, :], p[..., 48, :], p[..., 54, :]], -2
    )

"""Crops and geometric augmentation: every landmark must still sit on its painted dot."""

import cv2
import numpy as np
import pytest

from facepoints.augment import AugmentConfig, geometric, photometric, random_geometry
from facepoints.crop import crop_face, crop_matrix, invert, points_box, square_from_box, transform_points, warp
from facepoints.landmarks import FLIP, connections

from .conftest import template


def dot_image(points: np.ndarray, shape=(240, 260), r: int = 1) -> np.ndarray:
    """Black image with a white square of half-side r centred on each rounded landmark."""
    img = np.zeros((*shape, 3), np.uint8)
    for x, y in np.round(points).astype(int):
        img[y - r : y + r + 1, x - r : x + r + 1] = 255
    return img


def assert_on_dots(image: np.ndarray, points: np.ndarray, min_value: int = 60):
    gray = image if image.ndim == 2 else image.max(-1)
    h, w = gray.shape
    inside = [(i, x, y) for i, (x, y) in enumerate(np.round(points).astype(int)) if 1 <= x < w - 1 and 1 <= y < h - 1]
    assert len(inside) >= 60, "most points should stay inside the crop"
    for i, x, y in inside:
        patch = gray[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2]
        assert patch.size and patch.max() >= min_value, f"point {i} at ({x}, {y}) is not on its dot"


def test_crop_round_trip_exact():
    pts = template(90, (130, 120))
    m = crop_matrix(125.3, 118.7, 140.0, 128, angle_deg=17.0, flip=True)
    back = transform_points(transform_points(pts, m), invert(m))
    np.testing.assert_allclose(back, pts, atol=1e-3)


@pytest.mark.parametrize("scale", [1.0, 6.0])
def test_crop_face_maps_points_onto_dots(scale):
    pts = np.round(template(90 * scale, (130 * scale, 120 * scale)))
    img = dot_image(pts, (int(240 * scale), int(260 * scale)), r=int(scale))
    crop = crop_face(img, points_box(pts), 128, 1.25)  # scale 6: the pre-shrink path
    assert_on_dots(crop.image, crop.to_crop(pts))
    np.testing.assert_allclose(crop.to_source(crop.to_crop(pts)), pts, atol=1e-2)


def test_centre_pixel_convention():
    img = np.zeros((9, 9), np.uint8)
    img[4, 4] = 255
    m = crop_matrix(4.0, 4.0, 9.0, 9)  # identity around the centre pixel
    np.testing.assert_allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    assert warp(img, m, 9)[4, 4] == 255


def test_random_geometry_keeps_points_on_dots():
    pts = np.round(template(100, (130, 120)))
    img = dot_image(pts)
    cfg = AugmentConfig(rotation=40, shift=0.1, scale=0.2, flip=True)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        crop, cpts = geometric(img, pts, 128, 1.3, cfg, rng)
        assert_on_dots(crop, cpts, min_value=40)
        # flipped crops re-index points: point 36 (one outer eye corner) stays left of 45 in the crop
        assert cpts[36, 0] < cpts[45, 0]


def test_shift_x_moves_the_crop_across_only():
    pts = template(100, (130, 120))
    cfg = AugmentConfig(rotation=0, flip=False, shift=0.0, shift_x=0.2, scale=0.0)
    centres = []
    for seed in range(20):
        m, _ = random_geometry(pts, 128, 1.25, cfg, np.random.default_rng(seed))
        centres.append(transform_points(pts, m).mean(0))
    centres = np.array(centres)
    assert np.ptp(centres[:, 1]) < 1e-3  # no shift down
    assert np.ptp(centres[:, 0]) > 20  # up to 0.2 x 128 px either way across


def test_flip_table_is_an_involution_that_mirrors_the_template():
    assert sorted(FLIP) == list(range(68))
    np.testing.assert_array_equal(FLIP[FLIP], np.arange(68))
    pts = template(100, (0, 0))
    mirrored = pts.copy()
    mirrored[:, 0] *= -1
    # the mean 3D face is left/right symmetric: mirror + re-index gives back the same face
    mirrored[:, 0] += 2 * pts[:, 0].mean()
    assert np.abs(mirrored[FLIP] - pts).max() < 3.0  # the mean face is symmetric to ~1 px
    assert np.abs(mirrored - pts).max() > 30.0  # without re-indexing the jaw ends swap sides


def test_connections_cover_every_point():
    used = {i for pair in connections() for i in pair}
    assert used == set(range(68))


def test_photometric_changes_pixels_but_not_shape():
    rgb = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    out = photometric(rgb, AugmentConfig(), np.random.default_rng(3))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb).mean() > 1
    same = photometric(
        rgb, AugmentConfig(brightness=0, contrast=0, gamma=0, saturation=0, hue=0), np.random.default_rng(3)
    )
    assert np.abs(same.astype(int) - rgb).max() <= 1


def test_mirroring_keeps_the_annotation_offset_on_the_same_side():
    """Points written 3 px right of their dots (a 1-based source, scaled) stay right of them in mirrored crops too."""
    pts = np.round(template(100, (130, 120)))
    sparse = [0, 8, 16, 30, 36, 45, 48, 54]  # well apart (and mirror-closed), so each window holds one dot
    img = dot_image(pts[sparse])
    offset = np.array([3.0, 0.0])
    cfg = AugmentConfig(rotation=20, shift=0.05, scale=0.1, flip=True)
    mirrored = []
    for seed in range(16):
        mirrored.append(random_geometry(pts + offset, 128, 1.8, cfg, np.random.default_rng(seed))[1])
        crop, cpts = geometric(img, pts + offset, 128, 1.8, cfg, np.random.default_rng(seed), offset=offset)
        gray = crop.max(-1).astype(float)
        dx = []
        for i in sparse:
            x, y = np.round(cpts[i]).astype(int)
            win = gray[y - 4 : y + 5, x - 4 : x + 5]
            dx.append(cpts[i, 0] - (win * np.arange(x - 4, x + 5)[None, :]).sum() / win.sum())
        assert np.mean(dx) > 1.5, (
            f"seed {seed} (mirrored: {mirrored[-1]}): points sit {np.mean(dx):.2f} px from their dots in x"
        )
    assert any(mirrored) and not all(mirrored)


def test_cache_shrinks_big_faces_without_aliasing(tmp_path):
    """1-px stripes shrunk 6x blur towards grey, as in inference crops; plain bilinear sampling keeps them."""
    from facepoints.annotations import Sample
    from facepoints.training_data import CACHE_CONTEXT, CACHE_SIDE, build_cache

    stripes = np.zeros((2400, 2400, 3), np.uint8)
    stripes[:, ::2] = 255
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), stripes)
    points = template(size=1000.0, centre=(1200.0, 1200.0))
    assert max(np.ptp(points, 0)) * CACHE_CONTEXT / CACHE_SIDE > 5  # a face far bigger than the cache keeps
    images, cached = build_cache([Sample(path, points)], tmp_path / "cache")
    inner = images[0, 40:-40, 40:-40, 0].astype(float)
    plain = warp(stripes, crop_matrix(*square_from_box(points_box(points), CACHE_CONTEXT), CACHE_SIDE), CACHE_SIDE)
    assert abs(inner.mean() - 127.5) < 10 and inner.std() < plain[40:-40, 40:-40, 0].std() / 2
    np.testing.assert_allclose(
        cached[0], crop_face(stripes, points_box(points), CACHE_SIDE, CACHE_CONTEXT).to_crop(points), atol=1e-3
    )

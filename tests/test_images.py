"""Images in: odd arrays refused by name, EXIF orientation applied, big images decoded without a second copy."""

import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from facepoints import FacepointsError, Landmarker
from facepoints.crop import points_box
from facepoints.images import load_image

from .conftest import painted_face, template


def test_api_rejects_odd_arrays_and_malformed_boxes_by_name(tiny_model):
    lm = Landmarker.from_pretrained(str(tiny_model / "model.pt"), backend="torch")
    img = painted_face(template())
    box = points_box(template())
    with pytest.raises(FacepointsError, match=r"1, 2, 3 or 4 channels, got shape \(200, 200, 5\)"):
        lm.detect(np.zeros((200, 200, 5), np.uint8), boxes=[box])
    with pytest.raises(FacepointsError, match="NaN or infinite"):
        lm.detect(np.full((20, 20, 3), np.nan, np.float32), boxes=[box])
    for boxes, needle in [
        ([1, 2, 3], r"shape \(N, 4\).*got \(3,\)"),
        ([[1, 2, 3]], r"got \(1, 3\)"),
        ([[0, 0, 50, 50], [10, np.nan, 60, 60]], "box 1 holds NaN"),
        ([[0, 0, np.inf, 50]], "infinite"),
        ([[60, 10, 20, 80]], r"box 0 .* inverted"),
        ([[10, 10, 10, 80]], "empty or inverted"),
        ("abcd", "expected numbers"),
    ]:
        with pytest.raises(FacepointsError, match=needle):
            lm.detect(img, boxes=boxes)
    assert len(lm.detect(img, boxes=np.zeros((0, 4)))) == 0
    assert len(lm.detect(img, boxes=list(box))) == 1  # one box as a flat list still works


def _sideways(upright: np.ndarray, path: Path) -> Path:
    """Store `upright` turned 90 degrees, as a phone does, with EXIF orientation 6 saying how to turn it back."""
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1)))  # 90 degrees counter-clockwise
    exif = stored.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored.save(path, exif=exif.tobytes())
    return path


def test_exif_orientation_is_applied_and_points_are_in_the_upright_frame(tiny_model, tmp_path):
    pts = template(90, (100, 120))
    upright = painted_face(pts, shape=(240, 200))
    path = _sideways(upright, tmp_path / "phone.png")
    np.testing.assert_array_equal(load_image(path), upright)
    lm = Landmarker.from_pretrained(str(tiny_model / "model.pt"), backend="torch")
    box = [points_box(pts)]
    from_file, from_array = lm.detect(path, boxes=box), lm.detect(upright, boxes=box)
    np.testing.assert_allclose(from_file.faces[0].points, from_array.faces[0].points, atol=1e-4)
    assert cv2.imread(str(from_file.save(tmp_path / "out.png"))).shape == upright.shape  # saved upright


def test_sideways_phone_photo_finds_its_face(tmp_path):
    photo = np.asarray(Image.open(Path(__file__).parents[1] / "examples" / "grace_hopper.jpg").convert("RGB"))
    path = _sideways(photo, tmp_path / "phone.jpg")
    r = Landmarker.from_pretrained(backend="onnxruntime").detect(path)
    assert len(r) == 1
    x1, y1, x2, y2 = r.faces[0].box
    assert y2 - y1 > (x2 - x1) * 0.8 and r.image.shape == photo.shape  # an upright face in the upright frame


def test_big_images_decode_without_a_second_full_copy_and_huge_ones_are_refused(tmp_path, monkeypatch):
    import facepoints.images as data

    big = np.random.default_rng(0).integers(0, 255, (2000, 3000, 3), dtype=np.uint8)
    Image.fromarray(big).save(tmp_path / "big.bmp")  # uncompressed: the decode itself needs no buffers
    Image.fromarray(big[:8, :8]).save(tmp_path / "small.bmp")
    load_image(tmp_path / "small.bmp")  # Pillow's lazily imported plugins (EXIF) load here, not in the measurement
    tracemalloc.start()
    try:
        loaded = load_image(tmp_path / "big.bmp")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(loaded, big)
    assert peak < 1.5 * big.nbytes  # the image and a strip; np.asarray(pil) held the image twice
    assert data.MAX_IMAGE_PIXELS <= Image.MAX_IMAGE_PIXELS  # refused before Pillow would warn of a bomb
    monkeypatch.setattr(data, "MAX_IMAGE_PIXELS", 5_000_000)
    with pytest.raises(FacepointsError, match=r"big\.bmp: image too large \(3000x2000 = 6 Mpx; the limit is 5 Mpx\)"):
        load_image(tmp_path / "big.bmp")

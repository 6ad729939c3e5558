import cv2
import numpy as np
import pytest
from PIL import Image

from facepoints.annotations import read_dataset, read_dlib_xml, read_pts, read_pts_folder, write_pts
from facepoints.errors import FacepointsError
from facepoints.images import load_image, to_rgb

from .conftest import template


def test_pts_round_trip_with_and_without_header(tmp_path):
    pts = template()
    write_pts(tmp_path / "a.pts", pts)
    np.testing.assert_allclose(read_pts(tmp_path / "a.pts"), pts, atol=1e-3)
    (tmp_path / "b.pts").write_text("\n".join(f"{x} {y}" for x, y in pts))
    np.testing.assert_allclose(read_pts(tmp_path / "b.pts"), pts, atol=1e-3)


def test_malformed_pts_names_file_and_line(tmp_path):
    lines = ["version: 1", "n_points: 68", "{"] + ["1 2"] * 10 + ["1 oops"] + ["1 2"] * 57 + ["}"]
    (tmp_path / "bad.pts").write_text("\n".join(lines))
    with pytest.raises(FacepointsError, match=r"bad\.pts:14: expected 'x y'"):
        read_pts(tmp_path / "bad.pts")


@pytest.mark.parametrize("n", [5, 67, 69])
def test_wrong_point_count(tmp_path, n):
    (tmp_path / "x.pts").write_text("\n".join(["{"] + ["1 2"] * n + ["}"]))
    with pytest.raises(FacepointsError, match=f"has {n} points, expected 68"):
        read_pts(tmp_path / "x.pts")


def test_header_count_mismatch(tmp_path):
    (tmp_path / "x.pts").write_text("\n".join(["n_points: 70", "{"] + ["1 2"] * 68 + ["}"]))
    with pytest.raises(FacepointsError, match="header says 70"):
        read_pts(tmp_path / "x.pts")


def test_folder_reader_finds_pairs_and_subsets(face_folder):
    samples = read_pts_folder(face_folder)
    assert len(samples) == 12
    assert {s.subset for s in samples} == {"a", "b"}
    assert all(s.points.shape == (68, 2) and s.points.dtype == np.float32 for s in samples)


def test_pts_without_image_and_image_without_pts(face_folder):
    (face_folder / "a" / "face1.jpg").unlink()
    with pytest.raises(FacepointsError, match=r"face1\.pts: annotation has no image"):
        read_pts_folder(face_folder)


def test_image_without_pts(face_folder):
    (face_folder / "a" / "face1.pts").unlink()
    with pytest.raises(FacepointsError, match=r"face1\.jpg: image has no \.pts"):
        read_pts_folder(face_folder)


def test_empty_folder(tmp_path):
    with pytest.raises(FacepointsError, match="no .pts annotation files"):
        read_pts_folder(tmp_path)


def test_dlib_xml(tmp_path, face_folder):
    pts = template()
    parts = "".join(f"<part name='{i:02d}' x='{x:.0f}' y='{y:.0f}'/>" for i, (x, y) in enumerate(pts))
    xml = (
        f"<dataset><images><image file='faces/a/face1.jpg'><box top='10' left='20' width='100' height='90'>"
        f"{parts}</box></image></images></dataset>"
    )
    (tmp_path / "labels.xml").write_text(xml)
    [s] = read_dataset(tmp_path / "labels.xml")
    assert s.image_path == tmp_path / "faces/a/face1.jpg"
    assert s.box == (20.0, 10.0, 120.0, 100.0)
    np.testing.assert_allclose(s.points, np.round(pts), atol=1e-4)


def test_dlib_xml_malformed(tmp_path):
    (tmp_path / "bad.xml").write_text("<dataset><images><image file='x.jpg'><box top='1'")
    with pytest.raises(FacepointsError, match=r"bad\.xml: not a readable XML"):
        read_dlib_xml(tmp_path / "bad.xml")
    (tmp_path / "few.xml").write_text(
        "<dataset><images><image file='x.jpg'><box top='1' left='1' width='5' height='5'><part name='0' x='1' "
        "y='1'/></box></image></images></dataset>"
    )
    with pytest.raises(FacepointsError, match="has 1 parts, expected 68"):
        read_dlib_xml(tmp_path / "few.xml")


def test_bad_images(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("this is not an image")
    good = np.zeros((20, 20, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "trunc.jpg"), good)
    data = (tmp_path / "trunc.jpg").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(FacepointsError, match=r"empty\.jpg: empty file"):
        load_image(tmp_path / "empty.jpg")
    with pytest.raises(FacepointsError, match=r"text\.jpg: not a decodable image"):
        load_image(tmp_path / "text.jpg")
    with pytest.raises(FacepointsError, match=r"trunc\.jpg: not a decodable image"):
        load_image(tmp_path / "trunc.jpg")
    with pytest.raises(FacepointsError, match=r"missing\.jpg: cannot open"):
        load_image(tmp_path / "missing.jpg")


def test_decompression_bomb_guard(tmp_path, monkeypatch):
    import facepoints.images as data

    Image.new("L", (50, 50)).save(tmp_path / "big.png")
    monkeypatch.setattr(data, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(FacepointsError, match="too large"):
        load_image(tmp_path / "big.png")


def test_image_modes(tmp_path):
    Image.new("L", (8, 6), 100).save(tmp_path / "g.png")
    Image.new("RGBA", (8, 6), (10, 20, 30, 40)).save(tmp_path / "rgba.png")
    Image.fromarray(np.full((6, 8), 65535, np.uint16)).save(tmp_path / "g16.png")
    Image.new("RGB", (8, 6), (1, 2, 3)).save(tmp_path / "c.webp", lossless=True)
    Image.new("RGB", (8, 6), (1, 2, 3)).save(tmp_path / "c.bmp")
    for name in ["g.png", "rgba.png", "g16.png", "c.webp", "c.bmp"]:
        img = load_image(tmp_path / name)
        assert img.shape == (6, 8, 3) and img.dtype == np.uint8, name
    assert load_image(tmp_path / "g16.png").max() == 255
    np.testing.assert_array_equal(load_image(tmp_path / "rgba.png")[0, 0], [10, 20, 30])
    assert to_rgb(np.ones((4, 4), np.float32)).max() == 255
    with pytest.raises(FacepointsError, match="expected an image array"):
        to_rgb(np.zeros((4,)))


def test_manifest_gives_annotation_offsets(face_folder):
    listed = sorted(face_folder.rglob("*.jpg"))[:2]
    rows = ["file,split,scale_x,scale_y"] + [f"{p.relative_to(face_folder.parent)},train,0.5,0.25" for p in listed]
    (face_folder.parent / "manifest.csv").write_text("\n".join(rows) + "\n")
    samples = read_pts_folder(face_folder)
    offsets = {s.image_path: s.offset for s in samples}
    assert [offsets[p] for p in listed] == [(0.5, 0.25)] * 2  # 1-based source pixels, scaled by the crop
    assert sum(o == (0.0, 0.0) for o in offsets.values()) == len(samples) - 2
    (face_folder.parent / "manifest.csv").write_text("name,value\na,1\n")  # someone else's manifest
    assert all(s.offset == (0.0, 0.0) for s in read_pts_folder(face_folder))
    (face_folder.parent / "manifest.csv").write_text("\n".join(rows[:2] + [f"{listed[1].name},train,x,1"]) + "\n")
    with pytest.raises(FacepointsError, match=r"manifest.csv:3: scale_x/scale_y"):
        read_pts_folder(face_folder)

"""`facepoints prepare 300w`: the publishers' two layouts -> the folder train and evaluate read (fabricated
downloads from tests/fake_300w.py), its refusals, and a one-epoch training and an evaluation on its output."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from facepoints.annotations import read_dlib_xml, read_pts, read_pts_folder
from facepoints.cli import main

from .conftest import files_in, one_line_error
from .fake_300w import COUNTS, as_tar_gz, dlib_300w, published_300w

# the columns of the project's own 300-W crops (../shared/data/300w/manifest.csv): what annotations.py reads
COLUMNS = (
    "file,split,subset,source,original,crop_x0,crop_y0,crop_x1,crop_y1,scale_x,scale_y,orig_w,orig_h,out_w,out_h"
).split(",")


def manifest(out) -> list[dict]:
    with open(out / "manifest.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def splits(out) -> dict[str, int]:
    return {s: len(list((out / s).rglob("*.pts"))) for s in ("train", "test", "challenging")}


def test_published_archives_keep_the_standard_split_and_the_publishers_bytes(tmp_path, capsys):
    src = published_300w(tmp_path / "download")
    out = tmp_path / "data" / "300w"
    assert main(["prepare", "300w", str(src), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ignored: 1 annotations" in printed and "the standard split has 3148" in printed, printed
    assert splits(out) == COUNTS
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "challenging", "manifest.csv", "test", "train"]
    assert sorted(p.name for p in (out / "train").iterdir()) == ["afw", "helen", "lfpw"]
    assert sorted(p.name for p in (out / "test").iterdir()) == ["helen", "lfpw"]
    rows = manifest(out)
    assert len(rows) == sum(COUNTS.values())
    for row in rows:
        image = out / row["file"]
        source = src / row["original"]
        assert image.read_bytes() == source.read_bytes()  # no crop, no scale: the publisher's file
        assert (row["scale_x"], row["scale_y"]) == ("1", "1")
        np.testing.assert_allclose(read_pts(image.with_suffix(".pts")), read_pts(source.with_suffix(".pts")))
        assert row["split"] == row["file"].split("/")[0] and row["subset"] == row["file"].split("/")[1]
    assert {r["original"].rsplit("/", 1)[0] for r in rows if r["split"] == "test"} == {
        "helen/testset",
        "lfpw/testset",
    }
    # train and evaluate read it with 300-W's 1-based offset, found through the manifest beside train/
    samples = read_pts_folder(out / "train")
    assert len(samples) == COUNTS["train"] and {s.offset for s in samples} == {(1.0, 1.0)}
    assert {s.subset for s in samples} == {"afw", "helen", "lfpw"}


def test_dlib_xml_archive_with_crop_and_scale(tmp_path):
    """dlib's folder as a .tar.gz: its XML files, mirrored copies left out; crop and scale in the manifest."""
    archive = as_tar_gz(dlib_300w(tmp_path / "dl"), tmp_path / "ibug_300W_large_face_landmark_dataset.tar.gz")
    out = tmp_path / "prepared"
    assert main(["prepare", "300w", str(archive), "-o", str(out), "--crop", "--max-side", "50"]) == 0
    assert splits(out) == COUNTS
    assert not any("mirror" in p.name for p in out.rglob("*"))
    rows = manifest(out)
    assert {r["source"] for r in rows} == {"dlib labels_ibug_300W_train.xml", "dlib labels_ibug_300W_test.xml"}
    xml_src = tmp_path / "dl" / "ibug_300W_large_face_landmark_dataset"
    xml_points = {
        s.image_path.relative_to(xml_src).as_posix(): s.points
        for name in ("labels_ibug_300W_train.xml", "labels_ibug_300W_test.xml")
        for s in read_dlib_xml(xml_src / name)
    }
    for row in rows:
        pts = read_pts((out / row["file"]).with_suffix(".pts"))
        sx, sy = float(row["scale_x"]), float(row["scale_y"])
        assert 0.3 < sx < 1 and 0.3 < sy < 1  # scaled: the landmark box at most 50 px
        assert np.ptp(pts, 0).max() <= 50.5
        assert row["file"].endswith(".jpg") and int(row["out_w"]) <= int(row["crop_x1"]) - int(row["crop_x0"])
        # mapped back into the source image: the XML's points
        back = (pts + 0.5) / [sx, sy] - 0.5 + [float(row["crop_x0"]), float(row["crop_y0"])]
        np.testing.assert_allclose(back, xml_points[row["original"]], atol=0.01)
    samples = read_pts_folder(out / "test")
    by_file = {(out / r["file"]).resolve(): r for r in rows}
    for s in samples:  # the offset travels: 1 source px in crop px
        r = by_file[s.image_path.resolve()]
        assert s.offset == pytest.approx((float(r["scale_x"]), float(r["scale_y"])))


def test_both_layouts_give_the_same_faces(tmp_path):
    """The .pts download and dlib's XML of the same faces: the same files, points within dlib's rounding."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["prepare", "300w", str(published_300w(tmp_path / "pub")), "-o", str(a)]) == 0
    assert main(["prepare", "300w", str(dlib_300w(tmp_path / "dl")), "-o", str(b)]) == 0
    files = sorted(str(p.relative_to(a)) for p in a.rglob("*.pts"))
    assert files == sorted(str(p.relative_to(b)) for p in b.rglob("*.pts"))
    for f in files:
        np.testing.assert_allclose(read_pts(a / f), read_pts(b / f), atol=0.5)


def _refused(capsys, argv, parent, *needles, code=1):
    before = files_in(parent)
    assert main(argv) == code
    one_line_error(capsys, *needles)
    assert files_in(parent) == before  # nothing written, no temporary folder left


@pytest.mark.parametrize(
    "damage, needle",
    [
        (
            lambda src: (src / "helen/trainset/1004_2.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n}\n"),
            "1004_2.pts",
        ),
        (lambda src: (src / "ibug/1012_1.jpg").unlink(), "1012_1.pts: annotation has no image"),
        (lambda src: (src / "afw/1000_1.jpg").write_bytes(b"not a jpeg"), "1000_1.jpg"),
    ],
    ids=["malformed-pts", "missing-image", "broken-image"],
)
def test_a_damaged_download_is_refused_whole(tmp_path, capsys, damage, needle):
    src = published_300w(tmp_path / "download")
    damage(src)
    out_parent = tmp_path / "data"
    out_parent.mkdir()
    _refused(capsys, ["prepare", "300w", str(src), "-o", str(out_parent / "300w")], out_parent, needle)


def test_a_damaged_dlib_xml_is_refused(tmp_path, capsys):
    base = dlib_300w(tmp_path / "dl")
    out_parent = tmp_path / "data"
    out_parent.mkdir()
    argv = ["prepare", "300w", str(base), "-o", str(out_parent / "300w")]
    xml = base / "labels_ibug_300W_test.xml"
    text = xml.read_text()
    xml.write_text(text.replace("</images>", ""))
    _refused(capsys, argv, out_parent, "labels_ibug_300W_test.xml", "not a readable XML")
    xml.write_text(text.replace("name='67'", "name='99'", 1))
    _refused(capsys, argv, out_parent, "labels_ibug_300W_test.xml", "expected 68")
    xml.write_text(text.replace("file='ibug/", "file='../ibug/", 1))
    _refused(capsys, argv, out_parent, "labels_ibug_300W_test.xml", "lies outside the XML's folder")
    xml.write_text(text)
    (base / "ibug" / "1012_1.jpg").unlink()
    _refused(capsys, argv, out_parent, "labels_ibug_300W_test.xml", "ibug/1012_1.jpg is missing")


def test_existing_output_and_wrong_sources_are_refused(tmp_path, capsys):
    src = published_300w(tmp_path / "download")
    out = tmp_path / "data" / "300w"
    out.mkdir(parents=True)
    (out / "keep.txt").write_text("mine")
    _refused(capsys, ["prepare", "300w", str(src), "-o", str(out)], tmp_path / "data", "not empty", code=2)
    (out / "keep.txt").unlink()  # an empty folder is fine
    empty = tmp_path / "empty"
    empty.mkdir()
    _refused(capsys, ["prepare", "300w", str(empty), "-o", str(out)], tmp_path / "data", "no 300-W faces found")
    _refused(capsys, ["prepare", "300w", str(tmp_path / "nope"), "-o", str(out)], tmp_path / "data", "no such file")
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"PK not really")
    _refused(capsys, ["prepare", "300w", str(bad), "-o", str(out)], tmp_path / "data", "not a readable archive")
    _refused(capsys, ["prepare", "300w", str(src), str(src), "-o", str(out)], tmp_path / "data", "given twice")
    assert main(["prepare", "300w", str(src), "-o", str(out)]) == 0
    assert splits(out) == COUNTS


def test_train_one_epoch_and_evaluate_on_the_prepared_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    shutil.copytree(published_300w(tmp_path / "download"), tmp_path / "300W copy")
    assert main(["prepare", "300w", "300W copy", "-o", "data/300w", "--crop", "--max-side", "80"]) == 0
    tiny = ["--model", "pipnet_small", "--batch-size", "4", "--workers", "0", "--precision", "fp32"]
    assert main(["train", "--data", "data/300w/train", "--out", "runs/tiny", "--epochs", "1", *tiny]) == 0
    run_config = json.loads((tmp_path / "runs" / "tiny" / "config.json").read_text())
    assert run_config["data"].endswith("data/300w/train")
    capsys.readouterr()
    argv = ["evaluate", "--data", "data/300w/test", "--model", "runs/tiny/model.pt", "--backend", "torch"]
    assert main([*argv, "--json", "test.json"]) == 0
    printed = capsys.readouterr().out
    assert "NME: mean point error / inter-ocular distance (outer eye corners" in printed, printed
    assert "fp32 weights on PyTorch" in printed, printed
    report = json.loads((tmp_path / "test.json").read_text())
    assert report["graph"] == "fp32 weights on PyTorch" and report["int8_may_saturate"] is False
    assert report["n_faces"] == COUNTS["test"] and set(report["subsets"]) == {"helen", "lfpw"}
    assert main([*argv, "--data", "data/300w/challenging", "--json", "ibug.json"]) == 0
    assert json.loads((tmp_path / "ibug.json").read_text())["n_faces"] == COUNTS["challenging"]

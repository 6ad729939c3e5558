"""Outputs: planned before any work (never over an input or another output, linear in the number of files),
then written atomically (a full disk is one line and leaves nothing). Every case is a reproduction on real files."""

import errno
import json
import os
from pathlib import Path

import torch

from facepoints import io_utils
from facepoints.cli import build_parser, main
from facepoints.detect import expand_inputs, plan_outputs

from .conftest import files_in, image_file, one_line_error, video_file


def _detect_cases(tmp: Path):
    """name -> (argv after `detect`, needle of the one-line error)."""
    w, v, d = tmp / "w", tmp / "v", tmp / "d"
    image_file(w / "a.jpg")
    (w / "a.json").write_text('{"mine": true}')  # the user's own file beside the photo
    video_file(v / "clip.mp4")
    video_file(v / "clip.landmarks.mp4")
    image_file(d / "1" / "x.jpg")
    image_file(d / "2" / "x.jpg", seed=1)
    image_file(d / "3" / "y.jpg")
    image_file(d / "3" / "y.png")
    out = tmp / "out"
    out.mkdir()
    os.symlink(w / "a.jpg", out / "a.landmarks.jpg")  # an output path that is a symlink to the input
    hard = tmp / "hard"
    hard.mkdir()
    os.link(w / "a.jpg", hard / "a.landmarks.jpg")  # ... and one that is a hard link to it
    return {
        "grid over the input": (
            [str(w / "a.jpg"), "--grid", str(w / "a.jpg"), "-o", str(tmp / "o1")],
            "would overwrite the input",
        ),
        "json over the input": ([str(w / "a.jpg"), "--json", str(w / "a.jpg"), "-o", str(tmp / "o2")], "--json"),
        "video over the second video": (
            [str(v / "clip.mp4"), str(v / "clip.landmarks.mp4"), "-o", str(v)],
            "would overwrite the input",
        ),
        "-o the input folder, user's a.json": ([str(w / "a.jpg"), "-o", str(w)], "never replaces one"),
        "same stem, two folders": ([str(d / "1" / "x.jpg"), str(d / "2" / "x.jpg"), "-o", str(tmp / "o3")], "both"),
        "same stem, jpg and png": ([str(d / "3"), "-o", str(tmp / "o4")], "would write this file"),
        "symlinked output": ([str(w / "a.jpg"), "-o", str(out)], "would overwrite the input"),
        "hard-linked output": ([str(w / "a.jpg"), "-o", str(hard)], "would overwrite the input"),
        "grid and json the same file": (
            [str(w / "a.jpg"), "--json", str(tmp / "t.png"), "--grid", str(tmp / "t.png")],
            "--json",
        ),
    }


def test_detect_refuses_every_output_that_replaces_an_input_or_another_output(tiny_model, tmp_path, capsys):
    """Refused outputs are bad option values: exit 2, like argparse."""
    cases = _detect_cases(tmp_path)
    for name, (argv, needle) in cases.items():
        before = files_in(tmp_path)
        code = main(["detect", *argv, "--model", str(tiny_model / "model.pt"), "--backend", "torch"])
        assert code == 2, name
        one_line_error(capsys, needle)
        assert files_in(tmp_path) == before, f"{name}: a file was written or changed"


def test_detect_same_stem_inputs_under_one_folder_keep_their_structure(tiny_model, tmp_path):
    image_file(tmp_path / "d" / "1" / "x.jpg")
    image_file(tmp_path / "d" / "2" / "x.jpg", seed=1)
    out = tmp_path / "out"
    assert (
        main(
            [
                "detect",
                str(tmp_path / "d"),
                "-o",
                str(out),
                "--model",
                str(tiny_model / "model.pt"),
                "--detector",
                "haar",
            ]
        )
        == 0
    )
    assert (out / "1" / "x.json").exists() and (out / "2" / "x.json").exists()


def test_detect_json_for_many_images_is_valid_json(tiny_model, tmp_path):
    image_file(tmp_path / "d" / "a.jpg")
    image_file(tmp_path / "d" / "b.jpg", seed=1)
    out = tmp_path / "all.json"
    assert (
        main(
            [
                "detect",
                str(tmp_path / "d"),
                "--json",
                str(out),
                "-o",
                str(tmp_path / "annotated"),  # not the default runs/detect of the checkout the tests run in
                "--model",
                str(tiny_model / "model.pt"),
                "--detector",
                "haar",
            ]
        )
        == 0
    )
    assert [Path(r["image"]).name for r in json.loads(out.read_text())] == ["a.jpg", "b.jpg"]
    assert (tmp_path / "annotated" / "a.landmarks.jpg").exists()


def test_detect_rerun_does_not_read_its_own_outputs(tiny_model, tmp_path, capsys):
    image_file(tmp_path / "photos" / "a.jpg")
    args = [
        "detect",
        str(tmp_path / "photos"),
        "-o",
        str(tmp_path / "photos" / "annotated"),
        "--model",
        str(tiny_model / "model.pt"),
        "--detector",
        "haar",
    ]
    assert main(args) == 0 and main(args) == 0
    assert "1 images" in capsys.readouterr().out.splitlines()[-1]
    assert not list((tmp_path / "photos" / "annotated").rglob("*.landmarks.landmarks.*"))


def test_evaluate_outputs_never_land_in_the_dataset_or_on_an_input(tiny_model, face_folder, tmp_path, capsys):
    image = next(face_folder.rglob("*.jpg"))
    model = ["--model", str(tiny_model / "model.pt"), "--backend", "torch"]
    before = files_in(face_folder)
    for extra, needle in [
        (["--json", str(image)], "would overwrite the input"),
        (["--ced", str(image)], "would overwrite the input"),
        (["--ced", str(face_folder / "ced.png")], "would read it as an input"),
        (["--json", str(face_folder / "eval.json")], "eval.ced.png"),  # the default CED beside it
        (["--ced", str(tmp_path / "ced.txt")], "suffix"),
    ]:
        assert main(["evaluate", "--data", str(face_folder), *model, *extra]) == 2, extra
        one_line_error(capsys, needle)
        assert files_in(face_folder) == before, extra
    assert main(["evaluate", "--data", str(face_folder), *model, "--json", str(tmp_path / "e.json")]) == 0


def test_export_never_replaces_the_weights_and_wants_a_file(tiny_model, tmp_path, capsys):
    weights = tmp_path / "m.pt"
    weights.write_bytes((tiny_model / "model.pt").read_bytes())
    os.symlink(weights, tmp_path / "link.onnx")
    (tmp_path / "folder.onnx").mkdir()
    for out, needle in [
        (weights, ".onnx suffix"),
        (tmp_path / "link.onnx", "would overwrite the input"),
        (tmp_path / "folder.onnx", "is a folder"),
    ]:
        assert main(["export", "--model", str(weights), "-o", str(out)]) == 2
        one_line_error(capsys, needle)
    assert weights.read_bytes() == (tiny_model / "model.pt").read_bytes()


def test_train_output_folder_inside_the_data_is_refused(face_folder, tmp_path, capsys):
    args = [
        "train",
        "--data",
        str(face_folder),
        "--out",
        str(face_folder / "run"),
        "--model",
        "pipnet_small",
        "--epochs",
        "1",
    ]
    assert main(args) == 2
    one_line_error(capsys, "would read it as an input")
    assert not (face_folder / "run" / "last.pt").exists()


def test_detect_bad_output_options_fail_before_any_work(tiny_model, tmp_path, capsys):
    image = image_file(tmp_path / "a.jpg")
    (tmp_path / "file").write_text("x")
    model = ["--model", str(tiny_model / "model.pt")]
    for extra, needle in [
        (["-o", str(tmp_path / "file")], "is an existing file"),
        (["--json", str(tmp_path)], "--json"),
        (["--json", str(tmp_path / "sub.jsonl"), "-o", str(tmp_path / "ok")], None),  # fine: the control case
        (["--grid", str(tmp_path / "x.txt")], "image suffix"),
        (["-o", str(tmp_path / "file" / "sub")], "is an existing file"),
        (["--json", str(tmp_path / "file" / "t.jsonl")], "is a file, not a folder"),
    ]:
        code = main(["detect", str(image), *model, "--detector", "haar", *extra])
        if needle is None:
            assert code == 0
            capsys.readouterr()
            continue
        assert code == 2, extra
        one_line_error(capsys, needle)
    (tmp_path / "dir.json").mkdir()
    assert main(["detect", str(image), *model, "--json", str(tmp_path / "dir.json")]) == 2
    one_line_error(capsys, "is a folder")


def _disk_full(self, data, *args, **kwargs):
    with open(self, "wb") as f:
        f.write(b"partial")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_while_writing_outputs_is_one_line_and_leaves_nothing(tiny_model, tmp_path, monkeypatch, capsys):
    image = image_file(tmp_path / "in" / "a.jpg")
    out = tmp_path / "out"
    monkeypatch.setattr(Path, "write_bytes", _disk_full)
    monkeypatch.setattr(Path, "write_text", _disk_full)
    assert (
        main(["detect", str(image), "-o", str(out), "--model", str(tiny_model / "model.pt"), "--detector", "haar"]) == 1
    )
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{out / 'a.landmarks.jpg'}: cannot write (No space left on device)" in err
    assert files_in(out) == {}  # no partial file, no temporary file


def test_disk_full_while_writing_checkpoints_is_one_line_and_leaves_nothing(face_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    real_save = torch.save

    def full(obj, f, *a, **k):
        if hasattr(f, "write") and Path(f.name).name.startswith(".best.pt"):
            f.write(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", full)
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                str(face_folder),
                "--out",
                str(out),
                "--model",
                "pipnet_small",
                "--epochs",
                "1",
                "--batch-size",
                "4",
                "--workers",
                "0",
                "--precision",
                "fp32",
            ]
        )
        == 1
    )
    one_line_error(capsys, f"{out / 'best.pt'}: cannot write (No space left on device)")
    assert not list(out.glob("*.pt")) and not list(out.glob(".*"))


def _folder(root, n):
    for i in range(n):
        sub = root / f"part{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"p{i:05d}.jpg").write_bytes(b"x")
    return root


def test_planning_a_big_folder_resolves_each_folder_once(tmp_path, monkeypatch):
    n = 3000
    src = _folder(tmp_path / "in", n)
    calls = {"realpath": 0, "stat": 0}
    real_realpath, real_stat = os.path.realpath, os.stat

    def counted_realpath(*a, **k):
        calls["realpath"] += 1
        return real_realpath(*a, **k)

    def counted_stat(*a, **k):
        calls["stat"] += 1
        return real_stat(*a, **k)

    args = build_parser().parse_args(["detect", str(src), "-o", str(tmp_path / "out"), "--no-images"])
    items = expand_inputs(args.inputs, skip=tmp_path / "out")
    assert len(items) == n
    monkeypatch.setattr(os.path, "realpath", counted_realpath)
    monkeypatch.setattr(os, "stat", counted_stat)
    plan = plan_outputs(args, items, tmp_path / "out")
    assert len([p for k, paths in plan.items() for p in paths if p is not None]) == n
    assert calls["realpath"] < 50, calls  # per folder, not per file (let alone per pair of files)
    assert calls["stat"] <= 3 * n, calls


def test_a_big_folder_still_refuses_a_collision_at_its_end(tmp_path):
    src = _folder(tmp_path / "in", 600)
    (src / "part2" / "p00599.png").write_bytes(b"x")  # beside p00599.jpg: both would write p00599.json
    args = build_parser().parse_args(["detect", str(src), "-o", str(tmp_path / "out"), "--no-images"])
    try:
        plan_outputs(args, expand_inputs(args.inputs), tmp_path / "out")
    except io_utils.UsageError as e:
        assert "p00599.json" in str(e) and "would write this file" in str(e)
    else:
        raise AssertionError("the collision was not found")


def test_listing_skips_the_runs_own_output_folder_without_resolving_each_file(tmp_path):
    src = _folder(tmp_path / "in", 30)
    out = src / "runs"
    _folder(out, 9)
    items = expand_inputs([str(src)], skip=out)
    assert len(items) == 30 and not any("runs" in str(rel) for _, rel in items)

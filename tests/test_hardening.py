"""Issue 14: nothing overwritten, nothing crashes. Every case is a reproduction on real files in tmp_path."""

import errno
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from facepoints import FacepointsError, Landmarker
from facepoints.cli import main
from facepoints.crop import points_box
from facepoints.data import load_image
from facepoints.weights import load_model

from .conftest import painted_face, template

TINY = {"widths": [8, 8, 16, 16], "depths": [1, 1, 1, 1], "head_chs": 16}


def _image(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(painted_face(template(), seed=seed), cv2.COLOR_RGB2BGR))
    return path


def _video(path: Path, n: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (200, 200))
    for i in range(n):
        vw.write(cv2.cvtColor(painted_face(template(), seed=i), cv2.COLOR_RGB2BGR))
    vw.release()
    return path


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under folder (hidden ones too) -> its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line_error(capsys, *needles) -> str:
    """The run's one message (progress bars aside), and no traceback."""
    full = capsys.readouterr().err
    lines = [x for x in full.replace("\r", "\n").splitlines() if x.startswith("facepoints:")]
    assert "Traceback" not in full and len(lines) == 1, full
    err = lines[0]
    assert err.startswith("facepoints: error: "), err
    for n in needles:
        assert n in err, err
    return err


# 1. no output may replace an input or another output of the same run ---------------------------------


def _detect_cases(tmp: Path):
    """name -> (argv after `detect`, needle of the one-line error)."""
    w, v, d = tmp / "w", tmp / "v", tmp / "d"
    _image(w / "a.jpg")
    (w / "a.json").write_text('{"mine": true}')  # the user's own file beside the photo
    _video(v / "clip.mp4")
    _video(v / "clip.landmarks.mp4")
    _image(d / "1" / "x.jpg")
    _image(d / "2" / "x.jpg", seed=1)
    _image(d / "3" / "y.jpg")
    _image(d / "3" / "y.png")
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
        before = _files(tmp_path)
        code = main(["detect", *argv, "--model", str(tiny_model / "model.pt"), "--backend", "torch"])
        assert code == 2, name
        _one_line_error(capsys, needle)
        assert _files(tmp_path) == before, f"{name}: a file was written or changed"


def test_detect_same_stem_inputs_under_one_folder_keep_their_structure(tiny_model, tmp_path):
    _image(tmp_path / "d" / "1" / "x.jpg")
    _image(tmp_path / "d" / "2" / "x.jpg", seed=1)
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
    _image(tmp_path / "d" / "a.jpg")
    _image(tmp_path / "d" / "b.jpg", seed=1)
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
    _image(tmp_path / "photos" / "a.jpg")
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
    before = _files(face_folder)
    for extra, needle in [
        (["--json", str(image)], "would overwrite the input"),
        (["--ced", str(image)], "would overwrite the input"),
        (["--ced", str(face_folder / "ced.png")], "would read it as an input"),
        (["--json", str(face_folder / "eval.json")], "eval.ced.png"),  # the default CED beside it
        (["--ced", str(tmp_path / "ced.txt")], "suffix"),
    ]:
        assert main(["evaluate", "--data", str(face_folder), *model, *extra]) == 2, extra
        _one_line_error(capsys, needle)
        assert _files(face_folder) == before, extra
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
        _one_line_error(capsys, needle)
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
    _one_line_error(capsys, "would read it as an input")
    assert not (face_folder / "run" / "last.pt").exists()


# 2./3. every option, file and failure: one line and a non-zero exit ----------------------------------

BAD_OPTIONS = [
    ["train", "--data", "d", "--batch-size", "0"],
    ["train", "--data", "d", "--lr", "-1"],
    ["train", "--data", "d", "--lr", "nan"],
    ["train", "--data", "d", "--workers", "-1"],
    ["train", "--data", "d", "--val-fraction", "1"],
    ["train", "--data", "d", "--ema", "1.5"],
    ["train", "--data", "d", "--epochs", "0"],
    ["train", "--data", "d", "--margin", "0"],
    ["train", "--data", "d", "--blur", "2"],
    ["train", "--data", "d", "--rotation", "-5"],
    ["train", "--data", "d", "--seed", "-1"],
    ["train", "--data", "d", "--cache-side", "0"],
    ["train", "--data", "d", "--warmup-epochs", "inf"],
    ["train", "--data", "d", "--batch-size", "2.5"],
    ["detect", "--camera", "-1"],
    ["detect", "x.mp4", "--redetect-every", "0"],
    ["detect", "x.mp4", "--max-frames", "0"],
    ["detect", "x.mp4", "--max-frames", "-5"],
    ["detect", "x.jpg", "--det-max-side", "10"],
    ["detect", "x.jpg", "--det-threshold", "1.5"],
    ["detect", "x.jpg", "--det-threshold", "inf"],
    ["evaluate", "--data", "d", "--det-max-side", "-3"],
]


@pytest.mark.parametrize("argv", BAD_OPTIONS, ids=lambda a: " ".join(a[:1] + a[-2:]))
def test_bad_numbers_are_an_argparse_error_at_parse_time(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"argument {argv[-2]}" in err.splitlines()[-1]


def test_detect_bad_output_options_fail_before_any_work(tiny_model, tmp_path, capsys):
    image = _image(tmp_path / "a.jpg")
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
        _one_line_error(capsys, needle)
    (tmp_path / "dir.json").mkdir()
    assert main(["detect", str(image), *model, "--json", str(tmp_path / "dir.json")]) == 2
    _one_line_error(capsys, "is a folder")


def _payload(tiny_model):
    return torch.load(tiny_model / "model.pt", weights_only=True)


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda p: p.pop("arch"), "missing field 'arch'"),
        (lambda p: p.pop("input_size"), "missing field 'input_size'"),
        (lambda p: p.update(input_size="128"), "field 'input_size'"),
        (lambda p: p.update(margin=0.0), "field 'margin'"),
        (lambda p: p.update(model_kwargs=[1, 2]), "field 'model_kwargs'"),
        (lambda p: p.update(model_kwargs={"nope": 1}), "model_kwargs do not fit"),
        (lambda p: p.update(model=[1, 2]), "field 'model'"),
        (lambda p: p.update(arch="resnet"), "unknown architecture 'resnet'"),
        (lambda p: p.update(format=3), "not a facepoints weights file"),
        (lambda p: p["train"].update(output_shift=5), "field 'train'"),
        (lambda p: p.update(format="facepoints-checkpoint/1", config=None), "malformed checkpoint"),
    ],
)
def test_hand_built_weights_give_one_line_naming_the_file(tiny_model, tmp_path, change, needle, capsys):
    payload = _payload(tiny_model)
    change(payload)
    path = tmp_path / "odd.pt"
    torch.save(payload, path)
    with pytest.raises(FacepointsError, match=r"odd\.pt: ") as e:
        load_model(str(path))
    assert needle in str(e.value)
    assert main(["export", "--model", str(path), "-o", str(tmp_path / "o.onnx")]) == 1
    _one_line_error(capsys, "odd.pt", needle)


def _disk_full(self, data, *args, **kwargs):
    with open(self, "wb") as f:
        f.write(b"partial")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_while_writing_outputs_is_one_line_and_leaves_nothing(tiny_model, tmp_path, monkeypatch, capsys):
    image = _image(tmp_path / "in" / "a.jpg")
    out = tmp_path / "out"
    monkeypatch.setattr(Path, "write_bytes", _disk_full)
    monkeypatch.setattr(Path, "write_text", _disk_full)
    assert (
        main(["detect", str(image), "-o", str(out), "--model", str(tiny_model / "model.pt"), "--detector", "haar"]) == 1
    )
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{out / 'a.landmarks.jpg'}: cannot write (No space left on device)" in err
    assert _files(out) == {}  # no partial file, no temporary file


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
    _one_line_error(capsys, f"{out / 'best.pt'}: cannot write (No space left on device)")
    assert not list(out.glob("*.pt")) and not list(out.glob(".*"))


def test_main_turns_system_errors_into_one_line_but_not_bugs(monkeypatch, tmp_path, capsys):
    import facepoints.detect as detect

    image = _image(tmp_path / "a.jpg")

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", "/somewhere/a.json")

    monkeypatch.setattr(detect, "plan_outputs", denied)
    assert main(["detect", str(image)]) == 1
    assert _one_line_error(capsys) == "facepoints: error: /somewhere/a.json: Permission denied"

    def bug(*a, **k):
        raise TypeError("a programming error")

    monkeypatch.setattr(detect, "plan_outputs", bug)
    with pytest.raises(TypeError):
        main(["detect", str(image)])


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


# 4. images as people take them ------------------------------------------------------------------------


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
    import facepoints.data as data

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


def test_corrupt_mp4_is_reported_once_without_decoder_noise(tiny_model, tmp_path):
    path = _video(tmp_path / "c.mp4", n=30)
    data = bytearray(path.read_bytes())
    for k in range(len(data) // 5, len(data) * 4 // 5, 97):
        data[k] ^= 0x5A
    path.write_bytes(bytes(data))
    import facepoints

    env = {
        **os.environ,
        "PYTHONPATH": str(Path(facepoints.__file__).parents[1]),
        "OMP_NUM_THREADS": "1",
    }  # this facepoints
    env.pop("OPENCV_FFMPEG_LOGLEVEL", None)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "facepoints.cli",
            "detect",
            str(path),
            "-o",
            str(tmp_path / "out"),
            "--model",
            str(tiny_model / "model.pt"),
            "--detector",
            "haar",
            "--backend",
            "torch",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    lines = [
        x for x in run.stderr.replace("\r", "\n").splitlines() if x.strip() and "frame/s" not in x
    ]  # not the progress bar
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert not any("mpeg4 @" in x for x in lines), lines[:5]
    assert sum("stopped decoding at frame" in x for x in lines) == 1 and len(lines) <= 3, lines


# 5. runs that can always be resumed, metrics that are never NaN -----------------------------------------


class Killed(BaseException):
    """Stands in for SIGKILL: nothing catches it."""


def _cfg(data, out, **kw):
    from facepoints.train import TrainConfig

    return TrainConfig(
        **{
            **dict(
                data=str(data),
                out=str(out),
                arch="pipnet_small",
                epochs=1,
                batch_size=6,
                workers=0,
                model_kwargs=TINY,
                progress_faces=2,
                precision="fp32",
            ),
            **kw,
        }
    )


def test_resume_works_from_every_kill_point_and_removes_stale_temp_files(face_folder, tmp_path, monkeypatch):
    import shutil

    from facepoints.checkpoint import load_checkpoint
    from facepoints.train import train

    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    real_replace = os.replace
    writes = []

    def count(src, dst):
        writes.append(Path(dst).name)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", count)
    train(_cfg(face_folder, tmp_path / "full"))
    n = len([w for w in writes if not w.startswith("crops-")])
    assert n >= 7  # config.json, best.pt, last.pt, model.pt, the progress frame, gif, curves, final model.pt
    for k in range(1, n + 1):
        out, calls = tmp_path / f"kill{k}", []

        def killed(src, dst):
            calls.append(dst)
            if len(calls) == k:
                shutil.copy(src, str(src) + "x")  # what SIGKILL leaves: the temporary file
                raise Killed
            return real_replace(src, dst)

        monkeypatch.setattr(os, "replace", killed)
        with pytest.raises(Killed):
            train(_cfg(face_folder, out))
        assert list(out.rglob(".*.tmp*")), k
        monkeypatch.setattr(os, "replace", real_replace)
        train(_cfg(face_folder, out), resume=True)  # killed before config.json (k=1): resumes from the start
        assert load_checkpoint(out / "last.pt")["epoch"] == 1, k
        assert load_model(str(out / "model.pt"))[1].output_shift is not None, k
        assert "output_shift" in torch.load(out / "model.pt", weights_only=True)["train"], k
        assert not list(out.rglob(".*.tmp*")), k


def test_resume_with_epochs_extends_the_run_and_other_options_are_refused(face_folder, tmp_path, monkeypatch, capsys):
    from facepoints.checkpoint import load_checkpoint

    monkeypatch.setenv("FACEPOINTS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    base = [
        "train",
        "--data",
        str(face_folder),
        "--out",
        str(out),
        "--model",
        "pipnet_small",
        "--batch-size",
        "6",
        "--workers",
        "0",
        "--precision",
        "fp32",
    ]
    assert main([*base, "--epochs", "1"]) == 0
    assert main([*base, "--epochs", "2", "--resume"]) == 0  # the same command line, plus --resume: extends
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
    assert load_checkpoint(out / "last.pt")["config"]["epochs"] == 2
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--epochs", "3", "--lr", "0.5"]) == 2
    _one_line_error(capsys, "--lr differ")
    assert main(["train", "--out", str(out), "--resume", "--epochs", "1"]) == 2
    _one_line_error(capsys, "already trained 2 epochs")
    assert load_checkpoint(out / "last.pt")["epoch"] == 2


def test_evaluate_with_every_face_missed_writes_valid_json_without_nan(tiny_model, face_folder, tmp_path, capsys):
    from facepoints.evaluate import Evaluation

    out = tmp_path / "e.json"
    # dlib with a score bar no face passes: every face is missed
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(face_folder),
                "--model",
                str(tiny_model / "model.pt"),
                "--boxes",
                "detector",
                "--detector",
                "dlib",
                "--det-threshold",
                "10",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "nan%" not in text and "n/a" in text and "missed by the detector" in text, text
    report = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert report["n_detected"] == 0 and report["nme_mean"] is None and "note" in report
    assert report["fr_0.08"] == 1.0 and report["auc_0.08"] == 0.0
    assert Evaluation(np.array([0.03, np.inf]), ["", ""], ["a", "b"]).report()["fr_0.08"] == 0.5


def test_ced_legend_shows_the_tables_nme_and_the_faces_found():
    from facepoints.drawing import ced_label
    from facepoints.evaluate import Evaluation

    nmes = np.array([0.03, 0.05, np.inf])
    mean = Evaluation(nmes, [""] * 3, ["a", "b", "c"]).report()["nme_mean"]
    assert (
        ced_label("fast", nmes)
        == f"fast (mean NME {100 * mean:.2f}%, 2/3 faces found)"
        == "fast (mean NME 4.00%, 2/3 faces found)"
    )
    assert ced_label("fast", nmes[:2]) == "fast (mean NME 4.00%)"

"""Options: the API's dataclasses and the CLI refuse the same bad values by the same rules, and a bad option
value is exit code 2 with one line, whichever layer finds it."""

import math

import cv2
import numpy as np
import pytest

from facepoints import Landmarker, LandmarkerOptions
from facepoints.cli import main
from facepoints.config import VideoOptions
from facepoints.errors import FacepointsError, UsageError

from .conftest import painted_face, template

BAD_LANDMARKER_OPTIONS = [
    {"threads": 0},
    {"threads": -2},
    {"threads": 1.5},
    {"max_faces": -1},
    {"max_faces": 0},
    {"detector_max_side": -5},
    {"detector_max_side": 10},
    {"detector_coarse_side": 20},
    {"detector": "dlib", "detector_coarse_side": 320},
    {"min_score": math.nan},
    {"min_score": math.inf},
    {"detector_threshold": math.nan},
    {"detector_threshold": 1.5},  # retinaface: a probability
    {"detector": "haar", "detector_threshold": math.nan},
    {"detector": "nope"},
    {"backend": "cuda"},
    {"video": "fast"},
]


@pytest.mark.parametrize("kwargs", BAD_LANDMARKER_OPTIONS, ids=str)
def test_landmarker_options_refuse_what_the_cli_refuses(kwargs):
    with pytest.raises(UsageError, match=next(iter(kwargs))):
        LandmarkerOptions(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"redetect_every": 0}, {"redetect_every": -3}, {"min_overlap": math.nan}, {"min_overlap": 2.0}], ids=str
)
def test_video_options_are_checked_when_built(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):  # a UsageError is a ValueError too
        VideoOptions(**kwargs)


def test_good_options_still_build():
    LandmarkerOptions(
        threads=2, max_faces=3, detector_max_side=None, min_score=-1e9, detector="dlib", detector_threshold=-0.5
    )
    LandmarkerOptions(detector_max_side=0)  # 0 = never shrink, as on the CLI
    LandmarkerOptions(detector="dlib", detector_coarse_side=0)  # off is fine for any detector
    assert Landmarker(LandmarkerOptions(detector_coarse_side=0)).detector.coarse_side is None
    assert Landmarker(LandmarkerOptions(detector_coarse_side=256)).detector.coarse_side == 256
    VideoOptions(redetect_every=1, min_overlap=0.0)


def test_a_nan_timestamp_is_refused_and_the_stream_goes_on(tiny_model):
    lm = Landmarker(LandmarkerOptions(model=str(tiny_model / "model.pt"), backend="torch", detector="haar"))
    frame = painted_face(template())
    for t in (math.nan, math.inf, -math.inf):  # on the first frame, a NaN used to make every later one "too early"
        with pytest.raises(FacepointsError, match="timestamp"):
            lm.detect_for_video(frame, t)
    lm.detect_for_video(frame, 0.0)
    for t in (math.nan, math.inf, -math.inf):
        with pytest.raises(FacepointsError, match="timestamp"):
            lm.detect_for_video(frame, t)
    lm.detect_for_video(frame, 40.0)  # the stream was not poisoned: the next real frame is accepted
    with pytest.raises(FacepointsError, match="not after"):
        lm.detect_for_video(frame, 40.0)


def _last_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line: no usage block before it
    return lines[0]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "--epochs", "1"], "--data"),
        (["export", "-o", "m.pt"], ".onnx suffix"),
        (["detect", "x.jpg", "--grid", "x.txt"], "image suffix"),
        (["detect"], "--camera"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_bad_option_values_found_by_the_verbs_exit_2(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cv2.imwrite("x.jpg", painted_face(template()))
    assert main(argv) == 2
    assert needle in _last_line(capsys)


def test_json_to_a_folder_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cv2.imwrite("x.jpg", painted_face(template()))
    (tmp_path / "dir.json").mkdir()
    assert main(["detect", "x.jpg", "--json", "dir.json"]) == 2
    assert "is a folder" in _last_line(capsys)


@pytest.mark.parametrize(
    "argv",
    [
        ["detect", "--threads", "0", "x.jpg"],
        ["nosuchverb"],
        ["train", "--bogus"],
        ["detect", "x.jpg", "--detector", "haar", "--det-threshold", "nan"],
    ],
)
def test_argparse_errors_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    line = _last_line(capsys)
    assert line.startswith("facepoints") and "error:" in line and "usage:" not in line


def test_uint16_image_holding_8_bit_values_is_refused_by_name(tiny_model):
    lm = Landmarker(LandmarkerOptions(model=str(tiny_model / "model.pt"), backend="torch", detector="haar"))
    img = painted_face(template()).astype(np.uint16)  # 0-255 in a 16-bit array: 8-bit data, not 16-bit
    with pytest.raises(FacepointsError, match="uint16.*0-255"):
        lm.detect(img)
    lm.detect(img * 257)  # a real 16-bit image is taken as such


def test_third_party_noise_stays_off_stderr(tmp_path):
    """A missing camera printed OpenCV's `[ WARN]` lines, and a refused huge image Pillow's
    DecompressionBombWarning, around facepoints' own one line."""
    import subprocess
    import sys

    from PIL import Image

    Image.new("L", (9990, 9990)).save(tmp_path / "huge.png")  # over Pillow's threshold: refused by name
    for argv in (["--camera", "99"], [str(tmp_path / "huge.png")]):
        run = subprocess.run(
            [sys.executable, "-m", "facepoints", "detect", *argv, "-o", str(tmp_path / "o")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 1
        lines = run.stderr.strip().splitlines()
        assert lines and all(x.startswith("facepoints: ") for x in lines), run.stderr


def test_the_api_says_arrays_are_rgb_not_opencv_bgr():
    """A BGR frame passed as is moves points by up to 6 px with no warning: the API must say which order it wants."""
    from facepoints.landmarker import as_rgb

    for doc in (Landmarker.detect.__doc__, as_rgb.__doc__):
        assert "RGB" in doc and "BGR" in doc and "cv2.COLOR_BGR2RGB" in as_rgb.__doc__

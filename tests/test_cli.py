"""The command line: a bad number is argparse's one line and exit 2 at parse time; a system error is one line."""

import errno

import pytest

from facepoints.cli import main

from .conftest import image_file, one_line_error

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


def test_main_turns_system_errors_into_one_line_but_not_bugs(monkeypatch, tmp_path, capsys):
    import facepoints.detect as detect

    image = image_file(tmp_path / "a.jpg")

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", "/somewhere/a.json")

    monkeypatch.setattr(detect, "plan_outputs", denied)
    assert main(["detect", str(image)]) == 1
    assert one_line_error(capsys) == "facepoints: error: /somewhere/a.json: Permission denied"

    def bug(*a, **k):
        raise TypeError("a programming error")

    monkeypatch.setattr(detect, "plan_outputs", bug)
    with pytest.raises(TypeError):
        main(["detect", str(image)])

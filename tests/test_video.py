"""Videos: a corrupt file is reported once, without the decoder's own messages."""

import os
import subprocess
import sys
from pathlib import Path

from .conftest import video_file


def test_corrupt_mp4_is_reported_once_without_decoder_noise(tiny_model, tmp_path):
    path = video_file(tmp_path / "c.mp4", n=30)
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

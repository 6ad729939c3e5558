"""A folder of many small photos through `facepoints detect`: how long until the first result is on disk, and
whether the total grows linearly with the folder.

The CLI plans every output before any work (io_utils.check_outputs); a plan that compares each output with
every other grows quadratically and holds back the first result (hundreds of photos already wait tens of
seconds), so the first result's time and the total's growth are what to watch. This script builds folders of
N copies of the example photo (shrunk to 160 px, shifted so no two are equal, in 3 subfolders), runs the CLI on
each as a user would, and polls the output folder for the first `.json`.

    python benchmarks/big_folders.py            # N = 1,000 and 10,000 (about 3 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from common import ROOT, write_section


def make_folder(root: Path, n: int) -> Path:
    photo = cv2.imread(str(ROOT / "examples" / "grace_hopper.jpg"))
    small = cv2.resize(photo, (128, 160), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = root / f"part{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        dx, dy = rng.integers(0, 12, 2)
        cv2.imwrite(str(sub / f"p{i:05d}.jpg"), np.ascontiguousarray(small[dy:, dx:]), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return root


def run(folder: Path, out: Path) -> tuple[float, float, int]:
    """(seconds to the first result on disk, total seconds, results written) of one CLI run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "facepoints", "detect", str(folder), "-o", str(out), "--no-images", "--threads", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    first = None
    while proc.poll() is None:
        if first is None and out.is_dir() and next(out.rglob("*.json"), None) is not None:
            first = time.perf_counter() - t0
        time.sleep(0.02)
    total = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"facepoints detect {folder} exited {proc.returncode}")
    return first if first is not None else total, total, sum(1 for _ in out.rglob("*.json"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            folder = make_folder(Path(tmp) / f"in{n}", n)
            first, total, written = run(folder, Path(tmp) / f"out{n}")
            assert written == n, (written, n)
            rows.append((n, first, total))
            print(f"{n} photos: first result after {first:.2f} s, all after {total:.1f} s ({n / total:.0f} img/s)")
    body = [
        "## Big folders (`facepoints detect FOLDER`, one thread)",
        "",
        "Photos of 128x160 px (the example photo, shifted), in 3 subfolders; `--no-images`, one JSON per photo.",
        "Time to the first result: from the command's start (Python, models and planning included) until the",
        "first JSON is on disk.",
        "",
        "| photos | first result | total | photos/s |",
        "|---:|---:|---:|---:|",
        *[f"| {n:,} | {first:.2f} s | {total:.1f} s | {n / total:.0f} |" for n, first, total in rows],
    ]
    write_section("big_folders", "\n".join(body), "python benchmarks/big_folders.py", data=ROOT / "examples")


if __name__ == "__main__":
    main()

"""Peak memory and time of `facepoints detect` on one very large photo, per detector: every detector works on a
copy capped at 1280 px (`--det-max-side`), and `--det-max-side 0` shows what full size costs.

    python benchmarks/memory.py            # a 9,400 x 9,400 PNG of the example photo; about 2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from common import ROOT, table, write_section

RUNS = {
    "retinaface (default)": [],
    "haar": ["--detector", "haar"],
    "dlib": ["--detector", "dlib"],
    "retinaface, --det-max-side 0": ["--det-max-side", "0"],
}


def peak_run(argv: list[str]) -> tuple[float, float]:
    """(peak resident GB, seconds) of one CLI run in a child process (its own ru_maxrss, nothing shared)."""
    t = time.perf_counter()
    code = (
        "import resource, sys; from facepoints.cli import main; rc = main(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)"
    )
    run = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"facepoints {' '.join(argv)}: exit {run.returncode}: {run.stderr.strip()[-300:]}")
    return int(run.stdout.strip().splitlines()[-1]) / 1024**2, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--side", type=int, default=9400)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / f"big{args.side}.png"
        cv2.imwrite(str(photo), cv2.resize(cv2.imread(str(ROOT / "examples" / "grace_hopper.jpg")), (args.side,) * 2))
        for name, extra in RUNS.items():
            gb, s = peak_run(["detect", str(photo), "-o", str(Path(tmp) / "out"), "--no-images", *extra])
            rows.append([name, f"{gb:.2f} GB", f"{s:.1f} s"])
            print(name, rows[-1][1:])
    body = (
        f"## Memory on a {args.side:,} x {args.side:,} photo (`facepoints detect`, one process)\n\n"
        "Peak resident memory (ru_maxrss) and wall time of the whole command: Python, models, decoding and the "
        "detector. The landmarks always come from the full-resolution image.\n\n"
        + table(["detector", "peak memory", "time"], rows)
    )
    write_section("memory", body, "python benchmarks/memory.py", data=ROOT / "examples")


if __name__ == "__main__":
    main()

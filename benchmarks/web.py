"""The browser site in headless Chromium: ms per frame for the detector and the landmark model
(onnxruntime-web, wasm, 1 thread), against the same steps in Python on the same machine, and how
closely the page agrees with Python. Writes BENCHMARKS.md, "Browser (onnxruntime-web)".

    cd web && npm ci && cd .. && python benchmarks/web.py [--screenshot docs/web_page.png]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from common import ROOT, table, write_section
from facepoints import website

EXAMPLE = ROOT / "examples" / "grace_hopper.jpg"


def frames():
    """name -> RGB: the example photo (512 x 600) and a 640 x 480 webcam-sized frame of it."""
    from facepoints.images import load_image

    g = load_image(EXAMPLE)
    h, w = g.shape[:2]
    m = np.array([[0.9, 0, 320 - 0.9 * w / 2], [0, 0.9, 240 - 0.9 * h * 0.42]])
    return {
        "photo_512x600.png": g,
        "frame_640x480.png": cv2.warpAffine(g, m, (640, 480), borderMode=cv2.BORDER_REPLICATE),
    }


def python_ms(rgb, repeats):
    """Median ms of the Python detector (RetinaFace, 1 thread) and landmark step (fp32 ONNX, 1 thread)."""
    from facepoints import Landmarker
    from facepoints.predictor import LandmarkPredictor

    lm = Landmarker.from_pretrained(threads=1)
    lm.predictor = LandmarkPredictor(None, backend="onnxruntime", threads=1, int8=False)
    det_ms, lm_ms = [], []
    for i in range(repeats + 3):
        t0 = time.perf_counter()
        det = lm.find_faces(rgb)
        t1 = time.perf_counter()
        lm.landmarks_for(rgb, det)
        t2 = time.perf_counter()
        if i >= 3:
            det_ms.append((t1 - t0) * 1e3)
            lm_ms.append((t2 - t1) * 1e3)
    return statistics.median(det_ms), statistics.median(lm_ms), lm


def browser_times(page, name: str, repeats: int) -> dict:
    """The page's detector and landmark ms per frame on bench/`name` (after 3 warm-up frames), and its faces."""
    return page.evaluate(
        """async ([name, n]) => {
        const img = await window.facepoints.imageFromUrl('bench/' + name);
        const fp = window.facepoints.fp, det = [], lm = [];
        let last;
        for (let i = 0; i < n + 3; i++) {
            last = await fp.process(img);
            if (i >= 3) { det.push(last.detectorMs); lm.push(last.landmarksMs); }
        }
        return {det, lm, faces: last.faces};
    }""",
        [name, repeats],
    )


def frame_row(res: dict, rgb: np.ndarray, repeats: int) -> list:
    """One image: the browser's ms beside Python's, and how far the page's points are from Python's."""
    py_det, py_lm, lm = python_ms(rgb, repeats)
    want = lm.detect(rgb)
    err = np.linalg.norm(
        np.asarray([f["points"] for f in res["faces"]]) - np.stack([f.points for f in want.faces]), axis=-1
    )
    h, w = rgb.shape[:2]
    return [
        f"{w} x {h}",
        len(res["faces"]),
        f"{statistics.median(res['det']):.1f}",
        f"{statistics.median(res['lm']):.1f}",
        f"{py_det:.1f}",
        f"{py_lm:.1f}",
        f"{err.mean():.4f} / {err.max():.3f}",
    ]


def measure(repeats: int, screenshot: str | None) -> tuple[str, list]:
    """Builds the site with the frames beside it, serves it to headless Chromium and times each frame there and
    in Python: (Chromium's version, the table's rows)."""
    from playwright.sync_api import sync_playwright  # the [web] extra

    images = frames()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        site = website.build(Path(tmp) / "site")
        (site / "bench").mkdir()
        for name, rgb in images.items():
            cv2.imwrite(str(site / "bench" / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        with website.serve(site) as url, sync_playwright() as p:
            ctx = website.launch_chromium(p, Path(tmp) / "profile", viewport={"width": 1000, "height": 860})
            page = ctx.new_page()
            page.goto(url)
            page.evaluate("window.facepoints.ready")
            version = page.evaluate("navigator.userAgent").split("Chrome/")[-1].split(" ")[0]
            for name, rgb in images.items():
                rows.append(frame_row(browser_times(page, name, repeats), rgb, repeats))
            if screenshot:
                page.evaluate("window.facepoints.show('bench/photo_512x600.png')")
                page.screenshot(path=screenshot, full_page=True)
                print(f"-> {screenshot}")
            ctx.close()
    return version, rows


def report(version: str, repeats: int, rows: list) -> str:
    return (
        "### Browser (onnxruntime-web)\n\n"
        f"The static site (`scripts/build_web.py`) in headless Chromium {version} (Debian), onnxruntime-web "
        f"{json.loads((ROOT / 'web' / 'package.json').read_text())['dependencies']['onnxruntime-web']}, wasm backend, "
        f"1 thread (a plain static server is not cross-origin isolated, so wasm threads are off), fp32 landmark model. "
        f"Median ms per frame over {repeats} frames after 3 warm-up frames; the Python columns are the same steps "
        "(RetinaFace, fp32 landmark ONNX, 1 thread each) in this process. The landmark step includes the crop warp in "
        "JavaScript. The last column is the distance between the page's points and Python's (whole pipeline, "
        "same image), in px.\n\n"
        + table(
            [
                "image",
                "faces",
                "browser detector ms",
                "browser landmarks ms",
                "Python detector ms",
                "Python landmarks ms",
                "points vs Python mean / max px",
            ],
            rows,
        )
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--screenshot", default=None, help="also save a screenshot of the page with the example photo here")
    args = ap.parse_args(argv)
    version, rows = measure(args.repeats, args.screenshot)
    write_section("web", report(version, args.repeats, rows), "python benchmarks/web.py --screenshot docs/web_page.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

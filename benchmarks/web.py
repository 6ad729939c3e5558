"""The browser page in headless Chromium, served with and without cross-origin isolation (COOP/COEP, as
`facepoints web` serves it: wasm threads; without: one thread): ms of the detector and the landmark step at
640 x 480, and the processed frames per second of webcam tracking on Chromium's fake camera; the same steps in
Python on the same machine, and how closely the page's points agree with Python's. Writes BENCHMARKS.md,
"Browser (onnxruntime-web)".

    cd web && npm ci && cd .. && python benchmarks/web.py [--screenshot docs/web_page.png]
"""

from __future__ import annotations

import argparse
import json
import os
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


CAMERA_FPS = 60  # the fake camera's clip plays at 60 fps, so the page, not the camera, bounds the processed rate


def clip_frames(g, n=120):
    """640 x 480 frames of the photo moving back and forth (no jump when the camera loops the clip)."""
    h, w = g.shape[:2]
    out = []
    for i in range(n):
        t = 0.5 - 0.5 * np.cos(2 * np.pi * i / n)
        zoom, shift = 0.85 + 0.2 * t, -50 + 100 * t
        m = np.array([[zoom, 0, 320 - zoom * w / 2 + shift], [0, zoom, 240 - zoom * h * 0.42]], np.float64)
        out.append(cv2.warpAffine(g, m, (640, 480), borderMode=cv2.BORDER_REPLICATE))
    return out


def python_figures(rgb, clip, repeats):
    """Median ms of the Python detector (RetinaFace, 1 thread) and landmark step (fp32 trust graph, 1 thread), and
    the frames per second of its video tracking (detect_for_video) on the clip's frames."""
    from facepoints import Landmarker
    from facepoints.predictor import LandmarkPredictor

    lm = Landmarker.from_pretrained(threads=1, detector_coarse_side=0)  # the page's steps: one full detector pass
    lm.predictor = LandmarkPredictor(None, backend="onnxruntime", threads=1, int8=False)
    det_ms, lm_ms = [], []
    for i in range(repeats + 3):
        t0 = time.perf_counter()
        det = lm.find_faces(rgb)
        t1 = time.perf_counter()
        lm.landmarks_and_trust_for(rgb, det)
        t2 = time.perf_counter()
        if i >= 3:
            det_ms.append((t1 - t0) * 1e3)
            lm_ms.append((t2 - t1) * 1e3)
    lm.reset_video()
    t0 = time.perf_counter()
    for i, f in enumerate(clip):
        lm.detect_for_video(f, i * 1000 / CAMERA_FPS)
    fps = len(clip) / (time.perf_counter() - t0)
    return statistics.median(det_ms), statistics.median(lm_ms), fps, lm


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


def webcam_fps(page, seconds: float) -> dict:
    """Webcam tracking on the fake camera for `seconds` (after 2 s of warm-up): the page's stats.fps (processed
    frames per second over its last 3 s), frames, frames with a face and detector runs."""
    page.evaluate("async () => { await window.facepoints.startCamera(); }")
    page.wait_for_timeout(2000)
    start = page.evaluate("() => ({...window.facepoints.stats, t: performance.now()})")
    page.wait_for_timeout(seconds * 1000)
    end = page.evaluate("() => ({...window.facepoints.stats, t: performance.now()})")
    page.evaluate("async () => { await window.facepoints.stopCamera(); }")
    frames = end["frames"] - start["frames"]
    return {
        "fps": end["fps"],
        "mean_fps": frames * 1000 / (end["t"] - start["t"]),
        "frames": frames,
        "with_face": end["withFace"] - start["withFace"],
        "detector_runs": end["detectorRuns"] - start["detectorRuns"],
    }


def measure(repeats: int, seconds: float, screenshot: str | None) -> tuple[str, list, dict]:
    """Builds the site with the frames beside it, serves it to headless Chromium with and without isolation, and
    times it there and in Python: (Chromium's version, the table's rows, the Python figures)."""
    from playwright.sync_api import sync_playwright  # the [web] extra

    from facepoints.images import load_image

    g = load_image(EXAMPLE)
    clip = clip_frames(g)
    frame = clip[0]
    py_det, py_lm, py_fps, lm = python_figures(frame, clip, repeats)
    want = np.stack([f.points for f in lm.detect(frame).faces])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        site = website.build(Path(tmp) / "site")
        (site / "bench").mkdir()
        cv2.imwrite(str(site / "bench" / "frame_640x480.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        y4m = website.write_y4m(Path(tmp) / "clip.y4m", clip, fps=CAMERA_FPS)
        camera = [
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={y4m}",
        ]
        with sync_playwright() as p:
            for isolated in (True, False):
                with website.serve(site, isolated=isolated) as url:
                    ctx = website.launch_chromium(p, Path(tmp) / f"profile{int(isolated)}", camera)
                    ctx.grant_permissions(["camera"], origin=url.rstrip("/"))
                    page = ctx.new_page()
                    page.goto(url)
                    page.evaluate("async () => await window.facepoints.ready")
                    version = page.evaluate("navigator.userAgent").split("Chrome/")[-1].split(" ")[0]
                    runtime = page.evaluate("window.facepoints.runtime")
                    assert runtime["isolated"] == isolated, runtime
                    res = browser_times(page, "frame_640x480.png", repeats)
                    err = np.linalg.norm(np.asarray([f["points"] for f in res["faces"]]) - want, axis=-1)
                    cam = webcam_fps(page, seconds)
                    rows.append(
                        [
                            "yes (COOP/COEP)" if isolated else "no",
                            runtime["threads"],
                            f"{statistics.median(res['det']):.1f}",
                            f"{statistics.median(res['lm']):.1f}",
                            f"{cam['fps']:.1f} ({cam['mean_fps']:.1f})",
                            f"{cam['detector_runs']} of {cam['frames']}",
                            f"{cam['with_face']} of {cam['frames']}",
                            f"{err.mean():.4f} / {err.max():.3f}",
                        ]
                    )
                    print(rows[-1], flush=True)
                    if screenshot and isolated:
                        page.evaluate("async () => await window.facepoints.show('bench/frame_640x480.png')")
                        page.screenshot(path=screenshot, full_page=True)
                        print(f"-> {screenshot}")
                    ctx.close()
    return version, rows, {"det": py_det, "lm": py_lm, "fps": py_fps}


def report(version: str, repeats: int, seconds: float, rows: list, py: dict) -> str:
    ort_web = json.loads((ROOT / "web" / "package.json").read_text())["dependencies"]["onnxruntime-web"]
    return (
        "## Browser (onnxruntime-web)\n\n"
        f"The page (`facepoints web`; built by `scripts/build_web.py`) in headless Chromium {version} (Debian), "
        f"onnxruntime-web {ort_web}, wasm SIMD backend, fp32 landmark model with trust outputs, RetinaFace detector. "
        "Served with the COOP/COEP headers the page is cross-origin isolated and runs wasm threads (up to 4, one per "
        "core); without them, one thread. Detector and landmark ms: median over "
        f"{repeats} runs on a 640 x 480 frame after 3 warm-up runs (the landmark step includes the crop warp in "
        "JavaScript and the trust outputs). Webcam: tracking (detector on the first frame, on loss and every 15 "
        f"frames; crops from the last points between; One Euro smoothing) on Chromium's fake camera playing a "
        f"{CAMERA_FPS} fps 640 x 480 clip, for {seconds:g} s after 2 s of warm-up: `window.facepoints.stats.fps` "
        "(processed frames per second over the last 3 s) and, in brackets, the mean over the whole run. Target: "
        ">= 30 processed frames/s. The last column: the page's points against Python's on the same frame (px).\n\n"
        + table(
            [
                "cross-origin isolated",
                "wasm threads",
                "detector ms (640 x 480)",
                "landmarks ms",
                "webcam processed fps",
                "detector runs",
                "frames with a face",
                "points vs Python mean / max px",
            ],
            rows,
        )
        + "\n\nPython on the same machine, one thread, with the page's steps (one full-size detector pass, fp32): "
        f"detector {py['det']:.1f} ms, landmarks {py['lm']:.1f} ms, "
        f"video tracking (detect_for_video) {py['fps']:.0f} frames/s on the same clip's frames. The machine's load "
        f"average (1 min) was {py['load'][0]:.1f} at the start and {py['load'][1]:.1f} at the end, on "
        f"{py['load'][2]} cores: on a shared machine the figures are only comparable within this run."
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10, help="seconds of webcam tracking per setting")
    ap.add_argument("--screenshot", default=None, help="also save a screenshot of the page with the example photo here")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    version, rows, py = measure(args.repeats, args.seconds, args.screenshot)
    py["load"] = (load, os.getloadavg()[0], os.cpu_count())
    write_section(
        "web",
        report(version, args.repeats, args.seconds, rows, py),
        "python benchmarks/web.py --screenshot docs/web_page.png",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

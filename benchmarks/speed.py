"""Speed: the landmark step per face (1 thread), batched throughput (2 threads), dlib's predictor in the
same run, folder throughput on 640x480 images with per-stage split, and video (fps, jitter).

Run: python benchmarks/speed.py [--data ../shared/data/300w/test] [--faces 200]
Run it on an otherwise idle machine: the timings are wall-clock medians.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from common import (
    DATA,
    DlibShapePredictor,
    make_640x480,
    median_ms,
    on_canvas,
    per_face_ms,
    table,
    test_faces,
    write_section,
)
from facepoints import Landmarker
from facepoints.crop import crop_face, points_box, to_gray
from facepoints.detectors import create_detector
from facepoints.images import load_image
from facepoints.predictor import LandmarkPredictor
from facepoints.smoothing import jitter
from facepoints.video import FaceTracker, VideoOptions
from facepoints.weights import shipped_models


def landmark_speed(name: str, images, boxes, repeat: int) -> list:
    rows = []
    auto_int8 = LandmarkPredictor(name, threads=1).int8  # the graph the predictor picks on this CPU (graph_choice.py)
    for backend, int8 in (("onnxruntime", True), ("onnxruntime", False), ("torch", False)):
        p1 = LandmarkPredictor(name, backend=backend, threads=1, int8=int8)
        if int8 and not p1.int8:
            continue  # no shipped int8 graph for this model
        crops = np.stack(
            [to_gray(crop_face(im, tuple(b), p1.input_size, p1.margin).image) for im, b in zip(images, boxes)]
        )
        k = iter(range(10**9))
        model_ms = median_ms(lambda: p1.run_crops(crops[next(k) % len(crops)][None]), repeat)
        step_ms = per_face_ms(p1.predict, images, boxes, repeat)
        p2 = LandmarkPredictor(name, backend=backend, threads=2, int8=int8)
        batch = crops[:32]
        batch_ms = median_ms(lambda: p2.run_crops(batch), max(5, repeat // 20))
        label = backend + (" int8" if int8 else " fp32" if backend == "onnxruntime" else "")
        label += " (default here)" if backend == "onnxruntime" and int8 == auto_int8 else ""
        rows.append(
            [
                f"facepoints {name}",
                label,
                f"{model_ms:.3f} ms",
                f"{step_ms:.3f} ms",
                f"{batch_ms / len(batch):.3f} ms",
                f"{1000 * len(batch) / batch_ms:.0f}",
            ]
        )
    return rows


def folder_throughput(paths, model: str) -> list:
    rows = []
    for label, det_name, more in (
        ("retinaface (coarse pass, default)", "retinaface", {}),
        ("retinaface, one full pass (`--det-coarse-side 0`)", "retinaface", {"detector_coarse_side": 0}),
        ("dlib", "dlib", {}),
        ("haar", "haar", {}),
    ):
        lm = Landmarker.from_pretrained(model, detector=det_name, threads=1, pose=False, **more)
        t_dec = t_det = t_lm = 0.0
        faces = 0
        for p in paths:
            t0 = time.perf_counter()
            rgb = load_image(p)
            t1 = time.perf_counter()
            d = lm.find_faces(rgb)
            t2 = time.perf_counter()
            pts = lm.landmarks_for(rgb, d)
            t3 = time.perf_counter()
            t_dec, t_det, t_lm, faces = t_dec + t1 - t0, t_det + t2 - t1, t_lm + t3 - t2, faces + len(pts)
        n = len(paths)
        total = t_dec + t_det + t_lm
        rows.append(
            [
                label,
                n,
                faces,
                f"{n / total:.1f}",
                f"{1000 * t_dec / n:.2f}",
                f"{1000 * t_det / n:.2f}",
                f"{1000 * t_lm / n:.2f}",
            ]
        )
    return rows


def video_bench(sample, model: str, frames: int = 120, noise: float = 4.0) -> list:
    """A still face in 640x480 frames with Gaussian sensor noise: fps and landmark jitter."""
    base = on_canvas(load_image(sample.image_path))
    rng = np.random.default_rng(0)
    clip = [np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8) for _ in range(frames)]
    rows = []
    for label, opts in [
        ("detector every frame, raw", VideoOptions(redetect_every=1, smooth=False)),
        ("tracking, raw", VideoOptions(redetect_every=15, smooth=False)),
        ("tracking + One Euro smoothing", VideoOptions(redetect_every=15, smooth=True)),
    ]:
        lm = Landmarker.from_pretrained(model, threads=1)
        tracker = FaceTracker(lm, opts)
        track = []
        t = time.perf_counter()
        for i, f in enumerate(clip):
            r = tracker.update(f, i / 30)
            if r.faces:
                track.append(r.faces[0].points)
        fps = frames / (time.perf_counter() - t)
        rows.append(
            [
                label,
                f"{fps:.1f}",
                f"{100 * jitter(np.stack(track)):.3f}%" if len(track) > 1 else "n/a",
                f"{len(track)}/{frames}",
            ]
        )
    return rows


def dlib_row(samples, images, repeat: int) -> list:
    """dlib's predictor per face, on dlib's detector's boxes (where it finds no face, a box made from the
    annotation through the detector's box map)."""
    ref = DlibShapePredictor()
    dlib_det = create_detector("dlib")
    dboxes = []
    for im, s in zip(images, samples):
        d = dlib_det.detect(im)
        dboxes.append(d.boxes[0] if len(d.boxes) else dlib_det.box_map.apply(np.array([points_box(s.points)]))[0])
    dlib_ms = per_face_ms(ref.predict, images, dboxes, repeat)
    return ["dlib shape_predictor_68", "dlib (C++)", "—", f"{dlib_ms:.3f} ms", "—", f"{1000 / dlib_ms:.0f} (1 thread)"]


def report(n_faces: int, rows: list, folder_rows: list, video_rows: list) -> str:
    return "\n".join(
        [
            "## Speed",
            "",
            "Landmark step per face on **one CPU thread**: *model* = the network on a ready 128x128 crop; "
            "*step* = grayscale conversion, crop, network and mapping points back, for one face in a 300-W test "
            "image (what dlib's predictor call does). *Batched*: 32 crops per call on 2 threads. Medians over "
            "repeated runs on the "
            f"first {n_faces} test faces.",
            "",
            table(
                [
                    "method",
                    "backend",
                    "model, 1 thread",
                    "step, 1 thread",
                    "batched per face, 2 threads",
                    "faces/s batched",
                ],
                rows,
            ),
            "",
            "Folder of 100 JPEGs, 640x480, one face each (300-W test faces scaled onto a grey canvas), default model, "
            "ONNX Runtime on 1 thread; per-image milliseconds by stage:",
            "",
            table(["detector", "images", "faces", "images/s", "decode ms", "detect ms", "landmarks ms"], folder_rows),
            "",
            "Video, 640x480, a still face with Gaussian sensor noise (sigma 4 grey levels), 120 frames, default "
            "model, 1 thread. Jitter = mean frame-to-frame landmark motion in % of the inter-ocular distance "
            "(the face does not move, so all motion is jitter):",
            "",
            table(["mode", "fps", "jitter", "frames with a face"], video_rows),
        ]
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA / "test"))
    ap.add_argument("--faces", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=300)
    args = ap.parse_args()
    samples, images, boxes = test_faces(args.data, args.faces)
    rows = []
    for name in [m for m in ("fast", "accurate", "xception") if m in shipped_models()]:
        rows += landmark_speed(name, images, boxes, args.repeat if name != "xception" else max(20, args.repeat // 10))
    rows.append(dlib_row(samples, images, args.repeat))
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_640x480(samples, 100, Path(tmp))
        folder_rows = folder_throughput(paths, "fast")
    video_rows = video_bench(samples[0], "fast")
    write_section("speed", report(len(samples), rows, folder_rows, video_rows), "python benchmarks/speed.py")


if __name__ == "__main__":
    main()

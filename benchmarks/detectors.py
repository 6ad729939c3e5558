"""Face detectors compared in one run on the same images: recall, false positives, speed, and what
their boxes do to the landmarks of the default model.

Sets (300-W test/ and stress copies of it made by scripts/make_stress_sets.py, default runs/stress):
test, blur, occluded (grey bar nose to chin), small (faces of 40-80 px in 1280x720 frames),
rolled15..rolled60. A face counts as found when a detection's centre lies inside its landmark box
and the detection's side is 0.5-2x the landmark box's; every other detection counts as a false
positive (a few test/ images hold other, unannotated faces, so FP/image is an upper bound).

Also: the default landmark model's NME with each detector's boxes (and with upright crops from
RetinaFace's keypoints), images/s of `facepoints detect` on a folder of 640x480 photos, and
video fps with tracking. Everything on one thread.

Run: python scripts/make_stress_sets.py && python benchmarks/detectors.py [--stress runs/stress]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from common import DATA, ROOT, make_640x480, on_canvas, table, write_section
from facepoints import Landmarker
from facepoints.annotations import read_pts_folder
from facepoints.crop import points_box
from facepoints.detectors import DETECTORS, roll_degrees
from facepoints.evaluate import match_detection
from facepoints.images import load_image
from facepoints.metrics import nme
from facepoints.predictor import LandmarkPredictor
from facepoints.video import FaceTracker, VideoOptions

# (label, detector name, constructor options); the first is the default
CONFIGS = [
    ("retinaface (default: 1280 px cap)", "retinaface", {"threshold": 0.3}),
    ("retinaface, 640 px cap", "retinaface", {"threshold": 0.3, "max_side": 640}),
    ("retinaface, 480 px cap", "retinaface", {"threshold": 0.3, "max_side": 480}),
    ("retinaface, 320 px cap", "retinaface", {"threshold": 0.3, "max_side": 320}),
    ("dlib HOG, upsample 1", "dlib", {"upsample": 1}),
    ("dlib HOG, upsample 0", "dlib", {"upsample": 0}),
    ("OpenCV Haar", "haar", {}),
]
MAIN = [0, 4, 5, 6]  # the configurations in every table; the caps only where they matter (small faces, speed)
SETS = ["test", "blur", "occluded", "small", "rolled15", "rolled30", "rolled45", "rolled60"]
THRESHOLDS = (0.3, 0.5, 0.7, 0.9)
DEFAULT_THRESHOLD = 0.5


@dataclass
class Pass:
    """One detector over one set: per face, the detections, the matched index (or None) and the time."""

    detections: list
    matches: list
    seconds: list


def found(det, points, min_score: float | None = None) -> tuple[int | None, int]:
    """(index of the detection that finds the face or None, number of false positives)."""
    boxes, scores = det.boxes, det.scores
    keep = np.ones(len(boxes), bool) if min_score is None else scores > min_score
    boxes = boxes[keep]
    j = match_detection(boxes, points)
    if j is not None:
        x1, y1, x2, y2 = points_box(points)
        ratio = max(boxes[j, 2] - boxes[j, 0], boxes[j, 3] - boxes[j, 1]) / max(x2 - x1, y2 - y1)
        if not 0.5 <= ratio <= 2:
            j = None
    fp = len(boxes) - (j is not None)
    return (None if j is None else int(np.flatnonzero(keep)[j])), fp


def run_pass(detector, samples, desc) -> Pass:
    dets, secs = [], []
    for s in tqdm(samples, desc=desc, unit="img", leave=False):
        image = load_image(s.image_path)
        t = time.perf_counter()
        dets.append(detector.detect(image))
        secs.append(time.perf_counter() - t)
    return Pass(dets, [None] * len(dets), secs)


def recall_row(p: Pass, samples, min_score=None) -> tuple[int, float]:
    hits, fps = 0, 0
    for det, s in zip(p.detections, samples):
        j, fp = found(det, s.points, min_score)
        hits += j is not None
        fps += fp
    return hits, fps / len(samples)


def landmark_nmes(p: Pass, samples, detector, predictor, upright: bool, min_score=None) -> np.ndarray:
    """NME of each found face with this detector's boxes (inf where missed)."""
    out = []
    for det, s in zip(p.detections, samples):
        j, _ = found(det, s.points, min_score)
        if j is None:
            out.append(np.inf)
            continue
        angles = roll_degrees(det.keypoints[j : j + 1]) if upright and det.keypoints is not None else None
        box = detector.landmark_boxes(det.boxes[j : j + 1], angles)
        out.append(float(nme(predictor.predict(load_image(s.image_path), box, angles)[0], s.points)[0]))
    return np.asarray(out)


def fmt_nme(v: np.ndarray) -> str:
    f = v[np.isfinite(v)]
    return f"{100 * f.mean():.2f}% ({len(f)}/{len(v)})" if len(f) else "—"


def make_detector(name, opts):
    """The detector of a configuration at its default score threshold (the passes run lower, for the sweep)."""
    return DETECTORS[name](**{k: v for k, v in opts.items() if k != "threshold"})


def folder_speed(paths, label, name, opts) -> list:
    """`facepoints detect` on a folder: decode + detect + landmarks per image, one thread, no outputs written."""
    lm = Landmarker.from_pretrained(None, detector=make_detector(name, opts), threads=1, pose=False)
    lm.detect(paths[0])
    faces, t = 0, time.perf_counter()
    for p in paths:
        faces += len(lm.detect(p))
    dt = time.perf_counter() - t
    return [label, len(paths), faces, f"{len(paths) / dt:.1f}", f"{1000 * dt / len(paths):.1f}"]


def video_speed(sample, label, name, opts, frames: int = 150) -> list:
    """640x480 clip of a still face with sensor noise: fps with tracking (detector every 15 frames) and every frame."""
    base = on_canvas(load_image(sample.image_path))
    rng = np.random.default_rng(0)
    clip = [np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8) for _ in range(frames)]
    row = [label]
    for every in (15, 1):
        lm = Landmarker.from_pretrained(None, detector=make_detector(name, opts), threads=1)
        tracker = FaceTracker(lm, VideoOptions(redetect_every=every, smooth=True))
        n, t = 0, time.perf_counter()
        for i, f in enumerate(clip):
            n += len(tracker.update(f, i / 30)) > 0
        row += [f"{frames / (time.perf_counter() - t):.0f}", f"{n}/{frames}"]
    return row


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA / "test"))
    ap.add_argument("--stress", default=str(ROOT / "runs" / "stress"))
    ap.add_argument("--images", type=int, default=100, help="640x480 photos for the folder speed")
    ap.add_argument(
        "--limit", type=int, default=None, help="first N faces of each set (a quick try; not for BENCHMARKS.md)"
    )
    return ap.parse_args()


def read_sets(test: str, stress: str, limit: int | None) -> dict[str, list]:
    """Set name -> its annotated faces: test/ and the stress copies of it."""
    folders = {"test": Path(test), **{s: Path(stress) / s for s in SETS[1:]}}
    missing = [str(f) for f in folders.values() if not f.is_dir()]
    if missing:
        raise SystemExit(f"missing stress sets {missing}: run python scripts/make_stress_sets.py first")
    return {name: read_pts_folder(f)[:limit] for name, f in folders.items()}


def detection_passes(detectors: list, data: dict[str, list]) -> dict[tuple[int, str], Pass]:
    """Every main configuration on every set; the caps on test and small only."""
    passes = {}
    for ci, (label, _, _) in enumerate(CONFIGS):
        for set_name in SETS if ci in MAIN else ["test", "small"]:
            passes[ci, set_name] = run_pass(detectors[ci], data[set_name], f"{label} / {set_name}")
    return passes


def threshold(ci: int) -> float | None:
    """RetinaFace rows use the default threshold; the pass ran at 0.3 for the threshold table."""
    return DEFAULT_THRESHOLD if CONFIGS[ci][1] == "retinaface" else None


def recall_tables(passes: dict, data: dict[str, list]) -> tuple[list, list]:
    """Recall / false positives per image (and median time) of each configuration; then RetinaFace's by
    score threshold."""
    recall_rows = []
    for ci in MAIN + [1, 2, 3]:
        row = [CONFIGS[ci][0]]
        for set_name in SETS[:4]:
            if (ci, set_name) not in passes:
                row.append("—")
                continue
            hits, fp = recall_row(passes[ci, set_name], data[set_name], threshold(ci))
            row.append(f"{100 * hits / len(data[set_name]):.1f}% / {fp:.2f}")
        recall_rows.append(
            row
            + [
                f"{1000 * np.median(passes[ci, 'test'].seconds):.1f}",
                f"{1000 * np.median(passes[ci, 'small'].seconds):.1f}",
            ]
        )
    thr_rows = []
    for t in THRESHOLDS:
        row = [f"{t}" + (" (default)" if t == DEFAULT_THRESHOLD else "")]
        for set_name in SETS[:4]:
            hits, fp = recall_row(passes[0, set_name], data[set_name], t)
            row.append(f"{100 * hits / len(data[set_name]):.1f}% / {fp:.2f}")
        thr_rows.append(row)
    return recall_rows, thr_rows


def landmark_tables(passes: dict, data: dict[str, list], detectors: list, predictor) -> tuple[list, list]:
    """The default model's NME with landmark boxes and with each main configuration's boxes (RetinaFace with and
    without upright crops); then the targets: the default detector against landmark boxes and rolled faces."""
    lm_ref = {}
    for set_name in SETS:
        s = data[set_name]
        lm_ref[set_name] = np.array(
            [
                nme(predictor.predict(load_image(x.image_path), np.array([points_box(x.points)]))[0], x.points)[0]
                for x in s
            ]
        )
    nme_rows = [["landmark boxes (tight box of the annotation)"] + [fmt_nme(lm_ref[s]) for s in SETS]]
    upright_vals = {}
    for ci in MAIN:
        variants = [(True, " + upright crop"), (False, "")] if CONFIGS[ci][1] == "retinaface" else [(False, "")]
        for upright, suffix in variants:
            vals = {
                s: landmark_nmes(passes[ci, s], data[s], detectors[ci], predictor, upright, threshold(ci)) for s in SETS
            }
            if ci == 0:
                upright_vals[upright] = vals
            nme_rows.append([CONFIGS[ci][0] + suffix] + [fmt_nme(vals[s]) for s in SETS])

    def rel(a, b):
        a, b = a[np.isfinite(a)].mean(), b[np.isfinite(b)].mean()
        return f"{100 * (a / b - 1):+.1f}%"

    up = upright_vals[True]
    target_rows = [
        ["default detector boxes vs landmark boxes, test/ (target within +5%)", rel(up["test"], lm_ref["test"])],
        *[
            [f"{s} vs upright test/, default detector (target within +15% up to 45 degrees)", rel(up[s], up["test"])]
            for s in SETS[4:]
        ],
        *[
            [f"{s}: upright crop vs axis-aligned crop, default detector", rel(up[s], upright_vals[False][s])]
            for s in ["test", *SETS[4:]]
        ],
    ]
    return nme_rows, target_rows


def end_to_end(test: list, images: int) -> tuple[list, list]:
    """Folder speed of every configuration on `images` 640x480 photos; video fps of some."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_640x480(test, images, Path(tmp))
        speed_rows = [folder_speed(paths, CONFIGS[ci][0], CONFIGS[ci][1], CONFIGS[ci][2]) for ci in range(len(CONFIGS))]
    video_rows = [video_speed(test[0], CONFIGS[ci][0], CONFIGS[ci][1], CONFIGS[ci][2]) for ci in [0, 2, 4, 5, 6]]
    return speed_rows, video_rows


def report(n: dict[str, int], images: int, recall_rows, thr_rows, nme_rows, target_rows, speed_rows, video_rows) -> str:
    return "\n".join(
        [
            "## Face detectors",
            "",
            f"300-W test/ ({n['test']} faces) and copies of it made by `scripts/make_stress_sets.py`: *blur* "
            "(Gaussian, sigma 4% of the face), *occluded* (grey bar from the nose tip to below the chin), *small* (the "
            "image scaled so the face is 40-80 px, pasted into a 1280x720 frame of smooth noise), *rolledN* (turned N "
            "degrees about the face, alternately each way). Found = a detection's centre inside the landmark box and "
            "its side 0.5-2x the box's; every other detection is a false positive (FP; some test/ images hold "
            "unannotated faces, so FP/image is an upper bound). One thread. RetinaFace rows at its default score "
            "threshold 0.5.",
            "",
            "Recall / false positives per image, and median detection time per image:",
            "",
            table(
                ["detector", "test/", "blur", "occluded", "small (1280x720)", "ms test/ image", "ms 1280x720"],
                recall_rows,
            ),
            "",
            "RetinaFace's score threshold (default 1280 px cap), recall / FP per image:",
            "",
            table(["threshold", "test/", "blur", "occluded", "small"], thr_rows),
            "",
            "Landmarks: mean NME of the default model (`fast`, int8 ONNX) over the faces each detector finds "
            "(found/all). *Upright crop*: each face turned upright by the roll of RetinaFace's eye and mouth "
            "keypoints before the landmark model (the default); otherwise an axis-aligned crop. Landmark boxes are "
            "axis-aligned.",
            "",
            table(["boxes", *SETS], nme_rows),
            "",
            table(["target / comparison", "relative NME"], target_rows),
            "",
            f"End to end, `Landmarker.detect(path)` as `facepoints detect` runs it on a folder of {images} 640x480 "
            "JPEGs (one face each: test/ faces scaled onto a grey canvas): decode + detect + landmarks, one thread:",
            "",
            table(["detector", "images", "faces", "images/s", "ms/image"], speed_rows),
            "",
            "Video, 640x480, a still face with sensor noise, 150 frames, tracking + smoothing, one thread: fps with "
            "the detector every 15 frames (the default) and every frame, and frames with a face:",
            "",
            table(["detector", "fps, detector every 15", "frames", "fps, detector every frame", "frames"], video_rows),
        ]
    )


def main():
    args = parse_args()
    data = read_sets(args.data, args.stress, args.limit)
    detectors = [DETECTORS[name](**opts) for _, name, opts in CONFIGS]
    predictor = LandmarkPredictor(None, threads=1)  # the default model, as shipped (int8 ONNX)
    passes = detection_passes(detectors, data)
    recall_rows, thr_rows = recall_tables(passes, data)
    nme_rows, target_rows = landmark_tables(passes, data, detectors, predictor)
    speed_rows, video_rows = end_to_end(data["test"], args.images)
    n = {s: len(data[s]) for s in SETS}
    body = report(n, args.images, recall_rows, thr_rows, nme_rows, target_rows, speed_rows, video_rows)
    if args.limit:
        print(body)
        return
    write_section("detectors", body, "python benchmarks/detectors.py")


if __name__ == "__main__":
    main()

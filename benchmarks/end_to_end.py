"""End to end at 640x480 on one thread (issue 27, target 2): where an image's time goes, RetinaFace's coarse-to-fine
pass against one full-resolution pass in the same run, what the coarse pass does to recall, and the CLI's folder rate.

- Stages: decode, detect, landmarks (crops, network, trust heads), faces (result objects, pose), per image, on a
  folder of 640x480 JPEGs (one 300-W test face each, as speed.py). Old and new alternate round by round (the
  machine is shared: medians of the rounds, and the ratio of the same round's rates).
- Recall: test/ and the stress sets (scripts/make_stress_sets.py) with one full pass and with the coarse pass, the
  share of images that needed the full pass, and the default model's NME on each detector's boxes. *crowd*: a
  test/ face made big (~300 px) and another small (40-80 px) in one 1280x720 frame: the case the coarse pass can
  lose (a small face beside a big one), counted on the small faces.
- CLI: `facepoints detect FOLDER -o OUT --threads 1` as a user runs it (Python start, model load, annotated
  images and JSON written), old and new alternating.

Run: python scripts/make_stress_sets.py && python benchmarks/end_to_end.py [--images 100] [--rounds 5]
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

from common import DATA, ROOT, make_640x480, on_canvas, table, test_faces, write_section
from facepoints import Landmarker
from facepoints.annotations import read_pts_folder
from facepoints.crop import points_box
from facepoints.detectors import RetinaFaceDetector, crop_boxes
from facepoints.evaluate import match_detection
from facepoints.images import load_image
from facepoints.metrics import nme
from facepoints.pose import safe_pose
from facepoints.predictor import LandmarkPredictor
from facepoints.results import build_faces

SETS = ["test", "blur", "occluded", "small", "rolled15", "rolled30", "rolled45", "rolled60"]  # as detectors.py
OLD, NEW = 0, 320  # coarse_side: 0 = one full pass (the previous default), 320 = the coarse pass
LABELS = {OLD: "one full pass (before)", NEW: "coarse pass at half size, full pass if needed"}


def read_sets(test: Path, stress: str, limit: int | None) -> dict[str, list]:
    folders = {"test": test, **{s: Path(stress) / s for s in SETS[1:]}}
    missing = [str(f) for f in folders.values() if not f.is_dir()]
    if missing:
        raise SystemExit(f"missing stress sets {missing}: run python scripts/make_stress_sets.py first")
    return {name: read_pts_folder(f)[:limit] for name, f in folders.items()}


def found(det, points) -> int | None:
    """The detection that finds the face (as detectors.py counts it: its centre in the landmark box, its side
    0.5-2x the box's), or None."""
    j = match_detection(det.boxes, points)
    if j is None:
        return None
    x1, y1, x2, y2 = points_box(points)
    b = det.boxes[j]
    return j if 0.5 <= max(b[2] - b[0], b[3] - b[1]) / max(x2 - x1, y2 - y1) <= 2 else None


def stage_round(lm: Landmarker, paths: list[Path]) -> dict[str, float]:
    """Seconds per stage over the folder, as Landmarker.detect runs them without pose (as speed.py); 'cpu' is the
    thread's CPU time; 'pose' (not in the total) what head pose would add."""
    t = dict.fromkeys(["decode", "detect", "landmarks", "faces", "pose"], 0.0)
    full, points = 0, []
    cpu, wall = time.thread_time(), time.perf_counter()
    for p in paths:
        t0 = time.perf_counter()
        rgb = load_image(p)
        t1 = time.perf_counter()
        det = lm.find_faces(rgb)
        full += lm.detector.last_passes != "coarse"
        t2 = time.perf_counter()
        found_ = lm.landmarks_and_trust_for(rgb, det)
        t3 = time.perf_counter()
        points.append(found_.points)
        build_faces(det.boxes, det.scores, found_.points, rgb.shape[1::-1], False, found_.presence)
        t4 = time.perf_counter()
        for k, a, b in (("decode", t0, t1), ("detect", t1, t2), ("landmarks", t2, t3), ("faces", t3, t4)):
            t[k] += b - a
    t["total"] = time.perf_counter() - wall
    t["cpu"] = time.thread_time() - cpu
    t0 = time.perf_counter()
    for pts in points:
        [safe_pose(q, (640, 480)) for q in pts]
    t["pose"] = time.perf_counter() - t0
    t["full"] = full
    return t


def stages(paths: list[Path], rounds: int) -> tuple[list, list]:
    lms = {c: Landmarker.from_pretrained(None, threads=1, pose=False, detector_coarse_side=c) for c in (OLD, NEW)}
    for lm in lms.values():
        lm.detect(paths[0])  # sessions warm, priors cached
    runs: dict[int, list] = {OLD: [], NEW: []}
    for r in range(rounds):
        for c in (OLD, NEW) if r % 2 == 0 else (NEW, OLD):
            runs[c].append(stage_round(lms[c], paths))
    n = len(paths)
    rows = []
    for c in (OLD, NEW):
        med = {k: float(np.median([x[k] for x in runs[c]])) for k in runs[c][0]}
        rows.append(
            [
                LABELS[c],
                f"{n / med['total']:.1f}",
                f"{n / med['cpu']:.1f}",
                *[f"{1000 * med[k] / n:.2f}" for k in ("decode", "detect", "landmarks", "faces", "total", "pose")],
                f"{100 * med['full'] / n:.0f}%",
            ]
        )
    ratios = [runs[OLD][i]["total"] / runs[NEW][i]["total"] for i in range(rounds)]
    cpu = [runs[OLD][i]["cpu"] / runs[NEW][i]["cpu"] for i in range(rounds)]
    ratio_rows = [
        ["wall clock", f"{np.median(ratios):.2f}x", f"{min(ratios):.2f}x - {max(ratios):.2f}x"],
        ["CPU time of the thread", f"{np.median(cpu):.2f}x", f"{min(cpu):.2f}x - {max(cpu):.2f}x"],
    ]
    return rows, ratio_rows


def crowd_set(test: list, n: int, folder: Path) -> list[tuple[Path, np.ndarray, np.ndarray]]:
    """(image, big face's points, small face's points) in 1280x720 frames of flat grey."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        canvas = np.full((720, 1280, 3), 110, np.uint8)
        faces = []
        for s, side, x0 in ((test[i], 300.0, 20), (test[-1 - i], float(rng.uniform(40, 80)), 1000)):
            im = load_image(s.image_path)
            x1, y1, x2, y2 = points_box(s.points)
            f = side / max(x2 - x1, y2 - y1)
            # the face and some context around it (1.8x its box), scaled, pasted at x0 and a random height
            cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, 0.9 * max(x2 - x1, y2 - y1)
            a, b = int(max(0, cx - half)), int(max(0, cy - half))
            patch = im[b : int(min(im.shape[0], cy + half)), a : int(min(im.shape[1], cx + half))]
            patch = cv2.resize(patch, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)[:700, :840]
            y0 = int(rng.integers(10, 720 - patch.shape[0] - 9)) if patch.shape[0] < 700 else 10
            canvas[y0 : y0 + patch.shape[0], x0 : x0 + patch.shape[1]] = patch
            faces.append((s.points - [a, b]) * f + [x0, y0])
        p = folder / f"crowd{i:03d}.png"
        cv2.imwrite(str(p), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
        out.append((p, faces[0], faces[1]))
    return out


def scaled(samples: list, lo: float, hi: float, frame=(720, 1280), seed: int = 0) -> list:
    """(image, [points]): each face scaled to a side of lo-hi px and pasted into a frame of smooth random texture,
    as scripts/make_stress_sets.py makes its *small* set (40-80 px)."""
    rng = np.random.default_rng(seed)
    out = []
    for s in samples:
        im, pts = load_image(s.image_path), s.points
        x1, y1, x2, y2 = points_box(pts)
        f = rng.uniform(lo, hi) / max(x2 - x1, y2 - y1)
        im = cv2.resize(im, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)[: frame[0], : frame[1]]
        noise = rng.integers(0, 256, (frame[0] // 40, frame[1] // 40, 3), dtype=np.uint8)
        canvas = cv2.GaussianBlur(cv2.resize(noise, frame[::-1], interpolation=cv2.INTER_CUBIC), (0, 0), 8)
        h, w = im.shape[:2]
        y, x = int(rng.integers(0, frame[0] - h + 1)), int(rng.integers(0, frame[1] - w + 1))
        canvas[y : y + h, x : x + w] = im
        out.append((canvas, [((pts + 0.5) * f - 0.5 + [x, y]).astype(np.float32)]))
    return out


def canvas640(samples: list) -> list:
    """(image, [points]): common.on_canvas's 640x480 frames (speed's folder), with the points mapped."""
    out = []
    for s in samples:
        im = load_image(s.image_path)
        f = 400 / im.shape[0]
        w = min(600, round(im.shape[1] * f))
        out.append((on_canvas(im), [((s.points + 0.5) * f - 0.5 + [(640 - w) // 2, 40]).astype(np.float32)]))
    return out


def recall(data: dict[str, list], crowd: list, predictor: LandmarkPredictor) -> list:
    """Per set: recall with one full pass and with the coarse pass, the coarse detector's full-pass share, mean NME
    on each one's boxes (faces both find), median detect ms of each."""
    dets = {c: RetinaFaceDetector(coarse_side=c) for c in (OLD, NEW)}
    rows = []
    test = data["test"]
    sets = {name: [(s.image_path, [s.points]) for s in data[name]] for name in SETS}
    sets["test/ on 640x480 (speed's folder)"] = canvas640(test)
    sets["faces 80-160 px in 1280x720"] = scaled(test, 80, 160, seed=1)
    sets["faces 160-400 px in 1280x720"] = scaled(test, 160, 400, seed=2)
    sets["crowd"] = [(p, [big, small]) for p, big, small in crowd]
    for name, items in sets.items():
        hits = {c: np.zeros(2, int) for c in (OLD, NEW)}
        errs: dict[int, list] = {OLD: [], NEW: []}
        ms: dict[int, list] = {OLD: [], NEW: []}
        full = 0
        for path, faces in items:
            rgb = path if isinstance(path, np.ndarray) else load_image(path)
            got = {}
            for c in (OLD, NEW):
                t = time.perf_counter()
                got[c] = dets[c].detect(rgb)
                ms[c].append(1000 * (time.perf_counter() - t))
            full += dets[NEW].last_passes != "coarse"
            for k, pts in enumerate(faces):
                js = {c: found(got[c], pts) for c in (OLD, NEW)}
                for c in (OLD, NEW):
                    hits[c][k] += js[c] is not None
                if name != "crowd" and None not in js.values():
                    for c in (OLD, NEW):
                        boxes, angles = crop_boxes(dets[c], got[c].take(slice(js[c], js[c] + 1)))
                        errs[c].append(float(nme(predictor.predict(rgb, boxes, angles)[0], pts)[0]))
        n = len(items)
        k = 1 if name == "crowd" else 0  # the crowd set counts its small faces (its big ones: in the note below)
        row = [name, n]
        row += [f"{100 * hits[c][k] / n:.1f}%" for c in (OLD, NEW)]
        row += [f"{100 * full / n:.0f}%"]
        row += [f"{100 * np.mean(errs[c]):.3f}%" if errs[c] else "—" for c in (OLD, NEW)]
        row += [f"{np.median(ms[c]):.1f}" for c in (OLD, NEW)]
        if name == "crowd":
            row[0] = f"crowd (small faces; big ones {hits[OLD][0]}/{n} and {hits[NEW][0]}/{n})"
        rows.append(row)
        print(row, flush=True)
    return rows


def cli_round(folder: Path, out: Path, coarse: int, extra: list[str]) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "facepoints", "detect", str(folder), "-o", str(out), "--threads", "1"]
    t = time.perf_counter()
    subprocess.run(
        [*cmd, "--det-coarse-side", str(coarse), *extra],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t


def cli(folder: Path, tmp: Path, n: int, rounds: int) -> list:
    rows = []
    for extra, what in (([], "annotated images + JSON"), (["--no-images"], "JSON only")):
        secs: dict[int, list] = {OLD: [], NEW: []}
        for r in range(rounds):
            for c in (OLD, NEW) if r % 2 == 0 else (NEW, OLD):
                secs[c].append(cli_round(folder, tmp / f"out{c}_{r}_{len(extra)}", c, extra))
        for c in (OLD, NEW):
            s = float(np.median(secs[c]))
            rows.append([what, LABELS[c], f"{s:.1f} s", f"{n / s:.1f}"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=100, help="640x480 photos for the stage split")
    ap.add_argument("--cli-images", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--stress", default=str(ROOT / "runs" / "stress"))
    ap.add_argument("--limit", type=int, default=None, help="first N faces of each set (a try; not for BENCHMARKS.md)")
    ap.add_argument("--crowd", type=int, default=200)
    args = ap.parse_args()
    samples, _, _ = test_faces(DATA / "test", max(args.images, args.cli_images))
    data = read_sets(DATA / "test", args.stress, args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "folder").mkdir()
        paths = make_640x480(samples, args.cli_images, tmp / "folder")
        stage_rows, ratio_rows = stages(paths[: args.images], args.rounds)
        print(table(["", "median", "range"], ratio_rows), flush=True)
        cli_rows = cli(tmp / "folder", tmp, len(paths), max(2, args.rounds // 2))
        print(table(["", "", "", ""], cli_rows), flush=True)
        (tmp / "crowd").mkdir()
        crowd = crowd_set(data["test"], min(args.crowd, args.limit or args.crowd), tmp / "crowd")
        recall_rows = recall(data, crowd, LandmarkPredictor(None, threads=1))
    body = "\n".join(
        [
            "## End to end at 640x480, one thread",
            "",
            f"A folder of {len(paths[: args.images])} 640x480 JPEGs (one 300-W test face each, as in *Speed*), the "
            "default model, ONNX Runtime on one thread, `Landmarker.detect`'s stages timed apart; RetinaFace with one "
            "full-resolution pass (the default before) and with the coarse pass (`detector_coarse_side` / "
            f"`--det-coarse-side`, default 320), alternating over {args.rounds} rounds on a shared machine "
            "(medians). *full pass* = images the detector ran at full resolution. Head pose is off, as in *Speed*; "
            "the pose column is what it would add per image.",
            "",
            table(
                [
                    "detector",
                    "images/s",
                    "images/s of CPU time",
                    "decode ms",
                    "detect ms",
                    "landmarks ms",
                    "faces ms",
                    "total ms",
                    "(+ head pose ms)",
                    "full pass",
                ],
                stage_rows,
            ),
            "",
            "Speed-up of the coarse pass, the same round's rates:",
            "",
            table(["measure", "median", "range over rounds"], ratio_rows),
            "",
            f"`facepoints detect FOLDER -o OUT --threads 1` on {len(paths)} such photos, from the command's start "
            "(Python, model load, writing included), median of the runs:",
            "",
            table(["outputs", "detector", "time", "images/s"], cli_rows),
            "",
            "Recall (a detection whose centre is in the face's landmark box, side 0.5-2x; score >= 0.5) with one full "
            "pass and with the coarse pass; mean NME of the default model on each one's boxes (upright crops, "
            "faces both find); median detect ms (the machine is shared: compare within a row). *crowd*: one test/ "
            "face made ~300 px and another 40-80 px in a 1280x720 frame; recall counts the small faces. test/ and most "
            "stress images are at most 480 px long (300-W's crops), where the coarse pass does not run: the 640x480 "
            "and 1280x720 sets are where it does.",
            "",
            table(
                [
                    "set",
                    "images",
                    "recall, full pass",
                    "recall, coarse",
                    "coarse detector: full-size pass run",
                    "NME, full",
                    "NME, coarse",
                    "ms, full",
                    "ms, coarse",
                ],
                recall_rows,
            ),
        ]
    )
    if args.limit:
        print(body)
        return
    write_section("end_to_end", body, "python benchmarks/end_to_end.py")


if __name__ == "__main__":
    main()

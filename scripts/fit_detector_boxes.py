"""Measure how each detector's box relates to the tight landmark box, on 300-W train only.

Writes src/facepoints/detector_boxes.json: per detector, the median centre shift (dx, dy)
and side scale, as fractions of the detector box side, over every train face it finds.
The landmark model is trained on tight landmark boxes; this map converts a detector's
box to that convention. For a detector with keypoints (retinaface) the shift is measured
along the face's own axes and the box is the landmark box seen upright, as the Landmarker
crops such faces (detectors.BoxMap.apply with angles).

Run: python scripts/fit_detector_boxes.py [--data DIR] [--detectors retinaface dlib haar]
Detectors not named keep their entries.
"""

import argparse
import datetime
import json

import numpy as np
from tqdm import tqdm

from facepoints.annotations import read_pts_folder
from facepoints.crop import points_box, upright_box
from facepoints.detectors import BOX_MAPS_FILE, DETECTORS, BoxMap, roll_degrees
from facepoints.evaluate import match_detection
from facepoints.images import load_image
from facepoints.io_utils import atomic_write_text


def fit(detector, samples) -> dict:
    rel = []
    for s in tqdm(samples, desc=detector.name, unit="face"):
        det = detector.detect(load_image(s.image_path))
        j = match_detection(det.boxes, s.points)
        if j is None:
            continue
        b = det.boxes[j].astype(np.float64)
        side = max(b[2] - b[0], b[3] - b[1])
        if det.keypoints is None:
            angle, (x1, y1, x2, y2) = 0.0, points_box(s.points)
        else:
            angle = float(roll_degrees(det.keypoints[j])[0])
            x1, y1, x2, y2 = upright_box(s.points, angle)
        shift = np.array([(x1 + x2) - (b[0] + b[2]), (y1 + y2) - (b[1] + b[3])]) / 2 / side
        t = np.deg2rad(angle)
        dx, dy = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]]) @ shift  # into the face's frame
        rel.append((dx, dy, max(x2 - x1, y2 - y1) / side))
    rel = np.asarray(rel)
    med = np.median(rel, axis=0)
    return {
        "dx": round(float(med[0]), 4),
        "dy": round(float(med[1]), 4),
        "scale": round(float(med[2]), 4),
        "spread_iqr": np.round(np.subtract(*np.percentile(rel, [75, 25], axis=0)), 4).tolist(),
        "found": int(len(rel)),
        "faces": len(samples),
        "max_side": detector.max_side,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/300w/train")
    ap.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=list(DETECTORS))
    args = ap.parse_args()
    samples = read_pts_folder(args.data)
    maps = json.loads(BOX_MAPS_FILE.read_text()) if BOX_MAPS_FILE.exists() else {}
    for name in args.detectors:
        d = DETECTORS[name]()
        d.box_map = BoxMap()  # raw boxes
        maps[name] = fit(d, samples)
        print(name, maps[name])
    maps["_source"] = {
        "data": args.data,
        "date": datetime.date.today().isoformat(),
        "command": "python scripts/fit_detector_boxes.py " + " ".join(["--detectors", *args.detectors]),
    }
    maps = {k: maps[k] for k in [*DETECTORS, "_source"] if k in maps}
    atomic_write_text(BOX_MAPS_FILE, json.dumps(maps, indent=2) + "\n")
    print(f"-> {BOX_MAPS_FILE}")


if __name__ == "__main__":
    main()

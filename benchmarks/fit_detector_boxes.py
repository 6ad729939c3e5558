"""Measure how each detector's box relates to the tight landmark box, on 300-W train only.

Writes src/facepoints/detector_boxes.json: per detector, the median centre shift (dx, dy)
and side scale, as fractions of the detector box side, over every train face it finds.
The landmark model is trained on tight landmark boxes; this map converts a detector's
box to that convention. Run: python benchmarks/fit_detector_boxes.py [--data DIR]
"""

import argparse
import datetime
import json

import numpy as np
from tqdm import tqdm

from facepoints.crop import points_box
from facepoints.data import load_image, read_pts_folder
from facepoints.detectors import BOX_MAPS_FILE, DETECTORS
from facepoints.evaluate import match_detection
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
        x1, y1, x2, y2 = points_box(s.points)
        rel.append((((x1 + x2) - (b[0] + b[2])) / 2 / side, ((y1 + y2) - (b[1] + b[3])) / 2 / side, max(x2 - x1, y2 - y1) / side))
    rel = np.asarray(rel)
    med = np.median(rel, axis=0)
    return {"dx": round(float(med[0]), 4), "dy": round(float(med[1]), 4), "scale": round(float(med[2]), 4),
            "spread_iqr": np.round(np.subtract(*np.percentile(rel, [75, 25], axis=0)), 4).tolist(),
            "found": int(len(rel)), "faces": len(samples)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/300w/train")
    args = ap.parse_args()
    samples = read_pts_folder(args.data)
    maps = {}
    for name, cls in DETECTORS.items():
        d = cls()
        d.box_map = type(d.box_map)()  # raw boxes
        maps[name] = fit(d, samples)
        print(name, maps[name])
    maps["_source"] = {"data": args.data, "date": datetime.date.today().isoformat(),
                       "command": "python benchmarks/fit_detector_boxes.py"}
    atomic_write_text(BOX_MAPS_FILE, json.dumps(maps, indent=2) + "\n")
    print(f"-> {BOX_MAPS_FILE}")


if __name__ == "__main__":
    main()

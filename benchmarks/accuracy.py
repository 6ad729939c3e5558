"""Accuracy on the 300-W common test subset (554 faces): our models vs dlib's 68-point predictor.

Same faces, same boxes, one run. Box sources:
  landmarks  the tight box of the ground-truth points (the 300-W convention for "given boxes");
  dlib HOG   dlib's frontal detector at upsample 1; a face it misses counts as a failure;
  RetinaFace the default detector (our models crop each face upright by its keypoints; dlib's
             predictor gets its boxes mapped into dlib's box convention).
Each landmark model maps a detector's box to its own crop with the box map measured on
train/ (src/facepoints/detector_boxes.json); dlib's predictor gets the boxes it was built for.

Run: python benchmarks/accuracy.py [--data ../shared/data/300w/test] [--models fast accurate xception]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from common import DATA, RESULTS, CachedDetector, DlibShapePredictor, table, write_readme_models, write_section
from facepoints.annotations import read_pts_folder
from facepoints.detectors import BoxMap, create_detector
from facepoints.drawing import plot_ced
from facepoints.evaluate import PointsOf, evaluate
from facepoints.predictor import LandmarkPredictor
from facepoints.weights import shipped_models


def inverse(box_map: BoxMap):
    """Landmark box -> the box this detector would draw (to hand dlib a box in its own convention)."""

    def apply(boxes):
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / box_map.scale
        cx = (boxes[:, 0] + boxes[:, 2]) / 2 - box_map.dx * side
        cy = (boxes[:, 1] + boxes[:, 3]) / 2 - box_map.dy * side
        return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], 1)

    return apply


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA / "test"))
    shipped = [m for m in ("fast", "accurate", "xception") if m in shipped_models()]
    ap.add_argument("--models", nargs="+", default=shipped)
    ap.add_argument(
        "--flip-models", nargs="*", default=["fast", "accurate"], help="also evaluate these with flip test averaging"
    )
    return ap.parse_args()


def evaluate_ours(samples, models: list[str], flip_models: list[str], dets: dict[str, CachedDetector]) -> dict:
    """(label, boxes) -> Evaluation of each facepoints model (its default graph, its fp32 source where the default
    is int8, and with flip test where asked) with landmark boxes and each detector's boxes."""
    runs = {}
    for name in models:
        for flip in (False, True) if name in flip_models else (False,):
            pred = LandmarkPredictor(name, backend="onnxruntime", flip_test=flip)
            label = f"facepoints {name}" + (" (int8 ONNX)" if pred.int8 else "") + (" + flip test" if flip else "")
            if pred.int8 and not flip:  # the shipped int8 graph is the default; its fp32 source for comparison
                fp32 = LandmarkPredictor(name, backend="onnxruntime", int8=False)
                runs[(f"facepoints {name} (fp32 ONNX)", "landmarks")] = evaluate(
                    samples, PointsOf(fp32.predict), "landmarks"
                )
                runs[(f"facepoints {name} (fp32 ONNX)", "dlib HOG")] = evaluate(
                    samples, PointsOf(fp32.predict, dets["dlib"]), "detector"
                )
            runs[(label, "landmarks")] = evaluate(samples, PointsOf(pred.predict), "landmarks")
            runs[(label, "dlib HOG")] = evaluate(samples, PointsOf(pred.predict, dets["dlib"]), "detector")
            runs[(label, "RetinaFace")] = evaluate(samples, PointsOf(pred.predict, dets["retinaface"]), "detector")
            if not flip:
                runs[(label, "OpenCV Haar")] = evaluate(samples, PointsOf(pred.predict, dets["haar"]), "detector")
            print(label, {k[1]: round(100 * v.report()["nme_mean"], 3) for k, v in runs.items() if k[0] == label})
    return runs


def evaluate_dlib(samples, ref: DlibShapePredictor, dets: dict[str, CachedDetector]) -> dict:
    """(label, boxes) -> Evaluation of dlib's predictor, with boxes in our convention and in its own."""
    to_dlib = inverse(dets["dlib"].detector.box_map)
    in_dlib_boxes = lambda img, b: ref.predict(img, to_dlib(b))  # noqa: E731
    return {
        ("dlib shape_predictor_68", "landmarks"): evaluate(samples, PointsOf(ref.predict), "landmarks"),
        ("dlib shape_predictor_68", "landmarks, in dlib's box convention"): evaluate(
            samples, PointsOf(in_dlib_boxes), "landmarks"
        ),
        ("dlib shape_predictor_68", "dlib HOG"): evaluate(
            samples, PointsOf(ref.predict, dets["dlib"].view(raw=True)), "detector"
        ),
        ("dlib shape_predictor_68", "RetinaFace, in dlib's box convention"): evaluate(
            samples, PointsOf(in_dlib_boxes, dets["retinaface"], upright=False), "detector"
        ),
    }


def accuracy_rows(runs: dict) -> tuple[list, dict]:
    """One table row per (method, boxes), and the reports by "label | boxes" (accuracy.json)."""
    rows, results = [], {}
    for (label, boxes), ev in runs.items():
        r = ev.report()
        results[f"{label} | {boxes}"] = r
        rows.append(
            [
                label,
                boxes,
                f"{r['n_detected']}/{r['n_faces']}",
                f"{100 * r['nme_mean']:.2f}%",
                f"{100 * r['nme_median']:.2f}%",
                f"{100 * r['fr_0.08']:.2f}%",
                f"{100 * r['auc_0.08']:.2f}%",
                " / ".join(f"{100 * s['nme_mean']:.2f}%" for s in r["subsets"].values()),
            ]
        )
    return rows, results


def detector_rows(runs: dict, dets: dict[str, CachedDetector], n_images: int) -> list:
    """Recall and time per image of each detector."""
    rows = []
    for d in (dets["retinaface"], dets["dlib"], dets["haar"]):
        boxes = {"retinaface": "RetinaFace", "dlib": "dlib HOG", "haar": "OpenCV Haar"}[
            d.name
        ]  # every model gets the same detections: take the first
        found = next(ev.report()["n_detected"] for (_, b), ev in runs.items() if b == boxes)
        rows.append(
            [
                d.name,
                f"{found}/{n_images} ({100 * found / n_images:.1f}%)",
                f"{1000 * np.mean(d.seconds):.1f} ms",
            ]
        )
    return rows


def save_results(runs: dict, results: dict) -> None:
    """benchmarks/results/accuracy.json and the CED plots (landmark, dlib HOG and RetinaFace boxes)."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "accuracy.json").write_text(json.dumps(results, indent=2))
    curves = {
        label: ev.nmes[np.isfinite(ev.nmes)]
        for (label, boxes), ev in runs.items()
        if boxes == "landmarks" and "flip" not in label
    }
    plot_ced(curves, RESULTS / "ced_300w_common_landmark_boxes.png")
    curves = {
        label: ev.nmes
        for (label, boxes), ev in runs.items()  # inf = missed: the legend's NME is the table's
        if boxes == "dlib HOG" and "flip" not in label
    }
    plot_ced(curves, RESULTS / "ced_300w_common_dlib_boxes.png")
    curves = {
        label: np.where(np.isfinite(ev.nmes), ev.nmes, 1.0)
        for (label, boxes), ev in runs.items()
        if boxes.startswith("RetinaFace") and "flip" not in label
    }
    plot_ced(curves, RESULTS / "ced_300w_common_retinaface_boxes.png")


def report(rows: list, det_rows: list) -> str:
    return "\n".join(
        [
            "## Accuracy on 300-W common test (helen + lfpw, 554 faces)",
            "",
            "Inter-ocular NME (outer eye corners 36/45). With a detector, NME mean/median are over the faces it "
            "finds; FR@0.08 and AUC@0.08 count every missed face as a failure. Subset column: helen / lfpw.",
            "",
            table(
                ["method", "boxes", "faces found", "NME mean", "NME median", "FR@0.08", "AUC@0.08", "NME helen / lfpw"],
                rows,
            ),
            "",
            "Face detectors on the same 554 test images (recall = annotated faces whose box centre a detection "
            "covers):",
            "",
            table(["detector", "recall", "time per image"], det_rows),
            "",
            "CED plots: `benchmarks/results/ced_300w_common_landmark_boxes.png`, "
            "`benchmarks/results/ced_300w_common_dlib_boxes.png`, "
            "`benchmarks/results/ced_300w_common_retinaface_boxes.png`; "
            "all numbers: `benchmarks/results/accuracy.json`.",
        ]
    )


def main():
    args = parse_args()
    samples = read_pts_folder(args.data)
    dets = {name: CachedDetector(create_detector(name)) for name in ("dlib", "haar", "retinaface")}
    ref = DlibShapePredictor()
    runs = evaluate_ours(samples, args.models, args.flip_models, dets)  # (label, boxes) -> Evaluation
    runs |= evaluate_dlib(samples, ref, dets)
    rows, results = accuracy_rows(runs)
    det_rows = detector_rows(runs, dets, len(samples))
    save_results(runs, results)
    write_section("accuracy", report(rows, det_rows), "python benchmarks/accuracy.py")
    write_readme_models()


if __name__ == "__main__":
    main()

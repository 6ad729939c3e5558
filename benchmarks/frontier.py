"""Accuracy against cost: every shipped model (and dlib's predictor) as one point of NME vs ms per face.

NME comes from benchmarks/results/accuracy.json (run benchmarks/accuracy.py first); the milliseconds are
measured here, in one run: the landmark step for one face on one thread (crop + network + mapping back,
what dlib's predictor call does), median over the first --faces test faces. Writes
benchmarks/results/frontier.png and the BENCHMARKS.md section "frontier".

Run: python benchmarks/frontier.py [--data ../shared/data/300w/test] [--faces 200]
"""

from __future__ import annotations

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from common import DATA, RESULTS, DlibShapePredictor, per_face_ms, table, test_faces, write_section  # noqa: E402
from facepoints.predictor import LandmarkPredictor  # noqa: E402
from facepoints.weights import shipped_models  # noqa: E402


def measure(scores: dict, images, boxes, repeat: int) -> list[tuple[str, float, float, float]]:
    """(label, ms per face, NME landmark boxes, NME dlib HOG boxes) of each shipped model's graphs, and of dlib's
    predictor last; the NMEs from accuracy.json, the ms timed here."""
    points = []
    for name, entry in shipped_models().items():
        has_int8 = bool(entry.get("int8_onnx"))  # the graph the predictor runs by default, then its variants
        for int8, flip in [(has_int8, False), (has_int8, True)] + ([(False, False)] if has_int8 else []):
            pred = LandmarkPredictor(name, backend="onnxruntime", threads=1, int8=int8, flip_test=flip)
            label = f"facepoints {name}" + (" (int8 ONNX)" if int8 else "") + (" + flip test" if flip else "")
            if f"{label} | landmarks" not in scores and not int8:
                label = label.replace(name, f"{name} (fp32 ONNX)")  # accuracy.py's name for a model's fp32 source
            if f"{label} | landmarks" not in scores:
                print(f"skip {label}: not in accuracy.json (rerun benchmarks/accuracy.py)")
                continue
            ms = per_face_ms(pred.predict, images, boxes, repeat)
            dlib_hog = scores.get(f"{label} | dlib HOG", {}).get("nme_mean", np.nan)
            points.append((label, ms, scores[f"{label} | landmarks"]["nme_mean"], dlib_hog))
            print(points[-1])
    ref = DlibShapePredictor()
    ms = per_face_ms(ref.predict, images, boxes, repeat)  # dlib's cost does not depend on the box convention
    points.append(
        (
            "dlib shape_predictor_68",
            ms,
            scores["dlib shape_predictor_68 | landmarks, in dlib's box convention"]["nme_mean"],
            scores["dlib shape_predictor_68 | dlib HOG"]["nme_mean"],
        )
    )
    return points


def plot(points: list[tuple[str, float, float, float]], path) -> None:
    """NME with dlib HOG boxes against ms per face (log scale), dlib's predictor as a star and a dashed line."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (label, ms, nme_lm, nme_hog) in enumerate(points):
        is_dlib = label.startswith("dlib")
        ax.scatter(
            [ms],
            [100 * nme_hog],
            marker="*" if is_dlib else "o",
            s=140 if is_dlib else 40,
            color="black" if is_dlib else None,
            zorder=3,
        )
        ax.annotate(
            label.replace("facepoints ", ""),
            (ms, 100 * nme_hog),
            textcoords="offset points",
            xytext=(6, 6 if i % 2 else -10),
            fontsize=7,
        )
    ax.axhline(100 * points[-1][3], color="black", lw=0.8, ls="--", label="dlib's predictor, dlib HOG boxes")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("ms per face, one thread (crop + network + mapping back)")
    ax.set_ylabel("NME on 300-W common test, dlib HOG boxes (%)")
    ax.set_title("Accuracy vs cost (lower left is better)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def report(points: list[tuple[str, float, float, float]], n_faces: int) -> str:
    rows = [[label, f"{ms:.2f} ms", f"{100 * lm:.2f}%", f"{100 * hog:.2f}%"] for label, ms, lm, hog in points]
    return "\n".join(
        [
            "## Accuracy vs cost",
            "",
            "Every shipped model and dlib's predictor: NME on 300-W common test (from `benchmarks/results/"
            "accuracy.json`, written by `benchmarks/accuracy.py`) against the landmark step for one face on one "
            f"thread (crop, network, points mapped back; median over the first {n_faces} test faces, measured "
            "in this run). dlib's predictor is given landmark boxes in its own convention.",
            "",
            table(["method", "ms per face", "NME, landmark boxes", "NME, dlib HOG boxes"], rows),
            "",
            "![accuracy vs cost](benchmarks/results/frontier.png)",
        ]
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA / "test"))
    ap.add_argument("--faces", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=400)
    args = ap.parse_args()
    scores = json.loads((RESULTS / "accuracy.json").read_text())
    samples, images, boxes = test_faces(args.data, args.faces)
    points = measure(scores, images, boxes, args.repeat)
    plot(points, RESULTS / "frontier.png")
    write_section("frontier", report(points, len(samples)), "python benchmarks/frontier.py")


if __name__ == "__main__":
    main()

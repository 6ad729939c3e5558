"""Has the reference seen the test faces? dlib's predictor vs ours on faces each model trained on and on test/.

dlib's 68-point model was trained on "the iBUG 300-W dataset" (its README); whether that
included the common test images (helen/lfpw test) is not stated. A model scores better on
faces it was trained on. So: both models, same dlib HOG boxes, on
  train/ (our training split)   seen by both,
  train/ (our held-out 10%)     seen by dlib (300-W training images), not by us,
  test/                          not seen by us; the question is dlib.
Relative to us, a dlib that never saw test/ should do worse there than on the held-out faces
it saw and we did not. Doing as well is consistent with it having seen test/, but not proof:
its own seen/unseen gap cannot be measured here, since it saw all of train/.

Run: python benchmarks/seen_faces.py [--model fast]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from common import DATA, RESULTS, CachedDetector, DlibShapePredictor, held_out_weights, table, write_section
from facepoints.annotations import read_dataset
from facepoints.checkpoint import RunSplit
from facepoints.detectors import create_detector
from facepoints.evaluate import PointsOf, evaluate
from facepoints.predictor import LandmarkPredictor
from facepoints.weights import resolve

GROUPS = {
    "jaw": range(0, 17),
    "brows": range(17, 27),
    "nose": range(27, 36),
    "eyes": range(36, 48),
    "mouth": range(48, 68),
}


def group_errors(samples, ev, subset: str) -> tuple[list[str], list[str]] | None:
    """Per landmark group: mean signed error (x, y) and mean error, in % of the inter-ocular distance."""
    errs = [
        (p - s.points) / np.linalg.norm(s.points[36] - s.points[45])
        for s, p in zip(samples, ev.predictions)
        if p is not None and s.subset == subset
    ]
    if not errs:
        return None
    mean = 100 * np.mean(errs, axis=0)  # (68, 2)
    dist = 100 * np.linalg.norm(errs, axis=2).mean(0)  # (68,)
    return (
        [f"{mean[list(r), 0].mean():+.2f}, {mean[list(r), 1].mean():+.2f}" for r in GROUPS.values()],
        [f"{dist[list(r)].mean():.2f}" for r in GROUPS.values()],
    )


def face_sets(weights: str) -> dict[str, list]:
    """Our training split and held-out 10% of train/ (the split recorded in the weights), and test/."""
    cfg = torch.load(resolve(weights)[0], map_location="cpu", weights_only=True)["train"]["config"]
    split = RunSplit.from_config(cfg, DATA / "train")
    train, fit_idx, held_idx = split.samples, split.train_idx, split.val_idx
    return {
        "train/: our training split (both saw them)": [train[i] for i in fit_idx],
        "train/: our held-out 10% (dlib saw them, we did not)": [train[i] for i in held_idx],
        "test/ (we did not see them)": read_dataset(DATA / "test"),
    }


def compare(sets: dict[str, list], weights: str) -> tuple[list, list, list, dict]:
    """Both models on each set with the same dlib HOG detections: the NME table, the per-group signed errors and
    errors, and every report (seen_faces.json)."""
    det = CachedDetector(create_detector("dlib"))
    ours = LandmarkPredictor(weights, backend="onnxruntime")
    ref = DlibShapePredictor()
    rows, bias_rows, error_rows, results = [], [], [], {}
    for name, samples in sets.items():
        ev_a = evaluate(samples, PointsOf(ours.predict, det), "detector")
        ev_b = evaluate(samples, PointsOf(ref.predict, det.view(raw=True)), "detector")
        a, b = ev_a.report(), ev_b.report()
        results[name] = {"facepoints": a, "dlib": b}
        for subset in ("helen", "lfpw"):
            for model, ev in (("facepoints", ev_a), ("dlib", ev_b)):
                errors = group_errors(samples, ev, subset)
                if errors is not None:
                    bias_rows.append([name.split(" (")[0], subset, model, *errors[0]])
                    error_rows.append([name.split(" (")[0], subset, model, *errors[1]])
        subsets = " / ".join(
            f"{k} {100 * a['subsets'][k]['nme_mean']:.2f} vs {100 * b['subsets'][k]['nme_mean']:.2f}"
            for k in sorted(a["subsets"])
        )
        rows.append(
            [
                name,
                f"{a['n_detected']}/{a['n_faces']}",
                f"{100 * a['nme_mean']:.2f}%",
                f"{100 * b['nme_mean']:.2f}%",
                f"{b['nme_mean'] / a['nme_mean']:.2f}",
                subsets,
            ]
        )
        print(rows[-1])
    return rows, bias_rows, error_rows, results


def report(label: str, rows: list, bias_rows: list, error_rows: list, out: Path) -> str:
    return "\n\n".join(
        [
            "## Faces each model has seen (dlib HOG boxes, both models)",
            "dlib's predictor was trained on 300-W; whether its training set included the common test images is not "
            "documented. A model is better on faces it was trained on, so compare each model's NME on faces it saw "
            "with its NME on test/. Our model: " + label + ", on its own training split and held-out "
            "faces (the split recorded in its weights). NME over the faces dlib's detector finds.",
            table(
                ["faces", "found", "facepoints NME", "dlib NME", "dlib / facepoints", "per subset: facepoints vs dlib"],
                rows,
            ),
            "Mean signed error (prediction minus annotation) per landmark group, x, y in % of the inter-ocular "
            "distance, "
            "same runs. A shift that both models show on test/ but not on the faces they trained on is a difference "
            "between the annotations of the two splits, which no model trained on train/ can learn.",
            table(["faces", "subset", "model", *GROUPS], bias_rows),
            "NME per landmark group (% of the inter-ocular distance), same runs:",
            table(["faces", "subset", "model", *GROUPS], error_rows),
            f"All numbers: `benchmarks/results/{out.name}`.",
        ]
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="fast")
    args = ap.parse_args()
    weights, label = held_out_weights(args.model)
    rows, bias_rows, error_rows, results = compare(face_sets(weights), weights)
    out = RESULTS / "seen_faces.json"
    out.write_text(json.dumps(results, indent=1, default=float))
    write_section(
        "seen",
        report(label, rows, bias_rows, error_rows, out),
        "python benchmarks/seen_faces.py" + (f" --model {args.model}" if args.model != "fast" else ""),
    )


if __name__ == "__main__":
    main()

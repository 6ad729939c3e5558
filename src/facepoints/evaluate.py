"""300-W evaluation: every image+.pts pair under a folder -> per-face NME -> table, JSON and CED plot."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .annotations import Sample, find_manifest, read_pts_folder
from .config import LandmarkerOptions
from .crop import points_box
from .detectors import Detections, Detector, crop_boxes
from .drawing import CED_SUFFIXES, can_plot, plot_ced
from .errors import UsageError
from .images import IMAGE_SUFFIXES, load_image
from .io_utils import atomic_write_text, check_outputs
from .landmarker import Landmarker
from .metrics import nme, summary

FAILED = float("inf")  # NME of a face the detector missed: counts as a failure
NME_DEFINITION = "mean point error / inter-ocular distance (outer eye corners, 0-based points 36 and 45)"
BOX_RULES = {
    "landmarks": "each face cropped from the tight box of its annotated points",
    "detector": "each face cropped from the detection that holds it (a miss counts as a failure)",
}


def int8_may_saturate(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether ONNX Runtime's int8 (u8s8) convolutions may saturate on this CPU: x86 with AVX2 but no VNNI
    runs them with VPMADDUBSW, whose 16-bit sums clip (ONNX Runtime's quantization docs). fast's int8 graph
    loses accuracy there; on VNNI CPUs (and ARM) it matches its fp32 source."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:  # not Linux: unknown, say nothing
        return False
    return "avx2" in flags and not {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags)


def graph_of(predictor) -> str:
    """What computed the points: the int8 or fp32 ONNX graph, or the fp32 weights on PyTorch."""
    if predictor.backend == "torch":
        return "fp32 weights on PyTorch"
    return f"{'int8' if predictor.int8 else 'fp32'} ONNX graph on ONNX Runtime"


@dataclass
class Evaluation:
    nmes: np.ndarray  # per face; inf where the detector missed the face
    subsets: list[str]
    files: list[str]
    predictions: list[np.ndarray | None] = field(default_factory=list)

    def report(self) -> dict:
        """Metrics over all faces and per subfolder; missed faces count as failures (in FR and AUC)
        and are excluded from the NME mean, which is also given over detected faces only."""
        out = _summarise(self.nmes)
        groups = defaultdict(list)
        for s, v in zip(self.subsets, self.nmes):
            groups[s or "."].append(v)
        out["subsets"] = {k: _summarise(np.asarray(v)) for k, v in sorted(groups.items())}
        return out


def _summarise(nmes: np.ndarray) -> dict:
    """With no face found, NME is undefined: None (JSON null) and a note, never NaN; FR is then 1 and AUC 0."""
    found = nmes[np.isfinite(nmes)]
    if len(found) == 0:
        return {
            "nme_mean": None,
            "nme_median": None,
            "fr_0.08": 1.0 if len(nmes) else None,
            "auc_0.08": 0.0 if len(nmes) else None,
            "n_faces": int(len(nmes)),
            "n_detected": 0,
            "note": "no face was found, so NME is undefined (null)",
        }
    s = summary(found)
    fr, auc = s["fr_0.08"], s["auc_0.08"]
    if len(found) < len(nmes):  # rescale to all faces: misses are failures
        k = len(found) / max(len(nmes), 1)
        fr, auc = 1 - k * (1 - fr), k * auc
    return {**s, "fr_0.08": fr, "auc_0.08": auc, "n_faces": int(len(nmes)), "n_detected": int(len(found))}


def _pct(value: float | None, width: int) -> str:
    return f"{'n/a':>{width + 1}}" if value is None else f"{100 * value:>{width}.2f}%"


def match_detection(boxes: np.ndarray, gt: np.ndarray) -> int | None:
    """Index of the detector box that holds the annotated face (centre inside the landmark box), nearest first."""
    if len(boxes) == 0:
        return None
    x1, y1, x2, y2 = points_box(gt)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    inside = (centres[:, 0] >= x1) & (centres[:, 0] <= x2) & (centres[:, 1] >= y1) & (centres[:, 1] <= y2)
    if not inside.any():
        return None
    dist = np.linalg.norm(centres - [(x1 + x2) / 2, (y1 + y2) / 2], axis=1)
    dist[~inside] = np.inf
    return int(np.argmin(dist))


@dataclass
class PointsOf:
    """A bare `predict(rgb, boxes[, angles]) -> (N, 68, 2)` (a LandmarkPredictor's, the dlib reference's) and a
    detector, read by `evaluate` as a Landmarker is: detections become crops by the same rule
    (detectors.crop_boxes). For benchmarks that compare predictors outside a Landmarker."""

    predict: Callable
    detector: Detector | None = None
    upright: bool = True

    def landmarks(self, rgb: np.ndarray, boxes: np.ndarray, angles: np.ndarray | None = None) -> np.ndarray:
        return self.predict(rgb, boxes) if angles is None else self.predict(rgb, boxes, angles)

    def landmarks_for(self, rgb: np.ndarray, det: Detections) -> np.ndarray:
        if self.detector is None:
            raise UsageError("PointsOf: detector boxes need a detector")
        boxes, angles = crop_boxes(self.detector, det, self.upright)
        return self.landmarks(rgb, boxes, angles)


def evaluate(samples: list[Sample], landmarker, boxes: str = "landmarks", progress: bool = True) -> Evaluation:
    """Per-face NME of `landmarker` on annotated faces. boxes='landmarks': each face cropped from its annotated
    points' box; 'detector': from the landmarker's detector's face that holds it (a miss is a failure), through
    `Landmarker.landmarks_for`, as images and video are. `landmarker`: a Landmarker, or any object with
    `landmarks(rgb, boxes)`, `landmarks_for(rgb, detections)` and `detector` (`PointsOf` wraps a bare predictor)."""
    if boxes not in ("landmarks", "detector"):
        raise UsageError(f"unknown box source {boxes!r}; choose landmarks or detector")
    nmes, preds = [], []
    for s in tqdm(samples, desc="evaluating", unit="face", disable=not progress, leave=False):
        image = load_image(s.image_path)
        if boxes == "landmarks":
            p = landmarker.landmarks(image, np.array([points_box(s.points)]))[0]
        else:
            det = landmarker.detector.detect(image)
            j = match_detection(det.boxes, s.points)
            if j is None:
                nmes.append(FAILED)
                preds.append(None)
                continue
            p = landmarker.landmarks_for(image, det.take(slice(j, j + 1)))[0]
        preds.append(p)
        nmes.append(float(nme(p, s.points)[0]))
    return Evaluation(np.asarray(nmes), [s.subset for s in samples], [str(s.image_path) for s in samples], preds)


def format_table(report: dict, title: str = "") -> str:
    rows = [("all", report)] + list(report.get("subsets", {}).items())
    lines = [title] if title else []
    lines.append(
        f"{'subset':<12} {'faces':>6} {'found':>6} {'NME mean':>9} {'NME med':>8} {'FR@0.08':>8} {'AUC@0.08':>9}"
    )
    for name, r in rows:
        lines.append(
            f"{name:<12} {r['n_faces']:>6} {r['n_detected']:>6} {_pct(r['nme_mean'], 8)} {_pct(r['nme_median'], 7)} "
            f"{_pct(r['fr_0.08'], 7)} {_pct(r['auc_0.08'], 8)}"
        )
    return "\n".join(lines)


def run(data: str, options: LandmarkerOptions, boxes: str, json_out: str | None, ced_out: str | None) -> dict:
    """`facepoints evaluate`: the outputs checked before any work, then `evaluate` with a Landmarker built from
    `options` (the model, backend, flip test and, with detector boxes, the detector and its settings)."""
    samples = read_pts_folder(data)
    if ced_out and Path(ced_out).suffix.lower() not in CED_SUFFIXES:
        raise UsageError(f"--ced {ced_out}: the plot needs a {', '.join(CED_SUFFIXES)} suffix")
    manifest = find_manifest(Path(data))
    inputs = (
        [s.image_path for s in samples]
        + [s.image_path.with_suffix(".pts") for s in samples]
        + ([manifest] if manifest else [])
    )
    # an image (or .pts) written into the dataset would be read, unannotated, by the next evaluate
    check_outputs(
        [(json_out, "--json"), (ced_out, "--ced")],
        inputs=inputs,
        read_folders=[data],
        read_suffixes=IMAGE_SUFFIXES + (".pts",),
    )
    landmarker = Landmarker(options)
    detector = landmarker.detector if boxes == "detector" else None
    result = evaluate(samples, landmarker, boxes)
    report = result.report()
    spec = landmarker.predictor.spec
    graph = graph_of(landmarker.predictor)
    saturates = bool(landmarker.predictor.int8 and int8_may_saturate())
    report.update(
        {
            "model": spec.path,
            "arch": spec.arch,
            "graph": graph,
            "int8_may_saturate": saturates,
            "nme": NME_DEFINITION,
            "boxes": boxes,
            "detector": detector.name if detector else None,
            "data": str(data),
            "flip_test": options.flip_test,
            "upright": bool(options.upright and detector is not None and detector.name == "retinaface"),
        }
    )
    print(f"NME: {NME_DEFINITION}; {boxes} boxes: {BOX_RULES[boxes]}")
    print(f"model: {spec.path} ({spec.arch}), {graph}" + (", flip test" if options.flip_test else ""))
    print(format_table(report, f"{spec.arch} on {data} ({boxes} boxes)"))
    if saturates:
        print(
            "note: this CPU has AVX2 but no VNNI, where ONNX Runtime's int8 kernels can saturate and cost accuracy; "
            "--backend torch (or a VNNI CPU) gives the model's published fp32 (int8) figures, docs/evaluation.md"
        )
    if report["n_detected"] < report["n_faces"]:
        print(
            f"note: {report['n_faces'] - report['n_detected']} faces were missed by the detector; they count as "
            "failures "
            "in FR and AUC (and in the CED), and NME is over the faces found"
        )
    if json_out:
        atomic_write_text(json_out, json.dumps(report, indent=2, allow_nan=False))
    if ced_out and not can_plot():  # the core install: the metrics are the result, the plot an extra
        print(f'note: no CED plot ({ced_out}): it needs matplotlib: pip install "facepoints[train]"')
    elif ced_out:
        plot_ced({landmarker.predictor.name: result.nmes}, ced_out)  # misses (inf) never reach the curve
        print(f"CED curve -> {ced_out}")
    return report

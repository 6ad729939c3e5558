"""Export the shipped models to the ONNX graphs the core install runs, and record them in MODELS.json.

`pip install facepoints` has no PyTorch: landmarking runs these graphs on ONNX Runtime. For each
shipped model this writes weights/NAME.onnx (fp32, output_shift subtracted in the graph, so its points
are the PyTorch predictor's) with the model's settings in the graph metadata, checks it against the
PyTorch model on random crops, and records its sha256 and how it was made under the model's "onnx"
key. A shipped int8 graph (scripts/quantize_weights.py) gets the same settings in its metadata (only
the metadata changes; its output stays raw) and the sha256 of the file with that metadata.
A model with trust heads (MODELS.json "trust") also gets weights/NAME.trust.onnx: the same graph plus the heads,
outputs points, presence, visibility, log_b, the uncertainty calibration in the metadata (export.export_trust_onnx),
checked against PyTorch and recorded under "trust" -> "onnx". Its int8 twin comes from scripts/quantize_weights.py.
Needs the [train] extra. Run: python scripts/export_shipped_onnx.py [NAME ...]
"""

import argparse
import json
import sys

import numpy as np
import onnxruntime as ort
import torch

from facepoints.export import (
    OPSET,
    PointsHead,
    TrustGraph,
    export_onnx,
    export_trust_onnx,
    trust_metadata,
    write_metadata,
)
from facepoints.trust import load_trust
from facepoints.weights import PACKAGE_WEIGHTS, load_model, sha256_file, shipped_models

MAX_MB = 20  # the wheel holds every shipped graph: a bigger model needs another way to ship


def max_difference(model, spec, path) -> float:
    """Largest |ONNX - PyTorch| over 8 random crops, calibrated points in crop pixels."""
    x = np.random.default_rng(0).random((8, 1, spec.input_size, spec.input_size), dtype=np.float32)
    with torch.inference_mode():
        want = PointsHead(model, spec.output_shift).eval()(torch.from_numpy(x)).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"crops": x})[0]
    return float(np.abs(got - want).max())


def max_trust_difference(model, head, spec, path) -> dict[str, float]:
    """Largest |ONNX - PyTorch| of each trust graph output over 8 random crops and 8 crops of a face-like blob."""
    x = np.random.default_rng(0).random((8, 1, spec.input_size, spec.input_size), dtype=np.float32)
    with torch.inference_mode():
        want = [t.numpy() for t in TrustGraph(model, head, spec.output_shift).eval()(torch.from_numpy(x))]
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"crops": x})
    names = [o.name for o in ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_outputs()]
    return {n: float(f"{np.abs(g - w).max():.2g}") for n, g, w in zip(names, got, want)}


def export_trust(name: str, model, spec, index: dict) -> str:
    head, calibration, _ = load_trust(name)
    dest = export_trust_onnx(model, head, calibration, spec, PACKAGE_WEIGHTS / f"{name}.trust.onnx", calibrated=True)
    diff = max_trust_difference(model, head, spec, dest)
    if max(diff.values()) > 1e-3:
        sys.exit(f"{dest}: differs from the PyTorch model by {diff}")
    index[name]["trust"]["onnx"] = {
        "file": dest.name,
        "sha256": sha256_file(dest),
        "command": f"python scripts/export_shipped_onnx.py {name}",
        "method": f"facepoints.export.export_trust_onnx from {index[name]['file']} and {index[name]['trust']['file']}: "
        f"fp32, opset {OPSET}, outputs points (output_shift in the graph), presence, visibility, log_b; settings and "
        f"uncertainty calibration in the metadata; torch {torch.__version__.split('+')[0]}",
        "max_abs_diff": diff,
    }
    return f"; {dest.name}: max |onnx - torch| {diff}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*", help="shipped models (default: all of them)")
    args = ap.parse_args()
    index = shipped_models()
    for name in args.names or list(index):
        model, spec = load_model(name)
        dest = export_onnx(model, spec, PACKAGE_WEIGHTS / f"{name}.onnx", calibrated=True)
        size_mb = dest.stat().st_size / 2**20
        if size_mb > MAX_MB:
            sys.exit(f"{dest}: {size_mb:.1f} MB, over the {MAX_MB} MB a shipped graph may take")
        diff = max_difference(model, spec, dest)
        if diff > 1e-3:
            sys.exit(f"{dest}: differs from the PyTorch model by {diff:.2g} px")
        index[name]["onnx"] = {
            "file": dest.name,
            "sha256": sha256_file(dest),
            "command": f"python scripts/export_shipped_onnx.py {name}",
            "method": f"facepoints.export.export_onnx from {index[name]['file']}: fp32, opset {OPSET}, "
            f"output_shift in the graph, settings in the metadata; torch {torch.__version__.split('+')[0]}",
            "max_abs_diff_px": float(f"{diff:.2g}"),
        }
        note = export_trust(name, model, spec, index) if "trust" in index[name] else ""
        int8 = index[name].get("int8_onnx")
        if int8:
            path = PACKAGE_WEIGHTS / int8["file"]
            write_metadata(path, spec, calibrated=False)
            int8["sha256"] = sha256_file(path)
        trust_int8 = index[name].get("trust", {}).get("int8_onnx")
        if trust_int8:
            path = PACKAGE_WEIGHTS / trust_int8["file"]
            write_metadata(path, spec, False, trust_metadata(load_trust(name)[1]))
            trust_int8["sha256"] = sha256_file(path)
        print(
            f"{name}: {dest.name} {size_mb:.1f} MB, max |onnx - torch| {diff:.2g} px"
            + note
            + (f"; {int8['file']}: metadata set" if int8 else "")
        )
    (PACKAGE_WEIGHTS / "MODELS.json").write_text(json.dumps(index, indent=2) + "\n")


if __name__ == "__main__":
    main()

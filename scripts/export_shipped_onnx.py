"""Export the shipped models to the ONNX graphs the core install runs, and record them in MODELS.json.

`pip install facepoints` has no PyTorch: landmarking runs these graphs on ONNX Runtime. For each
shipped model this writes weights/NAME.onnx (fp32, output_shift subtracted in the graph, so its points
are the PyTorch predictor's) with the model's settings in the graph metadata, checks it against the
PyTorch model on random crops, and records its sha256 and how it was made under the model's "onnx"
key. A shipped int8 graph (scripts/quantize_weights.py) gets the same settings in its metadata (only
the metadata changes; its output stays raw) and the sha256 of the file with that metadata.
Needs the [train] extra. Run: python scripts/export_shipped_onnx.py [NAME ...]
"""

import argparse
import json
import sys

import numpy as np
import onnxruntime as ort
import torch

from facepoints.export import OPSET, PointsHead, export_onnx, write_metadata
from facepoints.weights import PACKAGE_WEIGHTS, load_model, sha256_file, shipped_models

MAX_MB = 20  # the wheel holds every shipped graph: a bigger model needs another way to ship


def max_difference(model, spec, path) -> float:
    """Largest |ONNX - PyTorch| over 8 random crops, calibrated points in crop pixels."""
    x = np.random.default_rng(0).random((8, 1, spec.input_size, spec.input_size), dtype=np.float32)
    with torch.inference_mode():
        want = PointsHead(model, spec.output_shift).eval()(torch.from_numpy(x)).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"crops": x})[0]
    return float(np.abs(got - want).max())


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
        int8 = index[name].get("int8_onnx")
        if int8:
            path = PACKAGE_WEIGHTS / int8["file"]
            write_metadata(path, spec, calibrated=False)
            int8["sha256"] = sha256_file(path)
        print(
            f"{name}: {dest.name} {size_mb:.1f} MB, max |onnx - torch| {diff:.2g} px"
            + (f"; {int8['file']}: metadata set" if int8 else "")
        )
    (PACKAGE_WEIGHTS / "MODELS.json").write_text(json.dumps(index, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Build the int8 ONNX of a shipped model and record it in MODELS.json beside the fp32 weights.

Static post-training quantization (facepoints.export.quantize_int8), calibrated on un-augmented
crops of the training split only (never the held-out 10% or test/).
benchmarks/architectures.py and accuracy.py measure the result.
Run: python scripts/quantize_weights.py fast [--data ../shared/data/300w/train] [--calibration 200]
"""

import argparse
import json
from pathlib import Path

from facepoints.checkpoint import RunSplit
from facepoints.export import quantize_int8
from facepoints.weights import PACKAGE_WEIGHTS, load_model, sha256_file, shipped_models

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "300w" / "train"))
    ap.add_argument("--calibration", type=int, default=200)
    args = ap.parse_args()
    model, spec = load_model(args.name)
    cfg = spec.train_config
    x_train, _ = RunSplit.from_config(cfg, args.data).train_crops()
    calibration = x_train[: args.calibration].numpy()
    dest = quantize_int8(model, spec, calibration, PACKAGE_WEIGHTS / f"{args.name}.int8.onnx")
    index = shipped_models()
    index[args.name]["int8_onnx"] = {
        "file": dest.name,
        "sha256": sha256_file(dest),
        "command": f"python scripts/quantize_weights.py {args.name} --calibration {args.calibration}",
        "calibration": f"{len(calibration)} un-augmented crops of the model's training faces"
        + (" (not its held-out faces)" if cfg["val_fraction"] > 0 else ""),
        "method": "onnxruntime quantize_static, QDQ, per-channel int8 weights, uint8 activations, Conv only",
    }
    (PACKAGE_WEIGHTS / "MODELS.json").write_text(json.dumps(index, indent=2) + "\n")
    print(json.dumps(index[args.name]["int8_onnx"], indent=2))


if __name__ == "__main__":
    main()

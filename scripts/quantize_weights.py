"""Build the int8 ONNX of a shipped model and record it in MODELS.json beside the fp32 weights.

Static post-training quantization (facepoints.export.quantize_int8), calibrated on un-augmented
crops of the training split only (never the held-out 10% or test/).
benchmarks/architectures.py and accuracy.py measure the result.
A model with trust heads (MODELS.json "trust") also gets NAME.int8.trust.onnx: the trust graph with the same
trunk quantization (same calibration crops; its points equal NAME.int8.onnx's, checked) and the heads in fp32,
recorded under "trust" -> "int8_onnx".
Run: python scripts/quantize_weights.py fast [--data ../shared/data/300w/train] [--calibration 200]
"""

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from facepoints.checkpoint import RunSplit
from facepoints.export import quantize_int8
from facepoints.trust import load_trust
from facepoints.weights import PACKAGE_WEIGHTS, load_model, sha256_file, shipped_models

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "300w" / "train"))
    ap.add_argument("--calibration", type=int, default=200)
    ap.add_argument(
        "--trust-only",
        action="store_true",
        help="keep NAME.int8.onnx as it is; build only NAME.int8.trust.onnx (points checked against it)",
    )
    args = ap.parse_args()
    model, spec = load_model(args.name)
    cfg = spec.train_config
    x_train, _ = RunSplit.from_config(cfg, args.data).train_crops()
    calibration = x_train[: args.calibration].numpy()
    index = shipped_models()
    if args.trust_only:
        dest = PACKAGE_WEIGHTS / index[args.name]["int8_onnx"]["file"]
    else:
        dest = quantize_int8(model, spec, calibration, PACKAGE_WEIGHTS / f"{args.name}.int8.onnx")
        index[args.name]["int8_onnx"] = {
            "file": dest.name,
            "sha256": sha256_file(dest),
            "command": f"python scripts/quantize_weights.py {args.name} --calibration {args.calibration}",
            "calibration": f"{len(calibration)} un-augmented crops of the model's training faces"
            + (" (not its held-out faces)" if cfg["val_fraction"] > 0 else ""),
            "method": "onnxruntime quantize_static, QDQ, per-channel int8 weights, uint8 activations, Conv only",
        }
    if "trust" in index[args.name]:
        head, cal, _ = load_trust(args.name)
        tdest = quantize_int8(model, spec, calibration, PACKAGE_WEIGHTS / f"{args.name}.int8.trust.onnx", (head, cal))
        noise = np.random.default_rng(0).random((8, 1, spec.input_size, spec.input_size), dtype=np.float32)
        x = np.concatenate([x_train[args.calibration : args.calibration + 8].numpy(), noise])  # real crops and noise
        plain, with_trust = (
            ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"crops": x})[0]
            for p in (dest, tdest)
        )
        diff = float(np.abs(plain - with_trust).max())
        index[args.name]["trust"]["int8_onnx"] = {
            "file": tdest.name,
            "sha256": sha256_file(tdest),
            "command": f"python scripts/quantize_weights.py {args.name} --calibration {args.calibration}"
            + (" --trust-only" if args.trust_only else ""),
            "method": "as int8_onnx, on the trust graph (export_trust_onnx, raw points): the trunk's Conv quantized "
            "with the same calibration crops, the trust head's own convolutions left fp32",
            "points_max_abs_diff_to_int8_onnx_px": float(f"{diff:.2g}"),
        }
    (PACKAGE_WEIGHTS / "MODELS.json").write_text(json.dumps(index, indent=2) + "\n")
    print(json.dumps(index[args.name]["int8_onnx"], indent=2))
    print(json.dumps(index[args.name].get("trust", {}).get("int8_onnx"), indent=2))


if __name__ == "__main__":
    main()

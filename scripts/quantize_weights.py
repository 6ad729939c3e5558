"""Build the int8 ONNX of a shipped model and record it in MODELS.json beside the fp32 weights.

Static post-training quantization (ONNX Runtime, QDQ, per-channel int8 weights, Conv only; the
decode stays fp32), calibrated on un-augmented crops of the training split only (never the
held-out 10% or test/). benchmarks/architectures.py and accuracy.py measure the result.
Run: python scripts/quantize_weights.py fast [--data ../shared/data/300w/train] [--calibration 200]
"""

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import torch

from facepoints.data import read_dataset
from facepoints.dataset import LandmarkDataset, build_cache
from facepoints.export import export_onnx
from facepoints.io_utils import atomic_path
from facepoints.train import split_indices
from facepoints.weights import PACKAGE_WEIGHTS, load_model, sha256_file, shipped_models

ROOT = Path(__file__).resolve().parents[1]


def main():
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "300w" / "train"))
    ap.add_argument("--calibration", type=int, default=200)
    args = ap.parse_args()
    model, meta = load_model(args.name)
    cfg = torch.load(meta["path"], weights_only=True)["train"]["config"]
    samples = read_dataset(args.data)
    images, points = build_cache(samples)
    train_idx, _ = split_indices(len(samples), cfg["val_fraction"], cfg["seed"])
    idx = train_idx[: args.calibration]
    ds = LandmarkDataset(images[idx], points[idx], meta["input_size"], meta["margin"], None)
    calib = iter([{"crops": ds[i][0][None].numpy()} for i in range(len(ds))])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(calib, None)

    dest = PACKAGE_WEIGHTS / f"{args.name}.int8.onnx"
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f32, pre = Path(d) / "f32.onnx", Path(d) / "pre.onnx"
        export_onnx(model, meta["input_size"], f32)
        quant_pre_process(str(f32), str(pre), skip_symbolic_shape=True)
        with atomic_path(dest) as tmp:
            quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True, op_types_to_quantize=["Conv"],
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    index_path = PACKAGE_WEIGHTS / "MODELS.json"
    index = shipped_models()
    index[args.name]["int8_onnx"] = {
        "file": dest.name,
        "sha256": sha256_file(dest),
        "command": f"python scripts/quantize_weights.py {args.name} --calibration {args.calibration}",
        "calibration": f"{len(ds)} un-augmented crops from the training split (not the held-out 10%)",
        "method": "onnxruntime quantize_static, QDQ, per-channel int8 weights, uint8 activations, Conv only",
    }
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    print(json.dumps(index[args.name]["int8_onnx"], indent=2))


if __name__ == "__main__":
    main()

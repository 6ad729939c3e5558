"""ONNX export of a landmark model (crop in, 68 points out, dynamic batch)."""

from __future__ import annotations

import hashlib
import inspect
import warnings
from pathlib import Path

import numpy as np
import torch

from .dataset import default_cache_dir
from .errors import FacepointsError
from .io_utils import atomic_path

OPSET = 17


def export_onnx(model: torch.nn.Module, input_size: int, path: str | Path) -> Path:
    """Write `model` with its decode step as ONNX; batch size is dynamic."""
    from .predictor import PointsHead

    path = Path(path)
    head = PointsHead(model.float()).eval()  # the exporter traces BN in training mode otherwise
    x = torch.zeros(1, 1, input_size, input_size)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(head, x, str(tmp), input_names=["crops"], output_names=["points"],
                          dynamic_axes={"crops": {0: "batch"}, "points": {0: "batch"}}, opset_version=OPSET, dynamo=False)
    return path


def export_onnx_cached(model: torch.nn.Module, meta: dict) -> Path:
    """Export once per weights file, keyed by the file's content, into the user cache."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().float().numpy().tobytes())
    h.update(f"{meta['arch']} {meta['model_kwargs']} {meta['input_size']} {OPSET} {torch.__version__}".encode())
    h.update(inspect.getsource(type(model)).encode())  # a changed forward/decode must not reuse a stale export
    path = default_cache_dir() / "onnx" / f"{meta['arch']}-{h.hexdigest()[:16]}.onnx"
    if not path.exists():
        try:
            export_onnx(model, meta["input_size"], path)
        except ImportError as e:
            raise FacepointsError(f"ONNX export needs the onnx package ({e})") from None
    return path


def quantize_int8(model: torch.nn.Module, input_size: int, calibration: np.ndarray, path: str | Path) -> Path:
    """Static int8 ONNX of `model` (QDQ, per-channel weights, Conv only; decode stays fp32),
    calibrated on (N, 1, S, S) crops. Written atomically."""
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = iter([{"crops": c[None].astype(np.float32)} for c in calibration])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(batches, None)

    path = Path(path)
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f32, pre = Path(d) / "f32.onnx", Path(d) / "pre.onnx"
        export_onnx(model, input_size, f32)
        quant_pre_process(str(f32), str(pre), skip_symbolic_shape=True)
        with atomic_path(path) as tmp:
            quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True, op_types_to_quantize=["Conv"],
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return path

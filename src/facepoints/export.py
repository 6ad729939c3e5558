"""ONNX export of a landmark model: crop in, 68 calibrated points out, dynamic batch, settings in the metadata.

An exported graph reproduces the API: it subtracts the model's `output_shift` itself, and its
metadata_props (ModelSpec.onnx_metadata) say how to crop for it and how to mirror its answers,
so a user of the file alone gets the points `LandmarkPredictor` gives.
"""

from __future__ import annotations

import hashlib
import inspect
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .errors import FacepointsError
from .io_utils import atomic_path, default_cache_dir
from .model_files import SHIFT_IN_GRAPH, ModelSpec, shift_in_graph  # noqa: F401  (re-exported)

OPSET = 17


class PointsHead(torch.nn.Module):
    """Model + decode (+ calibration) in one graph: (B, 1, S, S) crop -> (B, 68, 2) crop pixels.

    `output_shift`: subtracted from every point when given (calibrated output); None = the raw decode."""

    def __init__(self, model: torch.nn.Module, output_shift=None):
        super().__init__()
        self.model = model
        shift = torch.zeros(2) if output_shift is None else torch.tensor([float(v) for v in output_shift])
        self.register_buffer("shift", shift.reshape(1, 1, 2), persistent=False)
        self.calibrated = output_shift is not None

    def forward(self, x):
        points = self.model.decode(self.model(x))
        return points - self.shift if self.calibrated else points


def export_onnx(model: torch.nn.Module, spec: ModelSpec, path: str | Path, calibrated: bool = True) -> Path:
    """Write `model` with its decode step (and, when `calibrated`, its output_shift) as ONNX, with the
    spec in the metadata; batch size is dynamic. Written atomically."""
    path = Path(path)
    head = PointsHead(model.float(), spec.output_shift if calibrated else None).eval()  # BN in eval mode for the trace
    x = torch.zeros(1, 1, spec.input_size, spec.input_size)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            head,
            x,
            str(tmp),
            input_names=["crops"],
            output_names=["points"],
            dynamic_axes={"crops": {0: "batch"}, "points": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
        write_metadata(tmp, spec, calibrated)
    return path


def write_metadata(path: str | Path, spec: ModelSpec, calibrated: bool) -> None:
    """Set the spec's settings (ModelSpec.onnx_metadata) in an ONNX file's metadata, in place; nothing else changes."""
    # onnx is needed here only; `import facepoints` does not pay for it
    import onnx

    graph = onnx.load(str(path))
    keep = [p for p in graph.metadata_props if not p.key.startswith("facepoints.")]
    del graph.metadata_props[:]
    for p in keep:
        graph.metadata_props.add(key=p.key, value=p.value)
    for key, value in spec.onnx_metadata(shift_in_graph=calibrated).items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(path))


def export_onnx_cached(model: torch.nn.Module, spec: ModelSpec) -> Path:
    """Export once per weights and spec, keyed by their content, into the user cache."""
    h = hashlib.sha256(b"calibrated v2")  # v2: graphs subtract output_shift; never reuse an older raw export
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().float().numpy().tobytes())
    h.update(f"{spec.arch} {spec.model_kwargs} {spec.input_size} {OPSET} {torch.__version__}".encode())
    h.update(repr(sorted(spec.onnx_metadata(True).items())).encode())  # shift, offsets, version
    h.update(inspect.getsource(type(model)).encode())  # a changed forward/decode must not reuse a stale export
    path = default_cache_dir() / "onnx" / f"{spec.arch}-{h.hexdigest()[:16]}.onnx"
    if not path.exists():
        try:
            export_onnx(model, spec, path)
        except ImportError as e:
            raise FacepointsError(f"ONNX export needs the onnx package ({e})") from None
    return path


def quantize_int8(model: torch.nn.Module, spec: ModelSpec, calibration: np.ndarray, path: str | Path) -> Path:
    """Static int8 ONNX of `model` (QDQ, per-channel weights, Conv only; decode stays fp32), calibrated on
    (N, 1, S, S) crops. Raw points, like the shipped fast.int8.onnx: the predictor subtracts output_shift
    (the metadata says so). Written atomically."""
    # onnxruntime.quantization is only for this offline step
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
        export_onnx(model, spec, f32, calibrated=False)
        quant_pre_process(str(f32), str(pre), skip_symbolic_shape=True)
        with atomic_path(path) as tmp:
            quantize_static(
                str(pre),
                str(tmp),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                op_types_to_quantize=["Conv"],
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
            write_metadata(tmp, spec, calibrated=False)
    return path

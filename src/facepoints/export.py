"""ONNX export of a landmark model: crop in, 68 calibrated points out, dynamic batch, settings in the metadata.

An exported graph reproduces the API: it subtracts the model's `output_shift` itself, and its
metadata_props (ModelSpec.onnx_metadata) say how to crop for it and how to mirror its answers,
so a user of the file alone gets the points `LandmarkPredictor` gives.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .errors import FacepointsError
from .io_utils import atomic_path, default_cache_dir
from .model_files import (  # noqa: F401  (re-exported)
    SHIFT_IN_GRAPH,
    TRUST_CALIBRATION,
    TRUST_OUTPUTS,
    ModelSpec,
    shift_in_graph,
)

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


class TrustGraph(torch.nn.Module):
    """Model + trust head in one graph: (B, 1, S, S) crop -> points (B, 68, 2) crop px (output_shift subtracted when
    given), presence (B,) and visibility (B, 68) probabilities, log_b (B, 68): the log Laplace scale of each point,
    which the calibration in the metadata turns into the expected error in crop pixels."""

    def __init__(self, model: torch.nn.Module, head: torch.nn.Module, output_shift=None):
        super().__init__()
        from .models.trust import TrustOutputs  # the trust heads' module: only graphs with them need it

        self.net = TrustOutputs(model, head)
        shift = torch.zeros(2) if output_shift is None else torch.tensor([float(v) for v in output_shift])
        self.register_buffer("shift", shift.reshape(1, 1, 2), persistent=False)
        self.calibrated = output_shift is not None

    def forward(self, x):
        points, presence, vis, log_b = self.net(x)
        return (points - self.shift if self.calibrated else points), torch.sigmoid(presence), torch.sigmoid(vis), log_b


def trust_metadata(calibration: dict) -> dict[str, str]:
    """What a user of a trust graph alone needs to read its extra outputs."""
    knots = {
        "log_b": calibration["log_b"],
        "error_px": calibration["error_px"],
        "units": "crop pixels",
        "rule": "linear interpolation in log_b between the knots (numpy.interp); below the first knot "
        "min(error_px[0], error_px[0] * exp(log_b - log_b[0])), above the last max(error_px[-1], "
        "error_px[-1] * exp(log_b - log_b[-1])); image pixels: multiply by crop side / input_size",
    }
    return {
        "facepoints.outputs": ", ".join(TRUST_OUTPUTS),
        "facepoints.output.presence": "batch float32 in [0, 1]: probability that the crop holds a real face whose "
        "points can be used",
        "facepoints.output.visibility": "batch x 68 float32 in [0, 1]: probability that each point is visible "
        "(not covered)",
        "facepoints.output.log_b": "batch x 68 float32: log Laplace scale of each point's error; expected error in "
        f"crop pixels by the knots in {TRUST_CALIBRATION}",
        TRUST_CALIBRATION: json.dumps(knots),
    }


def export_trust_onnx(
    model: torch.nn.Module,
    head: torch.nn.Module,
    calibration: dict,
    spec: ModelSpec,
    path: str | Path,
    calibrated: bool = True,
) -> Path:
    """`export_onnx` with the trust head: outputs points, presence, visibility, log_b (TrustGraph), the spec and
    the uncertainty calibration in the metadata. Written atomically."""
    path = Path(path)
    graph = TrustGraph(model.float(), head.float(), spec.output_shift if calibrated else None).eval()
    x = torch.zeros(1, 1, spec.input_size, spec.input_size)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            x,
            str(tmp),
            input_names=["crops"],
            output_names=list(TRUST_OUTPUTS),
            dynamic_axes={"crops": {0: "batch"}, **{k: {0: "batch"} for k in TRUST_OUTPUTS}},
            opset_version=OPSET,
            dynamo=False,
        )
        write_metadata(tmp, spec, calibrated, trust_metadata(calibration))
    return path


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


def write_metadata(path: str | Path, spec: ModelSpec, calibrated: bool, extra: dict[str, str] | None = None) -> None:
    """Set the spec's settings (ModelSpec.onnx_metadata, and `extra`) in an ONNX file's metadata, in place; nothing
    else changes."""
    # onnx is needed here only; `import facepoints` does not pay for it
    import onnx

    graph = onnx.load(str(path))
    keep = [p for p in graph.metadata_props if not p.key.startswith("facepoints.")]
    del graph.metadata_props[:]
    for p in keep:
        graph.metadata_props.add(key=p.key, value=p.value)
    meta = spec.onnx_metadata(shift_in_graph=calibrated)
    if extra:
        meta["facepoints.output"] = (
            "points: batch x 68 x 2 float32, crop pixels (pixel i has centre i)"
            + (", output_shift already subtracted" if calibrated else ", raw: subtract output_shift")
            + "; presence: batch; visibility: batch x 68; log_b: batch x 68 (see facepoints.output.*)"
        )
        meta.update(extra)
    for key, value in meta.items():
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


def quantize_int8(
    model: torch.nn.Module,
    spec: ModelSpec,
    calibration: np.ndarray,
    path: str | Path,
    trust: tuple[torch.nn.Module, dict] | None = None,
) -> Path:
    """Static int8 ONNX of `model` (QDQ, per-channel weights, Conv only; decode stays fp32), calibrated on
    (N, 1, S, S) crops. Raw points, like the shipped fast.int8.onnx: the predictor subtracts output_shift
    (the metadata says so). Written atomically. With `trust` (head, uncertainty calibration): the trust graph
    (export_trust_onnx), its trunk quantized as the plain graph's and the head's own convolutions left fp32."""
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
        if trust is None:
            export_onnx(model, spec, f32, calibrated=False)
        else:
            export_trust_onnx(model, trust[0], trust[1], spec, f32, calibrated=False)
        quant_pre_process(str(f32), str(pre), skip_symbolic_shape=True)
        import onnx  # the exporter's, like write_metadata's

        nodes = onnx.load(str(pre)).graph.node
        # the trust head's own convolutions stay fp32: named by their weights (node names mix the two heads)
        exclude = [n.name for n in nodes if n.op_type == "Conv" and n.input[1].startswith("net.head.")]
        with atomic_path(path) as tmp:
            quantize_static(
                str(pre),
                str(tmp),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                op_types_to_quantize=["Conv"],
                nodes_to_exclude=exclude,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
            write_metadata(tmp, spec, False, None if trust is None else trust_metadata(trust[1]))
    return path

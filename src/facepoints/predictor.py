"""Crops -> model -> points: runs a landmark model (PyTorch or ONNX Runtime) on face boxes.

Boxes given here are in the landmark-box convention (the tight box of the 68 points);
detectors convert their own boxes to it first (see detectors.py).
"""

from __future__ import annotations

import os

import numpy as np

from .crop import crop_face, mirror_points, preprocess, to_gray
from .errors import FacepointsError, require
from .model_files import (
    DEFAULT_MODEL,
    ModelSpec,
    OnnxFile,
    check_file,
    resolve,
    shift_in_graph,
    shipped_graphs,
    spec_from_onnx_metadata,
)


class LandmarkPredictor:
    """One landmark model on face crops: `spec` says how to crop and read it, `backend` runs it.

    A shipped model runs its shipped ONNX graph (int8 where one ships and `int8`, else fp32) and needs no
    torch; so does an exported .onnx file given by path. A .pt file, and backend="torch", need PyTorch:
    the ONNX Runtime path then exports the .pt once into the user cache."""

    def __init__(
        self,
        model: str | None = None,
        backend: str = "auto",
        threads: int | None = None,
        flip_test: bool = False,
        int8: bool = True,
    ):
        if backend not in ("auto", "onnxruntime", "torch"):
            raise FacepointsError(f"unknown backend {backend!r}; choose auto, onnxruntime or torch")
        self.flip_test = flip_test
        self.threads = threads
        self.model = self.head = self.session = None  # model and head: the torch backend's (and export's) only
        path, _ = resolve(model)
        fp32, int8_graph = shipped_graphs(model or DEFAULT_MODEL) if path.suffix == ".pt" else (None, None)
        self.int8 = int8 and int8_graph is not None and backend != "torch"
        graph = int8_graph if self.int8 else fp32
        if backend != "torch" and (graph is not None or path.suffix.lower() == ".onnx"):
            ort = _onnxruntime()
            graph = graph or OnnxFile(str(path), "")
            self.session = self._open(ort, check_file(graph) if graph.sha256 else graph.path)
            meta = self.session.get_modelmeta().custom_metadata_map
            spec = spec_from_onnx_metadata(meta, path)
            self.spec = ModelSpec(**{**spec.__dict__, "onnx": fp32, "int8_onnx": int8_graph})
        else:
            if path.suffix.lower() == ".onnx":
                raise FacepointsError(f"{path}: an ONNX graph runs on ONNX Runtime (--backend auto or onnxruntime)")
            require("torch", f"{path}: a .pt model" if backend != "torch" else "the torch backend", "train")
            # torch: only the torch backend and .pt files need it
            from .export import PointsHead
            from .weights import load_model

            self.model, self.spec = load_model(model)
            if backend != "torch":
                self.session = self._ort_session(required=backend == "onnxruntime")
            self.head = PointsHead(self.model).eval()  # raw decode; run_crops subtracts the spec's shift
        self.backend = "onnxruntime" if self.session is not None else "torch"
        self.session_calibrated = self.session is not None and shift_in_graph(self.session)

    @property
    def input_size(self) -> int:
        return self.spec.input_size

    @property
    def margin(self) -> float:
        return self.spec.margin

    def _open(self, ort, path: str):
        try:
            return ort.InferenceSession(str(path), self._ort_options(ort), providers=["CPUExecutionProvider"])
        except Exception as e:  # ONNX Runtime's own exception types: a damaged or foreign file
            first = (str(e).strip().splitlines() or [""])[0][:160]
            raise FacepointsError(f"{path}: not a readable ONNX graph ({e.__class__.__name__}: {first})") from None

    def _ort_session(self, required: bool):
        """An ONNX Runtime session of the spec's shipped graph, or of the .pt exported into the user cache."""
        ort = _onnxruntime()
        shipped = self.spec.int8_onnx if self.int8 else self.spec.onnx
        if shipped is not None:
            return self._open(ort, check_file(shipped))
        # torch and the exporter: only a .pt model gets here
        from .export import export_onnx_cached

        try:
            path = export_onnx_cached(self.model, self.spec)
        except Exception as e:  # no onnx exporter available: fall back to torch
            if required:
                raise FacepointsError(f"cannot build the ONNX model ({e.__class__.__name__}: {e})") from None
            return None
        return self._open(ort, path)

    def _ort_options(self, ort):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads or min(4, os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        return opts

    def _calibrated(self, x: np.ndarray) -> np.ndarray:
        """Model inputs -> calibrated points (output_shift removed), whichever backend runs."""
        if self.session is not None:
            out = self.session.run(None, {self.session.get_inputs()[0].name: np.ascontiguousarray(x)})[0]
            if self.session_calibrated:
                return out
        else:
            import torch  # the torch backend's: loaded with its model in __init__

            # torch's thread count is process-wide: set it for this call only, so a predictor asked for 1 thread
            # does not slow down (or change the float sums of) every other torch user in the process
            previous = torch.get_num_threads()
            if self.threads:
                torch.set_num_threads(self.threads)
            try:
                with torch.inference_mode():
                    out = self.head(torch.from_numpy(np.ascontiguousarray(x))).numpy()
            finally:
                torch.set_num_threads(previous)
        return out - np.asarray(self.spec.output_shift, np.float32)

    def run_crops(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S) uint8 gray crops -> (N, 68, 2) calibrated points in crop pixels."""
        if len(crops) == 0:
            return np.zeros((0, 68, 2), np.float32)
        x = preprocess(crops)
        if not self.flip_test:
            return self._calibrated(x).astype(np.float32)
        n = len(crops)
        out = self._calibrated(np.concatenate([x, x[..., ::-1]]))
        # the mirrored crop's answer, mirrored back: calibrated points sit annotation_offset - output_shift
        # from what they mark, and keep that direction in a mirror
        offset_x = self.spec.annotation_offset[0] - self.spec.output_shift[0]
        return ((out[:n] + mirror_points(out[n:], self.input_size, offset_x)) / 2).astype(np.float32)

    def predict(self, image: np.ndarray, boxes, angles=None) -> np.ndarray:
        """RGB image and (N, 4) landmark-convention boxes -> (N, 68, 2) points in image pixels.

        `angles`: each face's roll in degrees, to crop it upright (boxes then in its upright frame)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        angles = np.zeros(len(boxes)) if angles is None else np.asarray(angles, np.float64).reshape(-1)
        # gray after the warp: cheaper
        crops = [crop_face(image, tuple(b), self.input_size, self.margin, a) for b, a in zip(boxes, angles)]
        if not crops:
            return np.zeros((0, 68, 2), np.float32)
        points = self.run_crops(np.stack([to_gray(c.image) for c in crops]))
        return np.stack([c.to_source(p) for c, p in zip(crops, points)])

    @property
    def name(self) -> str:
        return self.spec.name


def _onnxruntime():
    # a core dependency; imported on first use as it is slow to load
    import onnxruntime

    return onnxruntime


__all__ = ["LandmarkPredictor", "ModelSpec"]

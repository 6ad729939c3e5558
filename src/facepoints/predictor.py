"""Crops -> model -> points: runs a landmark model (PyTorch or ONNX Runtime) on face boxes.

Boxes given here are in the landmark-box convention (the tight box of the 68 points);
detectors convert their own boxes to it first (see detectors.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .crop import crop_face, mirror_points, preprocess, to_gray
from .errors import FacepointsError
from .export import PointsHead, export_onnx_cached, shift_in_graph
from .weights import ModelSpec, load_model, sha256_file


class LandmarkPredictor:
    """One landmark model on face crops: `spec` says how to crop and read it, `backend` runs it."""

    def __init__(
        self,
        model: str | None = None,
        backend: str = "auto",
        threads: int | None = None,
        flip_test: bool = False,
        int8: bool = True,
    ):
        self.model, self.spec = load_model(model)
        self.int8 = (
            int8 and self.spec.int8_onnx is not None
        )  # a shipped int8 ONNX (same accuracy, faster) when there is one
        self.flip_test = flip_test
        self.threads = threads
        self.session = None
        self.session_calibrated = False  # whether the session's graph subtracts output_shift itself
        if backend not in ("auto", "onnxruntime", "torch"):
            raise FacepointsError(f"unknown backend {backend!r}; choose auto, onnxruntime or torch")
        if backend in ("auto", "onnxruntime"):
            self.session = self._ort_session(required=backend == "onnxruntime")
        self.backend = "onnxruntime" if self.session is not None else "torch"
        self.int8 = self.int8 and self.session is not None
        self.session_calibrated = self.session is not None and shift_in_graph(self.session)
        self.head = PointsHead(self.model).eval()  # raw decode; run_crops subtracts the spec's shift

    @property
    def input_size(self) -> int:
        return self.spec.input_size

    @property
    def margin(self) -> float:
        return self.spec.margin

    def _ort_session(self, required: bool):
        try:
            # optional: without ONNX Runtime the torch backend runs
            import onnxruntime as ort
        except ImportError:
            if required:
                raise FacepointsError("onnxruntime is not installed (pip install onnxruntime)") from None
            return None
        if self.int8:
            path, sha = self.spec.int8_onnx.path, self.spec.int8_onnx.sha256
            if not Path(path).exists() or sha256_file(path) != sha:
                raise FacepointsError(
                    f"{path}: missing or checksum mismatch (file damaged or replaced); reinstall facepoints"
                )
            return ort.InferenceSession(path, self._ort_options(ort), providers=["CPUExecutionProvider"])
        try:
            path = export_onnx_cached(self.model, self.spec)
        except Exception as e:  # no onnx exporter available: fall back to torch
            if required:
                raise FacepointsError(f"cannot build the ONNX model ({e.__class__.__name__}: {e})") from None
            return None
        return ort.InferenceSession(str(path), self._ort_options(ort), providers=["CPUExecutionProvider"])

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


__all__ = ["LandmarkPredictor", "ModelSpec", "PointsHead"]

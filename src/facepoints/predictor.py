"""Crops -> model -> points: runs a landmark model (PyTorch or ONNX Runtime) on face boxes.

Boxes given here are in the landmark-box convention (the tight box of the 68 points);
detectors convert their own boxes to it first (see detectors.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .crop import crop_face, to_gray
from .errors import FacepointsError
from .landmarks import FLIP
from .weights import load_model


class PointsHead(torch.nn.Module):
    """Model + decode in one graph: (B, 1, S, S) crop -> (B, 68, 2) crop pixels. What ONNX exports."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.decode(self.model(x))


class LandmarkPredictor:
    def __init__(self, model: str | None = None, backend: str = "auto", threads: int | None = None, flip_test: bool = False,
                 int8: bool = True):
        self.model, self.meta = load_model(model)
        self.int8 = int8 and "int8_onnx" in self.meta  # a shipped int8 ONNX (same accuracy, faster) when there is one
        self.input_size, self.margin = self.meta["input_size"], self.meta["margin"]
        self.flip_test = flip_test
        self.threads = threads
        self.session = None
        if backend not in ("auto", "onnxruntime", "torch"):
            raise FacepointsError(f"unknown backend {backend!r}; choose auto, onnxruntime or torch")
        if backend in ("auto", "onnxruntime"):
            self.session = self._ort_session(required=backend == "onnxruntime")
        self.backend = "onnxruntime" if self.session is not None else "torch"
        self.int8 = self.int8 and self.session is not None
        self.head = PointsHead(self.model).eval()

    def _ort_session(self, required: bool):
        try:
            import onnxruntime as ort
        except ImportError:
            if required:
                raise FacepointsError("onnxruntime is not installed (pip install onnxruntime)") from None
            return None
        from .export import export_onnx_cached
        from .weights import sha256_file

        if self.int8:
            path, sha = self.meta["int8_onnx"]["path"], self.meta["int8_onnx"]["sha256"]
            if not Path(path).exists() or sha256_file(path) != sha:
                raise FacepointsError(f"{path}: missing or checksum mismatch (file damaged or replaced); reinstall facepoints")
            return ort.InferenceSession(path, self._ort_options(ort), providers=["CPUExecutionProvider"])
        try:
            path = export_onnx_cached(self.model, self.meta)
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

    def run_crops(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S) uint8 gray crops -> (N, 68, 2) points in crop pixels."""
        if len(crops) == 0:
            return np.zeros((0, 68, 2), np.float32)
        x = (crops.astype(np.float32) / 255.0)[:, None]
        if self.flip_test:
            x = np.concatenate([x, x[..., ::-1]])
        if self.session is not None:
            out = self.session.run(None, {self.session.get_inputs()[0].name: np.ascontiguousarray(x)})[0]
        else:
            if self.threads:
                torch.set_num_threads(self.threads)
            with torch.inference_mode():
                out = self.head(torch.from_numpy(np.ascontiguousarray(x))).numpy()
        if self.flip_test:
            n = len(crops)
            mirrored = out[n:][:, FLIP].copy()
            # a mirrored crop mirrors what the points mark; the learned annotation offset keeps its direction
            mirrored[..., 0] = self.input_size - 1 - mirrored[..., 0] + 2 * self.meta["annotation_offset"][0]
            out = (out[:n] + mirrored) / 2
        return (out - np.asarray(self.meta["output_shift"], np.float32)).astype(np.float32)

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
        return Path(self.meta["path"]).stem

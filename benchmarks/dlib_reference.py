"""The reference: dlib's 68-point shape predictor (face_recognition_models) behind the same interface."""

from __future__ import annotations

import warnings

import numpy as np


class DlibShapePredictor:
    def __init__(self):
        import dlib

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import face_recognition_models

        self._predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
        self._dlib = dlib

    def predict(self, rgb: np.ndarray, boxes) -> np.ndarray:
        """(N, 4) boxes x1 y1 x2 y2 (given to dlib as they are) -> (N, 68, 2)."""
        rgb = np.ascontiguousarray(rgb)
        out = []
        for x1, y1, x2, y2 in np.asarray(boxes, np.float64).reshape(-1, 4):
            rect = self._dlib.rectangle(int(round(x1)), int(round(y1)), int(round(x2)) - 1, int(round(y2)) - 1)
            shape = self._predictor(rgb, rect)
            out.append([(p.x, p.y) for p in shape.parts()])
        return np.asarray(out, np.float32).reshape(-1, 68, 2)

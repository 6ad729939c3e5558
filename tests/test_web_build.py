"""scripts/build_web.py without a browser: what the page must still subtract from the exported graph."""

import importlib.util
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _build_web():
    spec = importlib.util.spec_from_file_location("build_web", ROOT / "scripts" / "build_web.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _ShiftInGraph(torch.nn.Module):
    """A model whose decode already subtracts output_shift (as an export that holds it would)."""

    def __init__(self, model, shift):
        super().__init__()
        self.model, self.shift = model, torch.tensor(shift, dtype=torch.float32)

    def forward(self, x):
        return self.model(x)

    def decode(self, out):
        return self.model.decode(out) - self.shift


def test_output_shift_is_subtracted_once_whether_or_not_the_export_holds_it(tmp_path):
    from facepoints.export import export_onnx
    from facepoints.weights import load_model

    build_web = _build_web()
    model, meta = load_model(None)
    shift = list(meta["output_shift"])
    assert np.abs(shift).max() > 0.01  # the shipped model has one, so the two cases differ
    plain = export_onnx(model, meta["input_size"], tmp_path / "plain.onnx")
    assert np.allclose(build_web.landmark_output_shift(model, meta, plain), shift)
    shifted = export_onnx(_ShiftInGraph(model, shift), meta["input_size"], tmp_path / "shifted.onnx")
    assert build_web.landmark_output_shift(model, meta, shifted) == [0.0, 0.0]

"""scripts/build_web.py without a browser: what the page must still subtract from the exported graph."""

import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _build_web():
    spec = importlib.util.spec_from_file_location("build_web", ROOT / "scripts" / "build_web.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_output_shift_is_subtracted_once_whether_or_not_the_export_holds_it(tmp_path):
    from facepoints.export import export_onnx
    from facepoints.weights import load_model

    build_web = _build_web()
    model, spec = load_model(None)
    shift = list(spec.output_shift)
    assert np.abs(shift).max() > 0.01  # the shipped model has one, so the two cases differ
    plain = export_onnx(model, spec, tmp_path / "plain.onnx", calibrated=False)
    assert np.allclose(build_web.landmark_output_shift(model, spec, plain), shift)
    shifted = export_onnx(model, spec, tmp_path / "shifted.onnx")  # the default export subtracts it in the graph
    assert build_web.landmark_output_shift(model, spec, shifted) == [0.0, 0.0]

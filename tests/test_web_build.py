"""The site build (facepoints.website) without a browser: what the page must still subtract from the exported graph."""

import numpy as np

from facepoints import website


def test_output_shift_is_subtracted_once_whether_or_not_the_export_holds_it(tmp_path):
    from facepoints.export import export_onnx
    from facepoints.weights import load_model

    model, spec = load_model(None)
    shift = list(spec.output_shift)
    assert np.abs(shift).max() > 0.01  # the shipped model has one, so the two cases differ
    plain = export_onnx(model, spec, tmp_path / "plain.onnx", calibrated=False)
    assert np.allclose(website.landmark_output_shift(model, spec, plain), shift)
    shifted = export_onnx(model, spec, tmp_path / "shifted.onnx")  # the default export subtracts it in the graph
    assert website.landmark_output_shift(model, spec, shifted) == [0.0, 0.0]

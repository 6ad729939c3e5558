"""An exported ONNX reproduces the API (output_shift in the graph, settings in the metadata)."""

import json
from pathlib import Path

import numpy as np
import pytest

from facepoints.cli import main
from facepoints.crop import crop_face, mirror_points, points_box, preprocess, to_gray
from facepoints.images import load_image

from .conftest import painted_face, template

ROOT = Path(__file__).resolve().parents[1]


def real_and_synthetic_crops(size: int, margin: float) -> np.ndarray:
    """Crops of the example photo's face (boxes from its documented points, a little jittered) and of painted faces."""
    image = load_image(ROOT / "examples" / "grace_hopper.jpg")
    points = np.asarray(json.loads((ROOT / "docs" / "grace_hopper.json").read_text())["faces"][0]["points"], np.float32)
    box = np.asarray(points_box(points))
    crops = [
        crop_face(image, tuple(box + d), size, margin, a).image
        for d, a in [(0, 0.0), (4, 5.0), (-3, -8.0), (np.array([6, -2, 6, -2]), 0.0)]
    ]
    for i in range(3):
        pts = template(70 + 10 * i, (100, 100))
        crops.append(crop_face(painted_face(pts, seed=i), points_box(pts), size, margin).image)
    return np.stack([to_gray(c) for c in crops])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "fast.onnx"
    assert main(["export", "--model", "fast", "-o", str(path)]) == 0
    return path


def test_exported_onnx_gives_the_points_of_the_api(exported):
    import onnxruntime as ort

    from facepoints.predictor import LandmarkPredictor

    api = LandmarkPredictor("fast", backend="torch", threads=1)
    assert abs(api.spec.output_shift[0]) > 0.1  # the shipped model has a shift: the test can see it missing
    crops = real_and_synthetic_crops(api.input_size, api.margin)
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    got = session.run(None, {"crops": preprocess(crops)})[0]
    assert np.abs(got - api.run_crops(crops)).max() <= 0.01  # crop px


def test_exported_metadata_is_enough_to_crop_and_mirror(exported):
    """A user of the file alone: crop size, margin and the offsets are in it; flip test from them matches the API's."""
    import onnxruntime as ort

    from facepoints.predictor import LandmarkPredictor

    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    api = LandmarkPredictor("fast", backend="torch", threads=1, flip_test=True)
    assert int(meta["facepoints.input_size"]) == api.input_size
    assert float(meta["facepoints.margin"]) == api.margin
    assert json.loads(meta["facepoints.output_shift"]) == list(api.spec.output_shift)
    assert json.loads(meta["facepoints.annotation_offset"]) == list(api.spec.annotation_offset)
    assert meta["facepoints.output_shift_in_graph"] == "true"
    assert (
        meta["facepoints.arch"] == "pipnet_fast"
        and meta["facepoints.version"]
        and "300w" in meta["facepoints.landmarks"]
    )
    size = int(meta["facepoints.input_size"])
    crops = real_and_synthetic_crops(size, float(meta["facepoints.margin"]))
    x = preprocess(crops)
    plain, mirrored = (session.run(None, {"crops": np.ascontiguousarray(v)})[0] for v in (x, x[..., ::-1]))
    offset_x = json.loads(meta["facepoints.annotation_offset"])[0] - json.loads(meta["facepoints.output_shift"])[0]
    by_hand = (plain + mirror_points(mirrored, size, offset_x)) / 2
    assert np.abs(by_hand - api.run_crops(crops)).max() <= 0.01


def test_predictor_backends_agree_and_the_shift_is_applied_once():
    """The shipped fp32 graph subtracts the shift itself (the predictor must not again); the shipped int8
    graph has none in it (its metadata says so), so the predictor subtracts it."""
    import onnxruntime as ort

    from facepoints.predictor import LandmarkPredictor

    torch_api = LandmarkPredictor("fast", backend="torch", threads=1)
    fp32 = LandmarkPredictor("fast", backend="onnxruntime", threads=1, int8=False)
    crops = real_and_synthetic_crops(torch_api.input_size, torch_api.margin)
    assert fp32.session_calibrated and not fp32.int8
    assert np.abs(fp32.run_crops(crops) - torch_api.run_crops(crops)).max() <= 0.01
    q = LandmarkPredictor("fast", backend="onnxruntime", threads=1, int8=True)
    if not q.int8:
        pytest.skip("this install ships no int8 graph")
    assert not q.session_calibrated
    raw = ort.InferenceSession(q.spec.int8_onnx.path, providers=["CPUExecutionProvider"]).run(
        None, {"crops": preprocess(crops)}
    )[0]
    np.testing.assert_array_equal(
        q.run_crops(crops), (raw - np.asarray(q.spec.output_shift, np.float32)).astype(np.float32)
    )


def test_quantized_graph_is_raw_and_says_so(tmp_path):
    """quantize_int8 makes graphs like the shipped fast.int8.onnx: raw points, the predictor subtracts the shift."""
    import onnxruntime as ort

    from facepoints.export import quantize_int8, shift_in_graph
    from facepoints.models import create_model
    from facepoints.weights import ModelSpec

    model = create_model("pipnet_small", widths=(8, 8, 16, 16), depths=(1, 1, 1, 1), head_chs=16).eval()
    spec = ModelSpec(arch="pipnet_small", input_size=128, margin=1.25, output_shift=(0.5, -0.25))
    noise = np.random.default_rng(0).random((4, 1, 128, 128), dtype=np.float32)
    path = quantize_int8(model, spec, noise, tmp_path / "q.onnx")
    assert not shift_in_graph(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]))


@pytest.mark.parametrize("name", ["fast", "accurate", "xception"])
def test_shipped_graph_is_the_export_of_the_shipped_weights(name):
    """The core install runs the shipped ONNX graph without torch: its metadata gives the .pt's spec, and its
    points are the torch model's."""
    from facepoints.model_files import shipped_models
    from facepoints.predictor import LandmarkPredictor

    if "onnx" not in shipped_models().get(name, {}):
        pytest.skip(f"this install ships no {name} graph")
    graph = LandmarkPredictor(name, backend="onnxruntime", threads=1, int8=False)
    torch_api = LandmarkPredictor(name, backend="torch", threads=1)
    assert graph.model is None and graph.session_calibrated and graph.spec.onnx.path.endswith(f"{name}.onnx")
    for key in ("arch", "input_size", "margin", "model_kwargs", "annotation_offset", "output_shift", "path"):
        assert getattr(graph.spec, key) == getattr(torch_api.spec, key), key
    crops = real_and_synthetic_crops(graph.input_size, graph.margin)[:4]
    assert np.abs(graph.run_crops(crops) - torch_api.run_crops(crops)).max() <= 0.01


def test_a_damaged_shipped_graph_is_one_line(tiny_model, tmp_path, monkeypatch):
    import facepoints.model_files as mf
    from facepoints.errors import FacepointsError
    from facepoints.predictor import LandmarkPredictor

    (tmp_path / "tiny.pt").write_bytes((tiny_model / "model.pt").read_bytes())
    (tmp_path / "tiny.onnx").write_bytes(b"not a graph")
    entry = {
        "file": "tiny.pt",
        "sha256": mf.sha256_file(tmp_path / "tiny.pt"),
        "onnx": {"file": "tiny.onnx", "sha256": "0" * 64},
    }
    (tmp_path / "MODELS.json").write_text(json.dumps({"tiny": entry}))
    monkeypatch.setattr(mf, "PACKAGE_WEIGHTS", tmp_path)
    with pytest.raises(FacepointsError, match="tiny.onnx: missing or checksum mismatch"):
        LandmarkPredictor("tiny")
    assert LandmarkPredictor("tiny", backend="torch").backend == "torch"  # the .pt still serves torch


def test_an_exported_graph_runs_by_path_and_a_foreign_one_is_refused(exported, tmp_path):
    """`--model file.onnx`: an exported graph carries its settings, so it runs like the model it came from."""
    import onnx

    from facepoints.errors import FacepointsError
    from facepoints.predictor import LandmarkPredictor

    by_path = LandmarkPredictor(str(exported), threads=1)
    fp32 = LandmarkPredictor("fast", threads=1, int8=False)
    assert by_path.model is None and by_path.spec.margin == fp32.spec.margin
    crops = real_and_synthetic_crops(fp32.input_size, fp32.margin)[:3]
    np.testing.assert_allclose(by_path.run_crops(crops), fp32.run_crops(crops), atol=1e-4)
    graph = onnx.load(str(exported))
    del graph.metadata_props[:]
    onnx.save(graph, str(tmp_path / "bare.onnx"))
    with pytest.raises(FacepointsError, match="bare.onnx: not a facepoints ONNX graph"):
        LandmarkPredictor(str(tmp_path / "bare.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(FacepointsError, match="junk.onnx: not a readable ONNX graph"):
        LandmarkPredictor(str(tmp_path / "junk.onnx"))

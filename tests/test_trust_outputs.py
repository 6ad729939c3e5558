"""Trust outputs everywhere a face goes (issue 23, phase 2): the lean head, its ONNX graph, the predictor, the
Face fields, JSON/CSV/Parquet, drawing, min_presence, video, export.

Tiny fixtures (a tiny random PIPNet, painted images) for the graph and its parity; the shipped `fast` with its
trust heads (in the package) for the end-to-end behaviour on examples/grace_hopper.jpg."""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from facepoints import Landmarker
from facepoints.batch import COLUMNS, rows_to_arrays, schema
from facepoints.batch.rows import face_row
from facepoints.config import RECOMMENDED_MIN_PRESENCE, LandmarkerOptions
from facepoints.errors import FacepointsError, UsageError
from facepoints.export import TrustGraph, export_trust_onnx
from facepoints.images import load_image
from facepoints.model_files import PACKAGE_WEIGHTS, TRUST_CALIBRATION, TRUST_OUTPUTS, ModelSpec
from facepoints.models.pipnet import PIPNet
from facepoints.models.trust import GridTrustHead, TrustOutputs, decode_with_trust
from facepoints.occluders import occlude
from facepoints.predictor import LandmarkPredictor
from facepoints.results import CSV_HEADER
from facepoints.trust import losses

ROOT = Path(__file__).resolve().parents[1]
S = 64
CAL = {"log_b": [-1.0, 0.0, 1.0, 2.0], "error_px": [0.5, 1.0, 2.5, 6.0]}


def tiny_pipnet(seed: int = 0) -> PIPNet:
    torch.manual_seed(seed)
    return PIPNet(input_size=S, widths=(8, 8, 16, 16), depths=(1, 1, 1, 1), head_chs=16).eval()


OPTIONS = {"lean": {}, "all options": {"mass": True, "detail_channels": 8, "patch": True, "mix": True}}


def tiny_head(seed: int = 1, **kwargs) -> GridTrustHead:
    torch.manual_seed(seed)
    head = GridTrustHead(channels=16, **kwargs)
    with torch.no_grad():  # not the zero init: every input should matter in the parity check
        head.point_embed.normal_()
        if head.mix is not None:
            head.mix.normal_(0, 0.1)
    return head.eval()


def tiny_spec() -> ModelSpec:
    return ModelSpec(
        arch="pipnet_small",
        input_size=S,
        margin=1.1,
        output_shift=(0.25, -0.5),
        model_kwargs={"widths": [8, 8, 16, 16], "depths": [1, 1, 1, 1], "head_chs": 16},
    )


@pytest.fixture(scope="module")
def shipped():
    return Landmarker.from_pretrained("fast", threads=1)


@pytest.fixture(scope="module")
def hopper():
    return load_image(ROOT / "examples" / "grace_hopper.jpg")


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_lean_head_keeps_the_points_and_gives_shaped_outputs(options):
    model, head = tiny_pipnet(), tiny_head(**options)
    x = torch.rand(3, 1, S, S)
    out = model(x)
    points, k, stats = decode_with_trust(model, out, mass=True)
    torch.testing.assert_close(points, model.decode(out), rtol=0, atol=0)  # the trunk's answer, bit for bit
    assert k.shape == (3, 68) and stats.shape == (3, 2, 68) and (stats <= 1e-6).all()  # log probabilities
    p2, presence, vis, log_b = TrustOutputs(model, head)(x)
    torch.testing.assert_close(p2, points, rtol=0, atol=0)
    assert presence.shape == (3,) and vis.shape == log_b.shape == (3, 68)
    assert torch.isfinite(presence).all() and torch.isfinite(vis).all() and torch.isfinite(log_b).all()


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_lean_head_gradients_reach_the_head_only(options):
    model, head = tiny_pipnet(), tiny_head(**options).train()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(4, 1, S, S)
    batch = (
        x,
        torch.rand(4, 68, 2) * S,
        (torch.rand(4, 68) > 0.3).float(),
        torch.tensor([1.0, 0, 1, 1]),
        torch.ones(4),
    )
    losses(head, model, torch.zeros(2), batch)["total"].backward()
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_trust_graph_matches_torch_and_names_its_outputs(tmp_path, options):
    model, head, spec = tiny_pipnet(), tiny_head(**options), tiny_spec()
    path = export_trust_onnx(model, head, CAL, spec, tmp_path / "t.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert tuple(o.name for o in sess.get_outputs()) == TRUST_OUTPUTS
    meta = sess.get_modelmeta().custom_metadata_map
    assert json.loads(meta[TRUST_CALIBRATION])["log_b"] == CAL["log_b"]
    assert meta["facepoints.outputs"] == ", ".join(TRUST_OUTPUTS) and "presence" in meta["facepoints.output"]
    x = np.random.default_rng(0).random((5, 1, S, S), dtype=np.float32)  # dynamic batch
    got = sess.run(None, {"crops": x})
    with torch.inference_mode():
        want = [t.numpy() for t in TrustGraph(model, head, spec.output_shift).eval()(torch.from_numpy(x))]
    for name, g, w in zip(TRUST_OUTPUTS, got, want):
        assert g.shape == w.shape, name
    # an untrained net on noise has near-flat score maps: ORT and torch may break an argmax tie apart (a whole
    # cell off), and with the `mix` option every point of that face hears it. Every other face must agree.
    faces = (np.abs(got[0] - want[0]) < 1e-4).all((-1, -2))  # (B,)
    assert faces.sum() >= 3, faces
    for name, g, w in zip(TRUST_OUTPUTS, got, want):
        np.testing.assert_allclose(g[faces], w[faces], atol=1e-4, err_msg=name)
    assert ((got[1] >= 0) & (got[1] <= 1)).all() and ((got[2] >= 0) & (got[2] <= 1)).all()

    # the predictor reads the file alone: points, and presence/visibility/uncertainty by the metadata's knots
    pred = LandmarkPredictor(str(path), threads=1)
    assert pred.has_trust
    crops = (x[:, 0] * 255).astype(np.uint8)
    r = pred.run_crops_trust(crops)
    assert r.points.shape == (5, 68, 2) and r.presence.shape == (5,)
    assert r.visibility.shape == r.uncertainty.shape == (5, 68) and r.visibility.dtype == np.float32
    assert (r.uncertainty > 0).all()


def test_flip_test_averages_both_views(tmp_path):
    path = export_trust_onnx(tiny_pipnet(), tiny_head(), CAL, tiny_spec(), tmp_path / "t.onnx")
    crops = (np.random.default_rng(1).random((2, S, S)) * 255).astype(np.uint8)
    one = LandmarkPredictor(str(path), threads=1).run_crops_trust(crops)
    mirrored = LandmarkPredictor(str(path), threads=1).run_crops_trust(crops[..., ::-1].copy())
    both = LandmarkPredictor(str(path), threads=1, flip_test=True).run_crops_trust(crops)
    from facepoints.landmarks import FLIP

    np.testing.assert_allclose(both.presence, (one.presence + mirrored.presence) / 2, atol=1e-6)
    np.testing.assert_allclose(both.visibility, (one.visibility + mirrored.visibility[:, FLIP]) / 2, atol=1e-6)
    np.testing.assert_allclose(both.uncertainty, (one.uncertainty + mirrored.uncertainty[:, FLIP]) / 2, atol=1e-5)


def test_shipped_fast_gives_trust_on_a_face(shipped, hopper):
    face = shipped.detect(hopper).faces[0]
    assert isinstance(face.presence, float) and 0.98 <= face.presence <= 1
    assert face.visibility.shape == face.uncertainty.shape == (68,)
    assert face.visibility.dtype == face.uncertainty.dtype == np.float32
    assert (face.visibility > 0.5).mean() > 0.9  # a clear frontal face: nearly every point visible
    iod = np.linalg.norm(face.points[45] - face.points[36])
    assert 0 < np.median(face.uncertainty) < 0.1 * iod  # image pixels, a few % of the eye distance


def test_torch_and_onnx_trust_agree_on_the_shipped_model(hopper):
    box = [[190, 150, 345, 335]]
    a = LandmarkPredictor("fast", threads=1, int8=False).predict_landmarks(hopper, box)
    b = LandmarkPredictor("fast", backend="torch", threads=1).predict_landmarks(hopper, box)
    np.testing.assert_allclose(a.points, b.points, atol=1e-3)
    np.testing.assert_allclose(a.presence, b.presence, atol=1e-4)
    np.testing.assert_allclose(a.visibility, b.visibility, atol=1e-4)
    np.testing.assert_allclose(a.uncertainty, b.uncertainty, rtol=1e-3, atol=1e-3)


def test_a_trust_head_file_runs_on_the_torch_backend_only(hopper):
    box = [[190, 150, 345, 335]]
    shipped = LandmarkPredictor("fast", backend="torch", threads=1).predict_landmarks(hopper, box)
    from_file = LandmarkPredictor("fast", backend="torch", threads=1, trust=False)
    assert not from_file.has_trust
    from_file.use_trust_heads(str(PACKAGE_WEIGHTS / "fast.trust.pt"))
    np.testing.assert_allclose(from_file.predict_landmarks(hopper, box).presence, shipped.presence, atol=1e-6)
    with pytest.raises(FacepointsError, match="torch backend"):
        LandmarkPredictor("fast", threads=1).use_trust_heads("fast")


def test_min_presence_drops_a_face_free_box(hopper):
    rng = np.random.default_rng(0)
    noise = (rng.random((240, 240, 3)) * 255).astype(np.uint8)
    wall = np.full((240, 240, 3), 180, np.uint8)
    wall[:, 120:] = 90
    box = [[60, 60, 180, 180]]
    strict = Landmarker.from_pretrained("fast", threads=1, min_presence=RECOMMENDED_MIN_PRESENCE)
    for image in (noise, wall):
        assert len(strict.detect(image, boxes=box)) == 0
        kept = strict.with_options(min_presence=LandmarkerOptions().min_presence).detect(image, boxes=box)
        assert len(kept) == 1 and kept.faces[0].presence < 0.5  # the default keeps every face, marked absent
    assert len(strict.detect(hopper)) == 1  # and the real face stays


def test_min_presence_is_checked():
    with pytest.raises(UsageError, match="min_presence"):
        LandmarkerOptions(min_presence=1.5)
    from facepoints.cli import build_parser
    from facepoints.commands.options import landmarker_options

    args = build_parser().parse_args(["detect", "x.jpg", "--min-presence", "0.5"])
    assert landmarker_options(args).min_presence == 0.5
    args = build_parser().parse_args(["batch", "src", "-o", "o.parquet", "--min-presence", "0.7"])
    assert landmarker_options(args).min_presence == 0.7
    with pytest.raises(SystemExit):
        build_parser().parse_args(["detect", "x.jpg", "--min-presence", "2"])


def test_an_occluder_lowers_the_covered_points_visibility(shipped, hopper):
    clean = shipped.detect(hopper).faces[0]
    box = [clean.points.min(0).tolist() + clean.points.max(0).tolist()]
    rng = np.random.default_rng(5)
    drops, hidden_vis, visible_vis = [], [], []
    while len(drops) < 5:  # occluders over part of the face, each covering between a fifth and a half of its points
        occ = occlude(hopper, clean.points, rng, ("blob",))
        if not 0.2 <= 1 - occ.visible.mean() <= 0.5:
            continue
        vis = shipped.with_options(min_presence=0.0).detect(occ.image, boxes=box).faces[0].visibility
        hidden = ~occ.visible.astype(bool)
        drops.append(clean.visibility[hidden].mean() - vis[hidden].mean())
        hidden_vis += vis[hidden].tolist()
        visible_vis += vis[~hidden].tolist()
    assert np.mean(drops) > 0.1  # the covered points lose visibility against the same points uncovered
    h, v = np.array(hidden_vis), np.array(visible_vis)
    auroc = (v[:, None] > h[None, :]).mean() + 0.5 * (v[:, None] == h[None, :]).mean()
    assert auroc > 0.75, auroc  # and rank below the uncovered points of the same faces


def test_json_csv_parquet_and_drawing_carry_trust(shipped, hopper, tmp_path):
    result = shipped.detect(hopper)
    face = json.loads(result.to_json())["faces"][0]
    assert isinstance(face["presence"], float) and len(face["visibility"]) == len(face["uncertainty"]) == 68
    header, row = result.to_csv().splitlines()[:2]
    names = header.split(",")
    assert names == CSV_HEADER and "presence" in names and "v67" in names and "u67" in names
    assert len(row.split(",")) == len(names) and row.split(",")[names.index("u0")] != ""
    r = face_row("a.jpg", result)
    assert set(COLUMNS) == set(r) and set(schema().names) == set(COLUMNS)
    import pyarrow as pa

    back = rows_to_arrays(pa.Table.from_pylist([r], schema=schema()).to_pylist()[0])
    np.testing.assert_allclose(back["visibility"][0], result.faces[0].visibility)
    np.testing.assert_allclose(back["uncertainty"][0], result.faces[0].uncertainty)
    np.testing.assert_allclose(back["presence"][0], result.faces[0].presence, rtol=1e-6)
    # drawing: a point marked hidden is a ring (hollow) by default, left out with hidden="hide"
    f = result.faces[0]
    f.visibility = np.full(68, 0.9, np.float32)
    filled = result.plot(boxes=False, lines=False)
    f.visibility[:17] = 0.1  # the jaw line hidden
    hollow, gone = result.plot(boxes=False, lines=False), result.plot(boxes=False, lines=False, hidden="hide")
    x, y = np.round(f.points[8]).astype(int)
    around = np.s_[y - 4 : y + 5, x - 4 : x + 5]
    assert not np.array_equal(filled[y, x], hopper[y, x])  # a visible point: a filled disc
    assert np.array_equal(hollow[y, x], hopper[y, x]) and not np.array_equal(hollow[around], hopper[around])
    assert np.array_equal(gone[around], hopper[around])
    with pytest.raises(Exception, match="hidden"):
        result.plot(hidden="dim")


def test_video_redetects_when_presence_falls(hopper):
    lm = Landmarker.from_pretrained("fast", threads=1)  # min_presence 0: the track is lost by lost_presence
    first = lm.detect_for_video(hopper, 0)
    assert len(first) == 1 and first.faces[0].presence is not None
    runs = lm.video_tracker.detector_runs
    blank = np.full_like(hopper, 128)  # the face is gone: its track's crop holds no face
    gone = lm.detect_for_video(blank, 40)
    assert lm.video_tracker.detector_runs == runs + 1 and len(gone) == 0
    line = json.loads(json.dumps(lm.detect_for_video(hopper, 80).summary()))
    assert {"presence", "visibility", "uncertainty"} <= set(line["faces"][0])


def test_cli_export_writes_the_trust_outputs(tmp_path):
    from facepoints.cli import main

    assert main(["export", "--model", "fast", "-o", str(tmp_path / "t.onnx")]) == 0
    sess = ort.InferenceSession(str(tmp_path / "t.onnx"), providers=["CPUExecutionProvider"])
    assert tuple(o.name for o in sess.get_outputs()) == TRUST_OUTPUTS
    meta = sess.get_modelmeta().custom_metadata_map
    assert TRUST_CALIBRATION in meta and meta["facepoints.outputs"] == "points, presence, visibility, log_b"
    assert main(["export", "--model", "fast", "--no-trust", "-o", str(tmp_path / "p.onnx")]) == 0
    plain = ort.InferenceSession(str(tmp_path / "p.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in plain.get_outputs()] == ["points"]
    x = np.random.default_rng(0).random((2, 1, 128, 128), dtype=np.float32)
    np.testing.assert_allclose(sess.run(None, {"crops": x})[0], plain.run(None, {"crops": x})[0], atol=1e-5)


def test_max_faces_counts_only_the_faces_that_pass_min_presence(hopper):
    from facepoints.detectors import Detections, GivenBoxes

    class FalseFaceFirst(GivenBoxes):  # a detector whose best-scored hit is a face-free patch
        def _detect(self, rgb):
            return Detections(self.boxes, np.array([0.99, 0.9]))

    image = hopper.copy()
    image[:120, :120] = 128  # a flat patch in a corner, away from the face
    detector = FalseFaceFirst([[0, 0, 120, 120], [190, 150, 345, 335]])
    one = Landmarker.from_pretrained("fast", threads=1, detector=detector, max_faces=1)
    assert one.detect(image).faces[0].box[0] < 10  # no presence bar: the best-scored hit is the one kept
    strict = one.with_options(min_presence=RECOMMENDED_MIN_PRESENCE)
    faces = strict.detect(image).faces
    assert len(faces) == 1 and faces[0].box[0] > 150 and faces[0].presence >= RECOMMENDED_MIN_PRESENCE

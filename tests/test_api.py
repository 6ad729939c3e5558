"""Public API, ONNX parity, CLI verbs and video tracking, on synthetic faces with a tiny trained model."""

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from facepoints import FacepointsError, Landmarker, LandmarkResult
from facepoints.cli import main
from facepoints.crop import points_box
from facepoints.detectors import Detections, Detector

from .conftest import painted_face, template


@pytest.fixture(scope="module")
def landmarker(tiny_model):
    return Landmarker.from_pretrained(str(tiny_model / "model.pt"), backend="torch")


def test_detect_with_boxes_numpy_pil_and_path(landmarker, tmp_path):
    pts = template(90, (100, 100))
    img = painted_face(pts)
    box = np.array([points_box(pts)])
    r = landmarker.detect(img, boxes=box)
    assert isinstance(r, LandmarkResult) and len(r) == 1
    f = r.faces[0]
    assert f.points.shape == (68, 2) and f.points.dtype == np.float32
    assert f.pose is None or set(f.pose.to_dict()) == {"yaw", "pitch", "roll"}
    r2 = landmarker.detect(Image.fromarray(img), boxes=box)
    np.testing.assert_allclose(r2.faces[0].points, f.points, atol=1e-4)
    cv2.imwrite(str(tmp_path / "f.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    r3 = landmarker.detect(tmp_path / "f.png", boxes=box)
    np.testing.assert_allclose(r3.faces[0].points, f.points, atol=1e-4)
    doc = json.loads(r3.to_json())
    assert doc["image"].endswith("f.png") and len(doc["faces"][0]["points"]) == 68 and len(doc["faces"][0]["box"]) == 4
    assert r.plot().shape == img.shape and not np.array_equal(r.plot(), img)


def test_many_faces_in_one_batch_equal_one_by_one(landmarker):
    a, b = template(70, (60, 80)), template(90, (200, 110))
    img = painted_face(np.vstack([a, b]), shape=(220, 300))
    boxes = np.array([points_box(a), points_box(b)])
    both = landmarker.detect(img, boxes=boxes)
    single = [landmarker.detect(img, boxes=boxes[i : i + 1]).faces[0].points for i in range(2)]
    np.testing.assert_allclose(np.stack([f.points for f in both.faces]), np.stack(single), atol=1e-3)


def test_no_face_gives_empty_result_not_none(landmarker):
    blank = np.full((120, 160, 3), 128, np.uint8)
    r = landmarker.with_options(detector="haar").detect(blank)
    assert r is not None and r.faces == [] and json.loads(r.to_json())["faces"] == []


def test_bad_inputs_raise_clear_errors(landmarker, tmp_path):
    with pytest.raises(FacepointsError, match="expected an image path, numpy array or PIL image"):
        landmarker.detect(42)
    (tmp_path / "x.jpg").write_text("not an image")
    with pytest.raises(FacepointsError, match=r"x\.jpg: not a decodable image"):
        landmarker.detect(tmp_path / "x.jpg")
    with pytest.raises(FacepointsError, match="unknown detector 'mtcnn'; choose from retinaface, dlib, haar"):
        Landmarker.from_pretrained(landmarker.options.model, detector="mtcnn")  # at construction, not first use


def test_save_never_overwrites_input(landmarker, tmp_path):
    pts = template()
    path = tmp_path / "in.png"
    cv2.imwrite(str(path), painted_face(pts))
    before = path.read_bytes()
    r = landmarker.detect(path, boxes=[points_box(pts)])
    with pytest.raises(FacepointsError, match="refusing to overwrite the input image"):
        r.save(path)
    assert path.read_bytes() == before
    out = r.save(tmp_path / "out.jpg")
    assert cv2.imread(str(out)).shape == (200, 200, 3)
    png = r.save(tmp_path / "out.png")  # lossless: the drawing's colours, channel for channel
    np.testing.assert_array_equal(cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB), r.plot())


def test_onnx_parity_with_pytorch(tiny_model, tmp_path):
    """Max abs difference in pixels between ONNX Runtime and PyTorch, dynamic batch.

    A PIPNet point is an argmax over grid cells; where two cells score within float noise
    either answer is right. The tiny net's score maps are nearly flat, so its score channels
    are amplified to make the argmax well defined, and any remaining near-ties are left out.
    """
    import onnxruntime as ort

    from facepoints.export import PointsHead, export_onnx
    from facepoints.models import xception
    from facepoints.weights import ModelSpec, load_model

    rng = np.random.default_rng(0)
    faces = (
        np.stack(
            [
                cv2.cvtColor(cv2.resize(painted_face(template(90, (100, 100)), seed=i), (128, 128)), cv2.COLOR_RGB2GRAY)
                for i in range(4)
            ]
        ).astype(np.float32)[:, None]
        / 255
    )
    x = np.concatenate([faces, rng.random((3, 1, 128, 128), dtype=np.float32)])  # batch of 7: dynamic batch
    torch.manual_seed(0)
    tiny = load_model(str(tiny_model / "model.pt"))[0]
    with torch.no_grad():
        tiny.head.weight[:68] *= 1000
    for name, model in [("tiny", tiny), ("xception", xception().eval())]:
        path = export_onnx(model, ModelSpec(arch=name, input_size=128, margin=1.25), tmp_path / f"{name}.onnx")
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"crops": x})[0]
        with torch.no_grad():
            want = PointsHead(model)(torch.from_numpy(x)).numpy()
            raw = model(torch.from_numpy(x))
        assert got.shape == (7, 68, 2)
        if name == "tiny":
            top2 = model._split(raw)[0].topk(2, dim=2).values
            decided = (top2[..., 0] - top2[..., 1] > 1e-4).numpy()
            assert decided.mean() > 0.9
            got, want = got[decided], want[decided]
        assert np.abs(got - want).max() < 0.05, name  # pixels in the 128 px crop


def test_cli_export_and_onnx_backend(tiny_model, tmp_path):
    assert main(["export", "--model", str(tiny_model / "model.pt"), "-o", str(tmp_path / "m.onnx")]) == 0
    assert (tmp_path / "m.onnx").stat().st_size > 1000
    pts = template()
    img = painted_face(pts)
    t = Landmarker.from_pretrained(str(tiny_model / "model.pt"), backend="torch").detect(img, boxes=[points_box(pts)])
    o = Landmarker.from_pretrained(str(tiny_model / "model.pt"), backend="onnxruntime").detect(
        img, boxes=[points_box(pts)]
    )
    # the 2-epoch fixture model has exactly tied cell scores for a few points, which the two
    # backends' argmax may break differently; every other point must agree to 0.1 px
    agree = np.abs(o.faces[0].points - t.faces[0].points).max(axis=1) < 0.1
    assert agree.mean() >= 0.95


def test_cli_detect_folder_continues_past_bad_files(tiny_model, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "blank.png"), np.full((80, 100, 3), 90, np.uint8))
    (folder / "bad.jpg").write_text("text, not a jpeg")
    (folder / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    code = main(["detect", str(folder), "-o", str(out), "--model", str(tiny_model / "model.pt"), "--backend", "torch"])
    err = capsys.readouterr().err
    assert code == 1
    assert "bad.jpg: not a decodable image" in err and "empty.png: empty file" in err and "2 input(s) failed" in err
    assert "no faces found" in err
    assert json.loads((out / "blank.json").read_text()) == {"image": str(folder / "blank.png"), "faces": []}
    assert (out / "blank.landmarks.png").exists()
    assert "Traceback" not in err


def test_cli_detect_jsonl_csv_and_no_faces_exit_zero(tiny_model, tmp_path, capsys):
    img = tmp_path / "blank.jpg"
    cv2.imwrite(str(img), np.full((80, 100, 3), 90, np.uint8))
    for name in ["all.jsonl", "all.csv"]:
        code = main(
            [
                "detect",
                str(img),
                "--json",
                str(tmp_path / name),
                "-o",
                str(tmp_path / "o"),
                "--model",
                str(tiny_model / "model.pt"),
            ]
        )
        assert code == 0
    assert json.loads((tmp_path / "all.jsonl").read_text().splitlines()[0])["faces"] == []
    assert (tmp_path / "all.csv").read_text().startswith("image,face,score,box_x1")


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["detect", str(tmp_path / "nope.jpg")]) == 1
    assert capsys.readouterr().err.strip() == f"facepoints: error: {tmp_path / 'nope.jpg'}: no such file or folder"
    assert main(["evaluate", "--data", str(tmp_path)]) == 1
    assert "no .pts annotation files" in capsys.readouterr().err
    assert main(["detect", "--model", "nope", "--camera", "0"]) == 1
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_cli_evaluate_writes_json_and_ced(tiny_model, face_folder, tmp_path):
    out = tmp_path / "eval.json"
    assert (
        main(["evaluate", "--data", str(face_folder), "--model", str(tiny_model / "model.pt"), "--json", str(out)]) == 0
    )
    r = json.loads(out.read_text())
    for key in ["nme_mean", "nme_median", "fr_0.08", "auc_0.08", "n_faces"]:
        assert key in r
    assert r["n_faces"] == 12 and set(r["subsets"]) == {"a", "b"} and r["subsets"]["a"]["n_faces"] == 6
    assert 0 < r["nme_mean"] < 10
    assert (tmp_path / "eval.ced.png").exists()


class FixedDetector(Detector):
    """Stands in for a face detector on synthetic frames: always the true box."""

    name = "fixed"

    def __init__(self, box):
        super().__init__(None)
        self.box, self.calls = np.asarray(box, np.float32).reshape(1, 4), 0

    def _detect(self, rgb):
        self.calls += 1
        return Detections(self.box.copy(), np.ones(1, np.float32))


def _write_video(path, frames, fps=10):
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        vw.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    vw.release()


def test_video_tracking_smoothing_and_outputs(tiny_model, tmp_path):
    from facepoints.video import VideoOptions, process_video

    pts = template(80, (100, 100))
    frames = [painted_face(pts, seed=0) for _ in range(12)]
    _write_video(tmp_path / "v.mp4", frames)
    # upright=False: the 2-epoch model's points are too rough to take a roll from
    lm = Landmarker.from_pretrained(
        str(tiny_model / "model.pt"), backend="torch", detector=FixedDetector(points_box(pts)), upright=False
    )
    res = process_video(
        lm,
        str(tmp_path / "v.mp4"),
        tmp_path / "o.mp4",
        tmp_path / "o.gif",
        tmp_path / "o.jsonl",
        VideoOptions(redetect_every=5),
        progress=False,
    )
    assert res["frames"] == 12 and res["error"] is None
    assert lm._detector.calls == 3  # frames 0, 5, 10: tracking in between
    lines = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(12)) and all(len(r["faces"]) == 1 for r in lines)
    cap = cv2.VideoCapture(str(tmp_path / "o.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    assert Image.open(tmp_path / "o.gif").n_frames == 12


def test_detect_for_video_tracks_smooths_and_matches_the_cli_path(tiny_model, tmp_path):
    """Video is a mode of the Landmarker: what `facepoints detect clip.mp4` writes is what API users get."""
    from facepoints.config import VideoOptions
    from facepoints.video import process_video

    pts = template(80, (100, 100))
    frames = [painted_face(pts + [i * 0.5, 0], seed=0) for i in range(8)]
    _write_video(tmp_path / "v.mp4", frames)

    def make():
        return Landmarker.from_pretrained(
            str(tiny_model / "model.pt"),
            backend="torch",
            detector=FixedDetector(points_box(pts)),
            upright=False,
            video=VideoOptions(redetect_every=3),
        )

    lm = make()
    process_video(lm, str(tmp_path / "v.mp4"), None, None, tmp_path / "o.jsonl", progress=False)
    cli = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    cap, api, api_lm = cv2.VideoCapture(str(tmp_path / "v.mp4")), [], make()
    for i in range(len(cli)):
        ok, bgr = cap.read()
        api.append(api_lm.detect_for_video(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), 100.0 * i))  # 10 fps
    assert api_lm._detector.calls == 3  # frames 0, 3, 6: tracking in between
    for a, c in zip(api, cli):
        np.testing.assert_allclose(a.faces[0].points, c["faces"][0]["points"], atol=0.01)
    # Face.box: the detector's box on a detection frame, carried with the face between detections
    np.testing.assert_allclose(api[0].faces[0].box, points_box(pts), atol=1e-3)
    assert api[1].faces[0].box.shape == (4,) and np.abs(api[1].faces[0].box - api[0].faces[0].box).max() < 10
    with pytest.raises(FacepointsError, match="not after the previous frame"):
        api_lm.detect_for_video(frames[0], 100.0)
    api_lm.reset_video()
    assert len(api_lm.detect_for_video(frames[0], 0.0)) == 1  # a new stream: detects again
    assert api_lm._detector.calls == 4


def test_result_writes_csv_and_pose_is_a_dataclass(landmarker):
    import csv
    import io

    from facepoints.pose import Pose
    from facepoints.results import CSV_HEADER

    pts = template(90, (100, 100))
    r = landmarker.detect(painted_face(pts), boxes=[points_box(pts)])
    f = r.faces[0]
    assert f.pose is None or isinstance(f.pose, Pose)
    doc = json.loads(r.to_json())
    assert doc["faces"][0]["pose"] == (f.pose.to_dict() if f.pose else None)  # JSON as before: a plain dict
    rows = list(csv.reader(io.StringIO(r.to_csv())))
    assert rows[0] == CSV_HEADER and len(rows) == 2
    np.testing.assert_allclose(np.array(rows[1][10:146], float).reshape(68, 2), f.points, atol=0.006)
    assert float(rows[1][2]) == pytest.approx(f.score, abs=1e-4)
    assert r.to_csv(header=False).count("\n") == 1


def test_video_errors(tiny_model, tmp_path):
    from facepoints.video import process_video

    lm = Landmarker.from_pretrained(str(tiny_model / "model.pt"), backend="torch")
    (tmp_path / "bad.mp4").write_text("no video here")
    with pytest.raises(FacepointsError, match=r"bad\.mp4: cannot open as a video"):
        process_video(lm, str(tmp_path / "bad.mp4"), None, None, tmp_path / "x.jsonl", progress=False)
    assert not (tmp_path / "x.jsonl").exists()
    with pytest.raises(FacepointsError, match="camera 7: no such camera"):
        process_video(lm, 7, None, None, None, progress=False)


def test_video_broken_mid_stream_keeps_what_was_written(tiny_model, tmp_path, capsys):
    pts = template(80, (100, 100))
    path = tmp_path / "v.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (200, 200))
    for i in range(30):
        vw.write(cv2.cvtColor(painted_face(pts, seed=i), cv2.COLOR_RGB2BGR))
    vw.release()
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.5)])  # the stream ends half-way; the header still says 30 frames
    out = tmp_path / "out"
    code = main(["detect", str(path), "-o", str(out), "--model", str(tiny_model / "model.pt"), "--detector", "haar"])
    err = capsys.readouterr().err
    assert code == 1
    assert "video stopped decoding at frame" in err and "of 30" in err
    lines = (out / "v.landmarks.jsonl").read_text().splitlines()
    assert 5 <= len(lines) < 30
    assert (out / "v.landmarks.mp4").stat().st_size > 0


def test_shipped_int8_graph_agrees_with_fp32_and_is_checked(monkeypatch, tmp_path):
    from facepoints.predictor import LandmarkPredictor

    q = LandmarkPredictor("fast", backend="onnxruntime", threads=1, int8=True)
    if not q.int8:
        pytest.skip("this install ships no int8 graph")
    f = LandmarkPredictor("fast", backend="torch", threads=1)
    pts = template()
    img = painted_face(pts)
    box = np.array([points_box(pts)])
    assert np.abs(q.predict(img, box) - f.predict(img, box)).mean() < 1.0  # px, in a ~80 px face
    damaged = tmp_path / "fast.int8.onnx"
    damaged.write_bytes(b"not onnx")
    monkeypatch.setattr(q, "spec", replace(q.spec, int8_onnx=replace(q.spec.int8_onnx, path=str(damaged))))
    with pytest.raises(FacepointsError, match="fast.int8.onnx: missing or checksum mismatch"):
        q._ort_session(required=True)


def test_flip_test_keeps_the_learned_annotation_offset(tiny_model):
    """A model that learned to put points o px right of what they mark does so in mirrored crops too;
    un-mirroring its answer must restore the offset, not turn it into -o."""
    from facepoints.landmarks import FLIP
    from facepoints.predictor import LandmarkPredictor

    pred = LandmarkPredictor(str(tiny_model / "model.pt"), backend="torch", flip_test=True)
    s, o = pred.input_size, 0.6
    pred.spec = replace(pred.spec, annotation_offset=(o, 0.0), output_shift=(0.0, 0.0))  # isolate the mirroring
    marked = torch.from_numpy(template(60, (s / 2, s / 2)))  # what the points mark, in crop pixels
    answer = marked + torch.tensor([o, 0.0])
    mirrored_answer = marked[FLIP].clone()
    mirrored_answer[:, 0] = s - 1 - mirrored_answer[:, 0] + o
    pred.head = lambda x: torch.stack([answer, mirrored_answer])  # a model with the offset, on a crop and its mirror
    out = pred.run_crops(np.zeros((1, s, s), np.uint8))
    np.testing.assert_allclose(out[0], answer.numpy(), atol=1e-4)


def test_output_shift_is_removed_from_every_point(tiny_model):
    from facepoints.predictor import LandmarkPredictor

    pred = LandmarkPredictor(str(tiny_model / "model.pt"), backend="torch")
    crops = np.random.default_rng(0).integers(0, 255, (2, pred.input_size, pred.input_size), dtype=np.uint8)
    pred.spec = replace(pred.spec, output_shift=(0.0, 0.0))
    plain = pred.run_crops(crops)
    pred.spec = replace(
        pred.spec, output_shift=(0.5, -0.25)
    )  # measured at shipping: the mean error on the training faces
    np.testing.assert_allclose(pred.run_crops(crops), plain - [0.5, -0.25], atol=1e-5)


def test_torch_predictor_leaves_the_process_thread_count_alone(tiny_model):
    """A predictor asked for 1 thread must not change torch's thread count for the rest of the process
    (it did: later torch work ran on 1 thread, with other float sums)."""
    from facepoints.predictor import LandmarkPredictor

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        pred = LandmarkPredictor(str(tiny_model / "model.pt"), backend="torch", threads=1)
        pred.run_crops(np.zeros((1, pred.input_size, pred.input_size), np.uint8))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_csv_columns_are_unique_and_non_finite_numbers_are_null(landmarker, tmp_path, capsys):
    """The box's x1, y1 used to share their names with point 1's x1, y1; a NaN became a NaN literal in JSON."""
    import csv
    import io
    import math

    from facepoints.results import CSV_HEADER, Face

    assert len(set(CSV_HEADER)) == len(CSV_HEADER)
    pts = template().copy()
    pts[5] = math.nan
    face = Face(np.array([1, 2, 3, math.inf], np.float32), math.nan, pts)
    r = LandmarkResult([face], None, "x.jpg")
    parsed = json.loads(r.to_json(), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert parsed["faces"][0]["points"][5] == [None, None] and parsed["faces"][0]["score"] is None
    assert parsed["faces"][0]["box"][3] is None
    row = next(csv.DictReader(io.StringIO(r.to_csv())))
    assert row["x5"] == "" and row["box_x1"] == "1.0" and row["x1"] == str(round(float(pts[1, 0]), 2))


def test_nan_weights_are_refused_by_name(tiny_model, tmp_path, capsys):
    payload = torch.load(tiny_model / "model.pt", weights_only=True)
    first = next(k for k, v in payload["model"].items() if v.is_floating_point())
    payload["model"][first] = torch.full_like(payload["model"][first], float("nan"))
    bad = tmp_path / "nan.pt"
    torch.save(payload, bad)
    cv2.imwrite(str(tmp_path / "a.jpg"), painted_face(template()))
    assert main(["detect", str(tmp_path / "a.jpg"), "--model", str(bad), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and "NaN" in err
    assert not (tmp_path / "o").exists()


def test_evaluate_reads_a_landmarker_and_a_bare_predictor_alike(tiny_model, face_folder):
    """evaluate goes through Landmarker.landmarks_for, the path images and video take; PointsOf gives a bare
    predict function (benchmarks' dlib reference) the same crop rule."""
    from facepoints import LandmarkerOptions
    from facepoints.annotations import read_pts_folder
    from facepoints.evaluate import PointsOf, evaluate

    samples = read_pts_folder(face_folder)[:4]
    lm = Landmarker(
        LandmarkerOptions(
            model=str(tiny_model / "model.pt"), backend="torch", detector="retinaface", detector_threshold=0.02
        )
    )
    for boxes in ("landmarks", "detector"):
        a = evaluate(samples, lm, boxes, progress=False).nmes
        b = evaluate(samples, PointsOf(lm.predictor.predict, lm.detector), boxes, progress=False).nmes
        np.testing.assert_array_equal(a, b)

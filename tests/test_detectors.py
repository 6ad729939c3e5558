"""Face detectors: the built-in RetinaFace (real weights, real photo), upright crops, shared use by threads."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from facepoints import FacepointsError, Landmarker
from facepoints.crop import points_box, transform_points, upright_box
from facepoints.detectors import BoxMap, Detections, Detector, RetinaFaceDetector, create_detector, roll_degrees
from facepoints.images import load_image
from facepoints.landmarks import five_points
from facepoints.metrics import nme
from facepoints.video import FaceTracker, VideoOptions

PHOTO = Path(__file__).resolve().parents[1] / "examples" / "grace_hopper.jpg"


@pytest.fixture(scope="module")
def photo():
    return load_image(PHOTO)


@pytest.fixture(scope="module")
def retinaface():
    return create_detector("retinaface")


def turned(image: np.ndarray, angle: float, centre) -> tuple[np.ndarray, np.ndarray]:
    """The image turned by angle degrees (anticlockwise on screen) about centre, and the 2x3 map it used."""
    m = cv2.getRotationMatrix2D(tuple(float(c) for c in centre), angle, 1.0)
    h, w = image.shape[:2]
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), m


def test_retinaface_finds_the_face_with_keypoints_in_place(photo, retinaface):
    det = retinaface.detect(photo)
    assert len(det) == 1 and det.scores[0] > 0.9
    x1, y1, x2, y2 = det.boxes[0]
    assert 150 < x1 < 200 and 300 < x2 < 380 and 80 < y1 < 140 and 300 < y2 < 360  # the face, by eye
    eye_l, eye_r, nose, mouth_l, mouth_r = det.keypoints[0]
    assert eye_l[0] < nose[0] < eye_r[0] and mouth_l[0] < mouth_r[0]
    assert max(eye_l[1], eye_r[1]) < nose[1] < min(mouth_l[1], mouth_r[1])
    assert abs(roll_degrees(det.keypoints)[0]) < 5  # she holds her head level


def test_max_side_shrinks_for_detection_only(photo, retinaface):
    """Detections on a 2x enlarged photo, shrunk back to 600 px for the detector, land on 2x the coordinates."""
    big = cv2.resize(photo, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    capped = RetinaFaceDetector(max_side=600).detect(big)
    ref = retinaface.detect(photo)
    assert len(capped) == 1
    np.testing.assert_allclose(capped.boxes[0], 2 * ref.boxes[0], atol=12)
    # pixel centres: x_big = 2 x + 0.5
    np.testing.assert_allclose(capped.keypoints[0], 2 * ref.keypoints[0] + 0.5, atol=6)


def test_priors_are_decoded_once_per_input_size(photo):
    coarse = RetinaFaceDetector()
    coarse.detect(photo)
    coarse.detect(photo)
    assert set(coarse._priors) == {(320, 273)}  # only the coarse pass's size: its answer was enough
    det = RetinaFaceDetector(coarse_side=0)
    det.detect(photo)
    first = det.priors(*photo.shape[:2])
    det.detect(photo)
    assert det.priors(*photo.shape[:2]) is first  # the cached array, not a new one
    det.detect(cv2.resize(photo, (256, 300)))
    assert set(det._priors) == {photo.shape[:2], (300, 256)}
    # one prior per network output row: 2 anchors a cell at strides 8, 16 and 32
    assert len(det.priors(300, 256)) == 2 * sum(-(-300 // s) * -(-256 // s) for s in (8, 16, 32))


def test_coarse_pass_alone_finds_the_same_big_face(photo):
    ref = RetinaFaceDetector(coarse_side=0).detect(photo)
    coarse = RetinaFaceDetector()  # the default: coarse_side 320
    det = coarse.detect(photo)
    assert coarse.last_passes == "coarse" and len(det) == len(ref) == 1
    side = ref.boxes[0, 2] - ref.boxes[0, 0]
    np.testing.assert_allclose(det.boxes[0], ref.boxes[0], atol=0.05 * side)
    np.testing.assert_allclose(det.keypoints[0], ref.keypoints[0], atol=0.08 * side)  # keypoints move with scale
    capped = RetinaFaceDetector(max_side=320).detect(photo)  # the same network input, mapped back the same way
    np.testing.assert_allclose(det.boxes, capped.boxes, atol=1e-3)
    np.testing.assert_allclose(det.keypoints, capped.keypoints, atol=1e-3)


def test_coarse_pass_sends_small_faces_and_empty_images_to_full_resolution(photo):
    """A big face with a small one beside it, which the coarse pass sees only as a small candidate: the full
    pass runs and both faces are found, as by the full pass alone; an image without faces gets the full pass."""
    canvas = np.full((750, 1000, 3), 120, np.uint8)
    canvas[100:700, 50:562] = photo
    small = cv2.resize(photo, (128, 150), interpolation=cv2.INTER_AREA)  # a face of ~45 px, ~22 px when coarse
    canvas[300:450, 800:928] = small
    ref = RetinaFaceDetector(coarse_side=0).detect(canvas)
    coarse = RetinaFaceDetector(coarse_side=320)
    det = coarse.detect(canvas)
    assert len(ref) == 2 and coarse.last_passes == "coarse+full"
    np.testing.assert_array_equal(det.boxes, ref.boxes)
    blank = np.full((480, 640, 3), 120, np.uint8)
    assert len(coarse.detect(blank)) == 0 and coarse.last_passes == "coarse+full"
    coarse.detect(np.ascontiguousarray(photo[:400, :400]))
    assert coarse.last_passes == "full"  # at most 1.5x coarse_side: the coarse pass would save too little
    off = RetinaFaceDetector(coarse_side=0)
    off.detect(canvas)
    assert off.coarse_side is None and off.last_passes == "full"


def test_bad_detector_options_and_damaged_weights(tmp_path, monkeypatch):
    with pytest.raises(FacepointsError, match="threshold must be between 0 and 1"):
        RetinaFaceDetector(threshold=1.5)
    with pytest.raises(FacepointsError, match="coarse_side must be 0"):
        RetinaFaceDetector(coarse_side=10)
    with pytest.raises(FacepointsError, match="max_side must be at least 32"):
        create_detector("dlib", max_side=10)
    import facepoints.detectors as detectors

    folder = Path(detectors.DETECTOR_WEIGHTS)
    (tmp_path / "DETECTORS.json").write_text((folder / "DETECTORS.json").read_text())
    data = (folder / "retinaface_mnet025.onnx").read_bytes()
    (tmp_path / "retinaface_mnet025.onnx").write_bytes(data[: len(data) // 2])  # truncated
    monkeypatch.setattr(detectors, "DETECTOR_WEIGHTS", tmp_path)
    with pytest.raises(FacepointsError, match=r"retinaface_mnet025\.onnx: missing or checksum mismatch"):
        RetinaFaceDetector()


def test_box_map_turns_its_shift_with_the_face():
    m = BoxMap(dx=0.0, dy=0.2, scale=0.8)
    box = np.array([[0.0, 0.0, 100.0, 100.0]])
    upright = m.apply(box)[0]
    np.testing.assert_allclose(((upright[:2] + upright[2:]) / 2), [50, 70])
    np.testing.assert_allclose(upright[2:] - upright[:2], [80, 80])
    # rolled 90 degrees (eye line pointing down the image), the face's "down" points to image left
    side = m.apply(box, np.array([90.0]))[0]
    np.testing.assert_allclose(((side[:2] + side[2:]) / 2), [30, 50], atol=1e-9)
    np.testing.assert_allclose(side[2:] - side[:2], [80, 80])


def test_upright_box_and_five_points_follow_a_turned_face(photo):
    pts = Landmarker.from_pretrained(backend="torch", upright=False).detect(photo).faces[0].points
    angle = 35.0
    t = np.deg2rad(angle)
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])  # turns by +angle (image y down)
    c = pts.mean(0)
    turned_pts = (pts - c) @ r.T + c
    assert roll_degrees(five_points(turned_pts))[0] == pytest.approx(
        roll_degrees(five_points(pts))[0] + angle, abs=1e-6
    )
    x1, y1, x2, y2 = upright_box(turned_pts, angle)
    ux1, uy1, ux2, uy2 = points_box(pts)
    assert (x2 - x1, y2 - y1) == pytest.approx((ux2 - ux1, uy2 - uy1), abs=1e-4)
    centre = r @ ([(ux1 + ux2) / 2, (uy1 + uy2) / 2] - c) + c
    assert ((x1 + x2) / 2, (y1 + y2) / 2) == pytest.approx(tuple(centre), abs=1e-4)


@pytest.mark.parametrize("angle", [-50, 50])
def test_upright_crop_keeps_a_rolled_face_accurate(photo, angle):
    """The shipped model on the photo turned by 50 degrees: with the crop turned upright by RetinaFace's keypoints
    its points stay close to the upright photo's points (mapped through the turn); an axis-aligned crop does not."""
    lm = Landmarker.from_pretrained(backend="torch")
    ref = lm.detect(photo).faces[0].points
    image, m = turned(photo, angle, ref.mean(0))
    truth = transform_points(ref, m)
    up = lm.detect(image).faces[0].points
    flat = lm.with_options(upright=False).detect(image).faces[0].points
    err_up, err_flat = nme(up, truth)[0], nme(flat, truth)[0]
    assert err_up < 0.03, err_up  # within 3% of the inter-ocular distance of the upright result
    assert err_up < 0.5 * err_flat, (err_up, err_flat)


@pytest.mark.parametrize("name", ["retinaface", "dlib", "haar"])
def test_one_landmarker_shared_by_four_threads(photo, name):
    """4 threads x 16 images through one Landmarker give exactly the serial results (dlib used to abort the
    process, Haar to raise cv2.error)."""
    images = []
    for i in range(16):
        im = photo if i % 2 else photo[:, ::-1]
        f = 0.6 + 0.05 * (i % 8)
        images.append(np.ascontiguousarray(cv2.resize(im, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)))
    lm = Landmarker.from_pretrained(detector=name, backend="onnxruntime", pose=False)
    serial = [lm.detect(im) for im in images]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lm.detect, images))
    assert sum(len(r) for r in serial) >= 12  # the detectors find the face in most of them
    for a, b in zip(serial, parallel):
        assert len(a) == len(b)
        for fa, fb in zip(a.faces, b.faces):
            np.testing.assert_array_equal(fa.points, fb.points)
            np.testing.assert_array_equal(fa.box, fb.box)


class ScoredDetector(Detector):
    name = "scored"

    def __init__(self, boxes, scores):
        super().__init__(None)
        self.boxes, self.scores = np.asarray(boxes, np.float32), np.asarray(scores, np.float32)

    def _detect(self, rgb):
        return Detections(self.boxes.copy(), self.scores.copy())


def test_video_applies_min_score_and_max_faces_like_images(photo):
    """The tracker's re-detection uses the Landmarker's own selection (it used to ignore min_score)."""
    box = [170, 110, 360, 330]
    far = [0, 0, 60, 60]
    det = ScoredDetector([box, far], [0.9, 0.4])
    lm = Landmarker.from_pretrained(backend="torch", detector=det, min_score=0.5, pose=False)
    assert len(lm.detect(photo)) == 1
    tracker = FaceTracker(lm, VideoOptions(redetect_every=1))
    assert len(tracker.update(photo, 0.0)) == 1
    lm2 = Landmarker.from_pretrained(backend="torch", detector=det, max_faces=1, pose=False)
    assert len(FaceTracker(lm2, VideoOptions(redetect_every=1)).update(photo, 0.0)) == len(lm2.detect(photo)) == 1
    lm3 = Landmarker.from_pretrained(backend="torch", detector=det, min_score=0.95, pose=False)
    assert len(FaceTracker(lm3).update(photo, 0.0)) == len(lm3.detect(photo)) == 0


def test_haar_takes_a_threshold_in_detect_and_evaluate(tiny_model, face_folder, tmp_path, capsys):
    """--detector haar --det-threshold used to be a TypeError traceback in detect and evaluate."""
    from facepoints.cli import main

    image = next(face_folder.rglob("*.png"))
    model = ["--model", str(tiny_model / "model.pt"), "--backend", "torch", "--detector", "haar"]
    assert main(["detect", str(image), *model, "--det-threshold", "-100", "-o", str(tmp_path / "a")]) == 0
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(face_folder),
                *model,
                "--boxes",
                "detector",
                "--det-threshold",
                "1e9",
                "-o",
                str(tmp_path / "e.json"),
            ]
        )
        == 0
    )
    assert "Traceback" not in capsys.readouterr().err
    rgb = load_image(Path(__file__).resolve().parents[1] / "examples" / "grace_hopper.jpg")
    every = create_detector("haar").detect(rgb)
    assert len(every) >= 1 and len(create_detector("haar", threshold=-1e9).detect(rgb)) == len(every)
    assert len(create_detector("haar", threshold=1e9).detect(rgb)) == 0


@pytest.mark.parametrize("name", ["retinaface", "dlib", "haar"])
def test_every_detector_caps_its_working_image_by_default(name):
    """haar and dlib used to see a 9400 px photo at full size: 4.5-5.1 GB and a minute (0.9 GB capped)."""
    det = create_detector(name)
    assert det.max_side == 1280
    seen = []
    det._detect = lambda image: (seen.append(image.shape), Detections(np.zeros((0, 4)), np.zeros(0)))[1]
    det.detect(np.zeros((3000, 2000, 3), np.uint8))
    assert max(seen[0][:2]) == 1280
    assert create_detector(name, max_side=None).max_side is None  # the caller may still ask for full size

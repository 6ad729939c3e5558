"""The browser site (web/, built by facepoints.website as scripts/build_web.py does) in a real headless Chromium.

Needs Debian's /usr/bin/chromium, the playwright Python package (no downloaded browser) and
`npm ci` in web/. Where one is missing the tests skip, unless FACEPOINTS_REQUIRE_WEB=1 (set by
.ci/run), which turns the skip into a failure so that CI always runs them.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from facepoints import website

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "grace_hopper.jpg"
SCREENSHOT_DIR = Path(os.environ.get("FACEPOINTS_WEB_ARTIFACTS", ROOT / "runs" / "web_test"))
JS_TIMEOUT_S = 60  # every call into the page is bounded
TRACK_FRAMES = 20  # frames of the tracking parity clip (panning and zooming; 30 fps timestamps)


if (_why := website.browser_missing()) is not None:
    if os.environ.get("FACEPOINTS_REQUIRE_WEB") == "1":
        raise RuntimeError(f"FACEPOINTS_REQUIRE_WEB=1 but {_why}")
    pytest.skip(_why, allow_module_level=True)


def call(page, body: str, arg=None, timeout_s: float = JS_TIMEOUT_S):
    """Run `async (arg) => { body }` in the page, failing after timeout_s instead of hanging."""
    return page.evaluate(
        f"""async ([arg, ms]) => {{
            const task = (async (arg) => {{ {body} }})(arg);
            const timer = new Promise((_, no) => setTimeout(() => no(new Error('timed out after ' + ms + ' ms')), ms));
            return Promise.race([task, timer]);
        }}""",
        [arg, int(timeout_s * 1000)],
    )


@pytest.fixture(scope="session")
def images():
    """name -> RGB image, all copied into the site: the example photo, a rolled copy, two faces,
    and a big copy (the detector shrinks it to 1280 px; the crop pre-shrinks the face)."""
    from facepoints.images import load_image

    g = load_image(EXAMPLE)
    h, w = g.shape[:2]
    rolled = cv2.warpAffine(g, cv2.getRotationMatrix2D((w / 2, h / 2), 25, 1.0), (w, h), borderMode=cv2.BORDER_REFLECT)
    two = np.concatenate([g, cv2.resize(g, (w, h), interpolation=cv2.INTER_AREA)[:, ::-1]], axis=1)
    big = cv2.resize(g, (w * 4, h * 4), interpolation=cv2.INTER_CUBIC)
    covered = g.copy()  # a skin-coloured block over the mouth and chin, as a hand: some points hidden (both ends seen)
    covered[int(h * 0.42) : int(h * 0.6), int(w * 0.33) : int(w * 0.68)] = (230, 180, 150)
    return {"grace_hopper.jpg": g, "rolled.png": rolled, "two.png": two, "big.png": big, "covered.png": covered}


@pytest.fixture(scope="session")
def site(tmp_path_factory, images):
    out = website.build(tmp_path_factory.mktemp("web") / "site")
    test_dir = out / "test"
    test_dir.mkdir()
    shutil.copy2(EXAMPLE, test_dir / "grace_hopper.jpg")
    for name, rgb in images.items():
        if name.endswith(".png"):
            cv2.imwrite(str(test_dir / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    for i, rgb in enumerate(_camera_frames(images["grace_hopper.jpg"], TRACK_FRAMES)):
        cv2.imwrite(str(test_dir / f"frame_{i:02d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return out


@pytest.fixture(scope="session")
def server(site):
    with website.serve(site) as url:
        yield url


@pytest.fixture(scope="session")
def page(playwright, server, tmp_path_factory):
    ctx = website.launch_chromium(
        playwright, tmp_path_factory.mktemp("profile"), viewport={"width": 1100, "height": 900}, accept_downloads=True
    )
    ctx.set_default_timeout(JS_TIMEOUT_S * 1000)
    page = ctx.new_page()
    errors, console_errors = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))  # uncaught exceptions and unhandled rejections
    page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
    page.goto(server)
    call(page, "return await window.facepoints.ready;")
    page.errors, page.console_errors = errors, console_errors
    yield page
    ctx.close()


@pytest.fixture(scope="session")
def reference():
    """The Python pipeline with the same fp32 landmark network as the page (the package's default
    ONNX backend uses the int8 graph; the site ships fp32, which is faster in wasm): the trust graph."""
    from facepoints import Landmarker
    from facepoints.predictor import LandmarkPredictor

    lm = Landmarker.from_pretrained(threads=1, detector_coarse_side=0)  # the page runs one full-resolution pass
    lm.predictor = LandmarkPredictor(None, backend="onnxruntime", threads=1, int8=False)
    assert lm.predictor.has_trust
    return lm


def page_detect(page, name):
    return call(
        page,
        """
        const img = await window.facepoints.imageFromUrl('test/' + arg);
        const d = await window.facepoints.fp.detect(img);
        return {...d, width: img.width, height: img.height};""",
        name,
    )


TRUST_KEYS = ("presence", "visibility", "log_b")
# The page's trust outputs against Landmarker.detect's (same fp32 trust graph; the page's crops are its own
# bilinear warp, so they differ from cv2's by rounding): presence and visibility, absolute; uncertainty (image px),
# relative to Python's value
PRESENCE_TOL, VISIBILITY_TOL, UNCERTAINTY_REL_TOL = 0.01, 0.02, 0.02
# tracked frames (see test_tracking_equals_python_video_tracking): per face
TRACK_POINTS_MEAN_TOL, TRACK_PRESENCE_TOL, TRACK_VISIBILITY_MEAN_TOL, TRACK_UNCERTAINTY_MEAN_REL_TOL = (
    1.0,
    0.02,
    0.02,
    0.1,
)


def iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_model_outputs_equal_onnxruntime_python(page, site, images):
    """Check 1: the landmark model in the browser equals ONNX Runtime in Python on the same crops (<= 1e-4),
    every output of the trust graph: points, presence, visibility, log_b."""
    import onnxruntime as ort

    from facepoints.crop import crop_face, to_gray

    spec = json.loads((site / "model.json").read_text())["landmarks"]
    s = spec["input_size"]
    g = images["grace_hopper.jpg"]
    crops = [
        to_gray(crop_face(g, (190, 150, 340, 320), s, spec["margin"]).image),
        to_gray(crop_face(g, (120, 100, 400, 400), s, spec["margin"], 20.0).image),
        np.random.default_rng(0).integers(0, 256, (s, s), dtype=np.uint8),
    ]
    x = (np.stack(crops).astype(np.float32) / 255)[:, None]
    sess = ort.InferenceSession(str(site / spec["file"]), providers=["CPUExecutionProvider"])
    want = sess.run(None, {spec["input"]: x})[0]
    assert spec["trust"] is not None, "the site ships the trust graph"
    outputs = sess.run(None, {spec["input"]: x})
    assert [o.name for o in sess.get_outputs()] == [spec["output"], *(spec["trust"][k] for k in TRUST_KEYS)]
    got = call(
        page,
        """const o = await window.facepoints.fp.runModelOutputs(new Float32Array(arg.x), arg.n);
        return [o.points, o.presence, o.visibility, o.logB].map((a) => Array.from(a));""",
        {"x": x.ravel().tolist(), "n": len(x)},
    )
    for g_, w_ in zip(got, outputs):
        assert np.abs(np.asarray(g_, np.float32).reshape(w_.shape) - w_).max() <= 1e-4
    points = call(
        page,
        "return Array.from(await window.facepoints.fp.runModelFloat(new Float32Array(arg.x), arg.n));",
        {"x": x.ravel().tolist(), "n": len(x)},
    )
    assert np.abs(np.asarray(points, np.float32).reshape(want.shape) - want).max() <= 1e-4


@pytest.mark.parametrize("name", ["grace_hopper.jpg", "rolled.png", "two.png", "big.png"])
def test_points_equal_landmarker_with_same_boxes(page, images, reference, name):
    """Check 2: with the same boxes, the page's points (its own bilinear crop warp) equal
    Landmarker.detect's within 0.1 px mean; the page's whole pipeline (its detector, upright crops) too."""
    rgb = images[name]
    det = reference.find_faces(rgb)
    assert len(det) >= 1
    boxes = reference.detector.landmark_boxes(det.boxes).tolist()
    want = np.stack([f.points for f in reference.detect(rgb, boxes=boxes).faces])
    got = call(
        page,
        """
        const img = await window.facepoints.imageFromUrl('test/' + arg.name);
        return await window.facepoints.fp.landmarks(img, arg.boxes);""",
        {"name": name, "boxes": boxes},
    )
    err = np.linalg.norm(np.asarray(got) - want, axis=-1)
    assert err.mean() <= 0.1, (err.mean(), err.max())

    full = reference.detect(rgb)  # detector, box map, roll from keypoints, upright crops
    res = call(page, "return await window.facepoints.show('test/' + arg);", name)
    assert len(res["faces"]) == len(full.faces)
    got_full = np.asarray([f["points"] for f in res["faces"]])
    err_full = np.linalg.norm(got_full - np.stack([f.points for f in full.faces]), axis=-1)
    assert err_full.mean() <= 0.1, (err_full.mean(), err_full.max())


@pytest.mark.parametrize("name", ["grace_hopper.jpg", "rolled.png", "two.png", "big.png", "covered.png"])
def test_trust_outputs_equal_landmarker(page, images, reference, name):
    """Check 2b: the page's presence, visibility (68) and uncertainty (68, image px) equal Landmarker.detect's
    for the same image, the page's whole pipeline against Python's (tolerances above); on the covered face some
    points are hidden (visibility < 0.5) in both, and they are the same points."""
    full = reference.detect(images[name])
    res = call(page, "return await window.facepoints.show('test/' + arg);", name)
    assert len(res["faces"]) == len(full.faces) >= 1
    for got, want in zip(res["faces"], full.faces):
        assert abs(got["presence"] - want.presence) <= PRESENCE_TOL, (got["presence"], want.presence)
        vis, unc = np.asarray(got["visibility"]), np.asarray(got["uncertainty"])
        assert vis.shape == unc.shape == (68,)
        assert np.abs(vis - want.visibility).max() <= VISIBILITY_TOL, np.abs(vis - want.visibility).max()
        rel = np.abs(unc - want.uncertainty) / want.uncertainty
        assert rel.max() <= UNCERTAINTY_REL_TOL, (rel.max(), unc[rel.argmax()], want.uncertainty[rel.argmax()])
        if name == "covered.png":
            hidden = vis < 0.5
            assert hidden.sum() >= 5, vis
            disagree = hidden != (want.visibility < 0.5)  # only where Python's value is within the tolerance of 0.5
            assert np.all(np.abs(want.visibility[disagree] - 0.5) <= VISIBILITY_TOL)
    if name == "covered.png":  # drawn as Python draws them: hidden points as rings, and said on the page
        assert "covered point" in page.locator("#trust").inner_text()


@pytest.mark.parametrize("name", ["grace_hopper.jpg", "rolled.png", "two.png", "big.png"])
def test_detector_boxes_match_python(page, images, reference, name):
    """Check 3: the page's RetinaFace boxes match the Python detector's (IoU > 0.95), same faces, same order."""
    det = reference.find_faces(images[name])
    got = page_detect(page, name)
    assert len(got["boxes"]) == len(det) >= 1
    for a, b in zip(got["boxes"], det.boxes):
        assert iou(a, b) > 0.95
    assert np.allclose(got["scores"], det.scores, atol=1e-3)
    assert np.abs(np.asarray(got["keypoints"]) - det.keypoints).max() < 0.5


def test_download_json_has_the_cli_schema(page, images, reference):
    """The downloaded JSON has the schema of `facepoints detect --json`, presence, visibility and uncertainty
    included (pose: null; not computed in the page)."""
    call(page, "return (await window.facepoints.show('test/grace_hopper.jpg')).faces.length;")
    with page.expect_download(timeout=JS_TIMEOUT_S * 1000) as dl:
        page.click("#download")
    data = json.loads(Path(dl.value.path()).read_text())
    want = reference.detect(images["grace_hopper.jpg"]).summary()
    assert data.keys() == want.keys() and data["image"] == "grace_hopper.jpg"
    assert len(data["faces"]) == len(want["faces"]) == 1
    f, w = data["faces"][0], want["faces"][0]
    assert f.keys() == w.keys() and f["pose"] is None
    assert abs(f["presence"] - w["presence"]) <= PRESENCE_TOL
    assert len(f["visibility"]) == len(f["uncertainty"]) == 68
    assert np.abs(np.asarray(f["visibility"]) - w["visibility"]).max() <= VISIBILITY_TOL + 1e-3
    assert (np.abs(np.asarray(f["uncertainty"]) - w["uncertainty"]) / w["uncertainty"]).max() <= 0.03
    assert np.abs(np.asarray(f["points"]) - np.asarray(w["points"])).max() < 0.5
    assert iou(f["box"], w["box"]) > 0.95


def _camera_frames(g, n=12):
    """640 x 480 frames of the example photo panning and zooming (even sides, as y4m 4:2:0 wants)."""
    h, w = g.shape[:2]
    frames = []
    for i in range(n):
        t = i / max(n - 1, 1)
        zoom, shift = 0.9 + 0.3 * t, -60 + 120 * t
        m = np.array([[zoom, 0, 320 - zoom * w / 2 + shift], [0, zoom, 240 - zoom * h * 0.42]], np.float64)
        frames.append(cv2.warpAffine(g, m, (640, 480), borderMode=cv2.BORDER_REPLICATE))
    return frames


def test_tracking_equals_python_video_tracking(page, images, reference):
    """The page's FaceTracker on the frames of a clip follows Landmarker.detect_for_video on the same frames and
    timestamps: the detector runs on the same frames (the first, on loss, every redetect_every); on the first frame
    the points (0.1 px mean) and on detected frames the trust outputs agree as for single images; elsewhere the
    (smoothed) points agree within the tracking tolerances (the steps themselves are compared exactly in
    test_tracking_steps_equal_python)."""
    frames = _camera_frames(images["grace_hopper.jpg"], TRACK_FRAMES)
    times = [i / 30 for i in range(len(frames))]
    reference.reset_video()
    want = []
    for f, t in zip(frames, times):
        runs = reference.video_tracker.detector_runs if reference.video_tracker else 0
        res = reference.detect_for_video(f, t * 1000)
        want.append((reference.video_tracker.detector_runs > runs, res.faces))
    got = call(
        page,
        """const tracker = window.facepoints.tracker(), out = [];
        for (let i = 0; i < arg.n; i++) {
          const img = await window.facepoints.imageFromUrl('test/frame_' + String(i).padStart(2, '0') + '.png');
          const r = await tracker.update(img, arg.times[i]);
          out.push({detected: r.detected, faces: r.faces});
        }
        return {out, runs: tracker.detectorRuns};""",
        {"n": len(frames), "times": times},
        timeout_s=JS_TIMEOUT_S * 2,
    )
    assert [g["detected"] for g in got["out"]] == [d for d, _ in want]
    assert 1 <= got["runs"] < len(frames)
    for i, (g, (detected, faces)) in enumerate(zip(got["out"], want)):
        assert len(g["faces"]) == len(faces) == 1
        a, b = g["faces"][0], faces[0]
        err = np.linalg.norm(np.asarray(a["points"]) - b.points, axis=-1)
        # the first frame's points are one detection's, as for single images; a later detection's are smoothed
        # with the track's history, which may differ by the tracking tolerance
        assert err.mean() <= (0.1 if i == 0 else TRACK_POINTS_MEAN_TOL), (err.mean(), err.max())
        assert iou(a["box"], b.box) > 0.95
        vis, unc = np.asarray(a["visibility"]), np.asarray(a["uncertainty"])
        if detected:  # the crop from the detector's box: as for single images
            assert abs(a["presence"] - b.presence) <= PRESENCE_TOL
            assert np.abs(vis - b.visibility).max() <= VISIBILITY_TOL
            assert (np.abs(unc - b.uncertainty) / b.uncertainty).max() <= UNCERTAINTY_REL_TOL
        else:
            # the crop from the last points, which differ from Python's by hundredths of a pixel at first; the model
            # is not shift-invariant below a pixel (0.05 px of noise on Python's own last points moves its next points
            # by 0.07-0.17 px mean, one point's uncertainty by up to 60%, visibility by 0.03), so the two tracks walk
            # apart until the next detection (measured: up to 0.65 px mean on a 170 px face): compared per face
            assert abs(a["presence"] - b.presence) <= TRACK_PRESENCE_TOL
            assert np.abs(vis - b.visibility).mean() <= TRACK_VISIBILITY_MEAN_TOL
            assert abs(unc.mean() / b.uncertainty.mean() - 1) <= TRACK_UNCERTAINTY_MEAN_REL_TOL


def test_tracking_steps_equal_python(page, images, reference):
    """The tracker's steps on the same points as Python's: the roll from five points, the upright box of the next
    crop (video.FaceTracker._track_boxes), the carried detector box, and the One Euro smoothing of a point track
    (smoothing.LandmarkSmoother, with the same settings): equal to float precision."""
    from facepoints.crop import points_box, upright_box
    from facepoints.detectors import roll_degrees
    from facepoints.landmarks import five_points
    from facepoints.smoothing import LandmarkSmoother
    from facepoints.video import carried_box

    frames = _camera_frames(images["grace_hopper.jpg"], TRACK_FRAMES)
    track = [reference.detect(f).faces[0].points.astype(np.float64) for f in frames[:8]]
    times = [i / 30 for i in range(len(track))]
    smoother = LandmarkSmoother()
    want = {
        "angle": [float(roll_degrees(five_points(p[None]))[0]) for p in track],
        "smoothed": [smoother(p, t) for p, t in zip(track, times)],
    }
    want["box"] = [upright_box(p, a) for p, a in zip(track, want["angle"])]
    detected = np.array([190.0, 140.0, 350.0, 330.0])
    want["carried"] = [
        carried_box(detected, np.asarray(points_box(track[0])), np.asarray(points_box(p))) for p in track
    ]
    got = call(
        page,
        """const m = await import('./facepoints.js');
        const s = new m.LandmarkSmoother(window.facepoints.fp.spec.smoothing);
        const ref = m.pointsBox(arg.track[0]);
        return {
          angle: arg.track.map((p) => m.rollDegrees(m.fivePoints(p))),
          box: arg.track.map((p) => m.uprightBox(p, m.rollDegrees(m.fivePoints(p)))),
          smoothed: arg.track.map((p, i) => s.filter(p, arg.times[i])),
          carried: arg.track.map((p) => m.carriedBox(arg.detected, ref, m.pointsBox(p))),
        };""",
        {"track": [p.tolist() for p in track], "times": times, "detected": detected.tolist()},
    )
    assert np.abs(np.asarray(got["angle"]) - want["angle"]).max() < 1e-9
    assert np.abs(np.asarray(got["box"]) - np.asarray(want["box"])).max() < 1e-6
    assert np.abs(np.asarray(got["carried"]) - np.asarray(want["carried"])).max() < 1e-4
    assert np.abs(np.asarray(got["smoothed"]) - np.asarray(want["smoothed"])).max() < 1e-3  # float32 in Python


def test_webcam_with_fake_camera(playwright, server, images, tmp_path):
    """Check 4: the webcam path with Chromium's fake camera playing a y4m clip: every processed frame gets a
    face, the detector runs on fewer frames than are processed (tracking between), and the page shows and
    exposes its processed frames per second."""
    clip = website.write_y4m(tmp_path / "clip.y4m", _camera_frames(images["grace_hopper.jpg"]))
    ctx = website.launch_chromium(
        playwright,
        tmp_path / "profile",
        [
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}",
        ],
    )
    try:
        ctx.set_default_timeout(JS_TIMEOUT_S * 1000)
        ctx.grant_permissions(["camera"], origin=server.rstrip("/"))
        page = ctx.new_page()
        page.goto(server)
        call(page, "return await window.facepoints.ready;")
        call(page, "await window.facepoints.startCamera(); return true;")
        page.wait_for_function("window.facepoints.stats.frames >= 30", timeout=JS_TIMEOUT_S * 1000)
        fps_text = page.locator("#fps").inner_text()
        stats = call(page, "await window.facepoints.stopCamera(); return window.facepoints.stats;")
        assert stats["frames"] >= 30
        assert stats["withFace"] == stats["frames"], stats
        assert 1 <= stats["detectorRuns"] < stats["frames"], stats
        assert stats["fps"] > 0 and "frames/s" in fps_text, (stats["fps"], fps_text)
        assert page.locator("#camera").inner_text() == "Start webcam"
    finally:
        ctx.close()


def test_screenshot_of_a_result(page):
    """Check 5: a screenshot of the page with a result is saved; the committed one is shown in the README."""
    res = call(page, "return await window.facepoints.show('test/two.png');")
    assert len(res["faces"]) == 2
    assert "2 faces" in page.locator("#timing").inner_text()
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOT_DIR / "web_page.png"
    page.screenshot(path=str(shot), full_page=True)
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[0] > 300 and img.shape[1] > 600
    docs = ROOT / "docs" / "web_page.png"
    assert docs.exists() and "docs/web_page.png" in (ROOT / "README.md").read_text()
    assert page.errors == []


# ---- what the page shows while it works, and when an input fails ---------------------------------


def _ui(page) -> dict:
    return page.evaluate(
        """() => ({
            status: document.getElementById('status').textContent,
            error: document.getElementById('status').className === 'error',
            timing: document.getElementById('timing').textContent,
            download: !document.getElementById('download').disabled,
            current: window.facepoints.current && window.facepoints.current.name,
        })"""
    )


def _choose(page, file, done: str):
    """Choose a file with the page's own file input (a path, or a playwright payload), wait for the
    outcome (a status line while the stage is not busy), and check that the line starts with `done`."""
    page.evaluate("document.getElementById('status').textContent = ''")  # the wait below sees this input's outcome
    page.set_input_files("#file", file)
    page.wait_for_function(
        """() => document.getElementById('status').textContent !== ''
                 && document.getElementById('stage').getAttribute('aria-busy') !== 'true'"""
    )
    status = page.locator("#status").inner_text()
    assert status.startswith(done), status


def _cut_png() -> bytes:
    """The first half of a PNG: Python refuses it ("image file is truncated"); the page must too."""
    import io

    from PIL import Image

    b = io.BytesIO()
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(b, "PNG")
    return b.getvalue()[: len(b.getvalue()) // 2]


BAD_INPUTS = {
    "broken.jpg": b"\xff\xd8\xff\xe0 this is not a JPEG",
    "empty.png": b"",
    "notes.png": b"plain text\n" * 50,
    "cut.png": _cut_png(),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_an_input_that_cannot_be_decoded_clears_the_result_and_names_the_file(page, name):
    """After a good photo, a file that cannot be decoded (or an empty one): one red line naming the file,
    and nothing left of the previous result (no image, no timing, no Download JSON of the other file),
    and no uncaught promise rejection in the console."""
    from facepoints.errors import FacepointsError
    from facepoints.images import decode_image

    data = BAD_INPUTS[name]
    with pytest.raises(FacepointsError):  # the Python loader refuses each of them too
        decode_image(data, name)
    _choose(page, str(EXAMPLE), "grace_hopper.jpg: ")
    before = _ui(page)
    assert before["download"] and "1 face" in before["timing"] and before["current"] == "grace_hopper.jpg"
    errors, console_errors = len(page.errors), len(page.console_errors)

    _choose(page, {"name": name, "mimeType": "image/png", "buffer": data}, name + ": ")
    ui = _ui(page)
    assert ui["error"], ui
    assert "\n" not in ui["status"] and ("empty file" if not data else "not a decodable image") in ui["status"], ui
    assert not ui["download"] and ui["timing"] == "" and ui["current"] is None, ui
    assert page.locator("#download").is_disabled()
    blank = page.evaluate(
        """() => { const v = document.getElementById('view');
                   return v.getContext('2d').getImageData(0, 0, v.width, v.height).data.every((x) => x === 0); }"""
    )
    assert blank, "the previous image is still on the canvas"
    page.wait_for_timeout(300)  # an unhandled rejection is reported after the microtasks
    assert page.errors[errors:] == [], page.errors[errors:]
    assert page.console_errors[console_errors:] == [], page.console_errors[console_errors:]


def test_a_missing_url_is_one_line_naming_it(page):
    """The URL form: a missing image is one red line naming it, the previous result is cleared, and no
    unhandled rejection (Chromium's own "Failed to load resource" console line is expected here)."""
    _choose(page, str(EXAMPLE), "grace_hopper.jpg: ")
    errors = len(page.errors)
    page.evaluate("document.getElementById('status').textContent = ''")
    page.fill("#url", "test/missing.jpg")
    page.click("#url-form button")
    page.wait_for_function("document.getElementById('status').className === 'error'")
    ui = _ui(page)
    assert ui["status"] == "test/missing.jpg: HTTP 404", ui
    assert not ui["download"] and ui["timing"] == "" and ui["current"] is None, ui
    page.wait_for_timeout(300)
    assert page.errors[errors:] == [], page.errors[errors:]


def test_busy_state_while_a_big_photo_is_worked_on(page, images, tmp_path):
    """A 6000x4000 photo takes seconds: meanwhile the page says which file it is working on, the stage
    is aria-busy and the previous result is gone; afterwards the busy state is gone too."""
    g = images["grace_hopper.jpg"]
    h, w = g.shape[:2]
    up = cv2.resize(g, (round(w * 4000 / h), 4000), interpolation=cv2.INTER_CUBIC)
    pad = 6000 - up.shape[1]
    big = cv2.copyMakeBorder(up, 0, 0, pad // 2, pad - pad // 2, cv2.BORDER_REPLICATE)
    path = tmp_path / "big_6000.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])

    _choose(page, str(EXAMPLE), "grace_hopper.jpg: ")
    # every change of the page, as it happens (a poll from here could miss a short state)
    page.evaluate(
        """() => {
            const $ = (id) => document.getElementById(id);
            window.__log = [];
            const snap = () => window.__log.push({
                busy: $('stage').getAttribute('aria-busy'), status: $('status').textContent,
                visible: $('status').checkVisibility(), timing: $('timing').textContent,
                download: !$('download').disabled, current: !!window.facepoints.current,
            });
            window.__observer = new MutationObserver(snap);
            const all = {subtree: true, attributes: true, childList: true, characterData: true};
            window.__observer.observe(document.body, all);
        }"""
    )
    _choose(page, str(path), "big_6000.jpg: ")
    log = page.evaluate("() => { window.__observer.disconnect(); return window.__log; }")
    busy = [s for s in log if s["busy"] == "true"]
    assert busy, log
    assert any(s["status"] == "working on big_6000.jpg…" and s["visible"] for s in busy), busy
    assert all(not s["download"] and s["timing"] == "" and not s["current"] for s in busy), busy
    assert log[-1]["busy"] == "false" and log[-1]["status"] == "big_6000.jpg: 1 face(s)", log[-1]
    assert log[-1]["download"] and "6000×4000" in log[-1]["timing"]
    assert page.get_attribute("#stage", "aria-busy") == "false"


# ---- transparent PNGs: the page sees the pixels the Python loader sees -----------------------------

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def _png(samples, color_type, depth, palette=None, trns=None, interlace=False, orientation=None, seed=0) -> bytes:
    """A PNG written by hand, for the kinds Pillow does not write (16-bit alpha, interlaced, eXIf, low
    bit depths with tRNS): samples (h, w, channels) ints; each row gets a random filter type, so the
    decoder meets all five."""
    rng = np.random.default_rng(seed)
    h, w, ch = samples.shape
    bpp = max(1, ch * depth // 8)

    def pack(row):
        if depth >= 8:
            return row.astype(">u2" if depth == 16 else np.uint8).tobytes()
        per = 8 // depth
        padded = np.zeros(-(-len(row) // per) * per, np.uint8)
        padded[: len(row)] = row
        return bytes(sum(padded[k::per] << (8 - depth * (k + 1)) for k in range(per)).astype(np.uint8))

    def filtered(row, prev, kind):
        out = bytearray(len(row))
        for i, x in enumerate(row):
            a, b, c = row[i - bpp] if i >= bpp else 0, prev[i], prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            paeth = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c
            out[i] = (x - [0, a, b, (a + b) // 2, paeth][kind]) & 255
        return bytes([kind]) + bytes(out)

    raw = b""
    for x0, y0, dx, dy in ADAM7 if interlace else [(0, 0, 1, 1)]:
        sub = samples[y0::dy, x0::dx]
        if sub.size:
            rows = [pack(r.ravel()) for r in sub]
            for prev, row in zip([bytes(len(rows[0]))] + rows, rows):
                raw += filtered(row, prev, int(rng.integers(0, 5)))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, interlace))
    if palette is not None:
        out += chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).ravel()))
    if trns is not None:
        out += chunk(b"tRNS", trns)
    if orientation is not None:  # a little-endian TIFF block with one entry: Orientation (0x0112), a SHORT
        out += chunk(b"eXIf", b"II*\0\x08\0\0\0\x01\0" + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + bytes(4))
    data = zlib.compress(raw)
    return out + chunk(b"IDAT", data[:20]) + chunk(b"IDAT", data[20:]) + chunk(b"IEND", b"")


def _png_cases():
    rng = np.random.default_rng(7)

    def some(h, w, ch, top):
        return rng.integers(0, top, (h, w, ch))

    cases = {}
    s = some(9, 13, 4, 256)
    s[:3, :, 3] = 0  # fully transparent rows: the browser's decoders lose their colour
    cases["rgba8"] = _png(s, 6, 8)
    cases["rgba8_interlaced"] = _png(s, 6, 8, interlace=True)
    for o in range(2, 9):
        cases[f"rgba8_orientation{o}"] = _png(s, 6, 8, orientation=o)
    s16 = some(9, 13, 4, 65536)
    s16[:3, :, 3] = 0
    cases["rgba16"] = _png(s16, 6, 16)
    cases["la8"] = _png(s[..., [0, 3]], 4, 8)
    cases["la16_interlaced"] = _png(s16[..., [1, 3]], 4, 16, interlace=True)
    for depth in (1, 2, 4, 8):
        idx = some(11, 7, 1, 2**depth)
        idx[0, 0, 0], idx[0, 1, 0] = 0, 2**depth - 1
        pal = rng.integers(0, 256, (2**depth, 3))
        cases[f"palette{depth}"] = _png(idx, 3, depth, palette=pal, trns=bytes([0, 100]))  # index 0 transparent
        top = struct.pack(">H", 2**depth - 1)  # white, transparent: the browser's black would differ
        cases[f"gray{depth}"] = _png(idx, 0, depth, trns=top, interlace=depth == 2)
    g16 = some(11, 7, 1, 65536)
    cases["gray16"] = _png(g16, 0, 16, trns=struct.pack(">H", int(g16[0, 0, 0])))
    low = g16 % 200  # max <= 255: Pillow does not scale it
    cases["gray16_low"] = _png(low, 0, 16, trns=struct.pack(">H", int(low[0, 0, 0])))
    rgb = some(9, 13, 3, 65536)
    cases["rgb16"] = _png(rgb, 2, 16, trns=struct.pack(">HHH", *rgb[0, 0]))
    cases["rgb8"] = _png(rgb >> 8, 2, 8, trns=struct.pack(">HHH", *(rgb[0, 0] >> 8)))
    return cases


PNG_CASES = _png_cases()


@pytest.mark.parametrize("kind", list(PNG_CASES))
def test_png_with_transparency_decodes_to_the_python_loaders_pixels(page, site, kind):
    """Every PNG kind with transparency (alpha channel, tRNS, 16-bit, low bit depths, palette, interlace,
    eXIf orientation): the page's pixels equal data.load_image's exactly. Python drops the alpha and keeps
    the colours stored under it; the browser's own decoders premultiply, so transparent pixels turn black."""
    from facepoints.images import load_image

    path = site / "test" / f"alpha_{kind}.png"
    path.write_bytes(PNG_CASES[kind])
    want = load_image(path)
    got = call(
        page,
        """const img = await window.facepoints.imageFromUrl('test/' + arg);
        return {w: img.width, h: img.height, data: Array.from(img.data)};""",
        path.name,
    )
    assert (got["h"], got["w"]) == want.shape[:2]
    rgba = np.asarray(got["data"], np.uint8).reshape(got["h"], got["w"], 4)
    assert np.array_equal(rgba[..., :3], want), np.argwhere((rgba[..., :3] != want).any(-1))[:5].tolist()


def test_transparent_png_points_equal_python(page, site, images, reference):
    """A photo whose face is under fully transparent pixels (the colours still stored, as a cut-out
    editor leaves them) and a soft alpha ramp below: the page's points equal the CLI's (0.1 px mean)."""
    from PIL import Image

    from facepoints.images import load_image

    g = images["grace_hopper.jpg"]
    h, w = g.shape[:2]
    alpha = np.clip(np.linspace(-1.5, 1.0, h), 0, 1)[:, None].repeat(w, 1) * 255  # 0 over the top 60%
    path = site / "test" / "transparent.png"
    Image.fromarray(np.dstack([g, alpha.astype(np.uint8)])).save(path)
    rgb = load_image(path)
    full = reference.detect(rgb)
    assert len(full.faces) == 1
    res = call(page, "return await window.facepoints.show('test/' + arg);", path.name)
    assert len(res["faces"]) == 1
    err = np.linalg.norm(np.asarray(res["faces"][0]["points"]) - full.faces[0].points, axis=-1)
    assert err.mean() <= 0.1, (err.mean(), err.max())

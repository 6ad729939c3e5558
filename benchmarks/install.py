"""Install cost: the size of a fresh venv and the time from `pip install` to the first landmarks, for facepoints'
core install beside `pip install mediapipe` and `pip install face-alignment`, measured the same way.

Each package goes into a fresh venv with `pip install --isolated --no-cache-dir` (the registry only, no local
wheels or pip cache: what a new user downloads), then one Python process puts landmarks on the example photo,
offline. A package whose resolution is over --max-mb (face-alignment pulls PyTorch, the multi-GB CUDA build
from the registry) is not installed: its row gives the download size pip's resolver reports (`pip install
--dry-run --report`, each file's size from the registry). Writes BENCHMARKS.md "Install".
Run: python benchmarks/install.py [--max-mb 1500]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import ROOT, write_section

PHOTO = ROOT / "examples" / "grace_hopper.jpg"
PIP = ["-m", "pip", "install", "--isolated", "--no-cache-dir", "--disable-pip-version-check", "-q"]

# one process, offline, landmarks on the example photo; prints the number of points found
FIRST = {
    "facepoints": f"""
from facepoints import Landmarker
print(len(Landmarker.from_pretrained().detect({str(PHOTO)!r}).faces[0].points))
""",
    "mediapipe": f"""
import sys, cv2, mediapipe as mp
rgb = cv2.cvtColor(cv2.imread({str(PHOTO)!r}), cv2.COLOR_BGR2RGB)
if not hasattr(mp, "solutions"):
    sys.exit("its face landmarker (mediapipe.tasks) needs face_landmarker.task, a model file downloaded apart from "
             "the package")
with mp.solutions.face_mesh.FaceMesh(static_image_mode=True) as mesh:
    print(len(mesh.process(rgb).multi_face_landmarks[0].landmark))
""",
    "face-alignment": f"""
import face_alignment, skimage.io
fa = face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, device="cpu")
print(len(fa.get_landmarks(skimage.io.imread({str(PHOTO)!r}))[0]))
""",
}


# why a package's resolution is as big as it is (known from its own requirements and docs, not measured here)
NOT_INSTALLED = {
    "face-alignment": " (it requires torch, and the registry's torch brings the CUDA libraries); it also "
    "downloads its model weights at first use, so it cannot produce landmarks offline either",
}


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


def du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


def download_mb(py: Path, spec: str, report: Path) -> tuple[float, int, str]:
    """What `pip install spec` would download: MB (each file's size from the registry), files, and the
    largest three packages."""
    r = run([py, *PIP, "--dry-run", "--ignore-installed", "--report", report, spec], timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"pip cannot resolve {spec}: {r.stderr.strip().splitlines()[-1:]}")
    sizes = {}
    for item in json.loads(report.read_text())["install"]:
        url = item["download_info"]["url"]
        if url.startswith("file:"):
            size = Path(url.removeprefix("file://")).stat().st_size
        else:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=60) as resp:
                size = int(resp.headers.get("Content-Length", 0))
        sizes[f"{item['metadata']['name']} {item['metadata']['version']}"] = size
    top = ", ".join(f"{k} {v / 1e6:.0f}" for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])[:3])
    return sum(sizes.values()) / 1e6, len(sizes), top


def measure(name: str, spec: str, work: Path, max_mb: float) -> dict:
    venv = work / name
    run([sys.executable, "-m", "venv", venv], check=True)
    py = venv / "bin" / "python"
    empty = du_mb(venv)
    row = {
        "name": name,
        "spec": spec if name != "facepoints" else "facepoints (this checkout's wheel)",
        "empty_mb": empty,
    }
    row["download_mb"], row["files"], row["largest"] = download_mb(py, spec, work / f"{name}.report.json")
    if row["download_mb"] > max_mb:
        row["note"] = f"Not installed: its download is over {max_mb:.0f} MB" + NOT_INSTALLED.get(name, "")
        return row
    t0 = time.perf_counter()
    inst = run([py, *PIP, spec], timeout=3600)
    row["install_s"] = time.perf_counter() - t0
    if inst.returncode != 0:
        row["note"] = "pip install failed: " + (inst.stderr.strip().splitlines() or ["?"])[-1][:160]
        return row
    row["venv_mb"] = du_mb(venv)
    t1 = time.perf_counter()
    first = run([py, "-c", FIRST[name]], cwd=work, timeout=600)
    row["first_s"] = time.perf_counter() - t1
    if first.returncode == 0:
        row["points"] = int(first.stdout.split()[-1])
        row["total_s"] = time.perf_counter() - t0
    else:
        last = (first.stderr.strip().splitlines() or ["?"])[-1][:200]
        row["note"] = f"Cannot produce landmarks offline: {last}"
    return row


def table(rows: list[dict]) -> str:
    def f(v, fmt):
        return format(v, fmt) if v is not None else "—"

    lines = [
        "| install | download (MB, files) | venv (MB) | `pip install` (s) | first landmarks (s) "
        "| install → landmarks (s) | points |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| `{r['spec']}` | {r['download_mb']:.0f} ({r['files']}) | {f(r.get('venv_mb'), '.0f')} | "
            f"{f(r.get('install_s'), '.1f')} | {f(r.get('first_s'), '.1f')} | {f(r.get('total_s'), '.1f')} | "
            f"{r.get('points', '—')} |"
        )
    notes = [
        f"- `{r['name']}`: largest downloads (MB): {r['largest']}." + (f" {r['note']}." if r.get("note") else "")
        for r in rows
    ]
    return "\n".join(lines + [""] + notes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-mb", type=float, default=1500, help="install nothing whose download is bigger (MB)")
    ap.add_argument("--only", nargs="*", default=None, help="facepoints, mediapipe, face-alignment")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fp-install-"))
    try:
        wheel_dir = work / "wheel"
        r = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheel_dir, ROOT], timeout=900)
        if r.returncode != 0:
            sys.exit(f"cannot build the wheel: {r.stderr[-500:]}")
        wheel = next(wheel_dir.glob("facepoints-*.whl"))
        specs = {"facepoints": str(wheel), "mediapipe": "mediapipe", "face-alignment": "face-alignment"}
        rows = []
        for name, spec in specs.items():
            if args.only and name not in args.only:
                continue
            rows.append(measure(name, spec, work, args.max_mb))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    core = next((r for r in rows if r["name"] == "facepoints"), None)
    body = (
        "## Install\n\n"
        "A fresh venv (Python's `venv`, pip and setuptools included: "
        f"{rows[0]['empty_mb']:.0f} MB) per package, `pip install --isolated --no-cache-dir` from the registry "
        "(nothing cached), then one Python process puts landmarks on `examples/grace_hopper.jpg`, offline. "
        "`venv` is the whole venv on disk; the last column is the wall time from the start of `pip install` "
        "to the first landmarks, download included (this machine's network and its 2 shared cores).\n\n"
        + table(rows)
        + "\n\n"
        + (
            f"facepoints' core venv is {core['venv_mb']:.0f} MB against a target of 200 MB: OpenCV "
            "(opencv-python-headless, ~160 MB installed), ONNX Runtime (~80 MB) and numpy (~75 MB) are most of "
            "it, the package with its shipped models ~36 MB; meeting the target would mean replacing OpenCV."
            if core and core.get("venv_mb")
            else ""
        )
    )
    write_section("install", body, "python benchmarks/install.py", data=ROOT / "examples")


if __name__ == "__main__":
    main()

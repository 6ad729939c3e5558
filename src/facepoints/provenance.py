"""Where a figure came from: the machine, the code's git commit and a hash of the data, for BENCHMARKS.md
stamps and MODELS.json records."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from pathlib import Path


def machine() -> str:
    """CPU, cores, OS, Python, torch and ONNX Runtime versions, in one line."""
    # both slow to load; only the offline scripts that write records call this
    import onnxruntime

    try:
        import torch  # the [train] extra: a core install's records say it has none

        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, Python {platform.python_version()}, "
        f"torch {torch_version}, onnxruntime {onnxruntime.__version__}"
    )


def git_commit(root: str | Path) -> str:
    """The checkout's commit (12 hex digits), "+changes" when tracked files differ from it; "unknown" outside git."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if dirty else "")


def data_hash(folder: str | Path) -> str:
    """sha256 (16 hex digits) of every file under `folder`: relative paths and contents, in sorted order."""
    folder = Path(folder)
    if not folder.exists():
        return "missing"
    h = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else [folder]
    for p in files:
        h.update(str(p.relative_to(folder) if folder.is_dir() else p.name).encode() + b"\0")
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]

"""facepoints: 68-point face landmarks that run offline on a plain CPU.

    from facepoints import Landmarker
    result = Landmarker.from_pretrained().detect("photo.jpg")
    result.faces[0].points  # (68, 2) float32 pixel x, y

The public names load on first use (PEP 562), so `import facepoints.config` (the CLI's
`--help`) does not import torch, and each module imports on its own.
"""

from importlib import import_module

from .errors import FacepointsError, UsageError
from .version import __version__

_PUBLIC = {
    "Landmarker": "landmarker",
    "LandmarkerOptions": "config",
    "VideoOptions": "config",
    "LandmarkResult": "results",
    "Face": "results",
    "Pose": "pose",
    "ModelSpec": "model_files",
}
__all__ = [*_PUBLIC, "FacepointsError", "UsageError", "__version__"]


def __getattr__(name: str) -> object:
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'facepoints' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))

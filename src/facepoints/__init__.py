"""facepoints: 68-point face landmarks that run offline on a plain CPU.

    from facepoints import Landmarker
    result = Landmarker.from_pretrained().detect("photo.jpg")
    result.faces[0].points  # (68, 2) float32 pixel x, y
"""

from .errors import FacepointsError
from .landmarker import Landmarker, LandmarkerOptions
from .results import Face, LandmarkResult
from .version import __version__
from .weights import ModelSpec

__all__ = ["Landmarker", "LandmarkerOptions", "LandmarkResult", "Face", "ModelSpec", "FacepointsError", "__version__"]

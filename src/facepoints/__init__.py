"""facepoints: 68-point face landmarks that run offline on a plain CPU.

    from facepoints import Landmarker
    result = Landmarker.from_pretrained().detect("photo.jpg")
    result.faces[0].points  # (68, 2) float32 pixel x, y
"""

from .errors import FacepointsError
from .landmarker import Landmarker, LandmarkerOptions
from .results import Face, LandmarkResult

__version__ = "0.1.0"
__all__ = ["Landmarker", "LandmarkerOptions", "LandmarkResult", "Face", "FacepointsError", "__version__"]

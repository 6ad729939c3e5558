"""One exception type for every user-facing problem, so the CLI can print one line; and third-party noise kept
off the stderr those lines go to."""

import importlib
import os
import sys
import warnings

# a module an optional feature needs -> its name for users (the extra that installs it is the caller's to say)
MODULE_NAMES = {
    "torch": "PyTorch",
    "dlib": "dlib",
    "matplotlib": "matplotlib",
    "onnx": "the onnx package",
    "ray": "Ray",
    "pyarrow": "pyarrow",
}


class FacepointsError(Exception):
    """A problem with the user's input (file, model, option); the message names it."""


class UsageError(FacepointsError, ValueError):
    """a bad option value: exit code 2"""


def require(module: str, what: str, extra: str) -> None:
    """Import `module`, or stop with one line naming the extra that installs it (never an ImportError
    traceback): the core install landmarks; training, export, dlib and Ray are extras."""
    try:
        importlib.import_module(module)
    except ImportError:
        name = MODULE_NAMES.get(module, module)
        raise FacepointsError(f'{what} needs {name}: pip install "facepoints[{extra}]"') from None


def quiet_third_party() -> None:
    """Silence what libraries print beside facepoints' own one-line messages: Pillow's DecompressionBombWarning
    (facepoints refuses such images itself, by name) and OpenCV's `[ WARN]` lines (a camera index that does not
    exist, a video writer on a full disk: each is reported by facepoints in one line). For processes facepoints
    owns (the CLI, batch workers), not for a library user's: their warnings stay theirs."""
    warnings.filterwarnings("ignore", message="Image size .* could be decompression bomb")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # read when cv2 is first imported
    os.environ.setdefault("OPENCV_VIDEOIO_DEBUG", "0")
    if "cv2" in sys.modules:  # already imported: the variable is read only at import, so set it directly
        from cv2.utils import logging as cv2_logging  # only once cv2 is loaded: this module stays stdlib-only

        cv2_logging.setLogLevel(cv2_logging.LOG_LEVEL_ERROR)

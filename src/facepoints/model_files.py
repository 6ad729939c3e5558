"""Model files without PyTorch: what a model says about itself (ModelSpec), the shipped models' index
(weights/MODELS.json) and their checksums, and the spec an exported ONNX graph carries in its metadata.

Standard library only, so landmarking with the shipped ONNX graphs, the detectors' checksums and
`import facepoints` never load torch (weights.py, which reads .pt files, does).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import FacepointsError
from .version import __version__

PACKAGE_WEIGHTS = Path(__file__).parent / "weights"
DEFAULT_MODEL = "fast"
# what the 68 points are and where they sit: the iBUG/300-W markup, pixel-centre coordinates (pixel i has centre i)
LANDMARK_CONVENTION = "ibug-300w-68, pixel centres"
SHIFT_IN_GRAPH = "facepoints.output_shift_in_graph"  # metadata key: "true" when the graph subtracts output_shift
# metadata key of a graph with trust outputs (points, presence, visibility, log_b): the knots that turn log_b into the
# expected point error in crop pixels (metrics.expected_error)
TRUST_CALIBRATION = "facepoints.uncertainty_calibration"
TRUST_OUTPUTS = ("points", "presence", "visibility", "log_b")
TRAIN_EXTRA = 'pip install "facepoints[train]"'


@dataclass(frozen=True)
class OnnxFile:
    path: str
    sha256: str


@dataclass(frozen=True)
class ModelSpec:
    """What a weights file says about its model: how to rebuild it, how to crop for it, how to read its output.

    Crop: the square of `margin` x the longer side of the face's tight landmark box, centred on
    that box, resized to `input_size` px, gray, values in [0, 1] (crop.preprocess).
    Output: (68, 2) crop pixels; subtract `output_shift` (the model's mean error on its own
    training faces, measured when it was saved) to get the calibrated points. A mirrored crop's
    answer is mirrored back about `annotation_offset`, where the model puts points relative to
    what they mark (crop.mirror_points). `path` names the model's weights file (a shipped model's
    .pt, which its shipped ONNX graphs were exported from)."""

    arch: str
    input_size: int
    margin: float
    model_kwargs: dict = field(default_factory=dict, hash=False)
    path: str = ""
    annotation_offset: tuple[float, float] = (0.0, 0.0)
    output_shift: tuple[float, float] = (0.0, 0.0)
    int8_onnx: OnnxFile | None = None  # a shipped int8 graph of the model (raw output: no shift in it)
    train: dict = field(default_factory=dict, hash=False, compare=False)  # the training record: config, epoch, NME
    landmarks: str = LANDMARK_CONVENTION
    onnx: OnnxFile | None = None  # a shipped fp32 graph of the model (calibrated: the shift is in it)

    @property
    def name(self) -> str:
        return Path(self.path).stem

    @property
    def train_config(self) -> dict | None:
        """The TrainConfig (as a dict) of the run that made the weights, when the file records it."""
        return self.train.get("config")

    def onnx_metadata(self, shift_in_graph: bool) -> dict[str, str]:
        """Everything a user of the exported file alone needs to crop for it and read its output."""
        return {
            "facepoints.version": __version__,
            "facepoints.arch": self.arch,
            "facepoints.model_kwargs": json.dumps(self.model_kwargs, sort_keys=True),
            "facepoints.input_size": str(self.input_size),
            "facepoints.margin": repr(float(self.margin)),
            "facepoints.annotation_offset": json.dumps([float(v) for v in self.annotation_offset]),
            "facepoints.output_shift": json.dumps([float(v) for v in self.output_shift]),
            SHIFT_IN_GRAPH: "true" if shift_in_graph else "false",
            "facepoints.landmarks": self.landmarks,
            "facepoints.input": f"crops: batch x 1 x {self.input_size} x {self.input_size} float32, gray in [0, 1]; "
            "the square of margin x the longer side of the tight landmark box, centred on it",
            "facepoints.output": "points: batch x 68 x 2 float32, crop pixels (pixel i has centre i)"
            + (", output_shift already subtracted" if shift_in_graph else ", raw: subtract output_shift"),
        }


def spec_from_onnx_metadata(meta: dict[str, str], path: str | Path) -> ModelSpec:
    """The ModelSpec an exported graph's metadata (ModelSpec.onnx_metadata) describes; one line if it has none."""
    try:
        return ModelSpec(
            arch=meta["facepoints.arch"],
            input_size=int(meta["facepoints.input_size"]),
            margin=float(meta["facepoints.margin"]),
            model_kwargs=json.loads(meta.get("facepoints.model_kwargs", "{}")),
            path=str(path),
            annotation_offset=_pair(json.loads(meta.get("facepoints.annotation_offset", "[0, 0]"))),
            output_shift=_pair(json.loads(meta.get("facepoints.output_shift", "[0, 0]"))),
            landmarks=meta.get("facepoints.landmarks", LANDMARK_CONVENTION),
        )
    except (KeyError, ValueError, TypeError) as e:
        raise FacepointsError(
            f"{path}: not a facepoints ONNX graph (its metadata lacks the model's settings: {e}); "
            "make one with facepoints export"
        ) from None


def shift_in_graph(session: Any) -> bool:
    """Whether an ONNX Runtime session's graph subtracts output_shift itself (a graph without the
    metadata gives raw points)."""
    return session.get_modelmeta().custom_metadata_map.get(SHIFT_IN_GRAPH) == "true"


def shipped_models() -> dict[str, dict]:
    """name -> entry of the package's weights/MODELS.json (file, sha256, how it was made)."""
    index = PACKAGE_WEIGHTS / "MODELS.json"
    return json.loads(index.read_text()) if index.exists() else {}


def shipped_graphs(name: str) -> tuple[OnnxFile | None, OnnxFile | None]:
    """A shipped model's (fp32, int8) ONNX graphs as MODELS.json lists them; None where it ships none."""
    entry = shipped_models().get(name, {})
    fp32, int8 = (entry.get(key) for key in ("onnx", "int8_onnx"))

    def graph(g: dict | None) -> OnnxFile | None:
        return OnnxFile(str(PACKAGE_WEIGHTS / g["file"]), g["sha256"]) if g else None

    return graph(fp32), graph(int8)


def shipped_trust_graphs(name: str) -> tuple[OnnxFile | None, OnnxFile | None]:
    """A shipped model's (fp32, int8) ONNX graphs with trust outputs (points, presence, visibility, log_b), as
    MODELS.json lists them under its "trust" entry; None where it ships none."""
    trust = shipped_models().get(name, {}).get("trust", {})
    return tuple(  # type: ignore[return-value]
        OnnxFile(str(PACKAGE_WEIGHTS / trust[k]["file"]), trust[k]["sha256"]) if k in trust else None
        for k in ("onnx", "int8_onnx")
    )


def _pair(values: Iterable[float]) -> tuple[float, float]:
    x, y = (float(v) for v in values)
    return x, y


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_file(graph: OnnxFile) -> str:
    """A shipped file's path once its sha256 matches the record (a damaged or replaced file is one line)."""
    if not Path(graph.path).exists() or sha256_file(graph.path) != graph.sha256:
        raise FacepointsError(
            f"{graph.path}: missing or checksum mismatch (file damaged or replaced); reinstall facepoints"
        )
    return graph.path


def resolve(name_or_path: str | None) -> tuple[Path, str | None]:
    """A shipped model name or a file path -> (path, expected sha256 or None)."""
    name = name_or_path or DEFAULT_MODEL
    models = shipped_models()
    if name in models:
        return PACKAGE_WEIGHTS / models[name]["file"], models[name]["sha256"]
    path = Path(name)
    if path.suffix in (".pt", ".pth", ".onnx") or path.exists():
        if not path.exists():
            raise FacepointsError(f"{path}: no such weights file")
        return path, None
    valid = ", ".join(models) or "(none shipped in this install)"
    raise FacepointsError(f"unknown model {name!r}; shipped models: {valid}; or give a path to a .pt or .onnx file")

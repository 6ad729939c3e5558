"""Model weight files: save, load with checks, and the pretrained models shipped in the package.

A weights file is a plain dict (loadable with weights_only=True) that names its
architecture and preprocessing, so a file knows how to rebuild its model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .checkpoint import selected_state
from .errors import FacepointsError
from .io_utils import atomic_path
from .models import create_model
from .version import __version__

WEIGHTS_FORMAT = "facepoints-weights/1"
PACKAGE_WEIGHTS = Path(__file__).parent / "weights"
DEFAULT_MODEL = "fast"
# what the 68 points are and where they sit: the iBUG/300-W markup, pixel-centre coordinates (pixel i has centre i)
LANDMARK_CONVENTION = "ibug-300w-68, pixel centres"


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
    what they mark (crop.mirror_points)."""

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
            "facepoints.output_shift_in_graph": "true" if shift_in_graph else "false",
            "facepoints.landmarks": self.landmarks,
            "facepoints.input": f"crops: batch x 1 x {self.input_size} x {self.input_size} float32, gray in [0, 1]; "
            "the square of margin x the longer side of the tight landmark box, centred on it",
            "facepoints.output": "points: batch x 68 x 2 float32, crop pixels (pixel i has centre i)"
            + (", output_shift already subtracted" if shift_in_graph else ", raw: subtract output_shift"),
        }


def save_weights(path: str | Path, model: torch.nn.Module, cfg, meta: dict | None = None) -> None:
    state = {k: v.detach().float().cpu() if v.is_floating_point() else v.cpu() for k, v in model.state_dict().items()}
    payload = {
        "format": WEIGHTS_FORMAT,
        "arch": cfg.arch,
        "model_kwargs": dict(cfg.model_kwargs),
        "input_size": cfg.input_size,
        "margin": cfg.margin,
        "model": state,
        "train": {"config": asdict(cfg), **(meta or {})},
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a Python file: a full disk is an OSError, not a RuntimeError
        torch.save(payload, f)


def shipped_models() -> dict[str, dict]:
    """name -> entry of the package's weights/MODELS.json (file, sha256, how it was made)."""
    index = PACKAGE_WEIGHTS / "MODELS.json"
    return json.loads(index.read_text()) if index.exists() else {}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve(name_or_path: str | None) -> tuple[Path, str | None]:
    """A shipped model name or a file path -> (path, expected sha256 or None)."""
    name = name_or_path or DEFAULT_MODEL
    models = shipped_models()
    if name in models:
        return PACKAGE_WEIGHTS / models[name]["file"], models[name]["sha256"]
    path = Path(name)
    if path.suffix in (".pt", ".pth") or path.exists():
        if not path.exists():
            raise FacepointsError(f"{path}: no such weights file")
        return path, None
    valid = ", ".join(models) or "(none shipped in this install)"
    raise FacepointsError(f"unknown model {name!r}; shipped models: {valid}; or give a path to a .pt file")


# field -> (test, what it must be): a hand-built or damaged file is named with the field at fault
FIELDS = {
    "arch": (lambda v: isinstance(v, str), "an architecture name"),
    "model_kwargs": (
        lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v),
        "a dict of keyword arguments",
    ),
    "input_size": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and 16 <= v <= 1024,
        "an integer crop size (16-1024)",
    ),
    "margin": (
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 1 <= v <= 4,
        "a crop margin (1-4)",
    ),
    "model": (
        lambda v: isinstance(v, dict) and all(isinstance(t, torch.Tensor) for t in v.values()),
        "a dict of tensors",
    ),
}


def _check_fields(payload: dict, path: Path) -> None:
    for name, (ok, what) in FIELDS.items():
        if name not in payload or payload[name] is None:
            raise FacepointsError(f"{path}: malformed weights file (missing field {name!r})")
        if not ok(payload[name]):
            raise FacepointsError(f"{path}: malformed weights file (field {name!r} must be {what})")
    extra = payload.get("train", {})
    if not isinstance(extra, dict) or not all(
        isinstance(extra.get(k, (0.0, 0.0)), (list, tuple)) and len(extra.get(k, (0.0, 0.0))) == 2
        for k in ("annotation_offset", "output_shift")
    ):
        raise FacepointsError(f"{path}: malformed weights file (field 'train' must hold 2-value offsets)")


def load_model(name_or_path: str | None = None) -> tuple[torch.nn.Module, ModelSpec]:
    """Build the model a weights file describes and load it; clear errors for wrong or damaged files."""
    path, sha = resolve(name_or_path)
    if sha is not None and sha256_file(path) != sha:
        raise FacepointsError(f"{path}: checksum mismatch (file damaged or replaced); reinstall facepoints")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise FacepointsError(
            f"{path}: not a readable weights file ({e.__class__.__name__}; truncated or not a torch file?)"
        ) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("format"), str):
        raise FacepointsError(f"{path}: not a facepoints weights file")
    if payload["format"].startswith("facepoints-checkpoint"):
        cfg = payload.get("config")
        if not isinstance(cfg, dict):
            raise FacepointsError(f"{path}: malformed checkpoint (no 'config' dict)")
        state = selected_state(payload)
        payload = {
            **{k: cfg.get(k) for k in ("arch", "model_kwargs", "input_size", "margin")},
            "model": state,
            "train": {"config": cfg},
        }
    elif payload["format"] != WEIGHTS_FORMAT:
        raise FacepointsError(f"{path}: not a facepoints weights file")
    _check_fields(payload, path)
    try:
        model = create_model(payload["arch"], input_size=payload["input_size"], **payload["model_kwargs"])
    except FacepointsError as e:  # unknown architecture
        raise FacepointsError(f"{path}: {e}") from None
    except (TypeError, ValueError) as e:
        raise FacepointsError(f"{path}: model_kwargs do not fit architecture {payload['arch']!r} ({e})") from None
    try:
        model.load_state_dict(payload["model"])
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[-1].strip()[:160]
        raise FacepointsError(f"{path}: weights do not fit architecture {payload['arch']!r} ({first})") from None
    state = model.state_dict()
    bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:  # every point would be NaN, and NaN is not JSON
        raise FacepointsError(f"{path}: weights hold NaN or infinite values (in {bad}); not a usable model")
    model.eval()
    train = payload.get("train", {})
    entry = shipped_models().get(name_or_path or DEFAULT_MODEL, {})
    int8 = None
    if "int8_onnx" in entry and Path(entry["file"]).name == path.name:
        int8 = OnnxFile(str(PACKAGE_WEIGHTS / entry["int8_onnx"]["file"]), entry["int8_onnx"]["sha256"])
    spec = ModelSpec(
        arch=payload["arch"],
        input_size=payload["input_size"],
        margin=payload["margin"],
        model_kwargs=dict(payload["model_kwargs"]),
        path=str(path),
        annotation_offset=tuple(float(v) for v in train.get("annotation_offset", (0.0, 0.0))),
        output_shift=tuple(float(v) for v in train.get("output_shift", (0.0, 0.0))),
        int8_onnx=int8,
        train=dict(train),
    )
    return model, spec

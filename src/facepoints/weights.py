"""PyTorch weight files: save, and load with checks into a model (the torch backend, training, export).

A weights file is a plain dict (loadable with weights_only=True) that names its
architecture and preprocessing, so a file knows how to rebuild its model. What needs no
torch (ModelSpec, the shipped models' index, checksums) is in model_files.py.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from .errors import FacepointsError
from .io_utils import atomic_path
from .model_files import (  # noqa: F401  (re-exported: the torch-free half of reading a model lives there)
    DEFAULT_MODEL,
    LANDMARK_CONVENTION,
    PACKAGE_WEIGHTS,
    ModelSpec,
    OnnxFile,
    resolve,
    sha256_file,
    shipped_graphs,
    shipped_models,
)
from .models import create_model

WEIGHTS_FORMAT = "facepoints-weights/1"


def ema_weights(ema_state: dict) -> dict:
    """An AveragedModel's state dict -> the averaged network's own state dict."""
    return {k.removeprefix("module."): v for k, v in ema_state.items() if k.startswith("module.")}


def selected_state(checkpoint: dict) -> dict:
    """The network weights a checkpoint stands for: the moving average when the run kept one, else the model."""
    ema = checkpoint.get("ema")
    return ema_weights(ema) if isinstance(ema, dict) else checkpoint.get("model")


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
    if path.suffix.lower() == ".onnx":
        raise FacepointsError(f"{path}: an ONNX graph holds no PyTorch weights; give the .pt file it was exported from")
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
    fp32, int8 = shipped_graphs(name_or_path or DEFAULT_MODEL) if sha is not None else (None, None)
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
        onnx=fp32,
    )
    return model, spec

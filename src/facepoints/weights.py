"""Model weight files: save, load with checks, and the pretrained models shipped in the package.

A weights file is a plain dict (loadable with weights_only=True) that names its
architecture and preprocessing, so a file knows how to rebuild its model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import torch

from .errors import FacepointsError
from .io_utils import atomic_path
from .models import create_model

WEIGHTS_FORMAT = "facepoints-weights/1"
PACKAGE_WEIGHTS = Path(__file__).parent / "weights"
DEFAULT_MODEL = "fast"


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
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


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


def load_model(name_or_path: str | None = None) -> tuple[torch.nn.Module, dict]:
    """Build the model a weights file describes and load it; clear errors for wrong or damaged files."""
    path, sha = resolve(name_or_path)
    if sha is not None and sha256_file(path) != sha:
        raise FacepointsError(f"{path}: checksum mismatch (file damaged or replaced); reinstall facepoints")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise FacepointsError(f"{path}: not a readable weights file ({e.__class__.__name__}; truncated or not a torch file?)") from None
    if isinstance(payload, dict) and payload.get("format", "").startswith("facepoints-checkpoint"):
        cfg = payload["config"]
        state = payload["model"]
        if "ema" in payload:  # a run with --ema selects, and ships, the moving average
            state = {k.removeprefix("module."): v for k, v in payload["ema"].items() if k.startswith("module.")}
        payload = {"arch": cfg["arch"], "model_kwargs": cfg["model_kwargs"], "input_size": cfg["input_size"],
                   "margin": cfg["margin"], "model": state, "train": {"config": cfg}}
    elif not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise FacepointsError(f"{path}: not a facepoints weights file")
    model = create_model(payload["arch"], input_size=payload["input_size"], **payload["model_kwargs"])
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1].strip()[:160]
        raise FacepointsError(f"{path}: weights do not fit architecture {payload['arch']!r} ({first})") from None
    model.eval()
    meta = {k: payload[k] for k in ("arch", "model_kwargs", "input_size", "margin")}
    meta["path"] = str(path)
    # where the model puts points relative to what they mark (crop px): 300-W's 1-based convention, learned
    meta["annotation_offset"] = tuple(payload.get("train", {}).get("annotation_offset", (0.0, 0.0)))
    # the mean error on its own training faces (crop px), measured when it was shipped; the predictor removes it
    meta["output_shift"] = tuple(payload.get("train", {}).get("output_shift", (0.0, 0.0)))
    entry = shipped_models().get(name_or_path or DEFAULT_MODEL, {})
    if "int8_onnx" in entry and Path(entry["file"]).name == path.name:
        meta["int8_onnx"] = {"path": str(PACKAGE_WEIGHTS / entry["int8_onnx"]["file"]), "sha256": entry["int8_onnx"]["sha256"]}
    return model, meta

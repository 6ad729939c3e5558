"""A training run on disk: the checkpoint format, save/load, the weights a checkpoint selects, and the run's split.

A checkpoint (`last.pt`, `best.pt`) is a plain dict, loadable with weights_only=True: the
run's TrainConfig as a dict, the epoch, model and optimizer state, the history and, with
`ema`, the moving average (`selected_state` unwraps it: a run with --ema selects, and ships,
the average). `RunSplit.from_config(cfg)` rebuilds which faces a run trained on and which it
held out, for `train` and for every benchmark that must not score a model on its own faces.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .annotations import Sample, read_dataset
from .config import TrainConfig, config_from_dict
from .errors import FacepointsError
from .io_utils import atomic_path
from .training_data import LandmarkDataset, build_cache
from .weights import ema_weights, selected_state  # noqa: F401  (re-exported: weights.py reads checkpoints too)

CHECKPOINT_FORMAT = "facepoints-checkpoint/1"


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Atomically; through a Python file, so a full disk is an OSError (one line), not torch's RuntimeError."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(state, f)


def load_payload(path: str | Path, fmt: str, kind: str) -> dict:
    """A facepoints torch file (weights_only) whose "format" is `fmt`; one line naming the file otherwise."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FacepointsError(f"{path}: no such {kind}") from None
    except Exception as e:
        raise FacepointsError(f"{path}: not a readable {kind} ({e.__class__.__name__})") from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise FacepointsError(f"{path}: not a facepoints {kind}")
    return state


def load_checkpoint(path: str | Path) -> dict:
    return load_payload(path, CHECKPOINT_FORMAT, "training checkpoint")


def saved_run(out: str | Path) -> tuple[dict | None, dict]:
    """What `--resume` continues: the newest complete checkpoint (`best.pt` is written before `last.pt`,
    so after a kill between the two it is the newer one) and the run's settings. A run killed before
    its first checkpoint has only config.json, and starts again from it."""
    out = Path(out)
    found = [load_checkpoint(p) for p in (out / "last.pt", out / "best.pt") if p.exists()]
    if found:
        state = max(found, key=lambda st: st["epoch"])
        return state, state["config"]
    if (out / "config.json").is_file():
        try:
            return None, json.loads((out / "config.json").read_text())
        except (OSError, ValueError):
            raise FacepointsError(f"{out / 'config.json'}: not readable; nothing to resume") from None
    raise FacepointsError(f"{out / 'last.pt'}: nothing to resume (no checkpoint in {out})")


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices of the training faces and of the held-out faces: a seeded permutation."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * val_fraction))) if n > 1 and val_fraction > 0 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


@dataclass
class RunSplit:
    """A run's faces, split as its training split them: `train_idx` trained, `val_idx` held out."""

    config: TrainConfig
    samples: list[Sample]
    train_idx: np.ndarray
    val_idx: np.ndarray
    _cache: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, cfg: TrainConfig | dict, data: str | Path | None = None) -> "RunSplit":
        """`cfg`: the run's TrainConfig or its saved dict; `data`: where its data folder is now, if not at cfg.data."""
        cfg = config_from_dict(cfg) if isinstance(cfg, dict) else cfg
        samples = read_dataset(str(data or cfg.data))
        return cls(cfg, samples, *split_indices(len(samples), cfg.val_fraction, cfg.seed))

    @property
    def held_out(self) -> bool:
        return len(self.val_idx) > 0

    def cache(self) -> tuple[np.ndarray, np.ndarray]:
        """The cached source crops of every face and their points (dataset.build_cache, at the run's cache side)."""
        if self._cache is None:
            self._cache = build_cache(self.samples, side=self.config.cache_side)
        return self._cache

    def crops(self, idx: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """Un-augmented model inputs (N, 1, S, S) and crop-pixel targets (N, 68, 2) of faces `idx`."""
        cfg = self.config
        images, points = self.cache()
        ds = LandmarkDataset(images[idx], points[idx], cfg.input_size, cfg.margin, None)
        if len(ds) == 0:  # a run trained on every face holds nothing out
            return torch.zeros(0, 1, cfg.input_size, cfg.input_size), np.zeros((0, 68, 2), np.float32)
        return torch.stack([ds[i][0] for i in range(len(ds))]), np.stack([ds[i][1].numpy() for i in range(len(ds))])

    def train_crops(self) -> tuple[torch.Tensor, np.ndarray]:
        return self.crops(self.train_idx)

    def val_crops(self) -> tuple[torch.Tensor, np.ndarray]:
        return self.crops(self.val_idx)

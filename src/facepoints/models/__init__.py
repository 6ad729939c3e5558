"""Landmark networks, by name. Each model maps a (B, 1, S, S) crop in [0, 1] to raw outputs and
offers `loss(out, target_pixels)` and `decode(out) -> (B, 68, 2)` crop pixel coordinates."""

import numpy as np
import torch
import torch.nn as nn

from ..errors import FacepointsError
from .pipnet import PIPNet, pipnet_accurate, pipnet_fast, pipnet_fast_detail, pipnet_fast_wide, pipnet_small
from .xception import Xception, xception

MODELS = {
    "xception": xception,
    "pipnet_small": pipnet_small,
    "pipnet_fast": pipnet_fast,
    "pipnet_fast_wide": pipnet_fast_wide,
    "pipnet_fast_detail": pipnet_fast_detail,
    "pipnet_accurate": pipnet_accurate,
}


def create_model(arch: str, **kwargs) -> nn.Module:
    if arch not in MODELS:
        raise FacepointsError(f"unknown architecture {arch!r}; choose from {', '.join(MODELS)}")
    return MODELS[arch](**kwargs)


@torch.no_grad()
def predict_batches(
    model: nn.Module, loader, device: torch.device, bf16: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Decoded points (N, 68, 2) of every (crops, targets) batch, and the targets; the model in eval mode."""
    model.eval()
    preds, targets = [], []
    for x, y in loader:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(x.to(device).contiguous(memory_format=torch.channels_last))
        preds.append(model.decode(out).cpu().numpy())
        targets.append(y.numpy())
    return np.concatenate(preds), np.concatenate(targets)


__all__ = [
    "MODELS",
    "create_model",
    "predict_batches",
    "xception",
    "pipnet_small",
    "pipnet_fast",
    "pipnet_fast_wide",
    "pipnet_fast_detail",
    "pipnet_accurate",
    "Xception",
    "PIPNet",
]

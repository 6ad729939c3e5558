"""Landmark networks, by name. Each model maps a (B, 1, S, S) crop in [0, 1] to raw outputs and
offers `loss(out, target_pixels)` and `decode(out) -> (B, 68, 2)` crop pixel coordinates."""

import torch.nn as nn

from .pipnet import PIPNetSmall, pipnet_fast, pipnet_fast_detail, pipnet_fast_wide, pipnet_small
from .xception import Xception, xception

MODELS = {"xception": xception, "pipnet_small": pipnet_small, "pipnet_fast": pipnet_fast, "pipnet_fast_wide": pipnet_fast_wide, "pipnet_fast_detail": pipnet_fast_detail}


def create_model(arch: str, **kwargs) -> nn.Module:
    from ..errors import FacepointsError

    if arch not in MODELS:
        raise FacepointsError(f"unknown architecture {arch!r}; choose from {', '.join(MODELS)}")
    return MODELS[arch](**kwargs)


__all__ = ["MODELS", "create_model", "xception", "pipnet_small", "pipnet_fast", "pipnet_fast_wide", "pipnet_fast_detail", "Xception", "PIPNetSmall"]

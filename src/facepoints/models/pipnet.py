"""A small CPU-first landmark net with a PIPNet-style head (Jin et al., "Pixel-in-Pixel Net", 2021).

A MobileNetV2-style backbone (inverted residuals) on a 1x128x128 crop, a light top-down
fusion to a 16x16 grid (stride 8), and per landmark one score map plus x/y offsets.
Each landmark lives in one grid cell: the score map says which cell, the offsets say
where inside it. Offsets are trained on the 3x3 cells around the true one, so a
neighbouring argmax still points at the right place. Decoding is argmax + offset and
exports to ONNX as-is.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["PIPNet", "pipnet_small", "pipnet_fast", "pipnet_fast_wide", "pipnet_fast_detail", "pipnet_accurate"]


def conv_bn(in_chs: int, out_chs: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(in_chs, out_chs, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(out_chs)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if act else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, expand: int = 4):
        super().__init__()
        mid = in_chs * expand
        self.conv = nn.Sequential(
            conv_bn(in_chs, mid) if expand != 1 else nn.Identity(),
            conv_bn(mid, mid, 3, stride, groups=mid),
            conv_bn(mid, out_chs, act=False),
        )
        self.use_residual = stride == 1 and in_chs == out_chs

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)


def _stage(in_chs: int, out_chs: int, depth: int, stride: int, expand: int) -> nn.Sequential:
    blocks = [InvertedResidual(in_chs, out_chs, stride, expand)]
    blocks += [InvertedResidual(out_chs, out_chs, 1, expand) for _ in range(depth - 1)]
    return nn.Sequential(*blocks)


class PIPNet(nn.Module):
    """The one PIPNet-style network; `pipnet_small`, `pipnet_fast`, `pipnet_fast_wide` and `pipnet_fast_detail`
    below are its named configurations (widths, depths, expansion, head options)."""

    def __init__(
        self,
        num_points: int = 68,
        input_size: int = 128,
        widths: tuple[int, ...] = (16, 24, 48, 96),
        depths: tuple[int, ...] = (1, 2, 3, 3),
        expand: int | tuple[int, ...] = 4,  # per stage 2..4 when a tuple
        head_chs: int = 64,
        sigma: float = 1.0,
        reg_weight: float = 1.0,
        temperature: float = 0.5,
        fused: bool = False,
        fine: bool = False,
        coord_weight: float = 0.0,
        stride: int = 8,
    ):
        super().__init__()
        self.num_points, self.input_size = num_points, input_size
        self.sigma, self.reg_weight, self.temperature, self.coord_weight = sigma, reg_weight, temperature, coord_weight
        if stride not in (4, 8):
            raise ValueError(f"stride must be 4 or 8, not {stride}")
        self.stride = stride  # 4: a 32x32 grid at 128 px, finer cells so the offsets have less to say
        self.grid = input_size // self.stride
        w = widths
        e2, e3, e4 = expand if isinstance(expand, (tuple, list)) else (expand,) * 3
        self.stem = conv_bn(1, w[0], 3, 2)  # /2
        if fused:  # one dense 3x3 conv does the /4 step: on CPU it beats expanding at 64x64
            self.stage1 = nn.Identity()
            self.stage2 = (
                nn.Sequential(conv_bn(w[0], w[1], 3, 2), *_stage(w[1], w[1], depths[1], 1, e2))
                if depths[1]
                else conv_bn(w[0], w[1], 3, 2)
            )
        else:
            self.stage1 = _stage(w[0], w[0], depths[0], 1, 1)  # /2
            self.stage2 = _stage(w[0], w[1], depths[1], 2, e2)  # /4
        self.stage3 = _stage(w[1], w[2], depths[2], 2, e3)  # /8
        self.stage4 = _stage(w[2], w[3], depths[3], 2, e4)  # /16: whole-face context
        self.lateral = conv_bn(w[2], head_chs)
        self.top = conv_bn(w[3], head_chs)
        # stride-4 detail for the offsets: stage 2 brought onto the 16x16 grid by a strided depthwise conv
        self.detail = nn.Sequential(conv_bn(w[1], w[1], 3, 2, groups=w[1]), conv_bn(w[1], head_chs)) if fine else None
        # stride 4: stage 2 joins the fused map after it is brought up to 32x32 (an FPN step)
        self.lateral4 = conv_bn(w[1], head_chs) if stride == 4 else None
        self.fuse = nn.Sequential(conv_bn(head_chs, head_chs, 3, groups=head_chs), conv_bn(head_chs, head_chs))
        self.head = nn.Conv2d(head_chs, num_points * 3, 1)

    def forward_features(self, x):
        return self.forward_features_detail(x)[0]

    def forward_features_detail(self, x):
        """The fused map and the stride-4 stage-2 map it was built from (what models/trust.py reads at the points)."""
        c2 = self.stage2(self.stage1(self.stem(x)))
        c3 = self.stage3(c2)
        c4 = self.stage4(c3)
        y = self.lateral(c3) + F.interpolate(self.top(c4), scale_factor=2.0, mode="nearest")
        if self.detail is not None:
            y = y + self.detail(c2)
        if self.lateral4 is not None:
            y = self.lateral4(c2) + F.interpolate(y, scale_factor=2.0, mode="nearest")
        return self.fuse(y), c2

    def forward_head(self, x):
        return self.head(x)

    def forward(self, x):
        """(B, 3*68, G, G): 68 score maps, then 68 x-offsets, then 68 y-offsets (cell units)."""
        return self.forward_head(self.forward_features(x))

    def _split(self, out):
        b, n = out.shape[0], self.num_points
        out = out.float().view(b, 3, n, self.grid * self.grid)
        return out[:, 0], out[:, 1], out[:, 2]

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over grid cells (Gaussian soft target) + L1 offsets on the 3x3 cells around the true one."""
        score, ox, oy = self._split(out)
        g = self.grid
        cell = (target.float() + 0.5) / self.stride  # continuous grid coordinates
        centres = torch.arange(g, device=out.device, dtype=torch.float32) + 0.5
        cy, cx = cell[..., 1, None, None], cell[..., 0, None, None]
        d2 = (centres.view(1, 1, g, 1) - cy) ** 2 + (centres.view(1, 1, 1, g) - cx) ** 2  # (B, N, row, col)
        soft = torch.softmax(-d2.flatten(2) / (2 * self.sigma**2), dim=-1)
        cls_loss = -(soft * torch.log_softmax(score, dim=-1)).sum(-1).mean()
        idx = cell.floor().clamp(0, g - 1)
        reg_loss = 0.0
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                cx, cy = idx[..., 0] + dx, idx[..., 1] + dy
                valid = ((cx >= 0) & (cx < g) & (cy >= 0) & (cy < g)).float()
                k = (cy.clamp(0, g - 1) * g + cx.clamp(0, g - 1)).long().unsqueeze(-1)
                px, py = ox.gather(2, k).squeeze(-1), oy.gather(2, k).squeeze(-1)
                err = (px - (cell[..., 0] - cx - 0.5)).abs() + (py - (cell[..., 1] - cy - 0.5)).abs()
                weight = 1.0 if dx == 0 and dy == 0 else 0.25
                reg_loss = reg_loss + weight * (err * valid).sum() / valid.sum().clamp(min=1)
        loss = cls_loss + self.reg_weight * reg_loss
        if self.coord_weight:  # L1 on the decoded points (cell units), where the argmax is next to the true cell
            pred = (self.decode(out) + 0.5) / self.stride
            near = ((pred - cell).abs().amax(-1) < 1.5).float()
            loss = loss + self.coord_weight * ((pred - cell).abs().sum(-1) * near).sum() / near.sum().clamp(min=1)
        return loss

    def decode(self, out: torch.Tensor) -> torch.Tensor:
        """Argmax cell, refined by its 3x3 neighbours -> (B, 68, 2) crop pixel coordinates.

        Each of the 3x3 cells around the argmax was trained to point at the landmark, so
        their estimates are averaged, weighted by softmax(score / temperature) in the window.
        One padded gather for all nine cells keeps the exported graph small (it is ~15% of
        the inference time when written as a loop).
        """
        g, n = self.grid, self.num_points
        maps = out.float().view(out.shape[0], 3, n, g, g)
        k = maps[:, 0].flatten(2).argmax(dim=2, keepdim=True)  # (B, N, 1)
        row, col = torch.div(k, g, rounding_mode="floor"), k % g
        padded = F.pad(maps, (1, 1, 1, 1), value=0.0).flatten(3)  # (B, 3, N, (g+2)^2), border cells padded
        dy = torch.tensor([-1, -1, -1, 0, 0, 0, 1, 1, 1], device=out.device)
        dx = torch.tensor([-1, 0, 1, -1, 0, 1, -1, 0, 1], device=out.device)
        r, c = row + dy, col + dx  # (B, N, 9) neighbour cells
        idx = ((r + 1) * (g + 2) + (c + 1)).unsqueeze(1).expand(-1, 3, -1, -1)
        score, ox, oy = padded.gather(3, idx).unbind(1)
        inside = (r >= 0) & (r < g) & (c >= 0) & (c < g)
        w = torch.softmax(score / self.temperature + (~inside).float() * -1e4, dim=2)
        x = ((c.float() + 0.5 + ox) * w).sum(2)
        y = ((r.float() + 0.5 + oy) * w).sum(2)
        return torch.stack([x, y], dim=2) * self.stride - 0.5


def pipnet_small(**kwargs) -> PIPNet:
    return PIPNet(**kwargs)


def pipnet_fast(**kwargs) -> PIPNet:
    """The shipped default: no 64x64 inverted residuals (a dense /4 conv instead) and a deeper,
    wider 8x8 stage, where parameters are cheapest per multiply-add. 350K params, 36M MACs."""
    cfg = dict(fused=True, widths=(16, 24, 48, 128), depths=(0, 0, 2, 5), expand=(4, 3, 2))
    return PIPNet(**{**cfg, **kwargs})


def pipnet_fast_wide(**kwargs) -> PIPNet:
    """pipnet_fast with a 160-wide 8x8 stage, the cheapest capacity on a CPU (506K params, 46M MACs).
    It did not lower the held-out NME (docs/experiments.md, run `wide`); kept so that ablation reruns."""
    return pipnet_fast(**{"widths": (16, 24, 48, 160), **kwargs})


def pipnet_fast_detail(**kwargs) -> PIPNet:
    """pipnet_fast plus stride-4 detail in the head (for the offsets, which limit the NME) and an
    L1 loss on the decoded points, so training optimises what inference returns."""
    return pipnet_fast(**{"fine": True, "coord_weight": 1.0, **kwargs})


def pipnet_accurate(**kwargs) -> PIPNet:
    """The `accurate` model: a wider, deeper trunk than pipnet_fast and a stride-4 head (32x32 grid),
    because the offsets' precision, not the choice of cell, bounds `fast` (docs/experiments.md, decoding
    ablation). 1.3M params; ~4 ms per face on one thread, inside the 8 ms budget, and trainable at
    ~50 images/s on 2 cores, which is what bounds it (docs/experiments.md, candidates for accurate)."""
    cfg = dict(fused=True, widths=(16, 32, 64, 160), depths=(0, 1, 3, 6), expand=4, head_chs=96, stride=4)
    return PIPNet(**{**cfg, **kwargs})

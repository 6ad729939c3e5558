"""How far to trust a PIPNet's answer: per face a presence logit, per point a visibility logit and
the log of a Laplace scale, from a small head on the network's own fused features and score maps.

Everything is read at the point's predicted place, with the same 3x3 window and softmax weights as
`PIPNet.decode`, so the head adds one gather to the trunk, not a feature map per point:
- the fused feature vector there (64 channels), the softmax-weighted mean over the window;
- finer detail at the point itself: the stride-4 stage-2 map (24 channels, bilinear) and the input's gray
  values on a 3x3 grid around it (occluder edges are finer than a stride-8 cell);
- score-map statistics, the strong uncertainty cues: log peak probability, entropy, spatial spread of
  the whole map's softmax, the mass of the window, how far the nine cells' votes disagree, how far the
  decoded point is from the map's mean, and the peak logit;
- the face's context: mean- and max-pooled features and the mean statistics over the 68 points.
A shared MLP (with a bias per point, and one layer where each point hears the other 67: a hand hides
several) maps these to (visibility logit, log b); another small MLP maps the pooled context to the presence
logit. About 0.5M multiply-adds, under 2% of `fast`'s 36M.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["TrustHead", "GridTrustHead", "TrustOutputs", "NUM_STATS", "decode_with_stats", "decode_with_trust"]

NUM_STATS = 7
# crop-px offsets at which the input's gray values around each point are read (a 3x3 grid, 3 px apart)
PATCH = tuple((dx, dy) for dy in (-3.0, 0.0, 3.0) for dx in (-3.0, 0.0, 3.0))


def decode_with_stats(model, out: torch.Tensor):
    """`model.decode(out)` (the same points, bit for bit in fp32) plus what the trust head reads.

    Returns points (B, N, 2) crop px, stats (B, N, NUM_STATS), and for the feature gather the window
    cells' flat indices into the (g+2)^2 padded grid (B, N, 9) and their decode weights (B, N, 9)."""
    g, n = model.grid, model.num_points
    b = out.shape[0]
    maps = out.float().view(b, 3, n, g, g)
    scores = maps[:, 0].flatten(2)  # (B, N, g*g)
    k = scores.argmax(dim=2, keepdim=True)
    row, col = torch.div(k, g, rounding_mode="floor"), k % g
    padded = F.pad(maps, (1, 1, 1, 1), value=0.0).flatten(3)
    dy = torch.tensor([-1, -1, -1, 0, 0, 0, 1, 1, 1], device=out.device)
    dx = torch.tensor([-1, 0, 1, -1, 0, 1, -1, 0, 1], device=out.device)
    r, c = row + dy, col + dx
    flat = (r + 1) * (g + 2) + (c + 1)  # (B, N, 9)
    score, ox, oy = padded.gather(3, flat.unsqueeze(1).expand(-1, 3, -1, -1)).unbind(1)
    inside = (r >= 0) & (r < g) & (c >= 0) & (c < g)
    w = torch.softmax(score / model.temperature + (~inside).float() * -1e4, dim=2)
    vx, vy = c.float() + 0.5 + ox, r.float() + 0.5 + oy  # each window cell's vote, cells
    x, y = (vx * w).sum(2), (vy * w).sum(2)
    points = torch.stack([x, y], dim=2) * model.stride - 0.5

    lse = torch.logsumexp(scores, dim=2, keepdim=True)
    logp = scores - lse
    p = logp.exp()
    peak = scores.gather(2, k)  # (B, N, 1)
    log_peak = peak - lse
    entropy = -(p * logp).sum(2, keepdim=True) / math.log(g * g)
    centres = torch.arange(g, device=out.device, dtype=torch.float32) + 0.5
    pm = p.view(b, n, g, g)
    px, py = pm.sum(2), pm.sum(3)  # marginals over columns (x) and rows (y)
    mx, my = (px * centres).sum(2, keepdim=True), (py * centres).sum(2, keepdim=True)
    var = (px * centres**2).sum(2, keepdim=True) - mx**2 + (py * centres**2).sum(2, keepdim=True) - my**2
    spread = torch.log(var.clamp(min=0).sqrt() + 0.1)
    mass = torch.logsumexp(score + (~inside).float() * -1e4, dim=2, keepdim=True) - lse
    disagree = torch.log(
        (w * ((vx - x.unsqueeze(2)) ** 2 + (vy - y.unsqueeze(2)) ** 2)).sum(2, keepdim=True).sqrt() + 0.05
    )
    off_mean = torch.log(((x.unsqueeze(2) - mx) ** 2 + (y.unsqueeze(2) - my) ** 2).sqrt() + 0.1)
    stats = torch.cat([log_peak, entropy, spread, mass, disagree, off_mean, peak / 10], dim=2)
    return points, stats, flat, w


class TrustHead(nn.Module):
    """(fused features (B, C, g, g), head output (B, 3N, g, g)) of a PIPNet -> trust logits; see the module doc."""

    def __init__(
        self, channels: int = 64, num_points: int = 68, hidden: int = 48, ctx: int = 32, detail_channels: int = 24
    ):
        super().__init__()
        self.channels, self.num_points, self.hidden, self.ctx = channels, num_points, hidden, ctx
        self.detail_channels = detail_channels
        # statistics are standardised by constants measured on training crops (fit_normaliser) before training
        self.register_buffer("stat_mean", torch.zeros(NUM_STATS))
        self.register_buffer("stat_std", torch.ones(NUM_STATS))
        self.context = nn.Sequential(nn.Linear(2 * channels + NUM_STATS, ctx), nn.ReLU(inplace=True))
        self.presence = nn.Linear(ctx, 1)
        self.point_in = nn.Linear(channels + detail_channels + len(PATCH) + NUM_STATS, hidden)
        self.point_ctx = nn.Linear(ctx, hidden, bias=False)
        self.point_bias = nn.Parameter(torch.zeros(num_points, hidden))
        self.mix = nn.Parameter(torch.zeros(num_points, num_points))  # each point hears the others (a hand hides many)
        self.point_out = nn.Linear(hidden, 2)
        self.out_bias = nn.Parameter(torch.zeros(num_points, 2))

    def kwargs(self) -> dict:
        return {
            "channels": self.channels,
            "num_points": self.num_points,
            "hidden": self.hidden,
            "ctx": self.ctx,
            "detail_channels": self.detail_channels,
        }

    @torch.no_grad()
    def fit_normaliser(self, stats: torch.Tensor) -> None:
        s = stats.reshape(-1, NUM_STATS).float()
        self.stat_mean.copy_(s.mean(0))
        self.stat_std.copy_(s.std(0).clamp(min=1e-3))

    def forward(self, features, detail, x, points, stats, flat, w):
        """fused map (B, C, g, g), stage-2 map (B, D, 2g, 2g), input crop (B, 1, S, S), decoded points (B, N, 2)
        crop px and decode_with_stats' rest -> presence logit (B,), visibility logit (B, N), log Laplace b (B, N)."""
        b, ch = features.shape[:2]
        n = flat.shape[1]
        z = (stats - self.stat_mean) / self.stat_std
        fpad = F.pad(features.float(), (1, 1, 1, 1)).flatten(2)  # (B, C, (g+2)^2)
        local = fpad.gather(2, flat.reshape(b, 1, n * 9).expand(-1, ch, -1)).view(b, ch, n, 9)
        local = (local * w.unsqueeze(1)).sum(3).transpose(1, 2)  # (B, N, C)
        size = x.shape[-1]
        grid = ((points + 0.5) / size * 2 - 1).unsqueeze(2)  # (B, N, 1, 2), align_corners=False
        fine = F.grid_sample(detail.float(), grid, align_corners=False).squeeze(3).transpose(1, 2)  # (B, N, D)
        offsets = torch.tensor(PATCH, dtype=torch.float32, device=x.device) / size * 2  # (P, 2)
        patch = F.grid_sample(x.float(), grid + offsets.view(1, 1, -1, 2), align_corners=False, padding_mode="border")
        patch = patch.squeeze(1)  # (B, N, P) gray values around the point
        patch = patch - patch.mean(2, keepdim=True)
        pooled = torch.cat([features.float().mean((2, 3)), features.float().amax((2, 3)), z.mean(1)], dim=1)
        ctx = self.context(pooled)  # (B, ctx)
        h = self.point_in(torch.cat([local, fine, 4 * patch, z], dim=2)) + self.point_ctx(ctx).unsqueeze(1)
        h = F.relu(h + self.point_bias)
        h = F.relu(h + torch.einsum("pq,bqh->bph", self.mix, h))
        o = self.point_out(h) + self.out_bias  # (B, N, 2)
        return self.presence(ctx).squeeze(1), o[..., 0], o[..., 1] + 1.0  # log b starts near e px


def decode_with_trust(model, out: torch.Tensor, mass: bool = False):
    """`model.decode(out)` (the same points, bit for bit in fp32: the same ops on the same values) plus what a
    GridTrustHead reads: the argmax cells' flat indices (B, N) and score-map statistics (B, S, N): the log peak
    probability of each map (peak logit minus the map's logsumexp, written as log-sum of exp(scores - peak),
    cheaper in ONNX Runtime) and, with `mass`, the log of the decode window's probability mass."""
    g, n = model.grid, model.num_points
    maps = out.float().view(-1, 3, n, g, g)
    scores = maps[:, 0].flatten(2)  # (B, N, g*g)
    k = scores.argmax(dim=2, keepdim=True)
    row, col = torch.div(k, g, rounding_mode="floor"), k % g
    padded = F.pad(maps, (1, 1, 1, 1), value=0.0).flatten(3)
    dy = torch.tensor([-1, -1, -1, 0, 0, 0, 1, 1, 1], device=out.device)
    dx = torch.tensor([-1, 0, 1, -1, 0, 1, -1, 0, 1], device=out.device)
    r, c = row + dy, col + dx
    idx = ((r + 1) * (g + 2) + (c + 1)).unsqueeze(1).expand(-1, 3, -1, -1)
    score, ox, oy = padded.gather(3, idx).unbind(1)
    inside = (r >= 0) & (r < g) & (c >= 0) & (c < g)
    w = torch.softmax(score / model.temperature + (~inside).float() * -1e4, dim=2)
    x = ((c.float() + 0.5 + ox) * w).sum(2)
    y = ((r.float() + 0.5 + oy) * w).sum(2)
    points = torch.stack([x, y], dim=2) * model.stride - 0.5
    peak = score[..., 4:5]  # the window's centre is the argmax
    log_total = torch.log(torch.exp(scores - peak).sum(2))
    stats = [-log_total]
    if mass:
        stats.append(torch.log((torch.exp(score - peak) * inside.float()).sum(2)) - log_total)
    return points, k.squeeze(2), torch.stack(stats, 1)


class GridTrustHead(nn.Module):
    """The lean trust head (issue 23, phase 2), built for few ONNX nodes (what costs at batch 1) and few
    multiply-adds: the fused feature vector at each point's argmax cell (one gather) and the point's score-map
    statistics go through a shared 1x1 layer with a learnt embedding per point, ReLU, and a shared 1x1 readout
    to (visibility logit, log Laplace b); presence is a small MLP on the fused map's mean and max pools and the
    hidden units' mean over the points. ~0.15M multiply-adds.

    Options, each a few more graph nodes: `mass` (the window's probability mass as a second statistic),
    `detail_channels` (the stride-4 stage-2 map read bilinearly at the point), `patch` (the input's gray values on
    a 3x3 grid 3 px apart around the point, mean removed), `mix` (one layer where each point hears the others)."""

    def __init__(
        self,
        channels: int = 64,
        num_points: int = 68,
        hidden: int = 32,
        ctx: int = 32,
        mass: bool = False,
        detail_channels: int = 0,
        patch: bool = False,
        mix: bool = False,
    ):
        super().__init__()
        self.channels, self.num_points, self.hidden, self.ctx = channels, num_points, hidden, ctx
        self.mass, self.detail_channels, self.patch, self.use_mix = mass, detail_channels, patch, mix
        self.point_in = nn.Conv1d(channels + 1 + int(mass) + detail_channels + 9 * int(patch), hidden, 1)
        self.point_embed = nn.Parameter(torch.zeros(hidden, num_points))  # which point this is
        self.mix = nn.Parameter(torch.zeros(num_points, num_points)) if mix else None
        self.point_out = nn.Conv1d(hidden, 2, 1)
        with torch.no_grad():
            self.point_out.bias.copy_(torch.tensor([0.0, 1.0]))  # log b starts near e px
        self.context = nn.Sequential(nn.Linear(2 * channels + hidden, ctx), nn.ReLU(inplace=True), nn.Linear(ctx, 1))
        self.register_buffer("offsets", torch.tensor(PATCH, dtype=torch.float32).view(1, 1, -1, 2), persistent=False)

    @property
    def needs_detail(self) -> bool:
        return self.detail_channels > 0 or self.patch

    def kwargs(self) -> dict:
        return {
            "channels": self.channels,
            "num_points": self.num_points,
            "hidden": self.hidden,
            "ctx": self.ctx,
            "mass": self.mass,
            "detail_channels": self.detail_channels,
            "patch": self.patch,
            "mix": self.use_mix,
        }

    def forward(self, features, k, stats, detail=None, x=None, points=None):
        """fused map (B, C, g, g), argmax cells (B, N), statistics (B, S, N) (decode_with_trust); with the options,
        the stage-2 map (B, D, 2g, 2g), the input crop (B, 1, s, s) and the decoded points (B, N, 2) crop px ->
        presence logit (B,), visibility logit (B, N), log b (B, N)."""
        flat = features.float().flatten(2)  # (B, C, g*g)
        parts = [flat.gather(2, k.unsqueeze(1).expand(-1, self.channels, -1)), stats]  # (B, C, N), (B, S, N)
        if self.needs_detail:
            assert detail is not None and x is not None and points is not None
            size = x.shape[-1]
            grid = ((points + 0.5) * (2.0 / size) - 1).unsqueeze(2)  # (B, N, 1, 2), align_corners=False
            if self.detail_channels:
                parts.append(F.grid_sample(detail.float(), grid, align_corners=False).squeeze(3))  # (B, D, N)
            if self.patch:
                pix = F.grid_sample(
                    x.float(), grid + self.offsets * (2.0 / size), align_corners=False, padding_mode="border"
                ).squeeze(1)  # (B, N, 9)
                parts.append(4 * (pix - pix.mean(2, keepdim=True)).transpose(1, 2))
        h = F.relu(self.point_in(torch.cat(parts, 1)) + self.point_embed)  # (B, H, N)
        if self.mix is not None:
            h = F.relu(h + torch.matmul(h, self.mix))
        o = self.point_out(h)  # (B, 2, N)
        pooled = torch.cat([features.float().mean((2, 3)), features.float().amax((2, 3)), h.mean(2)], 1)
        return self.context(pooled).squeeze(1), o[:, 0], o[:, 1]


def grid_head_inputs(model, head: GridTrustHead, x: torch.Tensor):
    """Trunk -> (points, the head's inputs in its forward's order)."""
    if head.needs_detail:
        feats, detail = model.forward_features_detail(x)
    else:
        feats, detail = model.forward_features(x), None
    points, k, stats = decode_with_trust(model, model.forward_head(feats), head.mass)
    return points, (feats, k, stats, detail, x, points)


class TrustOutputs(nn.Module):
    """A PIPNet and its trust head (TrustHead or GridTrustHead) as one module: crop (B, 1, S, S) -> points (raw
    decode, crop px), presence logit, visibility logit, log b. The trunk's own points are unchanged."""

    def __init__(self, model, head):
        super().__init__()
        self.model, self.head = model, head

    def forward(self, x):
        if isinstance(self.head, GridTrustHead):
            points, inputs = grid_head_inputs(self.model, self.head, x)
            presence, vis, log_b = self.head(*inputs)
            return points, presence, vis, log_b
        feats, detail = self.model.forward_features_detail(x)
        out = self.model.forward_head(feats)
        points, stats, flat, w = decode_with_stats(self.model, out)
        presence, vis, log_b = self.head(feats, detail, x, points, stats, flat, w)
        return points, presence, vis, log_b

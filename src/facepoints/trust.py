"""Presence, visibility and expected error for a shipped landmark model: the heads'
training data, their training on the frozen trunk, their calibration, their file, and inference on crops.

Training (`train_trust_heads`, `scripts/train_trust_heads.py`): the trunk is the shipped model, frozen;
only models.trust.TrustHead learns, from batches of
- positive crops: the model's own training faces (never its held-out ones), cropped with detector-like
  box jitter (negatives.POSITIVE_GEOMETRY), with the training augmentation's colour and blur, and in
  `occluded` of them one or two synthetic occluders of the training families (occluders.py) whose
  mask labels each point visible or hidden;
- negative crops (negatives.py): boxes that miss a face, face-free photos, RetinaFace's hits on them at
  threshold 0.05, procedural textures.
Losses: BCE on presence (every crop), BCE on visibility and a Laplace NLL of the trunk's own point errors
(crop px; what the user gets, output_shift removed) on the positives.

Calibration (`calibrate`): on the held-out faces of the model's run (RunSplit.val_idx), clean and
augmented, predicted Laplace scale b against the observed point error, made monotone (isotonic, in
quantile bins); `expected_error` maps b to the expected point error in crop pixels. Scale it by
side / input_size of the crop (crop.Crop.matrix) for image pixels.

File: `weights/<model>.trust.pt`, a plain dict (weights_only loadable): format, base model name and its
weights' sha256 (a head only fits the trunk it was trained on), head kwargs and state, calibration, and
the training record.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .augment import degrade, geometric, photometric
from .checkpoint import RunSplit, load_payload
from .config import config_from_dict
from .crop import crop_matrix, points_box, square_from_box, to_gray, warp
from .errors import FacepointsError
from .io_utils import atomic_path
from .metrics import expected_error
from .models.trust import GridTrustHead, TrustHead, decode_with_stats, grid_head_inputs
from .negatives import (
    POSITIVE_GEOMETRY,
    TRAIN_PHOTOS,
    detector_hits,
    face_free_photos,
    hit_crop,
    photo_crop,
    texture_crop,
    wrong_box,
)
from .occluders import TRAIN_FAMILIES, occlude
from .training_data import LandmarkDataset, cache_offsets, to_tensor
from .weights import PACKAGE_WEIGHTS, load_model, resolve, sha256_file, shipped_models

TRUST_FORMAT = "facepoints-trust/1"
CHECKPOINT_FORMAT = "facepoints-trust-checkpoint/1"
MIN_VISIBLE = 0.2  # a positive crop with fewer of its points visible has no presence label (neither face nor not)


class TrustDataset(torch.utils.data.Dataset):
    """Items 0..n_faces-1: positive crops of those faces; the rest: negatives. Each item is
    (crop (1, S, S), target points (68, 2) crop px, visible (68,), presence label, presence weight), seeded by
    (seed, epoch, index) so an epoch is the same after a resume."""

    def __init__(
        self,
        images,
        points,
        offsets,
        input_size: int,
        margin: float,
        photos,
        hits,
        neg_fraction: float = 0.4,
        occluded: float = 0.6,
        families=TRAIN_FAMILIES,
        seed: int = 0,
        geometry=POSITIVE_GEOMETRY,
    ):
        self.images, self.points, self.offsets = images, points, offsets
        self.input_size, self.margin = input_size, margin
        self.photos, self.hits = photos, hits
        self.n_faces = len(images)
        self.n_neg = int(round(self.n_faces * neg_fraction))
        self.occluded, self.families, self.seed, self.geometry = occluded, tuple(families), seed, geometry
        self.epoch = 0

    def __len__(self):
        return self.n_faces + self.n_neg

    def face_crop(self, j: int) -> np.ndarray:
        """Face j's plain RGB crop (a donor for the face_patch occluder)."""
        cx, cy, side = square_from_box(points_box(self.points[j]), self.margin)
        return warp(self.images[j], crop_matrix(cx, cy, side, self.input_size), self.input_size)

    def __getitem__(self, i):
        rng = np.random.default_rng((self.seed, self.epoch, i))
        s = self.input_size
        visible = np.ones(68, np.float32)
        target = np.zeros((68, 2), np.float32)
        if i < self.n_faces:
            rgb, target = geometric(self.images[i], self.points[i], s, self.margin, self.geometry, rng, self.offsets[i])
            if rng.random() < self.occluded:
                donors = [self.face_crop(int(j)) for j in rng.integers(0, self.n_faces, 2)]
                occ = occlude(rgb, target, rng, self.families, donors=donors)
                rgb, visible = occ.image, occ.visible.astype(np.float32)
            label, weight = 1.0, float(visible.mean() >= MIN_VISIBLE)
        else:
            kind = rng.random()
            if kind < 0.35 or (kind < 0.6 and not self.photos) or (kind < 0.85 and not self.hits):
                j = int(rng.integers(0, self.n_faces))
                rgb = wrong_box(self.images[j], self.points[j], s, self.margin, rng)
            elif kind < 0.6:
                rgb = photo_crop(self.photos[int(rng.integers(0, len(self.photos)))], s, rng)
            elif kind < 0.85:
                k, box, angle = self.hits[int(rng.integers(0, len(self.hits)))]
                rgb = hit_crop(self.photos[k], box, angle, s, self.margin, rng)
            else:
                rgb = texture_crop(s, rng)
            label, weight = 0.0, 1.0
        gray = degrade(to_gray(photometric(rgb, self.geometry, rng)), self.geometry, rng)
        return (
            to_tensor(gray),
            torch.from_numpy(np.asarray(target, np.float32)),
            torch.from_numpy(visible),
            torch.tensor(label),
            torch.tensor(weight),
        )


HEADS = {"TrustHead": TrustHead, "GridTrustHead": GridTrustHead}


def head_for(model, kind: str = "GridTrustHead", **kwargs) -> TrustHead | GridTrustHead:
    """A fresh trust head for `model`'s trunk: GridTrustHead (phase 2, the shipped kind: few ONNX nodes) or the
    phase-1 TrustHead (window features, stride-4 detail, pixels, seven statistics: 9x the cost in ONNX Runtime)."""
    if kind == "TrustHead":
        detail = next(m for m in model.stage3.modules() if isinstance(m, torch.nn.Conv2d)).in_channels
        return TrustHead(channels=model.head.in_channels, num_points=model.num_points, detail_channels=detail)
    if kwargs.get("detail_channels") == -1:  # the stage-2 map's width
        stage3 = next(m for m in model.stage3.modules() if isinstance(m, torch.nn.Conv2d))
        kwargs["detail_channels"] = stage3.in_channels
    return GridTrustHead(channels=model.head.in_channels, num_points=model.num_points, **kwargs)


def run_trunk(model, x: torch.Tensor, head=None, grad: bool = False):
    """Trunk -> points (raw decode, crop px) and the head's inputs, in the order its forward takes them:
    GridTrustHead (the default when `head` is None) (features, argmax cells, log peak); TrustHead (features,
    detail, x, points, stats, flat, w). Without gradients unless `grad` (joint training)."""
    with torch.set_grad_enabled(grad):
        if head is None or isinstance(head, GridTrustHead):
            return grid_head_inputs(model, head or GridTrustHead(), x)
        feats, detail = model.forward_features_detail(x)
        out = model.forward_head(feats)
        points, stats, flat, w = decode_with_stats(model, out)
    return points, (feats, detail, x, points, stats, flat, w)


def laplace_nll(err: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """(B, N, 2) errors, (B, N) log b -> (B, N) NLL of x and y under one Laplace scale b (constants dropped)."""
    return 2 * log_b + err.abs().sum(-1) * torch.exp(-log_b)


def losses(head, model, shift: torch.Tensor, batch) -> dict[str, torch.Tensor]:
    """The heads' losses on a batch; the trunk's gradients flow when it trains (joint training). The NLL's point
    errors are detached: the expected error must not move the points it describes."""
    x, target, visible, label, weight = batch
    face = label > 0.5
    trains = torch.is_grad_enabled() and any(p.requires_grad for p in model.parameters())
    points, inputs = run_trunk(model, x, head, grad=trains)
    presence, vis, log_b = head(*inputs)
    out = {
        "presence": (F.binary_cross_entropy_with_logits(presence, label, reduction="none") * weight).sum()
        / weight.sum().clamp(min=1)
    }
    if face.any():
        out["visibility"] = F.binary_cross_entropy_with_logits(vis[face], visible[face])
        err = (points.detach() - shift - target)[face]
        out["nll"] = laplace_nll(err, log_b[face]).mean()
    else:
        out["visibility"] = out["nll"] = presence.sum() * 0
    out["total"] = out["presence"] + out["visibility"] + 0.5 * out["nll"]
    return out


def _base_weights(model_name: str):
    model, spec = load_model(model_name)
    path, _ = resolve(model_name)
    if model.__class__.__name__ != "PIPNet":
        raise FacepointsError(f"{model_name}: trust heads need a PIPNet model, not {spec.arch}")
    return model, spec, sha256_file(path)


def build_training_set(spec, data: str | Path | None, seed: int = 0, log=print, hit_detector=None, **kwargs):
    """The run's split, and the TrustDataset on its training faces (with the training photos and `hit_detector`'s
    hits on them: RetinaFace at negatives.HIT_THRESHOLD, built by the caller)."""
    cfg = spec.train_config
    if cfg is None:
        raise FacepointsError(f"{spec.path}: the weights do not record their training run; no split to train on")
    split = RunSplit.from_config(cfg, data)
    images, points = split.cache()
    offsets = cache_offsets(split.samples, split.config.cache_side) if split.config.annotation_offsets else None
    idx = split.train_idx
    photos = face_free_photos(TRAIN_PHOTOS)
    t = time.time()
    hits = detector_hits(photos, hit_detector, turns=4) if hit_detector is not None else []
    log(f"{len(photos)} face-free training photos, {len(hits)} RetinaFace hits at 0.05 ({time.time() - t:.0f} s)")
    ds = TrustDataset(
        images[idx],
        points[idx],
        None if offsets is None else offsets[idx],
        spec.input_size,
        spec.margin,
        photos,
        hits,
        seed=seed,
        **kwargs,
    )
    if ds.offsets is None:
        ds.offsets = np.zeros((len(idx), 2))
    return split, ds


class RecipeBatches:
    """The trunk's own training recipe for joint training: batch `step` of epoch `epoch` is `batch_size` of the run's
    training faces under its run's augmentation, drawn from (seed, epoch, step) alone, so a resumed run sees what
    an uncut one would."""

    def __init__(self, spec, data, batch_size: int, seed: int = 0):
        cfg = config_from_dict(spec.train_config)
        split = RunSplit.from_config(spec.train_config, data)
        images, points = split.cache()
        offsets = cache_offsets(split.samples, cfg.cache_side) if cfg.annotation_offsets else None
        idx = split.train_idx
        self.ds = LandmarkDataset(
            images[idx],
            points[idx],
            cfg.input_size,
            cfg.margin,
            cfg.augment,
            seed + 1,
            None if offsets is None else offsets[idx],
        )
        self.batch_size, self.seed = batch_size, seed

    def __call__(self, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.ds.epoch = epoch
        pick = np.random.default_rng((self.seed, epoch, step)).choice(len(self.ds), self.batch_size, replace=False)
        items = [self.ds[int(i)] for i in pick]
        return torch.stack([x for x, _ in items]), torch.stack([t for _, t in items])


def train_trust_heads(
    model_name: str = "fast",
    out: str | Path = "runs/trust",
    epochs: int = 40,
    batch_size: int = 64,
    lr: float = 3e-3,
    data: str | Path | None = None,
    resume: bool = False,
    workers: int = 1,
    seed: int = 0,
    threads: int = 1,
    max_minutes: float | None = None,
    dataset: TrustDataset | None = None,
    model=None,
    log=print,
    hit_detector=None,
    head_kind: str = "GridTrustHead",
    head_kwargs: dict | None = None,
    geometry=POSITIVE_GEOMETRY,
    trunk_lr: float | None = None,
    landmark_weight: float = 1.0,
    init_head: str | Path | None = None,
    ema: float = 0.99,
    recipe=None,
) -> dict:
    """Train a TrustHead on `model_name`'s frozen trunk; checkpoints `out/last.pt` every epoch (atomic), `--resume`
    continues from it. Returns the trained head's state and its training record (the caller calibrates and saves).

    With `trunk_lr` the trunk learns too (joint training), at that rate. Beside each batch of the heads' data comes
    a half batch of the trunk's own training recipe (its run's augmentation, `LandmarkDataset`) with its PIPNet loss
    (`landmark_weight`): the heads' positives (wide detector-like boxes, occluders on 60%) are another distribution,
    and a landmark loss on them costs test NME. Its BatchNorm layers keep their statistics (eval mode): batches of
    40% negatives would move them away from the faces the points were tuned on; with them fixed, a moving average
    of the weights (decay `ema`) is exact, and it is what the run returns. `init_head`: a trust file whose head to
    start from (the frozen-trunk head, say). `recipe(epoch, step)`: the landmark batch (x, target) to use instead of
    the run's (RecipeBatches)."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if model is None:
        model, spec, sha = _base_weights(model_name)
        shift = torch.tensor(spec.output_shift, dtype=torch.float32)
    else:
        spec, sha, shift = None, "", torch.zeros(2)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(trunk_lr is not None)
    if dataset is None:
        _, dataset = build_training_set(spec, data, seed=seed, log=log, hit_detector=hit_detector, geometry=geometry)
    if init_head is not None:
        head = load_trust(init_head)[0]
    else:
        head = head_for(model, head_kind, **(head_kwargs or {}))
    groups = [{"params": list(head.parameters()), "lr": lr}]
    if trunk_lr is not None:
        groups.append({"params": list(model.parameters()), "lr": trunk_lr})
    opt = torch.optim.AdamW(groups, weight_decay=1e-4)
    joint = trunk_lr is not None
    if joint and recipe is None:
        if spec is None:
            raise FacepointsError("joint training of a model without its run's record needs `recipe` batches")
        recipe = RecipeBatches(spec, data, batch_size // 2, seed)
    averaged = [p.detach().clone() for p in (*model.parameters(), *head.parameters())] if joint else []
    steps_per_epoch = math.ceil(len(dataset) / batch_size)
    total = epochs * steps_per_epoch
    warmup = min(50, max(1, total // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: min(1.0, (k + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(k, total) / total))
    )
    start, history = 0, []
    ckpt = out / "last.pt"
    if resume:
        if not ckpt.exists():
            raise FacepointsError(f"{ckpt}: nothing to resume")
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        if state.get("format") != CHECKPOINT_FORMAT or state.get("base_sha256") != sha:
            raise FacepointsError(f"{ckpt}: not a trust-head checkpoint of this model")
        head.load_state_dict(state["head"])
        if joint:
            model.load_state_dict(state["trunk"])
            for a, v in zip(averaged, state["averaged"]):
                a.copy_(v)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start, history = state["epoch"], list(state["history"])
        log(f"resuming {out} after epoch {start} of {epochs}")
    elif isinstance(head, TrustHead):  # standardise the statistics on a few training batches (epoch 0's first items)
        dataset.epoch = 0
        n = min(len(dataset), 512)
        pick = np.random.default_rng(seed).choice(len(dataset), n, replace=False)
        x = torch.stack([dataset[int(i)][0] for i in pick])
        head.fit_normaliser(run_trunk(model, x, head)[1][4])
    t0 = time.time()
    for epoch in range(start + 1, epochs + 1):
        dataset.epoch = epoch
        g = torch.Generator().manual_seed(seed * 1000 + epoch)
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=True,
            generator=g,
            num_workers=workers,
            drop_last=len(dataset) > batch_size,
            persistent_workers=False,
        )
        head.train()
        sums, count, te = {}, 0, time.time()
        for step, batch in enumerate(loader):
            parts = losses(head, model, shift, batch)
            if joint:
                xl, tl = recipe(epoch, step)
                parts["landmarks"] = model.loss(model(xl), tl)
                parts["total"] = parts["total"] + landmark_weight * parts["landmarks"]
            if not torch.isfinite(parts["total"]):
                raise FacepointsError(f"epoch {epoch}: non-finite loss; last good checkpoint kept at {ckpt}")
            opt.zero_grad(set_to_none=True)
            parts["total"].backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                for a, p in zip(averaged, (*model.parameters(), *head.parameters())):
                    a.lerp_(p, 1 - ema)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(batch[0])
            count += len(batch[0])
        record = {
            "epoch": epoch,
            **{k: round(v / max(count, 1), 4) for k, v in sums.items()},
            "seconds": round(time.time() - te, 1),
        }
        history.append(record)
        log(json.dumps(record))
        state = {
            "format": CHECKPOINT_FORMAT,
            "base": model_name,
            "base_sha256": sha,
            "epoch": epoch,
            "epochs": epochs,
            "head": head.state_dict(),
            **({"trunk": model.state_dict(), "averaged": averaged} if joint else {}),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "history": history,
        }
        with atomic_path(ckpt) as tmp, open(tmp, "wb") as f:
            torch.save(state, f)
        if max_minutes is not None and (time.time() - t0) / 60 > max_minutes and epoch < epochs:
            log(f"stopping after epoch {epoch}: {max_minutes} min budget spent (--resume continues)")
            break
    head.eval()
    with torch.no_grad():
        for a, p in zip(averaged, (*model.parameters(), *head.parameters())):
            p.copy_(a)
    for p in model.parameters():
        p.requires_grad_(False)
    return {
        "head": head,
        "model": model,
        "history": history,
        "base": model_name,
        "base_sha256": sha,
        "epoch": history[-1]["epoch"] if history else start,
        "complete": bool(history) and history[-1]["epoch"] >= epochs,
    }


# --- calibration ---------------------------------------------------------------------------------------------


def isotonic(x: np.ndarray, y: np.ndarray, bins: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Monotone non-decreasing knots of y against x: means in quantile bins of x, then pool-adjacent-violators."""
    order = np.argsort(x)
    x, y = x[order], y[order]
    edges = np.linspace(0, len(x), bins + 1).astype(int)
    kx = np.array([x[a:b].mean() for a, b in zip(edges[:-1], edges[1:]) if b > a])
    ky = np.array([y[a:b].mean() for a, b in zip(edges[:-1], edges[1:]) if b > a])
    kw = np.array([b - a for a, b in zip(edges[:-1], edges[1:]) if b > a], np.float64)
    vals, wts, xs = [], [], []
    for xi, yi, wi in zip(kx, ky, kw):  # PAV over the bin means
        vals.append(yi), wts.append(wi), xs.append([xi])
        while len(vals) > 1 and vals[-2] > vals[-1]:
            v = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / (wts[-2] + wts[-1])
            w = wts[-2] + wts[-1]
            xx = xs[-2] + xs[-1]
            vals, wts, xs = vals[:-2] + [v], wts[:-2] + [w], xs[:-2] + [xx]
    return np.array([np.mean(a) for a in xs]), np.array(vals)


def collect(model, head, x: torch.Tensor, shift, batch: int = 256) -> dict[str, np.ndarray]:
    """Run trunk + head on model inputs (N, 1, S, S): calibrated points, presence/visibility probabilities, log b."""
    outs = {"points": [], "presence": [], "visibility": [], "log_b": []}
    head.eval()
    with torch.no_grad():
        for i in range(0, len(x), batch):
            points, inputs = run_trunk(model, x[i : i + batch], head)
            p, v, lb = head(*inputs)
            outs["points"].append((points - torch.as_tensor(shift, dtype=torch.float32)).numpy())
            outs["presence"].append(torch.sigmoid(p).numpy())
            outs["visibility"].append(torch.sigmoid(v).numpy())
            outs["log_b"].append(lb.numpy())
    return {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in outs.items()}


def augmented_crops(ds: TrustDataset, n_views: int, epoch: int):
    """`n_views` augmented positive views of each face of `ds` (its occluders, its geometry): inputs, targets,
    visible labels."""
    xs, ts, vs = [], [], []
    for view in range(n_views):
        ds.epoch = epoch + view
        for i in range(ds.n_faces):
            x, t, v, _, _ = ds[i]
            xs.append(x), ts.append(t), vs.append(v)
    return torch.stack(xs), torch.stack(ts).numpy(), torch.stack(vs).numpy()


def calibrate(model, head, spec, split: RunSplit, log=print, views: int = 2) -> dict:
    """Fit expected_error's knots on the run's held-out faces: clean crops (landmark boxes) and `views` augmented
    views of each (detector-like boxes, occluders in 60%). Returns the calibration dict."""
    x0, t0 = split.val_crops()
    images, points = split.cache()
    idx = split.val_idx
    offsets = cache_offsets(split.samples, split.config.cache_side) if split.config.annotation_offsets else None
    ds = TrustDataset(
        images[idx],
        points[idx],
        np.zeros((len(idx), 2)) if offsets is None else offsets[idx],
        spec.input_size,
        spec.margin,
        [],
        [],
        neg_fraction=0.0,
        seed=12345,
    )
    xa, ta, _ = augmented_crops(ds, views, 1000)
    x = torch.cat([x0, xa])
    t = np.concatenate([t0, ta])
    r = collect(model, head, x, spec.output_shift)
    err = np.linalg.norm(r["points"] - t, axis=-1).ravel()
    lb = r["log_b"].ravel()
    kx, ky = isotonic(lb, err)
    scale = float(err.sum() / np.exp(lb).sum())
    cal = {
        "kind": "isotonic",
        "log_b": [round(float(v), 5) for v in kx],
        "error_px": [round(float(v), 5) for v in ky],
        "scale": round(scale, 5),
        "units": "crop pixels (multiply by crop side / input_size for image pixels)",
        "fitted_on": f"{len(idx)} held-out faces of the model's run (val_fraction {split.config.val_fraction}, "
        f"seed {split.config.seed}): landmark-box crops and {views} augmented views each",
        "mean_error_px": round(float(err.mean()), 4),
    }
    log(f"calibration: {len(kx)} knots, single scale {scale:.3f}, mean point error {err.mean():.3f} crop px")
    return cal


# --- the file ------------------------------------------------------------------------------------------------


def save_trust(
    path: str | Path,
    head: TrustHead | GridTrustHead,
    calibration: dict,
    base: str,
    base_sha256: str,
    meta: dict | None = None,
) -> None:
    payload = {
        "format": TRUST_FORMAT,
        "base": base,
        "base_sha256": base_sha256,
        "head_class": type(head).__name__,
        "head_kwargs": head.kwargs(),
        "head": {k: v.detach().float().cpu() for k, v in head.state_dict().items()},
        "calibration": json.dumps(calibration),
        "train": json.dumps(meta or {}),
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)


def trust_path(model_name: str) -> Path:
    entry = shipped_models().get(model_name, {}).get("trust")
    if entry is None:
        raise FacepointsError(f"{model_name}: no trust heads shipped for this model")
    return PACKAGE_WEIGHTS / entry["file"]


def load_trust(
    path_or_model: str | Path, base_sha256: str | None = None
) -> tuple[TrustHead | GridTrustHead, dict, dict]:
    """A trust file (or a shipped model's name) -> (TrustHead in eval mode, calibration, header). With
    `base_sha256` (the landmark weights' sha256) a head trained on another trunk is refused."""
    path = Path(path_or_model)
    if not path.suffix and str(path_or_model) in shipped_models():
        path = trust_path(str(path_or_model))
        sha = shipped_models()[str(path_or_model)]["trust"]["sha256"]
        if sha256_file(path) != sha:
            raise FacepointsError(f"{path}: checksum mismatch (file damaged or replaced); reinstall facepoints")
    payload = load_payload(path, TRUST_FORMAT, "trust-head file")
    if base_sha256 is not None and payload["base_sha256"] != base_sha256:
        raise FacepointsError(f"{path}: trained on another landmark model's trunk ({payload['base']})")
    head = HEADS[payload.get("head_class", "TrustHead")](**payload["head_kwargs"])
    head.load_state_dict(payload["head"])
    head.eval()
    header = {k: payload[k] for k in ("base", "base_sha256")} | {"train": json.loads(payload["train"])}
    return head, json.loads(payload["calibration"]), header


def predict_trust(
    model, head: TrustHead | GridTrustHead, calibration: dict, x, output_shift=(0.0, 0.0)
) -> dict[str, np.ndarray]:
    """Model inputs (N, 1, S, S) float32 (crop.preprocess) -> points (N, 68, 2) crop px with output_shift removed
    (the predictor's answer in torch), presence (N,), visibility (N, 68) in [0, 1], uncertainty (N, 68): expected
    point error in crop pixels. For image pixels multiply uncertainty by the crop's side / input_size."""
    x = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)
    r = collect(model, head, x, output_shift)
    return {
        "points": r["points"].astype(np.float32),
        "presence": r["presence"].astype(np.float32),
        "visibility": r["visibility"].astype(np.float32),
        "uncertainty": expected_error(r["log_b"], calibration).astype(np.float32),
    }

"""Training: cached crops -> augmented batches -> model, with validation NME, atomic checkpoints and --resume.

With `ema` set, validation, selection and the saved weights use a moving average of
the weights, which steadies the late epochs; the raw model's validation NME is logged
beside it. BatchNorm statistics cannot be averaged along with the weights (averaged
weights give activations of another scale, and the held-out NME goes to ~30%), so
they are re-estimated each epoch on its last augmented batches: clean crops would
not do, they cost the raw model 0.1 points of held-out NME.

With `val_fraction=0` every face trains and the last epoch is kept: for retraining a
recipe chosen on held-out faces on all of them. Progress is then tracked on a fixed
set of un-augmented training faces (`fit_nme`), which says nothing about generalisation.

Every epoch writes `best.pt` (on a new best validation NME), then `last.pt`, then the
weights `model.pt`, each atomically. The checkpoints are the record: `--resume` starts from
the newer of them and rebuilds `model.pt` from them when a kill came between the writes,
so a run cut at any point resumes; temporary files a kill left behind are removed. A
non-finite loss stops the run with the last good checkpoint untouched.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .config import TrainConfig, config_from_dict
from .data import IMAGE_SUFFIXES, MANIFEST, read_dataset
from .dataset import LandmarkDataset, build_cache, cache_offsets
from .drawing import draw_face, grid, plot_curves, save_gif
from .errors import FacepointsError
from .io_utils import atomic_path, atomic_write_text, check_outputs, remove_stale_temps
from .metrics import nme
from .models import create_model
from .weights import load_model, save_weights

CHECKPOINT_FORMAT = "facepoints-checkpoint/1"
MAX_GIF_FRAMES = 40  # progress.gif shows at most this many epochs, evenly spaced
BN_BATCHES = 8  # augmented batches that re-estimate the moving average's BatchNorm statistics
GIF_EVERY = 10  # epochs between rebuilds of progress.gif and curves.png
FIT_FACES = 200  # un-augmented training faces that track progress when nothing is held out


def choose_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def use_bf16(precision: str, device: torch.device) -> bool:
    if precision == "fp32":
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    supported = torch.cpu._is_avx512_bf16_supported()
    if precision == "bf16" and not supported:
        print("warning: this CPU has no native bf16; bf16 autocast will be slow")
    return precision == "bf16" or supported


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * val_fraction))) if n > 1 and val_fraction > 0 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def split_crops(data: str, cfg: dict, input_size: int, margin: float):
    """Un-augmented (crops, targets) of a run's training faces and of its held-out faces, split as `train` split them."""
    samples = read_dataset(data)
    images, points = build_cache(samples, side=config_from_dict(cfg).cache_side)

    def tensors(idx):
        ds = LandmarkDataset(images[idx], points[idx], input_size, margin, None)
        if len(ds) == 0:  # a run trained on every face holds nothing out
            return torch.zeros(0, 1, input_size, input_size), np.zeros((0, 68, 2), np.float32)
        return torch.stack([ds[i][0] for i in range(len(ds))]), np.stack([ds[i][1].numpy() for i in range(len(ds))])

    train_idx, val_idx = split_indices(len(samples), cfg["val_fraction"], cfg["seed"])
    return tensors(train_idx), tensors(val_idx)


def mean_crop_offset(points: np.ndarray, offsets: np.ndarray | None, input_size: int, margin: float) -> list[float]:
    """The annotation offset a model learns, in its crop pixels (mean over its training faces); flip test needs it."""
    if offsets is None or len(points) == 0:
        return [0.0, 0.0]
    crop_per_px = input_size / (margin * np.ptp(points, axis=1).max(axis=1))
    return [round(float(v), 4) for v in (offsets * crop_per_px[:, None]).mean(0)]


def finish_weights(weights_path: Path, loader, device: torch.device, annotation_offset: list[float]) -> list[float]:
    """Record in the selected weights what the predictor needs about their annotation convention.

    `annotation_offset`: the offset the model was taught (crop px), so flip test mirrors back
    correctly. `output_shift`: their mean signed error on un-augmented training faces (never
    held-out ones), the part of the annotations' offset that mirror augmentation keeps the
    network from learning (README, "annotation offsets"); the predictor subtracts it."""
    model, _ = load_model(str(weights_path))
    preds, targets = predict_batches(model.to(device), loader, device, False)
    shift = [round(float(v), 4) for v in (preds - targets).mean((0, 1))]
    payload = torch.load(weights_path, map_location="cpu", weights_only=True)
    payload["train"].update(annotation_offset=annotation_offset, output_shift=shift)
    save_checkpoint(weights_path, payload)
    return shift


def lr_at(cfg: TrainConfig, progress: float) -> float:
    """Learning rate at `progress` epochs into training (fractional)."""
    if cfg.warmup_epochs and progress < cfg.warmup_epochs:
        return cfg.lr * (0.1 + 0.9 * progress / cfg.warmup_epochs)
    if cfg.schedule == "cosine":
        t = (progress - cfg.warmup_epochs) / max(cfg.epochs - cfg.warmup_epochs, 1e-9)
        return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))
    return cfg.lr


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomically; through a Python file, so a full disk is an OSError (one line), not torch's RuntimeError."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FacepointsError(f"{path}: no such checkpoint") from None
    except Exception as e:
        raise FacepointsError(f"{path}: not a readable checkpoint ({e.__class__.__name__})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise FacepointsError(f"{path}: not a facepoints training checkpoint")
    return state


@torch.no_grad()
def predict_batches(model, loader, device, bf16: bool) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    preds, targets = [], []
    for x, y in loader:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(x.to(device).contiguous(memory_format=torch.channels_last))
        preds.append(model.decode(out).cpu().numpy())
        targets.append(y.numpy())
    return np.concatenate(preds), np.concatenate(targets)


def progress_frame(crops: torch.Tensor, preds: np.ndarray, targets: np.ndarray, epoch: int, val_nme: float,
                   faces: str = "val") -> np.ndarray:
    import cv2

    tiles = []
    for img, p, t in zip(crops, preds, targets):
        rgb = cv2.cvtColor((img[0].numpy() * 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
        rgb = cv2.resize(rgb, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
        draw_face(rgb, (t + 0.5) * 2 - 0.5, lines=False, color=(255, 0, 0), radius=2)
        draw_face(rgb, (p + 0.5) * 2 - 0.5, lines=True, radius=2)
        tiles.append(rgb)
    frame = grid(tiles, cols=4, tile=160)
    cv2.putText(frame, f"epoch {epoch}  {faces} NME {100 * val_nme:.2f}%", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
    return frame


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


def restore_weights(out: Path, state: dict, held_out: bool) -> None:
    """Make `model.pt` hold the selected epoch (best.pt's, or the last with nothing held out) when a kill
    came before it was written; rebuilt from that checkpoint, which holds the same weights."""
    source = state if not held_out else load_checkpoint(out / "best.pt") if (out / "best.pt").exists() else None
    if source is None:
        return
    path = out / "model.pt"
    try:
        current = torch.load(path, map_location="cpu", weights_only=True)["train"]["epoch"] if path.exists() else None
    except Exception:  # damaged: rebuild it
        current = None
    if current == source["epoch"]:
        return
    cfg = config_from_dict(source["config"])
    model = create_model(cfg.arch, input_size=cfg.input_size, **cfg.model_kwargs)
    ema = source.get("ema")
    model.load_state_dict({k.removeprefix("module."): v for k, v in ema.items() if k.startswith("module.")} if ema else source["model"])
    key = "val_nme" if held_out else "fit_nme"
    save_weights(path, model, cfg, {"epoch": source["epoch"], key: source["history"][-1][key]})
    print(f"{path}: rebuilt from the epoch {source['epoch']} checkpoint (the run was cut before writing it)")


def train(cfg: TrainConfig, resume: bool = False, epochs: int | None = None) -> dict:
    """Run (or continue) a training; returns the final history entry.

    On resume the saved settings are used; `epochs` (if given) moves the end of the run, so
    a finished run can be extended (a cosine schedule is stretched to the new end)."""
    out = Path(cfg.out)
    last_path, best_path = out / "last.pt", out / "best.pt"
    state = None
    if resume:
        state, saved = saved_run(out)
        cfg = config_from_dict(saved)
        done = state["epoch"] if state else 0
        if epochs is not None:
            if epochs < done:
                raise FacepointsError(f"{out}: --epochs {epochs}, but the run has already trained {done} epochs")
            cfg = replace(cfg, epochs=epochs)
        if state is not None and (not last_path.exists() or load_checkpoint(last_path)["epoch"] < done):
            save_checkpoint(last_path, state)  # killed between best.pt and last.pt: both hold this epoch's state
        print(f"resuming {out} after epoch {done} of {cfg.epochs}")
    elif last_path.exists() or best_path.exists():
        raise FacepointsError(f"{out}: already holds a training run; pass --resume to continue it or choose another --out")
    removed = remove_stale_temps(out) + remove_stale_temps(out / "progress") if out.is_dir() else 0
    if removed:
        print(f"{out}: removed {removed} temporary files a killed run left behind")
    check_outputs([last_path, best_path, out / "model.pt", out / "curves.png", out / "progress" / "epoch_001.png"],
                  read_folders=[cfg.data] if cfg.data and Path(cfg.data).is_dir() else [],
                  read_suffixes=IMAGE_SUFFIXES + (".pts",))
    if cfg.cache_side < cfg.input_size:
        raise FacepointsError(f"--cache-side {cfg.cache_side}: must be at least the input size ({cfg.input_size} px), "
                              "or every training crop is an upsampled blur")

    torch.manual_seed(cfg.seed)
    device = choose_device()
    bf16 = use_bf16(cfg.precision, device)
    samples = read_dataset(cfg.data)
    if len(samples) < 2:
        raise FacepointsError(f"{cfg.data}: need at least 2 annotated faces to train, found {len(samples)}")
    images, points = build_cache(samples, side=cfg.cache_side)
    train_idx, val_idx = split_indices(len(samples), cfg.val_fraction, cfg.seed)
    offsets = cache_offsets(samples, cfg.cache_side) if cfg.annotation_offsets else None
    if offsets is not None and offsets.any():
        print(f"annotation offsets from {MANIFEST}: mean {offsets.mean(0).round(2).tolist()} px in the cached crops")
    train_offsets = None if offsets is None else offsets[train_idx]
    train_set = LandmarkDataset(images[train_idx], points[train_idx], cfg.input_size, cfg.margin, cfg.augment, cfg.seed,
                                train_offsets)
    annotation_offset = mean_crop_offset(points[train_idx], train_offsets, cfg.input_size, cfg.margin)
    held_out = len(val_idx) > 0
    watch_idx = val_idx if held_out else train_idx[:FIT_FACES]  # what the per-epoch NME is measured on
    nme_key = "val_nme" if held_out else "fit_nme"
    val_set = LandmarkDataset(images[watch_idx], points[watch_idx], cfg.input_size, cfg.margin, None)
    loader_kw = dict(batch_size=cfg.batch_size, num_workers=cfg.workers, persistent_workers=cfg.workers > 0)
    val_loader = torch.utils.data.DataLoader(val_set, shuffle=False, **loader_kw)

    model = create_model(cfg.arch, input_size=cfg.input_size, **cfg.model_kwargs).to(device)
    model = model.to(memory_format=torch.channels_last)
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = None
    if cfg.ema:
        ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema))
    history, start_epoch, best_nme = [], 0, float("inf")
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        history, start_epoch, best_nme = state["history"], state["epoch"], state["best_nme"]
        restore_weights(out, state, held_out)

    n_prog = min(cfg.progress_faces, len(val_set))
    prog_x = torch.stack([val_set[i][0] for i in range(n_prog)])
    prog_y = np.stack([val_set[i][1].numpy() for i in range(n_prog)])
    (out / "progress").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps(asdict(cfg), indent=2))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{cfg.arch}: {n_params:,} params | {len(train_set)} train / {len(val_idx)} val faces | "
          f"device {device.type}{' bf16' if bf16 else ''} | {torch.get_num_threads()} threads")

    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    entry = history[-1] if history else {}
    try:
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            train_set.epoch = epoch
            gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
            loader = torch.utils.data.DataLoader(train_set, shuffle=True, generator=gen, drop_last=len(train_set) > cfg.batch_size,
                                                 batch_size=cfg.batch_size, num_workers=cfg.workers)
            model.train()
            t0, seen, total = time.perf_counter(), 0, 0.0
            recent = deque(maxlen=BN_BATCHES)
            bar = tqdm(loader, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False)
            for step, (x, y) in enumerate(bar):
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(cfg, epoch - 1 + step / steps_per_epoch)
                x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    loss = model.loss(model(x), y.to(device))
                if not torch.isfinite(loss):
                    kept = f"last good checkpoint kept at {last_path}" if last_path.exists() else "no checkpoint was written yet"
                    raise FacepointsError(f"epoch {epoch} step {step}: loss is {loss.item()}; stopping ({kept})")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if ema is not None:
                    ema.update_parameters(model)
                    recent.append(x)
                seen += len(x)
                total += loss.item() * len(x)
                bar.set_postfix(loss=f"{total / seen:.4g}", img_s=f"{seen / (time.perf_counter() - t0):.1f}")
            train_time = time.perf_counter() - t0
            preds, targets = predict_batches(model, val_loader, device, bf16)
            val_nme = raw_nme = float(nme(preds, targets).mean())
            selected = model
            if ema is not None:
                selected = ema.module
                torch.optim.swa_utils.update_bn(recent, selected)
                preds, targets = predict_batches(selected, val_loader, device, bf16)
                val_nme = float(nme(preds, targets).mean())
            entry = {"epoch": epoch, "train_loss": total / max(seen, 1), nme_key: val_nme,
                     "img_per_s": seen / train_time, "epoch_s": time.perf_counter() - t0}
            if ema is not None:
                entry[f"{nme_key}_raw"] = raw_nme
            history.append(entry)
            is_best = val_nme < best_nme or not held_out  # nothing held out: keep the last epoch
            best_nme = min(best_nme, val_nme)
            ckpt = {"format": CHECKPOINT_FORMAT, "config": asdict(cfg), "epoch": epoch, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(), "history": history, "best_nme": best_nme}
            if ema is not None:
                ckpt["ema"] = ema.state_dict()
            if is_best and held_out:  # with nothing held out, best.pt would be a second copy of last.pt
                save_checkpoint(best_path, ckpt)  # before last.pt: a kill between the two resumes from it
            save_checkpoint(last_path, ckpt)
            if is_best:
                save_weights(out / "model.pt", selected, cfg, {"epoch": epoch, nme_key: val_nme})
            p, _ = predict_batches(selected, [(prog_x, torch.from_numpy(prog_y))], device, bf16)
            frame = progress_frame(prog_x, p, prog_y, epoch, val_nme, "val" if held_out else "train")
            from PIL import Image

            with atomic_path(out / "progress" / f"epoch_{epoch:03d}.png") as tmp:
                Image.fromarray(frame).save(tmp, format="PNG")
            if epoch % GIF_EVERY == 0 or epoch == cfg.epochs:  # rebuilding them costs ~1 s, so not every epoch
                files = sorted((out / "progress").glob("epoch_*.png"))
                keep = np.unique(np.linspace(0, len(files) - 1, min(len(files), MAX_GIF_FRAMES)).round().astype(int))
                save_gif([np.asarray(Image.open(files[i]).convert("RGB")) for i in keep], out / "progress.gif")
                plot_curves(history, out / "curves.png")
            best = f" (best {100 * best_nme:.3f}%)" if held_out else ""
            raw = f" raw {100 * raw_nme:.3f}%" if ema is not None else ""
            print(f"epoch {epoch}: loss {entry['train_loss']:.4g} | {'val' if held_out else 'train (un-augmented)'} NME "
                  f"{100 * val_nme:.3f}%{best}{raw} | {entry['img_per_s']:.1f} img/s | {entry['epoch_s']:.0f}s", flush=True)
    except KeyboardInterrupt:
        done = history[-1]["epoch"] if history else 0
        raise FacepointsError(f"interrupted; {last_path} holds epoch {done}: continue with --resume --out {out}") from None
    clean_train = LandmarkDataset(images[train_idx], points[train_idx], cfg.input_size, cfg.margin, None)
    clean_loader = torch.utils.data.DataLoader(clean_train, shuffle=False, **loader_kw)
    shift = finish_weights(out / "model.pt", clean_loader, device, annotation_offset)
    print(f"{out / 'model.pt'}: mean error on the training faces {shift} crop px, recorded as its output_shift")
    return entry

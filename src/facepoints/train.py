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

Every epoch writes `best.pt` (on a new best validation NME), then `last.pt`, each atomically
(checkpoint.py). The checkpoints are the record: `--resume` starts from the newer of them, so a
run cut at any point resumes; temporary files a kill left behind are removed. The weights
`model.pt` are written once, when the run ends: the selected epoch's weights with their
`output_shift` measured first. A non-finite loss stops the run with the last good checkpoint untouched.

Launched by torchrun the same loop is data-parallel (distributed.py): the same global batches split
over the processes, rank 0 alone validating and writing.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .annotations import MANIFEST, dataset_fingerprint
from .checkpoint import CHECKPOINT_FORMAT, RunSplit, load_checkpoint, save_checkpoint, saved_run, selected_state
from .config import TrainConfig, config_from_dict
from .distill import blend_targets, teacher_points, teacher_report
from .distributed import GlobalBatchSampler, Ranks, barrier, setup, sum_over_ranks, sync_buffers, teardown, wrap
from .drawing import ProgressFrames
from .errors import FacepointsError, UsageError
from .images import IMAGE_SUFFIXES
from .io_utils import atomic_write_text, check_outputs, remove_stale_temps
from .metrics import nme
from .models import create_model, predict_batches
from .training_data import LandmarkDataset, cache_offsets
from .weights import load_model, resolve, save_weights, shipped_models

BN_BATCHES = 8  # augmented batches that re-estimate the moving average's BatchNorm statistics
FIT_FACES = 200  # un-augmented training faces that track progress when nothing is held out


def choose_device(local_rank: int = 0) -> torch.device:
    return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")


def use_bf16(precision: str, device: torch.device) -> bool:
    if precision == "fp32":
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    supported = torch.cpu._is_avx512_bf16_supported()
    if precision == "bf16" and not supported:
        print("warning: this CPU has no native bf16; bf16 autocast will be slow")
    return precision == "bf16" or supported


def mean_crop_offset(points: np.ndarray, offsets: np.ndarray | None, input_size: int, margin: float) -> list[float]:
    """The annotation offset a model learns, in its crop pixels (mean over its training faces); flip test needs it."""
    if offsets is None or len(points) == 0:
        return [0.0, 0.0]
    crop_per_px = input_size / (margin * np.ptp(points, axis=1).max(axis=1))
    return [round(float(v), 4) for v in (offsets * crop_per_px[:, None]).mean(0)]


def write_weights(
    out: Path, held_out: bool, clean_loader, device: torch.device, annotation_offset: list[float]
) -> list[float]:
    """Write `model.pt` once: the selected epoch's weights (best.pt's, or the last with nothing held out),
    with what the predictor needs about their annotation convention, measured before the save.

    `annotation_offset`: the offset the model was taught (crop px), so flip test mirrors back
    correctly. `output_shift`: their mean signed error on un-augmented training faces (never
    held-out ones), the part of the annotations' offset that mirror augmentation keeps the
    network from learning (docs/how-it-works.md, "Annotation offsets"); the predictor subtracts it."""
    source = load_checkpoint(out / ("best.pt" if held_out else "last.pt"))
    cfg = config_from_dict(source["config"])
    model = create_model(cfg.arch, input_size=cfg.input_size, **cfg.model_kwargs)
    model.load_state_dict(selected_state(source))
    preds, targets = predict_batches(model.to(device), clean_loader, device, False)
    shift = [round(float(v), 4) for v in (preds - targets).mean((0, 1))]
    key = "val_nme" if held_out else "fit_nme"
    save_weights(
        out / "model.pt",
        model,
        cfg,
        {
            "epoch": source["epoch"],
            key: source["history"][-1][key],
            "annotation_offset": annotation_offset,
            "output_shift": shift,
        },
    )
    return shift


def lr_at(cfg: TrainConfig, progress: float) -> float:
    """Learning rate at `progress` epochs into training (fractional)."""
    if cfg.warmup_epochs and progress < cfg.warmup_epochs:
        return cfg.lr * (0.1 + 0.9 * progress / cfg.warmup_epochs)
    if cfg.schedule == "cosine":
        t = (progress - cfg.warmup_epochs) / max(cfg.epochs - cfg.warmup_epochs, 1e-9)
        return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))
    return cfg.lr


def prepare_run(
    cfg: TrainConfig, resume: bool, epochs: int | None, main: bool = True
) -> tuple[TrainConfig, dict | None]:
    """The run's settings and the checkpoint it continues from (None for a new run); outputs checked before any work.
    Every rank checks; only the `main` one writes (tidies the run folder) and prints.

    A run folder is relocatable: the run writes where `cfg.out` says now (a copied or moved run never writes
    into the folder it was made in), and its data and teacher are stored as absolute paths."""
    out = Path(cfg.out)
    last_path, best_path = out / "last.pt", out / "best.pt"
    removed = remove_stale_temps(out) + remove_stale_temps(out / "progress") if out.is_dir() and main else 0
    if removed:
        print(f"{out}: removed {removed} temporary files a killed run left behind")
    state = None
    started = any((out / name).exists() for name in ("last.pt", "best.pt", "config.json"))
    if resume and not started and out.is_dir() and cfg.data:
        if main:  # killed before its first config.json: the earliest point to resume from is the start
            print(f"{out}: nothing saved yet; starting the run from epoch 0")
        resume = False
    if resume:
        state, saved = saved_run(out)
        given_data = cfg.data
        cfg = replace(config_from_dict(saved), out=str(out))
        if given_data:  # the CLI has checked it is the run's dataset (annotations.same_dataset); it may have moved
            cfg = replace(cfg, data=given_data)
        elif not Path(cfg.data).exists():
            raise UsageError(f"{out}: the run's data {cfg.data} is gone; pass --data where it is now")
        done = state["epoch"] if state else 0
        if epochs is not None:
            if epochs < done:
                raise UsageError(f"{out}: --epochs {epochs}, but the run has already trained {done} epochs")
            cfg = replace(cfg, epochs=epochs)
        stale = state is not None and (not last_path.exists() or load_checkpoint(last_path)["epoch"] < done)
        if stale and main:
            save_checkpoint(last_path, state)  # killed between best.pt and last.pt: both hold this epoch's state
        if main:
            print(f"resuming {out} after epoch {done} of {cfg.epochs}")
    elif last_path.exists() or best_path.exists():
        raise UsageError(f"{out}: already holds a training run; pass --resume to continue it or choose another --out")
    cfg = replace(cfg, data=str(Path(cfg.data).resolve()) if cfg.data else cfg.data, teacher=_teacher_path(cfg.teacher))
    check_outputs(
        [
            last_path,
            best_path,
            out / "model.pt",
            out / "config.json",
            out / "curves.png",
            out / "progress" / "epoch_001.png",
        ],
        inputs=[resolve(cfg.teacher)[0]] if cfg.teacher else [],
        read_folders=[cfg.data] if cfg.data and Path(cfg.data).is_dir() else [],
        read_suffixes=IMAGE_SUFFIXES + (".pts",),
    )
    if cfg.teacher:
        load_model(cfg.teacher)  # a missing or unreadable teacher is one line before any work
    if cfg.cache_side < cfg.input_size:
        raise UsageError(
            f"--cache-side {cfg.cache_side}: must be at least the input size ({cfg.input_size} px), "
            "or every training crop is an upsampled blur"
        )
    return cfg, state


def _teacher_path(teacher: str | None) -> str | None:
    """A shipped model's name as it is; a weights file as its absolute path, so a resumed run finds it from
    any working directory (and it can be checked against the run's outputs, which must never replace it)."""
    if not teacher or teacher in shipped_models():
        return teacher
    return str(Path(teacher).resolve())


def train_one_epoch(
    model, ema, optimizer, loader, cfg: TrainConfig, epoch: int, device, bf16: bool, last_path: Path, main: bool = True
):
    """One pass over the augmented faces; returns (mean loss, faces seen, the last few batches for BatchNorm).
    `model` may be wrapped in DistributedDataParallel (its forward syncs the gradients); the figures are this rank's."""
    net = getattr(model, "module", model)  # the plain network: its loss, and what the moving average follows
    steps_per_epoch = math.ceil(len(loader.dataset) / cfg.batch_size)
    model.train()
    t0, seen, total = time.perf_counter(), 0, 0.0
    recent = deque(maxlen=BN_BATCHES)
    bar = tqdm(loader, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False, disable=not main)
    for step, (x, y) in enumerate(bar):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(cfg, epoch - 1 + step / steps_per_epoch)
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = net.loss(model(x), y.to(device))
        if not torch.isfinite(loss):
            kept = (
                f"last good checkpoint kept at {last_path}" if last_path.exists() else "no checkpoint was written yet"
            )
            raise FacepointsError(f"epoch {epoch} step {step}: loss is {loss.item()}; stopping ({kept})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.update_parameters(net)
            recent.append(x)
        seen += len(x)
        total += loss.item() * len(x)
        bar.set_postfix(loss=f"{total / seen:.4g}", img_s=f"{seen / (time.perf_counter() - t0):.1f}")
    return total / max(seen, 1), seen, recent


def train(
    cfg: TrainConfig, resume: bool = False, epochs: int | None = None, callbacks=None, distributed: bool = False
) -> dict:
    """Run (or continue) a training; returns the final history entry.

    On resume the saved settings are used; `epochs` (if given) moves the end of the run, so
    a finished run can be extended (a cosine schedule is stretched to the new end).
    `callbacks`: called after each epoch as cb(epoch, history, nme, predict); None = the
    progress pictures (drawing.ProgressFrames). Launched by torchrun (or with `distributed`, which
    then requires it) the run is data-parallel: see distributed.py."""
    ranks = setup(distributed)
    try:
        return _train(cfg, resume, epochs, callbacks, ranks)
    finally:
        teardown(ranks)


@dataclass
class RunData:
    """What a run trains on and watches: the augmented training faces, the un-augmented faces whose NME is
    logged each epoch (held out, or a fixed set of training faces when nothing is held out), and the
    un-augmented training faces that measure the finished model's output_shift."""

    train_set: LandmarkDataset
    watch_set: LandmarkDataset
    clean_train: LandmarkDataset
    held_out: bool
    n_val: int
    annotation_offset: list[float]
    fingerprint: str  # annotations.dataset_fingerprint: lets a resume accept the data after a move

    @property
    def nme_key(self) -> str:
        return "val_nme" if self.held_out else "fit_nme"


@dataclass
class Trainee:
    """The network being trained and all that moves with it from epoch to epoch (the checkpoint's contents)."""

    model: torch.nn.Module  # the plain network
    trained: torch.nn.Module  # what the loop calls: the network, or DistributedDataParallel around it
    optimizer: torch.optim.Optimizer
    ema: torch.optim.swa_utils.AveragedModel | None
    sampler: GlobalBatchSampler
    history: list[dict]
    epoch: int  # the last complete epoch
    best_nme: float


@dataclass
class RunContext:
    """Where a run executes and writes: the process's rank, the device, the run folder and its clock."""

    ranks: Ranks
    device: torch.device
    bf16: bool
    out: Path
    started: float  # time.time() when this process started the run
    wall_before: float  # the run's wall clock before this process (earlier processes, across resumes)

    @property
    def last_path(self) -> Path:
        return self.out / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out / "best.pt"


def load_run_data(cfg: TrainConfig, ranks: Ranks) -> RunData:
    """The run's faces: split as the config says, cropped into the cache once (rank 0 builds it), with the
    annotation offsets and, with a teacher, its blended targets."""
    main = ranks.main
    split = RunSplit.from_config(cfg)
    if len(split.samples) < 2:
        raise FacepointsError(f"{cfg.data}: need at least 2 annotated faces to train, found {len(split.samples)}")
    if not main:
        barrier(ranks)  # rank 0 builds the crop cache once; the others then read it
    images, points = split.cache()
    if main:
        barrier(ranks)
    train_idx, val_idx, held_out = split.train_idx, split.val_idx, split.held_out
    fingerprint = dataset_fingerprint(cfg.data, split.samples)
    offsets = cache_offsets(split.samples, cfg.cache_side) if cfg.annotation_offsets else None
    if offsets is not None and offsets.any() and main:
        print(f"annotation offsets from {MANIFEST}: mean {offsets.mean(0).round(2).tolist()} px in the cached crops")
    train_offsets = None if offsets is None else offsets[train_idx]
    targets = points[train_idx]
    if cfg.teacher:  # every rank computes them alike (deterministic), before the first epoch and on --resume
        with torch.random.fork_rng():  # building the teacher draws initial weights: the student's must not change
            taught = teacher_points(cfg.teacher, images[train_idx], targets, threads=torch.get_num_threads())
        if main:
            print(f"{cfg.teacher}: {teacher_report(targets, taught)}; targets {cfg.teacher_weight:g} of the way there")
        targets = blend_targets(targets, taught, cfg.teacher_weight)
    train_set = LandmarkDataset(
        images[train_idx], targets, cfg.input_size, cfg.margin, cfg.augment, cfg.seed, train_offsets
    )
    annotation_offset = mean_crop_offset(points[train_idx], train_offsets, cfg.input_size, cfg.margin)
    watch_idx = val_idx if held_out else train_idx[:FIT_FACES]
    watch_set = LandmarkDataset(images[watch_idx], points[watch_idx], cfg.input_size, cfg.margin, None)
    clean_train = LandmarkDataset(images[train_idx], points[train_idx], cfg.input_size, cfg.margin, None)
    return RunData(train_set, watch_set, clean_train, held_out, len(val_idx), annotation_offset, fingerprint)


def build_trainee(cfg: TrainConfig, state: dict | None, ctx: RunContext, n_train: int) -> Trainee:
    """The network, optimizer and moving average, fresh or as the checkpoint `state` left them; wrapped for
    data-parallel training when torchrun launched the run."""
    model = create_model(cfg.arch, input_size=cfg.input_size, **cfg.model_kwargs).to(ctx.device)
    model = model.to(memory_format=torch.channels_last)
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = None
    if cfg.ema:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema)
        )
    history, start_epoch, best_nme = [], 0, float("inf")
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        history, start_epoch, best_nme = state["history"], state["epoch"], state["best_nme"]
    ranks = ctx.ranks
    trained = wrap(model, ranks, ctx.device)  # after loading: DDP starts from rank 0's weights, equal on every rank
    model = getattr(trained, "module", model)  # SyncBatchNorm (GPU) replaced layers: the network DDP holds
    sampler = GlobalBatchSampler(n_train, cfg.batch_size, cfg.seed, ranks.rank, ranks.world)
    if ranks.active:
        torch.manual_seed(cfg.seed * 1000 + ranks.rank)  # dropout masks differ by rank; the weights were seeded alike
    return Trainee(model, trained, optimizer, ema, sampler, history, start_epoch, best_nme)


def progress_callbacks(cfg: TrainConfig, data: RunData, out: Path) -> list:
    """The default per-epoch callbacks: the progress pictures of a few watched faces (drawing.ProgressFrames)."""
    prog = [data.watch_set[i] for i in range(min(cfg.progress_faces, len(data.watch_set)))]
    return [
        ProgressFrames(
            out,
            np.stack([x.numpy() for x, _ in prog]),
            np.stack([y.numpy() for _, y in prog]),
            "val" if data.held_out else "train",
            cfg.epochs,
        )
    ]


def epoch_loader(cfg: TrainConfig, data: RunData, trainee: Trainee, ranks: Ranks, epoch: int):
    """This epoch's batches: the one-process loop's shuffled order, or this rank's share of each of its batches."""
    data.train_set.epoch = epoch
    if ranks.active:  # this rank's share of the one-process loop's batches (distributed.py)
        trainee.sampler.set_epoch(epoch)
        return torch.utils.data.DataLoader(data.train_set, batch_sampler=trainee.sampler, num_workers=cfg.workers)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
    return torch.utils.data.DataLoader(
        data.train_set,
        shuffle=True,
        generator=gen,
        drop_last=len(data.train_set) > cfg.batch_size,
        batch_size=cfg.batch_size,
        num_workers=cfg.workers,
    )


def validate(trainee: Trainee, val_loader, recent, ctx: RunContext) -> tuple[float, float, torch.nn.Module]:
    """(NME of the selected weights, NME of the raw model, the selected network): with a moving average, the
    average (its BatchNorm statistics re-estimated on the epoch's last augmented batches)."""
    preds, targets = predict_batches(trainee.model, val_loader, ctx.device, ctx.bf16)
    val_nme = raw_nme = float(nme(preds, targets).mean())
    selected = trainee.model
    if trainee.ema is not None:
        selected = trainee.ema.module
        torch.optim.swa_utils.update_bn(recent, selected)
        preds, targets = predict_batches(selected, val_loader, ctx.device, ctx.bf16)
        val_nme = float(nme(preds, targets).mean())
    return val_nme, raw_nme, selected


def save_epoch(cfg: TrainConfig, data: RunData, trainee: Trainee, ctx: RunContext, is_best: bool) -> None:
    """best.pt (on a new best, with faces held out), then last.pt, each atomically: a kill between the two
    resumes from best.pt, the newer."""
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "config": asdict(cfg),
        "epoch": trainee.epoch,
        "model": trainee.model.state_dict(),
        "optimizer": trainee.optimizer.state_dict(),
        "history": trainee.history,
        "best_nme": trainee.best_nme,
        "data_fingerprint": data.fingerprint,
        "wall_s": ctx.wall_before + time.time() - ctx.started,  # the run's wall clock so far, resumes included
    }
    if trainee.ema is not None:
        ckpt["ema"] = trainee.ema.state_dict()
    if is_best and data.held_out:  # with nothing held out, best.pt would be a second copy of last.pt
        save_checkpoint(ctx.best_path, ckpt)
    save_checkpoint(ctx.last_path, ckpt)


def fit(trainee: Trainee, data: RunData, cfg: TrainConfig, callbacks, ctx: RunContext) -> dict:
    """The epochs from the trainee's next to `cfg.epochs`: train, then (rank 0) validate, checkpoint, call back
    and log. Returns the last history entry."""
    main = ctx.ranks.main
    loader_kw = dict(batch_size=cfg.batch_size, num_workers=cfg.workers, persistent_workers=cfg.workers > 0)
    val_loader = torch.utils.data.DataLoader(data.watch_set, shuffle=False, **loader_kw)
    entry = trainee.history[-1] if trainee.history else {}
    for epoch in range(trainee.epoch + 1, cfg.epochs + 1):
        loader = epoch_loader(cfg, data, trainee, ctx.ranks, epoch)
        t0 = time.perf_counter()
        train_loss, seen, recent = train_one_epoch(
            trainee.trained,
            trainee.ema,
            trainee.optimizer,
            loader,
            cfg,
            epoch,
            ctx.device,
            ctx.bf16,
            ctx.last_path,
            main,
        )
        if ctx.ranks.active:
            sync_buffers(trainee.model, ctx.ranks)
            total, seen = sum_over_ranks(train_loss * seen, seen)
            train_loss, seen = total / max(seen, 1), int(seen)
        train_time = time.perf_counter() - t0
        if not main:
            continue  # rank 0 validates, selects and writes; the others go on to the next epoch
        val_nme, raw_nme, selected = validate(trainee, val_loader, recent, ctx)
        entry = {
            "epoch": epoch,
            "train_loss": train_loss,
            data.nme_key: val_nme,
            "img_per_s": seen / train_time,
            "epoch_s": time.perf_counter() - t0,
        }
        if trainee.ema is not None:
            entry[f"{data.nme_key}_raw"] = raw_nme
        trainee.history.append(entry)
        is_best = val_nme < trainee.best_nme or not data.held_out  # nothing held out: keep the last epoch
        trainee.best_nme = min(trainee.best_nme, val_nme)
        trainee.epoch = epoch
        save_epoch(cfg, data, trainee, ctx, is_best)

        def predict(crops, net=selected):
            x = torch.from_numpy(np.ascontiguousarray(crops, np.float32))
            return predict_batches(net, [(x, torch.zeros(len(x)))], ctx.device, ctx.bf16)[0]

        for callback in callbacks:
            callback(epoch, trainee.history, val_nme, predict)
        _log_epoch(entry, data, trainee, val_nme, raw_nme)
    return entry


def _log_epoch(entry: dict, data: RunData, trainee: Trainee, val_nme: float, raw_nme: float) -> None:
    best = f" (best {100 * trainee.best_nme:.3f}%)" if data.held_out else ""
    raw = f" raw {100 * raw_nme:.3f}%" if trainee.ema is not None else ""
    print(
        f"epoch {entry['epoch']}: loss {entry['train_loss']:.4g} | "
        f"{'val' if data.held_out else 'train (un-augmented)'} NME {100 * val_nme:.3f}%{best}{raw} | "
        f"{entry['img_per_s']:.1f} img/s | {entry['epoch_s']:.0f}s",
        flush=True,
    )


def _train(cfg: TrainConfig, resume: bool, epochs: int | None, callbacks, ranks: Ranks) -> dict:
    """prepare -> data -> model -> fit -> weights, each a named step above."""
    started = time.time()
    cfg, state = prepare_run(cfg, resume, epochs, ranks.main)
    torch.manual_seed(cfg.seed)
    device = choose_device(ranks.local_rank)
    ctx = RunContext(
        ranks,
        device,
        use_bf16(cfg.precision, device),
        Path(cfg.out),
        started,
        float(state.get("wall_s", 0.0)) if state else 0.0,
    )
    data = load_run_data(cfg, ranks)
    trainee = build_trainee(cfg, state, ctx, len(data.train_set))
    if not ranks.main:
        callbacks = []  # pictures and logs: rank 0's
    elif callbacks is None:
        callbacks = progress_callbacks(cfg, data, ctx.out)
    if ranks.main:
        ctx.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(ctx.out / "config.json", json.dumps(asdict(cfg), indent=2))
        n_params = sum(p.numel() for p in trainee.model.parameters())
        procs = f" | {ranks.world} processes" if ranks.active else ""
        print(
            f"{cfg.arch}: {n_params:,} params | {len(data.train_set)} train / {data.n_val} val faces | "
            f"device {device.type}{' bf16' if ctx.bf16 else ''} | {torch.get_num_threads()} threads{procs}"
        )
    try:
        entry = fit(trainee, data, cfg, callbacks, ctx)
    except KeyboardInterrupt:
        done = trainee.history[-1]["epoch"] if trainee.history else 0
        raise FacepointsError(
            f"interrupted; {ctx.last_path} holds epoch {done}: continue with --resume --out {ctx.out}"
        ) from None
    if not ranks.main:
        return entry
    loader_kw = dict(batch_size=cfg.batch_size, num_workers=cfg.workers, persistent_workers=cfg.workers > 0)
    clean_loader = torch.utils.data.DataLoader(data.clean_train, shuffle=False, **loader_kw)
    shift = write_weights(ctx.out, data.held_out, clean_loader, device, data.annotation_offset)
    print(f"{ctx.out / 'model.pt'}: mean error on the training faces {shift} crop px, recorded as its output_shift")
    return entry

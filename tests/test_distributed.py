"""Data-parallel training under a real torchrun (gloo, 2 processes on this CPU) against one process, and the
sampler that makes N processes train on the one-process loop's batches.

The torchrun test is marked `distributed` (.ci/run runs those as their own step) and bounded by timeouts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from facepoints.checkpoint import RunSplit, load_checkpoint
from facepoints.cli import main
from facepoints.config import AugmentConfig, TrainConfig
from facepoints.distributed import GlobalBatchSampler, epoch_order
from facepoints.errors import FacepointsError
from facepoints.models import create_model
from facepoints.train import train
from facepoints.training_data import LandmarkDataset

from .conftest import TINY, tiny_config

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN_TIMEOUT_S = 420


@pytest.mark.parametrize("n, batch", [(37, 8), (8, 8), (6, 8), (64, 16)])
def test_ranks_share_the_one_process_batches(n, batch):
    """N ranks' shares of each step are, together, the batch the one-process DataLoader of train.py draws."""
    for epoch in (1, 2):
        gen = torch.Generator().manual_seed(3 * 1000 + epoch)  # train.py's loader, seed 3
        loader = torch.utils.data.DataLoader(
            range(n), batch_size=batch, shuffle=True, generator=gen, drop_last=n > batch
        )
        one = [b.tolist() for b in loader]
        assert [i for b in one for i in b][: len(one) * batch] == epoch_order(n, 3, epoch)[: len(one) * batch]
        for world in (1, 2, 4):
            if batch % world or n < world:
                continue
            samplers = [GlobalBatchSampler(n, batch, 3, r, world) for r in range(world)]
            for s in samplers:
                s.set_epoch(epoch)
            steps = list(zip(*samplers))
            assert len(steps) == len(one) == len(samplers[0])
            assert [sum(shares, []) for shares in steps] == one


def test_batch_must_split_evenly_and_distributed_needs_torchrun(face_folder, tmp_path, capsys):
    with pytest.raises(FacepointsError, match="--batch-size 6 is the global batch; it must be a multiple of the 4"):
        GlobalBatchSampler(20, 6, 0, 0, 4)
    assert main(["train", "--data", str(face_folder), "--out", str(tmp_path / "r"), "--distributed"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--distributed: launch with torchrun" in err


def test_rank_and_world_size_without_master_addr_is_one_line(face_folder, tmp_path, capsys, monkeypatch):
    """RANK/WORLD_SIZE set by hand, without MASTER_ADDR/PORT, used to be init_process_group's traceback."""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    assert main(["train", "--data", str(face_folder), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "MASTER_ADDR and MASTER_PORT are not" in err, err
    assert not (tmp_path / "r").exists()
    monkeypatch.setenv("WORLD_SIZE", "two")
    assert main(["train", "--data", str(face_folder), "--out", str(tmp_path / "r")]) == 1
    assert "WORLD_SIZE='two'" in capsys.readouterr().err


def _cfg(data, out, **kw) -> TrainConfig:
    """conftest's tiny run, as the data-parallel comparisons need it: every face trains, one batch of 8."""
    ddp = dict(batch_size=8, lr=1e-3, val_fraction=0.0, annotation_offsets=False, augment=AugmentConfig(rotation=10))
    return tiny_config(data, out, **{**ddp, **kw})


def ghost_batch_reference(cfg: TrainConfig, world: int) -> dict:
    """What DDP computes on CPU, in one process, by hand: the same global batches, each forwarded as `world`
    shares (each normalised by its own BatchNorm statistics: SyncBatchNorm is GPU-only), the shares'
    gradients averaged, one Adam step per global batch."""
    split = RunSplit.from_config(cfg)
    images, points = split.cache()
    ds = LandmarkDataset(
        images[split.train_idx], points[split.train_idx], cfg.input_size, cfg.margin, cfg.augment, cfg.seed
    )
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.arch, input_size=cfg.input_size, **cfg.model_kwargs).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    model.train()
    for epoch in range(1, cfg.epochs + 1):
        ds.epoch = epoch
        samplers = [GlobalBatchSampler(len(ds), cfg.batch_size, cfg.seed, r, world) for r in range(world)]
        for s in samplers:
            s.set_epoch(epoch)
        for shares in zip(*samplers):
            optimizer.zero_grad()
            for share in shares:
                x = torch.stack([ds[i][0] for i in share]).contiguous(memory_format=torch.channels_last)
                y = torch.stack([ds[i][1] for i in share])
                (model.loss(model(x), y) / world).backward()
            optimizer.step()
    return model.state_dict()


@pytest.fixture(scope="module")
def sixteen_faces(tmp_path_factory):
    from .conftest import write_painted_faces

    return write_painted_faces(tmp_path_factory.mktemp("ddpfaces"), 16, seed=5, digits=2)


@pytest.mark.distributed
@pytest.mark.timeout(TORCHRUN_TIMEOUT_S + 120)
def test_torchrun_two_processes_against_one(sixteen_faces, tmp_path, monkeypatch):
    """torchrun --standalone --nproc_per_node=2, one epoch of 2 global batches of 8 faces:
    - both ranks hold the same weights after the epoch, and rank 0 saved them;
    - they equal a one-process computation of the same batches as two ghost batches to float tolerance;
    - the same computation with one share equals the plain one-process run (train()) to float tolerance, so
      2 processes differ from 1 only by BatchNorm's statistics over 4 faces instead of 8 (SyncBatchNorm, which
      would remove that, is GPU-only in torch); the size of that difference is printed."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("FACEPOINTS_CACHE", str(cache))
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    out2 = tmp_path / "two"
    cfg = _cfg(sixteen_faces, out2)
    env = {
        **os.environ,
        "DDP_DUMP": str(dumps),
        "OMP_NUM_THREADS": "1",
        "FACEPOINTS_CACHE": str(cache),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    # the tiny model's widths have no CLI option: the run's config.json holds them, and --resume starts from it
    out2.mkdir()
    (out2 / "config.json").write_text(json.dumps(asdict(cfg)))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(ROOT / "tests" / "ddp_worker.py"),
        "--resume",
        "--out",
        str(out2),
        "--distributed",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TORCHRUN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 processes" in proc.stdout
    rank0 = torch.load(dumps / "rank0.pt", weights_only=True)
    rank1 = torch.load(dumps / "rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0), "the ranks' weights differ"
    saved = load_checkpoint(out2 / "last.pt")
    assert saved["epoch"] == 1 and saved["config"] == asdict(cfg)
    assert all(torch.equal(saved["model"][k], rank0[k]) for k in rank0)
    assert (out2 / "model.pt").exists() and (out2 / "progress.gif").exists()

    params = [k for k in rank0 if rank0[k].is_floating_point() and "running" not in k]
    # the references run on one thread like each rank (OMP_NUM_THREADS=1 above): CI runs pytest on 2 threads, and
    # oneDNN's thread-dependent summation order, amplified by Adam's first steps, moved weights by up to 3.6e-3
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ghost = ghost_batch_reference(cfg, world=2)
        train(_cfg(sixteen_faces, tmp_path / "one"))  # the plain one-process loop, same global batch of 8
        ghost1 = ghost_batch_reference(cfg, world=1)  # the reference with one share is the plain loop ...
    finally:
        torch.set_num_threads(threads)
    ghost_diff = max((rank0[k] - ghost[k]).abs().max().item() for k in params)
    assert ghost_diff < 1e-5, ghost_diff
    one = load_checkpoint(tmp_path / "one" / "last.pt")["model"]
    assert max((ghost1[k] - one[k]).abs().max().item() for k in params) < 1e-5
    # ... so 2 processes differ from 1 by BatchNorm's statistics over 4 faces instead of 8, nothing else. Adam's
    # first steps move each weight by ~lr whatever its gradient's size, so that shows at the scale of the update:
    torch.manual_seed(0)
    start = create_model("pipnet_small", input_size=128, **TINY).state_dict()
    moved = np.mean([(one[k] - start[k]).abs().mean().item() for k in params])
    differ = np.mean([(rank0[k] - one[k]).abs().mean().item() for k in params])
    print(
        f"\n2 processes vs ghost-batch reference: max |dw| {ghost_diff:.2e}; vs 1 process: mean |dw| {differ:.2e} "
        f"against a mean update of {moved:.2e} in one epoch"
    )

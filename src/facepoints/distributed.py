"""Data-parallel training: the process group torchrun (or Ray Train) sets up, and each rank's share of a batch.

`facepoints train` becomes data-parallel when launched by torchrun (its RANK/WORLD_SIZE environment):
the process group is initialised from the environment (gloo on CPU, nccl on GPU), the model is
wrapped in DistributedDataParallel, and rank 0 alone writes checkpoints, logs and pictures.

`--batch-size` stays the global batch: each of N ranks takes a contiguous 1/N of every batch the
one-process loop would draw (`GlobalBatchSampler`), so N processes train on the same batches as one,
the saved TrainConfig means the same thing whatever N, and `--resume` may change N. Augmentation is
seeded per face and epoch (training_data.py), not per process, so a face is augmented the same on any rank.

On CPU, BatchNorm normalises each rank's share with that share's own statistics (torch's SyncBatchNorm
is GPU-only); with N ranks that is ghost batch norm over batch/N faces, a small difference from one
process (tests/test_distributed.py measures it). On GPU the BatchNorm layers are synchronised.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import FacepointsError


@dataclass(frozen=True)
class Ranks:
    """Where this process stands: `rank` of `world`, `local_rank` of `local_world` on its machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    owns_group: bool = False  # this process initialised the group, and destroys it at the end

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def launched_by_torchrun() -> bool:
    world = os.environ.get("WORLD_SIZE", "1")
    if not world.strip().isdigit():
        raise FacepointsError(f"WORLD_SIZE={world!r} in the environment is not a number of processes")
    return int(world) > 1 and "RANK" in os.environ


def check_launch_environment() -> None:
    """torchrun sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT together; a shell that sets only some of
    them would make init_process_group fail with a traceback (or wait for peers that never come)."""
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise FacepointsError(
            f"RANK and WORLD_SIZE are set but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not: "
            "launch with torchrun (it sets all four), or unset RANK and WORLD_SIZE for a one-process run"
        )
    if not os.environ["RANK"].strip().isdigit() or not os.environ["MASTER_PORT"].strip().isdigit():
        raise FacepointsError(
            f"RANK={os.environ['RANK']!r} and MASTER_PORT={os.environ['MASTER_PORT']!r} must be numbers"
        )


def threads_per_rank(local_world: int) -> int:
    """CPU threads for one of `local_world` ranks on a machine: its share of the cores. torchrun sets
    OMP_NUM_THREADS=1 for every rank unless told otherwise; a value other than 1 is the user's and is kept."""
    asked = os.environ.get("OMP_NUM_THREADS")
    if asked not in (None, "", "1") and asked.isdigit():
        return int(asked)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // local_world)


def setup(requested: bool = False) -> Ranks:
    """Join the process group when launched by torchrun (or already in one, as under Ray Train's
    TorchTrainer); a plain one-process Ranks() otherwise. `requested` (--distributed) without a
    launcher's environment is an error, not a silent one-process run."""
    if not dist.is_available():
        if requested:
            raise FacepointsError("--distributed: this torch build has no torch.distributed")
        return Ranks()
    joined = dist.is_initialized()
    if not joined and not launched_by_torchrun():
        if requested and "RANK" not in os.environ:
            raise FacepointsError(
                "--distributed: launch with torchrun, e.g. torchrun --standalone --nproc_per_node=2 "
                "$(which facepoints) train ... (RANK and WORLD_SIZE are not set)"
            )
        return Ranks()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if not joined:
        check_launch_environment()
        if cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if cuda else "gloo")  # env://: MASTER_ADDR/PORT, RANK, WORLD_SIZE
    ranks = Ranks(
        dist.get_rank(), dist.get_world_size(), local_rank, int(os.environ.get("LOCAL_WORLD_SIZE", "1")), not joined
    )
    if not cuda:
        torch.set_num_threads(threads_per_rank(ranks.local_world))
    return ranks


def teardown(ranks: Ranks) -> None:
    if ranks.owns_group and dist.is_initialized():
        dist.barrier()  # rank 0 may still be writing model.pt
        dist.destroy_process_group()


def barrier(ranks: Ranks) -> None:
    if ranks.active:
        dist.barrier()


def wrap(model: torch.nn.Module, ranks: Ranks, device: torch.device) -> torch.nn.Module:
    """The model DDP trains (gradients all-reduced in backward); the plain module is `.module`."""
    if not ranks.active:
        return model
    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    return torch.nn.parallel.DistributedDataParallel(model)


def sync_buffers(model: torch.nn.Module, ranks: Ranks) -> None:
    """Rank 0's BatchNorm running statistics to every rank (each rank's last forward updated its own)."""
    if ranks.active:
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)


def sum_over_ranks(*values: float) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64)
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t.tolist()


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The order of the one-process loop's shuffled DataLoader in `epoch` (train.py seeds it seed * 1000 + epoch),
    drawn through a DataLoader too, so it stays that order whatever the DataLoader does with its generator."""
    gen = torch.Generator().manual_seed(seed * 1000 + epoch)
    loader = torch.utils.data.DataLoader(range(n), batch_size=max(n, 1), shuffle=True, generator=gen)
    return [int(i) for batch in loader for i in batch]


class GlobalBatchSampler(torch.utils.data.Sampler):
    """This rank's share of each batch of the one-process loop (a batch sampler: it yields index lists).

    Not torch's DistributedSampler, on purpose: that one strides and pads a permutation of its own, so
    N ranks would see other batches than one process, and a batch's faces would depend on N. Here the
    global batches are the one-process loop's (`epoch_order`, cut in `batch_size`, the last partial one
    dropped when the set is larger than a batch, as train.py does), each split in `world` contiguous
    slices. `set_epoch` must be called every epoch, as for DistributedSampler."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int, world: int):
        if batch_size % world:
            raise FacepointsError(
                f"--batch-size {batch_size} is the global batch; it must be a multiple of the {world} processes"
            )
        if n < world:
            raise FacepointsError(f"{n} training faces cannot be shared by {world} processes")
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_batches(self) -> list[list[int]]:
        order = epoch_order(self.n, self.seed, self.epoch)
        full = self.n // self.batch_size if self.n > self.batch_size else 0
        batches = [order[k * self.batch_size : (k + 1) * self.batch_size] for k in range(full)]
        return batches or [order]  # a set no larger than one batch is one batch

    def __iter__(self):
        for batch in self.global_batches():
            share = len(batch) / self.world
            yield batch[math.floor(self.rank * share) : math.floor((self.rank + 1) * share)]

    def __len__(self) -> int:
        return self.n // self.batch_size if self.n > self.batch_size else 1

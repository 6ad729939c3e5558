"""Run by tests/test_distributed.py under torchrun: `facepoints train ARGS...`, each rank also saving its
weights after every epoch (once rank 0's BatchNorm statistics have been shared) to $DDP_DUMP/rank{r}.pt."""

import os
import sys

import torch
import torch.distributed as dist

import facepoints.train as train_module
from facepoints.cli import main

real_sync = train_module.sync_buffers


def sync_and_dump(model, ranks):
    real_sync(model, ranks)
    torch.save(model.state_dict(), os.path.join(os.environ["DDP_DUMP"], f"rank{dist.get_rank()}.pt"))


train_module.sync_buffers = sync_and_dump
sys.exit(main(["train", *sys.argv[1:]]))

"""One process or several under ``torchrun``: ranks, all-reductions, and what only the main process shows."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler, Sampler

from edgekit.board import events

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Distribution:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any_(self, *flags: bool) -> list[bool]:
        """Per flag, whether any rank raised it (one all-reduce for all of them)."""
        if self.world == 1:
            return list(flags)
        summed = self.sum_(torch.tensor([int(f) for f in flags], device=self.device))
        return [bool(v) for v in summed.tolist()]

    def task(self, description: str, total: int | None) -> AbstractContextManager[events.Task | None]:
        """A progress task on the main process; None on the others (one bar per run, not one per rank)."""
        return events.task(description, total) if self.main else nullcontext(None)


def init_distributed() -> Distribution:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; without them this is a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world == 1:
        return Distribution(0, 1, torch.device("cuda" if cuda else "cpu"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    if cuda:
        torch.cuda.set_device(local)
    rank = dist.get_rank()
    if rank == 0:
        log.info("distributed: %d processes, backend %s", world, backend)
    return Distribution(rank, world, torch.device(f"cuda:{local}" if cuda else "cpu"))


class SkipFirst(Sampler[int]):
    """The epoch's sampler with its first `skip` indices dropped: resuming mid-epoch sees the remaining samples."""

    def __init__(self, base: DistributedSampler[Any], skip: int) -> None:
        self.base, self.skip = base, skip

    def __iter__(self) -> Iterator[int]:
        for position, index in enumerate(self.base):
            if position >= self.skip:
                yield index

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)

"""Checkpoint writes: a Ctrl-C or SIGTERM arriving inside torch's zip writer is still the interrupt, never a
RuntimeError traceback, and leaves no partial file."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import torch

from edgekit.board.classes import ClassSet
from edgekit.board.interrupts import Interrupted
from edgekit.board.preprocess import ESPNET_CITYSCAPES
from edgekit.checkpoint import Checkpoint


def _big_checkpoint() -> Checkpoint:
    state = {f"layer{i}.weight": torch.randn(1024, 1024) for i in range(48)}  # 192 MiB: a save takes a while
    return Checkpoint("espnet-c", {}, ClassSet.generic(3), ESPNET_CITYSCAPES, state)


def test_an_interrupt_inside_torch_save_is_the_interrupt_and_leaves_no_partial(tmp_path: Path) -> None:
    checkpoint = _big_checkpoint()
    started = time.perf_counter()
    checkpoint.save(tmp_path / "timing.pt")
    seconds = time.perf_counter() - started

    def sigterm_now(_signum: int, _frame: object) -> None:
        raise Interrupted(signal.SIGTERM)  # what the CLI's SIGTERM handler raises

    previous = signal.signal(signal.SIGALRM, sigterm_now)
    try:
        for fraction in (0.2, 0.4, 0.6):  # inside torch's record writes (the first run fell there: "unexpected pos")
            target = tmp_path / f"at-{fraction}.pt"
            signal.setitimer(signal.ITIMER_REAL, seconds * fraction)
            try:
                with pytest.raises(KeyboardInterrupt) as caught:
                    checkpoint.save(target)
                    time.sleep(seconds)  # a save that finished first still meets the alarm here
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            assert isinstance(caught.value, Interrupted) and caught.value.signum == signal.SIGTERM
            assert not target.with_name(target.name + ".partial").exists()
    finally:
        signal.signal(signal.SIGALRM, previous)

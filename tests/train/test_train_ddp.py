"""The same training command under torchrun with two CPU processes: DistributedDataParallel over gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from edgekit.checkpoint import Checkpoint


def test_two_process_ddp_training(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "edgekit", "train", "--model", "espnet-c", "--out", str(tmp_path), "--input-size", "64x32",
        "--epochs", "1", "--batch-size", "2", "--workers", "0", "--threads", "1",
        "--synthetic-train", "8", "--synthetic-val", "3",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "distributed: 2 processes, backend gloo" in done.stderr
    # 8 scenes over 2 ranks with batch 2: 2 steps per rank; validation gathers all 3 scenes across ranks.
    record = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert record["epoch"] == 1 and record["train_loss"] > 0
    last = Checkpoint.load(tmp_path / "last.pt")
    assert last.training is not None and last.training["global_step"] == 2
    assert not any(key.startswith("module.") for key in last.state_dict)  # saved unwrapped, loadable anywhere

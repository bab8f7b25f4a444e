"""edgekit scale: the step rule on a stub latency, the board kit round trip in real processes, resume after signals."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

from edgekit.scale.space import MAX_STEP_LENGTH, TINY, Arch, plan_step, slope


def stub_latency(arch: Arch) -> float:
    """A latency with a known closed form: 1 ms per block, 0.01 ms per channel, 8 ms per 1/8 of resolution."""
    return sum(arch.depth) + 0.01 * sum(arch.width) + 8.0 * sum(arch.eighths)


def test_step_rule_target_and_step_lengths_on_a_stub_latency() -> None:
    plan = plan_step(TINY, stub_latency)
    assert not plan.missing
    # Tiny: 5 blocks + 0.92 ms of channels + 4 eighths * 8 = 37.92 ms. One-step expansions add at most
    # 4 blocks (depth), 1.12 ms (widest width delta) or 8 ms (1/8 of resolution): the target is 45.92 ms.
    assert plan.one_step_max_ms == pytest.approx(45.92)
    assert plan.target_ms == pytest.approx(45.92)
    lengths = {p.operator.name: p.step_length for p in plan.proposals}
    # depth +4/step: 8 ms needs 2 steps; +3/step: 3 steps (9 ms, |1.0| beats 2 steps' |2.0|); +2/step: 4 steps.
    assert lengths["depth+(0,1,1,1,1)"] == 2
    assert lengths["depth+(0,0,1,1,1)"] == 3
    assert lengths["depth+(0,0,0,1,1)"] == 4
    # width (4,8,16,32,32) adds 0.92 ms a step: 8/0.92 = 8.7 -> 9 steps (8.28 ms) beats 8 (7.36 ms).
    assert lengths["width+(4,8,16,32,32)"] == 9
    # (0,0,0,32,32) adds 0.64 ms: 12.5 steps; 12 (7.68) and 13 (8.32) tie at 0.32 ms: the longer wins.
    assert lengths["width+(0,0,0,32,32)"] == 13
    # Resolution on path 1, 2 or 3: one step is the target itself. Paths 2 and 3 give the same network once.
    assert lengths["resolution+(1,0,0)/8"] == 1
    assert sum(1 for p in plan.proposals if p.operator.dimension == "resolution") == 2
    assert len({p.arch.key for p in plan.proposals}) == len(plan.proposals)


def test_step_rule_caps_the_target_at_the_budget_and_never_proposes_the_parent() -> None:
    plan = plan_step(TINY, stub_latency, budget_ms=40.0)
    assert plan.target_ms == 40.0 and plan.one_step_max_ms == pytest.approx(45.92)
    assert all(p.step_length >= 1 for p in plan.proposals)
    lengths = {p.operator.name: p.step_length for p in plan.proposals}
    assert lengths["depth+(0,1,1,1,1)"] == 1  # 41.92 is nearer 40 than the parent, but the parent is no candidate
    assert lengths["width+(4,8,16,32,32)"] == 2  # 39.76 ms


@pytest.mark.parametrize(("lookahead", "max_rounds", "max_measured"), [(1, 5, 35), (3, 3, 50)])
def test_step_rule_asks_for_what_it_does_not_know_then_completes(
    lookahead: int, max_rounds: int, max_measured: int
) -> None:
    """Measured round by round, the plan equals the one with every latency known, measuring a few networks per
    operator (the official walk up from 1 would measure 2 + 3 + 4 + 9 + ... + 13 of them)."""
    known: dict[str, float] = {}
    rounds = 0
    while True:
        plan = plan_step(TINY, lambda a: known.get(a.key), lookahead=lookahead)
        if not plan.missing:
            break
        rounds += 1
        assert not {a.key for a in plan.missing} & set(known)  # nothing is asked twice
        for arch in plan.missing:
            known[arch.key] = stub_latency(arch)
    everything = plan_step(TINY, stub_latency)
    assert [(p.operator, p.step_length) for p in plan.proposals] == [
        (p.operator, p.step_length) for p in everything.proposals
    ]
    assert rounds <= max_rounds
    assert len(known) <= max_measured


def test_step_length_is_bounded_on_a_latency_that_never_reaches_the_target() -> None:
    def flat_width(arch: Arch) -> float:
        return stub_latency(Arch(arch.depth, TINY.width, arch.eighths))  # width costs nothing

    plan = plan_step(TINY, flat_width)
    assert {p.operator.name: p.step_length for p in plan.proposals}["width+(0,0,0,32,32)"] == MAX_STEP_LENGTH


def test_slope_divides_by_the_parents_latency_not_its_miou() -> None:
    # +0.1 mIoU for +5 ms over a 10 ms parent: 0.02 per ms. The official bug (latency - parent mIoU) gives
    # 0.1 / (15 - 0.3) = 0.0068.
    assert slope(0.4, 15.0, 0.3, 10.0) == pytest.approx(0.02)
    assert not math.isclose(slope(0.4, 15.0, 0.3, 10.0), 0.1 / (15.0 - 0.3))
    with pytest.raises(ValueError, match="not above the parent"):
        slope(0.4, 9.0, 0.3, 10.0)  # measured faster than its parent: noise, not a slope


def _edgekit(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgekit", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


SMALL = ["--target", "cpu-x86", "--input-size", "64x32", "--proxy-seconds", "1", "--max-steps", "1",
         "--timing-budget", "0.2", "--threads", "1", "--batch-size", "2"]  # fmt: skip


def _family(out: Path) -> dict:
    return json.loads((out / "family.json").read_text())


def test_kit_round_trip_board_measures_and_scale_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    kit_flow = [*SMALL, "--budget-ms", "500", "--measure", "kit", "--kit-lookahead", "1", "-o", str(out)]
    first = subprocess.run(_edgekit("scale", *kit_flow),
                           env=_env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert first.returncode == 0, first.stderr
    state = _family(out)
    assert state["latencies"] == {} and len(state["kits"]) == 1
    kit = out / state["kits"][0]["path"]
    kit_doc = json.loads((kit / "kit.json").read_text())
    # The start network and its ten one-step expansions (two resolution ones build the same network).
    assert len(kit_doc["candidates"]) == 10 and kit_doc["backend"] == "onnxruntime"
    assert "scale-measure" in first.stderr

    latencies = tmp_path / "latencies.json"
    board = subprocess.run(_edgekit("scale-measure", str(kit), "-o", str(latencies)), env=_env(),
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert board.returncode == 0, board.stderr
    measured = json.loads(latencies.read_text())
    assert set(measured["measured"]) == {c["key"] for c in kit_doc["candidates"]}
    assert all(m["latency_ms"]["p50_ms"] > 0 and m["backend"]["provider"] == "CPUExecutionProvider"
               for m in measured["measured"].values())  # fmt: skip

    resumed = subprocess.run(_edgekit("scale", *kit_flow, "--resume", "--latencies", str(latencies)),
                             env=_env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    state = _family(out)
    assert state["device"]["hostname"] == measured["device"]["hostname"]
    assert state["latencies"][TINY.key]["latency_ms"] == measured["measured"][TINY.key]["latency_ms"]
    assert TINY.key in state["proxy"]  # the start network trained once its latency fitted the budget
    # The next round asks the board only for step lengths it has not measured.
    assert len(state["kits"]) == 2 and state["kits"][0]["merged"]
    second = json.loads((out / state["kits"][1]["path"] / "kit.json").read_text())
    assert second["candidates"] and not {c["key"] for c in second["candidates"]} & set(measured["measured"])

    stale = subprocess.run(_edgekit("scale", *kit_flow, "--resume", "--latencies", str(tmp_path / "missing.json")),
                           env=_env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert stale.returncode == 2 and "cannot read latencies" in stale.stderr


def _wait_for(out: Path, done, process: subprocess.Popen, timeout: float = 240.0) -> dict:  # type: ignore[no-untyped-def,type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            state = _family(out)
        except (FileNotFoundError, ValueError):
            state = None
        if state is not None and done(state):
            return state
        time.sleep(0.2)
    process.kill()
    raise AssertionError("the run did not get there in time")


def test_sigterm_then_resume_remeasures_nothing_and_ctrl_c_stops_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = _edgekit("scale", *SMALL, "--budget-ms", "500", "--measure", "here", "-o", str(out))
    process = subprocess.Popen(command, env=_env(), stderr=subprocess.PIPE, text=True)
    before = _wait_for(out, lambda s: TINY.key in s["proxy"] and len(s["latencies"]) >= 4, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "--resume" in stderr
    interrupted = _family(out)
    assert len(interrupted["latencies"]) >= len(before["latencies"])

    process = subprocess.Popen([*command, "--resume"], env=_env(), stderr=subprocess.PIPE, text=True)
    grown = _wait_for(out, lambda s: len(s["latencies"]) >= len(interrupted["latencies"]) + 2, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGINT, stderr
    for key, record in interrupted["latencies"].items():
        assert grown["latencies"][key] == record  # kept, not measured again
    assert grown["proxy"][TINY.key] == interrupted["proxy"][TINY.key]  # not trained again


def test_a_precision_the_target_lacks_is_substituted_out_loud(tmp_path: Path) -> None:
    """--precision int8 on the Nano (no fast INT8) scales in FP16 and says why, in the log and in family.json."""
    result = subprocess.run(
        [sys.executable, "-m", "edgekit", "scale", "--target", "jetson-nano", "--budget-ms", "30",
         "--precision", "int8", "--input-size", "128x64", "-o", str(tmp_path / "family")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "INT8 is not available on jetson-nano" in result.stderr and "using FP16 instead" in result.stderr
    settings = json.loads((tmp_path / "family" / "family.json").read_text())["settings"]
    assert settings["precision"] == "fp16"


def test_the_scale_command_leaves_its_defaults_to_scale_config() -> None:
    """Flags left out stay out of the namespace (ScaleConfig's defaults apply); every flag given but
    --timing-budget (it replaces the stop rule's budget) lands on a field of the same name."""
    from dataclasses import fields

    from edgekit.cli import build_parser
    from edgekit.scale import ScaleConfig

    parser = build_parser()
    required = ["scale", "--target", "cpu-x86", "--budget-ms", "20", "-o", "family"]
    bare = parser.parse_args(required)
    assert {f.name for f in fields(ScaleConfig) if hasattr(bare, f.name)} == {"target", "budget_ms", "out_dir"}
    every = parser.parse_args(
        [*required, "--data", "d", "--input-size", "64x32", "--precision", "fp32", "--proxy-seconds", "2",
         "--max-steps", "2", "--finetune-seconds", "1", "--measure", "here", "--threads", "1", "--batch-size", "2",
         "--workers", "1", "--seed", "1", "--timing-budget", "0.5", "--compare", "lpsnet-s", "--kit-lookahead", "2",
         "--resume", "--latencies", "l.json"]
    )  # fmt: skip
    given = {name for name in vars(every) if name not in ("command", "func", "timing_budget")}
    assert given <= {f.name for f in fields(ScaleConfig)} and len(given) == 18

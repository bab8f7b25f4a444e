"""LPS-Net's search space and step rule (Zhang et al., CVPR 2022, §3.3; the official ``expand.py``).

A network is {B, C, R}: blocks per stage, channels per stage and the input scale of up to three paths. One step
grows the current network along one dimension: the target latency is the largest latency among the one-step
expansions, every operator takes the integer step length whose latency lands nearest that target, and the
candidate with the best mIoU gain per latency gain wins. The official ``get_slope`` divides by
``latency - parent.miou``; here the slope divides by the parent's latency, as the paper defines it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The official expansion operators (expand.py). Resolutions are kept in units of 1/8 so they stay exact.
DEPTH_DELTAS = ((0, 1, 1, 1, 1), (0, 0, 1, 1, 1), (0, 0, 0, 1, 1))
WIDTH_DELTAS = ((4, 8, 16, 32, 32), (0, 8, 16, 32, 32), (0, 0, 16, 32, 32), (0, 0, 0, 32, 32))
RESOLUTION_DELTAS = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
RESOLUTION_UNIT = 8
MAX_STEP_LENGTH = 16  # an operator never needs more to reach the target; a bound against a noisy latency plateau
MIN_LATENCY_GAIN_MS = 0.01  # a smaller one-step gain is noise: the step-length search extrapolates from this


@dataclass(frozen=True)
class Arch:
    """{B, C, R}; ``eighths`` holds each of the three path slots in units of 1/8, 0 where the path is absent.

    The slots are kept as the official code keeps them (expanding slot 2 of a one-path network adds a path), and
    the network is built with the present paths sorted highest first, as the zoo's LPS-Net requires.
    """

    depth: tuple[int, ...]
    width: tuple[int, ...]
    eighths: tuple[int, ...]

    @property
    def resolution(self) -> tuple[float, ...]:
        return tuple(e / RESOLUTION_UNIT for e in sorted((e for e in self.eighths if e > 0), reverse=True))

    @property
    def key(self) -> str:
        """Identity of the built network (slots sorted, as the official ``hash``): equal keys, equal networks."""
        paths = sorted((e for e in self.eighths if e > 0), reverse=True)
        return "B{}_C{}_R{}".format(
            "-".join(map(str, self.depth)), "-".join(map(str, self.width)), "-".join(f"{e}o8" for e in paths)
        )

    def model_kwargs(self) -> dict[str, Any]:
        """Arguments of the zoo's ``lpsnet-scaled`` builder (plain lists, so a checkpoint stores them)."""
        return {"depth": list(self.depth), "width": list(self.width), "resolution": list(self.resolution)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "B": list(self.depth),
            "C": list(self.width),
            "R": list(self.resolution),
            "R_slots_eighths": list(self.eighths),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Arch:
        return cls(tuple(data["B"]), tuple(data["C"]), tuple(data["R_slots_eighths"]))


# The official start point: B (1,1,1,1,1), C (4,8,16,32,32), one path at 1/2.
TINY = Arch((1, 1, 1, 1, 1), (4, 8, 16, 32, 32), (4, 0, 0))


@dataclass(frozen=True)
class Operator:
    """One expansion direction; ``apply(arch, k)`` adds ``k`` times its delta."""

    dimension: str  # depth, width or resolution
    delta: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"{self.dimension}+({','.join(map(str, self.delta))})" + ("/8" if self.dimension == "resolution" else "")

    def apply(self, arch: Arch, step_length: int) -> Arch:
        def grown(values: tuple[int, ...]) -> tuple[int, ...]:
            return tuple(v + d * step_length for v, d in zip(values, self.delta, strict=True))

        if self.dimension == "depth":
            return Arch(grown(arch.depth), arch.width, arch.eighths)
        if self.dimension == "width":
            return Arch(arch.depth, grown(arch.width), arch.eighths)
        return Arch(arch.depth, arch.width, grown(arch.eighths))


OPERATORS = (
    *(Operator("depth", d) for d in DEPTH_DELTAS),
    *(Operator("width", d) for d in WIDTH_DELTAS),
    *(Operator("resolution", d) for d in RESOLUTION_DELTAS),
)


@dataclass(frozen=True)
class Proposal:
    """A candidate of one step: the operator, its step length and the network they make."""

    operator: Operator
    step_length: int
    arch: Arch


@dataclass(frozen=True)
class StepPlan:
    """The candidates of one step, or (``missing`` not empty) the networks whose latency is needed first."""

    one_step_max_ms: float | None  # the paper's target: the largest latency of the one-step expansions
    target_ms: float | None  # that target, capped at the budget so the last step lands on it instead of past it
    proposals: tuple[Proposal, ...]
    missing: tuple[Arch, ...]


def _unique(archs: list[Arch]) -> tuple[Arch, ...]:
    """First of each network: two slot vectors such as (4, 1, 0) and (4, 0, 1) build the same network."""
    first: dict[str, Arch] = {}
    for arch in archs:
        first.setdefault(arch.key, arch)
    return tuple(first.values())


def _first_guess(parent_ms: float, one_step_ms: float, target_ms: float) -> int:
    """The step length a latency linear in it would need: the first probe of the search."""
    gain = max(one_step_ms - parent_ms, MIN_LATENCY_GAIN_MS)
    return max(2, min(MAX_STEP_LENGTH, math.ceil((target_ms - parent_ms) / gain)))


def _step_length(
    op: Operator, parent: Arch, latency_ms: Callable[[Arch], float | None], target: float, lookahead: int
) -> tuple[int | None, list[Arch]]:
    """(step length, None) for one operator, or (None, the networks to measure first).

    The shortest length whose latency reaches the target, or the one before it where that one is nearer (a tie
    takes the longer, as the official ``<``), never 0 (the parent itself). The official code walks up from 1;
    with latency growing in the step length a search of [1, MAX_STEP_LENGTH] finds the same length with a few
    measurements: first the linear extrapolation of the one-step latency, then bisection (``lookahead`` > 1
    splits the interval into more parts per round, for a board that measures a round at a time).
    """
    known = {k: latency_ms(op.apply(parent, k)) for k in range(1, MAX_STEP_LENGTH + 1)}
    first = known[1]
    assert first is not None, "the one-step latencies are known before step lengths are searched"
    if first >= target:
        return 1, []
    high = min((k for k, v in known.items() if v is not None and v >= target), default=MAX_STEP_LENGTH + 1)
    low = max(k for k, v in known.items() if v is not None and v < target and k < high)
    if high - low > 1:
        if all(v is None for k, v in known.items() if low < k < high):
            parent_ms = latency_ms(parent)
            probes = {_first_guess(float(parent_ms or 0.0), first, target)}
        else:
            probes = set()
        parts = max(lookahead, 1) + 1
        probes |= {low + (high - low) * i // parts for i in range(1, parts)}
        wanted = [k for k in sorted(probes) if low < k < high and known[k] is None]
        return None, [op.apply(parent, k) for k in wanted]
    if high > MAX_STEP_LENGTH:
        return MAX_STEP_LENGTH, []
    low_ms, high_ms = known[low], known[high]
    assert low_ms is not None and high_ms is not None
    return (low if abs(target - low_ms) < abs(target - high_ms) else high), []


def plan_step(
    parent: Arch,
    latency_ms: Callable[[Arch], float | None],
    budget_ms: float | None = None,
    lookahead: int = 1,
) -> StepPlan:
    """The paper's step from ``parent``, given the latencies known so far (``latency_ms`` answers None if unknown).

    The target is the largest latency among the one-step expansions (capped at the budget); each operator's step
    length is the one nearest that target (see ``_step_length``); networks that two operators reach alike are
    proposed once.
    """
    one_step = [op.apply(parent, 1) for op in OPERATORS]
    unknown = [a for a in [parent, *one_step] if latency_ms(a) is None]
    if unknown:
        return StepPlan(None, None, (), _unique(unknown))
    one_step_max = max(float(latency_ms(a) or 0.0) for a in one_step)
    target = min(one_step_max, budget_ms) if budget_ms is not None else one_step_max
    proposals: list[Proposal] = []
    missing: list[Arch] = []
    for op in OPERATORS:
        chosen, needed = _step_length(op, parent, latency_ms, target, lookahead)
        missing.extend(needed)
        if chosen is not None:
            proposals.append(Proposal(op, chosen, op.apply(parent, chosen)))
    if missing:
        return StepPlan(one_step_max, target, (), _unique(missing))
    first: dict[str, Proposal] = {}
    for proposal in proposals:
        first.setdefault(proposal.arch.key, proposal)
    return StepPlan(one_step_max, target, tuple(first.values()), ())


def slope(miou: float, latency: float, parent_miou: float, parent_latency: float) -> float:
    """mIoU gained per millisecond added: (mIoU - parent mIoU) / (latency - parent latency).

    The official ``get_slope`` subtracts ``parent.miou`` from the latency; this subtracts the parent's latency.
    A candidate measured no slower than its parent has no slope (a larger network is not faster: that is noise).
    """
    if latency <= parent_latency:
        raise ValueError(f"latency {latency} ms is not above the parent's {parent_latency} ms: no slope")
    return (miou - parent_miou) / (latency - parent_latency)

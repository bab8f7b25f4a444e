"""Timed runs that stop when the estimate is stable, not after an arbitrary count.

The CPU here (and a Jetson under thermal control) is noisy, so the mean of a fixed number of runs can move by
tens of percent between two benches. We time until the distribution-free 95% confidence interval of the median
is narrow relative to the median (or a time budget runs out, which the result then says), and report the median
as the headline: it is robust to the outliers a shared machine produces.
"""

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from edgekit.board.stats import latency_summary

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass(frozen=True)
class StopRule:
    """When to stop timing: relative half-width of the median's 95% CI below ``target_rel_ci``, or the budget."""

    warmup: int = 5
    min_runs: int = 20
    max_runs: int = 2000
    budget_s: float = 20.0
    target_rel_ci: float = 0.02


@dataclass(frozen=True)
class TimingResult:
    samples_s: List[float]
    stable: bool
    stop_reason: str
    rel_ci: float  # half-width of the median's 95% CI divided by the median

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def median_ci(samples: np.ndarray, z: float = Z_95) -> Tuple[float, float]:
    """Distribution-free CI of the median from order statistics (binomial normal approximation).

    The ranks n/2 ± z·sqrt(n)/2 bracket the population median with the stated confidence whatever the latency
    distribution looks like, so no bootstrap (and no normality assumption) is needed.
    """
    ordered = np.sort(np.asarray(samples, dtype=np.float64))
    n = ordered.size
    if n == 0:
        raise ValueError("no samples")
    half = z * math.sqrt(n) / 2.0
    low = max(0, math.floor(n / 2.0 - half))
    high = min(n - 1, math.ceil(n / 2.0 + half) - 1)
    return float(ordered[low]), float(ordered[high])


def relative_ci(samples: np.ndarray) -> float:
    """Half-width of the median's 95% CI over the median; inf with too few samples to say."""
    if len(samples) < 5:
        return math.inf
    low, high = median_ci(np.asarray(samples))
    median = float(np.median(samples))
    return (high - low) / 2.0 / median if median > 0 else math.inf


def time_until_stable(run_once: Callable[[], object], rule: StopRule = StopRule()) -> TimingResult:
    """Warm up, then time ``run_once`` until the median is stable, ``max_runs`` is reached or the budget is spent."""
    for _ in range(rule.warmup):
        run_once()
    samples: List[float] = []
    deadline = time.perf_counter() + rule.budget_s
    rel = math.inf
    while True:
        start = time.perf_counter()
        run_once()
        samples.append(time.perf_counter() - start)
        if len(samples) >= rule.min_runs:
            rel = relative_ci(np.asarray(samples))
            if rel <= rule.target_rel_ci:
                return TimingResult(samples, True, f"median 95% CI within ±{rule.target_rel_ci:.0%}", rel)
            if len(samples) >= rule.max_runs:
                return TimingResult(samples, False, f"stopped at max_runs={rule.max_runs}", rel)
        if time.perf_counter() >= deadline:
            if len(samples) >= 5:
                rel = relative_ci(np.asarray(samples))
            return TimingResult(samples, False, f"time budget {rule.budget_s:g}s spent after {len(samples)} runs", rel)


def latency_stats(samples_s: List[float]) -> Dict[str, Optional[Union[float, int]]]:
    """The shared runner summary (count, mean, p50, p90, p99, max in ms) plus min and std, which a bench needs."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    return {
        **latency_summary(samples_s),
        "min_ms": round(float(ms.min()), 3) if ms.size else None,
        "std_ms": round(float(ms.std(ddof=1)), 3) if ms.size > 1 else None,
    }

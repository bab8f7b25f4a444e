"""Compare the p50 latencies of two `edgekit bench` result files combination by combination (the repeatability bar).

Usage: .venv/bin/python benchmarks/compare_p50.py first.json second.json
Prints each combination's two medians and their ratio (larger / smaller); exits 1 if any ratio exceeds 1.10.
"""

from __future__ import annotations

import sys
from typing import Any

from edgekit.board.measure.bench import load_results

LIMIT = 1.10


def key(result: dict[str, Any]) -> tuple[Any, ...]:
    return result["model"], tuple(result["size"]), result["batch"], result["precision"], result["backend"]


def main(first_path: str, second_path: str) -> int:
    first, second = (load_results(p) for p in (first_path, second_path))
    seconds = {key(r): r for r in second["results"] if r["status"] == "ok"}
    worst = 1.0
    for result in first["results"]:
        other = seconds.get(key(result))
        if result["status"] != "ok" or other is None:
            continue
        a, b = result["latency_ms"]["p50_ms"], other["latency_ms"]["p50_ms"]
        ratio = max(a, b) / min(a, b)
        worst = max(worst, ratio)
        print(f"{' '.join(map(str, key(result)))}: p50 {a:.2f} ms vs {b:.2f} ms, ratio {ratio:.3f}")
    print(f"worst ratio {worst:.3f} ({'within' if worst <= LIMIT else 'OUTSIDE'} the {LIMIT:.2f} bar)")
    return 0 if worst <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))

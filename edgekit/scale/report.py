"""The family of an ``edgekit scale`` run as a Markdown table and a latency-vs-proxy-mIoU plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TABLE_FILE = "family.md"
PLOT_FILE = "family.png"


def _device(state: dict[str, Any]) -> str:
    device = state.get("device") or {}
    cpu, gpu = device.get("cpu_model"), device.get("gpu_name")
    name = gpu if gpu and gpu != "not available" else cpu
    return f"{name or 'unknown device'} ({device.get('hostname', '?')})"


def _config(entry: dict[str, Any]) -> str:
    config = entry["config"]
    resolution = ", ".join(f"{r:g}" for r in config["R"])
    return f"B {tuple(config['B'])}, C {tuple(config['C'])}, R ({resolution})"


def _row(step: str, entry: dict[str, Any], chosen: bool) -> str:
    miou = "—" if entry.get("miou") is None else f"{entry['miou']:.4f}"
    slope = f"{entry['slope']:.4f}" if "slope" in entry else "—"
    low, high = entry["latency_ci95_ms"]
    return (
        f"| {step} | {entry.get('operator', 'start')} | {entry.get('step_length', '')} | {_config(entry)} | "
        f"{entry['params']:,} | {entry['macs'] / 1e9:.3f} | {entry['latency_ms']:.2f} [{low:.2f}, {high:.2f}] | "
        f"{'yes' if entry['fits_budget'] else 'no'} | {miou} | {slope} | {'**chosen**' if chosen else ''} |"
    )


def markdown_table(state: dict[str, Any]) -> str:
    settings = state["settings"]
    lines = [
        f"# edgekit scale: {settings['target']}, budget {settings['budget_ms']:g} ms, "
        f"{settings['input_size'][0]}x{settings['input_size'][1]} {settings['precision']}",
        "",
        f"Latency measured on {_device(state)}: {state['measured_by']}; "
        f"threads {settings['threads'] or 'runtime default'}. p50 with the 95% CI of the median.",
        f"Proxy: {settings['proxy_seconds']:g} s of training per network on {settings['data']}, seed "
        f"{settings['seed']}. {state['proxy_note']}.",
        "",
        "| step | operator | k | {B, C, R} | params | GMACs | p50 ms [95% CI] | fits | proxy mIoU | ΔmIoU/Δms | |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    if "start" in state:
        lines.append(_row("0", state["start"], True))
    for step in state["steps"]:
        for index, candidate in enumerate(step["candidates"]):
            lines.append(_row(str(step["step"]), candidate, index == step["chosen"]))
    for name, entry in state.get("compare", {}).items():
        low, high = entry["latency_ci95_ms"]
        lines.append(f"| ref | {name} | | zoo | {entry['params']:,} | {entry['macs'] / 1e9:.3f} | "
                     f"{entry['latency_ms']:.2f} [{low:.2f}, {high:.2f}] | | {entry['miou']:.4f} | | |")  # fmt: skip
    lines += ["", f"Stopped: {state.get('stop_reason', 'not finished')}. Final checkpoint: "
              f"{state.get('checkpoint', '—')} ({state.get('final', {}).get('trained', '')})."]  # fmt: skip
    return "\n".join(lines) + "\n"


def plot(state: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = state["settings"]
    fig, axis = plt.subplots(figsize=(8, 5))
    trained = [c for s in state["steps"] for c in s["candidates"] if c.get("miou") is not None]
    axis.scatter([c["latency_ms"] for c in trained], [c["miou"] for c in trained], s=18, color="0.6",
                 label="candidates")  # fmt: skip
    path_points = [state["start"]] + [s["candidates"][s["chosen"]] for s in state["steps"] if s["chosen"] is not None]
    axis.plot([p["latency_ms"] for p in path_points], [p["miou"] for p in path_points], "o-", color="tab:blue",
              label="chosen path")  # fmt: skip
    for index, point in enumerate(path_points):
        axis.annotate(str(index), (point["latency_ms"], point["miou"]), textcoords="offset points", xytext=(4, 4))
    for name, entry in state.get("compare", {}).items():
        axis.scatter([entry["latency_ms"]], [entry["miou"]], marker="s", s=40, label=name)
        axis.annotate(name, (entry["latency_ms"], entry["miou"]), textcoords="offset points", xytext=(4, -10))
    axis.axvline(settings["budget_ms"], color="tab:red", linestyle="--", label=f"budget {settings['budget_ms']:g} ms")
    axis.set_xlabel(
        f"p50 latency (ms), {settings['precision']} {settings['input_size'][0]}x{settings['input_size'][1]}"
    )
    axis.set_ylabel(f"proxy mIoU ({settings['proxy_seconds']:g} s training)")
    axis.set_title(f"edgekit scale on {settings['target']}: {_device(state)}", fontsize=9)
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_reports(state: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    table = out_dir / TABLE_FILE
    table.write_text(markdown_table(state))
    figure = out_dir / PLOT_FILE
    plot(state, figure)
    return table, figure

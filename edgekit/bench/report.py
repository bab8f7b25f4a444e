"""``edgekit report``: many devices' bench results merged into one Markdown file and one self-contained HTML page.

The headline is the ESPNet-style table (rows: models, columns: device tiers, cells: FPS with the size, precision
and backend that produced it). Published figures from the papers and toolkits sit in their own table and their
own plot panel, marked as published, so a reader never mistakes them for measurements.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.bench.published import PUBLISHED, PublishedFigure
from edgekit.board.measure.bench import load_results
from edgekit.errors import EdgekitError

MAIN_TABLE_ID = "fps-table"


@dataclass(frozen=True)
class Report:
    markdown: Path
    html: Path
    models: list[str]  # rows of the main table
    tiers: list[str]  # columns of the main table


@dataclass(frozen=True)
class Row:
    """One measured result with the device it ran on."""

    tier: str
    result: dict[str, Any]

    @property
    def label(self) -> str:
        r = self.result
        return f"{r['model']} {r['size'][0]}x{r['size'][1]} b{r['batch']} {r['precision']} {r['backend']}"


def _num(value: Any, digits: int = 1) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value:.{digits}f}"
    return "–"


def _cell(row: Row) -> str:
    r = row.result
    return f"{_num(r['fps_inference'])} @{r['size'][0]}x{r['size'][1]} {r['precision']} b{r['batch']} ({r['backend']})"


def collect(paths: list[Path]) -> tuple[list[dict[str, Any]], list[Row]]:
    """Every result of every file; a file given twice, or one device's combination measured in two files, is
    an error (the report would show one measurement twice, or two for one cell, without saying which)."""
    if not paths:
        raise EdgekitError("no result files given; run `edgekit bench ... -o results.json` first")
    first_of: dict[Path, Path] = {}
    for path in paths:
        if path.resolve() in first_of:
            raise EdgekitError(f"{path} is given twice (as {first_of[path.resolve()]} too); give each file once")
        first_of[path.resolve()] = path
    documents = [load_results(path) for path in paths]
    measured_in: dict[tuple[str, str], Path] = {}
    rows = []
    for path, doc in zip(paths, documents, strict=True):
        for result in doc["results"]:
            row = Row(doc["tier"], result)
            key = (row.tier, row.label)
            if key in measured_in:
                raise EdgekitError(f"{path} and {measured_in[key]} both hold {row.label} on {row.tier}; keep one")
            measured_in[key] = path
            rows.append(row)
    return documents, rows


def main_table(rows: list[Row]) -> tuple[list[str], list[str], dict[tuple[str, str], list[str]]]:
    """Models x tiers -> FPS cells (inference only, every measured size/precision/batch/backend of that pair)."""
    models = list(dict.fromkeys(row.result["model"] for row in rows))
    tiers = list(dict.fromkeys(row.tier for row in rows))
    cells: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        if row.result["status"] == "ok":
            cells.setdefault((row.result["model"], row.tier), []).append(_cell(row))
    return models, tiers, cells


def detail_columns(row: Row) -> list[str]:
    r = row.result
    latency = r["latency_ms"]
    power = r.get("power", {})
    accuracy = r.get("accuracy", {})
    agreement = accuracy.get("agreement_with_fp32")
    pipeline = r.get("pipeline", {})
    return [
        row.tier,
        row.label,
        _num(latency["p50_ms"], 2),
        _num(latency["p90_ms"], 2),
        _num(latency["p99_ms"], 2),
        _num(latency["mean_ms"], 2),
        _num(latency["std_ms"], 2),
        _num(r["fps_inference"]),
        _num(pipeline.get("fps")) if isinstance(pipeline, dict) else "–",
        _num(r.get("device_resident", {}).get("fps")),
        _num(r.get("gmacs_per_s")),
        _num(r["fraction_of_peak"] * 100, 1) + "%" if isinstance(r.get("fraction_of_peak"), float) else "–",
        _num(r.get("memory", {}).get("peak_rss_mb"), 0),
        _num(power.get("energy_per_frame_mj"), 1) if power.get("source") != "not available" else "n/a",
        f"{agreement * 100:.2f}%" if isinstance(agreement, float) else str(agreement or "–"),
        "yes" if r.get("timing", {}).get("stable") else "no",
    ]


DETAIL_HEADER = [
    "device", "combination", "p50 ms", "p90 ms", "p99 ms", "mean ms", "std ms", "FPS (inference)",
    "FPS (pipeline)", "FPS (device-resident)", "GMAC/s", "of peak", "peak RSS MB", "mJ/frame", "agreement vs FP32",
    "stable",
]  # fmt: skip
LAYER_HEADER = ["layer", "op", "mean ms", "share of time"]


def _layer_rows(top: list[dict[str, Any]]) -> list[list[str]]:
    return [[t["layer"], t["op"], _num(t["mean_ms"], 3), f"{t['share']:.1%}"] for t in top]


PUBLISHED_HEADER = ["model", "device", "size", "precision", "framework", "FPS (published)", "source"]


def _published_cells(figure: PublishedFigure) -> list[str]:
    note = f" ({figure.note})" if figure.note else ""
    return [figure.model, figure.device, figure.size, figure.precision, figure.framework, _num(figure.fps),
            figure.source + note]  # fmt: skip


# -- plots --------------------------------------------------------------------------------------------------------


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return buffer.getvalue()


def plot_fps(rows: list[Row], published: list[PublishedFigure]) -> bytes:
    """Measured FPS per combination and device tier; published figures in a separate, hatched panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [row for row in rows if row.result["status"] == "ok"]
    panels = 2 if published else 1
    height = max(2.5, 0.35 * max(len(ok), len(published)) + 1.2)
    figure, axes = plt.subplots(1, panels, figsize=(7 * panels, height), squeeze=False)
    tiers = list(dict.fromkeys(row.tier for row in ok))
    colours = plt.get_cmap("tab10")
    ax = axes[0][0]
    ax.barh([f"{row.label}\n{row.tier}" for row in ok], [row.result["fps_inference"] for row in ok],
            color=[colours(tiers.index(row.tier) % 10) for row in ok])  # fmt: skip
    ax.set_xlabel("FPS, inference only (measured)")
    ax.set_title("Measured")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    if published:
        ax = axes[0][1]
        ax.barh([f"{f.model} {f.size} {f.precision}\n{f.device}" for f in published], [f.fps for f in published],
                color="white", edgecolor="grey", hatch="//")  # fmt: skip
        ax.set_xlabel("FPS (published, not measured here)")
        ax.set_title("Published figures")
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=7)
    return _png(figure)


def plot_latency(rows: list[Row]) -> bytes:
    """Latency distribution (box plot of the kept samples) per combination and device."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [row for row in rows if row.result["status"] == "ok" and row.result.get("samples_ms")]
    figure, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(ok) + 2), 5))
    if ok:
        ax.boxplot([row.result["samples_ms"] for row in ok], showfliers=True)
        ax.set_xticks(range(1, len(ok) + 1), [f"{row.label}\n{row.tier}" for row in ok], fontsize=7, rotation=60,
                      ha="right")  # fmt: skip
    ax.set_ylabel("latency per batch (ms)")
    ax.set_yscale("log")
    return _png(figure)


def plot_accuracy(rows: list[Row]) -> bytes:
    """Accuracy (agreement with FP32, or mIoU where labelled) against FPS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(7, 4))
    plotted = 0
    for row in rows:
        accuracy = row.result.get("accuracy", {}) if row.result["status"] == "ok" else {}
        miou, agreement = accuracy.get("miou"), accuracy.get("agreement_with_fp32")
        value = miou if isinstance(miou, float) else 1.0 if agreement == "reference" else agreement
        if isinstance(value, float):
            ax.scatter(row.result["fps_inference"], value * 100)
            ax.annotate(row.label, (row.result["fps_inference"], value * 100), fontsize=6)
            plotted += 1
    ax.set_xlabel("FPS, inference only")
    ax.set_ylabel("mIoU (%) where labelled, else pixel agreement with FP32 (%)")
    if not plotted:
        ax.text(0.5, 0.5, "no accuracy figures in these results", ha="center", transform=ax.transAxes)
    return _png(figure)


# -- writers ------------------------------------------------------------------------------------------------------


def _md_table(header: list[str], body: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(cells) for cells in body)])


def _html_table(header: list[str], body: list[list[str]], table_id: str = "", row_header: bool = False) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = []
    for cells in body:
        tds = [
            f"<th scope='row'>{html.escape(c)}</th>" if i == 0 and row_header else f"<td>{html.escape(c)}</td>"
            for i, c in enumerate(cells)
        ]
        rows.append("<tr>" + "".join(tds).replace("&lt;br&gt;", "<br>") + "</tr>")
    ident = f" id='{table_id}'" if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _fingerprint_rows(documents: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    keys = list(dict.fromkeys(k for doc in documents for k in doc["device"]))
    header = ["field", *(str(doc["tier"]) for doc in documents)]
    body = [[key, *(str(doc["device"].get(key, "not available")) for doc in documents)] for key in keys]
    return header, body


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #bbb;padding:4px 8px;text-align:left;vertical-align:top}
thead th{background:#eee}
.published{background:#fff8e1}
.note{color:#555;font-size:13px}
img{max-width:100%}
"""


def build_report(paths: list[Path], output: Path, published: bool = True) -> Report:
    """Write ``report.md`` (with PNG plots beside it) and a self-contained ``report.html`` into ``output``."""
    documents, rows = collect([Path(p) for p in paths])
    models, tiers, cells = main_table(rows)
    figures = list(PUBLISHED) if published else []
    ok_rows = [row for row in rows if row.result["status"] == "ok"]
    skipped = [row for row in rows if row.result["status"] != "ok"]
    main_body = [[m, *("<br>".join(cells.get((m, t), ["–"])) for t in tiers)] for m in models]
    detail_body = [detail_columns(row) for row in ok_rows]
    skipped_body = [[row.tier, row.label, str(row.result.get("reason", ""))] for row in skipped]
    published_body = [_published_cells(f) for f in figures]
    fp_header, fp_body = _fingerprint_rows(documents)
    plots = {
        "fps.png": plot_fps(rows, figures),
        "latency.png": plot_latency(rows),
        "accuracy_vs_fps.png": plot_accuracy(rows),
    }
    layers = [(row, row.result["top_layers"][:5]) for row in ok_rows if isinstance(row.result.get("top_layers"), list)]
    commands = [str(doc.get("command")) for doc in documents if doc.get("command")]
    output.mkdir(parents=True, exist_ok=True)
    for name, data in plots.items():
        (output / name).write_bytes(data)

    intro = (
        "Measured with `edgekit bench` on each device, merged with `edgekit report`. FPS is inference only from "
        "the median latency of timed runs that stop when the median's 95% confidence interval is narrow (or a "
        "time budget runs out: see the 'stable' column). Published figures are listed separately and never mixed "
        "with measurements."
    )
    md = [
        "# edgekit benchmark report",
        "",
        intro,
        "",
        "## FPS per model and device tier (measured, inference only)",
        "",
        _md_table(["model", *tiers], [[c.replace("<br>", "; ") for c in r] for r in main_body]),
        "",
        "## Published figures (from papers and toolkits, not measured here)",
        "",
        _md_table(PUBLISHED_HEADER, published_body) if figures else "(left out with --no-published)",
        "",
        "## Every measured combination",
        "",
        _md_table(DETAIL_HEADER, detail_body),
        "",
        "## Plots",
        "",
        *(f"![{name}]({name})\n" for name in plots),
        "## Top layers by time",
        "",
    ]
    for row, top in layers:
        md += [f"**{row.label}** on {row.tier}", "", _md_table(LAYER_HEADER, _layer_rows(top)), ""]
    if skipped_body:
        md += ["## Skipped combinations", "", _md_table(["device", "combination", "reason"], skipped_body), ""]
    md += ["## Devices", "", _md_table(fp_header, fp_body), ""]
    if commands:
        md += ["## Commands", "", *(f"    {c}" for c in commands), ""]
    markdown = output / "report.md"
    markdown.write_text("\n".join(md))

    def image(name: str) -> str:
        data = base64.b64encode(plots[name]).decode("ascii")
        return f"<img alt='{name}' src='data:image/png;base64,{data}'>"

    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>edgekit benchmark report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>edgekit benchmark report</h1>",
        f"<p class='note'>{html.escape(intro)}</p>",
        "<h2>FPS per model and device tier (measured, inference only)</h2>",
        _html_table(["model", *tiers], main_body, MAIN_TABLE_ID, row_header=True),
        "<h2>Published figures (from papers and toolkits, not measured here)</h2>",
        _html_table(PUBLISHED_HEADER, published_body, "published-table").replace("<table", "<table class='published'")
        if figures
        else "<p>(left out with --no-published)</p>",
        "<h2>Every measured combination</h2>",
        _html_table(DETAIL_HEADER, detail_body, "detail-table"),
        "<h2>FPS</h2>",
        image("fps.png"),
        "<h2>Latency distributions</h2>",
        image("latency.png"),
        "<h2>Accuracy vs FPS</h2>",
        image("accuracy_vs_fps.png"),
        "<h2>Top layers by time</h2>",
    ]
    for row, top in layers:
        parts += [
            f"<h3>{html.escape(row.label)} on {html.escape(row.tier)}</h3>",
            _html_table(LAYER_HEADER, _layer_rows(top)),
        ]
    if skipped_body:
        parts += ["<h2>Skipped combinations</h2>", _html_table(["device", "combination", "reason"], skipped_body)]
    parts += ["<h2>Devices</h2>", _html_table(fp_header, fp_body)]
    if commands:
        parts += ["<h2>Commands</h2>", *(f"<pre>{html.escape(c)}</pre>" for c in commands)]
    parts.append("</body></html>")
    page = output / "report.html"
    page.write_text("\n".join(parts))
    return Report(markdown=markdown, html=page, models=models, tiers=tiers)

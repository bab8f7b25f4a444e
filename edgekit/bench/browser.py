"""Open the HTML report in headless Chromium and check what a reader would see: the page renders and its main
table has one row per model and one column per device tier. Used by ``edgekit report --check-browser`` and the
tests (which skip where Chromium is absent).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from edgekit.bench.report import MAIN_TABLE_ID
from edgekit.errors import EdgekitError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


class _TableReader(HTMLParser):
    """Row headers and column headers of the table with a given id, from the DOM Chromium rendered."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.depth = 0  # >0 while inside the wanted table
        self.section = ""
        self.cell: list[str] | None = None
        self.row: list[str] = []
        self.header: list[str] = []
        self.rows: list[list[str]] = []
        self.images = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img" and any(k == "src" and (v or "").startswith("data:image/png;base64,") for k, v in attrs):
            self.images += 1
        if tag == "table" and (self.depth or dict(attrs).get("id") == self.table_id):
            self.depth += 1
        elif self.depth and tag in ("thead", "tbody"):
            self.section = tag
        elif self.depth and tag == "tr":
            self.row = []
        elif self.depth and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if not self.depth:
            return
        if tag in ("td", "th") and self.cell is not None:
            self.row.append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "tr":
            if self.section == "thead":
                self.header.extend(self.row)
            else:
                self.rows.append(self.row)
        elif tag == "table":
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


@dataclass(frozen=True)
class BrowserCheck:
    ok: bool
    rows: list[str]  # first cell of each body row (the model)
    columns: list[str]  # header cells after the first (the device tiers)
    images: int  # embedded PNG plots
    screenshot: Path | None
    summary: str


def check_report_page(
    page: Path, models: list[str], tiers: list[str], screenshot: Path | None = None, timeout_s: float = 60.0
) -> BrowserCheck:
    """Render ``page`` with headless Chromium (--dump-dom, optionally --screenshot) and compare its main table."""
    chromium = find_chromium()
    if chromium is None:
        raise EdgekitError("headless Chromium not found; install Debian's `chromium` package to check the page")
    url = page.resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="edgekit-chromium-") as profile:
        flags = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
        try:
            done = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=timeout_s)
            if screenshot is not None:
                subprocess.run([*flags, f"--screenshot={screenshot}", "--window-size=1400,1200", url],
                               capture_output=True, timeout=timeout_s, check=False)  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise EdgekitError(f"Chromium did not render {page} within {timeout_s:.0f}s") from exc
    if done.returncode != 0 or "<table" not in done.stdout:
        raise EdgekitError(f"Chromium could not render {page}: {done.stderr.strip()[-300:]}")
    reader = _TableReader(MAIN_TABLE_ID)
    reader.feed(done.stdout)
    rows = [row[0] for row in reader.rows if row]
    columns = reader.header[1:]
    ok = rows == models and columns == tiers and all(len(row) == len(tiers) + 1 for row in reader.rows)
    summary = (
        f"{'OK' if ok else 'MISMATCH'}: {len(rows)} model rows ({', '.join(rows)}), {len(columns)} device columns "
        f"({', '.join(columns)}), {reader.images} embedded plots"
    )
    shot = screenshot if screenshot is not None and screenshot.is_file() else None
    return BrowserCheck(ok, rows, columns, reader.images, shot, summary)

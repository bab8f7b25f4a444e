"""edgekit report: merging result files of several devices, Markdown + self-contained HTML, published figures kept
apart, and the page as headless Chromium renders it (skipped where Chromium is absent)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from edgekit.bench.browser import check_report_page, find_chromium
from edgekit.bench.published import PUBLISHED
from edgekit.bench.report import MAIN_TABLE_ID, build_report
from edgekit.board.measure.bench import write_results
from edgekit.cli import main


@pytest.fixture
def two_devices(bench_document: dict[str, Any], tmp_path: Path) -> list[Path]:
    """The real bench results, plus the same file as a second device would label it (its own tier and fps)."""
    second = copy.deepcopy(bench_document)
    second["tier"] = "second board"
    second["device"]["hostname"] = "second-board"
    second["results"] = [r for r in second["results"] if r["precision"] == "fp32"]
    return [write_results(bench_document, tmp_path / "a.json"), write_results(second, tmp_path / "b.json")]


def test_report_merges_devices_into_one_table_with_published_figures_apart(
    two_devices: list[Path], bench_document: dict[str, Any], tmp_path: Path
) -> None:
    report = build_report(two_devices, tmp_path / "report")
    tier = bench_document["tier"]
    assert report.models == ["espnet"] and report.tiers == [tier, "second board"]
    markdown = report.markdown.read_text()
    main_section = markdown.split("## FPS per model and device tier")[1].split("## Published figures")[0]
    assert f"| model | {tier} | second board |" in main_section
    fps = [r["fps_inference"] for r in bench_document["results"] if r["status"] == "ok"]
    assert all(f"{value:.1f} @128x64" in main_section for value in fps)
    assert "112.0" not in main_section and "413.5" not in main_section  # published figures never in the measured table
    published_section = markdown.split("## Published figures")[1].split("## Every measured")[0]
    assert all(f"{figure.fps:.1f}" in published_section for figure in PUBLISHED)
    assert "Skipped combinations" in markdown and "no fp16 ONNX" in markdown
    for plot in ("fps.png", "latency.png", "accuracy_vs_fps.png"):
        assert (report.markdown.parent / plot).read_bytes().startswith(b"\x89PNG")
    page = report.html.read_text()
    assert page.count("src='data:image/png;base64,") == 3
    assert not re.search(r"(src|href)=['\"]https?://", page)  # self-contained: nothing fetched when opened
    assert f"id='{MAIN_TABLE_ID}'" in page


def test_report_without_published_figures(two_devices: list[Path], tmp_path: Path) -> None:
    report = build_report(two_devices, tmp_path / "report", published=False)
    assert "112.0" not in report.markdown.read_text()


def test_page_opens_in_headless_chromium_with_a_row_per_model_and_a_column_per_device(
    two_devices: list[Path], tmp_path: Path
) -> None:
    if find_chromium() is None:
        pytest.skip("headless Chromium is not installed (Debian package `chromium`)")
    report = build_report(two_devices, tmp_path / "report")
    check = check_report_page(report.html, report.models, report.tiers, screenshot=tmp_path / "page.png")
    assert check.ok, check.summary
    assert check.rows == ["espnet"] and len(check.columns) == 2 and check.images == 3
    assert check.screenshot is not None and check.screenshot.read_bytes().startswith(b"\x89PNG")


def test_cli_report_and_its_errors(two_devices: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", *map(str, two_devices), "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "report.html").is_file()
    not_results = tmp_path / "stats.json"
    not_results.write_text(json.dumps({"frames_in": 1}))
    assert main(["report", str(not_results), "-o", str(tmp_path / "bad")]) == 2
    assert "not an `edgekit bench` result file" in capsys.readouterr().err

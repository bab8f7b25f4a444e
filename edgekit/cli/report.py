"""``edgekit report``: merge bench results from many devices into one Markdown + self-contained HTML report."""

import argparse
from pathlib import Path
from typing import Any

from edgekit.cli.common import console


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="merge `edgekit bench` JSON files from many devices into a Markdown and HTML report",
    )
    parser.add_argument("results", type=Path, nargs="+", help="results JSON files (one or more per device)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="report folder (report.md, report.html)")
    parser.add_argument(
        "--no-published", action="store_true", help="leave out the published figures from papers and toolkits"
    )
    parser.add_argument("--check-browser", action="store_true", help="open the page in headless Chromium and check it")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgekit.bench.report import build_report

    report = build_report(args.results, args.output, published=not args.no_published)
    console.print(f"report written to {report.markdown} and {report.html}")
    if args.check_browser:
        from edgekit.bench.browser import check_report_page

        check = check_report_page(report.html, report.models, report.tiers)
        console.print(f"browser check: {check.summary}")
        if not check.ok:
            return 1
    return 0

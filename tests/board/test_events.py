"""The one progress channel: the library emits tasks and log records, the CLI's renderer draws them."""

import io
import logging

import pytest
from rich.console import Console

from edgekit.board import events
from edgekit.cli import render


def test_without_a_renderer_a_task_is_two_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edgekit")
    previous = events.install(events.Renderer())  # an in-process `main()` in an earlier test left the CLI's one
    try:
        with events.task("calibrating", total=3) as work:
            for _ in range(3):
                work.advance()
    finally:
        events.install(previous)
    lines = [r.getMessage() for r in caplog.records if r.name == "edgekit"]
    assert lines[0] == "calibrating ..."
    assert lines[1].startswith("calibrating: 3/3 done in ")


def test_rich_renderer_draws_every_open_task_and_stops_when_the_last_ends() -> None:
    out = io.StringIO()
    renderer = render.RichRenderer(Console(file=out, force_terminal=True, width=100))
    previous = events.install(renderer)
    try:
        with events.task("outer", total=None):
            with events.task("frames", total=4) as frames:
                frames.advance(2)
                frames.update(status="12.5 FPS")
                assert renderer._display is not None
                assert renderer._display.tasks[-1].completed == 2
                assert renderer._display.tasks[-1].fields["status"] == "12.5 FPS"
            assert len(renderer._display.tasks) == 1
        assert renderer._display is None  # the live display is stopped, the terminal given back
        with pytest.raises(RuntimeError), events.task("failing", total=2):
            raise RuntimeError("boom")
        assert renderer._display is None  # a task that raised is removed too
    finally:
        events.install(previous)
    assert "frames" in out.getvalue()


def test_console_handler_prints_plain_lines_and_marks_warnings_without_reading_markup() -> None:
    out = io.StringIO()
    handler = render.ConsoleHandler(Console(file=out, width=200, color_system=None))
    logger = logging.getLogger("edgekit.test_events")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("wrote [bold]model.onnx[/bold]")
        logger.warning("12 images calibrate")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    assert out.getvalue().splitlines() == ["wrote [bold]model.onnx[/bold]", "warning: 12 images calibrate"]


def test_rich_renderer_draws_nothing_when_the_console_is_not_a_terminal() -> None:
    """Piped or in CI the bars would only leave a blank line per task between the log records."""
    out = io.StringIO()
    previous = events.install(render.RichRenderer(Console(file=out, force_terminal=False)))
    try:
        with events.task("stage", total=None), events.task("frames", total=2) as frames:
            frames.advance(2)
    finally:
        events.install(previous)
    assert out.getvalue() == ""

"""How the command line shows the library's work: its log records and tasks on one rich console (stderr).

The library emits through :mod:`edgekit.board.events` and ``logging``; only this module knows about rich, so a
Python user embedding edgekit never meets a console they did not ask for.
"""

import logging
import threading
from typing import Dict, Optional

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from edgekit.board import events
from edgekit.cli.common import console

_STYLES = {
    logging.WARNING: ("yellow", "warning: "),
    logging.ERROR: ("red", "error: "),
    logging.CRITICAL: ("red", "error: "),
}


class ConsoleHandler(logging.Handler):
    """One plain line per record (no level column for information, a coloured prefix for warnings)."""

    def __init__(self, target: Console) -> None:
        super().__init__(logging.INFO)
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = escape(self.format(record))
            style, prefix = _STYLES.get(record.levelno, ("", ""))
            self.target.print(f"[{style}]{prefix}{text}[/]" if style else text, soft_wrap=True, highlight=False)
        except Exception:  # a logging handler must never raise into the work it reports on
            self.handleError(record)


class RichRenderer(events.Renderer):
    """Every open task as a line of one live display (a bar when the total is known, a spinner when not)."""

    def __init__(self, target: Console) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._display: Optional[Progress] = None
        self._ids: Dict[int, TaskID] = {}

    def started(self, task: events.Task) -> None:
        if not self.target.is_terminal:
            return  # piped or in CI: no bars (rich would leave a blank line per task); the log records remain
        with self._lock:
            if self._display is None:
                self._display = Progress(
                    SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("{task.fields[status]}"), console=self.target, transient=True,
                )  # fmt: skip
                self._display.start()
            self._ids[id(task)] = self._display.add_task(task.description, total=task.total, status=task.status)

    def changed(self, task: events.Task) -> None:
        with self._lock:
            if self._display is not None and id(task) in self._ids:
                self._display.update(
                    self._ids[id(task)], description=task.description, total=task.total,
                    completed=task.completed, status=task.status,
                )  # fmt: skip

    def finished(self, task: events.Task) -> None:
        with self._lock:
            if self._display is None or id(task) not in self._ids:
                return
            self._display.remove_task(self._ids.pop(id(task)))
            if not self._ids:
                self._display.stop()
                self._display = None


def install(level: int = logging.INFO) -> None:
    """Show the ``edgekit`` logger's records and every task on the console (idempotent: one handler; records
    still propagate, so pytest's caplog and a user's root handler see them)."""
    logger = logging.getLogger("edgekit")
    logger.handlers[:] = [ConsoleHandler(console)]
    logger.setLevel(level)
    events.install(RichRenderer(console))

"""The one channel from the library to whoever shows its work: the library emits, a renderer draws.

Messages are ``logging`` records under the ``edgekit`` logger (``log = logging.getLogger(__name__)`` in each
module). Long work is a :func:`task`: a description, an optional total and ``advance()``. Without a renderer a
task logs one line when it starts and one when it ends, so a Python user embedding edgekit sees plain log records
and no bars; the CLI installs rich bars and a console log handler (``edgekit/cli/render.py``). Board code: runs on
Python 3.6.
"""

import logging
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Optional

log = logging.getLogger("edgekit")


class Task:
    """A long piece of work; ``total`` None means its length is not known (a spinner, not a bar)."""

    def __init__(self, description: str, total: Optional[int], renderer: "Renderer") -> None:
        self.description = description
        self.total = total
        self.completed = 0
        self.status = ""
        self.started = time.perf_counter()
        self._renderer = renderer

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def advance(self, amount: int = 1) -> None:
        self.completed += amount
        self._renderer.changed(self)

    def update(
        self, description: Optional[str] = None, total: Optional[int] = None, status: Optional[str] = None
    ) -> None:
        """Change what the task says: a new description, a total learnt late, or a short status (loss, FPS)."""
        if description is not None:
            self.description = description
        if total is not None:
            self.total = total
        if status is not None:
            self.status = status
        self._renderer.changed(self)


class Renderer:
    """Shows tasks; this base shows them as log lines at start and end (the default for library users)."""

    def started(self, task: Task) -> None:
        log.info("%s ...", task.description)

    def changed(self, task: Task) -> None:
        pass

    def finished(self, task: Task) -> None:
        done = f" {task.completed}/{task.total}" if task.total else ""
        log.info("%s:%s done in %.1f s", task.description, done, task.seconds)


_lock = threading.Lock()
_renderer = Renderer()


def install(renderer: Renderer) -> Renderer:
    """Make ``renderer`` show every task from now on; returns the one it replaces (to put back)."""
    global _renderer
    with _lock:
        previous, _renderer = _renderer, renderer
    return previous


@contextmanager
def task(description: str, total: Optional[int] = None) -> Iterator[Task]:
    """A task on the installed renderer, removed from it however the work ends (error, Ctrl-C)."""
    renderer = _renderer
    work = Task(description, total, renderer)
    renderer.started(work)
    try:
        yield work
    finally:
        renderer.finished(work)

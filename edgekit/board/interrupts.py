"""SIGTERM handled like Ctrl-C: what ``systemd stop``, ``docker stop`` and ``timeout`` send must clean up (staging
folders removed, ``last.pt`` saved) exactly as a Ctrl-C does, instead of killing the process mid-write."""

import signal
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Iterator, Optional

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A KeyboardInterrupt that remembers which signal caused it (the CLI exits 128 + that number)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, _frame: Optional[FrameType]) -> None:
    raise Interrupted(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM raises :class:`Interrupted` in the main thread as SIGINT raises KeyboardInterrupt (only
    where SIGTERM still has its default action); the previous handler is restored after."""
    if not _in_main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


class StopRequest:
    """Set by the first SIGINT/SIGTERM inside :func:`deferred_interrupts`; the work stops at its next safe point."""

    def __init__(self) -> None:
        self.signum = None  # type: Optional[int]

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def interrupted(self) -> Interrupted:
        assert self.signum is not None
        return Interrupted(self.signum)


@contextmanager
def deferred_interrupts() -> Iterator[StopRequest]:
    """The first SIGINT/SIGTERM only sets the yielded request, so the step in progress completes and the caller
    stops at a consistent point; a second one raises :class:`Interrupted` at once. A request the body did not act
    on (one that came after its last check, e.g. during the final validation) is raised when the body ends, so no
    Ctrl-C is lost (one was: ``edgekit scale`` trained on). Outside the main thread signals cannot be caught and
    nothing changes. The previous handlers are restored after."""
    request = StopRequest()
    if not _in_main_thread():
        yield request
        return

    def handler(signum: int, frame: Optional[FrameType]) -> None:
        if request.requested:
            _raise_interrupted(signum, frame)
        request.signum = signum

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if request.requested:
        raise request.interrupted()

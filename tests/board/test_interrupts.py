"""Deferred interrupts with real signals sent to this process: the step in progress finishes, and a request the
body never checked again is still raised when it ends (it was lost: ``edgekit scale`` trained on after a Ctrl-C
that came during a proxy's final validation)."""

import os
import signal

import pytest

from edgekit.board.interrupts import Interrupted, deferred_interrupts


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_request_the_body_did_not_act_on_is_raised_when_it_ends(signum: int) -> None:
    before = signal.getsignal(signum)
    finished = False
    with pytest.raises(Interrupted) as caught, deferred_interrupts() as stop:
        os.kill(os.getpid(), signum)  # delivered before the next bytecode: the handler only records it
        assert stop.requested
        finished = True  # the work in progress goes on to its end
    assert finished and caught.value.signum == signum
    assert signal.getsignal(signum) is before


def test_a_second_signal_raises_at_once() -> None:
    reached = False
    with pytest.raises(Interrupted), deferred_interrupts():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        reached = True
    assert not reached


def test_a_body_without_signals_ends_normally() -> None:
    with deferred_interrupts() as stop:
        pass
    assert not stop.requested

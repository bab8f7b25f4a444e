"""What every output receives: the overlaid frame plus the live rates a display shows."""

import abc
from dataclasses import dataclass

import numpy as np

from edgekit.board.sources.base import Frame


@dataclass
class OutputFrame:
    image: np.ndarray  # the frame with the class overlay and legend, BGR
    frame: Frame  # the source frame it came from (name, index, capture time)
    classmap: np.ndarray  # HxW uint8 class ids at the network's resolution
    fps: float  # end-to-end rate over the last frames
    latency_ms: float  # capture-to-output latency over the last frames


class Sink(abc.ABC):
    """One output. ``stop_requested`` lets a sink end the run (a window's q/Esc key)."""

    stop_requested: bool = False

    @abc.abstractmethod
    def write(self, output: OutputFrame) -> None: ...

    @abc.abstractmethod
    def describe(self) -> str: ...

    def close(self) -> None:  # noqa: B027 - stateless sinks need nothing
        """Finalize (an mp4 is only playable once its index is written)."""


class NullSink(Sink):
    """Discards frames: benchmarks of the pipeline without output cost (the runner then draws no overlay)."""

    def write(self, output: OutputFrame) -> None:
        pass

    def describe(self) -> str:
        return "none (frames discarded, no overlay drawn)"

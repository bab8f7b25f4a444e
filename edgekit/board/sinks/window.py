"""A desktop window (cv2.imshow) with the overlay, legend and an FPS / latency HUD; q or Esc ends the run."""

import os
import sys

import cv2

from edgekit.board.sinks.base import OutputFrame, Sink
from edgekit.errors import EdgekitError

QUIT_KEYS = (ord("q"), 27)


def draw_hud(image: cv2.typing.MatLike, fps: float, latency_ms: float) -> None:
    """FPS and latency in the bottom-left corner, white on a dark box so it reads over any overlay; in place."""
    text = f"{fps:5.1f} FPS  {latency_ms:6.1f} ms"
    (width, height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1)
    bottom = image.shape[0] - 10
    cv2.rectangle(image, (6, bottom - height - 8), (14 + width, bottom + 4), (0, 0, 0), thickness=-1)
    cv2.putText(image, text, (10, bottom - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)


class WindowSink(Sink):
    def __init__(self, title: str = "edgekit") -> None:
        self.title = title
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise EdgekitError("--show needs a display (DISPLAY is not set); on a headless board use --serve :8080")
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise EdgekitError(
                "--show needs OpenCV with GUI support, but this one is opencv-python-headless; "
                "pip install opencv-python (and uninstall the headless one), or use --serve :8080"
            ) from None

    def write(self, output: OutputFrame) -> None:
        image = output.image.copy()
        draw_hud(image, output.fps, output.latency_ms)
        cv2.imshow(self.title, image)
        if cv2.waitKey(1) & 0xFF in QUIT_KEYS:
            self.stop_requested = True

    def describe(self) -> str:
        return f"window {self.title!r} (q or Esc to stop)"

    def close(self) -> None:
        cv2.destroyWindow(self.title)

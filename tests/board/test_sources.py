"""Frame sources on real inputs: GStreamer pipelines, video files written here, image folders, closed ports."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgekit.board.sources import StallError, open_source
from edgekit.board.sources.gstreamer import pygobject_gstreamer
from edgekit.errors import EdgekitError

needs_gstreamer = pytest.mark.skipif(
    pygobject_gstreamer() is None, reason="PyGObject/GStreamer not installed (make venv installs them)"
)
SMALL = "video/x-raw,width=64,height=48"


def write_video(path: Path, frames: int, fourcc: str = "mp4v", size: tuple[int, int] = (64, 48)) -> list[np.ndarray]:
    """Frames with their index encoded as a flat grey level, written with OpenCV's FFmpeg writer."""
    images = [np.full((size[1], size[0], 3), 8 * i, np.uint8) for i in range(frames)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), 10, size)
    assert writer.isOpened()
    for image in images:
        writer.write(image)
    writer.release()
    return images


def closed_port() -> int:
    """A localhost port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@needs_gstreamer
def test_prerolled_gstreamer_pipeline_delivers_every_frame_in_order() -> None:
    with open_source(f"gst://videotestsrc num-buffers=12 pattern=ball ! {SMALL}") as source:
        assert not source.live
        assert "PyGObject appsink" in source.describe()
        frames = list(source)
    assert [f.index for f in frames] == list(range(12))
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in frames)
    assert source.dropped == 0


@needs_gstreamer
def test_odd_width_rows_are_unpadded() -> None:
    """GStreamer pads BGR rows to 4 bytes; 101*3 = 303 is padded to 304 and must be cut back."""
    with open_source("gst://videotestsrc num-buffers=1 pattern=red ! video/x-raw,width=101,height=7") as source:
        (frame,) = list(source)
    assert frame.image.shape == (7, 101, 3)
    assert (frame.image == (0, 0, 255)).all()  # every pixel red in BGR: no stride skew


@needs_gstreamer
def test_live_pipeline_keeps_the_newest_frame_and_counts_drops() -> None:
    with open_source(f"gst://videotestsrc is-live=true ! {SMALL},framerate=100/1") as source:
        assert source.live
        time.sleep(0.5)  # ~50 frames arrive while nobody reads
        frame = source.read(timeout=2.0)
        assert frame is not None
        assert frame.index >= 20
        assert source.dropped >= 20
        assert time.monotonic() - frame.timestamp < 0.1  # newest, not the oldest queued one


@needs_gstreamer
def test_stalled_live_pipeline_raises_after_the_timeout() -> None:
    pipeline = f"videotestsrc is-live=true ! {SMALL},framerate=1/5"  # the first frame at once, then one every 5 s
    with open_source(f"gst://{pipeline}") as source:
        assert source.read(timeout=5.0) is not None
        started = time.monotonic()
        with pytest.raises(StallError, match=r"no frame for 0\.3 s"):
            source.read(timeout=0.3)
        assert time.monotonic() - started < 1.0


@needs_gstreamer
def test_prerolled_pipeline_stall_is_detected_by_the_pull_timeout() -> None:
    pipeline = f"videotestsrc num-buffers=3 ! {SMALL} ! identity sleep-time=1500000"
    with open_source(f"gst://{pipeline}") as source:
        assert not source.live
        source.read(timeout=5.0)
        with pytest.raises(StallError):
            source.read(timeout=0.3)


@needs_gstreamer
def test_bad_pipelines_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(EdgekitError, match='no element "nosuchelement"'):
        open_source("gst://nosuchelement ! fakesink")
    with pytest.raises(EdgekitError, match="Cannot identify device"):
        open_source("gst://v4l2src device=/dev/video97")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(EdgekitError, match="GStreamer cannot start"):
        open_source(f"gst://filesrc location={garbage} ! decodebin")


@needs_gstreamer
def test_csi_outside_a_jetson_says_to_use_v4l2() -> None:
    gst = pygobject_gstreamer()
    if gst.ElementFactory.find("nvarguscamerasrc") is not None:
        pytest.skip("this machine has nvarguscamerasrc (a Jetson)")
    with pytest.raises(EdgekitError, match=r"nvarguscamerasrc.*v4l2"):
        open_source("csi://0")


def test_video_file_frames_in_order(tmp_path: Path) -> None:
    written = write_video(tmp_path / "clip.mp4", 15)
    with open_source(tmp_path / "clip.mp4") as source:
        assert source.frame_count == 15 and source.fps == 10 and not source.live
        frames = list(source)
    assert len(frames) == 15
    levels = [int(np.median(f.image)) for f in frames]
    assert all(abs(level - int(w[0, 0, 0])) <= 4 for level, w in zip(levels, written, strict=True))


def test_corrupt_and_truncated_videos_fail_clearly(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(EdgekitError, match="cannot open video"):
        open_source(corrupt)

    clip = tmp_path / "cut.avi"
    write_video(clip, 30, fourcc="MJPG")
    data = clip.read_bytes()
    clip.write_bytes(data[: len(data) * 6 // 10])
    with open_source(clip) as source, pytest.raises(EdgekitError, match=r"ended after \d+ of 30 frames.*truncated"):
        list(source)


def test_image_folder_sorted_with_unreadable_image_skipped(tmp_path: Path) -> None:
    for name in ("b.png", "a.png", "d.jpg"):
        cv2.imwrite(str(tmp_path / name), np.zeros((20, 30, 3), np.uint8))
    (tmp_path / "c.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("ignored")
    with open_source(tmp_path) as source:
        names = [f.name for f in source]
    assert names == ["a", "b", "d"]
    assert len(source.skipped) == 1 and "c.png" in source.skipped[0]

    with open_source(str(tmp_path / "*.png")) as globbed:
        assert [f.name for f in globbed] == ["a", "b"]


def test_missing_and_unusable_cameras(tmp_path: Path) -> None:
    with pytest.raises(EdgekitError, match="/dev/video97 does not exist"):
        open_source("v4l2:///dev/video97")
    not_a_camera = tmp_path / "video0"
    not_a_camera.write_bytes(b"")
    with pytest.raises(EdgekitError, match="cannot be opened: it is busy"):
        open_source(f"v4l2://{not_a_camera}")


def test_rtsp_url_that_does_not_answer_fails_after_backoff() -> None:
    started = time.monotonic()
    with pytest.raises(EdgekitError, match="after 3 attempts: nothing answers"):
        open_source(f"rtsp://127.0.0.1:{closed_port()}/cam", reconnect_attempts=3, backoff=0.05, open_timeout=1)
    assert 0.1 <= time.monotonic() - started < 10  # it waited 0.05 + 0.1 s between tries, and did not hang


def test_http_mjpeg_stream_is_read_live_and_reconnect_gives_up_when_the_server_goes() -> None:
    """Our own MJPEG server as the camera: OpenCV/FFmpeg reads it; after it shuts down the source retries."""
    import threading

    from edgekit.board.sinks.base import OutputFrame
    from edgekit.board.sinks.mjpeg import MjpegSink
    from edgekit.board.sources.base import Frame

    server = MjpegSink("127.0.0.1:0")
    running = threading.Event()
    running.set()

    def feed() -> None:
        index = 0
        while running.is_set():
            image = np.full((48, 64, 3), index % 200, np.uint8)
            frame = Frame(image, index, time.monotonic(), str(index))
            server.write(OutputFrame(image, frame, np.zeros((48, 64), np.uint8), 0.0, 0.0))
            index += 1
            time.sleep(0.02)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        source = open_source(f"{server.url}stream.mjpg", reconnect_attempts=2, backoff=0.05, read_timeout=1.0)
        assert source.live
        frame = source.read(timeout=5.0)
        assert frame is not None and frame.image.shape == (48, 64, 3)
    finally:
        running.clear()
        feeder.join()
        server.close()
    with pytest.raises(EdgekitError, match="cannot reconnect"):
        while source.read(timeout=10.0) is not None:
            pass
    source.close()


def test_unknown_scheme_and_missing_path() -> None:
    with pytest.raises(EdgekitError, match="unknown source scheme"):
        open_source("ftp://example/x")
    with pytest.raises(EdgekitError, match="source not found"):
        open_source("/no/such/video.mp4")

"""Sinks on real outputs: mp4 files read back, PNGs, the MJPEG server over real sockets and a headless browser."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import fill_up

from edgekit.bench.browser import CHROMIUM_FLAGS, find_chromium
from edgekit.board.classes import ClassSet
from edgekit.board.sinks import NullSink, OutputFrame, open_sinks
from edgekit.board.sinks.images import ImageFilesSink
from edgekit.board.sinks.mjpeg import MjpegSink
from edgekit.board.sinks.video import VideoFileSink
from edgekit.board.sources.base import Frame
from edgekit.board.visualize import colorize, overlay
from edgekit.errors import EdgekitError

GREEN_BGR = (0, 200, 0)


def test_overlay_colours_every_class_with_its_palette_entry() -> None:
    classes = ClassSet(("road", "car", "sky"), ((128, 64, 128), (0, 0, 142), (70, 130, 180)))
    classmap = np.array([[0, 1, 2, 7]], np.uint8)  # 7: past the palette, drawn black
    expected_bgr = [[128, 64, 128], [142, 0, 0], [180, 130, 70], [0, 0, 0]]
    np.testing.assert_array_equal(colorize(classmap, classes)[0], expected_bgr)
    np.testing.assert_array_equal(colorize(classmap.astype(np.int64), classes)[0], expected_bgr)
    frame = np.full((2, 8, 3), 100, np.uint8)  # twice the map's size: the map is scaled (nearest) to the frame
    blended = overlay(frame, classmap, classes, alpha=0.5)
    assert blended.shape == frame.shape
    np.testing.assert_array_equal(blended[1, 1], [114, 82, 114])  # (100 + road's BGR) / 2, rounded
    np.testing.assert_array_equal(blended[1, 2], [121, 50, 50])  # column 2 of 8 is column 1 of 4: car


def output_frame(index: int, size: tuple[int, int] = (64, 48), colour: tuple[int, int, int] = GREEN_BGR) -> OutputFrame:
    image = np.zeros((size[1], size[0], 3), np.uint8)
    image[:] = colour
    frame = Frame(image, index, time.monotonic(), f"frame{index:03d}")
    return OutputFrame(image, frame, np.zeros(image.shape[:2], np.uint8), fps=12.5, latency_ms=40.0)


def test_video_file_is_playable_and_resizes_odd_frames(tmp_path: Path) -> None:
    sink = VideoFileSink(tmp_path / "out" / "overlay.mp4", fps=12)
    for i in range(9):
        sink.write(output_frame(i, size=(64, 48) if i != 4 else (100, 80)))
    sink.close()
    capture = cv2.VideoCapture(str(tmp_path / "out" / "overlay.mp4"))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 9
    assert capture.get(cv2.CAP_PROP_FPS) == 12
    ok, first = capture.read()
    assert ok and first.shape == (48, 64, 3)
    assert np.abs(first.astype(int) - GREEN_BGR).mean() < 10


def test_video_sink_rejects_unknown_containers(tmp_path: Path) -> None:
    with pytest.raises(EdgekitError, match="use one of"):
        VideoFileSink(tmp_path / "out.gif")


def test_image_files_named_after_frames(tmp_path: Path) -> None:
    sink = ImageFilesSink(tmp_path / "frames")
    for i in range(3):
        sink.write(output_frame(i))
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [
        "frame000.png",
        "frame001.png",
        "frame002.png",
    ]


def test_no_outputs_means_a_null_sink() -> None:
    (sink,) = open_sinks()
    assert isinstance(sink, NullSink)


def test_window_without_gui_support_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", ":0")  # get past the display check to OpenCV's own GUI check
    build = cv2.getBuildInformation().splitlines()
    gui = next((line.split(":", 1)[1].strip() for line in build if line.strip().startswith("GUI:")), "NONE")
    if gui != "NONE":
        pytest.skip(f"this OpenCV has GUI support ({gui})")
    with pytest.raises(EdgekitError, match=r"opencv-python-headless.*--serve"):
        open_sinks(show=True)
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(EdgekitError, match=r"DISPLAY is not set.*--serve"):
        open_sinks(show=True)


@pytest.fixture
def live_server() -> Iterator[MjpegSink]:
    """An MJPEG sink on an ephemeral loopback port, fed green frames at ~20 FPS."""
    sink = MjpegSink("127.0.0.1:0")
    running = threading.Event()
    running.set()

    def feed() -> None:
        index = 0
        while running.is_set():
            sink.write(output_frame(index, size=(320, 240)))
            index += 1
            time.sleep(0.05)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    time.sleep(0.2)
    yield sink
    running.clear()
    feeder.join()
    sink.close()


def test_mjpeg_routes(live_server: MjpegSink) -> None:
    page = urllib.request.urlopen(live_server.url, timeout=5).read().decode()
    assert '<img id="view" src="/stream.mjpg"' in page and 'id="fps"' in page
    stats = json.loads(urllib.request.urlopen(f"{live_server.url}stats.json", timeout=5).read())
    assert stats["fps"] == 12.5 and stats["frames"] >= 1
    jpeg = urllib.request.urlopen(f"{live_server.url}frame.jpg", timeout=5).read()
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (240, 320, 3)

    with urllib.request.urlopen(f"{live_server.url}stream.mjpg", timeout=5) as stream:
        assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        data = b""
        while data.count(b"--edgekitframe") < 3:
            data += stream.read1(65536)
    parts = [p for p in data.split(b"--edgekitframe") if b"\r\n\r\n" in p]
    first_jpeg = parts[0].split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n")
    decoded = cv2.imdecode(np.frombuffer(first_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape == (240, 320, 3)
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(f"{live_server.url}nothing", timeout=5)


def test_busy_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EdgekitError, match=f"cannot serve on 127.0.0.1:{port}.*another port"):
            MjpegSink(f"127.0.0.1:{port}")


CHROMIUM = find_chromium()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package `chromium`)")
def test_browser_shows_the_live_stream_and_fps(live_server: MjpegSink, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    base = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=400,320"]
    env = {**os.environ, "HOME": str(tmp_path)}
    shot = tmp_path / "view.png"
    subprocess.run(
        [*base, "--timeout=3000", f"--screenshot={shot}", live_server.url], env=env, capture_output=True, timeout=90
    )
    screenshot = cv2.imread(str(shot))
    assert screenshot is not None, "chromium wrote no screenshot"
    green = np.all(np.abs(screenshot.astype(int) - GREEN_BGR) < 40, axis=2)
    assert green.sum() > 0.8 * 320 * 240, "the page does not show the streamed frames"

    dom = subprocess.run(
        [*base, "--virtual-time-budget=3000", "--dump-dom", live_server.url],
        env=env, capture_output=True, text=True, timeout=90,
    ).stdout  # fmt: skip
    assert '<span id="fps">12.5</span>' in dom, "the page does not show the current FPS"


def noise_frame(index: int, size: tuple[int, int] = (320, 240)) -> OutputFrame:
    """Random pixels: nothing compresses them, so a small disk fills within a few frames."""
    image = np.random.default_rng(index).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    frame = Frame(image, index, time.monotonic(), f"frame{index:03d}")
    return OutputFrame(image, frame, np.zeros(image.shape[:2], np.uint8), fps=30.0, latency_ms=10.0)


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_video_on_a_full_disk_is_an_error_not_a_written_video(suffix: str, small_tmpfs: Path) -> None:
    sink = VideoFileSink(small_tmpfs / f"o{suffix}", fps=30)
    with pytest.raises(EdgekitError, match=r"the disk is full .* after \d+ frames; the video is incomplete"):
        for index in range(100):
            sink.write(noise_frame(index))
    with pytest.raises(EdgekitError, match=r"is incomplete: \d+ frames were encoded but .*\(the disk is full\)"):
        sink.close()


def test_video_whose_finalizing_write_fails_is_an_error(small_tmpfs: Path) -> None:
    """The disk fills after the last frame: only release's writes fail, found by reading the file back."""
    sink = VideoFileSink(small_tmpfs / "o.mp4", fps=30)
    for index in range(3):
        sink.write(noise_frame(index, (96, 64)))  # ~20 KB in all: still in FFmpeg's 32 KiB output buffer
    fill_up(small_tmpfs)
    with pytest.raises(EdgekitError, match=r"o\.mp4 is incomplete: 3 frames were encoded but"):
        sink.close()


def test_image_on_a_full_disk_says_why_and_what_was_saved(small_tmpfs: Path) -> None:
    sink = ImageFilesSink(small_tmpfs / "frames")
    with pytest.raises(EdgekitError, match=r"No space left on device; \d+ frames were saved in .*, the rest"):
        for index in range(100):
            sink.write(noise_frame(index))
    saved = sorted((small_tmpfs / "frames").iterdir())
    assert saved and all(cv2.imread(str(path)) is not None for path in saved)  # no half image left


def test_results_on_a_full_disk_are_an_error_and_leave_no_partial_file(small_tmpfs: Path) -> None:
    from edgekit.board.measure.bench import write_results
    from edgekit.board.stats import RunStats

    fill_up(small_tmpfs)
    with pytest.raises(EdgekitError, match=r"r\.json: No space left on device; the bench results are lost"):
        write_results({"schema": "x", "results": [{"fps": 1.0}] * 100}, small_tmpfs / "r.json")
    with pytest.raises(EdgekitError, match=r"stats\.json: No space left on device; the run statistics are lost"):
        RunStats(source="s", backend={}).write_json(small_tmpfs / "stats.json")
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["filler"]


def test_video_of_a_live_source_plays_at_the_measured_rate(tmp_path: Path) -> None:
    sink = VideoFileSink(tmp_path / "o.avi", measure_rate=True)
    began = time.monotonic()
    for index in range(20):  # 12.5 frames a second of capture time
        frame = output_frame(index)
        frame.frame.timestamp = began + index * 0.08
        sink.write(frame)
    sink.close()
    capture = cv2.VideoCapture(str(tmp_path / "o.avi"))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(12.5, rel=0.01)
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 20

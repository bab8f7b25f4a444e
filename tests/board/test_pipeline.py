"""The threaded pipeline and the `edgekit run` / `edgekit demo` commands on real models, streams and files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO, fill_up

from edgekit.board import events
from edgekit.board.backends import open_backend, resolve_model
from edgekit.board.backends.base import Backend
from edgekit.board.bundle import Bundle
from edgekit.board.pipeline import PipelineError, model_inputs, run_pipeline
from edgekit.board.sinks import open_sinks
from edgekit.board.sinks.base import NullSink, OutputFrame
from edgekit.board.sources import open_source
from edgekit.board.sources.gstreamer import pygobject_gstreamer
from edgekit.errors import EdgekitError

needs_gstreamer = pytest.mark.skipif(
    pygobject_gstreamer() is None, reason="PyGObject/GStreamer not installed (make venv installs them)"
)
TEST_PATTERN = "gst://videotestsrc num-buffers={n} pattern=ball ! video/x-raw,width=160,height=120"
LIVE_PATTERN = "gst://videotestsrc is-live=true pattern=ball ! video/x-raw,width=160,height=120,framerate={fps}"


def edgekit(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "edgekit", *args],
        cwd=kwargs.get("cwd", REPO),  # type: ignore[arg-type]
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def frame_count(video: Path) -> int:
    """Decode every frame: a file that is not finalized fails here, whatever its header claims."""
    capture = cv2.VideoCapture(str(video))
    assert capture.isOpened(), f"{video} is not a playable video"
    count = 0
    while capture.read()[0]:
        count += 1
    return count


@needs_gstreamer
@pytest.mark.parametrize("fixture", ["tiny_bundle", "tiny_logits_onnx", "tiny_uint8_onnx"])
def test_every_frame_of_a_prerolled_source_reaches_every_sink(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A built bundle (class map), an exported ONNX with logits and one with uint8 input: every path."""
    model = resolve_model(request.getfixturevalue(fixture))
    backend = open_backend(model)
    preprocessing, classes = model_inputs(model)
    sinks = open_sinks(output=tmp_path / "out.mp4", save_frames=tmp_path / "frames")
    cv2.setNumThreads(3)  # the caller's OpenCV setting, single-threaded only while the stages run
    stats = run_pipeline(
        backend,
        open_source(TEST_PATTERN.format(n=12)),
        sinks,
        preprocessing,
        classes,
        inference_only_iterations=3,
        stats_path=tmp_path / "stats.json",
    )
    assert cv2.getNumThreads() == 3
    cv2.setNumThreads(-1)  # back to the default for the other tests
    assert (stats.frames_in, stats.frames_out, stats.frames_dropped) == (12, 12, 0)
    assert stats.stopped_by == "end of stream" and stats.error is None
    assert frame_count(tmp_path / "out.mp4") == 12
    assert len(list((tmp_path / "frames").glob("*.png"))) == 12
    written = json.loads((tmp_path / "stats.json").read_text())
    for stage in ("capture", "preprocess", "inference", "postprocess", "output", "end_to_end"):
        assert written["latency"][stage]["count"] == 12
        assert 0 < written["latency"][stage]["p50_ms"] <= written["latency"][stage]["p99_ms"]
    timing = written["inference_only"]
    assert timing["iterations_before"] == timing["iterations_after"] == 3 and timing["latency"]["count"] == 6
    assert (
        min(timing["fps_before"], timing["fps_after"])
        <= timing["fps"]
        <= max(timing["fps_before"], timing["fps_after"])
    )
    assert written["fps_vs_inference_only"] == pytest.approx(written["fps"] / written["inference_only"]["fps"], 1e-3)
    assert written["backend"]["provider"] == "CPUExecutionProvider"


class WithHook(Backend):
    """A real backend that calls ``before`` ahead of each inference: to slow it down, or to look at its thread."""

    def __init__(self, backend: Backend, before: Callable[[], object]) -> None:
        self.backend, self.before = backend, before
        self.name, self.input_shape = backend.name, backend.input_shape
        self.input_dtype, self.output_kind = backend.input_dtype, backend.output_kind

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.before()
        return self.backend.infer(batch)


@needs_gstreamer
def test_live_source_faster_than_the_model_drops_stale_frames(tiny_bundle: Path) -> None:
    bundle = Bundle.load(tiny_bundle)
    # the tiny model alone can outrun a 200 fps camera on a fast machine; at 25 ms a frame it cannot anywhere
    stats = run_pipeline(
        WithHook(open_backend(bundle), lambda: time.sleep(0.025)),
        open_source(LIVE_PATTERN.format(fps="200/1")),
        open_sinks(),
        bundle.preprocessing,
        bundle.classes,
        max_frames=15,
    )
    assert stats.frames_in == 15 and stats.stopped_by == "max_frames (15) reached"
    assert stats.frames_out + stats.frames_dropped_between_stages == 15 and stats.frames_out >= 2
    assert stats.frames_dropped + stats.frames_dropped_between_stages >= 5  # ~4 frames arrive per inference
    assert stats.latency["end_to_end"]["p50_ms"] is not None


@needs_gstreamer
def test_live_source_behind_a_slow_model_shows_the_newest_frame(tiny_bundle: Path) -> None:
    """No frame waits behind inference: end-to-end latency within 2x the inference latency, drops counted."""
    bundle = Bundle.load(tiny_bundle)
    stats = run_pipeline(
        WithHook(open_backend(bundle), lambda: time.sleep(0.1)),  # 10 fps against a 30 fps camera
        open_source(LIVE_PATTERN.format(fps="30/1")),
        open_sinks(),
        bundle.preprocessing,
        bundle.classes,
        max_frames=40,
    )
    inference, end_to_end = stats.latency["inference"]["p50_ms"], stats.latency["end_to_end"]["p50_ms"]
    assert stats.end_to_end_vs_inference == pytest.approx(end_to_end / inference, abs=1e-3)
    assert stats.end_to_end_vs_inference < 2, stats.latency
    assert stats.frames_dropped_between_stages > 0
    assert stats.frames_out + stats.frames_dropped_between_stages == stats.frames_in == 40


def test_truncated_video_delivers_every_decoded_frame_before_the_error(tiny_bundle: Path, tmp_path: Path) -> None:
    video = tmp_path / "trunc.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10, (160, 120))
    rng = np.random.default_rng(0)
    for _ in range(60):
        writer.write(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    writer.release()
    full = video.read_bytes()
    video.write_bytes(full[: len(full) * 2 // 3])  # the header still says 60 frames
    bundle = Bundle.load(tiny_bundle)
    out = tmp_path / "out.avi"
    with pytest.raises(PipelineError, match="truncated") as error:
        run_pipeline(
            WithHook(open_backend(bundle), lambda: time.sleep(0.02)),  # the queues are full when the file ends
            open_source(video),
            open_sinks(output=out, save_frames=tmp_path / "frames"),
            bundle.preprocessing,
            bundle.classes,
        )
    stats = error.value.stats
    assert 20 < stats.frames_in < 60 and stats.stopped_by == "error"
    assert stats.frames_out == stats.frames_in
    assert frame_count(out) == len(list((tmp_path / "frames").glob("*.png"))) == stats.frames_in


def test_unreadable_image_is_skipped_and_counted(tiny_bundle: Path, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a", "b", "d"):
        cv2.imwrite(str(folder / f"{name}.jpg"), np.full((60, 90, 3), 99, np.uint8))
    (folder / "c.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    bundle = Bundle.load(tiny_bundle)
    stats = run_pipeline(
        open_backend(bundle),
        open_source(folder),
        open_sinks(save_frames=tmp_path / "out"),
        bundle.preprocessing,
        bundle.classes,
    )
    assert (stats.frames_in, stats.frames_out, stats.frames_skipped) == (3, 3, 1)
    assert "c.jpg" in stats.skipped[0]
    assert sorted(p.stem for p in (tmp_path / "out").iterdir()) == ["a", "b", "d"]


def thread_niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


class NicenessRecorder(NullSink):
    """Notes the nice value of the thread that writes each output frame."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def write(self, output: OutputFrame) -> None:
        self.seen.add(thread_niceness())


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")
@pytest.mark.parametrize("niceness", [10, 0])
def test_every_stage_but_inference_runs_nicer(niceness: int, tiny_bundle: Path, tmp_path: Path) -> None:
    for index in range(4):
        cv2.imwrite(str(tmp_path / f"{index}.png"), np.full((60, 90, 3), 40 * index, np.uint8))
    bundle = Bundle.load(tiny_bundle)
    base, inference, output = thread_niceness(), set(), NicenessRecorder()
    stats = run_pipeline(
        WithHook(open_backend(bundle), lambda: inference.add(thread_niceness())),
        open_source(tmp_path / "*.png"),
        [output],
        bundle.preprocessing,
        bundle.classes,
        stage_niceness=niceness,
    )
    assert stats.frames_out == 4 and stats.stage_niceness == niceness
    assert inference == {base}
    assert output.seen == {min(19, base + niceness)}
    assert thread_niceness() == base  # the caller's own thread is untouched


@needs_gstreamer
def test_stalled_stream_ends_the_run_with_stats_and_a_finalized_video(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = Bundle.load(tiny_bundle)
    stalling = LIVE_PATTERN.format(fps="1/5")  # a live camera that sends its first frame, then one every 5 s
    started = time.monotonic()
    with pytest.raises(PipelineError, match="stalled") as error:
        run_pipeline(
            open_backend(bundle),
            open_source(stalling),
            open_sinks(output=tmp_path / "out.mp4"),
            bundle.preprocessing,
            bundle.classes,
            stall_timeout=0.5,
            stats_path=tmp_path / "stats.json",
        )
    assert time.monotonic() - started < 8
    assert error.value.stats.stopped_by == "stalled"
    assert json.loads((tmp_path / "stats.json").read_text())["stopped_by"] == "stalled"
    assert frame_count(tmp_path / "out.mp4") == 1  # the one frame before the stall, in a playable file


@needs_gstreamer
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_stream_finalizes_video_and_stats(signum: int, tiny_bundle: Path, tmp_path: Path) -> None:
    out, stats_file = tmp_path / "out.mp4", tmp_path / "stats.json"
    process = edgekit(
        "run", "--bundle", str(tiny_bundle), "--source", LIVE_PATTERN.format(fps="30/1"),
        "--output", str(out), "--stats", str(stats_file),
    )  # fmt: skip
    assert process.stderr is not None
    for line in process.stderr:  # wait until frames flow
        if "running" in line:
            break
    time.sleep(2.0)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    stats = json.loads(stats_file.read_text())
    assert stats["stopped_by"] == f"interrupted ({signal.Signals(signum).name})"
    assert stats["frames_out"] >= 1
    assert frame_count(out) == stats["frames_out"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("v4l2:///dev/video97", "camera /dev/video97 does not exist"),
        ("rtsp://127.0.0.1:9/stream", "cannot connect to rtsp://127.0.0.1:9/stream after"),
        ("corrupt.mp4", "cannot open video"),
    ],
)
def test_cli_errors_are_one_line_with_exit_2(source: str, message: str, tiny_bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 5000)
    process = edgekit("run", "--bundle", str(tiny_bundle), "--source", source, cwd=tmp_path)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    assert message in stderr and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("edgekit run: error:")


def test_demo_runs_the_bundle_on_a_sample_and_writes_video_and_stats(tiny_bundle: Path, tmp_path: Path) -> None:
    process = edgekit("demo", "--bundle", str(tiny_bundle), "--out-dir", str(tmp_path / "demo"))
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 0, stderr
    stats = json.loads((tmp_path / "demo" / "stats.json").read_text())
    assert stats["frames_out"] == stats["frames_in"] > 0 and stats["error"] is None
    assert stats["inference_only"]["iterations_before"] == 10
    assert frame_count(tmp_path / "demo" / "overlay.mp4") == stats["frames_out"]
    assert f"overlay video: {tmp_path / 'demo' / 'overlay.mp4'}" in " ".join(stderr.split())


def test_demo_without_a_bundle_says_how_to_get_one(tmp_path: Path) -> None:
    process = edgekit("demo", cwd=tmp_path)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2 and "make demo" in stderr


@needs_gstreamer
def test_sigterm_while_the_stream_is_silent_stops_promptly(tiny_bundle: Path, tmp_path: Path) -> None:
    silent = LIVE_PATTERN.format(fps="1/60")  # one frame a minute
    process = edgekit(
        "run", "--bundle", str(tiny_bundle), "--source", silent, "--stall-timeout", "60",
        "--stats", str(tmp_path / "stats.json"),
    )  # fmt: skip
    assert process.stderr is not None
    for line in process.stderr:
        if "running" in line:
            break
    time.sleep(1.0)
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert time.monotonic() - signalled < 5
    assert process.returncode == 128 + signal.SIGTERM
    assert json.loads((tmp_path / "stats.json").read_text())["stopped_by"] == "interrupted (SIGTERM)"


def test_manifest_changed_after_the_build_is_refused_in_one_line(tiny_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    manifest = copy / "manifest.json"
    text = manifest.read_text()
    mean = json.loads(text)["preprocessing"]["mean"]
    first = json.dumps(mean[0])  # the written number, e.g. 72.3923111: change one of its digits
    digit = first.index(".") + 1
    changed = first[:digit] + str((int(first[digit]) + 1) % 10) + first[digit + 1 :]
    manifest.write_text(text.replace(first, changed, 1))
    json.loads(manifest.read_text())  # still valid JSON: only the content changed
    with pytest.raises(EdgekitError, match=r"manifest\.json was changed after the build"):
        Bundle.load(copy)
    process = edgekit("run", "--bundle", str(copy), "--source", "no-such-video.mp4")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        f"edgekit run: error: {manifest} was changed after the build "
        + "(its content no longer matches manifest_sha256); rebuild the bundle"
    )
    manifest.write_text(json.dumps(json.loads(text), indent=4, sort_keys=True))  # same content, other layout
    assert Bundle.load(copy).preprocessing.mean[0] == mean[0]


def noise_video(path: Path, frames: int, size: tuple[int, int] = (320, 240)) -> Path:
    """Random pixels (nothing compresses them), MJPEG in avi."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, size)
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


def test_overlay_video_on_a_full_disk_fails_in_one_line_and_the_stats_say_error(
    tiny_bundle: Path, tmp_path: Path, small_tmpfs: Path
) -> None:
    source, out, stats_file = noise_video(tmp_path / "in.avi", 60), small_tmpfs / "o.mp4", tmp_path / "stats.json"
    process = edgekit(
        "run", "--bundle", str(tiny_bundle), "--source", str(source), "--output", str(out),
        "--stats", str(stats_file),
    )  # fmt: skip
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2, stderr
    assert "Traceback" not in stderr and "wrote" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"edgekit run: error: video {out}: the disk is full") and "incomplete" in last
    stats = json.loads(stats_file.read_text())
    assert stats["stopped_by"] == "error" and "the disk is full" in stats["error"]
    assert stats["frames_out"] < 60


def test_stats_on_a_full_disk_fail_the_run(tiny_bundle: Path, tmp_path: Path, small_tmpfs: Path) -> None:
    for index in range(3):
        cv2.imwrite(str(tmp_path / f"{index}.png"), np.full((60, 90, 3), 40 * index, np.uint8))
    fill_up(small_tmpfs)
    bundle = Bundle.load(tiny_bundle)
    with pytest.raises(PipelineError, match="the run statistics are lost") as error:
        run_pipeline(
            open_backend(bundle), open_source(tmp_path / "*.png"), open_sinks(), bundle.preprocessing,
            bundle.classes, stats_path=small_tmpfs / "stats.json",
        )  # fmt: skip
    assert error.value.stats.stopped_by == "error" and error.value.stats.frames_out == 3
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["filler"]


@needs_gstreamer
def test_video_of_a_live_source_is_written_at_the_rate_it_was_captured(tiny_bundle: Path, tmp_path: Path) -> None:
    out, stats_file = tmp_path / "o.avi", tmp_path / "stats.json"
    process = edgekit(
        "run", "--bundle", str(tiny_bundle), "--source", LIVE_PATTERN.format(fps="15/1"), "--output", str(out),
        "--max-frames", "30", "--stats", str(stats_file),
    )  # fmt: skip
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    stats = json.loads(stats_file.read_text())
    assert frame_count(out) == stats["frames_out"]
    assert cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FPS) == pytest.approx(15, rel=0.15)  # not 30


@needs_gstreamer
def test_video_behind_a_slow_model_is_written_at_the_rate_it_delivers(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = Bundle.load(tiny_bundle)
    stats = run_pipeline(
        WithHook(open_backend(bundle), lambda: time.sleep(0.1)),  # about 9 of the camera's 30 frames a second
        open_source(LIVE_PATTERN.format(fps="30/1")),
        open_sinks(output=tmp_path / "o.avi", measure_rate=True),
        bundle.preprocessing,
        bundle.classes,
        max_frames=60,
    )
    written = cv2.VideoCapture(str(tmp_path / "o.avi")).get(cv2.CAP_PROP_FPS)
    assert written == pytest.approx(stats.fps, rel=0.2) and written < 15


def test_progress_is_one_task_counting_frames_out_against_the_folder_length(tiny_bundle: Path, tmp_path: Path) -> None:
    """The pipeline reports through events.task (no console argument): total = images in the folder, one advance
    per frame out, the measured FPS as its status; the task is closed before the stats are returned."""
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(5):
        cv2.imwrite(str(folder / f"{index}.png"), np.full((48, 64, 3), 40 * index, np.uint8))
    seen: list[tuple[object, ...]] = []

    class Recorder(events.Renderer):
        def started(self, task: events.Task) -> None:
            seen.append(("started", task.description, task.total))

        def changed(self, task: events.Task) -> None:
            seen.append(("changed", task.completed))

        def finished(self, task: events.Task) -> None:
            seen.append(("finished", task.completed, task.status))

    bundle = Bundle.load(tiny_bundle)
    previous = events.install(Recorder())
    try:
        stats = run_pipeline(
            open_backend(bundle), open_source(folder), [NullSink()], bundle.preprocessing, bundle.classes
        )
    finally:
        events.install(previous)
    assert stats.frames_out == 5
    assert seen[0] == ("started", "frames", 5)
    assert [entry[1] for entry in seen[1:-1] if entry[0] == "changed"][-1] == 5
    assert seen[-1][:2] == ("finished", 5) and str(seen[-1][2]).endswith(" FPS")

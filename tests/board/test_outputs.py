"""Outputs never lose anything: user folders and files are refused, unwritable paths fail before the work, a
SIGTERM or a full disk during a build leaves no partial folder, and stale ones from a killed build are removed.
Every case runs the real ``python -m edgekit`` in a subprocess."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO
from conftest import run_edgekit as edgekit

from edgekit.board.bundle import ONNX_FILES


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit 2, no traceback, the last stderr line is the error and names what is wrong."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "error:" in line
    for word in words:
        assert word in line, line
    return line


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    """A folder of the user's own files, which no command may replace."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.txt").write_text("three years of work\n")
    return folder


def assert_untouched(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.txt"]
    assert (folder / "thesis.txt").read_text() == "three years of work\n"


@pytest.mark.parametrize(
    "command",
    [
        ["build", "--target", "cpu-x86", "-o", "{dir}"],
        ["demo", "--bundle", "{dir}", "--out-dir", "{dir}"],
        ["quantize", "--onnx", "{onnx}", "--calib", "default", "-o", "{dir}/thesis.txt"],
    ],
    ids=["build -o", "demo --out-dir", "quantize -o"],
)
def test_an_existing_folder_or_file_of_the_users_is_never_replaced(
    command: list[str], user_folder: Path, tmp_path: Path
) -> None:
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"")  # never read: the output is refused first
    args = [word.format(dir=user_folder, onnx=onnx) for word in command]
    assert_one_line_error(edgekit(*args), "exists and is not", "nothing was written")
    assert_untouched(user_folder)


def test_build_into_the_working_directory_is_refused(user_folder: Path) -> None:
    assert_one_line_error(edgekit("build", "--target", "cpu-x86", "-o", ".", cwd=user_folder), str(user_folder))
    assert_untouched(user_folder)


def test_export_refuses_to_replace_a_file_that_is_not_its_onnx(tiny_espnet_checkpoint: Path, user_folder: Path) -> None:
    result = edgekit("export", "--checkpoint", str(tiny_espnet_checkpoint), "-o", str(user_folder / "thesis.txt"))
    assert_one_line_error(result, "not an ONNX model written by edgekit")
    assert_untouched(user_folder)


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--onnx", "{onnx}", "--source", "{tmp}", "--output", "{file}/out.mp4"],
        ["run", "--onnx", "{onnx}", "--source", "{tmp}", "--save-frames", "{file}"],
        ["run", "--onnx", "{onnx}", "--source", "{tmp}", "--stats", "/proc/stats.json"],
        ["predict", "--checkpoint", "{onnx}", "--input", "{tmp}", "--output", "{file}"],
        ["demo", "--bundle", "{tmp}", "--out-dir", "{file}"],
        ["build", "--target", "cpu-x86", "-o", "/proc/b"],
        ["import-weights", "--model", "espnet", "--official", "{onnx}", "-o", "/proc/x.ckpt"],
        ["bench", "--models", "espnet", "-o", "/proc/results.json"],
        ["export", "--checkpoint", "{onnx}", "--json", "{file}/report.json", "-o", "{tmp}/x.onnx"],
    ],
    ids=lambda c: " ".join(c[:1] + [w for w in c if w.startswith("-")][-1:]),
)
def test_unwritable_outputs_fail_in_one_line_before_any_work(command: list[str], tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder\n")
    onnx = tmp_path / "model.onnx"
    onnx.write_text("never read: the outputs are checked first\n")
    args = [word.format(onnx=onnx, tmp=tmp_path, file=a_file) for word in command]
    line = assert_one_line_error(edgekit(*args))
    assert "is a file, not a folder" in line or "cannot be written" in line, line
    assert a_file.read_text() == "not a folder\n"


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_sigterm_during_build_leaves_no_staging_and_stale_ones_are_removed(
    tiny_espnet_checkpoint: Path, tmp_path: Path
) -> None:
    stale = tmp_path / f".bundle.partial-{_dead_pid()}-deadbeef"  # what a SIGKILLed build leaves
    stale.mkdir()
    (stale / "model.fp32.onnx").write_bytes(b"half")
    process = subprocess.Popen(
        [sys.executable, "-m", "edgekit", "build", "--target", "cpu-x86", "--checkpoint", str(tiny_espnet_checkpoint),
         "--input-size", "128x64", "--eval-scenes", "1", "-o", str(tmp_path / "bundle")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(f".bundle.partial-{process.pid}-*")) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    assert not stale.exists(), "the stale staging folder of a dead build was not removed"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr and "interrupted (SIGTERM)" in stderr.strip().splitlines()[-1]
    assert list(tmp_path.iterdir()) == [], "a SIGTERMed build left files behind"


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 700 KiB tmpfs: room for the tiny checkpoint, not for the ONNX export after it."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=False)


def test_build_on_a_full_disk_is_one_line_and_leaves_nothing(tiny_espnet_checkpoint: Path, full_disk: Path) -> None:
    result = edgekit(
        "build", "--target", "cpu-x86", "--checkpoint", str(tiny_espnet_checkpoint), "--input-size", "128x64",
        "--eval-scenes", "1", "-o", str(full_disk / "bundle"),
    )  # fmt: skip
    assert_one_line_error(result, "no space left on the device", "no bundle was written")
    assert list(full_disk.iterdir()) == []


@pytest.mark.parametrize("content", [b"name: not a model\n", "truncated"], ids=["text", "truncated"])
@pytest.mark.parametrize("command", ["run", "quantize"])
def test_a_file_that_is_not_onnx_is_one_line(
    command: str, content: bytes | str, tiny_bundle: Path, tmp_path: Path
) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_bytes(content if isinstance(content, bytes) else (tiny_bundle / ONNX_FILES["fp32"]).read_bytes()[:5000])
    images = tmp_path / "images"
    images.mkdir()
    args = {
        "run": ["run", "--onnx", str(fake), "--source", str(images)],
        "quantize": ["quantize", "--onnx", str(fake), "--calib", "default", "-o", str(tmp_path / "q.onnx")],
    }[command]
    assert_one_line_error(edgekit(*args), str(fake), "not a")


def test_an_onnx_given_as_checkpoint_is_one_line(tiny_bundle: Path, tmp_path: Path) -> None:
    result = edgekit("export", "--checkpoint", str(tiny_bundle / ONNX_FILES["fp32"]), "-o", str(tmp_path / "x.onnx"))
    line = assert_one_line_error(result, "is not an edgekit checkpoint", "ONNX model")
    assert "weights_only" not in result.stderr and len(line) < 300

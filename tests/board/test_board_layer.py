"""The board layer: what a Jetson imports (Python 3.6+, base install) stays apart from the host side.

The 3.6 syntax/stdlib checks run in `make typecheck` (vermin, pyright); these tests run the board commands for
real with the host packages made unimportable, scan the layer's imports, and install a wheel built from the repo.
"""

from __future__ import annotations

import ast
import email.parser
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit.board.backends.tensorrt_backend.runner import numpy_dtype
from edgekit.board.opencv import gstreamer_support
from edgekit.board.targets import targets_dir
from edgekit.errors import EdgekitError

PACKAGE = Path(edgekit.__file__).parent
REPO = PACKAGE.parent
HOST_PACKAGES = ("torch", "onnx", "onnxsim", "matplotlib", "onnxconverter_common")
# Host modules the board layer may import lazily, each on a path that needs torch or onnx anyway.
LAZY_HOST_IMPORTS = {
    "edgekit.checkpoint": "the torch backend and `run --checkpoint` load an edgekit checkpoint (torch)",
}

# A child interpreter in which every host package fails to import, as on a board's base install; it runs the CLI
# and then prints any host package that got imported anyway.
BLOCKED_RUN = """
import sys
BLOCKED = {blocked!r}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("blocked on the board: " + name)
        return None
sys.meta_path.insert(0, Block())
from edgekit.cli import main
code = main({argv!r})
print("HOST-IMPORTS", sorted(m for m in BLOCKED if m in sys.modules))
sys.exit(code)
"""


def _run_blocked(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    code = BLOCKED_RUN.format(blocked=HOST_PACKAGES, argv=argv)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_board_commands_run_with_every_host_package_unimportable(
    tiny_bundle: Path, nano_bundle: tuple[Path, str], tmp_path: Path
) -> None:
    from edgekit.board.synthetic import synthetic_video

    video = synthetic_video(tmp_path / "street.mp4", frames=4, size=(96, 48))
    commands = {
        "targets": (["targets"], 0),
        "run": (["run", "--bundle", str(tiny_bundle), "--source", str(video), "--stats", str(tmp_path / "s.json")], 0),
        "demo": (["demo", "--bundle", str(tiny_bundle), "--source", str(video), "--out-dir", str(tmp_path / "d")], 0),
        "bench": (
            [
                "bench",
                "--bundle",
                str(tiny_bundle),
                "--min-runs",
                "3",
                "--budget",
                "0.5",
                "--pipeline-frames",
                "0",
                "--profile-runs",
                "0",
                "-o",
                str(tmp_path / "bench.json"),
            ],
            0,
        ),
        # no TensorRT here: compile must get as far as saying so, through the board code only
        "compile": (["compile", "--bundle", str(nano_bundle[0])], 2),
    }
    for name, (argv, expected) in commands.items():
        result = _run_blocked(argv)
        assert result.returncode == expected, f"{name}: {result.stderr[-2000:]}"
        assert "HOST-IMPORTS []" in result.stdout, f"{name} imported a host package: {result.stdout[-500:]}"
    assert (tmp_path / "s.json").is_file() and (tmp_path / "bench.json").is_file()
    assert (tmp_path / "d" / "overlay.mp4").stat().st_size > 0


def test_the_blocker_really_blocks() -> None:
    """A host command under the same blocker fails for want of torch: the test above can fail."""
    result = _run_blocked(["models"])
    assert result.returncode != 0 or "HOST-IMPORTS []" not in result.stdout


def _imports(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(module-level imports, imports inside functions) of edgekit modules, as dotted names; imports for type
    checking only (``if TYPE_CHECKING:``) never run and are left out."""
    top, lazy = set(), set()
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    inside = {id(node) for f in functions for node in ast.walk(f)}
    typing_only = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    skipped = {id(node) for block in typing_only for node in ast.walk(block)}
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            if id(node) in skipped:
                continue
            if name == "edgekit" or name.startswith("edgekit."):
                (lazy if id(node) in inside else top).add(name)
    return top, lazy


def test_board_modules_import_nothing_from_the_host_side() -> None:
    offenders = []
    for path in sorted((PACKAGE / "board").rglob("*.py")):
        top, lazy = _imports(ast.parse(path.read_text()))
        for name in top:
            if not (name.startswith("edgekit.board") or name == "edgekit.errors"):
                offenders.append(f"{path.relative_to(REPO)} imports {name} at module level")
        for name in lazy:
            if not (name.startswith("edgekit.board") or name == "edgekit.errors" or name in LAZY_HOST_IMPORTS):
                offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert offenders == []


def test_host_commands_say_which_python_they_need() -> None:
    """On a Python below the host's floor (a board), a host command is one line and exit 2; board ones still run."""
    code = "import sys, edgekit.cli as cli\ncli.HOST_PYTHON = (99, 0)\nsys.exit(cli.main(sys.argv[1:]))"
    host = subprocess.run([sys.executable, "-c", code, "models"], capture_output=True, text=True)
    assert host.returncode == 2
    assert host.stderr.count("\n") == 1 and "host command: needs Python 99.0+" in host.stderr
    assert "compile" in host.stderr and "bench --bundle" in host.stderr
    board = subprocess.run([sys.executable, "-c", code, "targets"], capture_output=True, text=True)
    assert board.returncode == 0 and "jetson-nano" in board.stdout


def test_a_wheel_carries_every_profile_and_names_no_host_package(tmp_path: Path) -> None:
    """`pip install --no-deps` of a wheel built from this tree carries every module and lists every profile from
    another folder."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(REPO)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (wheel,) = wheels.glob("edgekit-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(metadata_name).decode())
        packed = {n for n in archive.namelist() if n.endswith(".py")}
    # every module of the tree is in the wheel (a folder without __init__.py is left out by find:)
    assert {p.relative_to(REPO).as_posix() for p in PACKAGE.rglob("*.py")} <= packed
    base = [r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]
    names = {re.split(r"[ ;<>=!]", requirement)[0].lower() for requirement in base}
    assert "numpy" in names and not names & {*HOST_PACKAGES, "opencv-python", "opencv-python-headless"}
    assert metadata["Requires-Python"] == ">=3.6"

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("EDGEKIT_TARGETS_DIR", None)
    listed = subprocess.run([sys.executable, "-m", "edgekit", "targets"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    imported = subprocess.run([sys.executable, "-c", "import edgekit; print(edgekit.__file__)"], cwd=elsewhere,
                              env=env, capture_output=True, text=True)  # fmt: skip
    assert imported.stdout.startswith(str(site))  # the wheel's copy, not this checkout
    for profile in sorted(targets_dir().glob("*.yaml")):
        assert profile.stem in listed.stdout
    assert (site / "edgekit" / "_data" / "calibration" / "default.yaml").is_file()


def test_engine_tensor_types_map_through_our_own_table() -> None:
    """trt.nptype maps BOOL to np.bool on 8.2/8.4, gone since numpy 1.24: the runner uses its own table."""
    assert numpy_dtype("DataType.BOOL") == np.dtype(bool)
    assert numpy_dtype("DataType.HALF") == np.float16 and numpy_dtype("DataType.INT32") == np.int32
    with pytest.raises(EdgekitError, match="FP8 has no numpy equivalent"):
        numpy_dtype("DataType.FP8")


def test_opencv_gstreamer_support_is_read_from_the_build_information() -> None:
    assert gstreamer_support("  Video I/O:\n    GStreamer:                   YES (1.16.3)\n")
    assert not gstreamer_support("  Video I/O:\n    GStreamer:                   NO\n")
    assert not gstreamer_support("  Video I/O:\n    FFMPEG:                      YES\n")

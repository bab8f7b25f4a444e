"""Which OpenCV the board runs, said once per run: JetPack's (apt, built with GStreamer) or pip's (none).

edgekit never installs OpenCV on a board: pip's ``opencv-python`` would land in ``/usr/local`` ahead of JetPack's
``python3-opencv`` and silently take GStreamer (and so ``nvarguscamerasrc`` pipelines) away. So the base install
names no OpenCV, desktops take it with the ``[runtime]`` extra, and this check tells the user which one imports.
"""

import re
from pathlib import Path

from edgekit.errors import EdgekitError

JETSON_RELEASE_FILE = Path("/etc/nv_tegra_release")


def describe_opencv() -> str:
    """'OpenCV 4.1.1 (/usr/lib/python3.6/dist-packages/cv2..., GStreamer: YES)'; one line when none imports."""
    try:
        import cv2
    except ImportError as exc:
        raise EdgekitError(
            f"OpenCV does not import ({exc}): on Jetson use JetPack's (sudo apt install python3-opencv), "
            "elsewhere pip install 'edgekit[runtime]'"
        ) from exc
    gstreamer = gstreamer_support(cv2.getBuildInformation())
    line = f"OpenCV {cv2.__version__} ({Path(cv2.__file__).parent}, GStreamer: {'YES' if gstreamer else 'NO'})"
    if JETSON_RELEASE_FILE.is_file() and not gstreamer:
        line += (
            "; this is not JetPack's OpenCV (it has GStreamer): pip3 uninstall opencv-python opencv-python-headless "
            "to use it again"
        )
    return line


def gstreamer_support(build_information: str) -> bool:
    """Whether cv2.getBuildInformation() lists GStreamer as a video I/O backend."""
    match = re.search(r"^\s*GStreamer:\s*(\S+)", build_information, re.MULTILINE)
    return bool(match) and match.group(1).upper() not in ("NO", "OFF")  # type: ignore[union-attr]

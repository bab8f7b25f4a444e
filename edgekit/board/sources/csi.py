"""Jetson CSI cameras (``csi://0``) through JetPack's ``nvarguscamerasrc`` GStreamer element."""

from typing import Optional

from edgekit.board.sources.gstreamer import GStreamerSource, pygobject_gstreamer
from edgekit.errors import EdgekitError


def csi_pipeline(sensor_id: int, width: int = 1280, height: int = 720, fps: float = 30, flip_method: int = 0) -> str:
    """The Argus capture pipeline jetson-utils uses: NVMM capture, nvvidconv to system memory, BGR for OpenCV."""
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM),width={width},height={height},framerate={round(fps)}/1,format=NV12 ! "
        f"nvvidconv flip-method={flip_method} ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
        "appsink name=edgekit_sink"
    )


def open_csi(
    sensor_id: int,
    width: Optional[int] = None,
    height: Optional[int] = None,
    fps: Optional[float] = None,
    flip_method: int = 0,
) -> GStreamerSource:
    Gst = pygobject_gstreamer()
    if Gst is not None and Gst.ElementFactory.find("nvarguscamerasrc") is None:
        raise EdgekitError(
            "csi:// needs nvarguscamerasrc, which only JetPack's GStreamer on a Jetson has; "
            "use v4l2:///dev/video0 (or 0) for a USB camera"
        )
    pipeline = csi_pipeline(sensor_id, width or 1280, height or 720, fps or 30, flip_method)
    return GStreamerSource(pipeline, uri=f"csi://{sensor_id}")

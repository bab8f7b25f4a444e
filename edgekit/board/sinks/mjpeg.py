"""MJPEG over HTTP for headless boards: ``--serve :8080`` and open http://board:8080/ in a browser.

Routes: ``/`` a small page with the live view and the current FPS, ``/stream.mjpg`` the multipart stream,
``/frame.jpg`` the latest frame, ``/stats.json`` the live rates. The standard library's threading HTTP server
runs in a daemon thread; frames are JPEG-encoded once per new frame and only when someone is watching, so an
unwatched server costs the pipeline nothing but a reference swap.
"""

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn
from typing import Any, Dict, Optional, Tuple, Type

import cv2
import numpy as np

from edgekit.board.sinks.base import OutputFrame, Sink
from edgekit.errors import EdgekitError

log = logging.getLogger(__name__)

BOUNDARY = "edgekitframe"
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>edgekit live</title>
<style>body{margin:0;background:#111;color:#eee;font:16px sans-serif}header{padding:6px 10px}
img{display:block;max-width:100%}</style></head>
<body><header>edgekit live &middot; <span id="fps">&ndash;</span> FPS &middot; <span id="lat">&ndash;</span> ms</header>
<img id="view" src="/stream.mjpg" alt="live view">
<script>
async function poll(){try{const s=await (await fetch('/stats.json',{cache:'no-store'})).json();
document.getElementById('fps').textContent=s.fps.toFixed(1);
document.getElementById('lat').textContent=s.latency_ms.toFixed(0);}catch(e){}}
setInterval(poll,500);poll();
</script></body></html>
"""


def parse_address(address: str) -> Tuple[str, int]:
    """':8080' -> ('', 8080) (all interfaces); 'localhost:0' -> an ephemeral port on loopback."""
    host, _, port = address.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise EdgekitError(f"--serve takes [HOST]:PORT such as :8080, not {address!r}") from None
    if not 0 <= number < 65536:
        raise EdgekitError(f"port {number} is out of range")
    return host, number


class _ThreadingHTTPServer(ThreadingMixIn, HTTPServer):
    """http.server.ThreadingHTTPServer, which is 3.7+: one thread per viewer, none of them keeping the process up."""

    daemon_threads = True


class _Latest:
    """The newest frame, its JPEG (encoded on first demand), and the live rates, shared with handler threads."""

    def __init__(self, quality: int) -> None:
        self.quality = quality
        self.condition = threading.Condition()
        self.image: Optional[np.ndarray] = None
        self.sequence = 0
        self.jpeg: Optional[Tuple[int, bytes]] = None
        self.status: Dict[str, float] = {"fps": 0.0, "latency_ms": 0.0, "frames": 0}
        self.closed = False

    def encoded(self) -> Optional[Tuple[int, bytes]]:
        with self.condition:
            image, sequence, cached = self.image, self.sequence, self.jpeg
        if image is None:
            return None
        if cached is not None and cached[0] == sequence:
            return cached
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            return None
        encoded = (sequence, data.tobytes())
        with self.condition:
            if self.jpeg is None or self.jpeg[0] < sequence:
                self.jpeg = encoded
        return encoded

    def wait_newer(self, sequence: int, timeout: float) -> bool:
        with self.condition:
            return self.condition.wait_for(lambda: self.sequence > sequence or self.closed, timeout) and not self.closed


def _handler(latest: _Latest) -> Type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            log.debug("mjpeg %s: " + format, self.address_string(), *args)

        def _send(self, body: bytes, content_type: str, status: HTTPStatus = HTTPStatus.OK) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path in ("/", "/index.html"):
                self._send(PAGE.encode(), "text/html; charset=utf-8")
            elif path == "/stats.json":
                with latest.condition:
                    body = json.dumps(latest.status).encode()
                self._send(body, "application/json")
            elif path == "/frame.jpg":
                encoded = latest.encoded()
                if encoded is None:
                    self._send(b"no frame yet", "text/plain", HTTPStatus.SERVICE_UNAVAILABLE)
                else:
                    self._send(encoded[1], "image/jpeg")
            elif path == "/stream.mjpg":
                self._stream()
            else:
                self._send(b"not found", "text/plain", HTTPStatus.NOT_FOUND)

        def _stream(self) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            sent = -1
            try:
                while not latest.closed:
                    encoded = latest.encoded()
                    if encoded is not None and encoded[0] > sent:
                        sent, data = encoded
                        header = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                        self.wfile.write(header.encode() + data + b"\r\n")
                        self.wfile.flush()
                    latest.wait_newer(max(sent, 0), timeout=1.0)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the viewer went away

    return Handler


class MjpegSink(Sink):
    def __init__(self, address: str = ":8080", quality: int = 80) -> None:
        host, port = parse_address(address)
        self._latest = _Latest(quality)
        try:
            self.server = _ThreadingHTTPServer((host, port), _handler(self._latest))
        except OSError as exc:
            raise EdgekitError(
                f"cannot serve on {address}: {exc.strerror}; choose another port (--serve :PORT)"
            ) from exc
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://{host or 'localhost'}:{self.port}/"
        self._thread = threading.Thread(target=self.server.serve_forever, name="mjpeg server", daemon=True)
        self._thread.start()
        log.info("live view at %s", self.url)

    def write(self, output: OutputFrame) -> None:
        with self._latest.condition:
            self._latest.image = output.image
            self._latest.sequence += 1
            self._latest.status = {
                "fps": round(output.fps, 2),
                "latency_ms": round(output.latency_ms, 1),
                "frames": self._latest.sequence,
            }
            self._latest.condition.notify_all()

    def describe(self) -> str:
        return f"MJPEG over HTTP at {self.url}"

    def close(self) -> None:
        with self._latest.condition:
            self._latest.closed = True
            self._latest.condition.notify_all()
        self.server.shutdown()
        self.server.server_close()

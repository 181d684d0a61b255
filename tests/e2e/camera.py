#!/usr/bin/python3
"""A demo/test camera: an RTSP server (H.264 test pattern) plus an HTTP snapshot server.

  camera.py [--bind 127.0.0.1] [--rtsp-port 8555] [--http-port 8556] [--snapshot FILE]
            [--http-dir DIR] [--tcp-only] [--width 320 --height 240 --fps 25]

RTSP: rtsp://HOST:RTSP_PORT/stream1 (GstRtspServer, shared media factory).
HTTP: GET/HEAD /snapshot.jpg serves --snapshot (default: a JPEG of the test pattern made at
start-up); any other path is a static file from --http-dir (if given).
Prints exactly one line `ready rtsp=PORT http=PORT` on stdout (flushed) once both listen; port
0 picks a free port and the line gives the real one. SIGTERM/SIGINT: clean exit, status 0.
Needs Debian's python3-gi and gir1.2-gst-rtsp-server-1.0: run with /usr/bin/python3.
"""

import argparse
import functools
import http.server
import os
import signal
import socketserver
import sys
import tempfile
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def launch_line(width, height, fps):
    return ("( videotestsrc is-live=true ! video/x-raw,width=%d,height=%d,framerate=%d/1 "
            "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=%d "
            "! rtph264pay name=pay0 pt=96 )" % (width, height, fps, fps))


def make_snapshot(path, width, height):
    """Write one JPEG frame of the test pattern to path."""
    pipe = Gst.parse_launch(
        "videotestsrc num-buffers=1 pattern=smpte ! video/x-raw,width=%d,height=%d "
        "! jpegenc ! filesink location=%s" % (width, height, path))
    pipe.set_state(Gst.State.PLAYING)
    msg = pipe.get_bus().timed_pop_filtered(10 * Gst.SECOND,
                                            Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipe.set_state(Gst.State.NULL)
    if msg is None or msg.type != Gst.MessageType.EOS or not os.path.getsize(path):
        raise RuntimeError("could not make a snapshot JPEG")


class Handler(http.server.SimpleHTTPRequestHandler):
    snapshot = None
    static = False
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.split("?", 1)[0] == "/snapshot.jpg":
            return self._snapshot(True)
        if not self.static:
            return self.send_error(404)
        return super().do_GET()

    def do_HEAD(self):
        if self.path.split("?", 1)[0] == "/snapshot.jpg":
            return self._snapshot(False)
        if not self.static:
            return self.send_error(404)
        return super().do_HEAD()

    def _snapshot(self, body):
        with open(self.snapshot, "rb") as f:
            data = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, fmt, *args):
        if os.environ.get("CAMERA_VERBOSE"):
            sys.stderr.write("camera http: %s\n" % (fmt % args))


class HTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--rtsp-port", type=int, default=8555)
    ap.add_argument("--http-port", type=int, default=8556)
    ap.add_argument("--snapshot", help="JPEG served at /snapshot.jpg")
    ap.add_argument("--http-dir", help="directory of static files served over HTTP")
    ap.add_argument("--mount", default="/stream1")
    ap.add_argument("--tcp-only", action="store_true",
                    help="offer only RTP over the RTSP connection (interleaved), never UDP")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--fps", type=int, default=25)
    a = ap.parse_args(argv)

    Gst.init(None)
    tmp = None
    snapshot = a.snapshot
    if snapshot is None:
        tmp = tempfile.TemporaryDirectory(prefix="camera-")
        snapshot = os.path.join(tmp.name, "snapshot.jpg")
        make_snapshot(snapshot, a.width, a.height)
    elif not os.path.isfile(snapshot):
        ap.error("no such snapshot file: %s" % snapshot)

    # RTSP
    server = GstRtspServer.RTSPServer()
    server.set_address(a.bind)
    server.set_service(str(a.rtsp_port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(a.width, a.height, a.fps))
    factory.set_shared(True)   # gst-rtsp-server 1.22 can abort on concurrent SETUPs otherwise
    if a.tcp_only:
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    server.get_mount_points().add_factory(a.mount, factory)
    if server.attach(None) == 0:
        sys.stderr.write("camera: cannot listen on %s:%d (RTSP)\n" % (a.bind, a.rtsp_port))
        return 1
    rtsp_port = server.get_bound_port()

    # HTTP
    Handler.snapshot = snapshot
    Handler.static = bool(a.http_dir)
    handler = functools.partial(Handler, directory=os.path.abspath(a.http_dir or "."))
    try:
        httpd = HTTPServer((a.bind, a.http_port), handler)
    except OSError as e:
        sys.stderr.write("camera: cannot listen on %s:%d (HTTP): %s\n"
                         % (a.bind, a.http_port, e))
        return 1
    http_port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                     daemon=True).start()

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, lambda *_: (loop.quit(), False)[1])
    sys.stdout.write("ready rtsp=%d http=%d\n" % (rtsp_port, http_port))
    sys.stdout.flush()
    loop.run()

    httpd.shutdown()
    httpd.server_close()
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""GStreamer's rtspsrc as a media-server client, for a fixed time, counting video frames.

  rtspsrc_client.py URL SECONDS [--tcp]

Runs `rtspsrc location=URL [protocols=tcp] ! rtph264depay ! h264parse ! access units ! fakesink`
for SECONDS, then stops the pipeline (PLAYING -> NULL: rtspsrc sends TEARDOWN). Prints one JSON
line: frames (access units that reached the sink), first/last frame times (s since start),
errors posted on the bus while streaming ([time, message]), eos (time, if the stream ended
before SECONDS: the server closed it) and the exit status (0: no error and no early end).

Why not `gst-launch-1.0 ... fakesink num-buffers=N`: when fakesink ends the stream, rtspsrc 1.22
pauses (PAUSE request) while gst-launch already shuts it down, and its connection flush can
cancel the PAUSE being written, which rtspsrc reports as "Could not write to resource.
(Received end-of-file)" although every frame arrived. Stopping from PLAYING avoids that race
and leaves a frame count to check.
"""

import json
import sys
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def main(argv):
    url, seconds = argv[1], float(argv[2])
    tcp = "--tcp" in argv[3:]
    Gst.init(None)
    pipe = Gst.parse_launch(
        "rtspsrc name=src latency=200 %s ! rtph264depay ! h264parse "
        "! video/x-h264,alignment=au ! fakesink name=sink sync=false"
        % ("protocols=tcp" if tcp else ""))
    pipe.get_by_name("src").set_property("location", url)
    t0 = time.monotonic()
    frames = []

    def on_buffer(_pad, _info):
        frames.append(time.monotonic() - t0)
        return Gst.PadProbeReturn.OK

    pipe.get_by_name("sink").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER,
                                                               on_buffer)
    out = {"url": url, "errors": [], "eos": None}
    loop = GLib.MainLoop()

    def on_message(_bus, msg):
        t = round(time.monotonic() - t0, 3)
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            out["errors"].append([t, "%s (%s)" % (err.message, dbg)])
            loop.quit()
        elif msg.type == Gst.MessageType.EOS:
            out["eos"] = t
            loop.quit()

    bus = pipe.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    GLib.timeout_add(int(seconds * 1000), loop.quit)
    pipe.set_state(Gst.State.PLAYING)
    loop.run()
    out["stopped_at"] = round(time.monotonic() - t0, 3)
    pipe.set_state(Gst.State.NULL)
    bus.remove_signal_watch()
    out["frames"] = len(frames)
    out["first_frame_at"] = round(frames[0], 3) if frames else None
    out["last_frame_at"] = round(frames[-1], 3) if frames else None
    ok = not out["errors"] and out["eos"] is None
    out["status"] = 0 if ok else 1
    sys.stdout.write(json.dumps(out) + "\n")
    return out["status"]


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/python3
"""A real RTSP origin for tests/rtsp_third_party.rs: the GStreamer RTSP server.

Usage: /usr/bin/python3 rtsp_origin.py PORT MOUNT...
Serves a live MJPEG test pattern (160x120, 10 fps) on each MOUNT (e.g. /live/cam)
on 127.0.0.1:PORT. PORT 0 picks a free port. Prints `ready PORT` with the bound
port once it accepts connections, then runs until killed.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

LAUNCH = (
    "( videotestsrc is-live=true "
    "! video/x-raw,format=I420,width=160,height=120,framerate=10/1 "
    "! jpegenc ! rtpjpegpay name=pay0 pt=26 )"
)


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: rtsp_origin.py PORT MOUNT...")
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(sys.argv[1])
    mounts = server.get_mount_points()
    for path in sys.argv[2:]:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(LAUNCH)
        factory.set_shared(True)
        mounts.add_factory(path, factory)
    if server.attach(None) == 0:
        sys.exit("could not attach the RTSP server")
    print("ready", server.get_bound_port(), flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()

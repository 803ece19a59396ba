"""GStreamer's RTSP server (gst-rtsp-server through python3-gi) serving a live test stream, as a pull source.

Run with Debian's Python (python3-gi lives there, not in the virtualenv):

    /usr/bin/python3 tests/tools/gst_rtsp_server.py PORT [MOUNT]

Serves ``rtsp://127.0.0.1:PORT/MOUNT`` (default ``/live``): H.264 640x360 at 25 fps (a keyframe
every second) and AAC 48 kHz stereo, from videotestsrc/audiotestsrc. Prints "ready" once listening.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PIPELINE = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=25/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=800 "
    "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=-1 "
    "audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample "
    "! audio/x-raw,rate=48000,channels=2 ! avenc_aac ! rtpmp4gpay name=pay1 pt=97 )"
)


def main() -> None:
    port = sys.argv[1]
    mount = sys.argv[2] if len(sys.argv) > 2 else "/live"
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    factory.set_shared(True)
    server.get_mount_points().add_factory(mount, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()

"""Tests of the RTMP server (media_engine.rtmp)."""

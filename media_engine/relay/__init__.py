"""Streams of other nodes played here: mirrors of remote streams (`mirror`)."""

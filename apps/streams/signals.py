"""Signals of the streams app: other apps (recording, push) react to streams going live."""

from django.dispatch import Signal

# Sent after a stream row became live (and the transaction committed); kwargs: stream.
stream_went_live = Signal()

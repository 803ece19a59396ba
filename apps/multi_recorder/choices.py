"""Named constants of the multiple streams recorder: its URI scheme and where its files go."""

import re

URI_SCHEME = "multi-recorder"
# A recorder's name becomes a file name: letters, digits, "-", "_" and "." (not first), nothing else.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
# Under the media root.
FOLDER = "multi-recorder"

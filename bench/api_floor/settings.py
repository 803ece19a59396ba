"""StreamHub's settings with a URL map that adds the bare view (everything else as `make run`)."""

from streamhub.settings import *  # noqa: F403

ROOT_URLCONF = "bench.api_floor.urls"

"""WebRTC relays' rows: where the engine posts its offer, and statuses reported by the engine, where
an ended relay stays ended (a late PUBLISHING cannot revive a stopped relay)."""

from __future__ import annotations

import pytest

from apps.hosting.models import Application
from apps.webrtc_relay.choices import Direction, RelayStatus
from apps.webrtc_relay.models import WebRtcRelay, signalling_target
from apps.webrtc_relay.services import record_status

pytestmark = pytest.mark.django_db


def _relay(**fields) -> WebRtcRelay:
    return WebRtcRelay.objects.create(
        direction=Direction.PULL,
        application=Application.objects.get(name="app"),
        uri="https://edge.example/whep/app",
        local_stream_name="local",
        **fields,
    )


def test_the_signalling_url_appends_the_remote_stream_name_without_the_query():
    assert signalling_target("https://edge.example/whep/app/?token=x", "cam") == "https://edge.example/whep/app/cam"
    assert signalling_target("https://edge.example/whep/app/cam") == "https://edge.example/whep/app/cam"


def test_the_engines_report_changes_an_active_relay():
    relay = _relay()

    record_status(relay.relay_id, RelayStatus.PUBLISHING)

    assert WebRtcRelay.objects.get(pk=relay.pk).status == RelayStatus.PUBLISHING
    assert list(WebRtcRelay.objects.active()) == [relay]


@pytest.mark.parametrize("ended", [RelayStatus.STOPPED, RelayStatus.FAILED])
def test_an_ended_relay_stays_ended(ended):
    relay = _relay(status=ended, error="bye")

    record_status(relay.relay_id, RelayStatus.PUBLISHING)

    relay.refresh_from_db()
    assert (relay.status, relay.error) == (ended, "bye")
    assert not WebRtcRelay.objects.active().exists()

"""{% live_dashboard %}: the dashboard panel on the admin's home page, with its initial state."""

from django import template
from django.urls import reverse

from apps.dashboard.services import dashboard_state

register = template.Library()


@register.inclusion_tag("dashboard/panel.html")
def live_dashboard() -> dict:
    return {
        "dashboard_state": dashboard_state(),
        "dashboard_config": {
            "stateUrl": reverse("dashboard-state"),
            # The player page of stream 0; the page puts each stream's id in.
            "playUrlTemplate": reverse("stream-play", args=[0]),
            "eventsPath": "/ws/events/?stats=1",
        },
    }

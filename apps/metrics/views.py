"""GET /metrics: the Prometheus exposition (text format, or OpenMetrics when the scraper asks for it)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt
from prometheus_client.exposition import choose_encoder

from apps.metrics.collectors import registry


@csrf_exempt  # so that a POST gets the 405 below rather than a CSRF page
def metrics(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(
            ["GET", "HEAD"], "/metrics is read-only: scrape it with GET.\n", content_type="text/plain"
        )
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(registry), content_type=content_type)

"""StreamHub's URLs plus `/bench/bare`: a plain async Django view answering a few bytes of JSON,
behind the same middleware, on the same server: what the framework costs before any API code."""

from django.http import JsonResponse
from django.urls import path

from streamhub.urls import handler404, handler500  # noqa: F401
from streamhub.urls import urlpatterns as streamhub_urlpatterns


async def bare(request):
    return JsonResponse({"ok": True})


urlpatterns = [path("bench/bare", bare), *streamhub_urlpatterns]

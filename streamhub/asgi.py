"""ASGI entry point served by Daphne: HTTP goes to Django, WebSockets to Channels consumers."""

import gc
import os
from importlib import import_module

import django
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "streamhub.settings")
django.setup(set_prefix=False)  # what django.core.asgi.get_asgi_application() does

from streamhub.asgi_handler import PooledThreadASGIHandler  # noqa: E402

# Django's handler, with each request's thread taken from a pool of kept ones (streamhub/asgi_handler.py).
django_asgi_app = PooledThreadASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from apps.security.startup import warn_if_wcs_open  # noqa: E402
from streamhub import daphne_body_limit, twisted_access_log, twisted_form_parsing  # noqa: E402
from streamhub.middleware import RequestBodyLimitMiddleware  # noqa: E402
from streamhub.routing import websocket_urlpatterns  # noqa: E402

router = ProtocolTypeRouter(
    {
        # API bodies over the limit are answered 413 before Django reads them.
        "http": RequestBodyLimitMiddleware(django_asgi_app),
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)

# The API server starts here: say so loudly if WCS answers anyone beyond loopback without credentials.
warn_if_wcs_open()
# Oversize API bodies are refused while they arrive, before Daphne buffers them.
daphne_body_limit.install()
# One access log line per request (Daphne's), not a second one formatted for nothing.
twisted_access_log.install()
# Twisted parses only multipart POST bodies (Daphne never reads what it parses from the others).
twisted_form_parsing.install()

# Everything loaded so far (Django, DRF, every view and URL pattern: about 170,000 objects) lives as
# long as the process: moved out of the garbage collector's reach. A full collection walked them all,
# 100 ms and more under load with every request in flight waiting (the p99 of bench/api_throughput.py);
# it now walks only what came after.
import_module(settings.ROOT_URLCONF)  # the URL map and the views it imports (else at the first request)
gc.collect()
gc.freeze()


async def application(scope, receive, send):
    # Requests on the loopback port only the API's TLS proxy (`manage.py runtlsproxy`) connects to came
    # in over HTTPS: Django then sends HSTS and checks CSRF origins against https://.
    server = scope.get("server")
    if server and server[1] == settings.API_TLS_UPSTREAM_PORT and scope["type"] in ("http", "websocket"):
        scope = {**scope, "scheme": "https" if scope["type"] == "http" else "wss"}
    return await router(scope, receive, send)

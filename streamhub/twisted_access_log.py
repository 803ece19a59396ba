"""No second access log line per request inside Daphne.

Daphne's HTTP factory is Twisted's, which formats a combined-log line for every request (date, escaped
request line, referrer, user agent) and hands it to Twisted's log, where Daphne (at its default
verbosity) throws it away: Daphne writes its own access log line. Formatting it took about 4% of
an API process's time per request (cProfile under wrk). `install()`, called by `streamhub.asgi`,
leaves Daphne's access log as it is and skips Twisted's.
"""

from __future__ import annotations


def install() -> bool:
    """Skip Twisted's access log line in Daphne's HTTP factory; False where Daphne is not installed."""
    try:
        from daphne.http_protocol import HTTPFactory
    except ImportError:
        return False

    def log(self, request) -> None:
        """Daphne's access log (AccessLogGenerator) has the request already."""

    HTTPFactory.log = log
    return True

"""`manage.py signurl`: signed URLs (OME SignedPolicy) to publish or play a stream of an application."""

from django.core.management.base import BaseCommand, CommandError

from apps.access.choices import Direction
from apps.access.services import SignedUrlSpec, sign, signed_stream_urls
from apps.hosting.models import Application


class Command(BaseCommand):
    help = (
        "Print signed URLs (policy + signature, as OME makes them) for a stream of an application, "
        "signed with the application's (or its virtual host's) signedPolicy secret."
    )

    def add_arguments(self, parser):
        parser.add_argument("app", help="Application name (in --vhost).")
        parser.add_argument("stream", help="Stream name.")
        parser.add_argument("--vhost", default="default")
        parser.add_argument("--direction", choices=Direction.values, default=Direction.PLAY)
        parser.add_argument("--expires", type=int, default=3600, help="Seconds the URL can be used (url_expire).")
        parser.add_argument("--stream-expires", type=int, help="Seconds a session may last (stream_expire).")
        parser.add_argument("--allow-ip", default="", help="IP address or CIDR range allowed (allow_ip).")
        parser.add_argument("--host", default="", help="Host name in the URLs (default: the engine node address).")
        parser.add_argument("--url", help="Sign exactly this URL instead of the stream's standard ones.")

    def handle(self, *args, app, stream, vhost, direction, expires, stream_expires, allow_ip, host, url, **options):
        application = Application.objects.select_related("virtual_host").filter(virtual_host__name=vhost, name=app)
        application = application.first()
        if application is None:
            raise CommandError(f"No application {vhost}/{app}.")
        spec = SignedUrlSpec(expires, allow_ip, stream_expires)
        try:
            if url:
                self.stdout.write(sign(application, url, spec))
                return
            urls = signed_stream_urls(application, stream, direction, spec, host)
        except ValueError as error:
            raise CommandError(str(error)) from None
        for protocol, signed in urls.items():
            self.stdout.write(f"{protocol}: {signed}")

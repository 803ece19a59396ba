"""`manage.py apitoken`: the Authorization header value OME API clients must send."""

import base64

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Print the value of the Authorization header for the OME API (Basic base64(OME_ACCESS_TOKEN)), "
        'e.g. curl -H "Authorization: $(manage.py apitoken)" http://127.0.0.1:8081/v1/vhosts'
    )

    def handle(self, *args, **options):
        if not settings.OME_ACCESS_TOKEN:
            raise CommandError("OME_ACCESS_TOKEN is not set.")
        self.stdout.write("Basic " + base64.b64encode(settings.OME_ACCESS_TOKEN.encode()).decode())

"""`manage.py exportconfig > streamhub.json`: every vhost, application and output profile as OME JSON."""

import json

from django.core.management.base import BaseCommand

from apps.hosting.services import export_config


class Command(BaseCommand):
    help = (
        "Print all virtual hosts with their applications and output profiles as JSON (OME's shapes). "
        "`manage.py importconfig FILE` reads it back."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", help="Write to this file instead of standard output.")

    def handle(self, *args, output=None, **options):
        text = json.dumps(export_config(), indent=2) + "\n"
        if output:
            with open(output, "w", encoding="utf-8") as file:
                file.write(text)
            self.stderr.write(f"Wrote {output}")
        else:
            self.stdout.write(text, ending="")

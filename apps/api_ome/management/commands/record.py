"""`manage.py record start|stop|list`: the OME record API from the command line, same rules."""

import json
import time

from django.core.management.base import BaseCommand, CommandError

from apps.api_ome.serializers.recording import StartRecordSerializer, record_to_ome
from apps.hosting.models import Application
from apps.hosting.ome_config import describe_errors
from apps.recording.models import Record
from apps.recording.services import RecordConflict, create_record, stop_record


class Command(BaseCommand):
    help = "Start, stop and list recordings of an application (as OME's :startRecord, :stopRecord, :records)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        start = sub.add_parser("start", help="Start (or reserve) a recording.")
        start.add_argument("stream", help="Stream name.")
        start.add_argument("--id", required=True, help="Unique id of the recording task.")
        start.add_argument("--interval", type=int, help="Milliseconds per file.")
        start.add_argument("--schedule", help='"<second> <minute> <hour>", e.g. "0 */1 *".')
        start.add_argument("--file-path", help="Under the media root, with ${...} macros.")
        start.add_argument("--info-path", help="Under the media root, with ${...} macros.")
        stop = sub.add_parser("stop", help="Stop a recording.")
        stop.add_argument("--id", required=True)
        listing = sub.add_parser("list", help="Show recordings and their state.")
        listing.add_argument("--watch", type=float, help="Refresh every N seconds until Ctrl-C.")
        for each in (start, stop, listing):
            each.add_argument("--vhost", default="default")
            each.add_argument("--app", default="app")

    def handle(self, *args, action, vhost, app, **options):
        application = Application.objects.filter(virtual_host__name=vhost, name=app).first()
        if application is None:
            raise CommandError(f"Could not find the application: [{vhost}/{app}]")
        if action == "start":
            body = {"id": options["id"], "stream": {"name": options["stream"]}}
            for option, key in (("interval", "interval"), ("schedule", "schedule"), ("file_path", "filePath"),
                                ("info_path", "infoPath")):  # fmt: skip
                if options.get(option) is not None:
                    body[key] = options[option]
            serializer = StartRecordSerializer(data=body)
            if not serializer.is_valid():
                raise CommandError(describe_errors(serializer.errors))
            try:
                record = create_record(application, serializer.validated_data)
            except RecordConflict as conflict:
                raise CommandError(f"Duplicate ID already exists: [{conflict}]") from conflict
            self.stdout.write(json.dumps(record_to_ome(record), indent=2))
        elif action == "stop":
            record = (
                Record.objects.filter(application=application, record_id=options["id"]).order_by("-created_at").first()
            )
            if record is None:
                raise CommandError(f"Could not find the record: [{vhost}/{app}/{options['id']}]")
            record = stop_record(record)
            self.stdout.write(f"{record.record_id}: {record.record_state}")
        else:
            while True:
                for record in Record.objects.filter(application=application):
                    self.stdout.write(
                        f"{record.record_id:<20} {record.record_state:<9} {record.stream_name:<20} "
                        f"file #{record.sequence} "
                        f"{record.total_record_bytes / 1e6:8.1f} MB {record.total_record_time_ms / 1000:8.1f} s"
                    )
                if not options["watch"]:
                    break
                time.sleep(options["watch"])
                self.stdout.write("")

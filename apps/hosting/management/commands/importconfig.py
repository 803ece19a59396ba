"""`manage.py importconfig streamhub.json`: create or update vhosts, apps and profiles, all or nothing."""

import json
import sys

from django.core.management.base import BaseCommand, CommandError
from rest_framework import serializers

from apps.hosting.ome_config import VirtualHostConfigSerializer, describe_errors
from apps.hosting.services import import_config


class ImportFileSerializer(serializers.Serializer):
    vhosts = VirtualHostConfigSerializer(many=True)


class Command(BaseCommand):
    help = (
        "Import a file written by `manage.py exportconfig`: creates missing virtual hosts, applications and "
        "output profiles and updates existing ones. Nothing is written unless the whole file is valid."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="JSON file as written by exportconfig ('-' for standard input).")
        parser.add_argument("--dry-run", action="store_true", help="Validate and report, but change nothing.")

    def handle(self, *args, file, dry_run=False, **options):
        try:
            if file == "-":
                data = json.load(sys.stdin)
            else:
                with open(file, encoding="utf-8") as handle:
                    data = json.load(handle)
        except (OSError, json.JSONDecodeError) as error:
            raise CommandError(f"Cannot read {file}: {error}") from error
        serializer = ImportFileSerializer(data=data)
        if not serializer.is_valid():
            raise CommandError(f"Invalid configuration, nothing imported: {describe_errors(serializer.errors)}")
        if dry_run:
            self.stdout.write(f"{file} is valid: {len(serializer.validated_data['vhosts'])} virtual host(s).")
            return
        report = import_config(serializer.validated_data["vhosts"])
        for line in report.created:
            self.stdout.write(f"created {line}")
        for line in report.updated:
            self.stdout.write(f"updated {line}")
        self.stdout.write(
            self.style.SUCCESS(f"Imported: {len(report.created)} created, {len(report.updated)} updated.")
        )

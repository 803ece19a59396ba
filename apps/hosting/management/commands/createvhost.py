"""`manage.py createvhost NAME --host-name ...`: add a virtual host from the command line."""

from django.core.management.base import BaseCommand, CommandError

from apps.engine.commands import send_certificate_reload
from apps.hosting.ome_config import VirtualHostConfigSerializer, describe_errors
from apps.hosting.services import AlreadyExists, create_virtual_host


class Command(BaseCommand):
    help = "Create a virtual host with its host names and optional TLS certificate paths."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Virtual host name, e.g. 'live'.")
        parser.add_argument(
            "--host-name",
            action="append",
            dest="host_names",
            required=True,
            help="A host name or pattern this vhost answers (repeat for several), e.g. '*.example.com'.",
        )
        parser.add_argument("--cert", default="", help="TLS certificate file.")
        parser.add_argument("--key", default="", help="TLS private key file.")
        parser.add_argument("--chain", default="", help="TLS chain certificate file.")

    def handle(self, *args, name, host_names, cert, key, chain, **options):
        host: dict = {"names": host_names}
        if cert or key or chain:
            host["tls"] = {"certPath": cert, "keyPath": key, "chainCertPath": chain}
        serializer = VirtualHostConfigSerializer(data={"name": name, "host": host})
        if not serializer.is_valid():
            raise CommandError(describe_errors(serializer.errors))
        try:
            vhost = create_virtual_host(serializer.validated_data)
        except AlreadyExists as error:
            raise CommandError(f"The virtual host already exists: [{name}]") from error
        send_certificate_reload(vhost.name)  # running HTTPS ports take its names and certificate now
        self.stdout.write(self.style.SUCCESS(f"Created virtual host {vhost.name} ({', '.join(vhost.host_names)})."))

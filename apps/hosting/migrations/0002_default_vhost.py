"""First start: vhost `default` (host names `*`) with application `app`, as OME ships them."""

from django.db import migrations

from apps.hosting.choices import (
    DEFAULT_OUTPUT_PROFILE_ENCODES,
    DEFAULT_PROVIDERS,
    DEFAULT_PUBLISHERS,
    ORIGIN_STREAM_NAME_MACRO,
    SHIPPED_OUTPUT_PROFILE_NAME,
)


def create_default_vhost(apps, schema_editor):
    VirtualHost = apps.get_model("hosting", "VirtualHost")
    VirtualHostName = apps.get_model("hosting", "VirtualHostName")
    Application = apps.get_model("hosting", "Application")
    OutputProfile = apps.get_model("hosting", "OutputProfile")
    if VirtualHost.objects.filter(name="default").exists():
        return
    vhost = VirtualHost.objects.create(name="default")
    VirtualHostName.objects.create(virtual_host=vhost, name="*", position=0)
    app = Application.objects.create(
        virtual_host=vhost, name="app", type="live", providers=DEFAULT_PROVIDERS, publishers=DEFAULT_PUBLISHERS
    )
    OutputProfile.objects.create(
        application=app,
        name=SHIPPED_OUTPUT_PROFILE_NAME,
        output_stream_name=ORIGIN_STREAM_NAME_MACRO,
        encodes=DEFAULT_OUTPUT_PROFILE_ENCODES,
        position=0,
    )


class Migration(migrations.Migration):
    dependencies = [("hosting", "0001_initial")]

    operations = [migrations.RunPython(create_default_vhost, migrations.RunPython.noop)]

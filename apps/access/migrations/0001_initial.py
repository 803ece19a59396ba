import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("hosting", "0003_application_access_control"),
    ]

    operations = [
        migrations.CreateModel(
            name="AclKey",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("stream_name", models.CharField(max_length=255, verbose_name="stream name")),
                (
                    "key",
                    models.CharField(
                        help_text="What a player passes as aclAuth=...", max_length=255, verbose_name="key"
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="created")),
                (
                    "application",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="acl_keys", to="hosting.application"
                    ),
                ),
            ],
            options={
                "verbose_name": "stream ACL key",
                "ordering": ["application_id", "stream_name", "id"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("application", "stream_name", "key"), name="access_aclkey_unique_key"
                    )
                ],
            },
        ),
    ]

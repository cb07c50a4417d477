from django.db import migrations
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce


def backfill(apps, schema_editor):
    Workspace = apps.get_model("pufferpost", "Workspace")
    WebhookEndpoint = apps.get_model("messaging", "WebhookEndpoint")
    enabled = (
        WebhookEndpoint.objects.filter(workspace_id=OuterRef("pk"), disabled_at__isnull=True)
        .order_by()
        .values("workspace_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    Workspace.objects.update(enabled_webhook_endpoints=Coalesce(Subquery(enabled), 0))


class Migration(migrations.Migration):
    dependencies = [("messaging", "0004_delivery_attempts"), ("pufferpost", "0002_workspace_webhook_endpoints")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("pufferpost", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="workspace",
            name="enabled_webhook_endpoints",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
    ]

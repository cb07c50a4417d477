from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"

    def ready(self):
        # Registers the webhook listener on the message lifecycle and the webhook tasks.
        from messaging import observability  # noqa: F401 - registers the scrape-time queue collectors
        from messaging.webhooks import services, tasks  # noqa: F401

from importlib import import_module

from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    # Celery autodiscovers `<package>.tasks` for each of these (pufferpost/celery.py).
    task_packages = ("messaging", "messaging.delivery", "messaging.webhooks")

    def import_models(self):
        super().import_models()
        # Django imports one models module per app; the webhook models live in their subpackage.
        import_module("messaging.webhooks.models")

    def ready(self):
        from messaging.feedback.classes import bounce_rules_check
        from messaging.lifecycle import on_events_recorded
        from messaging.webhooks import services as webhooks
        from pufferpost import events

        # Both listeners run inside the transaction that records the event, so webhook
        # deliveries commit with it or not at all.
        on_events_recorded(webhooks.webhook_recorded_events_publish, wants=webhooks.webhook_endpoints_may_want)
        for kind in webhooks.PLATFORM_EVENT_SUBJECTS:
            events.subscribe(kind)(webhooks.webhook_platform_event_received)
        from messaging import observability  # noqa: F401 - registers the scrape-time queue collectors

        # A malformed bounce rules file stops the process at start, not at the first bounce.
        bounce_rules_check()

from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"

    def ready(self):
        # Registers the webhook listener on the message lifecycle and the webhook tasks.
        # A malformed bounce rules file stops the process at start, not at the first bounce.
        from messaging.feedback.classes import bounce_rules_check
        from messaging.webhooks import services, tasks  # noqa: F401

        bounce_rules_check()

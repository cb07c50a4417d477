from django.apps import AppConfig


class SendersConfig(AppConfig):
    name = "senders"

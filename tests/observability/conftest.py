from tests.messaging.delivery.conftest import smtp_relay, smtp_sink  # noqa: F401
